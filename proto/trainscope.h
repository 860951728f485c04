/* trainscope.h - libtrainscope, the publisher library trainers link.
 *
 * Sends scalars (loss, gradient norms, learning rate, ...) from a training
 * program to a trainscope collector over ZeroMQ, without ever blocking the
 * training loop.
 *
 *   ts_options o = ts_options_default();
 *   o.run = "bigram-lr0.1";
 *   ts_run *run;
 *   if (ts_open(&run, &o) < 0) ...;
 *   int loss = ts_metric(run, "train/loss");       // once
 *   for (step ...) ts_log_id(run, loss, step, l);   // ~tens of ns, no syscall
 *   ts_log(run, "train/lr", step, lr);              // by name: a hash lookup more
 *   ts_close(run, 5000);                            // flush, say goodbye, free
 *
 * Guarantees:
 * - A log call copies the sample into a bounded in-memory ring and returns;
 *   batching, name-to-id compression and all I/O happen on a background
 *   thread. Log calls are safe from several threads on one run.
 * - Sent data is kept until the collector acknowledges it as durable; if the
 *   collector is down, restarts or starts later, the library resends and the
 *   collector drops duplicates, so nothing is lost or stored twice.
 * - When the ring is full (collector unreachable for long enough), new samples
 *   are dropped and counted (ts_log returns TS_EDROPPED) and the gap (count,
 *   step and time range) is reported to the collector, which stores it.
 *
 * Errors: functions return 0 (or an id) on success and a negative TS_E* code;
 * ts_strerror() gives a sentence. Wire format: proto/PROTOCOL.md.
 */
#ifndef TRAINSCOPE_H
#define TRAINSCOPE_H

#include <stddef.h>
#include <stdint.h>

/* The library is built with hidden visibility; only TS_API names are
 * exported from the shared object. */
#if defined(TS_BUILDING_LIB) && defined(__GNUC__)
#define TS_API __attribute__((visibility("default")))
#else
#define TS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TS_VERSION_STRING "0.1.0"

enum {
    TS_OK = 0,
    TS_EINVAL = -1,    /* bad argument (NULL, empty or non-UTF-8 name, bad endpoint) */
    TS_ENOMEM = -2,
    TS_EDROPPED = -3,  /* ring full: the sample was dropped and counted */
    TS_ETIMEDOUT = -4, /* flush/close: not everything was acknowledged in time */
    TS_ECLOSED = -5,   /* the run is closing */
    TS_EZMQ = -6,      /* ZeroMQ refused the endpoint or socket setup */
    TS_ETOOMANY = -7,  /* more metric names than the protocol allows per run */
    TS_EKEY = -8,      /* a CURVE key is missing, unreadable, unprotected or invalid */
};

typedef struct ts_options {
    const char *endpoint;     /* collector ingest, default "tcp://127.0.0.1:5557"
                                 (env TRAINSCOPE_ENDPOINT overrides the default) */
    const char *run;          /* run name, required, UTF-8 */
    const char *project;      /* optional */
    const char *config_json;  /* optional JSON object of hyperparameters */
    int rank;                 /* this process's rank, default 0 */
    int world_size;           /* default 1 */
    size_t ring_samples;      /* ring capacity in samples, default 1 << 20 (32 MiB) */
    size_t max_unacked_bytes; /* sent but unacknowledged data kept, default 64 MiB */
    int batch_interval_ms;    /* how often the I/O thread sends, default 5 */
} ts_options;

typedef struct ts_run ts_run;

typedef struct ts_stats {
    uint64_t logged;     /* samples accepted into the ring */
    uint64_t dropped;    /* samples dropped because the ring was full */
    uint64_t sent;       /* samples sent at least once */
    uint64_t acked;      /* samples the collector has made durable */
    uint64_t resent;     /* messages sent again after a timeout or gap */
    int connected;       /* 1 after an ACK; 0 again after 1 s of unacknowledged sends */
} ts_stats;

/* Defaults: endpoint NULL (TRAINSCOPE_ENDPOINT, else the default above),
 * rank 0, world_size 1, ring 1 << 20 samples, 64 MiB unacked, 5 ms.
 * In options passed to ts_open, ring_samples, max_unacked_bytes and
 * batch_interval_ms of 0 also mean "default". */
TS_API ts_options ts_options_default(void);

/* Start a run: validates options, starts the I/O thread, returns at once
 * (connecting happens in the background; the collector may start later).
 * TS_EINVAL: run empty, over 512 bytes or not UTF-8; project over 512 bytes
 * or not UTF-8; rank < 0, world_size < 1 or rank >= world_size; config_json
 * not UTF-8 or not of the form "{...}"; ring_samples over 2^30;
 * batch_interval_ms over 10000; HELLO over 1 MiB.
 * TS_EZMQ: ZeroMQ refused the endpoint (bad syntax, unknown transport).
 * The ring holds ring_samples rounded up to a power of two; its memory is
 * allocated and touched here, so log calls never page-fault on it. Up to 64
 * slots of it (1/16 of a small ring) are kept for events: samples are
 * dropped a little before events are. */
TS_API int ts_open(ts_run **out, const ts_options *opts);

/* Encrypted, authenticated connection to a collector that listens with
 * CURVE (`trainscope keygen`; README "Remote attach"). A field left NULL
 * falls back to the environment, which is also what ts_open uses:
 *   TRAINSCOPE_SERVER_KEY  the collector's public key: 40 Z85 characters or its .pub file
 *   TRAINSCOPE_CLIENT_KEY  this client's .key file (mode 0600)
 * Neither set anywhere: a plain connection, as before. */
typedef struct ts_security {
    const char *server_key;   /* Z85 public key or the path of the collector's .pub */
    const char *client_key;   /* path of this client's .key (its secret and public key) */
} ts_security;

/* ts_open with keys. TS_EKEY: a key is missing (one of the two set without
 * the other), unreadable, not a key, or a secret key file others can read;
 * the sentence saying which and what to do is printed on stderr. */
TS_API int ts_open_secure(ts_run **out, const ts_options *opts, const ts_security *sec);

/* Register a metric name, returns its id (>= 0). Same name, same id; ids are
 * 0, 1, 2 ... in registration order. TS_EINVAL: empty, over 512 bytes or not
 * UTF-8; TS_ETOOMANY past id 1048575. The DEFINE is sent by the I/O thread
 * before the first sample that uses the id. */
TS_API int ts_metric(ts_run *run, const char *name);

/* Log one scalar. The time is taken now (CLOCK_REALTIME). Returns 0,
 * TS_EDROPPED (ring full: dropped and counted), TS_EINVAL (id not returned
 * by ts_metric) or TS_ECLOSED (ts_close has started). */
TS_API int ts_log_id(ts_run *run, int id, int64_t step, double value);
/* By name: registers the name on first use (see ts_metric). */
TS_API int ts_log(ts_run *run, const char *name, int64_t step, double value);
/* Same with an explicit Unix time in nanoseconds (importers, replays). */
TS_API int ts_log_at(ts_run *run, int id, int64_t step, int64_t time_ns, double value);

/* Log n scalars of one step under one time stamp: what a binding calls once
 * per dict of metrics (Python's run.log) instead of once per metric. Every
 * ids[i] is checked first; if one was not returned by ts_metric, nothing is
 * logged (TS_EINVAL). Returns 0, TS_EDROPPED if some samples were dropped
 * (the others were logged) or TS_ECLOSED. n == 0 logs nothing and returns 0. */
TS_API int ts_log_many(ts_run *run, int64_t step, size_t n, const int *ids, const double *values);
/* ts_log_many for foreign-function bindings, whose per-argument conversion
 * costs more than the call: two buffers in native byte order, no alignment
 * required. ids: int32 n, then n int32 metric ids (fixed for a given set of
 * names, so a binding builds it once); rec: int64 step, then n doubles.
 * Same checks and results as ts_log_many; n < 0 is TS_EINVAL. */
TS_API int ts_log_packed(ts_run *run, const void *ids, const void *rec);

/* Record an event (kind: 1 to 64 bytes of UTF-8 such as "note",
 * "checkpoint"; text: up to 64 KiB of UTF-8, NULL for none). Events are
 * rare; this call allocates. TS_EDROPPED if even the ring's reserve for
 * events is full. */
TS_API int ts_event(ts_run *run, int64_t step, const char *kind, const char *text);

/* Wait until everything logged before the call is durable in the store, or
 * timeout_ms passes (TS_ETIMEDOUT). timeout_ms < 0 waits forever. Also
 * waits for the collector to have stored the run (its HELLO). */
TS_API int ts_flush(ts_run *run, int timeout_ms);

/* Refuse further log calls (TS_ECLOSED), send everything and then BYE with
 * status (1 to 64 bytes of UTF-8; NULL or "" for "finished"), wait up to
 * timeout_ms (< 0: forever) for the collector to acknowledge the BYE, stop
 * the thread and free. Returns 0 if everything logged was acknowledged,
 * TS_ETIMEDOUT if not (the BYE's own acknowledgement is not required for
 * 0), TS_EINVAL if status was invalid (the BYE then carries no status).
 * Always frees the run. NULL-safe. */
TS_API int ts_close_status(ts_run *run, int timeout_ms, const char *status);
TS_API int ts_close(ts_run *run, int timeout_ms);

/* Counters, read without locking. */
TS_API void ts_get_stats(ts_run *run, ts_stats *out);
TS_API const char *ts_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
