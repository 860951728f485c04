/* render.c - drawing one frame of the view into a tvr_canvas: legend, the
 * panel grid, per panel its axes, gaps, events, lines (M4 columns or every
 * point), markers and the hover box, then the status line and overlays.
 *
 * Per panel the M4 columns of every visible series are fetched into one
 * scratch array of the view (reused across frames: no allocation per frame
 * once the window size is stable) and the y scale is taken from them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view_int.h"

static const uint32_t palette[] = {
    0xff1f77b4, 0xffff7f0e, 0xff2ca02c, 0xffd62728, 0xff9467bd,
    0xff8c564b, 0xffe377c2, 0xff17becf, 0xffbcbd22, 0xff7f7f7f,
};
#define NPAL (sizeof palette / sizeof palette[0])

static uint32_t mix_rgb(uint32_t a, uint32_t b, double t)   /* a*(1-t) + b*t, opaque */
{
    uint32_t out = 0xff000000u;
    for (int sh = 0; sh <= 16; sh += 8) {
        double ca = (a >> sh) & 255, cb = (b >> sh) & 255;
        out |= (uint32_t)(ca + (cb - ca) * t + 0.5) << sh;
    }
    return out;
}

uint32_t tvv__run_colour(const tvv_view *v, size_t run)
{
    return palette[v->run_rank[run] % NPAL];
}

static uint32_t series_colour(const tvv_view *v, const tvm_series *s)
{
    uint32_t c = palette[v->run_rank[s->run] % NPAL];
    return s->rank > 0 ? mix_rgb(c, BG, 0.15 * (s->rank < 4 ? s->rank : 4)) : c;
}

typedef struct fix_ctx {
    tvm_source *src;
    size_t series;
    int64_t from, to;
    size_t ncols;
    int flags;
} fix_ctx;

/* A column whose first or last value is NaN: the line joins its first and
 * last non-NaN points instead, read from the points of that column. */
static int fix_nan_ends(void *ctx, size_t col, tss_bucket *b)
{
    const fix_ctx *f = ctx;
    int64_t lo, hi;
    tvp_col_range(f->from, f->to, f->ncols, col, &lo, &hi);
    tss_point *pts = NULL;
    size_t n = 0;
    int rc = tvm_points(f->src, f->series, lo, hi, f->flags, &pts, &n);
    if (rc < 0)
        return rc;
    size_t i = 0, j = n;
    while (i < n && isnan(pts[i].value))
        i++;
    while (j > i && isnan(pts[j - 1].value))
        j--;
    if (i < j) {
        b->first = pts[i].value;
        b->step_first = pts[i].step;
        b->last = pts[j - 1].value;
        b->step_last = pts[j - 1].step;
    }
    free(pts);
    return i < j ? 0 : -EINVAL;
}

/* The dropped ranges of one run and rank, into the scratch arrays. */
static tvp_gaps gaps_of(tvv_view *v, size_t run, int rank)
{
    tvp_gaps g = {0};
    size_t n = tvm_gap_count(v->src), k = 0;
    size_t cap1 = v->gap_cap, cap2 = v->gap_cap;
    if (tvv__grow((void **)&v->gap_first, &cap1, n, sizeof(int64_t)) < 0 ||
        tvv__grow((void **)&v->gap_last, &cap2, n, sizeof(int64_t)) < 0)
        return g;
    v->gap_cap = cap1 < cap2 ? cap1 : cap2;
    for (size_t i = 0; i < n; i++) {
        const tvm_gap *gp = tvm_gap_at(v->src, i);
        if (gp->run == run && gp->rank == rank) {
            v->gap_first[k] = gp->step_first;
            v->gap_last[k] = gp->step_last;
            k++;
        }
    }
    g.first = v->gap_first;
    g.last = v->gap_last;
    g.n = k;
    return g;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* y range of the panel from its columns: finite values (positive ones on a
 * log axis), optionally without the outer 1% of the column extremes. */
static void y_range(tvv_view *v, panel *p, const unsigned char *vis, size_t ncols, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    size_t nv = 0;
    int collect = v->outliers && tvv__grow((void **)&v->tmp, &v->tmp_cap, p->nseries * ncols * 2, sizeof(double)) == 0;
    for (size_t k = 0; k < p->nseries; k++) {
        if (!vis[k])
            continue;
        const tss_bucket *c = &v->cols[k * ncols];
        for (size_t i = 0; i < ncols; i++) {
            if (c[i].count - c[i].n_nan <= 0)
                continue;
            double mn = c[i].min, mx = c[i].max;
            if (v->log_y) {
                if (!(mx > 0))
                    continue;
                if (!(mn > 0))
                    mn = mx;
            }
            if (!isfinite(mn))
                mn = isfinite(mx) ? mx : NAN;
            if (!isfinite(mx))
                mx = mn;
            if (isnan(mn))
                continue;
            a = mn < a ? mn : a;
            b = mx > b ? mx : b;
            if (collect) {
                v->tmp[nv++] = mn;
                v->tmp[nv++] = mx;
            }
        }
    }
    if (collect && nv >= 200) {
        qsort(v->tmp, nv, sizeof *v->tmp, cmp_double);
        a = v->tmp[nv / 100];
        b = v->tmp[nv - 1 - nv / 100];
    }
    if (a > b) {     /* nothing finite */
        a = v->log_y ? 0.1 : 0;
        b = 1;
    }
    if (v->log_y) {
        a = log10(a);
        b = log10(b);
    }
    if (a == b) {
        double d = fabs(a) > 0 ? fabs(a) * 0.1 : 1;
        a -= d;
        b += d;
    }
    double pad = (b - a) * 0.05;
    *lo = a - pad;
    *hi = b + pad;
}

/* "kind: text", cut to fit the label (on a UTF-8 boundary, with "..."), so
 * a long note or a JSON config does not run across the plot; a JSON text
 * shows as its kind alone. */
static void event_label(const tvm_event *e, char *out, size_t cap)
{
    const char *text = e->text ? e->text : "";
    if (*text == '{' || *text == '[')
        text = "";
    int n = snprintf(out, cap, "%s%s%s", e->kind, *text ? ": " : "", text);
    if (n < 0 || (size_t)n < cap)
        return;
    size_t end = cap - 4;   /* room for "..." and the terminator */
    while (end > 0 && ((unsigned char)out[end] & 0xC0) == 0x80)
        end--;              /* do not cut a UTF-8 sequence */
    memcpy(out + end, "...", 4);
}

static int64_t event_x(const tvv_view *v, const tvm_event *e)
{
    return v->xmode == TVV_X_STEP ? e->step : v->xmode == TVV_X_WALL ? e->t_ns : e->t_ns - v->run_start[e->run];
}

static int panel_has_run(const tvv_view *v, const panel *p, size_t run)
{
    for (size_t k = 0; k < p->nseries; k++)
        if (tvm_series_at(v->src, p->series[k])->run == run)
            return 1;
    return 0;
}

/* A tick label under the plot, centred on x; left out when it would reach
 * into the next panel. */
static void x_label(tvv_view *v, tvr_canvas *cv, const panel *p, int x, const char *text)
{
    int w = tvt_width(v->font, text);
    if (x + w / 2 > p->plot.x + p->plot.w + (int)(8 * v->opt.scale))
        return;
    tvt_draw(v->font, cv, x, p->plot.y + p->plot.h + (int)(3 * v->opt.scale), text, DIM, TVT_CENTER);
}

void tvv__draw_x_axis(tvv_view *v, tvr_canvas *cv, const panel *p)
{
    tvr_rect pl = p->plot;
    int th = tvt_height(v->font), maxt = pl.w / (int)(90 * v->opt.scale) + 2;
    char buf[64];
    if (v->xmode == TVV_X_STEP) {
        double t[TVP_MAX_TICKS], step;
        size_t n = tvp_ticks((double)v->x_from, (double)v->x_to, maxt, t, &step);
        for (size_t i = 0; i < n; i++) {
            if (t[i] != floor(t[i]) || t[i] < (double)v->x_from || t[i] > (double)v->x_to)
                continue;
            int x = pl.x + (int)tvp_col(v->x_from, v->x_to, (size_t)pl.w, (int64_t)t[i]);
            tvr_fill(cv, (tvr_rect){x, pl.y + pl.h, 1, (int)(4 * v->opt.scale)}, FRAME);
            tvr_fill(cv, (tvr_rect){x, pl.y + 1, 1, pl.h - 2}, GRID);
            tvp_format(t[i], step < 1 ? 1 : step, buf, sizeof buf);
            x_label(v, cv, p, x, buf);
        }
    } else {
        int64_t t[TVP_MAX_TICKS], step;
        size_t n = tvp_time_ticks(v->x_from, v->x_to, maxt, t, &step);
        for (size_t i = 0; i < n; i++) {
            int x = pl.x + (int)tvp_col(v->x_from, v->x_to, (size_t)pl.w, t[i]);
            tvr_fill(cv, (tvr_rect){x, pl.y + pl.h, 1, (int)(4 * v->opt.scale)}, FRAME);
            tvr_fill(cv, (tvr_rect){x, pl.y + 1, 1, pl.h - 2}, GRID);
            if (v->xmode == TVV_X_WALL)
                tvp_format_clock(t[i], step, buf, sizeof buf);
            else
                tvp_format_duration(t[i], step, buf, sizeof buf);
            x_label(v, cv, p, x, buf);
        }
    }
    (void)th;
}

static void draw_y_axis(tvv_view *v, tvr_canvas *cv, const panel *p)
{
    tvr_rect pl = p->plot;
    int th = tvt_height(v->font);
    int maxt = pl.h / (th * 2) + 2;
    char buf[64];
    double t[TVP_MAX_TICKS], step = 0;
    size_t n = v->log_y ? tvp_log_ticks(p->ys.lo, p->ys.hi, maxt, t) : tvp_ticks(p->ys.lo, p->ys.hi, maxt, t, &step);
    for (size_t i = 0; i < n; i++) {
        int r = tvp_row(&p->ys, t[i]);
        if (r < pl.y || r >= pl.y + pl.h)
            continue;
        tvr_fill(cv, (tvr_rect){pl.x + 1, r, pl.w - 2, 1}, GRID);
        tvr_fill(cv, (tvr_rect){pl.x - (int)(4 * v->opt.scale), r, (int)(4 * v->opt.scale), 1}, FRAME);
        tvp_format(t[i], v->log_y ? t[i] : step, buf, sizeof buf);
        tvt_draw(v->font, cv, pl.x - (int)(6 * v->opt.scale), r - th / 2, buf, DIM, TVT_RIGHT);
    }
}

static int panel_has_series(const panel *p, size_t series)
{
    for (size_t k = 0; k < p->nseries; k++)
        if (p->series[k] == series)
            return 1;
    return 0;
}

/* Findings: a triangle pointing down near the top edge at the finding's
 * first step, in its severity's colour, just under the rows of the Inf
 * marker (draw_markers) so both stay visible. A run-level finding shows in
 * every panel of its run. The marker under the mouse is noted for its
 * tooltip (drawn over everything at the end of the frame). */
void tvv__draw_findings(tvv_view *v, tvr_canvas *cv, const panel *p)
{
    tvr_rect pl = p->plot;
    int m = (int)(5 * v->opt.scale), top = pl.y + (int)(3 * v->opt.scale) + 1;
    for (size_t i = 0; i < tvm_finding_count(v->src); i++) {
        const tvm_finding *f = tvm_finding_at(v->src, i);
        if (f->run >= v->nruns || v->run_hidden[f->run])
            continue;
        if (f->series >= 0 ? !panel_has_series(p, (size_t)f->series) : !panel_has_run(v, p, f->run))
            continue;
        int64_t x = tvv__finding_x(v, f);
        if (x < v->x_from || x > v->x_to)
            continue;
        int cx = pl.x + (int)tvp_col(v->x_from, v->x_to, (size_t)pl.w, x);
        uint32_t col = strcmp(f->severity, "critical") == 0 ? FIND_CRIT
                     : strcmp(f->severity, "warning") == 0 ? FIND_WARN : FIND_INFO;
        for (int k = 0; k <= m; k++)
            tvr_fill(cv, (tvr_rect){cx - k, top + m - k, 2 * k + 1, 1}, col);
        if (v->hover_x >= cx - m - 1 && v->hover_x <= cx + m + 1 && v->hover_y >= pl.y &&
            v->hover_y <= top + m + 2 && v->hover_y < pl.y + pl.h)
            v->hover_finding = (ptrdiff_t)i;
    }
}

/* Several ranks of a run in one panel: per column a faint band from the
 * lowest min to the highest max over the ranks, and a line through the
 * mean over the ranks of each rank's column value, taken as the middle of
 * the column's first and last point (exact for a column of one point; a
 * column's mean of all its points is not in the M4 columns). Ranks without
 * a point in a column do not count there. Their series get shown[k] = 2:
 * no line of their own. */
static int draw_rank_bands(tvv_view *v, tvr_canvas *cv, const panel *p, unsigned char *shown, size_t ncols)
{
    tvr_rect pl = p->plot;
    if (tvv__grow((void **)&v->tmp, &v->tmp_cap, ncols * 4, sizeof(double)) < 0)
        return -ENOMEM;
    double *lo = v->tmp, *hi = lo + ncols, *sum = hi + ncols, *cnt = sum + ncols;
    for (size_t k = 0; k < p->nseries; k++) {
        if (shown[k] != 1)
            continue;
        size_t run = tvm_series_at(v->src, p->series[k])->run, nr = 0;
        for (size_t j = k; j < p->nseries; j++)
            nr += shown[j] == 1 && tvm_series_at(v->src, p->series[j])->run == run;
        if (nr < 2)
            continue;
        for (size_t i = 0; i < ncols; i++) {
            lo[i] = INFINITY;
            hi[i] = -INFINITY;
            sum[i] = cnt[i] = 0;
        }
        for (size_t j = k; j < p->nseries; j++) {
            if (shown[j] != 1 || tvm_series_at(v->src, p->series[j])->run != run)
                continue;
            shown[j] = 2;
            const tss_bucket *c = &v->cols[j * ncols];
            for (size_t i = 0; i < ncols; i++) {
                if (c[i].count <= 0)
                    continue;
                if (isfinite(c[i].min) && c[i].min < lo[i])
                    lo[i] = c[i].min;
                if (isfinite(c[i].max) && c[i].max > hi[i])
                    hi[i] = c[i].max;
                double mid = (c[i].first + c[i].last) / 2;
                if (isfinite(mid)) {
                    sum[i] += mid;
                    cnt[i] += 1;
                }
            }
        }
        uint32_t col = palette[v->run_rank[run] % NPAL];
        for (size_t i = 0; i < ncols; i++) {
            if (!(lo[i] <= hi[i]))
                continue;
            int ya = tvp_row(&p->ys, hi[i]), yb = tvp_row(&p->ys, lo[i]);
            tvr_blend_fill(cv, (tvr_rect){pl.x + (int)i, ya, 1, yb - ya + 1}, (col & 0xffffffu) | BAND_ALPHA);
        }
        int px = -1, py = 0;
        for (size_t i = 0; i < ncols; i++) {
            if (cnt[i] <= 0)
                continue;
            int x = pl.x + (int)i, y = tvp_row(&p->ys, sum[i] / cnt[i]);
            if (px >= 0)
                tvr_line(cv, px, py, x, y, col, 0);
            else
                tvr_vseg(cv, x, y, y, col, 0);
            px = x;
            py = y;
        }
    }
    return 0;
}

static void draw_markers(tvv_view *v, tvr_canvas *cv, const panel *p, const tss_bucket *c, uint32_t col)
{
    tvr_rect pl = p->plot;
    int m = (int)(3 * v->opt.scale);
    for (int i = 0; i < pl.w; i++) {
        if (c[i].n_nan > 0)      /* NaN: a triangle on the bottom edge, pointing up */
            for (int k = 0; k <= m; k++)
                tvr_fill(cv, (tvr_rect){pl.x + i - k, pl.y + pl.h - 1 - m + k, 2 * k + 1, 1}, col);
        if (c[i].n_inf > 0)      /* Inf: a triangle on the top edge, pointing down */
            for (int k = 0; k <= m; k++)
                tvr_fill(cv, (tvr_rect){pl.x + i - k, pl.y + m - k, 2 * k + 1, 1}, col);
    }
}

/* The debiased EMA over the columns: each column stands for its points by
 * its last value, weighted as count points (exact when a column holds at
 * most one point, i.e. when zoomed in). */
static void draw_smoothed(tvv_view *v, tvr_canvas *cv, const panel *p, const tss_bucket *c,
                          const tvp_gaps *g, uint32_t col)
{
    double last = 0, wk = 1;
    int have = 0, px = 0, pr = 0;
    int64_t pstep = 0;
    for (int i = 0; i < p->plot.w; i++) {
        int64_t n = c[i].count - c[i].n_nan - c[i].n_inf;
        double val = isfinite(c[i].last) ? c[i].last : (c[i].min + c[i].max) / 2;
        if (n <= 0 || !isfinite(val))
            continue;
        double w = pow(v->smooth, (double)n);
        last = last * w + (1 - w) * val;
        wk *= w;
        int r = tvp_row(&p->ys, last / (1 - wk));
        if (have && !tvp_gap_between(g, pstep, c[i].step_first))
            tvr_line(cv, px, pr, p->plot.x + i, r, col, 0);
        else
            tvr_line(cv, p->plot.x + i, r, p->plot.x + i, r, col, 0);
        have = 1;
        px = p->plot.x + i;
        pr = r;
        pstep = c[i].step_last;
    }
}

void tvv__col_text(const tvv_view *v, int64_t lo, int64_t hi, char *buf, size_t len)
{
    char a[64], b[64];
    if (v->xmode == TVV_X_STEP) {
        if (hi > lo)
            snprintf(buf, len, "steps %lld..%lld", (long long)lo, (long long)hi);
        else
            snprintf(buf, len, "step %lld", (long long)lo);
        return;
    }
    if (v->xmode == TVV_X_WALL) {
        tvp_format_clock(lo, 1, a, sizeof a);
        tvp_format_clock(hi, 1, b, sizeof b);
    } else {
        tvp_format_duration(lo, 1000000, a, sizeof a);
        tvp_format_duration(hi, 1000000, b, sizeof b);
    }
    if (strcmp(a, b) == 0)
        snprintf(buf, len, "%s", a);
    else
        snprintf(buf, len, "%s..%s", a, b);
}

void tvv__tooltip(tvv_view *v, tvr_canvas *cv, int x, int y, char (*lines)[160], const uint32_t *colours, size_t n)
{
    int th = tvt_height(v->font), pad = (int)(4 * v->opt.scale), w = 0;
    for (size_t i = 0; i < n; i++) {
        int lw = tvt_width(v->font, lines[i]);
        w = lw > w ? lw : w;
    }
    tvr_rect box = {x + 12, y + 12, w + 2 * pad, (int)n * th + 2 * pad};
    if (box.x + box.w > cv->w)
        box.x = x - 12 - box.w;
    if (box.y + box.h > cv->h)
        box.y = y - 12 - box.h;
    tvr_reset_clip(cv);
    tvr_blend_fill(cv, box, 0xe8ffffffu);
    tvr_outline(cv, box, FRAME);
    for (size_t i = 0; i < n; i++)
        tvt_draw(v->font, cv, box.x + pad, box.y + pad + (int)i * th, lines[i], colours[i], TVT_LEFT);
}

static void draw_hover(tvv_view *v, tvr_canvas *cv, const panel *p, const unsigned char *vis, int hovered)
{
    tvr_rect pl = p->plot;
    int col;
    if (v->hover_x < 0 || !tvv__col_of_pixel(v, v->hover_x, v->hover_y, &col) || col < 0 || col >= pl.w)
        return;
    tvr_dashed_v(cv, pl.x + col, pl.y, pl.y + pl.h - 1, 3, 3, HOVER);
    if (!hovered)
        return;
    tvr_dashed_h(cv, v->hover_y, pl.x, pl.x + pl.w - 1, 3, 3, HOVER);
    if (v->hover_finding >= 0)
        return;   /* the finding's tooltip instead of the values */
    char lines[16][160];
    uint32_t colours[16];
    size_t nl = 0;
    int64_t lo, hi;
    tvp_col_range(v->x_from, v->x_to, (size_t)pl.w, (size_t)col, &lo, &hi);
    char xs[64];
    if (v->xmode == TVV_X_STEP)
        snprintf(xs, sizeof xs, "step %lld", (long long)lo);
    else if (v->xmode == TVV_X_WALL)
        tvp_format_clock(lo, 1, xs, sizeof xs);
    else
        tvp_format_duration(lo, 1000000, xs, sizeof xs);
    snprintf(lines[nl], sizeof lines[0], "%s", xs);
    colours[nl++] = FG;
    for (size_t k = 0; k < p->nseries && nl < 16; k++) {
        if (!vis[k])
            continue;
        const tss_bucket *c = &v->cols[k * (size_t)pl.w];
        int i = col;
        while (i >= 0 && c[i].count == 0)
            i--;
        if (i < 0)
            continue;
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        const tvm_run *r = tvm_run_at(v->src, s->run);
        char rank[24] = "";
        if (s->rank > 0)
            snprintf(rank, sizeof rank, " r%d", s->rank);
        snprintf(lines[nl], sizeof lines[0], "%s%s: %.6g (step %lld)", r->display, rank, c[i].last,
                 (long long)c[i].step_last);
        colours[nl++] = series_colour(v, s);
    }
    tvv__tooltip(v, cv, v->hover_x, v->hover_y, lines, colours, nl);
}

/* The M4 columns of every visible series of panel p into v->cols (ncols
 * per series, in the panel's series order), v->shown[k] set for each series
 * drawn; adds the points they represent to *points. Shared by line panels
 * and heatmaps. 0, -ENOMEM, or the source's error. */
int tvv__panel_columns(tvv_view *v, const panel *p, size_t ncols, int64_t *points)
{
    int flags = tvv__model_flags(v);
    if (tvv__grow((void **)&v->shown, &v->shown_cap, p->nseries, 1) < 0 ||
        tvv__grow((void **)&v->cols, &v->cols_cap, p->nseries * ncols, sizeof(tss_bucket)) < 0)
        return -ENOMEM;
    memset(v->shown, 0, p->nseries);
    for (size_t k = 0; k < p->nseries; k++) {
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (!tvv__series_visible(v, s) || s->count <= 0)
            continue;
        int64_t off = tvv__series_offset(v, s);
        int rc = tvm_columns(v->src, p->series[k], v->x_from + off, v->x_to + off, ncols, flags,
                             &v->cols[k * ncols]);
        if (rc < 0)
            return rc;
        v->shown[k] = 1;
        for (size_t i = 0; i < ncols; i++)
            *points += v->cols[k * ncols + i].count;
    }
    return 0;
}

static int render_panel(tvv_view *v, tvr_canvas *cv, panel *p, int64_t *points)
{
    if (p->heat)
        return tvv__render_heat(v, cv, p, points);
    tvr_rect pl = p->plot;
    size_t ncols = (size_t)pl.w;
    int flags = tvv__model_flags(v);
    int rc = tvv__panel_columns(v, p, ncols, points);
    if (rc < 0)
        goto out;
    unsigned char *shown = v->shown;
    double lo, hi;
    y_range(v, p, shown, ncols, &lo, &hi);
    if (p->y_manual) {
        lo = p->ylo;
        hi = p->yhi;
    }
    p->ys = (tvp_yscale){.lo = lo, .hi = hi, .log = v->log_y, .top = pl.y, .height = pl.h};

    tvr_reset_clip(cv);
    draw_y_axis(v, cv, p);
    tvv__draw_x_axis(v, cv, p);
    tvr_set_clip(cv, pl);

    /* dropped-data gaps, shaded */
    for (size_t i = 0; i < tvm_gap_count(v->src); i++) {
        const tvm_gap *g = tvm_gap_at(v->src, i);
        if (g->run >= v->nruns || v->run_hidden[g->run] || !panel_has_run(v, p, g->run))
            continue;
        int64_t a = v->xmode == TVV_X_STEP ? g->step_first : g->t_first_ns - (v->xmode == TVV_X_SINCE_START ? v->run_start[g->run] : 0);
        int64_t b = a + (v->xmode == TVV_X_STEP ? g->step_last - g->step_first : g->t_last_ns - g->t_first_ns);
        if (b < v->x_from || a > v->x_to)
            continue;
        a = a < v->x_from ? v->x_from : a;
        b = b > v->x_to ? v->x_to : b;
        int ca = (int)tvp_col(v->x_from, v->x_to, ncols, a), cb = (int)tvp_col(v->x_from, v->x_to, ncols, b);
        tvr_blend_fill(cv, (tvr_rect){pl.x + ca, pl.y, cb - ca + 1, pl.h}, GAPSHADE);
    }
    /* events: a vertical line with its text */
    int th = tvt_height(v->font), last_cx = -1, nlabel = 0;
    const char *last_text = NULL;
    for (size_t i = 0; i < tvm_event_count(v->src); i++) {
        const tvm_event *e = tvm_event_at(v->src, i);
        if (e->run >= v->nruns || v->run_hidden[e->run] || !panel_has_run(v, p, e->run))
            continue;
        int64_t x = event_x(v, e);
        if (x < v->x_from || x > v->x_to)
            continue;
        int cx = pl.x + (int)tvp_col(v->x_from, v->x_to, ncols, x);
        int resume = strcmp(e->kind, "resume") == 0;
        uint32_t col = resume ? RESUME : EVENT;
        tvr_dashed_v(cv, cx, pl.y, pl.y + pl.h - 1, 4, 2, col);
        if (cx == last_cx && last_text && strcmp(last_text, e->text) == 0)
            continue;   /* the same event from several ranks or runs: one label */
        last_cx = cx;
        last_text = e->text;
        char label[64];
        event_label(e, label, sizeof label);
        tvt_draw(v->font, cv, cx + 3, pl.y + 2 + (nlabel++ % 3) * th, label, col, TVT_LEFT);
    }
    if (!v->each_rank && (rc = draw_rank_bands(v, cv, p, shown, ncols)) < 0)
        goto out;
    /* lines: faint raw under the smoothed line when smoothing */
    for (size_t k = 0; k < p->nseries; k++) {
        if (!shown[k])
            continue;
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (shown[k] == 2) {    /* in its run's rank band */
            draw_markers(v, cv, p, &v->cols[k * ncols], series_colour(v, s));
            continue;
        }
        int64_t off = tvv__series_offset(v, s);
        uint32_t col = series_colour(v, s);
        tvp_gaps g = gaps_of(v, s->run, s->rank);
        tvp_series_style st = {.argb = v->smooth > 0 ? mix_rgb(col, BG, 0.7) : col};
        if (v->opt.all_points) {
            tss_point *pts = NULL;
            size_t n = 0;
            rc = tvm_points(v->src, p->series[k], v->x_from + off, v->x_to + off, flags, &pts, &n);
            if (rc < 0)
                goto out;
            tvp_draw_points(cv, pl.x, pts, n, v->xmode != TVV_X_STEP, v->x_from + off, v->x_to + off, ncols,
                            &p->ys, &g, st);
            free(pts);
        } else {
            fix_ctx fc = {v->src, p->series[k], v->x_from + off, v->x_to + off, ncols, flags};
            rc = tvp_draw_columns(cv, pl.x, &v->cols[k * ncols], ncols, &p->ys, &g, fix_nan_ends, &fc, st);
            if (rc < 0)
                goto out;
        }
        if (v->smooth > 0)
            draw_smoothed(v, cv, p, &v->cols[k * ncols], &g, col);
        draw_markers(v, cv, p, &v->cols[k * ncols], col);
    }
    tvv__draw_findings(v, cv, p);
    tvr_reset_clip(cv);
    int finite = 0, any = 0;
    for (size_t k = 0; k < p->nseries; k++) {
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (tvv__series_visible(v, s) && s->count > 0) {
            any = 1;
            finite |= s->count > s->n_nan;
        }
    }
    if (any && !finite)
        tvt_draw(v->font, cv, pl.x + pl.w / 2, pl.y + pl.h / 2 - th / 2, "only NaN values", ERRCOL, TVT_CENTER);
    tvr_outline(cv, (tvr_rect){pl.x - 1, pl.y - 1, pl.w + 2, pl.h + 2}, FRAME);
    int hovered = v->hover_x >= pl.x && v->hover_x < pl.x + pl.w && v->hover_y >= pl.y && v->hover_y < pl.y + pl.h;
    draw_hover(v, cv, p, shown, hovered);
out:
    tvr_reset_clip(cv);
    return rc;
}

/* The part of a line before its tab (the first column), into buf. */
static const char *first_column(const char *line, char *buf, size_t len)
{
    const char *tab = strchr(line, '\t');
    snprintf(buf, len, "%.*s", tab ? (int)(tab - line) : (int)strlen(line), line);
    return tab ? tab + 1 : NULL;
}

/* Lines of text in a box centred on the canvas; a tab splits a line into two
 * aligned columns (the help's keys and what they do). */
static void draw_box_text(tvv_view *v, tvr_canvas *cv, const char *const *lines, size_t n, uint32_t col)
{
    int th = tvt_height(v->font), pad = (int)(10 * v->opt.scale), w = 0, kw = 0;
    char key[128];
    for (size_t i = 0; i < n; i++)
        if (first_column(lines[i], key, sizeof key)) {
            int k = tvt_width(v->font, key) + 2 * pad;
            kw = k > kw ? k : kw;
        }
    for (size_t i = 0; i < n; i++) {
        const char *rest = first_column(lines[i], key, sizeof key);
        int lw = rest ? kw + tvt_width(v->font, rest) : tvt_width(v->font, lines[i]);
        w = lw > w ? lw : w;
    }
    tvr_rect box = {(cv->w - w) / 2 - pad, (cv->h - (int)n * th) / 2 - pad, w + 2 * pad, (int)n * th + 2 * pad};
    tvr_blend_fill(cv, box, 0xf0ffffffu);
    tvr_outline(cv, box, FRAME);
    for (size_t i = 0; i < n; i++) {
        int y = box.y + pad + (int)i * th;
        const char *rest = first_column(lines[i], key, sizeof key);
        tvt_draw(v->font, cv, box.x + pad, y, rest ? key : lines[i], col, TVT_LEFT);
        if (rest)
            tvt_draw(v->font, cv, box.x + pad + kw, y, rest, col, TVT_LEFT);
    }
}

/* The error text split into lines (at most 8). */
static void draw_error(tvv_view *v, tvr_canvas *cv)
{
    char buf[sizeof v->error];
    const char *lines[8];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", v->error);
    for (char *s = buf, *save = NULL, *t; n < 8 && (t = strtok_r(s, "\n", &save)); s = NULL)
        lines[n++] = t;
    draw_box_text(v, cv, lines, n, ERRCOL);
}

static int draw_legend(tvv_view *v, tvr_canvas *cv, int y)
{
    int th = tvt_height(v->font), x = (int)(8 * v->opt.scale), sw = th * 3 / 4;
    v->nlegend = 0;
    for (size_t i = 0; i < v->nruns; i++) {
        size_t r = v->run_order[i];
        const tvm_run *run = tvm_run_at(v->src, r);
        char label[256];
        snprintf(label, sizeof label, "%s%s", run->display, v->run_hidden[r] ? " (hidden)" : "");
        int w = sw + 4 + tvt_width(v->font, label);
        if (x + w > cv->w && x > (int)(8 * v->opt.scale)) {
            x = (int)(8 * v->opt.scale);
            y += th;
        }
        uint32_t col = palette[i % NPAL];
        tvr_rect sq = {x, y + (th - sw) / 2, sw, sw};
        if (v->run_hidden[r])
            tvr_outline(cv, sq, col);
        else
            tvr_fill(cv, sq, col);
        tvt_draw(v->font, cv, x + sw + 4, y, label, v->run_hidden[r] ? DIM : FG, TVT_LEFT);
        v->legend[v->nlegend++] = (legend_item){{x, y, w, th}, r};
        x += w + (int)(16 * v->opt.scale);
    }
    return y + th;
}

static void draw_status(tvv_view *v, tvr_canvas *cv, int y)
{
    const char *msg = NULL;
    enum tvm_state st = tvm_state(v->src, &msg);
    static const char *const names[] = {"ready", "connecting", "reconnecting", "failed"};
    static const char *const xm[] = {"x: step", "x: wall time", "x: time since start"};
    char line[768];
    if (v->prompting) {
        snprintf(line, sizeof line, "metric filter (regex, Enter to apply, Esc to cancel): %s_", v->prompt);
    } else {
        char sm[32] = "";
        if (v->smooth > 0)
            snprintf(sm, sizeof sm, " | smoothing %.3f", v->smooth);
        snprintf(line, sizeof line, "%s%s%s | %s%s%s%s%s | %s", names[st < 4 ? st : 3], msg && *msg ? ": " : "",
                 msg ? msg : "", xm[v->xmode], v->log_y ? " | log y" : "", v->outliers ? " | ignoring outliers" : "",
                 v->timelines ? " | all timelines" : "", sm, v->status);
    }
    tvr_fill(cv, (tvr_rect){0, y, cv->w, cv->h - y}, 0xfff4f4f4u);
    int help_w = tvt_width(v->font, "h: help") + (int)(24 * v->opt.scale);
    tvr_set_clip(cv, (tvr_rect){0, y, cv->w - help_w, cv->h - y});
    tvt_draw(v->font, cv, (int)(8 * v->opt.scale), y + (int)(3 * v->opt.scale), line,
             st == TVM_FAILED ? ERRCOL : FG, TVT_LEFT);
    tvr_reset_clip(cv);
    tvt_draw(v->font, cv, cv->w - (int)(8 * v->opt.scale), y + (int)(3 * v->opt.scale), "h: help", DIM, TVT_RIGHT);
}

/* Place the panels: groups one after the other, each starting a new row
 * with its name as a header; the same number of panel columns everywhere. */
static void layout(tvv_view *v, int top, int bottom, int width)
{
    double s = v->opt.scale;
    int th = tvt_height(v->font), n = (int)v->npanels;
    if (n == 0)
        return;
    double aspect = (double)width / (double)(bottom - top > 1 ? bottom - top : 1);
    int pc = (int)floor(sqrt((double)n * aspect / 1.6) + 0.5);
    pc = pc < 1 ? 1 : pc > n ? n : pc;
    int rows = 0;
    for (size_t g = 0; g < v->ngroups; g++) {
        int k = 0;
        for (size_t i = 0; i < v->npanels; i++)
            k += v->panels[i].group == g;
        rows += (k + pc - 1) / pc;
    }
    int headers = v->ngroups > 1 ? (int)v->ngroups : 0;
    int row_h = (bottom - top - headers * th) / (rows > 0 ? rows : 1);
    int col_w = width / pc;
    int ylab = tvt_width(v->font, "-88.88M") + (int)(10 * s);
    v->ylab = ylab;
    int plot_w = col_w - ylab - (int)(12 * s);
    if (plot_w < 8)
        plot_w = 8;
    v->ncols = plot_w;
    int y = top;
    size_t i = 0;
    for (size_t g = 0; g < v->ngroups; g++) {
        if (headers)
            y += th;
        int c = 0;
        for (; i < v->npanels && v->panels[i].group == g; i++) {
            panel *p = &v->panels[i];
            int x = c * col_w;
            int ph = row_h - 2 * th - (int)(10 * s);
            /* a heatmap's colour bar and its labels go under the x labels */
            int bar = th / 2 > 6 ? th / 2 : 6, extra = p->heat ? bar + th + (int)(6 * s) : 0;
            ph -= extra;
            p->plot = (tvr_rect){x + ylab, y + th + (int)(2 * s), plot_w, ph < 8 ? 8 : ph};
            if (p->heat)
                p->cbar = (tvr_rect){p->plot.x, p->plot.y + p->plot.h + th + (int)(4 * s), plot_w, bar};
            if (++c == pc) {
                c = 0;
                y += row_h;
            }
        }
        if (c)
            y += row_h;
    }
}

static void draw_panel_titles(tvv_view *v, tvr_canvas *cv)
{
    int th = tvt_height(v->font);
    for (size_t i = 0; i < v->npanels; i++) {
        const panel *p = &v->panels[i];
        tvt_draw(v->font, cv, p->plot.x, p->plot.y - th - (int)(1 * v->opt.scale), p->name, FG, TVT_LEFT);
        if (i == 0 || v->panels[i - 1].group != p->group) {
            if (v->ngroups > 1 && *v->groups[p->group])
                tvt_draw(v->font, cv, (int)(8 * v->opt.scale), p->plot.y - 2 * th - (int)(1 * v->opt.scale),
                         v->groups[p->group], DIM, TVT_LEFT);
        }
    }
}

int tvv_render(tvv_view *v, tvr_canvas *cv, int64_t *points)
{
    int64_t pts = 0;
    int rc = 0;
    tvr_reset_clip(cv);
    tvr_fill(cv, (tvr_rect){0, 0, cv->w, cv->h}, BG);
    int th = tvt_height(v->font), pad = (int)(4 * v->opt.scale);
    int legend_bottom = draw_legend(v, cv, pad) + pad;
    int status_y = cv->h - th - (int)(6 * v->opt.scale);
    layout(v, legend_bottom, status_y, cv->w);
    tvv__update_x_range(v);
    v->hover_finding = -1;
    /* the mouse over the open findings list is not over the panels under it */
    int hx = v->hover_x, hy = v->hover_y;
    if (v->flist) {
        tvr_rect fb = tvv__findings_box(v, cv, legend_bottom, status_y);
        if (hx >= fb.x && hx < fb.x + fb.w && hy >= fb.y && hy < fb.y + fb.h)
            v->hover_x = v->hover_y = -1;
    }
    draw_panel_titles(v, cv);
    /* the hovered panel last, so its tooltip is on top */
    size_t hovered = v->npanels;
    for (size_t i = 0; i < v->npanels; i++) {
        tvr_rect r = v->panels[i].plot;
        if (v->hover_x >= r.x && v->hover_x < r.x + r.w && v->hover_y >= r.y && v->hover_y < r.y + r.h)
            hovered = i;
    }
    for (size_t k = 0; k <= v->npanels; k++) {
        size_t i = k < hovered ? k : k + 1;
        if (k == v->npanels)
            i = hovered;
        if (i >= v->npanels)
            continue;
        int prc = render_panel(v, cv, &v->panels[i], &pts);
        if (prc < 0 && rc == 0) {
            rc = prc;
            snprintf(v->error, sizeof v->error, "%s", tvm_errmsg(v->src));
        }
        if (v->opt.layout_out) {
            const panel *p = &v->panels[i];
            fprintf(v->opt.layout_out, "panel %s plot %d %d %d %d y %.17g %.17g log %d x %lld %lld\n", p->name,
                    p->plot.x, p->plot.y, p->plot.w, p->plot.h, p->ys.lo, p->ys.hi, p->ys.log,
                    (long long)v->x_from, (long long)v->x_to);
        }
    }
    if (v->box_on) {
        tvr_rect b = {v->bx0 < v->bx1 ? v->bx0 : v->bx1, v->by0 < v->by1 ? v->by0 : v->by1,
                      abs(v->bx1 - v->bx0) + 1, abs(v->by1 - v->by0) + 1};
        tvr_blend_fill(cv, b, 0x301f77b4u);
        tvr_outline(cv, b, 0xff1f77b4u);
    }
    if (v->npanels == 0 && !*v->error) {
        const char *msg = v->have_re || v->opt.metric_glob ? "no metric matches the filter"
                          : tvm_run_count(v->src) == 0 ? "no runs yet: waiting for data"
                                                       : "no series yet: waiting for data";
        draw_box_text(v, cv, &msg, 1, DIM);
    }
    const char *smsg = NULL;
    enum tvm_state st = tvm_state(v->src, &smsg);
    if ((st == TVM_CONNECTING || st == TVM_RECONNECTING) && smsg && *smsg && !*v->error) {
        int w = tvt_width(v->font, smsg) + 2 * pad;
        tvr_rect b = {(cv->w - w) / 2, legend_bottom, w, th + pad};
        tvr_fill(cv, b, 0xfffff3d6u);
        tvr_outline(cv, b, RESUME);
        tvt_draw(v->font, cv, cv->w / 2, b.y + pad / 2, smsg, FG, TVT_CENTER);
    }
    if (st == TVM_FAILED && !*v->error)
        snprintf(v->error, sizeof v->error, "%s", smsg && *smsg ? smsg : tvm_errmsg(v->src));
    if (*v->error)
        draw_error(v, cv);
    v->hover_x = hx;
    v->hover_y = hy;
    v->fbox = (tvr_rect){0};
    v->nfrows = 0;
    if (v->flist)
        tvv__draw_findings_list(v, cv, legend_bottom, status_y);
    if (v->hover_finding >= 0)
        tvv__draw_finding_tooltip(v, cv);
    if (v->help && v->nhelp)
        draw_box_text(v, cv, v->help_lines, v->nhelp, FG);
    draw_status(v, cv, status_y);
    if (points)
        *points = pts;
    v->dirty = 0;
    v->rendered = 1;
    return rc;
}
