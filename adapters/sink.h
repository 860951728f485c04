/* sink.h - where adapters put what they read (tad_ prefix): a collector,
 * through libtrainscope, or a store file written directly.
 *
 * Publishing (endpoint) is the default: the collector may be running and
 * holds the store's single-writer lock while it does, so importers and
 * `trainscope tail` go through it like any trainer and get its guarantees
 * (acknowledged when durable, resent, never stored twice). Writing a store
 * directly (store) needs no collector but fails with a clear error while one
 * writes that file; it suits offline conversion. Either way, ending a run
 * returns only when everything logged is durable.
 *
 * One run at a time: tad_sink_begin, log..., tad_sink_end. Errors: 0 or -1
 * with a sentence in err.
 */
#ifndef TRAINSCOPE_SINK_H
#define TRAINSCOPE_SINK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tad_sink_opts {
    const char *endpoint;    /* collector ingest; NULL: libtrainscope's default */
    const char *store;       /* non-NULL: write this store file instead */
    const char *project;     /* runs' project, NULL for none */
    int timeout_ms;          /* how long ending a run waits for the collector; < 0 forever */
    int connect_ms;          /* > 0: beginning a run fails unless the collector has stored
                                it within this time (importers: a wrong endpoint fails fast);
                                0: it may start later (tail) */
    int wait_when_behind;    /* live logging (t_ns 0): when the collector falls half a ring
                                behind, wait for it instead of dropping (a followed file can
                                wait; a trainer's pipe must not) */
    volatile sig_atomic_t *stop; /* ends such a wait early (signal handler flag), may be NULL */
} tad_sink_opts;

typedef struct tad_sink tad_sink;

/* Opens the store (taking its writer lock) when opts->store is set. */
tad_sink *tad_sink_open(const tad_sink_opts *opts, char *err, size_t errlen);
/* Starts run `name` as rank of world_size (0 and 1 for one process). */
int tad_sink_begin(tad_sink *s, const char *name, int rank, int world_size, char *err,
                   size_t errlen);
/* One point; t_ns 0 means now. Never drops: when publishing in bulk (t_ns
 * given) it waits for acknowledgements before the client's ring could
 * fill. */
int tad_sink_log(tad_sink *s, const char *metric, int64_t step, int64_t t_ns, double value,
                 char *err, size_t errlen);
int tad_sink_event(tad_sink *s, int64_t step, const char *kind, const char *text);
/* Ends the run with status ("finished", "interrupted", ...): waits until
 * everything is durable. -1 when it is not (collector unreachable within
 * the timeout, or a store write failed). */
int tad_sink_end(tad_sink *s, const char *status, char *err, size_t errlen);
/* Points logged and samples dropped (live logging only) since open. */
uint64_t tad_sink_points(const tad_sink *s);
uint64_t tad_sink_dropped(const tad_sink *s);
/* NULL-safe; ends an open run as "interrupted". */
void tad_sink_close(tad_sink *s);

#endif
