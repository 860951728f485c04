/* test_viewer_model.c - unit tests of the viewer's data model
 * (viewer/model/model.h) on store files written by the real store writer.
 *
 * The reference for tvm_columns is folding the points one by one into their
 * columns; the points come from tvm_points AND are checked against the
 * store's own tss_read_points, and the timeline and replay rules are
 * recomputed here from all the stored points, so a mistake in the model's
 * chunk logic cannot hide behind itself. Every comparison is bit for bit.
 *
 * Knobs: TEST_VM_SEED (environment) changes the random data and ranges.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "model_int.h" /* test_attached_file: the backend calls a network source makes */
#include "store.h"

static int failures;
static char tmproot[64];
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("FAIL %s:%d: ", __func__, __LINE__);                                   \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void path_in(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", tmproot, file);
}

/* ---- the reference ------------------------------------------------------- */

static void ref_empty(tss_bucket *b)
{
    *b = (tss_bucket){.min = NAN, .max = NAN, .first = NAN, .last = NAN};
}

/* Fold points one by one; column floor((x - from) * n / span) in 128 bits. */
static void ref_reduce(const tss_point *p, size_t n, int xtime, int64_t from, int64_t to, size_t ncols,
                       tss_bucket *out)
{
    __extension__ typedef unsigned __int128 u128;
    u128 span = (u128)((uint64_t)to - (uint64_t)from) + 1;

    for (size_t b = 0; b < ncols; b++)
        ref_empty(&out[b]);
    for (size_t i = 0; i < n; i++) {
        int64_t x = xtime ? p[i].t_ns : p[i].step;
        double v = p[i].value;
        tss_bucket *b;
        if (x < from || x > to)
            continue;
        b = &out[(size_t)((u128)((uint64_t)x - (uint64_t)from) * ncols / span)];
        if (b->count == 0) {
            b->step_first = p[i].step;
            b->first = v;
        }
        b->count++;
        b->step_last = p[i].step;
        b->last = v;
        if (isnan(v)) {
            b->n_nan++;
            continue;
        }
        if (isinf(v))
            b->n_inf++;
        if (isnan(b->min) || v < b->min)
            b->min = v;
        if (isnan(b->max) || v > b->max)
            b->max = v;
    }
}

static int same_bucket(const tss_bucket *a, const tss_bucket *b)
{
    return a->count == b->count && a->n_nan == b->n_nan && a->n_inf == b->n_inf &&
           (a->count == 0 || (a->step_first == b->step_first && a->step_last == b->step_last)) &&
           bits_of(a->min) == bits_of(b->min) && bits_of(a->max) == bits_of(b->max) &&
           bits_of(a->first) == bits_of(b->first) && bits_of(a->last) == bits_of(b->last);
}

/* The newest timeline (and the replay limit) recomputed from every stored
 * point: keep points with t <= limit; a point of generation g at step s is
 * hidden when a later generation (among those kept) began at a step <= s. */
static size_t ref_visible(const tss_point *all, size_t n, int64_t limit, int newest, tss_point *out)
{
    int64_t first[64];
    size_t m = 0;
    int maxgen = -1;

    for (int g = 0; g < 64; g++)
        first[g] = INT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (all[i].t_ns <= limit && all[i].step < first[all[i].generation]) {
            first[all[i].generation] = all[i].step;
            if (all[i].generation > maxgen)
                maxgen = all[i].generation;
        }
    for (size_t i = 0; i < n; i++) {
        int hidden = all[i].t_ns > limit;
        for (int g = all[i].generation + 1; newest && !hidden && g <= maxgen; g++)
            if (first[g] <= all[i].step)
                hidden = 1;
        if (!hidden)
            out[m++] = all[i];
    }
    return m;
}

static int same_points(const tss_point *a, size_t na, const tss_point *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].step != b[i].step || a[i].t_ns != b[i].t_ns || bits_of(a[i].value) != bits_of(b[i].value) ||
            a[i].generation != b[i].generation)
            return 0;
    return 1;
}

/* tvm_columns against the reduction of the reference points. */
static int check_columns(tvm_source *src, size_t si, const tss_point *ref, size_t nref, int flags, int64_t from,
                         int64_t to, size_t ncols, const char *what)
{
    tss_bucket *got = malloc(ncols * sizeof *got), *want = malloc(ncols * sizeof *want);
    int rc = tvm_columns(src, si, from, to, ncols, flags, got), ok = 1;

    ref_reduce(ref, nref, (flags & TVM_X_TIME) != 0, from, to, ncols, want);
    CHECK(rc == 0, "%s: tvm_columns: %d %s", what, rc, tvm_errmsg(src));
    for (size_t b = 0; rc == 0 && b < ncols && ok; b++)
        if (!same_bucket(&got[b], &want[b])) {
            CHECK(0, "%s: series %zu flags %d [%" PRId64 ", %" PRId64 "] / %zu: column %zu: count %" PRId64
                     " vs %" PRId64 ", first %g vs %g, last %g vs %g, min %g vs %g, max %g vs %g",
                  what, si, flags, from, to, ncols, b, got[b].count, want[b].count, got[b].first, want[b].first,
                  got[b].last, want[b].last, got[b].min, want[b].min, got[b].max, want[b].max);
            ok = 0;
        }
    free(got);
    free(want);
    return ok;
}

/* The reference points of series si for flags, from the store itself. */
static size_t ref_points(tss_store *rd, int64_t sid, int flags, int64_t limit, tss_point **out)
{
    tss_point *all = NULL, *vis;
    size_t n = 0, m;
    int rc = tss_read_points(rd, sid, INT64_MIN, INT64_MAX, TSS_ALL_TIMELINES, &all, &n);

    CHECK(rc == 0, "tss_read_points: %s", tss_errmsg(rd));
    vis = malloc((n ? n : 1) * sizeof *vis);
    m = ref_visible(all, n, limit, !(flags & TVM_ALL_TIMELINES), vis);
    if ((flags & TVM_X_TIME) && m > 1) {
        /* logged order: by generation (stable), then step */
        tss_point *tmp = malloc(m * sizeof *tmp);
        size_t o = 0;
        for (int g = 0; g < 64; g++)
            for (size_t i = 0; i < m; i++)
                if (vis[i].generation == g)
                    tmp[o++] = vis[i];
        memcpy(vis, tmp, m * sizeof *vis);
        free(tmp);
    }
    free(all);
    *out = vis;
    return m;
}

/* Random ranges and widths over (and around) the series' x extent, plus the
 * points check, for one flag combination. */
static void check_series(tvm_source *src, tss_store *rd, size_t si, int flags, int64_t limit, int rounds)
{
    const tvm_series *s = tvm_series_at(src, si);
    int xtime = (flags & TVM_X_TIME) != 0;
    int64_t lo = xtime ? s->t_first_ns : s->step_first, hi = xtime ? s->t_last_ns : s->step_last;
    tss_point *ref, *got;
    size_t nref = ref_points(rd, s->id, flags, limit, &ref), ngot;
    char what[128];
    int rc;

    snprintf(what, sizeof what, "%s flags %d limit %" PRId64, s->name, flags, limit);
    rc = tvm_points(src, si, INT64_MIN, INT64_MAX, flags, &got, &ngot);
    CHECK(rc == 0 && same_points(got, ngot, ref, nref), "%s: tvm_points gives %zu points, the store %zu", what,
          ngot, nref);
    free(got);
    if (s->count == 0) {
        lo = 0;
        hi = 100;
    }
    for (int r = 0; r < rounds; r++) {
        int64_t span = hi - lo + 1, from, to;
        size_t ncols;
        switch (r % 5) {
        case 0:     /* the whole extent */
            from = lo;
            to = hi;
            break;
        case 1:     /* a random window */
            from = rnd_in(lo - span / 4, hi);
            to = rnd_in(from, hi + span / 4);
            break;
        case 2:     /* a narrow window: wider than it is long in columns */
            from = rnd_in(lo, hi);
            to = from + rnd_in(0, 20);
            break;
        case 3:     /* a single x */
            from = to = rnd_in(lo, hi);
            break;
        default:    /* beyond the data */
            from = hi + 1;
            to = hi + 1 + rnd_in(0, span);
            break;
        }
        ncols = (size_t)rnd_in(1, 1700);
        if (!check_columns(src, si, ref, nref, flags, from, to, ncols, what))
            break;
        /* the same range again (served from the column cache when aligned) */
        if (tvm_align_range(from, to, ncols, &from, &to) == 0 &&
            !check_columns(src, si, ref, nref, flags, from, to, ncols, what))
            break;
    }
    /* panning by whole columns: the cache reuses and extends columns */
    {
        size_t ncols = 160;
        int64_t from, to, w;
        if (tvm_align_range(lo, lo + (hi - lo) / 3, ncols, &from, &to) == 0) {
            w = (to - from + 1) / (int64_t)ncols;
            for (int k = 0; k < 12; k++) {
                int64_t d = w * rnd_in(-40, 60);
                if (!check_columns(src, si, ref, nref, flags, from + d, to + d, ncols, "pan"))
                    break;
                from += d;
                to += d;
            }
        }
    }
    free(ref);
}

/* ---- the test store -------------------------------------------------------- */

typedef struct wr {
    tss_store *st;
    int64_t run, run2;
    int64_t sid[16];
    int64_t t;                  /* ns, advancing */
} wr;

static double special(uint64_t r)
{
    switch (r % 9) {
    case 0: return NAN;
    case 1: return double_of(0x7ff8000000000abcull);   /* NaN with a payload */
    case 2: return INFINITY;
    case 3: return -INFINITY;
    case 4: return -0.0;
    case 5: return 0.0;
    case 6: return 1e300;
    case 7: return -4.9e-324;
    default: return 1.0;
    }
}

static void append(wr *w, int k, int64_t step, double v)
{
    int rc = tss_append(w->st, w->sid[k], step, w->t, v);
    CHECK(rc >= 0, "tss_append: %d %s", rc, tss_errmsg(w->st));
}

enum { S_WALK, S_SPIKE, S_SPECIAL, S_RESUMED, S_EMPTY, S_SINGLE, S_DUPS, S_TIME, S_CLOCK, S_NS };
static const char *const s_names[S_NS] = {"train/loss", "train/spike", "train/special", "train/resumed",
                                          "train/empty", "train/single", "train/dups", "train/time",
                                          "train/clock_back"};

static void write_store(wr *w, const char *path)
{
    tss_open_opts wo = {.writer = 1, .time_unit_ns = 1000};
    char err[512];
    int rc = tss_open(&w->st, path, &wo, err, sizeof err);
    double v = 0;

    CHECK(rc == 0, "open writer: %s", err);
    if (rc)
        exit(1);
    w->t = 1700000000000000000ll;
    tss_run_open(w->st, "proj", "r1", NULL, 1, w->t, &w->run);
    tss_run_open(w->st, NULL, "r2", NULL, 1, w->t, &w->run2);
    for (int k = 0; k < S_NS; k++)
        tss_series_open(w->st, k == S_DUPS ? w->run2 : w->run, 0, s_names[k], &w->sid[k]);
    for (int64_t s = 0; s < 30000; s++) {
        w->t += 1000 * rnd_in(0, 3);    /* ties in time too */
        v += (double)(int64_t)(rnd() % 2001 - 1000) / 1000.0;
        append(w, S_WALK, s * 3, v);
        append(w, S_SPIKE, s, s == 12345 ? 1e6 : s == 20000 ? -1e6 : 0.25);
        if (s < 9000)
            append(w, S_SPECIAL, s, rnd() % 4 ? special(rnd()) : (double)s);
        if (s % 7 == 0 && s / 7 < 3000)
            for (int d = 0; d < 1 + (int)(rnd() % 3); d++)
                append(w, S_DUPS, s / 7, (double)(rnd() % 100) - 50.0);
        if (s < 12000)
            append(w, S_TIME, s, (double)(s % 977));
        /* a trainer whose clock was set back by 5 s for a while, inside chunks */
        if (s < 10000)
            CHECK(tss_append(w->st, w->sid[S_CLOCK], s, w->t - (s >= 5000 && s < 5100 ? 5000000000ll : 0),
                             (double)(s % 13)) >= 0, "append");
        if (s % 5000 == 0)
            tss_commit(w->st);
    }
    append(w, S_SINGLE, 42, -1.5);
    /* a run resumed twice: 0..9999, then from 6000 (gen 1), then from 3000 (gen 2) */
    for (int64_t s = 0; s < 10000; s++, w->t += 2000)
        append(w, S_RESUMED, s, sin((double)s / 100.0));
    for (int64_t s = 6000; s < 15000; s++, w->t += 2000)
        append(w, S_RESUMED, s, (s % 2 ? 0.0 : -0.0) + (double)s / 1000.0);
    for (int64_t s = 3000; s < 5000; s++, w->t += 2000)
        append(w, S_RESUMED, s, s % 3 ? -0.0 : 0.0);
    tss_event_add(w->st, w->run, 0, 6000, w->t, "resume", "resumed at 6000");
    tss_gap_add(w->st, w->run, 0, 5, 100, 104, w->t, w->t + 10);
    rc = tss_commit(w->st);
    CHECK(rc == 0, "commit: %s", tss_errmsg(w->st));
}

static size_t series_index(tvm_source *src, const char *name)
{
    for (size_t i = 0; i < tvm_series_count(src); i++)
        if (strcmp(tvm_series_at(src, i)->name, name) == 0)
            return i;
    CHECK(0, "no series %s", name);
    return 0;
}

static void test_columns_equal_reduced_points(void)
{
    char path[256], err[512];
    wr w = {0};
    tvm_source *src = NULL;
    tss_store *rd = NULL;
    int rc;

    path_in(path, sizeof path, "columns.db");
    write_store(&w, path);
    rc = tvm_open(&src, path, NULL, err, sizeof err);
    CHECK(rc == 0, "tvm_open: %s", err);
    rc = tss_open(&rd, path, NULL, err, sizeof err);
    CHECK(rc == 0, "tss_open: %s", err);
    if (!src || !rd)
        goto out;
    CHECK(tvm_run_count(src) == 2, "%zu runs", tvm_run_count(src));
    CHECK(tvm_series_count(src) == S_NS, "%zu series", tvm_series_count(src));
    CHECK(tvm_event_count(src) == 1 && strcmp(tvm_event_at(src, 0)->kind, "resume") == 0, "events");
    CHECK(tvm_gap_count(src) == 1 && tvm_gap_at(src, 0)->count == 5, "gaps");
    {
        const tvm_series *e = tvm_series_at(src, series_index(src, "train/empty"));
        const tvm_series *r = tvm_series_at(src, series_index(src, "train/resumed"));
        const tvm_series *sp = tvm_series_at(src, series_index(src, "train/special"));
        CHECK(e->count == 0 && isnan(e->vmin), "empty series: %" PRId64 " points", e->count);
        CHECK(r->count == 21000 && r->generations == 3 && r->step_first == 0 && r->step_last == 14999,
              "resumed: %" PRId64 " points, %d timelines", r->count, r->generations);
        CHECK(isfinite(sp->vmin) && isfinite(sp->vmax) && sp->n_inf > 0 && sp->n_nan > 0,
              "special: vmin %g vmax %g over finite values", sp->vmin, sp->vmax);
    }
    {
        tss_point *p;
        size_t n;
        CHECK(tvm_points(src, series_index(src, "train/clock_back"), INT64_MIN, INT64_MAX, TVM_X_STEP, &p, &n) == 0 &&
                  n == 10000, "clock_back points");
        free(p);
    }
    for (size_t i = 0; i < tvm_series_count(src); i++)
        for (int flags = 0; flags < 4; flags++) {
            int f = (flags & 1 ? TVM_X_TIME : TVM_X_STEP) | (flags & 2 ? TVM_ALL_TIMELINES : 0);
            check_series(src, rd, i, f, INT64_MAX, 40);
        }
    /* the store's own M4 reader agrees on the newest timeline by step */
    for (size_t i = 0; i < tvm_series_count(src); i++) {
        const tvm_series *s = tvm_series_at(src, i);
        tss_bucket a[997], b[997];
        if (s->count == 0)
            continue;
        rc = tvm_columns(src, i, s->step_first, s->step_last, 997, TVM_X_STEP, a);
        CHECK(rc == 0 && tss_read_buckets(rd, s->id, s->step_first, s->step_last, 997, b) == 0, "buckets");
        for (size_t k = 0; k < 997; k++)
            if (!same_bucket(&a[k], &b[k])) {
                CHECK(0, "%s: column %zu differs from tss_read_buckets", s->name, k);
                break;
            }
    }
out:
    tss_close(rd);
    tvm_close(src);
    tss_close(w.st);
}

/* Columns of a power-of-two width that cut chunks come from the store's
 * step-aligned groups (format 2): with every chunk blob destroyed they are
 * still exact (the reference is taken before the damage), also where a chunk
 * starts or ends with a NaN whose payload the row's summary loses; columns
 * narrower than a group need a decode and report the damage. A version-1
 * copy of the same store (no groups) gives the same columns by decoding.
 * No +-Inf here: a chunk with one is decoded at open for the series' finite
 * extrema (tvm_series), which the groups do not keep; test_store covers Inf
 * in groups. */
static void sql_on(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

#define GR_SERIES 2

static double gr_special(void)
{
    double v;
    do
        v = special(rnd());
    while (isinf(v));
    return v;
}
static const size_t gr_ncols[] = {1, 8, 31, 64, 100, 200};

static void gr_check_all(tvm_source *src, tss_point **ref, size_t *nref, const char *what)
{
    for (size_t si = 0; si < GR_SERIES && si < tvm_series_count(src); si++) {
        const tvm_series *s = tvm_series_at(src, si);
        for (size_t k = 0; k < sizeof gr_ncols / sizeof gr_ncols[0]; k++) {
            int64_t from, to, w;
            if (tvm_align_range(s->step_first, s->step_last, gr_ncols[k], &from, &to) < 0)
                continue;
            if (!check_columns(src, si, ref[si], nref[si], TVM_X_STEP, from, to, gr_ncols[k], what))
                return;
            /* pan by whole columns and zoom in by 2 around a third of the way */
            w = (to - from + 1) / (int64_t)gr_ncols[k];
            if (!check_columns(src, si, ref[si], nref[si], TVM_X_STEP, from + 3 * w, to + 3 * w, gr_ncols[k], what))
                return;
            if (w >= 1024 && tvm_align_range(from + (to - from) / 3, from + (to - from) / 3 + (to - from) / 2,
                                             gr_ncols[k], &from, &to) == 0 &&
                !check_columns(src, si, ref[si], nref[si], TVM_X_STEP, from, to, gr_ncols[k], what))
                return;
        }
    }
}

static void test_columns_from_groups(void)
{
    char path[256], v1[256], cmd[600], err[512];
    tss_open_opts wo = {.writer = 1};
    tss_store *st = NULL, *rd = NULL;
    tvm_source *src = NULL;
    tss_point *ref[GR_SERIES] = {0};
    size_t nref[GR_SERIES] = {0};
    int64_t run, sid[GR_SERIES], step = 1000, t = 1700000000000000000ll;
    double v = 0;

    path_in(path, sizeof path, "groups.db");
    path_in(v1, sizeof v1, "groups_v1.db");
    CHECK(tss_open(&st, path, &wo, err, sizeof err) == 0, "open: %s", err);
    if (!st)
        return;
    tss_run_open(st, NULL, "g", NULL, 1, t, &run);
    tss_series_open(st, run, 0, "regular", &sid[0]);
    tss_series_open(st, run, 0, "irregular", &sid[1]);
    for (int64_t i = 0; i < 40000; i++, t += 1000000) {
        v += (double)(int64_t)(rnd() % 2001 - 1000) / 1000.0;
        /* chunks start at 1000 + 4096 k: a NaN with a payload or -0.0 there */
        double x = i % 4096 == 0 || i % 4096 == 4095 ? (i % 3 ? double_of(0x7ff8000000000abcull) : -0.0)
                   : rnd() % 50 == 0 ? gr_special() : v;
        CHECK(tss_append(st, sid[0], 1000 + i, t, x) >= 0, "append");
        CHECK(tss_append(st, sid[1], step, t, rnd() % 40 == 0 ? gr_special() : (double)(float)v) >= 0, "append");
        step += rnd_in(1, 5);
        if (i % 9999 == 0)
            tss_commit(st);
    }
    CHECK(tss_close(st) == 0, "close");
    CHECK(tss_open(&rd, path, NULL, err, sizeof err) == 0, "reader: %s", err);
    if (!rd)
        return;
    for (int k = 0; k < GR_SERIES; k++)
        nref[k] = ref_points(rd, sid[k], TVM_X_STEP, INT64_MAX, &ref[k]);
    tss_close(rd);
    snprintf(cmd, sizeof cmd, "cp %s %s", path, v1);
    CHECK(system(cmd) == 0, "%s", cmd);
    sql_on(v1, "DROP INDEX chunks_by_series; ALTER TABLE chunks DROP COLUMN groups; "
               "CREATE INDEX chunks_by_series ON chunks(series_id, gen, step_first, step_last, n); "
               "UPDATE meta SET value = 1 WHERE key = 'format_version'");
    sql_on(path, "UPDATE chunks SET data = x'0102'");

    CHECK(tvm_open(&src, path, NULL, err, sizeof err) == 0, "tvm_open: %s", err);
    if (src) {
        gr_check_all(src, ref, nref, "groups, blobs destroyed");
        const tvm_series *s = tvm_series_at(src, 0);
        tss_bucket cols[4096];
        int64_t from, to;
        tvm_align_range(s->step_first, s->step_last, 4096, &from, &to);     /* 16 steps a column */
        CHECK(tvm_columns(src, 0, from, to, 4096, TVM_X_STEP, cols) == -EINVAL && strstr(tvm_errmsg(src), "corrupt"),
              "columns narrower than a group decode: %s", tvm_errmsg(src));
        tvm_close(src);
    }
    src = NULL;
    CHECK(tvm_open(&src, v1, NULL, err, sizeof err) == 0, "tvm_open v1: %s", err);
    if (src) {
        gr_check_all(src, ref, nref, "version 1");
        tvm_close(src);
    }
    for (int k = 0; k < GR_SERIES; k++)
        free(ref[k]);
}

/* A network source that reads history from the store file (tvm__attach_store,
 * "?history=file"), driven here through the calls its backend makes: LIVE
 * points held in memory that a grown store chunk then contains are not shown
 * twice, and a series learnt of after the attach gets its earlier chunks. */
static int at_equal(tvm_source *src, size_t si, tss_store *rd, int64_t sid, const char *what)
{
    tss_point *got = NULL, *want = NULL;
    size_t ngot = 0, nwant = 0;
    int ok;

    CHECK(tvm_points(src, si, INT64_MIN, INT64_MAX, TVM_X_STEP, &got, &ngot) == 0, "%s: %s", what, tvm_errmsg(src));
    CHECK(tss_read_points(rd, sid, INT64_MIN, INT64_MAX, 0, &want, &nwant) == 0, "%s: %s", what, tss_errmsg(rd));
    ok = same_points(got, ngot, want, nwant);
    CHECK(ok, "%s: the model has %zu points, the store %zu", what, ngot, nwant);
    free(got);
    free(want);
    return ok;
}

static void at_append(tss_store *w, int64_t sid, int64_t from, int64_t to, tss_point *live)
{
    for (int64_t s = from; s <= to; s++) {
        tss_point p = {s, 1700000000000000000ll + s * 1000000, sin((double)s) + (double)(s % 7), 0};
        CHECK(tss_append(w, sid, p.step, p.t_ns, p.value) == 0, "append: %s", tss_errmsg(w));
        if (live)
            live[s - from] = p;
    }
}

static void test_attached_file(void)
{
    char path[256], empty[256], err[512];
    tss_open_opts wo = {.writer = 1};
    tss_store *w = NULL, *e = NULL, *rd = NULL;
    tvm_source *src = NULL;
    int64_t run, a, b;
    size_t ia = 0, ib = 0;
    static tss_point live[3000];

    path_in(path, sizeof path, "attach.db");
    path_in(empty, sizeof empty, "attach_empty.db");
    CHECK(tss_open(&w, path, &wo, err, sizeof err) == 0, "writer: %s", err);
    CHECK(tss_open(&e, empty, &wo, err, sizeof err) == 0, "empty: %s", err);
    tss_close(e);
    if (!w)
        return;
    tss_run_open(w, NULL, "r", NULL, 1, 1700000000000000000ll, &run);
    tss_series_open(w, run, 0, "A", &a);
    tss_series_open(w, run, 0, "B", &b);
    at_append(w, a, 0, 4999, NULL);     /* a full chunk and an open one of 904 points */
    at_append(w, b, 0, 2999, NULL);
    CHECK(tss_commit(w) == 0, "commit");
    CHECK(tss_open(&rd, path, NULL, err, sizeof err) == 0, "reader: %s", err);
    /* a source with the network backend's view: runs and series it was told of */
    CHECK(tvm_open(&src, empty, NULL, err, sizeof err) == 0, "tvm_open: %s", err);
    if (!src || !rd)
        goto out;
    tvm__file_close(src);
    CHECK(tvm__run_upsert(src, &(tvm_run){.id = run, .project = "", .name = "r", .display = "r",
                                          .status = "running", .world_size = 1}, NULL) == 0, "run");
    CHECK(tvm__series_upsert(src, 0, a, 0, "A", &ia) == 0, "series A");
    CHECK(tvm__attach_store(src, path) == 0, "attach: %s", tvm_errmsg(src));
    CHECK(tvm_poll(src) >= 0, "poll: %s", tvm_errmsg(src));
    at_equal(src, ia, rd, a, "A at attach");

    /* LIVE points first, then the collector commits the same points into the
     * open chunk (its row grows in place) */
    at_append(w, a, 5000, 5999, live);
    CHECK(tvm__series_append(src, ia, live, 1000) == 0, "live");
    CHECK(tss_commit(w) == 0, "commit");
    CHECK(tvm_poll(src) >= 0, "poll: %s", tvm_errmsg(src));
    at_equal(src, ia, rd, a, "A after its chunk grew under LIVE points");
    /* LIVE ahead of the store: the tail past the row stays */
    at_append(w, a, 6000, 6499, live);
    CHECK(tvm__series_append(src, ia, live, 500) == 0, "live");
    at_append(w, a, 6500, 6999, live + 500);
    CHECK(tvm__series_append(src, ia, live + 500, 500) == 0, "live");
    {   /* columns over store chunks plus the memory tail (its groups folded per point) */
        tss_point *ref = NULL;
        size_t nref = 0;
        CHECK(tss_read_points(rd, a, INT64_MIN, INT64_MAX, 0, &ref, &nref) == 0 && nref == 6000, "store A");
        tss_point *all = realloc(ref, (nref + 1000) * sizeof *all);
        if (all) {
            memcpy(all + nref, live, 1000 * sizeof *all);
            for (size_t k = 0; k < 4; k++) {
                static const size_t nc[] = {1, 64, 700, 1600};
                int64_t from, to;
                tvm_align_range(0, 6999, nc[k], &from, &to);
                check_columns(src, ia, all, nref + 1000, TVM_X_STEP, from, to, nc[k], "A with a LIVE tail");
                check_columns(src, ia, all, nref + 1000, TVM_X_STEP, 5000 + (int64_t)k * 333, 6999, nc[k],
                              "A with a LIVE tail, unaligned");
            }
            free(all);
        } else {
            free(ref);
        }
    }
    CHECK(tss_commit(w) == 0, "commit");
    CHECK(tvm_poll(src) >= 0, "poll: %s", tvm_errmsg(src));
    at_equal(src, ia, rd, a, "A after a second growth");

    /* B, learnt of now: its rows are below the chunk ids the source has seen */
    CHECK(tvm__series_upsert(src, 0, b, 0, "B", &ib) == 0, "series B");
    CHECK(tvm_poll(src) >= 0, "poll: %s", tvm_errmsg(src));
    at_equal(src, ib, rd, b, "B learnt of after the attach");
    at_append(w, b, 3000, 3999, NULL);
    CHECK(tss_commit(w) == 0, "commit");
    CHECK(tvm_poll(src) >= 0, "poll: %s", tvm_errmsg(src));
    at_equal(src, ib, rd, b, "B after a commit");
    at_equal(src, ia, rd, a, "A still");
out:
    tvm_close(src);
    tss_close(rd);
    tss_close(w);
}

/* Replay: under a time limit the series are what they were at that time,
 * timelines included (a resume not yet happened hides nothing). */
static void test_time_limit_replays(void)
{
    char path[256], err[512];
    wr w = {0};
    tvm_source *src = NULL;
    tss_store *rd = NULL;
    size_t ri;

    path_in(path, sizeof path, "replay.db");
    write_store(&w, path);
    tss_close(w.st);
    if (tvm_open(&src, path, NULL, err, sizeof err) != 0 || tss_open(&rd, path, NULL, err, sizeof err) != 0) {
        CHECK(0, "open: %s", err);
        goto out;
    }
    ri = series_index(src, "train/resumed");
    {
        const tvm_series *s = tvm_series_at(src, ri);
        int64_t t0 = s->t_first_ns, t1 = s->t_last_ns;
        int64_t limits[] = {t0 - 1, t0, t0 + (t1 - t0) / 3, t0 + (t1 - t0) * 2 / 3, t0 + (t1 - t0) * 9 / 10, t1};
        for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
            tvm_set_time_limit(src, limits[k]);
            for (int flags = 0; flags < 4; flags++) {
                int f = (flags & 1 ? TVM_X_TIME : TVM_X_STEP) | (flags & 2 ? TVM_ALL_TIMELINES : 0);
                for (size_t i = 0; i < tvm_series_count(src); i++)
                    check_series(src, rd, i, f, limits[k], 10);
            }
            tss_point *all, *vis;
            size_t n;
            tss_read_points(rd, s->id, INT64_MIN, INT64_MAX, TSS_ALL_TIMELINES, &all, &n);
            vis = malloc((n ? n : 1) * sizeof *vis);
            CHECK(tvm_series_at(src, ri)->count == (int64_t)ref_visible(all, n, limits[k], 0, vis),
                  "count under limit %zu", k);
            CHECK(tvm_event_count(src) == (limits[k] >= w.t ? 1u : 0u), "events under limit %zu", k);
            free(all);
            free(vis);
        }
        tvm_set_time_limit(src, INT64_MAX);
        CHECK(tvm_series_at(src, ri)->count == 21000, "limit lifted");
        /* replay playing forward over a fixed view: the cached columns
         * before the newly shown points are kept, the rest recomputed */
        for (int flags = 0; flags < 4; flags++) {
            int f = (flags & 1 ? TVM_X_TIME : TVM_X_STEP) | (flags & 2 ? TVM_ALL_TIMELINES : 0);
            for (int k = 0; k <= 16; k++) {
                int64_t limit = t0 + (t1 - t0) / 16 * k;
                tvm_set_time_limit(src, k == 16 ? INT64_MAX : limit);
                for (size_t i = 0; i < tvm_series_count(src); i++) {
                    const tvm_series *x = tvm_series_at(src, i);
                    int64_t lo = f & TVM_X_TIME ? t0 : 0, hi = f & TVM_X_TIME ? t1 : 40000, from, to;
                    tss_point *ref;
                    size_t nref = ref_points(rd, x->id, f, k == 16 ? INT64_MAX : limit, &ref);
                    tvm_align_range(lo, hi, 128, &from, &to);
                    check_columns(src, i, ref, nref, f, from, to, 128, "replay forward");
                    free(ref);
                }
            }
        }
    }
out:
    tss_close(rd);
    tvm_close(src);
}

/* A reader open while the writer commits sees the new points, series and
 * events after tvm_poll, the open chunk that grew included. */
static void test_poll_picks_up_commits(void)
{
    char path[256], err[512];
    tss_open_opts wo = {.writer = 1};
    tss_store *st = NULL, *rd = NULL;
    tvm_source *src = NULL;
    int64_t run, sid, sid2, t = 1000000000;
    int rc;

    path_in(path, sizeof path, "poll.db");
    rc = tss_open(&st, path, &wo, err, sizeof err);
    CHECK(rc == 0, "writer: %s", err);
    if (rc)
        return;
    tss_run_open(st, NULL, "live", NULL, 1, t, &run);
    tss_series_open(st, run, 0, "loss", &sid);
    for (int64_t s = 0; s < 1000; s++)
        tss_append(st, sid, s, t += 1000000, (double)s);
    tss_commit(st);
    rc = tvm_open(&src, path, NULL, err, sizeof err);
    CHECK(rc == 0, "tvm_open: %s", err);
    if (rc)
        goto out;
    tss_open(&rd, path, NULL, err, sizeof err);
    CHECK(tvm_poll(src) == 0, "nothing new yet");
    CHECK(tvm_series_at(src, 0)->count == 1000, "%" PRId64 " points", tvm_series_at(src, 0)->count);
    /* warm the column cache, then grow the open chunk and add chunks */
    {
        tss_bucket cols[64];
        int64_t from, to;
        tvm_align_range(0, 9999, 64, &from, &to);
        tvm_columns(src, 0, from, to, 64, TVM_X_STEP, cols);
        for (int round = 0; round < 3; round++) {
            for (int64_t s = 1000 + round * 3000; s < 4000 + round * 3000; s++)
                tss_append(st, sid, s, t += 1000000, s == 5000 ? NAN : (double)(s % 100));
            tss_commit(st);
            rc = tvm_poll(src);
            CHECK(rc > 0 && (rc & TVM_CHANGED_POINTS), "poll after commit %d: %d", round, rc);
            CHECK(tvm_series_at(src, 0)->count == 4000 + round * 3000, "round %d: %" PRId64 " points", round,
                  tvm_series_at(src, 0)->count);
            tss_point *ref;
            size_t nref = ref_points(rd, sid, 0, INT64_MAX, &ref);
            check_columns(src, 0, ref, nref, TVM_X_STEP, from, to, 64, "after poll");
            free(ref);
        }
    }
    /* a new series, an event, a run status */
    tss_series_open(st, run, 1, "loss", &sid2);
    tss_append(st, sid2, 7, t, 1.0);
    tss_event_add(st, run, 0, 7, t, "note", "hello");
    tss_run_set_status(st, run, "finished", t);
    tss_commit(st);
    rc = tvm_poll(src);
    CHECK(rc > 0 && (rc & TVM_CHANGED_RUNS) && (rc & TVM_CHANGED_EVENTS), "poll: %d", rc);
    CHECK(tvm_series_count(src) == 2 && tvm_series_at(src, 1)->count == 1, "new series");
    CHECK(tvm_event_count(src) == 1 && strcmp(tvm_event_at(src, 0)->text, "hello") == 0, "new event");
    CHECK(strcmp(tvm_run_at(src, 0)->status, "finished") == 0, "status %s", tvm_run_at(src, 0)->status);
    CHECK(tvm_poll(src) == 0, "quiet again");
out:
    tss_close(rd);
    tvm_close(src);
    tss_close(st);
}

/* --run loads only the runs named; an unknown name is a clear error. */
static void test_run_filter(void)
{
    char path[256], err[512];
    const char *one[] = {"r2"}, *bad[] = {"nope"};
    tvm_open_opts o1 = {one, 1}, o2 = {bad, 1};
    tvm_source *src = NULL;
    wr w = {0};
    int rc;

    path_in(path, sizeof path, "filter.db");
    write_store(&w, path);
    tss_close(w.st);
    rc = tvm_open(&src, path, &o1, err, sizeof err);
    CHECK(rc == 0 && tvm_run_count(src) == 1 && tvm_series_count(src) == 1 &&
              strcmp(tvm_series_at(src, 0)->name, "train/dups") == 0 && tvm_series_at(src, 0)->count > 3000,
          "--run r2: %d %s", rc, err);
    tvm_close(src);
    rc = tvm_open(&src, path, &o2, err, sizeof err);
    CHECK(rc == -ENOENT && src == NULL && strstr(err, "nope"), "unknown run: %d %s", rc, err);
}

/* Bad files: a clear sentence naming the file, never a crash. */
static void test_bad_files(void)
{
    char path[256], err[512], store[256];
    tvm_source *src = NULL;
    wr w = {0};
    FILE *f;
    int rc;

    path_in(path, sizeof path, "missing.db");
    rc = tvm_open(&src, path, NULL, err, sizeof err);
    CHECK(rc == -ENOENT && !src && strstr(err, "missing.db"), "missing: %d %s", rc, err);

    path_in(path, sizeof path, "text.db");
    f = fopen(path, "w");
    fprintf(f, "this is not a database, just some text that is long enough to look like a header\n");
    fclose(f);
    rc = tvm_open(&src, path, NULL, err, sizeof err);
    CHECK(rc == -EINVAL && !src && strstr(err, "text.db") && strstr(err, "not"), "text: %d %s", rc, err);

    /* a store cut in half: refused at open, or at the first read, clearly */
    path_in(store, sizeof store, "whole.db");
    write_store(&w, store);
    tss_close(w.st);
    path_in(path, sizeof path, "truncated.db");
    {
        FILE *in = fopen(store, "rb");
        long len;
        char *buf;
        fseek(in, 0, SEEK_END);
        len = ftell(in);
        fseek(in, 0, SEEK_SET);
        buf = malloc((size_t)len);
        CHECK(fread(buf, 1, (size_t)len, in) == (size_t)len, "read store");
        fclose(in);
        f = fopen(path, "wb");
        fwrite(buf, 1, (size_t)len / 2, f);
        fclose(f);
        free(buf);
    }
    rc = tvm_open(&src, path, NULL, err, sizeof err);
    if (rc == 0) {
        int bad = 0;
        for (size_t i = 0; i < tvm_series_count(src) && !bad; i++) {
            tss_bucket cols[100];
            rc = tvm_columns(src, i, INT64_MIN / 2, INT64_MAX / 2, 100, TVM_X_STEP, cols);
            bad = rc < 0;
        }
        CHECK(bad && strstr(tvm_errmsg(src), "truncated.db"), "truncated store read without error: %s",
              tvm_errmsg(src));
        tvm_close(src);
    } else {
        CHECK(rc == -EINVAL && strstr(err, "truncated.db"), "truncated: %d %s", rc, err);
    }

    /* a chunk blob overwritten: the read fails naming the chunk, nothing crashes */
    {
        sqlite3 *db;
        CHECK(sqlite3_open(store, &db) == SQLITE_OK, "sqlite open");
        sqlite3_exec(db, "UPDATE chunks SET data = zeroblob(40) WHERE id = (SELECT MIN(id) FROM chunks)", NULL,
                     NULL, NULL);
        sqlite3_close(db);
        rc = tvm_open(&src, store, NULL, err, sizeof err);
        CHECK(rc == 0, "open with a corrupt chunk: %s", err);
        if (rc == 0) {
            int bad = 0;
            for (size_t i = 0; i < tvm_series_count(src) && !bad; i++) {
                tss_point *p;
                size_t n;
                rc = tvm_points(src, i, INT64_MIN, INT64_MAX, 0, &p, &n);
                bad = rc == -EINVAL && strstr(tvm_errmsg(src), "corrupt") && strstr(tvm_errmsg(src), "chunk");
                free(p);
            }
            CHECK(bad, "corrupt chunk not reported: %s", tvm_errmsg(src));
            tvm_close(src);
        }
    }
}

static void test_align_range(void)
{
    int64_t a, b;

    CHECK(tvm_align_range(0, 1599, 1600, &a, &b) == 0 && a == 0 && b == 1599, "exact fit");
    CHECK(tvm_align_range(5, 1604, 1600, &a, &b) == 0 && a == 5 && b == 1604, "w 1: %" PRId64 "..%" PRId64, a, b);
    CHECK(tvm_align_range(5, 1605, 1600, &a, &b) == 0 && a == 4 && b == 3203, "w 2: %" PRId64 "..%" PRId64, a, b);
    CHECK(tvm_align_range(3001, 6200, 1600, &a, &b) == 0 && a == 3000 && b == 9399, "x_to pushed out: %" PRId64
          "..%" PRId64, a, b);
    CHECK(tvm_align_range(-1000, 999999, 1600, &a, &b) == 0 && a <= -1000 && b >= 999999 &&
              (b - a + 1) % 1600 == 0 && a % ((b - a + 1) / 1600) == 0,
          "negative start");
    CHECK(tvm_align_range(10, 5, 100, &a, &b) == -EINVAL, "empty range");
    CHECK(tvm_align_range(INT64_MIN, INT64_MAX, 1600, &a, &b) == -ERANGE, "too wide");
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *seed = getenv("TEST_VM_SEED");

    if (seed)
        rng_state = strtoull(seed, NULL, 0) | 1;
    printf("seed 0x%" PRIx64 "\n", rng_state);
    snprintf(tmproot, sizeof tmproot, "/tmp/test_viewer_model.XXXXXX");
    if (!mkdtemp(tmproot)) {
        perror("mkdtemp");
        return 1;
    }
    test_align_range();
    test_columns_equal_reduced_points();
    test_columns_from_groups();
    test_attached_file();
    test_time_limit_replays();
    test_poll_picks_up_commits();
    test_run_filter();
    test_bad_files();
    nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf(failures ? "%d FAILED\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
