/* store_int.h - internals shared by store.c (open, schema, writer) and
 * store_read.c (readers). Not part of the contract: see store.h for that and
 * docs/store.md for the schema.
 *
 * Naming: tss__ for the functions these two files share, tss_ for statics.
 */
#ifndef TRAINSCOPE_STORE_INT_H
#define TRAINSCOPE_STORE_INT_H

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "store.h"

#define TSS_FORMAT_VERSION 2          /* meta.format_version of new stores (2: with groups) */
#define TSS_FORMAT_MIN 1              /* oldest version this code reads (1: no chunks.groups column) */
#define TSS_APPLICATION_ID 0x54534350 /* PRAGMA application_id: "TSCP", same as the wire magic */

#if defined(__GNUC__)
#define TSS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TSS_UNLIKELY(x) (x)
#endif

/* Every SQL statement the store runs more than once, prepared on first use
 * and kept for the life of the handle (no SQL text is built on any path that
 * runs per point or per chunk). The texts are in store.c. */
enum tss_q {
    TSS_Q_BEGIN,
    TSS_Q_COMMIT,
    TSS_Q_RUN_UPSERT,
    TSS_Q_RUN_ID,
    TSS_Q_RUN_STATUS,
    TSS_Q_RUN_TOUCH,
    TSS_Q_STREAM_UPSERT,
    TSS_Q_STREAM_FIND,
    TSS_Q_STREAM_SEQ,
    TSS_Q_STREAM_END,
    TSS_Q_SERIES_FIND,
    TSS_Q_SERIES_INSERT,
    TSS_Q_SERIES_RUN,
    TSS_Q_BIND,
    TSS_Q_BINDINGS,
    TSS_Q_CHUNK_INSERT,
    TSS_Q_CHUNK_UPDATE,
    TSS_Q_CHUNK_LATEST,
    TSS_Q_CHUNK_DATA,
    TSS_Q_CHUNK_INSERT1,
    TSS_Q_CHUNK_UPDATE1,
    TSS_Q_GROUPS_GET,
    TSS_Q_EVENT_INSERT,
    TSS_Q_GAP_INSERT,
    TSS_Q_RUNS_LIST,
    TSS_Q_RUN_FIND,
    TSS_Q_SERIES_LIST,
    TSS_Q_GENS,
    TSS_Q_CHUNKS_RANGE,
    TSS_Q_EVENTS_LIST,
    TSS_Q_GAPS_LIST,
    TSS_Q_COUNT
};

/* ---- group summaries (store_groups.c, docs/store.md "chunks.groups") -----------
 * Each chunk of a version-2 store has a groups blob in its row: the M4
 * summaries (tss_bucket) of its points grouped by step >> g, g chosen per
 * chunk as the smallest shift that leaves at most TSS_GROUPS_MAX groups. A
 * range whose edges fall on multiples of 2^g (the viewer's power-of-two
 * columns) is then reduced from the groups without decoding the chunk. */
#define TSS_GROUPS_MAX 32
#define TSS_GROUPS_BLOB_MAX (16 + (TSS_GROUPS_MAX + 1) * 11 * 10) /* a header and 10 varints a group */

typedef struct tss_grps {
    uint32_t n;                 /* groups in use */
    uint32_t g;                 /* shift: a group holds the points whose step >> g is equal */
    int64_t key;                /* step >> g of group n-1 */
    tss_bucket *cur;            /* &b[n - 1] */
    tss_bucket b[TSS_GROUPS_MAX + 1];
} tss_grps;

/* No groups; the key (1 at shift 63) matches no step, so the next point
 * starts the first group, at shift 0. */
static inline void tss__grps_reset(tss_grps *G)
{
    G->n = 0;
    G->g = 63;
    G->key = 1;
}
/* Start a group at step (coarsening first when TSS_GROUPS_MAX are in use);
 * returns the group the point goes to. */
tss_bucket *tss__grps_start(tss_grps *G, int64_t step, double v);
/* The writer's per-point step (steps never go back within a chunk). The
 * groups are kept in a raw form that needs no NaN test per point: min and
 * max start at +Inf and -Inf, which a comparison with NaN never replaces and
 * which equal the first such real value bit for bit; tss__grps_get turns a
 * group without non-NaN values back into NaN extrema (tss_bucket_add's). */
static inline void tss__grps_add(tss_grps *G, int64_t step, double v)
{
    tss_bucket *b = G->cur;

    if (TSS_UNLIKELY((step >> G->g) != G->key))
        b = tss__grps_start(G, step, v);
    b->count++;
    b->step_last = step;
    b->last = v;
    if (v < b->min)
        b->min = v;
    if (v > b->max)
        b->max = v;
    if (TSS_UNLIKELY(!(fabs(v) < INFINITY))) {
        b->n_nan += v != v;
        b->n_inf += v == v;
    }
}
/* Group i as tss_bucket_add would have made it. */
static inline tss_bucket tss__grps_get(const tss_grps *G, uint32_t i)
{
    tss_bucket b = G->b[i];

    if (b.n_nan == b.count)
        b.min = b.max = NAN;
    return b;
}
/* The groups blob (at most TSS_GROUPS_BLOB_MAX bytes); returns its length. */
size_t tss__grps_encode(const tss_grps *G, uint8_t *out);
/* Parse a groups blob of a chunk of n points from step_first to step_last
 * into out[max]: returns the group count, *g the shift, -ENOTSUP for another
 * layout version (the reader decodes the chunk instead), or -EINVAL when it
 * is malformed or disagrees with the chunk. */
int tss__grps_decode(const uint8_t *p, size_t len, int64_t n, int64_t step_first, int64_t step_last,
                     tss_bucket *out, size_t max, uint32_t *g);

/* Writer state of one series, in an array indexed by series id. */
typedef struct tss_ser {
    uint8_t loaded;         /* generation and last step read from the chunks table */
    uint8_t dirty;          /* the encoder holds points its chunk row does not */
    uint8_t listed;         /* the id is in tss_store.dirty (until the next commit) */
    int gen;                /* current generation (timeline) */
    int64_t step_last;      /* last step appended, any chunk; INT64_MIN before the first */
    int64_t chunk_id;       /* rowid of the open chunk once written, else 0 */
    int64_t run_id;         /* for runs.updated_ns at commit */
    int64_t t_last_ns;      /* newest time appended since the last commit */
    int64_t t_first, t_last;/* open chunk's first and last time, in store units */
    tss_bucket sum;         /* open chunk's summary (count, steps, min, max, ...); with groups,
                               merged from them when the chunk is written */
    tsc_enc enc;            /* open chunk */
    tss_grps *grps;         /* open chunk's groups (version-2 stores), owned */
} tss_ser;

/* A stream whose sequence number this writer has touched (open addressing). */
typedef struct tss_strm {
    uint64_t id;
    uint64_t seq;
    uint8_t used, dirty;
} tss_strm;

/* Where points of one generation stop being visible: a point at step s of
 * generation gen is on the newest timeline iff !has_cut || s < cut. */
typedef struct tss_gen {
    int gen;
    int has_cut;
    int64_t first;          /* first step of this generation */
    int64_t cut;            /* lowest first step of the later generations */
} tss_gen;

/* A run that received points since the last flush, for runs.updated_ns. */
struct tss_touch {
    int64_t run_id, t_ns;
};

struct tss_store {
    sqlite3 *db;
    sqlite3_stmt *q[TSS_Q_COUNT];
    char *path;
    int writer;
    int64_t unit;           /* time_unit_ns */
    int version;            /* meta.format_version: 2 has chunks.groups */
    int broken;             /* writer: negative errno once a transaction was lost */
    int in_txn;             /* writer: BEGIN done, COMMIT pending */
    int sqlrc;              /* SQLite code of the last SQLite failure */
    char err[512];

    /* writer */
    int lock_fd;            /* flock(LOCK_EX) held until tss_close */
    dev_t dev;              /* identity of the locked file, see tss_lock_registry */
    ino_t ino;
    struct tss_store *next_writer;
    tss_ser *ser;           /* indexed by series id */
    size_t nser;
    int64_t *dirty;         /* series ids with listed set; capacity nser */
    size_t ndirty;
    tss_strm *strm;         /* power-of-two table, at most half full */
    size_t strm_cap, strm_used;
    struct tss_touch *touch;
    size_t ntouch, touch_cap;

    /* readers: decode scratch, one chunk's worth, allocated on first use */
    int64_t *scr_steps, *scr_times;
    double *scr_values;
    tss_gen *gens;
    size_t gens_cap;
    tss_bucket *grp;        /* readers: one chunk's groups, TSS_GROUPS_MAX + 1 */
    uint8_t grp_blob[TSS_GROUPS_BLOB_MAX]; /* writer: encoded groups of one chunk */
};

/* Errors: set st->err, return rc (a negative errno). */
int tss__fail(tss_store *st, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A failed SQLite call: "<what>: <sqlite message>", mapped to an errno. A
 * writer whose open transaction SQLite rolled back is marked broken. */
int tss__sqlfail(tss_store *st, int sqlrc, const char *what);
/* The cached statement q, reset and ready to bind (prepared on first use). */
int tss__stmt(tss_store *st, enum tss_q q, sqlite3_stmt **out);
/* Run a statement that returns no rows (or ignores them) and reset it. */
int tss__exec(tss_store *st, sqlite3_stmt *s, const char *what);
/* Writer: write every open chunk that changed, inside the open transaction,
 * so that reads on the writer's own handle see every point appended. */
int tss__flush(tss_store *st);

/* SQLite stores NaN as NULL: summaries that are NaN round-trip through NULL. */
static inline void tss__bind_real(sqlite3_stmt *s, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_double(s, i, v);
}
static inline double tss__column_real(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

#endif
