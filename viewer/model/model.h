/* model.h - what the viewer plots, independent of how it is drawn: the runs
 * and series of one source (a store file, or a collector's query API with
 * its live feed), and exact per-pixel-column reductions of any series.
 *
 * CONTRACT between the data layer (viewer/model/, prefix tvm_) and the UI
 * (the .c files of viewer/). Signatures may grow; the meaning of what is here does not
 * change without both sides agreeing.
 *
 * Sources:
 *   - a path: the store file, opened read-only (also while a collector writes
 *     it); tvm_poll picks up what the writer committed since.
 *   - "tcp://..." or "ipc://...": a collector's query API. History comes
 *     from the API (or, when the `info` op names a store file this process
 *     can read, from that file directly); new points from the collector's
 *     LIVE socket, so a point shows within one frame of reaching the
 *     collector. The source reconnects on its own when the collector goes
 *     away and fills the gap from history when it is back.
 * I/O for a network source happens in a background thread: no tvm_ call made
 * by the UI thread blocks on the network. Store reads happen in the calling
 * thread, bounded by what one frame needs (chunk summaries are kept in
 * memory; decoded chunks in a bounded cache).
 *
 * Exactness: tvm_columns gives, for each pixel column, the count, min, max,
 * first and last of the points of the series whose x falls in that column
 * (M4). Drawing a vertical segment min..max in each column plus a segment
 * from each column's last to the next non-empty column's first draws exactly
 * the pixels that drawing every point as a polyline does, when both use the
 * column mapping below. tvm_points gives every point, for the reference
 * drawing (--all-points) and for hover.
 *
 * Column mapping (the same as tss_read_buckets in store/store.h): the x range
 * [x_from, x_to] (inclusive, integers) cut into ncols columns; a point at x is
 * in column floor((x - x_from) * ncols / (x_to - x_from + 1)), computed
 * without overflow. x is the step (TVM_X_STEP) or the wall time in ns
 * (TVM_X_TIME).
 *
 * Ownership: the source owns every tvm_run / tvm_series it returns; pointers
 * stay valid until the next tvm_poll or tvm_close. Errors: 0 or a negative
 * errno-style code, with a sentence from tvm_errmsg().
 */
#ifndef TRAINSCOPE_VIEWER_MODEL_H
#define TRAINSCOPE_VIEWER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"   /* tss_bucket, tss_point */

typedef struct tvm_source tvm_source;

typedef struct tvm_open_opts {
    const char *const *runs;   /* run names (or project/name) to load; NULL = all */
    size_t nruns;
} tvm_open_opts;

/* Open a store file or a collector API endpoint. A network source returns at
 * once and connects in the background (its state says so). On failure *out is
 * NULL and err holds a sentence naming the file or endpoint and the cause:
 * -ENOENT no such file, -EINVAL not a trainscope store / corrupt / another
 * protocol version, -EACCES, -EIO. */
int tvm_open(tvm_source **out, const char *where, const tvm_open_opts *opts, char *err, size_t errlen);
void tvm_close(tvm_source *src);
const char *tvm_errmsg(const tvm_source *src);

/* Connection state, for a line in the window. */
enum tvm_state {
    TVM_READY,          /* a file, or connected and up to date */
    TVM_CONNECTING,     /* first connection attempt pending */
    TVM_RECONNECTING,   /* the collector went away; showing what we have */
    TVM_FAILED,         /* unusable (wrong protocol version, corrupt store): see tvm_errmsg */
};
enum tvm_state tvm_state(const tvm_source *src, const char **message);

/* Called by the UI once per frame; never blocks on I/O. Brings in what
 * arrived since the last call (new runs, series, points, events). Returns a
 * mask of TVM_CHANGED_* (0: nothing new), or a negative error. */
#define TVM_CHANGED_RUNS   1u  /* runs or series were added or changed */
#define TVM_CHANGED_POINTS 2u  /* some series got points */
#define TVM_CHANGED_EVENTS 4u
int tvm_poll(tvm_source *src);

typedef struct tvm_run {
    int64_t id;
    const char *project, *name;   /* project "" when none */
    const char *display;          /* "project/name" or "name" */
    const char *status;           /* running, finished, failed, ... */
    int world_size;
    int64_t created_ns, updated_ns, ended_ns;
    int64_t resumes, dropped;
} tvm_run;

typedef struct tvm_series {
    size_t run;                   /* index into the runs */
    int64_t id;                   /* store series id */
    int rank;
    const char *name;             /* metric name, e.g. "train/loss" */
    int64_t count;                /* points, newest timeline and older ones */
    int64_t step_first, step_last;
    int64_t t_first_ns, t_last_ns;
    double vmin, vmax;            /* over finite values; NaN when none */
    int64_t n_nan, n_inf;
    int generations;
} tvm_series;

size_t tvm_run_count(const tvm_source *src);
const tvm_run *tvm_run_at(const tvm_source *src, size_t i);
size_t tvm_series_count(const tvm_source *src);
const tvm_series *tvm_series_at(const tvm_source *src, size_t i);

#define TVM_X_STEP 0
#define TVM_X_TIME 1
#define TVM_ALL_TIMELINES 0x100   /* include superseded points of resumed runs */

/* Exact M4 over [x_from, x_to] into ncols columns (see the mapping above).
 * flags: TVM_X_STEP or TVM_X_TIME, | TVM_ALL_TIMELINES. out has ncols
 * entries; an empty column has count 0 and NaN values. Must be fast enough to
 * call for every visible series on every frame (see docs/architecture.md). */
int tvm_columns(tvm_source *src, size_t series, int64_t x_from, int64_t x_to, size_t ncols,
                int flags, tss_bucket *out);

/* THE FAST PATH (what the UI does to get 60 fps). tvm_columns keeps, per
 * series, the columns of its last two grids and recomputes only columns not
 * computed before. A grid is reused when (x_to - x_from + 1) is a whole
 * multiple w of ncols and x_from moves by multiples of w (panning by whole
 * columns). So: pick the range with tvm_align_range (w a power of two,
 * x_from a multiple of w), pan in steps of w, and zoom by factors of two;
 * then a pan frame costs only the newly exposed columns. Any other range is
 * exact too, computed afresh (from chunk summaries, cached decoded chunks
 * and their 64-point sub-summaries). A series of a store is served from its
 * chunk summaries in memory plus a bounded cache of decoded chunks.
 *
 * tvm_align_range: the smallest range [*a_from, *a_to] that holds
 * [x_from, x_to], has ncols * w steps with w a power of two, and starts at a
 * multiple of w. -EINVAL bad arguments, -ERANGE beyond int64. */
int tvm_align_range(int64_t x_from, int64_t x_to, size_t ncols, int64_t *a_from, int64_t *a_to);

/* Every point with x_from <= x <= x_to, in the order tvm_columns folds them:
 * by step (with TVM_ALL_TIMELINES: step, then generation, then arrival);
 * with TVM_X_TIME in the order they were logged, which is time order while
 * the trainer's clock does not go back (a store chunk's time range is taken
 * from its first and last point). *pts is malloc'd and
 * freed by the caller with free(). */
int tvm_points(tvm_source *src, size_t series, int64_t x_from, int64_t x_to, int flags,
               tss_point **pts, size_t *n);

typedef struct tvm_event {
    size_t run;
    int rank;
    int64_t step, t_ns;
    const char *kind, *text;      /* kind "resume" marks where a timeline began */
} tvm_event;
size_t tvm_event_count(const tvm_source *src);
const tvm_event *tvm_event_at(const tvm_source *src, size_t i);

/* Steps a publisher reported dropped (its buffer was full): both drawings
 * break the line across [step_first, step_last] of the run and rank. */
typedef struct tvm_gap {
    size_t run;
    int rank;
    int64_t count, step_first, step_last, t_first_ns, t_last_ns;
} tvm_gap;
size_t tvm_gap_count(const tvm_source *src);
const tvm_gap *tvm_gap_at(const tvm_source *src, size_t i);

/* What the analysis detectors found (store/store.h, docs/report-schema.md),
 * read from the store file (a file source, or a network source that reads
 * its collector's store directly), or else over the query API's findings op
 * (remote.c; refreshed about once a second while following). Ordered by
 * step_first, then run. Strings owned by the source. */
typedef struct tvm_finding {
    size_t run;
    int rank;                     /* -1 for run-level findings */
    ptrdiff_t series;             /* index into the series, -1 for run-level */
    const char *kind, *severity;  /* "spike", "nan", ...; "info", "warning", "critical" */
    const char *message;          /* the detail's one sentence, "" when none */
    int64_t step_first, step_last, t_ns;
} tvm_finding;
size_t tvm_finding_count(const tvm_source *src);
const tvm_finding *tvm_finding_at(const tvm_source *src, size_t i);

/* Replay: hide every point, event and gap with a wall time above t_ns
 * (INT64_MAX: show everything, the default). tvm_columns, tvm_points and the
 * series' counts and ranges then describe the run as it was at t_ns. */
void tvm_set_time_limit(tvm_source *src, int64_t t_ns);

#endif
