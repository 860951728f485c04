/* client_int.h - the run handle of libtrainscope, shared by client.c (the
 * public API, called from training threads) and io.c (the I/O thread).
 *
 * Data flow:  log calls --ring--> I/O thread --outbox--> ZeroMQ DEALER
 *                                     ^                        |
 *                                     +-------- ACK / ERROR ---+
 *
 * Who touches what:
 * - `ring`, `names`: any thread (see ring.h, names.h for their rules).
 * - `mu` guards `acked_mark`; `cv` is signalled when it moves.
 * - `closing`/`close_tail`/`bye`, `stop`: written by ts_close, read by the
 *   I/O thread; `wake_fd` interrupts its poll.
 * - stats: written by the I/O thread, read by ts_get_stats.
 * - `io`, `zctx`, `sock`: the I/O thread only (and open/close around it).
 *
 * Marks: ring positions start at 1 and position 0 stands for the HELLO, so
 * "acked_mark >= p" means the collector has made durable the HELLO and every
 * slot below p. ts_flush waits for the tail it saw; ts_close for tail + 1,
 * the BYE.
 */
#ifndef TS_CLIENT_INT_H
#define TS_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "names.h"
#include "outbox.h"
#include "ring.h"
#include "trainscope.h"

#define TS__BATCH_MAX 65536      /* samples per BATCH message */
#define TS__DEFINE_MAX 65536     /* bytes per DEFINE message */
#define TS__STATUS_MAX TSW_MAX_KIND /* BYE status, 1..64 bytes */

/* An EVENT payload, encoded by ts_event and carried through the ring. */
typedef struct ts__event_rec {
    size_t len;
    uint8_t payload[];
} ts__event_rec;

/* State of the I/O thread. */
typedef struct ts__io {
    ts__outbox ob;        /* sent or to-send messages, until acknowledged */
    uint64_t consumed;    /* ring position drained up to */
    uint8_t *defined;     /* defined[id]: a DEFINE for id is in the outbox */
    size_t defined_cap;
    uint8_t *defs;        /* DEFINE entries not yet pushed */
    size_t defs_len;
    uint8_t *batch;       /* BATCH payload being filled; pushed as is, then a spare of the outbox replaces it */
    size_t batch_cap;     /* bytes allocated at batch */
    uint32_t batch_n, batch_max;
    tsw_drops unreported; /* drops taken from the ring, not yet in a DROPS */
    uint32_t errors_seen; /* bit per ERROR code already printed */
    bool bye_queued;
    bool lost_warned;     /* the collector lost acknowledged data: said once */
} ts__io;

struct ts_run {
    ts__ring ring; /* first: aligned to cache lines */
    ts__names names;

    uint64_t stream;       /* random, non-zero */
    size_t max_unacked;    /* outbox bytes beyond which the ring is not drained */
    int batch_interval_ms; /* poll timeout of the I/O thread */

    pthread_mutex_t mu;
    pthread_cond_t cv;    /* CLOCK_MONOTONIC */
    uint64_t acked_mark;  /* under mu, see "Marks" above */

    atomic_bool closing;  /* release: close_tail and bye are set */
    uint64_t close_tail;
    char bye[TS__STATUS_MAX];
    size_t bye_len;
    atomic_bool stop;
    int wake_fd;          /* eventfd */

    _Atomic uint64_t sent, acked, resent;
    atomic_int connected;

    void *zctx, *sock;
    pthread_t thread;
    ts__io io;
};

/* io.c */
/* Create the socket and connect (TS_EZMQ if ZeroMQ refuses the endpoint),
 * allocate the I/O buffers and queue the HELLO as seq 1. */
int ts__io_init(ts_run *run, const char *endpoint, const ts_security *sec, const char *hello,
                size_t hello_len);
/* After the thread has stopped: close the socket, free what is queued
 * (including event records still in the ring). */
void ts__io_destroy(ts_run *run);
void *ts__io_main(void *run);
/* Interrupt the I/O thread's wait (flush, close). */
void ts__io_wake(ts_run *run);
int64_t ts__mono_ns(void);

#endif
