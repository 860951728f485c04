/* model_int.h - internals of the viewer's data model (viewer/model/), shared
 * by its core (model.c, columns.c), the store-file backend (file.c) and the
 * network backend (net*.c, remote*.c). Not part of the contract: the UI sees
 * only model.h.
 *
 * HOW THE DATA IS HELD. A source owns arrays of runs, series, events and
 * gaps. A series' points are NOT held: the series holds the summaries of its
 * chunks (tvm_chunk, about 100 bytes per <= 4096 points), in arrival order,
 * which is generation (timeline) order, and within one generation step order
 * (the store's chunk order, docs/store.md). A chunk's points come from one
 * of two places:
 *   - a store chunk (id > 0): decoded on demand from the store file the
 *     source has open (src->st) into a bounded LRU cache (cache.c);
 *   - memory (id == 0, mem != NULL): points that arrived from a collector's
 *     API or LIVE feed, held by the chunk itself (a tvm_block that is never
 *     evicted).
 * tvm_columns, tvm_points and the timeline/replay logic work on chunks only,
 * so one implementation serves both kinds of source: a backend's job is to
 * keep the chunk arrays (and runs, events, gaps) up to date inside tvm_poll.
 *
 * THREADS. Everything here is called from the UI thread (the one that calls
 * tvm_poll). A network backend's I/O thread must hand what it received to
 * its poll function (a queue of its own) and call these functions only from
 * there.
 *
 * FOR A NETWORK BACKEND (H5). tvm_open() calls tvm__net_open() for
 * "tcp://..." and "ipc://..." (defined weak in model.c until net.c defines
 * it). It sets src->be (poll and close hooks) and src->be_state, returns at
 * once, and from its poll hook:
 *   (a) tvm__run_upsert / tvm__series_upsert: runs and series from the
 *       API's JSON (keyed by their store ids, so a run or series seen again
 *       is updated in place; indexes stay valid);
 *   (b) tvm__series_append: points that arrived LIVE (a step below the
 *       series' last one starts a new generation, as the store does);
 *   (c) history: tvm__series_set_history (raw points from the API, in the
 *       store's order, i.e. tss_read_points(..., TSS_ALL_TIMELINES) order
 *       by generation then step), or tvm__attach_store (a store file the
 *       process can read, e.g. the path in the API's `info` reply: then
 *       file.c serves history of every series whose id it knows and
 *       tvm__file_poll keeps it current);
 *   (d) tvm__set_state (TVM_CONNECTING / RECONNECTING / READY / FAILED and
 *       the sentence for the window), tvm__event_add, tvm__gap_add.
 * Each call ORs the right TVM_CHANGED_* bit into src->changed; tvm_poll
 * returns (and clears) that mask after the backend's poll hook ran.
 *
 * Errors: 0 or a negative errno; the sentence in src->err (tvm__fail).
 */
#ifndef TRAINSCOPE_VIEWER_MODEL_INT_H
#define TRAINSCOPE_VIEWER_MODEL_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

/* ---- decoded points ------------------------------------------------------ */

#define TVM_BLOCK_POINTS 4096  /* = TSC_MAX_POINTS: one store chunk */
#define TVM_SUB_SHIFT 6        /* sub-summaries per 64 points */
#define TVM_SUB_POINTS (1 << TVM_SUB_SHIFT)
#define TVM_SUBS (TVM_BLOCK_POINTS / TVM_SUB_POINTS)

/* The points of one chunk, decoded (cache.c) or held in memory (network).
 * sub[k] summarises points [k*64, k*64+64) with M4 over values in point
 * order, so a column boundary that cuts the chunk costs a few sub-summary
 * merges plus at most 2 x 63 single points, not the whole chunk. */
typedef struct tvm_block {
    uint32_t n;                         /* points held */
    int64_t step[TVM_BLOCK_POINTS];
    int64_t t_ns[TVM_BLOCK_POINTS];
    double value[TVM_BLOCK_POINTS];
    tss_bucket sub[TVM_SUBS];           /* sub-summaries of complete and partial groups */
} tvm_block;

/* Sub-summaries of a store chunk alone, cached for many more chunks than
 * the points (cache.c): either the store's own groups (format 2: points of
 * equal step >> g, read without decoding, tss_chunks_groups) or the 64-point
 * groups of a decode. Both are consecutive runs of the chunk's points in
 * order, which is all tvm_fold_subs needs. */
typedef struct tvm_subs {
    uint32_t n;                         /* points of the chunk they summarise */
    uint32_t nsub;                      /* groups in sub[] */
    uint8_t stored;                     /* the store's step-aligned groups */
    tss_bucket sub[TVM_SUBS];
} tvm_subs;

/* Recompute sub-summaries from point `from` on (after appending points). */
void tvm__block_resum(tvm_block *b, uint32_t from);

/* ---- chunks --------------------------------------------------------------- */

/* One chunk's summary, in memory for every chunk of every loaded series. */
typedef struct tvm_chunk {
    int64_t id;                 /* store chunk rowid; 0 for a chunk held in memory */
    tvm_block *mem;             /* memory chunk: its points (owned); NULL for a store chunk */
    int32_t gen;                /* generation (timeline), from 0 */
    uint32_t n;                 /* points (a store chunk's row as of the last poll) */
    int64_t step_first, step_last;
    int64_t t_first, t_last;    /* ns */
    double min, max, first, last;
    uint32_t n_nan, n_inf;
    uint8_t exact;              /* first/last have the bits of the points (a
                                   store summary loses NaN payloads; set after a
                                   decode) */
    uint8_t time_sorted;        /* times never go back inside: 1 unless a decode showed otherwise */
    uint8_t fvalid;             /* fmin/fmax known (no Inf, or decoded) */
    double fmin, fmax;          /* over finite values (NaN when none), for tvm_series */
} tvm_chunk;

/* ---- series --------------------------------------------------------------- */

/* One view of a series: the chunks in arrival order with how much of each
 * is visible, rebuilt (valid = 0) when chunks, the time limit or the
 * timelines change. */
typedef struct tvm_vchunk {
    uint32_t chunk;             /* index into tvm_ser.chunks */
    uint8_t partial;            /* some points hidden (resume cut, time limit): decode and filter */
    int64_t cut;                /* only steps < cut are visible (INT64_MAX: no cut) */
    int64_t s_lo, s_hi;         /* visible steps (partial: s_hi is an upper bound) */
    int64_t t_lo, t_hi;         /* visible times in ns (partial: t_hi is an upper bound) */
} tvm_vchunk;

typedef struct tvm_view {
    tvm_vchunk *v;
    size_t n, cap;
    int valid;
    int t_sorted;               /* times never go back along the view (else TVM_X_TIME takes the slow path) */
    int single_gen;             /* every visible chunk is of one generation */
} tvm_view;

/* Columns cached for panning: global column g covers x in
 * [g*w + phase, (g+1)*w + phase) (see tvm_align_range). */
typedef struct tvm_colcache {
    int flags;                  /* tvm_columns flags it was built for; -1 none */
    int64_t w, phase;
    int64_t g0;                 /* global index of the first cached column */
    size_t n, cap;              /* cached columns g0 .. g0+n-1, n <= cap */
    tss_bucket *col;            /* ring: column g at col[g mod cap] */
} tvm_colcache;

#define TVM_NVIEWS 2            /* [0] newest timeline, [1] all timelines (gen, arrival order) */

typedef struct tvm_ser {
    tvm_series pub;             /* what tvm_series_at returns (name owned here) */
    tvm_chunk *chunks;          /* arrival order: generation, then step */
    size_t nchunks, cap;
    int64_t max_store_id;       /* highest store chunk id held (file polling) */
    tvm_view view[TVM_NVIEWS];
    tvm_colcache cc[2];         /* two cached column grids (e.g. two panel widths) */
    uint8_t cc_next;            /* which cc[] to replace next */
    uint8_t stats_valid;        /* pub's count and ranges are current */
} tvm_ser;

/* ---- source ----------------------------------------------------------------- */

typedef struct tvm_backend {
    const char *name;                       /* "file", "net" */
    int (*poll)(tvm_source *src);           /* from tvm_poll; <0 error; sets src->changed */
    void (*close)(tvm_source *src);         /* free be_state (not the arrays) */
} tvm_backend;

typedef struct tvm_cache tvm_cache;         /* decoded store chunks, LRU (cache.c) */

struct tvm_source {
    char *where;                /* path or endpoint as opened */
    const tvm_backend *be;
    void *be_state;
    tss_store *st;              /* store file read for history, or NULL */
    struct tss_chunks *stq;     /* chunk queries on st (store_chunks.c) */
    tvm_cache *cache;           /* tvm_block per decoded store chunk */
    tvm_cache *subs;            /* tvm_subs per store chunk, kept longer */
    tvm_subs *subs_tmp;         /* tvm__chunk_subs(stored_only), allocated on first use */

    tvm_run *runs;              /* strings owned (malloc'd) */
    size_t nruns, runs_cap;
    tvm_ser *ser;
    size_t nser, ser_cap;
    tvm_event *events;          /* ordered by time; strings owned */
    size_t nevents, events_cap;
    tvm_gap *gaps;
    size_t ngaps, gaps_cap;
    tvm_finding *findings;      /* file.c reloads them when the store changed; strings owned */
    size_t nfindings;
    size_t findings_nruns, findings_nser;   /* runs and series when they were read */

    int64_t *run_filter;        /* store run ids to load (file), NULL = all */
    size_t nrun_filter;
    int64_t max_chunk, max_series, max_event, max_gap; /* highest store ids held (file polling) */
    size_t file_nser;           /* series [0, file_nser) had their rows listed (file.c) */
    int import_meta;            /* the file gives runs, series, events and gaps too */
    int64_t t_limit;            /* tvm_set_time_limit; INT64_MAX = none */
    unsigned changed;           /* TVM_CHANGED_* since the last tvm_poll */
    enum tvm_state state;
    char state_msg[256];
    char err[512];

    /* scratch of tvm_columns, grown to the widest request (no per-frame allocation) */
    uint64_t *lo;               /* column start offsets from x_from */
    int64_t lo_from, lo_to;     /* the map lo[] holds (lo_n 0: none) */
    size_t lo_n;
    tss_bucket *tmp;
    size_t scratch_cap;
};

/* ---- calls for the backends ------------------------------------------------- */

int tvm__fail(tvm_source *src, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void tvm__set_state(tvm_source *src, enum tvm_state state, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Add the run with r->id or update it in place (strings copied; NULL strings
 * keep the stored ones). *idx (may be NULL) gets its index. Runs not in the
 * source's --run filter are ignored: returns 1 and *idx = SIZE_MAX. */
int tvm__run_upsert(tvm_source *src, const tvm_run *r, size_t *idx);
/* Index of the run with store id run_id, or SIZE_MAX. */
size_t tvm__run_find(const tvm_source *src, int64_t run_id);

/* Add series `id` of run index `run` or find it; the name is copied. The
 * count and ranges in tvm_series are derived from the chunks (never set them). */
int tvm__series_upsert(tvm_source *src, size_t run, int64_t id, int rank, const char *name,
                       size_t *idx);
size_t tvm__series_find(const tvm_source *src, int64_t id);

/* LIVE points, in arrival order, newer than what the series holds: appended
 * to its memory tail. A point whose step is below the series' last step
 * starts a new generation (like tss_append). */
int tvm__series_append(tvm_source *src, size_t series, const tss_point *pts, size_t n);

/* History from the API: every point of the series, ordered by generation,
 * then step (their .generation is used). Replaces all chunks of the series;
 * the memory tail's points that come after the history's last point in
 * (generation, step) order are kept after it, the others are dropped as
 * already contained in the history. */
int tvm__series_set_history(tvm_source *src, size_t series, const tss_point *pts, size_t n);

/* History from a store file this process can read: opens it (read-only),
 * and from then on every series whose id the store has gets its chunks from
 * it; tvm__file_poll (called by tvm_poll for any source with src->st) keeps
 * them current and drops memory-tail points the store now holds. Runs,
 * events and gaps of the file are NOT imported here (the API gives them). */
int tvm__attach_store(tvm_source *src, const char *path);

int tvm__event_add(tvm_source *src, size_t run, int rank, int64_t step, int64_t t_ns,
                   const char *kind, const char *text);
int tvm__gap_add(tvm_source *src, const tvm_gap *g);
/* Free the findings (file.c). */
void tvm__findings_clear(tvm_source *src);

/* The network backend's constructor (net.c): set src->be, src->be_state,
 * the state TVM_CONNECTING, start the I/O thread; return at once. */
int tvm__net_open(tvm_source *src, const char *where, const tvm_open_opts *opts);

/* ---- between model.c, file.c, cache.c, columns.c ----------------------------- */

/* Open the store at path read-only. import_meta: also its runs (those of
 * opts->runs when given), series, events and gaps (a file source); else
 * only chunks of series the source already has (tvm__attach_store). */
int tvm__file_open(tvm_source *src, const char *path, const tvm_open_opts *opts, int import_meta);
int tvm__file_poll(tvm_source *src);
void tvm__file_close(tvm_source *src);
/* Points from step from_step and time from_t_ns on changed (appended): drop
 * the cached columns and views that cover them (INT64_MIN: everything). */
void tvm__series_changed(tvm_source *src, size_t series, int64_t from_step, int64_t from_t_ns);
/* Count, ranges and extrema of tvm_series from the chunks (and time limit). */
int tvm__series_recount(tvm_source *src, size_t series);
/* Append one chunk summary (store row or memory block) in arrival order. */
int tvm__series_add_chunk(tvm_source *src, size_t series, const tvm_chunk *c);

/* LRU caches of fixed-size payloads keyed by store chunk id. put returns
 * the slot for id (evicting the least recently used), NULL out of memory. */
tvm_cache *tvm__cache_new(size_t max, size_t payload_size);
void tvm__cache_free(tvm_cache *c);
void *tvm__cache_get(tvm_cache *c, int64_t id);
void *tvm__cache_put(tvm_cache *c, int64_t id);
void tvm__cache_forget(tvm_cache *c, int64_t id);
/* The points of chunk ci of series s: its memory block, or the store chunk
 * decoded (cached). Sets chunk->exact and time_sorted. NULL on error (src->err). */
const tvm_block *tvm__chunk_points(tvm_source *src, tvm_ser *s, size_t ci);
/* Sub-summaries of store chunk ch: cached (either kind), else its stored
 * groups (format-2 stores; they make ch's first and last exact), else NULL
 * (a version-1 store's chunk not decoded yet, a memory chunk, a read error).
 * With stored_only, the stored groups even when a decode's are cached (in a
 * scratch valid until the next call): a decode's 64-point groups are finer
 * but fit only regular steps. */
const tvm_subs *tvm__chunk_subs(tvm_source *src, tvm_chunk *ch, int stored_only);

#endif
