/* view.c - the panel grid, scales and the rendering of one frame (view.h).
 *
 * Per frame and panel: the M4 columns of every visible series are fetched
 * into one scratch array (reused across frames: no allocation per frame once
 * the window size is stable), the y scale is taken from them, then grid,
 * markers and lines are drawn. Everything that maps a value or an x to a
 * pixel goes through plot.h, so the layout printed for tests (layout_out)
 * and the pixels agree by construction.
 */
#include "view.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

#define BG        0xffffffffu
#define FG        0xff202020u
#define DIM       0xff707070u
#define FRAME     0xffb0b0b0u
#define GRID      0xffebebebu
#define GAPSHADE  0x30d62728u
#define EVENT     0xff9a9a9au
#define RESUME    0xffe08000u
#define HOVER     0xff505050u
#define ERRCOL    0xffc00000u

static const uint32_t palette[] = {
    0xff1f77b4, 0xffff7f0e, 0xff2ca02c, 0xffd62728, 0xff9467bd,
    0xff8c564b, 0xffe377c2, 0xff17becf, 0xffbcbd22, 0xff7f7f7f,
};
#define NPAL (sizeof palette / sizeof palette[0])

typedef struct panel {
    char *name;                 /* metric name, owned */
    size_t group;
    size_t *series;             /* indexes into the source's series */
    size_t nseries;
    int y_manual;               /* box zoom fixed the y range */
    double ylo, yhi;            /* manual range (log10 when log_y) */
    tvr_rect plot;              /* last layout */
    tvp_yscale ys;
} panel;

typedef struct legend_item {
    tvr_rect r;
    size_t run;
} legend_item;

struct tvv_view {
    tvm_source *src;
    tvt_font *font;
    tvv_options opt;

    panel *panels;
    size_t npanels;
    char **groups;              /* group names ("train/"), owned */
    size_t ngroups;

    size_t nruns;
    size_t *run_order;          /* runs by store id: legend order; a run's colour is its place here */
    size_t *run_rank;           /* inverse of run_order */
    unsigned char *run_hidden;
    int64_t *run_start;         /* ns: first point of the run (time since start) */
    legend_item *legend;
    size_t nlegend;

    int xmode, x_auto, follow;
    int rendered;               /* a frame was drawn */
    int growing;                /* points arrived after the first frame: live */
    int64_t x_from, x_to;
    int log_y, outliers, timelines, help;
    double smooth;

    int hover_x, hover_y;
    int box_on, bx0, by0, bx1, by1;
    regex_t re;
    int have_re;
    char prompt[256];
    int prompting;
    char status[256];
    char error[512];
    int dirty;

    int ncols;                  /* plot width shared by every panel (x linked) */

    tss_bucket *cols;           /* scratch: nseries of a panel x ncols */
    size_t cols_cap;
    double *tmp;                /* scratch for quantiles and smoothing */
    size_t tmp_cap;
    int64_t *gap_first, *gap_last;
    size_t gap_cap;
    unsigned char *shown;       /* scratch: which series of a panel are drawn */
    size_t shown_cap;
    const char *const *help_lines;
    size_t nhelp;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* ---- panels ---- */

static void free_panels(tvv_view *v)
{
    for (size_t i = 0; i < v->npanels; i++) {
        free(v->panels[i].name);
        free(v->panels[i].series);
    }
    free(v->panels);
    v->panels = NULL;
    v->npanels = 0;
    for (size_t i = 0; i < v->ngroups; i++)
        free(v->groups[i]);
    free(v->groups);
    v->groups = NULL;
    v->ngroups = 0;
}

/* qsort_r comparators; ctx is the source */
static int cmp_series_name(const void *a, const void *b, void *ctx)
{
    const tvm_source *cmp_src = ctx;
    const tvm_series *x = tvm_series_at(cmp_src, *(const size_t *)a);
    const tvm_series *y = tvm_series_at(cmp_src, *(const size_t *)b);
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    int64_t rx = tvm_run_at(cmp_src, x->run)->id, ry = tvm_run_at(cmp_src, y->run)->id;
    if (rx != ry)   /* by run id: the same drawing order whatever order the source lists runs in */
        return rx < ry ? -1 : 1;
    return x->rank - y->rank;
}

static int cmp_run_id(const void *a, const void *b, void *ctx)
{
    const tvm_source *cmp_src = ctx;
    int64_t x = tvm_run_at(cmp_src, *(const size_t *)a)->id, y = tvm_run_at(cmp_src, *(const size_t *)b)->id;
    return x < y ? -1 : x > y;
}

static size_t prefix_len(const char *name)
{
    const char *s = strchr(name, '/');
    return s ? (size_t)(s - name) + 1 : 0;
}

static int shown_metric(const tvv_view *v, const char *name)
{
    if (v->opt.metric_glob && fnmatch(v->opt.metric_glob, name, 0) != 0)
        return 0;
    if (v->have_re && regexec(&v->re, name, 0, NULL, 0) != 0)
        return 0;
    return 1;
}

/* Rebuild the panel list from the source's series: one panel per metric
 * name, sorted, so panels of one prefix are neighbours. */
static int rebuild(tvv_view *v)
{
    free_panels(v);
    size_t nruns = tvm_run_count(v->src), ns = tvm_series_count(v->src);
    if (nruns != v->nruns) {
        unsigned char *h = realloc(v->run_hidden, nruns ? nruns : 1);
        int64_t *st = realloc(v->run_start, (nruns ? nruns : 1) * sizeof *st);
        legend_item *lg = realloc(v->legend, (nruns ? nruns : 1) * sizeof *lg);
        if (h)
            v->run_hidden = h;
        if (st)
            v->run_start = st;
        if (lg)
            v->legend = lg;
        if (!h || !st || !lg)
            return -ENOMEM;
        for (size_t i = v->nruns; i < nruns; i++)
            h[i] = 0;
        v->nruns = nruns;
    }
    size_t *ord = realloc(v->run_order, (nruns ? nruns : 1) * sizeof *ord);
    if (ord)
        v->run_order = ord;
    size_t *rk = realloc(v->run_rank, (nruns ? nruns : 1) * sizeof *rk);
    if (rk)
        v->run_rank = rk;
    if (!ord || !rk)
        return -ENOMEM;
    /* Colours follow the store's run ids, not the order a source lists the
     * runs in, so a store and its collector draw the same picture. */
    for (size_t r = 0; r < nruns; r++)
        ord[r] = r;
    qsort_r(ord, nruns, sizeof *ord, cmp_run_id, v->src);
    for (size_t r = 0; r < nruns; r++)
        rk[ord[r]] = r;
    for (size_t r = 0; r < nruns; r++)
        v->run_start[r] = INT64_MAX;
    size_t *idx = malloc((ns ? ns : 1) * sizeof *idx), n = 0;
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < ns; i++) {
        const tvm_series *s = tvm_series_at(v->src, i);
        if (s->count > 0 && s->run < nruns && s->t_first_ns < v->run_start[s->run])
            v->run_start[s->run] = s->t_first_ns;
        if (shown_metric(v, s->name))
            idx[n++] = i;
    }
    for (size_t r = 0; r < nruns; r++)
        if (v->run_start[r] == INT64_MAX)
            v->run_start[r] = tvm_run_at(v->src, r)->created_ns;
    qsort_r(idx, n, sizeof *idx, cmp_series_name, v->src);
    int rc = 0;
    for (size_t i = 0; i < n;) {
        const char *name = tvm_series_at(v->src, idx[i])->name;
        size_t j = i;
        while (j < n && strcmp(tvm_series_at(v->src, idx[j])->name, name) == 0)
            j++;
        panel *np = realloc(v->panels, (v->npanels + 1) * sizeof *np);
        if (!np) {
            rc = -ENOMEM;
            break;
        }
        v->panels = np;
        panel *p = &v->panels[v->npanels];
        *p = (panel){0};
        p->name = strdup(name);
        p->series = malloc((j - i) * sizeof *p->series);
        if (!p->name || !p->series) {
            free(p->name);
            free(p->series);
            rc = -ENOMEM;
            break;
        }
        memcpy(p->series, &idx[i], (j - i) * sizeof *idx);
        p->nseries = j - i;
        size_t pl = prefix_len(name);
        if (v->ngroups == 0 || strlen(v->groups[v->ngroups - 1]) != pl ||
            strncmp(v->groups[v->ngroups - 1], name, pl) != 0) {
            char **ng = realloc(v->groups, (v->ngroups + 1) * sizeof *ng);
            if (!ng) {
                free(p->name);
                free(p->series);
                rc = -ENOMEM;
                break;
            }
            v->groups = ng;
            v->groups[v->ngroups] = strndup(name, pl);
            if (!v->groups[v->ngroups]) {
                free(p->name);
                free(p->series);
                rc = -ENOMEM;
                break;
            }
            v->ngroups++;
        }
        p->group = v->ngroups - 1;
        v->npanels++;
        i = j;
    }
    free(idx);
    v->dirty = 1;
    return rc;
}

int tvv_create(tvv_view **out, tvm_source *src, tvt_font *font, const tvv_options *opt)
{
    tvv_view *v = calloc(1, sizeof *v);
    *out = NULL;
    if (!v)
        return -ENOMEM;
    v->src = src;
    v->font = font;
    v->opt = *opt;
    if (!(v->opt.scale >= 1))
        v->opt.scale = 1;
    v->x_auto = 1;
    v->follow = 1;
    v->hover_x = -1;
    int rc = rebuild(v);
    if (rc < 0) {
        tvv_destroy(v);
        return rc;
    }
    *out = v;
    return 0;
}

void tvv_destroy(tvv_view *v)
{
    if (!v)
        return;
    free_panels(v);
    if (v->have_re)
        regfree(&v->re);
    free(v->run_hidden);
    free(v->run_order);
    free(v->run_rank);
    free(v->run_start);
    free(v->legend);
    free(v->cols);
    free(v->tmp);
    free(v->gap_first);
    free(v->gap_last);
    free(v->shown);
    free(v);
}

void tvv_data_changed(tvv_view *v, unsigned mask)
{
    if ((mask & TVM_CHANGED_POINTS) && v->rendered)
        v->growing = 1;
    if (mask & TVM_CHANGED_RUNS)
        rebuild(v);
    else if (mask & TVM_CHANGED_POINTS) {
        /* Runs may have got their first points: refresh their start times. */
        for (size_t i = 0; i < tvm_series_count(v->src); i++) {
            const tvm_series *s = tvm_series_at(v->src, i);
            if (s->count > 0 && s->run < v->nruns && s->t_first_ns < v->run_start[s->run])
                v->run_start[s->run] = s->t_first_ns;
        }
    }
    if (mask)
        v->dirty = 1;
}

int tvv_dirty(const tvv_view *v)
{
    return v->dirty;
}

void tvv_set_dirty(tvv_view *v)
{
    v->dirty = 1;
}

size_t tvv_panel_count(const tvv_view *v)
{
    return v->npanels;
}

/* ---- x ---- */

static int series_visible(const tvv_view *v, const tvm_series *s)
{
    return s->run < v->nruns && !v->run_hidden[s->run];
}

/* x of the series in view units -> the series' own x (TVM_X_STEP / TIME). */
static int64_t series_offset(const tvv_view *v, const tvm_series *s)
{
    return v->xmode == TVV_X_SINCE_START ? v->run_start[s->run] : 0;
}

static int model_flags(const tvv_view *v)
{
    return (v->xmode == TVV_X_STEP ? TVM_X_STEP : TVM_X_TIME) | (v->timelines ? TVM_ALL_TIMELINES : 0);
}

static void data_x_bounds(const tvv_view *v, int64_t *lo, int64_t *hi)
{
    int64_t a = INT64_MAX, b = INT64_MIN;
    for (size_t p = 0; p < v->npanels; p++)
        for (size_t k = 0; k < v->panels[p].nseries; k++) {
            const tvm_series *s = tvm_series_at(v->src, v->panels[p].series[k]);
            if (!series_visible(v, s) || s->count <= 0)
                continue;
            int64_t f = v->xmode == TVV_X_STEP ? s->step_first : s->t_first_ns - series_offset(v, s);
            int64_t l = v->xmode == TVV_X_STEP ? s->step_last : s->t_last_ns - series_offset(v, s);
            a = f < a ? f : a;
            b = l > b ? l : b;
        }
    if (a > b) {
        a = 0;
        b = 1;
    }
    if (a == b) {
        a = a > INT64_MIN + 1 ? a - 1 : a;
        b = a + 2;
    }
    *lo = a;
    *hi = b;
}

/* Columns per x unit of the aligned grid (model.h's fast path), or 0 when
 * the range is narrower than the plot (one x per column or less: unaligned). */
static int64_t grid_w(const tvv_view *v)
{
    if (v->ncols <= 0)
        return 0;
    uint64_t span = (uint64_t)v->x_to - (uint64_t)v->x_from + 1;
    if (span % (uint64_t)v->ncols)
        return 0;
    uint64_t w = span / (uint64_t)v->ncols;
    return (w & (w - 1)) == 0 && v->x_from % (int64_t)w == 0 ? (int64_t)w : 0;
}

/* Show [from, to] on the aligned grid that holds it (model.h: a pan or a
 * zoom by two then reuses the columns computed before). */
static void set_aligned(tvv_view *v, int64_t from, int64_t to)
{
    int64_t a, b;
    if (v->ncols > 0 && tvm_align_range(from, to, (size_t)v->ncols, &a, &b) == 0) {
        from = a;
        to = b;
    }
    v->x_from = from;
    v->x_to = to;
}

static void update_x_range(tvv_view *v)
{
    int64_t lo, hi;
    data_x_bounds(v, &lo, &hi);
    if (v->x_auto && v->growing) {
        /* Live data: on the aligned grid that holds it, so each frame
         * recomputes only the newest columns (model.h's fast path); the grid
         * doubles when the data outgrows it. */
        set_aligned(v, lo, hi);
    } else if (v->x_auto) {
        /* the whole data, edge to edge (a zoom or pan then aligns) */
        v->x_from = lo;
        v->x_to = hi;
    } else if (v->follow && v->x_to < hi) {
        /* slide by whole grid columns so the cached columns stay valid */
        int64_t w = grid_w(v);
        uint64_t d = (uint64_t)hi - (uint64_t)v->x_to;
        if (w > 0)
            d = (d + (uint64_t)w - 1) / (uint64_t)w * (uint64_t)w;
        v->x_to = (int64_t)((uint64_t)v->x_to + d);
        v->x_from = (int64_t)((uint64_t)v->x_from + d);
    }
}

void tvv_set_x_range(tvv_view *v, int64_t from, int64_t to)
{
    if (to <= from)
        to = from + 1;
    v->x_from = from;
    v->x_to = to;
    v->x_auto = 0;
    v->follow = 0;
    v->dirty = 1;
}

/* ---- input ---- */

static const panel *panel_at(const tvv_view *v, int x, int y)
{
    for (size_t i = 0; i < v->npanels; i++) {
        tvr_rect r = v->panels[i].plot;
        if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h)
            return &v->panels[i];
    }
    return NULL;
}

/* The plot column under canvas x, in any panel's column (all are linked). */
static int col_of_pixel(const tvv_view *v, int x, int y, int *col)
{
    const panel *p = panel_at(v, x, y);
    if (!p && v->npanels) {
        /* x only: take the column of the first panel in that screen column */
        for (size_t i = 0; i < v->npanels && !p; i++)
            if (x >= v->panels[i].plot.x && x < v->panels[i].plot.x + v->panels[i].plot.w)
                p = &v->panels[i];
    }
    if (!p)
        return 0;
    *col = x - p->plot.x;
    return 1;
}

void tvv_hover(tvv_view *v, int x, int y)
{
    if (x != v->hover_x || y != v->hover_y)
        v->dirty = 1;
    v->hover_x = x;
    v->hover_y = y;
}

static void set_range_d(tvv_view *v, double from, double to)
{
    const double lim = 4.0e18;
    if (to - from < 3)
        to = from + 3;
    if (from < -lim)
        from = -lim;
    if (to > lim)
        to = lim;
    v->x_from = (int64_t)floor(from);
    v->x_to = (int64_t)ceil(to);
    v->x_auto = 0;
    v->dirty = 1;
}

/* Zoom by a power of two around a column: the grid stays aligned (each
 * column w x units, w a power of two, the range starting at a multiple of
 * w). Below one x unit per column the range is no longer aligned. */
void tvv_zoom(tvv_view *v, int x, double factor)
{
    int col = v->ncols / 2;
    col_of_pixel(v, x, v->hover_y, &col);
    double w = (double)v->x_to - (double)v->x_from + 1;
    double frac = v->ncols > 0 ? (col + 0.5) / v->ncols : 0.5;
    double xc = (double)v->x_from + frac * w;
    double nw = w * (factor < 1 ? 0.5 : 2);
    v->follow = 0;
    if (v->ncols > 0 && nw >= v->ncols) {
        double gw = nw / v->ncols;                      /* a power of two when w was aligned */
        gw = exp2(round(log2(gw)));
        double from = floor((xc - frac * gw * v->ncols) / gw) * gw;
        set_range_d(v, from, from + gw * v->ncols - 1);
        if (v->x_to - v->x_from + 1 == (int64_t)gw * v->ncols)
            return;
    }
    set_range_d(v, xc - frac * nw, xc + (1 - frac) * nw - 1);
}

void tvv_pan(tvv_view *v, int dx)
{
    if (v->ncols <= 0 || dx == 0)
        return;
    int64_t w = grid_w(v);
    v->follow = 0;
    if (w > 0) {    /* whole columns: the model reuses the columns it has */
        int64_t shift = -(int64_t)dx * w;
        v->x_from += shift;
        v->x_to += shift;
        v->x_auto = 0;
        v->dirty = 1;
        return;
    }
    double span = (double)v->x_to - (double)v->x_from + 1;
    double shift = round(-(double)dx * span / v->ncols);
    set_range_d(v, (double)v->x_from + shift, (double)v->x_to + shift);
}

void tvv_set_box(tvv_view *v, int on, int x0, int y0, int x1, int y1)
{
    v->box_on = on;
    v->bx0 = x0;
    v->by0 = y0;
    v->bx1 = x1;
    v->by1 = y1;
    v->dirty = 1;
}

void tvv_box_zoom(tvv_view *v, int x0, int y0, int x1, int y1)
{
    v->box_on = 0;
    v->dirty = 1;
    panel *p = (panel *)panel_at(v, x0, y0);
    if (!p || abs(x1 - x0) < 3)
        return;
    int ca = (x0 < x1 ? x0 : x1) - p->plot.x, cb = (x0 < x1 ? x1 : x0) - p->plot.x;
    ca = ca < 0 ? 0 : ca;
    cb = cb >= v->ncols ? v->ncols - 1 : cb;
    int64_t lo, hi, l2, h2;
    tvp_col_range(v->x_from, v->x_to, (size_t)v->ncols, (size_t)ca, &lo, &hi);
    tvp_col_range(v->x_from, v->x_to, (size_t)v->ncols, (size_t)cb, &l2, &h2);
    if (abs(y1 - y0) >= 3) {
        int ra = y0 < y1 ? y1 : y0, rb = y0 < y1 ? y0 : y1;
        double a = tvp_value_at(&p->ys, ra), b = tvp_value_at(&p->ys, rb);
        p->y_manual = 1;
        p->ylo = p->ys.log ? log10(a) : a;
        p->yhi = p->ys.log ? log10(b) : b;
    }
    v->follow = 0;
    v->x_auto = 0;
    set_aligned(v, lo, h2 > l2 ? h2 : l2);
}

void tvv_reset(tvv_view *v)
{
    v->x_auto = 1;
    v->follow = 1;
    for (size_t i = 0; i < v->npanels; i++)
        v->panels[i].y_manual = 0;
    v->dirty = 1;
}

void tvv_toggle_log_y(tvv_view *v)
{
    v->log_y = !v->log_y;
    for (size_t i = 0; i < v->npanels; i++)
        v->panels[i].y_manual = 0;
    v->dirty = 1;
}

void tvv_toggle_outliers(tvv_view *v)
{
    v->outliers = !v->outliers;
    v->dirty = 1;
}

void tvv_toggle_timelines(tvv_view *v)
{
    v->timelines = !v->timelines;
    v->dirty = 1;
}

void tvv_toggle_help(tvv_view *v)
{
    v->help = !v->help;
    v->dirty = 1;
}

void tvv_cycle_x_mode(tvv_view *v)
{
    v->xmode = (v->xmode + 1) % 3;
    v->x_auto = 1;
    v->dirty = 1;
}

void tvv_set_smoothing(tvv_view *v, double w)
{
    v->smooth = w < 0 ? 0 : w > 0.999 ? 0.999 : w;
    v->dirty = 1;
}

double tvv_smoothing(const tvv_view *v)
{
    return v->smooth;
}

void tvv_toggle_run(tvv_view *v, int run)
{
    if (run < 0) {
        memset(v->run_hidden, 0, v->nruns);
    } else if ((size_t)run < v->nruns) {
        v->run_hidden[run] = !v->run_hidden[run];
    }
}

void tvv_toggle_run_nth(tvv_view *v, int nth)
{
    if (nth >= 0 && (size_t)nth < v->nruns)
        tvv_toggle_run(v, (int)v->run_order[nth]);
    v->dirty = 1;
}

int tvv_legend_hit(const tvv_view *v, int x, int y)
{
    for (size_t i = 0; i < v->nlegend; i++) {
        tvr_rect r = v->legend[i].r;
        if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h)
            return (int)v->legend[i].run;
    }
    return -1;
}

int tvv_set_filter(tvv_view *v, const char *regex, char *err, size_t errlen)
{
    if (v->have_re) {
        regfree(&v->re);
        v->have_re = 0;
    }
    if (regex && *regex) {
        int rc = regcomp(&v->re, regex, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        if (rc != 0) {
            char m[128];
            regerror(rc, &v->re, m, sizeof m);
            snprintf(err, errlen, "bad regex \"%s\": %s", regex, m);
            rebuild(v);
            return -EINVAL;
        }
        v->have_re = 1;
    }
    return rebuild(v);
}

void tvv_set_prompt(tvv_view *v, const char *text)
{
    v->prompting = text != NULL;
    snprintf(v->prompt, sizeof v->prompt, "%s", text ? text : "");
    v->dirty = 1;
}

void tvv_set_status(tvv_view *v, const char *text)
{
    if (strcmp(v->status, text ? text : "") != 0)
        v->dirty = 1;
    snprintf(v->status, sizeof v->status, "%s", text ? text : "");
}

void tvv_set_error(tvv_view *v, const char *text)
{
    snprintf(v->error, sizeof v->error, "%s", text ? text : "");
    v->dirty = 1;
}

void tvv_time_bounds(tvv_view *v, int64_t *first_ns, int64_t *last_ns)
{
    int64_t a = INT64_MAX, b = INT64_MIN;
    for (size_t i = 0; i < tvm_series_count(v->src); i++) {
        const tvm_series *s = tvm_series_at(v->src, i);
        if (s->count <= 0)
            continue;
        a = s->t_first_ns < a ? s->t_first_ns : a;
        b = s->t_last_ns > b ? s->t_last_ns : b;
    }
    *first_ns = a;
    *last_ns = b;
}

/* ---- rendering ---- */

static uint32_t mix_rgb(uint32_t a, uint32_t b, double t)   /* a*(1-t) + b*t, opaque */
{
    uint32_t out = 0xff000000u;
    for (int sh = 0; sh <= 16; sh += 8) {
        double ca = (a >> sh) & 255, cb = (b >> sh) & 255;
        out |= (uint32_t)(ca + (cb - ca) * t + 0.5) << sh;
    }
    return out;
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
    if (grow((void **)&v->gap_first, &cap1, n, sizeof(int64_t)) < 0 ||
        grow((void **)&v->gap_last, &cap2, n, sizeof(int64_t)) < 0)
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
    int collect = v->outliers && grow((void **)&v->tmp, &v->tmp_cap, p->nseries * ncols * 2, sizeof(double)) == 0;
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

static void draw_x_axis(tvv_view *v, tvr_canvas *cv, const panel *p)
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
            tvt_draw(v->font, cv, x, pl.y + pl.h + (int)(3 * v->opt.scale), buf, DIM, TVT_CENTER);
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
            tvt_draw(v->font, cv, x, pl.y + pl.h + (int)(3 * v->opt.scale), buf, DIM, TVT_CENTER);
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

static void draw_hover(tvv_view *v, tvr_canvas *cv, const panel *p, const unsigned char *vis, int hovered)
{
    tvr_rect pl = p->plot;
    int col;
    if (v->hover_x < 0 || !col_of_pixel(v, v->hover_x, v->hover_y, &col) || col < 0 || col >= pl.w)
        return;
    tvr_dashed_v(cv, pl.x + col, pl.y, pl.y + pl.h - 1, 3, 3, HOVER);
    if (!hovered)
        return;
    tvr_dashed_h(cv, v->hover_y, pl.x, pl.x + pl.w - 1, 3, 3, HOVER);
    int th = tvt_height(v->font), pad = (int)(4 * v->opt.scale);
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
    int w = 0;
    for (size_t i = 0; i < nl; i++) {
        int lw = tvt_width(v->font, lines[i]);
        w = lw > w ? lw : w;
    }
    tvr_rect box = {v->hover_x + 12, v->hover_y + 12, w + 2 * pad, (int)nl * th + 2 * pad};
    if (box.x + box.w > cv->w)
        box.x = v->hover_x - 12 - box.w;
    if (box.y + box.h > cv->h)
        box.y = v->hover_y - 12 - box.h;
    tvr_reset_clip(cv);
    tvr_blend_fill(cv, box, 0xe8ffffffu);
    tvr_outline(cv, box, FRAME);
    for (size_t i = 0; i < nl; i++)
        tvt_draw(v->font, cv, box.x + pad, box.y + pad + (int)i * th, lines[i], colours[i], TVT_LEFT);
}

static int render_panel(tvv_view *v, tvr_canvas *cv, panel *p, int64_t *points)
{
    tvr_rect pl = p->plot;
    size_t ncols = (size_t)pl.w;
    int flags = model_flags(v), rc = 0;
    if (grow((void **)&v->shown, &v->shown_cap, p->nseries, 1) < 0 ||
        grow((void **)&v->cols, &v->cols_cap, p->nseries * ncols, sizeof(tss_bucket)) < 0)
        return -ENOMEM;
    unsigned char *shown = v->shown;
    memset(shown, 0, p->nseries);
    for (size_t k = 0; k < p->nseries; k++) {
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (!series_visible(v, s) || s->count <= 0)
            continue;
        int64_t off = series_offset(v, s);
        rc = tvm_columns(v->src, p->series[k], v->x_from + off, v->x_to + off, ncols, flags, &v->cols[k * ncols]);
        if (rc < 0)
            goto out;
        shown[k] = 1;
        for (size_t i = 0; i < ncols; i++)
            *points += v->cols[k * ncols + i].count;
    }
    double lo, hi;
    y_range(v, p, shown, ncols, &lo, &hi);
    if (p->y_manual) {
        lo = p->ylo;
        hi = p->yhi;
    }
    p->ys = (tvp_yscale){.lo = lo, .hi = hi, .log = v->log_y, .top = pl.y, .height = pl.h};

    tvr_reset_clip(cv);
    draw_y_axis(v, cv, p);
    draw_x_axis(v, cv, p);
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
        char label[160];
        snprintf(label, sizeof label, "%s%s%s", resume ? "resume" : "", resume && *e->text ? ": " : "", resume ? e->text : (*e->text ? e->text : e->kind));
        tvt_draw(v->font, cv, cx + 3, pl.y + 2 + (nlabel++ % 3) * th, label, col, TVT_LEFT);
    }
    /* lines: faint raw under the smoothed line when smoothing */
    for (size_t k = 0; k < p->nseries; k++) {
        if (!shown[k])
            continue;
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        int64_t off = series_offset(v, s);
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
    tvr_reset_clip(cv);
    int finite = 0, any = 0;
    for (size_t k = 0; k < p->nseries; k++) {
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (series_visible(v, s) && s->count > 0) {
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

void tvv_set_scale(tvv_view *v, double scale)
{
    v->opt.scale = scale >= 1 ? scale : 1;
    v->dirty = 1;
}

void tvv_set_help(tvv_view *v, const char *const *lines, size_t n)
{
    v->help_lines = lines;
    v->nhelp = n;
}

/* Lines of text in a box centred on the canvas. */
static void draw_box_text(tvv_view *v, tvr_canvas *cv, const char *const *lines, size_t n, uint32_t col)
{
    int th = tvt_height(v->font), pad = (int)(10 * v->opt.scale), w = 0;
    for (size_t i = 0; i < n; i++) {
        int lw = tvt_width(v->font, lines[i]);
        w = lw > w ? lw : w;
    }
    tvr_rect box = {(cv->w - w) / 2 - pad, (cv->h - (int)n * th) / 2 - pad, w + 2 * pad, (int)n * th + 2 * pad};
    tvr_blend_fill(cv, box, 0xf0ffffffu);
    tvr_outline(cv, box, FRAME);
    for (size_t i = 0; i < n; i++)
        tvt_draw(v->font, cv, box.x + pad, box.y + pad + (int)i * th, lines[i], col, TVT_LEFT);
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
            p->plot = (tvr_rect){x + ylab, y + th + (int)(2 * s), plot_w, ph < 8 ? 8 : ph};
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
    update_x_range(v);
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
    if (v->help && v->nhelp)
        draw_box_text(v, cv, v->help_lines, v->nhelp, FG);
    draw_status(v, cv, status_y);
    if (points)
        *points = pts;
    v->dirty = 0;
    v->rendered = 1;
    return rc;
}
