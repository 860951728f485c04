/* test_viewer_plot.c - the viewer's plot maths and rasterizer, apart from
 * SDL: nice ticks and their SI labels, the column mapping and its inverse,
 * the value-to-row map's monotonicity, clipping that never moves a pixel,
 * and the exactness rule of plot.h (M4 drawing == every point drawn) on
 * random series with NaN, +-Inf and gaps. Exit 0 when every check holds.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "raster.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void labels(void)
{
    static const struct {
        double v, step;
        const char *want;
    } cases[] = {
        {1200, 200, "1.2k"}, {3e6, 1e6, "3M"}, {2e-4, 1e-4, "2e-4"}, {0, 0.5, "0"},
        {0.5, 0.1, "0.5"}, {-2500, 500, "-2.5k"}, {4.5e9, 5e8, "4.5G"}, {1.25e-5, 5e-7, "1.25e-5"},
        {120, 20, "120"}, {1000000, 200000, "1.0M"}, {7, 1, "7"}, {0.05, 0.05, "0.05"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        tvp_format(cases[i].v, cases[i].step, buf, sizeof buf);
        CHECK(strcmp(buf, cases[i].want) == 0, "format(%g, %g) = %s, want %s", cases[i].v, cases[i].step,
              buf, cases[i].want);
    }
    char d[32];
    tvp_format_duration(90ll * 1000000000, 30ll * 1000000000, d, sizeof d);
    CHECK(strcmp(d, "1m30s") == 0, "duration 90 s = %s", d);
    tvp_format_duration(7200ll * 1000000000 + 300ll * 1000000000, 3600ll * 1000000000, d, sizeof d);
    CHECK(strcmp(d, "2h05m") == 0, "duration 2h05m = %s", d);
}

static void ticks(void)
{
    for (int i = 0; i < 2000; i++) {
        double lo = ((double)(rnd() % 2000000) - 1e6) * pow(10, (int)(rnd() % 20) - 10);
        double hi = lo + ((double)(rnd() % 1000000) + 1) * pow(10, (int)(rnd() % 20) - 10);
        if (hi - lo < fabs(lo) * 1e-9)
            continue;   /* below what a double axis can label */
        double t[TVP_MAX_TICKS], step;
        int maxt = 2 + (int)(rnd() % 10);
        size_t n = tvp_ticks(lo, hi, maxt, t, &step);
        double m = step / pow(10, floor(log10(step)));
        CHECK(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9 || fabs(m - 10) < 1e-9,
              "step %g is not 1, 2 or 5 x 10^k", step);
        CHECK(n <= (size_t)maxt + 1, "%zu ticks for at most %d", n, maxt);
        for (size_t k = 0; k < n; k++) {
            CHECK(t[k] >= lo - step * 1e-6 && t[k] <= hi + step * 1e-6, "tick %g outside [%g, %g]", t[k], lo, hi);
            CHECK(fabs(t[k] / step - round(t[k] / step)) < 1e-6, "tick %g not a multiple of %g", t[k], step);
        }
    }
}

static void columns(void)
{
    for (int i = 0; i < 20000; i++) {
        int64_t from = (int64_t)(rnd() % 2000001) - 1000000;
        if (i % 7 == 0)
            from = INT64_MIN + (int64_t)(rnd() % 1000);
        int64_t to = from + (int64_t)(rnd() % (i % 3 ? 100000 : 50));
        if (i % 11 == 0)
            to = INT64_MAX - (int64_t)(rnd() % 1000);
        size_t ncols = 1 + rnd() % 2000;
        size_t c = rnd() % ncols;
        int64_t lo, hi;
        tvp_col_range(from, to, ncols, c, &lo, &hi);
        if (lo > hi)
            continue;   /* no integer x in this column */
        CHECK(tvp_col(from, to, ncols, lo) == c && tvp_col(from, to, ncols, hi) == c,
              "column %zu of %zu over [%lld, %lld]: [%lld, %lld] maps to %zu, %zu", c, ncols, (long long)from,
              (long long)to, (long long)lo, (long long)hi, tvp_col(from, to, ncols, lo), tvp_col(from, to, ncols, hi));
        CHECK(lo == from || tvp_col(from, to, ncols, lo - 1) == c - 1 || tvp_col(from, to, ncols, lo - 1) < c,
              "x before column %zu's first is not in an earlier column", c);
        CHECK(hi == to || tvp_col(from, to, ncols, hi + 1) > c, "x after column %zu's last is in it", c);
    }
}

static void rows(void)
{
    tvp_yscale ys = {.lo = -1.5, .hi = 3.25, .top = 10, .height = 300};
    double prev = -INFINITY;
    int prow = tvp_row(&ys, prev);
    for (int i = 0; i < 100000; i++) {
        double v = prev + ldexp((double)(rnd() % 1000), (int)(rnd() % 40) - 40);
        int r = tvp_row(&ys, v);
        CHECK(r <= prow, "row(%.17g) = %d above row(%.17g) = %d: not monotone", prev, prow, v, r);
        prev = v;
        prow = r;
    }
    CHECK(tvp_row(&ys, INFINITY) < -1000000 && tvp_row(&ys, -INFINITY) > 1000000, "+-inf far beyond the plot");
    ys.log = 1;
    ys.lo = -3;
    ys.hi = 2;
    CHECK(tvp_row(&ys, 0) == tvp_row(&ys, -5) && tvp_row(&ys, 0) > ys.top + ys.height, "log: <= 0 below the plot");
}

#define W 97
#define H 61

static void clipping(void)
{
    static uint32_t a[W * H], b[W * H];
    tvr_canvas ca, cb;
    tvr_canvas_init(&ca, a, W, H, W);
    tvr_canvas_init(&cb, b, W, H, W);
    for (int i = 0; i < 3000; i++) {
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        int x0 = (int)(rnd() % 400) - 150, y0 = (int)(rnd() % 400) - 150;
        int x1 = (int)(rnd() % 400) - 150, y1 = (int)(rnd() % 400) - 150;
        if (i % 5 == 0)
            y1 = (int)(rnd() % 2 ? 1 << 24 : -(1 << 24));
        tvr_rect clip = {(int)(rnd() % W), (int)(rnd() % H), (int)(rnd() % W), (int)(rnd() % H)};
        tvr_set_clip(&ca, clip);
        tvr_line(&ca, x0, y0, x1, y1, 0xffffffffu, 0);
        if (i % 5 == 0)
            continue;   /* the unclipped reference would walk 2^24 pixels */
        /* reference: the whole segment on a canvas without clip, then masked */
        static uint32_t big[600 * 600];
        tvr_canvas cbig;
        memset(big, 0, sizeof big);
        tvr_canvas_init(&cbig, big, 600, 600, 600);
        tvr_line(&cbig, x0 + 200, y0 + 200, x1 + 200, y1 + 200, 0xffffffffu, 0);
        int same = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int in = x >= ca.clip.x && x < ca.clip.x + ca.clip.w && y >= ca.clip.y && y < ca.clip.y + ca.clip.h;
                uint32_t want = in ? big[(y + 200) * 600 + x + 200] : 0;
                same &= a[y * W + x] == want;
            }
        CHECK(same, "clipped segment (%d,%d)-(%d,%d) differs from the unclipped one inside the clip", x0, y0, x1, y1);
    }
    (void)cb;
}

typedef struct fixctx {
    const tss_point *p;
    size_t n;
    int64_t from, to;
    size_t ncols;
} fixctx;

/* The first and last non-NaN points of column col (what view.c reads with
 * tvm_points for such a column). */
static int fix_cb(void *ctx, size_t col, tss_bucket *b)
{
    const fixctx *f = ctx;
    int found = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->p[i].step < f->from || f->p[i].step > f->to || isnan(f->p[i].value) ||
            tvp_col(f->from, f->to, f->ncols, f->p[i].step) != col)
            continue;
        if (!found) {
            b->first = f->p[i].value;
            b->step_first = f->p[i].step;
        }
        found = 1;
        b->last = f->p[i].value;
        b->step_last = f->p[i].step;
    }
    return found ? 0 : -1;
}

static void exactness(void)
{
    static uint32_t a[W * H], b[W * H];
    tvr_canvas ca, cb;
    tvr_canvas_init(&ca, a, W, H, W);
    tvr_canvas_init(&cb, b, W, H, W);
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 1 + rnd() % 3000, ncols = 5 + rnd() % (W - 10);
        tss_point *p = calloc(n, sizeof *p);
        tss_bucket *cols = calloc(ncols, sizeof *cols);
        int64_t step = (int64_t)(rnd() % 100);
        for (size_t i = 0; i < n; i++) {
            step += 1 + (int64_t)(rnd() % (iter % 4 ? 3 : 200));
            p[i].step = step;
            uint64_t r = rnd() % 100;
            p[i].value = r < 4 ? NAN : r == 4 ? INFINITY : r == 5 ? -INFINITY : (double)(rnd() % 1000) / 37.0;
        }
        int64_t from = p[0].step - (int64_t)(rnd() % 50), to = p[n - 1].step + (int64_t)(rnd() % 50);
        if (iter % 3 == 0) {   /* a window inside the data */
            from = p[n / 4].step;
            to = p[3 * n / 4].step;
        }
        /* M4 of the points in range, by the rules of model.h */
        for (size_t c = 0; c < ncols; c++)
            cols[c] = (tss_bucket){.min = NAN, .max = NAN, .first = NAN, .last = NAN};
        for (size_t i = 0; i < n; i++) {
            if (p[i].step < from || p[i].step > to)
                continue;
            tss_bucket *k = &cols[tvp_col(from, to, ncols, p[i].step)];
            double v = p[i].value;
            if (k->count == 0) {
                k->first = v;
                k->step_first = p[i].step;
            }
            k->count++;
            k->last = v;
            k->step_last = p[i].step;
            if (isnan(v))
                k->n_nan++;
            else {
                if (isinf(v))
                    k->n_inf++;
                if (isnan(k->min) || v < k->min)
                    k->min = v;
                if (isnan(k->max) || v > k->max)
                    k->max = v;
            }
        }
        int64_t gf[2] = {p[n / 3].step, p[n / 2].step}, gl[2] = {p[n / 3].step + 5, p[n / 2].step + 40};
        tvp_gaps gaps = {gf, gl, iter % 2 ? 2 : 0};
        tvp_yscale ys = {.lo = -3, .hi = 30, .top = 3, .height = H - 6};
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        tvp_series_style st = {.argb = 0xff00ff00u};
        fixctx fc = {p, n, from, to, ncols};
        int rc = tvp_draw_columns(&ca, 1, cols, ncols, &ys, &gaps, fix_cb, &fc, st);
        CHECK(rc == 0, "draw_columns: %d", rc);
        tvp_draw_points(&cb, 1, p, n, 0, from, to, ncols, &ys, &gaps, st);
        CHECK(memcmp(a, b, sizeof a) == 0, "iteration %d: M4 drawing differs from every point drawn (%zu points, %zu columns)",
              iter, n, ncols);
        free(p);
        free(cols);
    }
}

int main(void)
{
    labels();
    ticks();
    columns();
    rows();
    clipping();
    exactness();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
