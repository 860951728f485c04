/* store.h - the trainscope store: one SQLite file (WAL mode) holding runs,
 * streams, series, compressed chunks with summaries, events and drop gaps.
 *
 * One writer (the collector) at a time, enforced with an exclusive flock on
 * the database file taken before SQLite touches it, so a second writer fails
 * with -EBUSY and changes nothing. Any number of readers (CLI, viewer, the
 * collector's own query API) may open the file at any time, also while it is
 * being written. The schema is documented in docs/store.md.
 *
 * A handle is used by one thread at a time. Reads on a reader handle see
 * what was committed (one WAL snapshot per call); reads on the writer handle
 * also see what it appended and did not commit yet.
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
 * Time: the times of points are stored as integers in units of time_unit_ns
 * (default 1 ms, fixed when the store is created), rounded down (floor, also
 * for negative times); readers return nanoseconds (the stored value times the
 * unit, saturating at the int64 limits). The times of runs, streams, events
 * and gaps are stored in nanoseconds as given.
 *
 * Errors: 0 or a negative errno-style code; tss_errmsg() holds a sentence for
 * the last error of that store handle. Returned arrays are owned by the caller
 * and freed with the matching tss_free_* function (NULL-safe).
 */
#ifndef TRAINSCOPE_STORE_H
#define TRAINSCOPE_STORE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tss_store tss_store;

typedef struct tss_open_opts {
    int writer;             /* 1: the collector (creates the file, takes the lock) */
    int64_t time_unit_ns;   /* creation only; 0 means 1000000 (1 ms) */
    int sync_full;          /* writer: 1 = PRAGMA synchronous=FULL (survives power loss) */
} tss_open_opts;

/* Open or (writer only) create a store. opts NULL means a reader. A writer
 * turns a missing file, an empty file, or a SQLite database without tables
 * into a new store (an empty file is what a collector that died before its
 * first commit leaves). A reader never creates anything; when the directory
 * is read-only and no writer is active it reads the file as an immutable
 * snapshot. On failure *out is NULL and err (may be NULL) holds a sentence
 * naming the file and the cause: -EBUSY another collector writes it (also
 * one in this process), -ENOENT missing (readers) or missing directory,
 * -EINVAL not a trainscope store (not SQLite, another program's database,
 * an empty file for a reader, another format version) or corrupt, -EACCES
 * no permission, -EIO anything else. */
int tss_open(tss_store **out, const char *path, const tss_open_opts *opts, char *err, size_t errlen);
/* Writer: commits what is pending first, and returns that commit's error
 * (the handle is closed either way). NULL-safe. */
int tss_close(tss_store *st);
const char *tss_errmsg(const tss_store *st);
int64_t tss_time_unit_ns(const tss_store *st);

/* ---- writer ---------------------------------------------------------- */

/* Find or create the run (project may be NULL or ""); marks it running and
 * keeps config_json (a JSON text) of the newest HELLO; NULL keeps the one
 * stored. Writer calls return -EPERM on a reader handle. */
int tss_run_open(tss_store *st, const char *project, const char *name, const char *config_json,
                 int world_size, int64_t t_ns, int64_t *run_id);
/* status: "running", "finished", "failed", or what the publisher said. Any
 * status but "running" sets the run's end time to t_ns. -ENOENT: no run. */
int tss_run_set_status(tss_store *st, int64_t run_id, const char *status, int64_t t_ns);

typedef struct tss_stream_info {
    int64_t run_id;
    int rank;
    uint64_t last_seq;      /* highest seq whose effects are committed */
    int ended;              /* BYE received */
} tss_stream_info;
/* Record a new stream (from its HELLO). Recording it again updates its run,
 * rank and HELLO and keeps its last_seq. */
int tss_stream_open(tss_store *st, uint64_t stream, int64_t run_id, int rank,
                    const char *hello_json, int64_t t_ns);
/* 0 and *info filled, or -ENOENT. Any handle; on the writer handle last_seq
 * includes tss_stream_set_seq calls not committed yet. */
int tss_stream_find(tss_store *st, uint64_t stream, tss_stream_info *info);
/* Remember that seq is applied; written with the next commit. -ENOENT for a
 * stream never recorded. */
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
 * (its step is below the series' last step, also the last step stored before
 * this handle was opened), 0 otherwise, negative on error: -ENOENT no such
 * series, -ERANGE a series id above 2^24 (the writer's state is an array
 * indexed by id), -EPERM reader handle, or a failed chunk write. On an error the point
 * was not taken. After a write error that made SQLite roll back the open
 * transaction every writer call fails: close and reopen the store. */
int tss_append(tss_store *st, int64_t series_id, int64_t step, int64_t t_ns, double value);

int tss_event_add(tss_store *st, int64_t run_id, int rank, int64_t step, int64_t t_ns,
                  const char *kind, const char *text);
int tss_gap_add(tss_store *st, int64_t run_id, int rank, uint64_t count,
                int64_t step_first, int64_t step_last, int64_t t_first, int64_t t_last);

/* Make everything above durable (one SQLite transaction): the open chunks,
 * the stream sequence numbers, the runs' updated_ns. 0 when nothing was pending. */
int tss_commit(tss_store *st);

/* ---- readers (any handle) --------------------------------------------- */

typedef struct tss_run {
    int64_t id;
    char *project;          /* "" when none */
    char *name;
    char *status;
    char *config;           /* JSON text or NULL */
    int world_size;
    int64_t created_ns;     /* first HELLO */
    int64_t updated_ns;     /* newest HELLO, status change or point time committed */
    int64_t ended_ns;       /* 0 while running */
    int64_t points;         /* stored points, all series and timelines */
    int64_t series;
    int64_t dropped;        /* samples publishers reported as dropped */
    int64_t resumes;        /* number of "resume" events */
} tss_run;
/* Newest first. */
int tss_list_runs(tss_store *st, tss_run **runs, size_t *n);
void tss_free_runs(tss_run *runs, size_t n);
/* Find by name, or "project/name" when a project is set. -ENOENT when none,
 * -EEXIST when a bare name is a run in several projects (the message lists
 * them). A run name may itself contain '/'. */
int tss_find_run(tss_store *st, const char *name, int64_t *run_id);

typedef struct tss_series {
    int64_t id, run_id;
    int rank;
    char *name;
    int64_t count;          /* points, all timelines */
    int64_t step_first, step_last;  /* lowest and highest; 0 without points */
    int64_t t_first_ns, t_last_ns;  /* earliest and latest chunk times */
    double vmin, vmax;      /* over non-NaN values; NaN when there are none */
    int64_t n_nan, n_inf;
    int generations;        /* timelines; 0 without points */
} tss_series;
/* Ordered by rank, then name. */
int tss_list_series(tss_store *st, int64_t run_id, tss_series **series, size_t *n);
void tss_free_series(tss_series *series, size_t n);

typedef struct tss_point {
    int64_t step;
    int64_t t_ns;
    double value;           /* bit-exact as logged */
    int generation;
} tss_point;
#define TSS_ALL_TIMELINES 1
/* Points with step_from <= step <= step_to (none when step_from > step_to),
 * ordered by step (then generation, then arrival). A chunk whose blob does
 * not decode, or disagrees with its row, fails the read with -EINVAL and a
 * message naming the series and the chunk id. */
int tss_read_points(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to,
                    int flags, tss_point **pts, size_t *n);

/* M4 reduction: [step_from, step_to] cut into nbuckets of equal step width
 * (step s is in bucket floor((s - step_from) * nbuckets / (step_to -
 * step_from + 1))); each bucket has the count, min, max (non-NaN; of equal
 * values the earliest, so -0.0 stays -0.0), first and last (by step, then
 * arrival) of the newest timeline's points in it. An empty bucket has count
 * 0, steps 0 and NaN values. Chunks wholly visible and inside one bucket are
 * summarised from their stored summary without decoding, chunks cut by
 * bucket edges from their groups (format 2, see tss_chunks_groups), decoding
 * only up to the last group an edge cuts (none for edges at multiples of a
 * power of two); the result is
 * bit-for-bit that of reducing tss_read_points. out holds nbuckets. -EINVAL
 * when nbuckets is 0, step_from > step_to, or a chunk is corrupt. */
typedef struct tss_bucket {
    int64_t count;
    int64_t step_first, step_last;
    double min, max, first, last;
    int64_t n_nan, n_inf;
} tss_bucket;
int tss_read_buckets(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to,
                     size_t nbuckets, tss_bucket *out);

/* The M4 folding rules, public so that every reducer of points (the store's
 * readers, the viewer's columns, tests) agrees with the chunk summaries bit
 * for bit. */
/* The empty M4 bucket: no points, NaN extrema, first and last. */
static inline void tss_bucket_init(tss_bucket *b)
{
    *b = (tss_bucket){.min = NAN, .max = NAN, .first = NAN, .last = NAN};
}
/* Fold one point into a bucket (or a chunk summary). The order of folding is
 * the order of the points, and ties keep the earlier value (0.0 vs -0.0), so
 * folding summaries of consecutive runs gives what folding their points does. */
static inline void tss_bucket_add(tss_bucket *b, int64_t step, double v)
{
    if (b->count == 0) {
        b->step_first = step;
        b->first = v;
    }
    b->count++;
    b->step_last = step;
    b->last = v;
    if (isnan(v)) {
        b->n_nan++;
        return;
    }
    if (isinf(v))
        b->n_inf++;
    if (isnan(b->min) || v < b->min)
        b->min = v;
    if (isnan(b->max) || v > b->max)
        b->max = v;
}
/* Fold a summary of later points into b (the same result as folding them). */
static inline void tss_bucket_merge(tss_bucket *b, const tss_bucket *c)
{
    if (c->count == 0)
        return;
    if (b->count == 0) {
        b->step_first = c->step_first;
        b->first = c->first;
    }
    b->count += c->count;
    b->step_last = c->step_last;
    b->last = c->last;
    b->n_nan += c->n_nan;
    b->n_inf += c->n_inf;
    if (!isnan(c->min) && (isnan(b->min) || c->min < b->min))
        b->min = c->min;
    if (!isnan(c->max) && (isnan(b->max) || c->max > b->max))
        b->max = c->max;
}

typedef struct tss_event {
    int64_t id, run_id;
    int rank;
    int64_t step, t_ns;
    char *kind, *text;
} tss_event;
/* Ordered by time, then arrival. The collector records a "resume" event
 * where a series started a new timeline (tss_run.resumes counts them). */
int tss_list_events(tss_store *st, int64_t run_id, tss_event **events, size_t *n);
void tss_free_events(tss_event *events, size_t n);

typedef struct tss_gap {
    int64_t run_id;
    int rank;
    int64_t count, step_first, step_last, t_first_ns, t_last_ns;
} tss_gap;
/* Ordered by t_first_ns, then arrival. */
int tss_list_gaps(tss_store *st, int64_t run_id, tss_gap **gaps, size_t *n);
void tss_free_gaps(tss_gap *gaps);

/* ==== chunk-level readers (store_chunks.c) ==============================
 * For the viewer's data model, which keeps every chunk summary of the
 * series it shows in memory and decodes chunks only where a pixel column
 * cuts one. A tss_chunks holds its own prepared statements on a reader
 * handle; close it before the store. Errors go to tss_errmsg() of the store.
 * Each call reads one committed snapshot of its own: a chunk row may have
 * grown (the writer rewrites its open chunk in place, only ever appending)
 * between two calls, never shrunk. */
typedef struct tss_chunks tss_chunks;

typedef struct tss_chunk_row {
    int64_t id, series_id;
    int gen;
    int64_t n;
    int64_t step_first, step_last;
    int64_t t_first_ns, t_last_ns;  /* nanoseconds */
    double vmin, vmax, vfirst, vlast; /* NaN when NULL in the row */
    int64_t n_nan, n_inf;
} tss_chunk_row;

typedef struct tss_series_row {
    int64_t id, run_id;
    int rank;
    const char *name;       /* valid during the callback only */
} tss_series_row;

int tss_chunks_open(tss_store *st, tss_chunks **out);
void tss_chunks_close(tss_chunks *q);   /* NULL-safe */
/* 1 when another connection committed since the previous call (the first
 * call returns 1), 0 when not, negative on error. PRAGMA data_version:
 * costs no page read, so it can run every frame. */
int tss_chunks_changed(tss_chunks *q);
/* Highest chunk id, series id, event id, gap id (0 when none). */
int tss_chunks_max_ids(tss_chunks *q, int64_t *chunk, int64_t *series, int64_t *event, int64_t *gap);
/* Chunk rows with id > after_id, in id order (= arrival order per series),
 * of series sid, or of every series when sid is 0. fn returns <0 to stop. */
typedef int (*tss_chunk_row_fn)(void *ctx, const tss_chunk_row *row);
int tss_chunks_list(tss_chunks *q, int64_t sid, int64_t after_id, tss_chunk_row_fn fn, void *ctx);
/* One row by id: 0, or -ENOENT. */
int tss_chunks_row(tss_chunks *q, int64_t id, tss_chunk_row *row);
/* Every run, in id order, without the counts of tss_list_runs (which read
 * the chunks index): points, series, dropped and resumes are 0, config
 * NULL; strings valid during the callback only. */
typedef int (*tss_run_fn)(void *ctx, const tss_run *run);
int tss_chunks_runs(tss_chunks *q, tss_run_fn fn, void *ctx);
/* Series with id > after_id, in id order. */
typedef int (*tss_series_row_fn)(void *ctx, const tss_series_row *row);
int tss_chunks_series(tss_chunks *q, int64_t after_id, tss_series_row_fn fn, void *ctx);
/* Events and gaps with id > after_id, of every run, in id order (the
 * strings are valid during the callback only; e->id is set). */
typedef int (*tss_event_fn)(void *ctx, const tss_event *e);
int tss_chunks_events(tss_chunks *q, int64_t after_id, tss_event_fn fn, void *ctx);
typedef int (*tss_gap_fn)(void *ctx, int64_t id, const tss_gap *g);
int tss_chunks_gaps(tss_chunks *q, int64_t after_id, tss_gap_fn fn, void *ctx);
/* Decode chunk id (times in ns) into arrays of TSC_MAX_POINTS (4096)
 * entries. The blob must hold at least `n` points (the count the caller's
 * row had) with the first step step_first; it may hold more (the row grew
 * since). Returns the count decoded, or -EINVAL with a message naming the
 * chunk when it is corrupt or was removed. */
int64_t tss_chunks_decode(tss_chunks *q, int64_t id, int64_t n, int64_t step_first, int64_t *steps,
                          int64_t *t_ns, double *values);
/* The group summaries of chunk id (format version 2, docs/store.md
 * "groups"): M4 summaries (tss_bucket) of its points grouped by step >> g
 * for a g chosen per chunk, in step order; merged in order they give the
 * chunk's summary, bit for bit, so a range whose edges fall between groups
 * is reduced from them without a decode. n, step_first and step_last are
 * those of the caller's row. Returns the group count (at most max;
 * TSS_CHUNK_GROUPS_MAX always suffices), or 0 when there are none to use: a
 * version-1 store, a row that grew since the caller read it, or a groups
 * blob that does not fit the row (the caller decodes instead, which reports
 * a corrupt chunk). Negative on a failed read. */
#define TSS_CHUNK_GROUPS_MAX 33
int tss_chunks_groups(tss_chunks *q, int64_t id, int64_t n, int64_t step_first, int64_t step_last,
                      tss_bucket *out, size_t max);
/* ==== end of chunk-level readers ======================================== */

/* ==== findings (store_findings.c) ======================================
 * What the analysis detectors (analysis/) found in a run, stored with it.
 * The table is created by the first tss_finding_add; a store without it
 * reads as having no findings. */
typedef struct tss_finding {
    int64_t id, run_id;
    int64_t series_id;      /* 0 for run-level findings (stalled, straggler of a rank) */
    int rank;               /* -1 for run-level findings */
    char *series;           /* metric name, "" for run-level findings */
    char *kind, *severity;  /* names from analysis/tda_finding.h */
    int64_t step_first, step_last, t_ns;
    char *source;           /* "online" (the collector) or "offline" */
    char *detail;           /* the finding as JSON (docs/report-schema.md) */
} tss_finding;
/* Writer: record f (its id is ignored) in the open transaction: durable with
 * the next tss_commit. -EPERM on a reader handle, -EINVAL for a missing field. */
int tss_finding_add(tss_store *st, const tss_finding *f);
/* Findings of a run ordered by step_first, then arrival. */
int tss_list_findings(tss_store *st, int64_t run_id, tss_finding **out, size_t *n);
void tss_free_findings(tss_finding *f, size_t n);
/* A series' run, rank, metric name and the run's display name
 * (project/name or name). -ENOENT when there is no such series. */
typedef struct tss_series_name {
    int64_t run_id;
    int rank;
    char name[256];
    char run[512];
} tss_series_name;
int tss_series_get(tss_store *st, int64_t series_id, tss_series_name *out);
/* ==== end of findings =================================================== */

#endif
