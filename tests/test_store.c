/* test_store.c - unit tests of the SQLite store (store/store.h), as one
 * executable: exit 0 when every check passes, a FAIL line for each one that
 * does not.
 *
 * Each test writes stores in its own directory under a mkdtemp() directory
 * in /tmp (removed at the end), then reads them back through a separate
 * read-only handle, as `trainscope ls/show/export` do. The second-writer test
 * runs this same binary as a helper process (--second-writer PATH), because a
 * second collector is another process.
 *
 * Knobs: TEST_STORE_SEED (environment) changes the random data.
 */
#include <errno.h>
#include <float.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h" /* TSC_MAX_POINTS: where chunks end */
#include "store.h"

static int failures;
static char tmproot[64];
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("FAIL %s:%d: ", __func__, __LINE__);                                   \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
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

static void path_in(char *out, size_t cap, const char *test, const char *file)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", tmproot, test);
    mkdir(dir, 0755);
    snprintf(out, cap, "%s/%s", dir, file);
}

static tss_store *open_store(const char *path, int writer, int64_t unit)
{
    tss_open_opts o = {.writer = writer, .time_unit_ns = unit};
    tss_store *st = NULL;
    char err[512];
    int rc = tss_open(&st, path, &o, err, sizeof err);
    CHECK(rc == 0, "open %s as %s: %d %s", path, writer ? "writer" : "reader", rc, err);
    return st;
}

/* The whole file, or NULL when it does not exist. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;

    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int same_file(const unsigned char *a, size_t alen, const char *path)
{
    size_t blen;
    unsigned char *b = slurp(path, &blen);
    int same = (a == NULL && b == NULL) || (a && b && alen == blen && memcmp(a, b, alen) == 0);
    free(b);
    return same;
}

/* t rounded down to a multiple of unit, saturating at INT64_MIN as the
 * store does for a time just above it. */
static int64_t floor_to_unit(int64_t t, int64_t unit)
{
    __extension__ __int128 r = (((__int128)t % unit) + unit) % unit, f = (__int128)t - r;
    return f < INT64_MIN ? INT64_MIN : (int64_t)f;
}

static int64_t run_with_series(tss_store *st, const char *project, const char *run, int nseries,
                               int64_t *ids)
{
    int64_t run_id = 0;
    char name[32];
    CHECK(tss_run_open(st, project, run, "{\"lr\":0.1}", 2, 1700000000000000000, &run_id) == 0,
          "run_open: %s", tss_errmsg(st));
    for (int i = 0; i < nseries; i++) {
        snprintf(name, sizeof name, "metric/%d", i);
        CHECK(tss_series_open(st, run_id, i % 2, name, &ids[i]) == 0, "series_open: %s", tss_errmsg(st));
    }
    return run_id;
}

/* ---- round trip -------------------------------------------------------- */

#define RT_SERIES 4
#define RT_POINTS 10000

typedef struct truth {
    int64_t step[RT_POINTS], t[RT_POINTS];
    double v[RT_POINTS];
    size_t n;
} truth;

static double special_value(size_t i)
{
    static const uint64_t specials[] = {
        0x7ff8000000000000ull, /* NaN */
        0x7ff0000000000001ull, /* signalling NaN with a payload */
        0xfff8000000000abcull, /* negative NaN with a payload */
        0x7ff0000000000000ull, /* +Inf */
        0xfff0000000000000ull, /* -Inf */
        0x8000000000000000ull, /* -0.0 */
        0x0000000000000000ull, /* 0.0 */
        0x7fefffffffffffffull, /* DBL_MAX */
        0xffefffffffffffffull, /* -DBL_MAX */
        0x0000000000000001ull, /* smallest subnormal */
        0x0010000000000000ull, /* DBL_MIN */
    };
    size_t k = i % 16;
    if (k < sizeof specials / sizeof specials[0])
        return double_of(specials[k]);
    return k == 11 ? 1e300 * (double)(i % 7) : k == 12 ? -1e-300 : (double)i * 0.1;
}

/* Series 0: special values, negative times; 1: steps near both int64 ends;
 * 2: random bit patterns; 3: one step repeated across chunk boundaries. */
static void rt_make(truth *tr, int series)
{
    tr->n = RT_POINTS;
    for (size_t i = 0; i < RT_POINTS; i++) {
        int64_t ii = (int64_t)i;
        switch (series) {
        case 0:
            tr->step[i] = ii;
            tr->t[i] = -5000000000 + ii * 1000000 + (int64_t)(rnd() % 2000000) - 1000000;
            tr->v[i] = special_value(i);
            break;
        case 1:
            tr->step[i] = i < RT_POINTS / 2 ? INT64_MIN + ii * 3 : INT64_MAX - (RT_POINTS - ii) * 5;
            tr->t[i] = 1700000000000000000 + ii * 333333;
            tr->v[i] = (double)ii * 1e300;
            break;
        case 2:
            tr->step[i] = ii * 10;
            tr->t[i] = 1700000000000000000 + ii * 1000000 + (int64_t)(rnd() % 1000);
            tr->v[i] = double_of(rnd());
            break;
        default:
            tr->step[i] = 7;
            tr->t[i] = 1700000000000000000 + ii;
            tr->v[i] = (double)(i % 3) - 1.0;
            break;
        }
    }
}

static void rt_check_series(tss_store *rd, int64_t sid, const truth *tr, int64_t unit)
{
    tss_point *p = NULL;
    size_t n = 0, bad = 0;
    int rc = tss_read_points(rd, sid, INT64_MIN, INT64_MAX, 0, &p, &n);
    CHECK(rc == 0 && n == tr->n, "series %" PRId64 ": read %d, %zu points of %zu: %s", sid, rc, n, tr->n,
          tss_errmsg(rd));
    for (size_t i = 0; i < n && i < tr->n; i++) {
        if (p[i].step != tr->step[i] || p[i].t_ns != floor_to_unit(tr->t[i], unit) ||
            bits_of(p[i].value) != bits_of(tr->v[i]) || p[i].generation != 0) {
            if (bad++ < 3)
                CHECK(0, "series %" PRId64 " point %zu: step %" PRId64 " t %" PRId64 " v %016" PRIx64
                         ", want %" PRId64 " %" PRId64 " %016" PRIx64, sid, i, p[i].step, p[i].t_ns,
                      bits_of(p[i].value), tr->step[i], floor_to_unit(tr->t[i], unit), bits_of(tr->v[i]));
        }
    }
    CHECK(bad == 0, "series %" PRId64 ": %zu points differ", sid, bad);
    free(p);
}

static void rt_check_summary(const tss_series *s, const truth *tr)
{
    double mn = NAN, mx = NAN;
    int64_t nan = 0, inf = 0;
    for (size_t i = 0; i < tr->n; i++) {
        double v = tr->v[i];
        if (isnan(v)) {
            nan++;
            continue;
        }
        inf += isinf(v) != 0;
        if (isnan(mn) || v < mn)
            mn = v;
        if (isnan(mx) || v > mx)
            mx = v;
    }
    CHECK(s->count == (int64_t)tr->n && s->n_nan == nan && s->n_inf == inf && s->generations == 1,
          "%s: count %" PRId64 " nan %" PRId64 " inf %" PRId64 " gens %d", s->name, s->count, s->n_nan,
          s->n_inf, s->generations);
    CHECK(s->step_first == tr->step[0] && s->step_last == tr->step[tr->n - 1], "%s: steps %" PRId64
          "..%" PRId64, s->name, s->step_first, s->step_last);
    CHECK((isnan(mn) && isnan(s->vmin)) || s->vmin == mn, "%s: min %g want %g", s->name, s->vmin, mn);
    CHECK((isnan(mx) && isnan(s->vmax)) || s->vmax == mx, "%s: max %g want %g", s->name, s->vmax, mx);
}

static void test_roundtrip_is_bit_exact(void)
{
    static truth tr[RT_SERIES];
    char path[256];
    int64_t ids[RT_SERIES], run_id, found = 0;
    tss_store *wr, *rd;
    const int64_t unit = 1000000;

    path_in(path, sizeof path, "roundtrip", "runs.db");
    wr = open_store(path, 1, 0);
    if (!wr)
        return;
    CHECK(tss_time_unit_ns(wr) == unit, "default unit %" PRId64, tss_time_unit_ns(wr));
    run_id = run_with_series(wr, "proj", "rt", RT_SERIES, ids);
    for (int s = 0; s < RT_SERIES; s++)
        rt_make(&tr[s], s);
    /* Interleaved, with commits in the middle, so open chunks are written,
     * rewritten in place and closed when full. */
    for (size_t i = 0; i < RT_POINTS; i++) {
        for (int s = 0; s < RT_SERIES; s++) {
            int rc = tss_append(wr, ids[s], tr[s].step[i], tr[s].t[i], tr[s].v[i]);
            if (rc != 0)
                CHECK(0, "append series %d point %zu: %d %s", s, i, rc, tss_errmsg(wr));
        }
        if (i % 3001 == 3000)
            CHECK(tss_commit(wr) == 0, "commit: %s", tss_errmsg(wr));
    }
    CHECK(tss_event_add(wr, run_id, 1, 42, 1700000000000000123, "note", "hello, store") == 0, "event: %s",
          tss_errmsg(wr));
    CHECK(tss_gap_add(wr, run_id, 1, 17, 100, 116, 1700000000000000000, 1700000000000000999) == 0,
          "gap: %s", tss_errmsg(wr));
    CHECK(tss_run_set_status(wr, run_id, "finished", 1700000001000000000) == 0, "status: %s",
          tss_errmsg(wr));
    CHECK(tss_close(wr) == 0, "close");

    rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_time_unit_ns(rd) == unit, "reader unit %" PRId64, tss_time_unit_ns(rd));
    for (int s = 0; s < RT_SERIES; s++)
        rt_check_series(rd, ids[s], &tr[s], unit);

    tss_series *ser = NULL;
    size_t nser = 0;
    CHECK(tss_list_series(rd, run_id, &ser, &nser) == 0 && nser == RT_SERIES, "list_series: %zu %s", nser,
          tss_errmsg(rd));
    for (size_t i = 0; i < nser; i++)
        for (int s = 0; s < RT_SERIES; s++)
            if (ser[i].id == ids[s])
                rt_check_summary(&ser[i], &tr[s]);
    tss_free_series(ser, nser);

    tss_run *runs = NULL;
    size_t nruns = 0;
    CHECK(tss_list_runs(rd, &runs, &nruns) == 0 && nruns == 1, "list_runs: %zu", nruns);
    if (nruns == 1) {
        CHECK(strcmp(runs[0].project, "proj") == 0 && strcmp(runs[0].name, "rt") == 0 &&
                  strcmp(runs[0].status, "finished") == 0 && runs[0].config &&
                  strcmp(runs[0].config, "{\"lr\":0.1}") == 0 && runs[0].world_size == 2,
              "run row: %s/%s %s %s", runs[0].project, runs[0].name, runs[0].status, runs[0].config);
        CHECK(runs[0].points == RT_SERIES * RT_POINTS && runs[0].series == RT_SERIES &&
                  runs[0].dropped == 17 && runs[0].resumes == 0,
              "run counts: points %" PRId64 " series %" PRId64 " dropped %" PRId64, runs[0].points,
              runs[0].series, runs[0].dropped);
        CHECK(runs[0].ended_ns == 1700000001000000000 && runs[0].updated_ns >= runs[0].created_ns,
              "run times: ended %" PRId64, runs[0].ended_ns);
    }
    tss_free_runs(runs, nruns);

    CHECK(tss_find_run(rd, "rt", &found) == 0 && found == run_id, "find rt");
    CHECK(tss_find_run(rd, "proj/rt", &found) == 0 && found == run_id, "find proj/rt");
    CHECK(tss_find_run(rd, "nope", &found) == -ENOENT, "find nope");

    tss_event *ev = NULL;
    size_t nev = 0;
    CHECK(tss_list_events(rd, run_id, &ev, &nev) == 0 && nev == 1 && strcmp(ev[0].kind, "note") == 0 &&
              strcmp(ev[0].text, "hello, store") == 0 && ev[0].t_ns == 1700000000000000123 && ev[0].step == 42,
          "events: %zu", nev);
    tss_free_events(ev, nev);
    tss_gap *gaps = NULL;
    size_t ngaps = 0;
    CHECK(tss_list_gaps(rd, run_id, &gaps, &ngaps) == 0 && ngaps == 1 && gaps[0].count == 17 &&
              gaps[0].step_first == 100 && gaps[0].t_last_ns == 1700000000000000999,
          "gaps: %zu", ngaps);
    tss_free_gaps(gaps);
    CHECK(tss_append(rd, ids[0], 1, 1, 1.0) == -EPERM, "a reader cannot append");
    tss_close(rd);
}

/* Nanosecond and microsecond stores keep negative times floored, not truncated. */
static void test_time_unit_floors(void)
{
    static const int64_t units[] = {1, 1000, 1000000000};
    static const int64_t times[] = {-1, 0, 1, -999, -1000, -1001, 999999999, -1000000001, INT64_MAX,
                                    INT64_MIN + 1};
    const size_t nt = sizeof times / sizeof times[0];
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        char path[256], file[32];
        int64_t ids[1];
        tss_point *p = NULL;
        size_t n = 0;
        snprintf(file, sizeof file, "unit%zu.db", u);
        path_in(path, sizeof path, "units", file);
        tss_store *st = open_store(path, 1, units[u]);
        if (!st)
            return;
        run_with_series(st, NULL, "u", 1, ids);
        for (size_t i = 0; i < nt; i++)
            tss_append(st, ids[0], (int64_t)i, times[i], 1.0);
        CHECK(tss_close(st) == 0, "close");
        st = open_store(path, 0, 0);
        if (!st)
            return;
        CHECK(tss_time_unit_ns(st) == units[u], "unit kept");
        CHECK(tss_read_points(st, ids[0], INT64_MIN, INT64_MAX, 0, &p, &n) == 0 && n == nt, "read");
        for (size_t i = 0; i < n; i++) {
            int64_t want = floor_to_unit(times[i], units[u]);
            CHECK(p[i].t_ns == want, "unit %" PRId64 ": time %" PRId64 " -> %" PRId64 ", want %" PRId64,
                  units[u], times[i], p[i].t_ns, want);
        }
        free(p);
        tss_close(st);
    }
}

/* ---- timelines --------------------------------------------------------- */

static void test_resume_keeps_every_point(void)
{
    char path[256];
    int64_t ids[1];
    int resumes = 0, rc;
    tss_point *p = NULL;
    size_t n = 0;

    path_in(path, sizeof path, "resume", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "resumed", 1, ids);
    for (int64_t s = 0; s <= 5000; s++)
        resumes += tss_append(wr, ids[0], s, s * 1000000, (double)s);
    for (int64_t s = 4000; s <= 9000; s++) {
        rc = tss_append(wr, ids[0], s, (s + 10000) * 1000000, (double)-s);
        CHECK(rc == (s == 4000), "append step %" PRId64 " of the second timeline returned %d", s, rc);
        resumes += rc;
    }
    CHECK(resumes == 1, "%d resumes", resumes);
    CHECK(tss_close(wr) == 0, "close");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, TSS_ALL_TIMELINES, &p, &n) == 0 && n == 10002,
          "all timelines: %zu points", n);
    for (size_t i = 1; i < n; i++)
        if (p[i].step < p[i - 1].step ||
            (p[i].step == p[i - 1].step && p[i].generation < p[i - 1].generation)) {
            CHECK(0, "all timelines out of order at %zu", i);
            break;
        }
    free(p);
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, 0, &p, &n) == 0 && n == 9001,
          "newest timeline: %zu points", n);
    for (size_t i = 0; i < n; i++) {
        int64_t s = (int64_t)i;
        int gen = s >= 4000;
        double v = gen ? (double)-s : (double)s;
        if (p[i].step != s || p[i].generation != gen || p[i].value != v) {
            CHECK(0, "newest timeline point %zu: step %" PRId64 " gen %d v %g", i, p[i].step,
                  p[i].generation, p[i].value);
            break;
        }
    }
    free(p);
    CHECK(tss_read_points(rd, ids[0], 3990, 4010, 0, &p, &n) == 0 && n == 21 && p[0].step == 3990 &&
              p[9].generation == 0 && p[10].generation == 1 && p[20].step == 4010,
          "newest timeline 3990..4010: %zu points", n);
    free(p);
    tss_close(rd);
}

static void test_generation_survives_writer_reopen(void)
{
    char path[256];
    int64_t ids[1];
    tss_point *p = NULL;
    size_t n = 0;
    tss_series *ser = NULL;
    size_t nser = 0;
    int64_t run_id;

    path_in(path, sizeof path, "reopen", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_id = run_with_series(wr, NULL, "restarted", 1, ids);
    for (int64_t s = 0; s < 100; s++)
        tss_append(wr, ids[0], s, s, 1.0);
    CHECK(tss_close(wr) == 0, "close");

    /* A collector restart: steps that continue are the same timeline (in a
     * new chunk row), a step that goes back is a new one. */
    wr = open_store(path, 1, 0);
    if (!wr)
        return;
    CHECK(tss_append(wr, ids[0], 100, 100, 2.0) == 0, "continue after reopen: %s", tss_errmsg(wr));
    CHECK(tss_append(wr, ids[0], 150, 150, 2.0) == 0, "continue after reopen");
    CHECK(tss_close(wr) == 0, "close");

    wr = open_store(path, 1, 0);
    if (!wr)
        return;
    CHECK(tss_append(wr, ids[0], 50, 1000, 3.0) == 1, "a step back as the first point after reopen is a resume");
    CHECK(tss_append(wr, ids[0], 51, 1001, 3.0) == 0, "then it goes on");
    CHECK(tss_close(wr) == 0, "close");

    wr = open_store(path, 1, 0);
    if (!wr)
        return;
    CHECK(tss_append(wr, ids[0], 52, 1002, 4.0) == 0, "generation 1 continues after a second reopen");
    CHECK(tss_append(wr, ids[0], 10, 1003, 5.0) == 1, "and a new step back starts generation 2");
    CHECK(tss_close(wr) == 0, "close");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, 0, &p, &n) == 0 && n == 11, "newest: %zu", n);
    if (n == 11)
        CHECK(p[0].step == 0 && p[9].step == 9 && p[9].generation == 0 && p[10].step == 10 &&
                  p[10].generation == 2 && p[10].value == 5.0,
              "newest timeline after two restarts");
    free(p);
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, TSS_ALL_TIMELINES, &p, &n) == 0 && n == 106,
          "all: %zu", n);
    free(p);
    CHECK(tss_list_series(rd, run_id, &ser, &nser) == 0 && nser == 1 && ser[0].generations == 3 &&
              ser[0].count == 106,
          "generations %d", nser ? ser[0].generations : -1);
    tss_free_series(ser, nser);
    tss_close(rd);
}

/* ---- M4 buckets against the points ------------------------------------- */

#define BK_MAX 60000

typedef struct bk_point {
    int64_t step;
    double v;
    int gen;
    size_t idx;
} bk_point;

static double random_value(double last)
{
    uint64_t r = rnd() % 100;
    if (r < 4)
        return double_of(0x7ff8000000000000ull | (rnd() & 0xfffff) | ((rnd() & 1) << 63)); /* NaN */
    if (r < 6)
        return (rnd() & 1) ? INFINITY : -INFINITY;
    if (r < 10)
        return (rnd() & 1) ? 0.0 : -0.0;
    if (r < 20)
        return last;
    if (r < 22)
        return double_of(rnd());
    return ((double)(rnd() % 2000000) - 1000000.0) / 1000.0;
}

static int bk_cmp(const void *a, const void *b)
{
    const bk_point *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The newest timeline of the logged points, by the rule in store.h. */
static size_t bk_newest(const bk_point *all, size_t n, bk_point *out)
{
    int maxgen = n ? all[n - 1].gen : 0;
    int64_t *first = calloc((size_t)maxgen + 1, sizeof *first);
    size_t m = 0;
    for (size_t i = n; i-- > 0;)
        first[all[i].gen] = all[i].step;
    for (size_t i = 0; i < n; i++) {
        int hidden = 0;
        for (int g = all[i].gen + 1; g <= maxgen; g++)
            hidden |= first[g] <= all[i].step;
        if (!hidden)
            out[m++] = all[i];
    }
    free(first);
    qsort(out, m, sizeof *out, bk_cmp);
    return m;
}

/* Reduce points to buckets the slow way: the bucket of each point by 128-bit
 * arithmetic, first/last by order, min/max over non-NaN keeping the earliest. */
static void bk_reduce(const tss_point *p, size_t n, int64_t from, int64_t to, size_t nb, tss_bucket *out)
{
    __extension__ typedef unsigned __int128 u128;
    u128 span = (u128)((uint64_t)to - (uint64_t)from) + 1;
    for (size_t b = 0; b < nb; b++)
        out[b] = (tss_bucket){.min = NAN, .max = NAN, .first = NAN, .last = NAN};
    for (size_t i = 0; i < n; i++) {
        if (p[i].step < from || p[i].step > to)
            continue;
        size_t b = (size_t)((u128)((uint64_t)p[i].step - (uint64_t)from) * nb / span);
        tss_bucket *k = &out[b];
        double v = p[i].value;
        if (k->count++ == 0) {
            k->step_first = p[i].step;
            k->first = v;
        }
        k->step_last = p[i].step;
        k->last = v;
        if (isnan(v)) {
            k->n_nan++;
            continue;
        }
        k->n_inf += isinf(v) != 0;
        if (isnan(k->min) || v < k->min)
            k->min = v;
        if (isnan(k->max) || v > k->max)
            k->max = v;
    }
}

static int bk_same(const tss_bucket *a, const tss_bucket *b)
{
    return a->count == b->count && a->step_first == b->step_first && a->step_last == b->step_last &&
           bits_of(a->min) == bits_of(b->min) && bits_of(a->max) == bits_of(b->max) &&
           bits_of(a->first) == bits_of(b->first) && bits_of(a->last) == bits_of(b->last) &&
           a->n_nan == b->n_nan && a->n_inf == b->n_inf;
}

static void bk_compare(tss_store *st, int64_t sid, int64_t from, int64_t to, size_t nb)
{
    tss_point *p = NULL;
    size_t n = 0;
    tss_bucket *got = malloc(nb * sizeof *got), *want = malloc(nb * sizeof *want);
    int rc = tss_read_points(st, sid, from, to, 0, &p, &n);
    CHECK(rc == 0, "read points: %s", tss_errmsg(st));
    bk_reduce(p, n, from, to, nb, want);
    rc = tss_read_buckets(st, sid, from, to, nb, got);
    CHECK(rc == 0, "read buckets: %s", tss_errmsg(st));
    for (size_t b = 0; rc == 0 && b < nb; b++) {
        if (!bk_same(&got[b], &want[b])) {
            CHECK(0, "[%" PRId64 ", %" PRId64 "] / %zu, bucket %zu: count %" PRId64 "/%" PRId64
                     " steps %" PRId64 "..%" PRId64 "/%" PRId64 "..%" PRId64 " min %g/%g max %g/%g"
                     " first %016" PRIx64 "/%016" PRIx64 " last %016" PRIx64 "/%016" PRIx64,
                  from, to, nb, b, got[b].count, want[b].count, got[b].step_first, got[b].step_last,
                  want[b].step_first, want[b].step_last, got[b].min, want[b].min, got[b].max, want[b].max,
                  bits_of(got[b].first), bits_of(want[b].first), bits_of(got[b].last), bits_of(want[b].last));
            break;
        }
    }
    free(p);
    free(got);
    free(want);
}

/* Random points in segments, some starting below the last step (resumes),
 * committed at random moments; the newest timeline read back must be the
 * model's, and the buckets must be the reduction of the points. */
static void test_buckets_equal_reduced_points(void)
{
    static bk_point all[BK_MAX], newest[BK_MAX];
    static const size_t nbs[] = {1, 2, 3, 7, 64, 333, 1000, 100000};
    char path[256];
    int64_t ids[2], step = 0, lo = INT64_MAX, hi = INT64_MIN;
    size_t n = 0, in_chunk = 0;
    int gen = 0;
    double last = 0;

    path_in(path, sizeof path, "buckets", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "m4", 2, ids);
    while (n < BK_MAX) {
        size_t len = 1 + rnd() % 15000;
        int64_t start = n == 0 ? 0 : step + (int64_t)(rnd() % 40000) - 30000;
        if (n && start < step) {
            gen++;
            in_chunk = 0;
        }
        step = start;
        for (size_t i = 0; i < len && n < BK_MAX; i++, n++) {
            last = random_value(last);
            /* The first and last value of a chunk are the ones a summary
             * stores: make them NaN with a payload or -0.0 often. */
            if ((in_chunk == 0 || in_chunk == TSC_MAX_POINTS - 1) && rnd() % 3)
                last = rnd() % 2 ? -0.0 : double_of(0x7ff8000000000000ull | (rnd() & 0xfffff));
            in_chunk = (in_chunk + 1) % TSC_MAX_POINTS;
            all[n] = (bk_point){step, last, gen, n};
            int rc = tss_append(wr, ids[0], step, (int64_t)n * 1000000, last);
            CHECK(rc == (n > 0 && i == 0 && all[n].gen != all[n - 1].gen), "append %zu returned %d", n, rc);
            lo = step < lo ? step : lo;
            hi = step > hi ? step : hi;
            if (rnd() % 7000 == 0)
                tss_commit(wr);
            step += (int64_t)(rnd() % 4 == 0 ? 0 : 1 + rnd() % 3);
        }
    }
    /* The writer's own handle reads its open chunks too. */
    bk_compare(wr, ids[0], lo, hi, 100);
    CHECK(tss_close(wr) == 0, "close");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    size_t m = bk_newest(all, n, newest);
    tss_point *p = NULL;
    size_t np = 0;
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, 0, &p, &np) == 0 && np == m,
          "newest timeline: %zu points, model %zu (%d generations)", np, m, gen + 1);
    for (size_t i = 0; i < np && i < m; i++) {
        if (p[i].step != newest[i].step || bits_of(p[i].value) != bits_of(newest[i].v) ||
            p[i].generation != newest[i].gen) {
            CHECK(0, "newest point %zu: step %" PRId64 " gen %d, model %" PRId64 " gen %d", i, p[i].step,
                  p[i].generation, newest[i].step, newest[i].gen);
            break;
        }
    }
    free(p);
    CHECK(tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, TSS_ALL_TIMELINES, &p, &np) == 0 && np == n,
          "all timelines: %zu of %zu", np, n);
    free(p);

    for (size_t i = 0; i < sizeof nbs / sizeof nbs[0]; i++) {
        bk_compare(rd, ids[0], lo, hi, nbs[i]);
        bk_compare(rd, ids[0], lo - 1000, hi + 12345, nbs[i]);
        for (int r = 0; r < 5; r++) {
            int64_t a = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
            int64_t b = a + (int64_t)(rnd() % (uint64_t)(hi - a + 1));
            bk_compare(rd, ids[0], a, b, nbs[i]);
        }
    }
    bk_compare(rd, ids[0], INT64_MIN, INT64_MAX, 1000);
    bk_compare(rd, ids[0], lo, lo, 3);
    bk_compare(rd, ids[1], lo, hi, 10); /* a series without points */
    tss_bucket one;
    CHECK(tss_read_buckets(rd, ids[0], 10, 5, 1, &one) == -EINVAL, "from > to is refused");
    CHECK(tss_read_buckets(rd, ids[0], 0, 5, 0, &one) == -EINVAL, "zero buckets are refused");
    tss_close(rd);
}

/* Summaries keep -0.0: a bucket made of whole chunks of zeros reports the
 * -0.0 logged first as its first, min and max (ties keep the earliest). */
static void test_buckets_keep_negative_zero(void)
{
    char path[256];
    int64_t ids[1];
    tss_bucket b[3];

    path_in(path, sizeof path, "zeros", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "zeros", 1, ids);
    for (int64_t s = 0; s < 3 * TSC_MAX_POINTS; s++)
        tss_append(wr, ids[0], s, s, s % 2 ? 0.0 : -0.0);
    CHECK(tss_close(wr) == 0, "close");
    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_read_buckets(rd, ids[0], 0, 3 * TSC_MAX_POINTS - 1, 3, b) == 0, "buckets: %s", tss_errmsg(rd));
    for (int i = 0; i < 3; i++)
        CHECK(b[i].count == TSC_MAX_POINTS && bits_of(b[i].first) == bits_of(-0.0) &&
                  bits_of(b[i].min) == bits_of(-0.0) && bits_of(b[i].max) == bits_of(-0.0) &&
                  bits_of(b[i].last) == bits_of(0.0),
              "bucket %d: first %g min %g max %g", i, b[i].first, b[i].min, b[i].max);
    bk_compare(rd, ids[0], 0, 3 * TSC_MAX_POINTS - 1, 3);
    tss_close(rd);
}

/* ---- group summaries (format 2) ----------------------------------------- */

typedef struct gr_ctx {
    tss_chunks *q;
    tss_store *st;
    int64_t chunks, with_groups, groups;
} gr_ctx;

/* Every chunk's groups against its decoded points: disjoint runs of points
 * in step order that cover the chunk, each one's M4 equal to folding its
 * points, all aligned to one power of two (the points of a group share
 * step >> g, consecutive groups do not). */
static int gr_check_chunk(void *ctx, const tss_chunk_row *row)
{
    static int64_t steps[TSC_MAX_POINTS], t[TSC_MAX_POINTS];
    static double v[TSC_MAX_POINTS];
    tss_bucket grp[TSS_CHUNK_GROUPS_MAX], want;
    gr_ctx *c = ctx;
    int64_t cnt = tss_chunks_decode(c->q, row->id, row->n, row->step_first, steps, t, v);
    int ng = tss_chunks_groups(c->q, row->id, row->n, row->step_first, row->step_last, grp,
                               TSS_CHUNK_GROUPS_MAX);
    int64_t i = 0;
    int g = 0;

    c->chunks++;
    CHECK(cnt == row->n, "chunk %" PRId64 ": decoded %" PRId64 " of %" PRId64, row->id, cnt, row->n);
    CHECK(ng >= 0, "chunk %" PRId64 ": groups: %s", row->id, tss_errmsg(c->st));
    if (cnt != row->n || ng <= 0)
        return 0;
    c->with_groups++;
    c->groups += ng;
    for (int k = 0; k < ng; k++)
        while (g < 63 && (grp[k].step_first >> g) != (grp[k].step_last >> g))
            g++;
    for (int k = 0; k < ng; k++) {
        tss_bucket_init(&want);
        for (; i < cnt && steps[i] <= grp[k].step_last; i++)
            tss_bucket_add(&want, steps[i], v[i]);
        if (!bk_same(&grp[k], &want)) {
            CHECK(0, "chunk %" PRId64 " group %d: count %" PRId64 "/%" PRId64 " steps %" PRId64 "..%" PRId64
                     " min %g/%g first %016" PRIx64 "/%016" PRIx64,
                  row->id, k, grp[k].count, want.count, grp[k].step_first, grp[k].step_last, grp[k].min,
                  want.min, bits_of(grp[k].first), bits_of(want.first));
            return 0;
        }
        CHECK(k == 0 || (grp[k].step_first >> g) != (grp[k - 1].step_last >> g),
              "chunk %" PRId64 ": groups %d and %d share a 2^%d-aligned range", row->id, k - 1, k, g);
    }
    CHECK(i == cnt, "chunk %" PRId64 ": groups cover %" PRId64 " of %" PRId64 " points", row->id, i, cnt);
    return 0;
}

/* Random segments (resumes), step gaps from 0 to 2^40 (g from 0 up), values
 * with NaN payloads, +-Inf, -0.0, float32 and float64 chunks. */
static size_t gr_fill(tss_store *wr, int64_t sid, bk_point *all, size_t max, int64_t *lo, int64_t *hi)
{
    int64_t step = -5000;
    size_t n = 0;
    int gen = 0;
    double last = 0;

    *lo = INT64_MAX;
    *hi = INT64_MIN;
    while (n < max) {
        size_t len = 1 + rnd() % 9000;
        int f32 = rnd() % 2, gap = (int)(rnd() % 5);
        int64_t start = n == 0 ? step : step + (int64_t)(rnd() % 30000) - 20000;
        if (n && start < step)
            gen++;
        step = start;
        for (size_t i = 0; i < len && n < max; i++, n++) {
            last = random_value(last);
            if (f32 && !isnan(last))
                last = (double)(float)last;
            all[n] = (bk_point){step, last, gen, n};
            CHECK(tss_append(wr, sid, step, (int64_t)n * 1000000, last) >= 0, "append: %s", tss_errmsg(wr));
            *lo = step < *lo ? step : *lo;
            *hi = step > *hi ? step : *hi;
            if (rnd() % 5000 == 0)
                tss_commit(wr);
            step += gap == 0 ? (int64_t)(rnd() % 2) : gap == 1 ? 1 : gap == 2 ? (int64_t)(rnd() % 100)
                    : gap == 3 ? 64 : (int64_t)(rnd() % ((int64_t)1 << 40));
        }
    }
    return n;
}

/* Buckets of power-of-two width starting at a multiple of it: the edges a
 * viewer column has, where groups replace decoding. */
static void gr_compare_aligned(tss_store *rd, int64_t sid, int64_t lo, int64_t hi)
{
    for (int r = 0; r < 40; r++) {
        int lw = (int)(rnd() % 20);
        int64_t w = (int64_t)1 << lw, a = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        size_t nb = 1 + rnd() % 300;
        a &= ~(w - 1);
        if (a > INT64_MAX - (int64_t)nb * w)
            continue;
        bk_compare(rd, sid, a, a + (int64_t)nb * w - 1, nb);
    }
}

static void test_groups_equal_decoded_points(void)
{
    static bk_point all[BK_MAX];
    char path[256];
    int64_t ids[1], lo, hi;
    gr_ctx c = {0};

    path_in(path, sizeof path, "groups", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "groups", 1, ids);
    gr_fill(wr, ids[0], all, BK_MAX, &lo, &hi);
    gr_compare_aligned(wr, ids[0], lo, hi); /* the writer's open chunks too */
    CHECK(tss_close(wr) == 0, "close");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    c.st = rd;
    CHECK(tss_chunks_open(rd, &c.q) == 0, "chunks_open");
    CHECK(tss_chunks_list(c.q, ids[0], 0, gr_check_chunk, &c) == 0, "list: %s", tss_errmsg(rd));
    CHECK(c.chunks > 10 && c.with_groups == c.chunks, "%" PRId64 " of %" PRId64 " chunks have groups",
          c.with_groups, c.chunks);
    printf("groups: %" PRId64 " chunks, %.1f groups per chunk\n", c.chunks,
           c.chunks ? (double)c.groups / (double)c.chunks : 0.0);
    tss_chunks_close(c.q);
    gr_compare_aligned(rd, ids[0], lo, hi);
    for (int r = 0; r < 20; r++) {  /* unaligned edges: decoded where a group is cut */
        int64_t a = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        bk_compare(rd, ids[0], a, a + (int64_t)(rnd() % 200000), 1 + rnd() % 500);
    }
    tss_close(rd);
}

static void sql_on(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Aligned buckets come from the groups alone: with every blob destroyed
 * they still read, exactly as before; unaligned ones decode and report the
 * damage. A damaged groups blob is reported as corrupt too. */
static void test_groups_spare_the_decoder(void)
{
    char path[256];
    int64_t ids[1];
    tss_bucket want[64], got[64], b[64];

    path_in(path, sizeof path, "groups_only", "runs.db");
    tss_store *st = open_store(path, 1, 0);
    if (!st)
        return;
    run_with_series(st, NULL, "g", 1, ids);
    for (int64_t s = 0; s < 20000; s++)
        tss_append(st, ids[0], s, s * 1000000, s % 97 == 0 ? NAN : sin((double)s) * 3);
    tss_close(st);
    st = open_store(path, 0, 0);
    if (!st)
        return;
    CHECK(tss_read_buckets(st, ids[0], 0, 64 * 512 - 1, 64, want) == 0, "buckets: %s", tss_errmsg(st));
    tss_close(st);
    sql_on(path, "UPDATE chunks SET data = x'0102'");
    st = open_store(path, 0, 0);
    if (!st)
        return;
    CHECK(tss_read_buckets(st, ids[0], 0, 64 * 512 - 1, 64, got) == 0, "aligned buckets without blobs: %s",
          tss_errmsg(st));
    for (int i = 0; i < 64; i++)
        CHECK(bk_same(&got[i], &want[i]), "bucket %d differs", i);
    CHECK(tss_read_buckets(st, ids[0], 0, 19999, 64, b) == -EINVAL, "unaligned buckets decode");
    tss_close(st);
    sql_on(path, "UPDATE chunks SET groups = substr(groups, 1, length(groups) - 3) WHERE id = 2");
    st = open_store(path, 0, 0);
    if (!st)
        return;
    int rc = tss_read_buckets(st, ids[0], 0, 64 * 512 - 1, 64, got);
    CHECK(rc == -EINVAL && strstr(tss_errmsg(st), "chunk 2") && strstr(tss_errmsg(st), "groups"),
          "damaged groups: %d %s", rc, tss_errmsg(st));
    tss_close(st);

    /* groups of another layout version are not used: the chunks are decoded */
    path_in(path, sizeof path, "groups_only", "layout.db");
    st = open_store(path, 1, 0);
    if (!st)
        return;
    run_with_series(st, NULL, "g", 1, ids);
    for (int64_t s = 0; s < 20000; s++)
        tss_append(st, ids[0], s, s * 1000000, s % 97 == 0 ? NAN : sin((double)s) * 3);
    tss_close(st);
    sql_on(path, "UPDATE chunks SET groups = x'09' || substr(groups, 2)");
    st = open_store(path, 0, 0);
    if (!st)
        return;
    CHECK(tss_read_buckets(st, ids[0], 0, 64 * 512 - 1, 64, got) == 0, "another layout: %s", tss_errmsg(st));
    for (int i = 0; i < 64; i++)
        CHECK(bk_same(&got[i], &want[i]), "another layout: bucket %d differs", i);
    tss_close(st);
}

/* A version-1 store (no groups column, the narrower index) opens, reads
 * exactly (every cut chunk decoded), and stays version 1 when a writer
 * appends to it; a version from the future is refused by name. */
static void test_version1_store_still_reads(void)
{
    static bk_point all[20000];
    char path[256];
    int64_t ids[1], lo, hi, lo2, hi2, version = 0;
    gr_ctx c = {0};
    sqlite3 *db;
    sqlite3_stmt *q;

    path_in(path, sizeof path, "v1", "runs.db");
    tss_store *st = open_store(path, 1, 0);
    if (!st)
        return;
    run_with_series(st, NULL, "v1", 1, ids);
    gr_fill(st, ids[0], all, 10000, &lo, &hi);
    tss_close(st);
    sql_on(path, "DROP INDEX chunks_by_series; ALTER TABLE chunks DROP COLUMN groups; "
                 "CREATE INDEX chunks_by_series ON chunks(series_id, gen, step_first, step_last, n); "
                 "UPDATE meta SET value = 1 WHERE key = 'format_version'");
    st = open_store(path, 1, 0);
    if (!st)
        return;
    gr_fill(st, ids[0], all + 10000, 10000, &lo2, &hi2);
    CHECK(tss_close(st) == 0, "close the v1 writer");
    lo = lo2 < lo ? lo2 : lo;
    hi = hi2 > hi ? hi2 : hi;
    st = open_store(path, 0, 0);
    if (!st)
        return;
    c.st = st;
    CHECK(tss_chunks_open(st, &c.q) == 0, "chunks_open");
    CHECK(tss_chunks_list(c.q, ids[0], 0, gr_check_chunk, &c) == 0, "list: %s", tss_errmsg(st));
    CHECK(c.chunks > 4 && c.with_groups == 0, "v1: %" PRId64 " of %" PRId64 " chunks have groups",
          c.with_groups, c.chunks);
    tss_chunks_close(c.q);
    gr_compare_aligned(st, ids[0], lo, hi);
    bk_compare(st, ids[0], lo, hi, 777);
    tss_close(st);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'format_version'", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            version = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    CHECK(version == 1, "a v1 store written by this writer is version %" PRId64, version);

    sql_on(path, "UPDATE meta SET value = 3 WHERE key = 'format_version'");
    char err[512];
    st = NULL;
    int rc = tss_open(&st, path, NULL, err, sizeof err);
    CHECK(rc == -EINVAL && strstr(err, "format version 3") && strstr(err, "versions 1 to 2"),
          "version 3: %d %s", rc, err);
    tss_close(st);
}

/* ---- one writer, many readers ------------------------------------------ */

static int second_writer_helper(const char *path)
{
    tss_open_opts o = {.writer = 1};
    tss_store *st = NULL;
    char err[512];
    int rc = tss_open(&st, path, &o, err, sizeof err);
    if (rc == -EBUSY && strstr(err, "already being written") && strstr(err, path))
        return 0;
    printf("second writer got %d: %s\n", rc, err);
    tss_close(st);
    return 1;
}

static void test_second_writer_is_refused(void)
{
    char path[256], wal[300], self[512], err[512];
    int64_t ids[1];
    size_t dblen, wallen;
    tss_store *st2 = NULL;
    tss_open_opts o = {.writer = 1};
    ssize_t len;

    path_in(path, sizeof path, "lock", "runs.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "locked", 1, ids);
    for (int s = 0; s < 5000; s++)
        tss_append(wr, ids[0], s, s, s);
    CHECK(tss_commit(wr) == 0, "commit");
    tss_append(wr, ids[0], 5000, 5000, 1.0); /* pending, in memory */
    unsigned char *db = slurp(path, &dblen), *wl = slurp(wal, &wallen);

    /* Another process, as a second collector would be. */
    len = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(len > 0, "readlink /proc/self/exe");
    if (len > 0) {
        self[len] = '\0';
        pid_t pid = fork();
        if (pid == 0) {
            execl(self, self, "--second-writer", path, (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a second writer process is refused with -EBUSY");
    }
    /* And a second handle in this process. */
    int rc = tss_open(&st2, path, &o, err, sizeof err);
    CHECK(rc == -EBUSY && st2 == NULL && strstr(err, "already being written"), "in-process: %d %s", rc, err);
    CHECK(same_file(db, dblen, path) && same_file(wl, wallen, wal), "the refused writers changed the files");
    free(db);
    free(wl);

    /* The first writer still works and its lock is intact. */
    CHECK(tss_append(wr, ids[0], 5001, 5001, 1.0) == 0, "first writer goes on");
    CHECK(tss_close(wr) == 0, "close: %s", tss_errmsg(wr));
    tss_store *rd = open_store(path, 0, 0);
    tss_point *p = NULL;
    size_t n = 0;
    CHECK(rd && tss_read_points(rd, ids[0], INT64_MIN, INT64_MAX, 0, &p, &n) == 0 && n == 5002, "%zu points",
          n);
    free(p);
    tss_close(rd);
    /* Once closed, the store can be written again. */
    wr = open_store(path, 1, 0);
    tss_close(wr);
}

static void test_reader_sees_commits_while_writer_writes(void)
{
    char path[256];
    int64_t ids[1];
    tss_point *p = NULL;
    size_t n = 0;
    tss_run *runs = NULL;
    size_t nruns = 0;

    path_in(path, sizeof path, "live", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_with_series(wr, NULL, "live", 1, ids);
    for (int s = 0; s < 100; s++)
        tss_append(wr, ids[0], s, s, s);
    CHECK(tss_commit(wr) == 0, "commit");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd) {
        tss_close(wr);
        return;
    }
    CHECK(tss_read_points(rd, ids[0], 0, INT64_MAX, 0, &p, &n) == 0 && n == 100, "committed: %zu", n);
    free(p);
    for (int s = 100; s < 6000; s++)
        tss_append(wr, ids[0], s, s, s);
    CHECK(tss_read_points(rd, ids[0], 0, INT64_MAX, 0, &p, &n) == 0 && n == 100,
          "before the commit a reader sees only the committed points: %zu", n);
    free(p);
    CHECK(tss_read_points(wr, ids[0], 0, INT64_MAX, 0, &p, &n) == 0 && n == 6000,
          "the writer's handle sees everything appended: %zu", n);
    free(p);
    CHECK(tss_commit(wr) == 0, "commit");
    CHECK(tss_read_points(rd, ids[0], 0, INT64_MAX, 0, &p, &n) == 0 && n == 6000, "after the commit: %zu", n);
    free(p);
    CHECK(tss_list_runs(rd, &runs, &nruns) == 0 && nruns == 1 && runs[0].points == 6000, "list_runs");
    tss_free_runs(runs, nruns);
    CHECK(tss_close(wr) == 0, "close");
    CHECK(tss_read_points(rd, ids[0], 0, INT64_MAX, 0, &p, &n) == 0 && n == 6000, "after the writer left");
    free(p);
    tss_close(rd);
}

/* ---- files that are not stores ----------------------------------------- */

static void expect_refused(const char *path, int writer, int want, const char *what)
{
    tss_open_opts o = {.writer = writer};
    tss_store *st = NULL;
    char err[512] = "";
    size_t len;
    unsigned char *before = slurp(path, &len);
    int rc = tss_open(&st, path, &o, err, sizeof err);
    CHECK(rc == want && st == NULL && strstr(err, path), "%s (%s): %d %s", what, writer ? "writer" : "reader",
          rc, err);
    CHECK(same_file(before, len, path), "%s: the refused open changed the file", what);
    free(before);
    tss_close(st);
}

static void test_not_a_store_is_refused(void)
{
    char path[256], wal[300];
    unsigned char junk[8192];
    FILE *f;
    sqlite3 *db;

    path_in(path, sizeof path, "junk", "random.db");
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rnd();
    f = fopen(path, "wb");
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    expect_refused(path, 1, -EINVAL, "random bytes");
    expect_refused(path, 0, -EINVAL, "random bytes");
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK(access(wal, F_OK) != 0, "no WAL file was created next to random bytes");

    path_in(path, sizeof path, "junk", "header.db");
    memcpy(junk, "SQLite format 3", 16);
    f = fopen(path, "wb");
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    expect_refused(path, 1, -EINVAL, "a SQLite header over garbage");
    expect_refused(path, 0, -EINVAL, "a SQLite header over garbage");

    path_in(path, sizeof path, "junk", "other.db");
    CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
    sqlite3_exec(db, "CREATE TABLE songs(title TEXT); INSERT INTO songs VALUES('x')", NULL, NULL, NULL);
    sqlite3_close(db);
    expect_refused(path, 1, -EINVAL, "a SQLite database with other tables");
    expect_refused(path, 0, -EINVAL, "a SQLite database with other tables");

    path_in(path, sizeof path, "junk", "empty.db");
    f = fopen(path, "wb");
    fclose(f);
    expect_refused(path, 0, -EINVAL, "an empty file");
    /* A writer makes an empty file a store: it is what open(O_CREAT) leaves
     * when a collector dies before its first commit. */
    tss_store *st = open_store(path, 1, 0);
    tss_close(st);
    st = open_store(path, 0, 0);
    tss_close(st);

    path_in(path, sizeof path, "junk", "missing.db");
    expect_refused(path, 0, -ENOENT, "a missing file");
    CHECK(access(path, F_OK) != 0, "a reader does not create a store");
}

/* ---- corruption -------------------------------------------------------- */

static void test_corrupt_chunk_is_reported(void)
{
    static const char *const damage[] = {
        "UPDATE chunks SET data = x'0102'",
        "UPDATE chunks SET data = substr(data, 1, length(data) / 2)",
        "UPDATE chunks SET n = n + 1",
        "UPDATE chunks SET data = zeroblob(length(data))",
    };
    for (size_t d = 0; d < sizeof damage / sizeof damage[0]; d++) {
        char path[256], file[32], sql[256];
        int64_t ids[1], run_id;
        tss_point *p = NULL;
        size_t n = 0;
        tss_bucket b[64];
        tss_series *ser = NULL;
        size_t nser = 0;
        sqlite3 *db;

        snprintf(file, sizeof file, "corrupt%zu.db", d);
        path_in(path, sizeof path, "corrupt", file);
        tss_store *st = open_store(path, 1, 0);
        if (!st)
            return;
        run_id = run_with_series(st, NULL, "c", 1, ids);
        for (int s = 0; s < 10000; s++)
            tss_append(st, ids[0], s, s, s * 0.5);
        tss_close(st);

        CHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
        snprintf(sql, sizeof sql, "%s WHERE id = (SELECT MIN(id) FROM chunks)", damage[d]);
        CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_close(db);

        st = open_store(path, 0, 0);
        if (!st)
            return;
        int rc = tss_read_points(st, ids[0], INT64_MIN, INT64_MAX, 0, &p, &n);
        CHECK(rc == -EINVAL && p == NULL && strstr(tss_errmsg(st), "chunk") && strstr(tss_errmsg(st), "series"),
              "%s: read_points %d: %s", damage[d], rc, tss_errmsg(st));
        free(p);
        rc = tss_read_buckets(st, ids[0], 0, 9999, 64, b);
        CHECK(rc == -EINVAL, "%s: read_buckets %d: %s", damage[d], rc, tss_errmsg(st));
        /* Only the damaged chunk is unreadable. */
        rc = tss_read_points(st, ids[0], 5000, 9999, 0, &p, &n);
        CHECK(rc == 0 && n == 5000, "%s: the other chunks: %d %zu", damage[d], rc, n);
        free(p);
        CHECK(tss_list_series(st, run_id, &ser, &nser) == 0 && nser == 1, "list_series still works");
        tss_free_series(ser, nser);
        tss_close(st);
    }
}

/* ---- streams and names ------------------------------------------------- */

typedef struct bind_seen {
    uint32_t metric[4];
    int64_t series[4];
    int n;
} bind_seen;

static void on_bind(void *ctx, uint32_t metric_id, int64_t series_id)
{
    bind_seen *b = ctx;
    if (b->n < 4) {
        b->metric[b->n] = metric_id;
        b->series[b->n] = series_id;
    }
    b->n++;
}

static void test_streams_keep_seq_and_bindings(void)
{
    char path[256];
    int64_t ids[2], run_id;
    const uint64_t stream = 0xfedcba9876543210ull;
    tss_stream_info info;
    bind_seen seen = {0};

    path_in(path, sizeof path, "streams", "runs.db");
    tss_store *wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_id = run_with_series(wr, NULL, "s", 2, ids);
    CHECK(tss_stream_open(wr, stream, run_id, 3, "{\"rank\":3}", 5) == 0, "stream_open: %s", tss_errmsg(wr));
    CHECK(tss_stream_bind(wr, stream, 7, ids[1]) == 0 && tss_stream_bind(wr, stream, 2, ids[0]) == 0, "bind");
    CHECK(tss_stream_set_seq(wr, stream, 41) == 0, "set_seq");
    CHECK(tss_stream_find(wr, stream, &info) == 0 && info.last_seq == 41 && info.rank == 3 &&
              info.run_id == run_id && !info.ended,
          "find on the writer: seq %" PRIu64, info.last_seq);
    CHECK(tss_stream_set_seq(wr, 12345, 1) == -ENOENT, "set_seq of an unknown stream");
    CHECK(tss_commit(wr) == 0, "commit");
    CHECK(tss_stream_set_seq(wr, stream, 0xffffffffffffff00ull) == 0, "set_seq");
    CHECK(tss_stream_end(wr, stream, 9) == 0, "end");
    CHECK(tss_close(wr) == 0, "close");

    tss_store *rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_stream_find(rd, stream, &info) == 0 && info.last_seq == 0xffffffffffffff00ull && info.ended,
          "find after reopen: seq %" PRIx64 " ended %d", info.last_seq, info.ended);
    CHECK(tss_stream_find(rd, 1, &info) == -ENOENT, "unknown stream");
    CHECK(tss_stream_bindings(rd, stream, on_bind, &seen) == 0 && seen.n == 2 && seen.metric[0] == 2 &&
              seen.series[0] == ids[0] && seen.metric[1] == 7 && seen.series[1] == ids[1],
          "bindings: %d", seen.n);
    tss_close(rd);
}

static void test_find_run_by_name_and_project(void)
{
    char path[256];
    int64_t a1, a2, solo, got = 0;

    path_in(path, sizeof path, "names", "runs.db");
    tss_store *st = open_store(path, 1, 0);
    if (!st)
        return;
    tss_run_open(st, "p1", "a", NULL, 1, 1, &a1);
    tss_run_open(st, "p2", "a", NULL, 1, 2, &a2);
    tss_run_open(st, NULL, "sweep/lr=0.1", NULL, 1, 3, &solo);
    CHECK(tss_find_run(st, "a", &got) == -EEXIST && strstr(tss_errmsg(st), "p1") && strstr(tss_errmsg(st), "p2"),
          "ambiguous: %s", tss_errmsg(st));
    CHECK(tss_find_run(st, "p2/a", &got) == 0 && got == a2, "p2/a");
    CHECK(tss_find_run(st, "sweep/lr=0.1", &got) == 0 && got == solo, "a name with a slash");
    tss_run *runs = NULL;
    size_t n = 0;
    CHECK(tss_list_runs(st, &runs, &n) == 0 && n == 3 && runs[0].id == solo && runs[2].id == a1 &&
              strcmp(runs[0].project, "") == 0 && runs[0].config == NULL && runs[0].ended_ns == 0,
          "newest first");
    tss_free_runs(runs, n);
    tss_close(st);
}

/* ---- main -------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* A read of more than 65536 points (a result over 2 MiB, allocated apart and
 * advised as huge pages) returns every point bit-exact, also a middle range
 * and on the writer's own handle before the commit. A new store has 1 KiB
 * pages: a chunk blob then wastes half a KiB in its last page, not 2 KiB. */
static void test_large_read_is_exact(void)
{
    enum { N = 200000 };
    char path[256];
    int64_t id, run_id;
    tss_store *wr, *rd;
    tss_point *pts = NULL;
    size_t n = 0;
    int bad = 0;

    path_in(path, sizeof path, "large", "runs.db");
    wr = open_store(path, 1, 0);
    if (!wr)
        return;
    run_id = run_with_series(wr, "", "large", 1, &id);
    (void)run_id;
    for (int64_t i = 0; i < N; i++)
        if (tss_append(wr, id, i, 1700000000000000000 + i * 1000000, (double)(float)(1.0 / (double)(i + 1))) != 0)
            bad++;
    CHECK(bad == 0, "%d appends failed", bad);
    CHECK(tss_read_points(wr, id, 0, N - 1, 0, &pts, &n) == 0 && n == N, "writer reads %zu of %d", n, N);
    free(pts);
    CHECK(tss_close(wr) == 0, "close");

    rd = open_store(path, 0, 0);
    if (!rd)
        return;
    CHECK(tss_read_points(rd, id, 0, N - 1, 0, &pts, &n) == 0 && n == N, "reader reads %zu of %d: %s", n, N,
          tss_errmsg(rd));
    for (size_t i = 0; i < n && !bad; i++)
        if (pts[i].step != (int64_t)i || pts[i].t_ns != 1700000000000000000 + (int64_t)i * 1000000 ||
            pts[i].value != (double)(float)(1.0 / (double)(i + 1))) {
            bad = 1;
            CHECK(0, "point %zu differs: step %" PRId64 " value %.17g", i, pts[i].step, pts[i].value);
        }
    free(pts);
    CHECK(tss_read_points(rd, id, 70001, 170000, 0, &pts, &n) == 0 && n == 100000 && pts[0].step == 70001 &&
              pts[n - 1].step == 170000,
          "middle range: %zu points", n);
    free(pts);
    tss_close(rd);

    sqlite3 *db;
    sqlite3_stmt *q;
    int page = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            page = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    CHECK(page == 1024, "page size of a new store: %d", page);
}

int main(int argc, char **argv)
{
    const char *seed = getenv("TEST_STORE_SEED");

    if (argc == 3 && strcmp(argv[1], "--second-writer") == 0)
        return second_writer_helper(argv[2]);
    if (seed)
        rng_state = strtoull(seed, NULL, 0) | 1;
    snprintf(tmproot, sizeof tmproot, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(tmproot)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip_is_bit_exact();
    test_time_unit_floors();
    test_resume_keeps_every_point();
    test_generation_survives_writer_reopen();
    test_buckets_equal_reduced_points();
    test_buckets_keep_negative_zero();
    test_groups_equal_decoded_points();
    test_groups_spare_the_decoder();
    test_version1_store_still_reads();
    test_second_writer_is_refused();
    test_reader_sees_commits_while_writer_writes();
    test_not_a_store_is_refused();
    test_corrupt_chunk_is_reported();
    test_streams_keep_seq_and_bindings();
    test_find_run_by_name_and_project();
    test_large_read_is_exact();
    nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("test_store: all checks passed\n");
    return 0;
}
