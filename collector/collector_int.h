/* collector_int.h - what the collector's files share with each other and
 * nobody else: the live publisher (live.c), the query API thread (api.c) and
 * logging. Internal names carry the tcl__ prefix. See collector.h for the
 * public contract.
 */
#ifndef TRAINSCOPE_COLLECTOR_INT_H
#define TRAINSCOPE_COLLECTOR_INT_H

#include <stddef.h>
#include <stdint.h>

#ifndef TCL_VERSION
#define TCL_VERSION "0.0.0"
#endif

/* One line "[collector] ..." on stderr. Safe from any thread: each line is
 * a single stdio call. */
void tcl__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on the monotonic clock, and nanoseconds of wall time. */
int64_t tcl__now_ms(void);
int64_t tcl__wall_ns(void);

struct tsec_server;  /* security.h: CURVE for listening sockets; NULL = plain */
typedef struct tss_store tss_store;  /* store.h */

/* ---- live.c: LIVE fan-out on an XPUB socket --------------------------- */

typedef struct tcl__live tcl__live;

/* Bind the PUB socket (a CURVE server when sec is set). On failure err
 * names the endpoint. */
int tcl__live_open(void *zctx, const char *ep, const struct tsec_server *sec, tcl__live **out,
                   char *err, size_t errlen);
void tcl__live_close(tcl__live *l);
const char *tcl__live_endpoint(const tcl__live *l);

/* The XPUB socket, to poll: when readable, call tcl__live_readable to take
 * in (un)subscriptions. */
void *tcl__live_socket(tcl__live *l);
void tcl__live_readable(tcl__live *l);
/* 1 when a subscriber's prefix matches this run topic. */
int tcl__live_wanted(const tcl__live *l, const char *topic, size_t len);
/* Bytes of one LIVE payload for a metric name of mlen bytes and n points. */
size_t tcl__live_size(size_t mlen, uint32_t n);
/* Make the reusable payload buffer at least `bytes` long and return it (NULL
 * on -ENOMEM). Payloads of several series are laid out in it side by side. */
uint8_t *tcl__live_buffer(tcl__live *l, size_t bytes);
/* Write a payload head at buffer offset off; returns the offset of its first
 * point. Points are then written with tsw_live_point_encode. */
size_t tcl__live_head(tcl__live *l, size_t off, uint64_t series, uint32_t rank,
                      const char *metric, size_t mlen, uint32_t n);
/* Publish [topic][header][buffer + off, len) without blocking: a subscriber
 * that cannot keep up loses messages (ZMQ_SNDHWM), ingest never waits. */
void tcl__live_publish(tcl__live *l, const char *topic, size_t topic_len, uint64_t series,
                       size_t off, size_t len);

/* ---- api.c: the query API, served from its own thread ----------------- */

typedef struct tcl__api tcl__api;

/* Bind the ROUTER (a CURVE server when sec is set) and open a read-only
 * store handle (both here, so errors are reported to the caller), then serve
 * from a new thread. `info` names live_ep (the bound live endpoint) unless
 * it is a wildcard address. */
int tcl__api_start(void *zctx, const char *ep, const struct tsec_server *sec,
                   const char *store_path, const char *live_ep, tcl__api **out, char *err,
                   size_t errlen);
const char *tcl__api_endpoint(const tcl__api *a);
/* Stop the thread (it notices within 100 ms), close socket and store. NULL-safe. */
void tcl__api_stop(tcl__api *a);
/* The write channel (the `annotate` op): the collector thread polls this
 * socket and, when it is readable, calls tcl__api_serve_writes, which
 * applies every waiting request to the writer st (NULL while the store is
 * away: each is refused), calls commit(ctx) to make it durable, and answers
 * the API thread. */
void *tcl__api_write_socket(tcl__api *a);
void tcl__api_serve_writes(tcl__api *a, tss_store *st, int (*commit)(void *ctx), void *ctx);

#endif
