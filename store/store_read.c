/* store_read.c - the readers of the trainscope store: runs, series, points,
 * M4 buckets, events and gaps (contract in store.h, schema in docs/store.md).
 *
 * Timelines: a point of generation g at step s is hidden when a later
 * generation starts at a step <= s. Within one generation steps never go
 * back (a step below the last one starts a new generation), so the visible
 * part of a generation is a prefix of it, and the visible points in chunk
 * order (generation, then arrival) are already sorted by step. Both readers
 * of values walk the chunks in that order (tss_scan); the M4 reducer folds a
 * chunk's stored summary instead of its points when the chunk is wholly
 * visible and inside one bucket, which gives the same bits as folding the
 * points because both fold in the same order (see tss_bucket_add).
 *
 * Reads on a reader handle run in one read transaction (one WAL snapshot, so
 * the generations and the chunks agree); on the writer handle the open
 * chunks are written first, so a writer reads what it appended.
 *
 * Knobs: none. Chunks are decoded into one scratch buffer per handle
 * (TSC_MAX_POINTS points), allocated on the first read.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- helpers ----------------------------------------------------------- */

static int tss_oom(tss_store *st)
{
    return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
}

/* Make room for need elements of size elem in *p (capacity *cap). */
static int tss_reserve(tss_store *st, void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*p, ncap * elem);
    if (!np)
        return tss_oom(st);
    *p = np;
    *cap = ncap;
    return 0;
}

/* A copy of a text column; NULL stays NULL only when keep_null. */
static int tss_column_str(tss_store *st, sqlite3_stmt *s, int i, int keep_null, char **out)
{
    const char *t = (const char *)sqlite3_column_text(s, i);

    *out = NULL;
    if (!t && keep_null)
        return 0;
    *out = strdup(t ? t : "");
    return *out ? 0 : tss_oom(st);
}

/* Stored time units back to nanoseconds, saturating instead of wrapping. */
static int64_t tss_from_unit(int64_t t, int64_t unit)
{
    int64_t ns;

    if (__builtin_mul_overflow(t, unit, &ns))
        return t < 0 ? INT64_MIN : INT64_MAX;
    return ns;
}

/* Start a read: one snapshot on a reader, up-to-date chunk rows on the
 * writer (a broken writer reads what is on disk). */
static int tss_read_begin(tss_store *st)
{
    sqlite3_stmt *s;
    int rc;

    if (st->writer)
        return st->broken || st->ndirty == 0 ? 0 : tss__flush(st);
    rc = tss__stmt(st, TSS_Q_BEGIN, &s);
    return rc < 0 ? rc : tss__exec(st, s, "begin a read");
}

static int tss_read_end(tss_store *st, int rc)
{
    sqlite3_stmt *s;
    int rc2;

    if (st->writer)
        return rc;
    rc2 = tss__stmt(st, TSS_Q_COMMIT, &s);
    if (rc2 == 0)
        rc2 = tss__exec(st, s, "end a read");
    return rc < 0 ? rc : rc2;
}

/* ---- lists ------------------------------------------------------------- */

/* Fill one element of a list from the current row; may allocate its
 * strings (the list's free function releases them, also on error). */
typedef int (*tss_row_fn)(tss_store *st, sqlite3_stmt *s, void *elem);
typedef void (*tss_list_free_fn)(void *list, size_t n);

/* The readers that return arrays: statement q (its ?1 bound to key when
 * has_key) in one read, one element of size elem per row. On failure
 * nothing is returned and what was read is freed. */
static int tss_list(tss_store *st, enum tss_q q, int has_key, int64_t key, size_t elem, tss_row_fn row,
                    tss_list_free_fn list_free, const char *what, void **list, size_t *n)
{
    sqlite3_stmt *s;
    char *out = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    *list = NULL;
    *n = 0;
    rc = tss_read_begin(st);
    if (rc == 0)
        rc = tss__stmt(st, q, &s);
    if (rc < 0)
        return tss_read_end(st, rc);
    if (has_key)
        sqlite3_bind_int64(s, 1, key);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = tss_reserve(st, (void **)&out, &cap, cnt + 1, elem)) < 0)
            break;
        rc = row(st, s, out + cnt * elem);
        cnt++;
        if (rc < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(st, rc, what);
    sqlite3_reset(s);
    rc = tss_read_end(st, rc);
    if (rc < 0) {
        list_free(out, cnt);
        return rc;
    }
    *list = out;
    *n = cnt;
    return 0;
}

/* ---- runs -------------------------------------------------------------- */

static int tss_run_row(tss_store *st, sqlite3_stmt *s, void *elem)
{
    tss_run *r = elem;

    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->world_size = sqlite3_column_int(s, 5);
    r->created_ns = sqlite3_column_int64(s, 6);
    r->updated_ns = sqlite3_column_int64(s, 7);
    r->ended_ns = sqlite3_column_int64(s, 8);
    r->points = sqlite3_column_int64(s, 9);
    r->series = sqlite3_column_int64(s, 10);
    r->dropped = sqlite3_column_int64(s, 11);
    r->resumes = sqlite3_column_int64(s, 12);
    if (tss_column_str(st, s, 1, 0, &r->project) < 0 || tss_column_str(st, s, 2, 0, &r->name) < 0 ||
        tss_column_str(st, s, 3, 0, &r->status) < 0 || tss_column_str(st, s, 4, 1, &r->config) < 0)
        return -ENOMEM;
    return 0;
}

static void tss_free_runs_list(void *list, size_t n)
{
    tss_free_runs(list, n);
}

int tss_list_runs(tss_store *st, tss_run **runs, size_t *n)
{
    if (!st || !runs || !n)
        return -EINVAL;
    return tss_list(st, TSS_Q_RUNS_LIST, 0, 0, sizeof **runs, tss_run_row, tss_free_runs_list,
                    "list the runs", (void **)runs, n);
}

void tss_free_runs(tss_run *runs, size_t n)
{
    if (!runs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(runs[i].project);
        free(runs[i].name);
        free(runs[i].status);
        free(runs[i].config);
    }
    free(runs);
}

/* "name" matches a run of that name in any project, "project/name" the run
 * of that project; a name that matches several runs is refused with the
 * projects listed, so a script never picks one at random. */
int tss_find_run(tss_store *st, const char *name, int64_t *run_id)
{
    sqlite3_stmt *s;
    char projects[256] = "";
    size_t used = 0;
    int rc, matches = 0;

    if (!st || !name || !run_id)
        return -EINVAL;
    rc = tss__stmt(st, TSS_Q_RUN_FIND, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(s, 1);
        if (matches++ == 0)
            *run_id = sqlite3_column_int64(s, 0);
        if (used < sizeof projects)
            used += (size_t)snprintf(projects + used, sizeof projects - used, "%s'%s'",
                                     matches > 1 ? ", " : "", p && *p ? p : "(none)");
    }
    rc = rc == SQLITE_DONE ? 0 : tss__sqlfail(st, rc, "find the run");
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (matches == 0)
        return tss__fail(st, -ENOENT, "%s: no run named '%s'", st->path, name);
    if (matches > 1)
        return tss__fail(st, -EEXIST,
                         "%s: run name '%s' is ambiguous: it exists in projects %s; "
                         "name it as project/name", st->path, name, projects);
    return 0;
}

/* ---- series ------------------------------------------------------------ */

static int tss_series_of_row(tss_store *st, sqlite3_stmt *s, void *elem)
{
    tss_series *r = elem;

    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->run_id = sqlite3_column_int64(s, 1);
    r->rank = sqlite3_column_int(s, 2);
    r->count = sqlite3_column_int64(s, 4);
    r->step_first = sqlite3_column_int64(s, 5);
    r->step_last = sqlite3_column_int64(s, 6);
    r->t_first_ns = tss_from_unit(sqlite3_column_int64(s, 7), st->unit);
    r->t_last_ns = tss_from_unit(sqlite3_column_int64(s, 8), st->unit);
    r->vmin = tss__column_real(s, 9);
    r->vmax = tss__column_real(s, 10);
    r->n_nan = sqlite3_column_int64(s, 11);
    r->n_inf = sqlite3_column_int64(s, 12);
    r->generations = sqlite3_column_int(s, 13);
    return tss_column_str(st, s, 3, 0, &r->name);
}

static void tss_free_series_list(void *list, size_t n)
{
    tss_free_series(list, n);
}

int tss_list_series(tss_store *st, int64_t run_id, tss_series **series, size_t *n)
{
    if (!st || !series || !n)
        return -EINVAL;
    return tss_list(st, TSS_Q_SERIES_LIST, 1, run_id, sizeof **series, tss_series_of_row,
                    tss_free_series_list, "list the series", (void **)series, n);
}

void tss_free_series(tss_series *series, size_t n)
{
    if (!series)
        return;
    for (size_t i = 0; i < n; i++)
        free(series[i].name);
    free(series);
}

/* ---- chunks: timelines, scan, decode ----------------------------------- */

/* Load the generations of a series and where each stops being visible:
 * the lowest first step of all later generations. */
static int tss_gens_load(tss_store *st, int64_t sid, size_t *ngens)
{
    sqlite3_stmt *s;
    size_t cnt = 0;
    int rc = tss__stmt(st, TSS_Q_GENS, &s);

    if (rc < 0)
        return rc;
    for (int64_t after = -1;;) {
        sqlite3_bind_int64(s, 1, sid);
        sqlite3_bind_int64(s, 2, after);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW &&
            (rc = tss_reserve(st, (void **)&st->gens, &st->gens_cap, cnt + 1, sizeof *st->gens)) == 0) {
            st->gens[cnt++] = (tss_gen){.gen = sqlite3_column_int(s, 0), .first = sqlite3_column_int64(s, 1)};
            after = st->gens[cnt - 1].gen;
            sqlite3_reset(s);
            continue;
        }
        rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(st, rc, "read the timelines");
        sqlite3_reset(s);
        break;
    }
    if (rc < 0)
        return rc;
    for (size_t i = cnt; i-- > 1;) {
        tss_gen *g = &st->gens[i - 1], *next = &st->gens[i];
        g->has_cut = 1;
        g->cut = next->first;
        if (next->has_cut && next->cut < g->cut)
            g->cut = next->cut;
    }
    *ngens = cnt;
    return 0;
}

/* One chunk row as the scan hands it over. */
typedef struct tss_chunk {
    int64_t id;
    int gen;
    tss_bucket sum;         /* count, steps, min, max, first, last, NaN and Inf counts */
    int has_cut;            /* points at steps >= cut are hidden (newest timeline) */
    int64_t cut;
} tss_chunk;

typedef int (*tss_chunk_fn)(tss_store *st, int64_t sid, const tss_chunk *c, void *ctx);

static void tss_chunk_of_row(sqlite3_stmt *s, tss_chunk *c)
{
    c->id = sqlite3_column_int64(s, 0);
    c->gen = sqlite3_column_int(s, 1);
    c->sum.step_first = sqlite3_column_int64(s, 2);
    c->sum.step_last = sqlite3_column_int64(s, 3);
    c->sum.count = sqlite3_column_int64(s, 4);
    c->sum.min = tss__column_real(s, 5);
    c->sum.max = tss__column_real(s, 6);
    c->sum.first = tss__column_real(s, 7);
    c->sum.last = tss__column_real(s, 8);
    c->sum.n_nan = sqlite3_column_int64(s, 9);
    c->sum.n_inf = sqlite3_column_int64(s, 10);
}

/* Call fn for every chunk of series sid with points in [from, to], in
 * arrival order, skipping the chunks the newest timeline hides entirely
 * unless all. With all, nothing is hidden (has_cut is 0). */
static int tss_scan(tss_store *st, int64_t sid, int64_t from, int64_t to, int all, tss_chunk_fn fn,
                    void *ctx)
{
    sqlite3_stmt *s;
    size_t ngens = 0, gi = 0;
    tss_chunk c;
    int rc = all ? 0 : tss_gens_load(st, sid, &ngens);

    if (rc == 0)
        rc = tss__stmt(st, TSS_Q_CHUNKS_RANGE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, sid);
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, to);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        tss_chunk_of_row(s, &c);
        while (gi < ngens && st->gens[gi].gen < c.gen)
            gi++;
        c.has_cut = gi < ngens && st->gens[gi].gen == c.gen && st->gens[gi].has_cut;
        c.cut = c.has_cut ? st->gens[gi].cut : 0;
        if (c.has_cut && c.sum.step_first >= c.cut)
            continue;
        if ((rc = fn(st, sid, &c, ctx)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(st, rc, "read the chunks");
    sqlite3_reset(s);
    return rc;
}

static int tss_corrupt(tss_store *st, int64_t sid, const tss_chunk *c, const char *why)
{
    return tss__fail(st, -EINVAL, "%s: series %" PRId64 ", chunk %" PRId64 ": corrupt chunk data (%s)",
                     st->path, sid, c->id, why);
}

/* Fetch and decode the first min(max, count) points of chunk c into the
 * scratch arrays; returns how many. Nothing in the blob is trusted: its count
 * must match the row, fit the scratch, its first step must be the row's and
 * the last decoded one last_step (the row's, or the end of a group). */
static int64_t tss_chunk_decode_n(tss_store *st, int64_t sid, const tss_chunk *c, int64_t max, int64_t last_step)
{
    sqlite3_stmt *s;
    const uint8_t *blob;
    size_t len;
    int64_t cnt;
    int rc;

    if (!st->scr_steps) {
        st->scr_steps = malloc(TSC_MAX_POINTS * sizeof *st->scr_steps);
        st->scr_times = malloc(TSC_MAX_POINTS * sizeof *st->scr_times);
        st->scr_values = malloc(TSC_MAX_POINTS * sizeof *st->scr_values);
        if (!st->scr_steps || !st->scr_times || !st->scr_values) {
            free(st->scr_steps);
            free(st->scr_times);
            free(st->scr_values);
            st->scr_steps = st->scr_times = NULL;
            st->scr_values = NULL;
            return tss_oom(st);
        }
    }
    rc = tss__stmt(st, TSS_Q_CHUNK_DATA, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, c->id);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? tss_corrupt(st, sid, c, "row vanished") : tss__sqlfail(st, rc, "read a chunk");
        sqlite3_reset(s);
        return rc;
    }
    blob = sqlite3_column_blob(s, 0);
    len = (size_t)sqlite3_column_bytes(s, 0);
    cnt = blob ? tsc_blob_count(blob, len) : -EINVAL;
    if (cnt < 0)
        rc = tss_corrupt(st, sid, c, "bad header");
    else if (cnt != c->sum.count || cnt > TSC_MAX_POINTS)
        rc = tss_corrupt(st, sid, c, "point count differs from the chunk row");
    else if ((cnt = max < cnt ? max : cnt) < 1 ||
             tsc_decode_prefix(blob, len, cnt, st->scr_steps, st->scr_times, st->scr_values) != cnt)
        rc = tss_corrupt(st, sid, c, "undecodable");
    else if (st->scr_steps[0] != c->sum.step_first || st->scr_steps[cnt - 1] != last_step)
        rc = tss_corrupt(st, sid, c, "steps differ from the chunk row");
    sqlite3_reset(s);
    return rc < 0 ? rc : cnt;
}

/* The whole chunk. */
static int64_t tss_chunk_decode(tss_store *st, int64_t sid, const tss_chunk *c)
{
    return tss_chunk_decode_n(st, sid, c, INT64_MAX, c->sum.step_last);
}

/* ---- points ------------------------------------------------------------ */

typedef struct tss_points_ctx {
    int64_t from, to;
    tss_point *pts;
    size_t n, cap;
} tss_points_ctx;

static int tss_points_chunk(tss_store *st, int64_t sid, const tss_chunk *c, void *ctx)
{
    tss_points_ctx *p = ctx;
    int64_t cnt = tss_chunk_decode(st, sid, c);
    int rc;

    if (cnt < 0)
        return (int)cnt;
    rc = tss_reserve(st, (void **)&p->pts, &p->cap, p->n + (size_t)cnt, sizeof *p->pts);
    if (rc < 0)
        return rc;
    for (int64_t i = 0; i < cnt; i++) {
        int64_t step = st->scr_steps[i];
        if (step < p->from || step > p->to || (c->has_cut && step >= c->cut))
            continue;
        p->pts[p->n++] = (tss_point){step, tss_from_unit(st->scr_times[i], st->unit), st->scr_values[i],
                                     c->gen};
    }
    return 0;
}

/* First pass: the chunk rows' counts bound the result (hidden and
 * out-of-range points included). */
static int tss_points_count(tss_store *st, int64_t sid, const tss_chunk *c, void *ctx)
{
    tss_points_ctx *p = ctx;

    (void)st;
    (void)sid;
    p->cap += (size_t)c->sum.count;
    return 0;
}

/* One allocation for the whole result. A large one is 2 MiB aligned and
 * advised as huge pages (where the kernel has them on madvise): a fresh 32 MB
 * result then costs 16 page faults instead of 8192, a third of a 1M-point
 * read's time otherwise. The caller frees it with free() either way. */
static int tss_points_alloc(tss_store *st, tss_points_ctx *p)
{
    size_t bytes = p->cap * sizeof *p->pts, huge = (size_t)2 << 20;
    void *mem = NULL;

    if (p->cap == 0)
        return 0;
    if (bytes >= huge) {
        bytes = (bytes + huge - 1) / huge * huge;
        if (posix_memalign(&mem, huge, bytes) != 0)
            mem = NULL;
#ifdef MADV_HUGEPAGE
        if (mem)
            madvise(mem, bytes, MADV_HUGEPAGE);
#endif
    } else {
        mem = malloc(bytes);
    }
    if (!mem)
        return tss_oom(st);
    p->pts = mem;
    return 0;
}

static int tss_point_before(const tss_point *a, const tss_point *b)
{
    return a->step < b->step || (a->step == b->step && a->generation < b->generation);
}

/* Stable merge sort by (step, generation): ties keep arrival order. Only
 * all-timelines reads need it; the newest timeline comes out sorted. */
static int tss_points_sort(tss_store *st, tss_point *p, size_t n)
{
    tss_point *tmp, *src = p, *dst;
    size_t i;

    for (i = 1; i < n && !tss_point_before(&p[i], &p[i - 1]); i++)
        ;
    if (i >= n)
        return 0;
    tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return tss_oom(st);
    dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                dst[o++] = tss_point_before(&src[b], &src[a]) ? src[b++] : src[a++];
            while (a < mid)
                dst[o++] = src[a++];
            while (b < hi)
                dst[o++] = src[b++];
        }
        tss_point *t = src;
        src = dst;
        dst = t;
    }
    if (src != p)
        memcpy(p, src, n * sizeof *p);
    free(tmp);
    return 0;
}

int tss_read_points(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to, int flags,
                    tss_point **pts, size_t *n)
{
    tss_points_ctx ctx = {.from = step_from, .to = step_to};
    int all = (flags & TSS_ALL_TIMELINES) != 0;
    int rc;

    if (!st || !pts || !n)
        return -EINVAL;
    *pts = NULL;
    *n = 0;
    if (step_from > step_to)
        return 0;
    rc = tss_read_begin(st);
    if (rc == 0)
        rc = tss_scan(st, series_id, step_from, step_to, all, tss_points_count, &ctx);
    if (rc == 0)
        rc = tss_points_alloc(st, &ctx);
    if (rc == 0)
        rc = tss_scan(st, series_id, step_from, step_to, all, tss_points_chunk, &ctx);
    rc = tss_read_end(st, rc);
    if (rc == 0 && all)
        rc = tss_points_sort(st, ctx.pts, ctx.n);
    if (rc < 0) {
        free(ctx.pts);
        return rc;
    }
    *pts = ctx.pts;
    *n = ctx.n;
    return 0;
}

/* ---- M4 buckets -------------------------------------------------------- */

/* Bucket b holds the steps from + lo[b] .. from + lo[b+1] - 1, where
 * lo[b] = ceil(b * span / nb) and span = to - from + 1 (up to 2^64): that
 * is, step s is in bucket floor((s - from) * nb / span). */
typedef struct tss_buckets_ctx {
    int64_t from, to;
    size_t nb;
    uint64_t *lo;           /* nb entries; lo[nb] would be span */
    tss_bucket *out;
} tss_buckets_ctx;

/* The bucket of offset off (= s - from) by binary search. */
static size_t tss_bucket_of(const tss_buckets_ctx *k, uint64_t off)
{
    size_t a = 0, b = k->nb;

    while (b - a > 1) {
        size_t m = a + (b - a) / 2;
        if (k->lo[m] <= off)
            a = m;
        else
            b = m;
    }
    return a;
}

/* Fold the decoded points [0, cnt) of chunk c that are in range and visible. */
static void tss_buckets_points(tss_store *st, const tss_chunk *c, tss_buckets_ctx *k, int64_t cnt)
{
    size_t b = 0;
    int started = 0;

    for (int64_t i = 0; i < cnt; i++) {
        int64_t step = st->scr_steps[i];
        uint64_t off;
        if (step < k->from || step > k->to || (c->has_cut && step >= c->cut))
            continue;
        off = (uint64_t)step - (uint64_t)k->from;
        /* Steps in a chunk never go back: find the first bucket, then walk. */
        if (!started) {
            b = tss_bucket_of(k, off);
            started = 1;
        }
        while (b + 1 < k->nb && off >= k->lo[b + 1])
            b++;
        tss_bucket_add(&k->out[b], step, st->scr_values[i]);
    }
}

/* A chunk cut by bucket edges, from its groups (version 2): a group that lies
 * in one bucket, wholly on one side of the range's ends and of the timeline
 * cut, is merged; the points up to the last group that does not are decoded
 * (a prefix: the codec is sequential, the groups after it cost nothing).
 * Returns 1 when folded, 0 when the chunk has no groups (decode it all), or
 * an error for a corrupt groups blob or chunk. */
static int tss_buckets_groups(tss_store *st, int64_t sid, const tss_chunk *c, tss_buckets_ctx *k)
{
    sqlite3_stmt *s;
    const uint8_t *blob;
    uint32_t g;
    int ng, rc, last_cut = -1, first_after = 0;
    int64_t npts = 0;

    if (st->version < 2)
        return 0;
    if (!st->grp && !(st->grp = malloc((TSS_GROUPS_MAX + 1) * sizeof *st->grp)))
        return tss_oom(st);
    rc = tss__stmt(st, TSS_Q_GROUPS_GET, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, c->id);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW || sqlite3_column_type(s, 0) == SQLITE_NULL) {
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : tss__sqlfail(st, rc, "read a chunk's groups");
        sqlite3_reset(s);
        return rc;
    }
    blob = sqlite3_column_blob(s, 0);
    ng = blob ? tss__grps_decode(blob, (size_t)sqlite3_column_bytes(s, 0), c->sum.count, c->sum.step_first,
                                 c->sum.step_last, st->grp, TSS_GROUPS_MAX + 1, &g)
              : -EINVAL;
    sqlite3_reset(s);
    if (ng == -ENOTSUP)
        return 0;
    if (ng < 0)
        return tss_corrupt(st, sid, c, "bad groups");
    for (int i = 0; i < ng; i++) {
        const tss_bucket *b = &st->grp[i];
        if (b->step_last < k->from || b->step_first > k->to || (c->has_cut && b->step_first >= c->cut))
            continue;
        if (b->step_first < k->from || b->step_last > k->to || (c->has_cut && b->step_last >= c->cut) ||
            tss_bucket_of(k, (uint64_t)b->step_first - (uint64_t)k->from) !=
                tss_bucket_of(k, (uint64_t)b->step_last - (uint64_t)k->from))
            last_cut = i;
    }
    if (last_cut >= 0) {
        for (int i = 0; i <= last_cut; i++)
            npts += st->grp[i].count;
        npts = tss_chunk_decode_n(st, sid, c, npts, st->grp[last_cut].step_last);
        if (npts < 0)
            return (int)npts;
        tss_buckets_points(st, c, k, npts);
        first_after = last_cut + 1;
    }
    for (int i = first_after; i < ng; i++) {
        const tss_bucket *b = &st->grp[i];
        if (b->step_last < k->from || b->step_first > k->to || (c->has_cut && b->step_first >= c->cut))
            continue;
        tss_bucket_merge(&k->out[tss_bucket_of(k, (uint64_t)b->step_first - (uint64_t)k->from)], b);
    }
    return 1;
}

static int tss_buckets_chunk(tss_store *st, int64_t sid, const tss_chunk *c, void *ctx)
{
    tss_buckets_ctx *k = ctx;
    int64_t cnt;
    size_t b = 0;
    int rc;

    /* A summary stores NaN as NULL and loses its payload: chunks whose first
     * or last value is NaN are folded from their groups or decoded, so first
     * and last stay bit-exact. */
    if (c->sum.step_first >= k->from && c->sum.step_last <= k->to &&
        (!c->has_cut || c->sum.step_last < c->cut) && !isnan(c->sum.first) && !isnan(c->sum.last)) {
        b = tss_bucket_of(k, (uint64_t)c->sum.step_first - (uint64_t)k->from);
        if (b == tss_bucket_of(k, (uint64_t)c->sum.step_last - (uint64_t)k->from)) {
            tss_bucket_merge(&k->out[b], &c->sum);
            return 0;
        }
    }
    rc = tss_buckets_groups(st, sid, c, k);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    cnt = tss_chunk_decode(st, sid, c);
    if (cnt < 0)
        return (int)cnt;
    tss_buckets_points(st, c, k, cnt);
    return 0;
}

int tss_read_buckets(tss_store *st, int64_t series_id, int64_t step_from, int64_t step_to,
                     size_t nbuckets, tss_bucket *out)
{
    __extension__ typedef unsigned __int128 u128;
    tss_buckets_ctx k = {.from = step_from, .to = step_to, .nb = nbuckets, .out = out};
    u128 span;
    int rc;

    if (!st || !out)
        return -EINVAL;
    if (nbuckets == 0 || step_from > step_to)
        return tss__fail(st, -EINVAL, "tss_read_buckets: need at least one bucket and step_from <= step_to");
    k.lo = malloc(nbuckets * sizeof *k.lo);
    if (!k.lo)
        return tss_oom(st);
    span = (u128)((uint64_t)step_to - (uint64_t)step_from) + 1;
    for (size_t b = 0; b < nbuckets; b++) {
        k.lo[b] = (uint64_t)((b * span + nbuckets - 1) / nbuckets);
        tss_bucket_init(&out[b]);
    }
    rc = tss_read_begin(st);
    if (rc == 0)
        rc = tss_scan(st, series_id, step_from, step_to, 0, tss_buckets_chunk, &k);
    rc = tss_read_end(st, rc);
    free(k.lo);
    return rc;
}

/* ---- events and gaps --------------------------------------------------- */

static int tss_event_row(tss_store *st, sqlite3_stmt *s, void *elem)
{
    tss_event *e = elem;

    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(s, 0);
    e->run_id = sqlite3_column_int64(s, 1);
    e->rank = sqlite3_column_int(s, 2);
    e->step = sqlite3_column_int64(s, 3);
    e->t_ns = sqlite3_column_int64(s, 4);
    if (tss_column_str(st, s, 5, 0, &e->kind) < 0 || tss_column_str(st, s, 6, 0, &e->text) < 0)
        return -ENOMEM;
    return 0;
}

static void tss_free_events_list(void *list, size_t n)
{
    tss_free_events(list, n);
}

int tss_list_events(tss_store *st, int64_t run_id, tss_event **events, size_t *n)
{
    if (!st || !events || !n)
        return -EINVAL;
    return tss_list(st, TSS_Q_EVENTS_LIST, 1, run_id, sizeof **events, tss_event_row,
                    tss_free_events_list, "list the events", (void **)events, n);
}

void tss_free_events(tss_event *events, size_t n)
{
    if (!events)
        return;
    for (size_t i = 0; i < n; i++) {
        free(events[i].kind);
        free(events[i].text);
    }
    free(events);
}

static void tss_free_gaps_list(void *list, size_t n)
{
    (void)n;
    tss_free_gaps(list);
}

static int tss_gap_row(tss_store *st, sqlite3_stmt *s, void *elem)
{
    (void)st;
    *(tss_gap *)elem = (tss_gap){
        .run_id = sqlite3_column_int64(s, 0),
        .rank = sqlite3_column_int(s, 1),
        .count = sqlite3_column_int64(s, 2),
        .step_first = sqlite3_column_int64(s, 3),
        .step_last = sqlite3_column_int64(s, 4),
        .t_first_ns = sqlite3_column_int64(s, 5),
        .t_last_ns = sqlite3_column_int64(s, 6),
    };
    return 0;
}

int tss_list_gaps(tss_store *st, int64_t run_id, tss_gap **gaps, size_t *n)
{
    if (!st || !gaps || !n)
        return -EINVAL;
    return tss_list(st, TSS_Q_GAPS_LIST, 1, run_id, sizeof **gaps, tss_gap_row, tss_free_gaps_list,
                    "list the gaps", (void **)gaps, n);
}

void tss_free_gaps(tss_gap *gaps)
{
    free(gaps);
}
