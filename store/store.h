/* store.h - the trainscope store: one SQLite file (WAL mode) holding runs,
 * streams, series, compressed chunks with summaries, events and drop gaps.
 *
 * One writer (the collector) at a time, enforced with an exclusive flock on
 * the database file taken before SQLite touches it, so a second writer fails
 * with -EBUSY and changes nothing. Any number of readers (CLI, viewer, the
 * collector's own query API) may open the file at any time, also while it is
 * being written. The schema is documented in docs/store.md.
 *
 * Writes are buffered in memory and in one open transaction; tss_commit()
 * makes everything appended so far durable (every series' open chunk is
 * written, stream sequence numbers with it, in the same transaction), which is
 * what lets the collector acknowledge exactly what is on disk.
 *
 * Timelines: when a series' step goes back (a run resumed from a checkpoint),
 * the series starts a new timeline ("generation"). Every point is kept. A
 * point of generation g at step s is superseded when a later generation began
 * at a step <= s. Readers return only the newest timeline unless asked
 * (TSS_ALL_TIMELINES).
 *
 * Time: stored as integers in units of time_unit_ns (default 1 ms, fixed when
 * the store is created); readers return nanoseconds (the stored value times
 * the unit).
 *
 * Errors: 0 or a negative errno-style code; tss_errmsg() holds a sentence for
 * the last error of that store handle. Returned arrays are owned by the caller
 * and freed with the matching tss_free_* function (NULL-safe).
 */
#ifndef TRAINSCOPE_STORE_H
#define TRAINSCOPE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tss_store tss_store;

typedef struct tss_open_opts {
    int writer;             /* 1: the collector (creates the file, takes the lock) */
    int64_t time_unit_ns;   /* creation only; 0 means 1000000 (1 ms) */
    int sync_full;          /* writer: 1 = PRAGMA synchronous=FULL (survives power loss) */
} tss_open_opts;

/* Open or (writer only) create a store. On failure *out is NULL and err holds
 * a sentence naming the file and the cause: -EBUSY another collector writes
 * it, -ENOENT missing (readers), -EINVAL not a trainscope store or corrupt,
 * -EIO anything else. */
int tss_open(tss_store **out, const char *path, const tss_open_opts *opts, char *err, size_t errlen);
/* Writer: commits what is pending first. NULL-safe. */
int tss_close(tss_store *st);
const char *tss_errmsg(const tss_store *st);
int64_t tss_time_unit_ns(const tss_store *st);

/* ---- writer ---------------------------------------------------------- */

/* Find or create the run (project may be NULL or ""); marks it running and
 * keeps config_json (a JSON text or NULL) of the newest HELLO. */
int tss_run_open(tss_store *st, const char *project, const char *name, const char *config_json,
                 int world_size, int64_t t_ns, int64_t *run_id);
/* status: "running", "finished", "failed", or what the publisher said. */
int tss_run_set_status(tss_store *st, int64_t run_id, const char *status, int64_t t_ns);

typedef struct tss_stream_info {
    int64_t run_id;
    int rank;
    uint64_t last_seq;      /* highest seq whose effects are committed */
    int ended;              /* BYE received */
} tss_stream_info;
/* Record a new stream (from its HELLO). */
int tss_stream_open(tss_store *st, uint64_t stream, int64_t run_id, int rank,
                    const char *hello_json, int64_t t_ns);
/* 0 and *info filled, or -ENOENT. */
int tss_stream_find(tss_store *st, uint64_t stream, tss_stream_info *info);
/* Remember that seq is applied; written with the next commit. */
int tss_stream_set_seq(tss_store *st, uint64_t stream, uint64_t seq);
int tss_stream_end(tss_store *st, uint64_t stream, int64_t t_ns);

/* Series are keyed by (run, rank, metric name). */
int tss_series_open(tss_store *st, int64_t run_id, int rank, const char *name, int64_t *series_id);
/* Persist and reload the DEFINE mapping of a stream (metric id -> series). */
int tss_stream_bind(tss_store *st, uint64_t stream, uint32_t metric_id, int64_t series_id);
typedef void (*tss_bind_fn)(void *ctx, uint32_t metric_id, int64_t series_id);
int tss_stream_bindings(tss_store *st, uint64_t stream, tss_bind_fn fn, void *ctx);

/* The ingest hot path: appends to the series' open chunk in memory (no SQL
 * unless the chunk fills up). Returns 1 when the point started a new timeline
 * (its step is below the series' last step), 0 otherwise, negative on error. */
int tss_append(tss_store *st, int64_t series_id, int64_t step, int64_t t_ns, double value);

int tss_event_add(tss_store *st, int64_t run_id, int rank, int64_t step, int64_t t_ns,
                  const char *kind, const char *text);
int tss_gap_add(tss_store *st, int64_t run_id, int rank, uint64_t count,
                int64_t step_first, int64_t step_last, int64_t t_first, int64_t t_last);

/* Make everything above durable (one SQLite transaction). */
int tss_commit(tss_store *st);

/* ---- readers (any handle) --------------------------------------------- */

typedef struct tss_run {
    int64_t id;
    char *project;          /* "" when none */
    char *name;
    char *status;
    char *config;           /* JSON text or NULL */
    int world_size;
    int64_t created_ns, updated_ns, ended_ns;  /* ended_ns 0 while running */
    int64_t points;         /* stored points, all series and timelines */
    int64_t series;
    int64_t dropped;        /* samples publishers reported as dropped */
    int64_t resumes;        /* number of "resume" events */
} tss_run;
/* Newest first. */
int tss_list_runs(tss_store *st, tss_run **runs, size_t *n);
void tss_free_runs(tss_run *runs, size_t n);
/* Find by name, or "project/name" when a project is set. -ENOENT when none. */
int tss_find_run(tss_store *st, const char *name, int64_t *run_id);

typedef struct tss_series {
    int64_t id, run_id;
    int rank;
    char *name;
    int64_t count;          /* points, all timelines */
    int64_t step_first, step_last;
    int64_t t_first_ns, t_last_ns;
    double vmin, vmax;      /* over non-NaN values; NaN when there are none */
    int64_t n_nan, n_inf;
    int generations;
} tss_series;
int tss_list_series(tss_store *st, int64_t run_id, tss_series **series, size_t *n);
void tss_free_series(tss_series *series, size_t n);

typedef struct tss_point {
    int64_t step;
    int64_t t_ns;
    double value;           /* bit-exact as logged */
    int generation;
} tss_point;
#define TSS_ALL_TIMELINES 1
/* Points with step_from <= step <= step_to, ordered by step (then
 * generation, then arrival). */
int tss_read_points(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to,
                    int flags, tss_point **pts, size_t *n);

/* M4 reduction: [step_from, step_to] cut into nbuckets of equal step width;
 * each bucket has the count, min, max (non-NaN), first and last (by step)
 * of the newest timeline's points in it. Chunks wholly inside one bucket are
 * summarised from their stored summary without decoding. */
typedef struct tss_bucket {
    int64_t count;
    int64_t step_first, step_last;
    double min, max, first, last;
    int64_t n_nan, n_inf;
} tss_bucket;
int tss_read_buckets(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to,
                     size_t nbuckets, tss_bucket *out);

typedef struct tss_event {
    int64_t id, run_id;
    int rank;
    int64_t step, t_ns;
    char *kind, *text;
} tss_event;
int tss_list_events(tss_store *st, int64_t run_id, tss_event **events, size_t *n);
void tss_free_events(tss_event *events, size_t n);

typedef struct tss_gap {
    int64_t run_id;
    int rank;
    int64_t count, step_first, step_last, t_first_ns, t_last_ns;
} tss_gap;
int tss_list_gaps(tss_store *st, int64_t run_id, tss_gap **gaps, size_t *n);
void tss_free_gaps(tss_gap *gaps);

#endif
