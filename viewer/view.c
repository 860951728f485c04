/* view.c - the view's state (view.h): panels rebuilt from the source's
 * series (one per metric, sorted so a prefix's panels are neighbours), run
 * order and visibility, the shared x range (aligned to the model's column
 * grid when zooming, panning or following live data), and every input
 * action. Drawing a frame is render.c; what both share is view_int.h.
 */
#include "view.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heat.h"
#include "view_int.h"

int tvv__grow(void **p, size_t *cap, size_t need, size_t elem)
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
        panel *p = &v->panels[i];
        free(p->name);
        free(p->series);
        free(p->layer_of);
        for (size_t k = 0; p->layers && k < p->nlayers; k++)
            free(p->layers[k]);
        free(p->layers);
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

/* A new panel at the end of the list, named name, in the group of its
 * prefix (a new group when the previous panel's prefix differs). NULL when
 * out of memory. The caller fills its series. */
static panel *new_panel(tvv_view *v, const char *name)
{
    panel *np = realloc(v->panels, (v->npanels + 1) * sizeof *np);
    if (!np)
        return NULL;
    v->panels = np;
    panel *p = &v->panels[v->npanels];
    *p = (panel){0};
    size_t pl = prefix_len(name);
    if (v->ngroups == 0 || strlen(v->groups[v->ngroups - 1]) != pl ||
        strncmp(v->groups[v->ngroups - 1], name, pl) != 0) {
        char **ng = realloc(v->groups, (v->ngroups + 1) * sizeof *ng);
        if (!ng)
            return NULL;
        v->groups = ng;
        if (!(v->groups[v->ngroups] = strndup(name, pl)))
            return NULL;
        v->ngroups++;
    }
    if (!(p->name = strdup(name)))
        return NULL;
    p->group = v->ngroups - 1;
    v->npanels++;   /* from here free_panels frees what the caller adds */
    return p;
}

/* One metric name among the sorted series: their idx[start..end). */
typedef struct uname {
    const char *name;
    size_t start, end;
    tvh_layer l;
    int is_layer;
    size_t heat;            /* its heatmap + 1 (a group of >= 2 names), 0: a line panel */
    size_t row;             /* its row in that heatmap */
} uname;

static int cmp_layer_names(const void *a, const void *b, void *ctx)
{
    const uname *u = ctx, *x = &u[*(const size_t *)a], *y = &u[*(const size_t *)b];
    return tvh_cmp(x->name, &x->l, y->name, &y->l);
}

/* Mark the names of each layer group of two or more names as the rows of one
 * heatmap (heat.h's rule and order). Returns the number of heatmaps. */
static size_t find_heatmaps(uname *u, size_t nu, size_t *scratch)
{
    size_t nl = 0, nheat = 0;
    for (size_t i = 0; i < nu; i++)
        if (u[i].is_layer)
            scratch[nl++] = i;
    qsort_r(scratch, nl, sizeof *scratch, cmp_layer_names, u);
    for (size_t j = 0; j < nl;) {
        size_t k = j + 1;
        while (k < nl && tvh_same_group(u[scratch[j]].name, &u[scratch[j]].l, u[scratch[k]].name, &u[scratch[k]].l))
            k++;
        if (k - j >= 2) {
            nheat++;
            for (size_t r = j; r < k; r++) {
                u[scratch[r]].heat = nheat;
                u[scratch[r]].row = r - j;
            }
        }
        j = k;
    }
    return nheat;
}

/* The heatmap panel of heat number h (1-based): every series of its names,
 * each with its row. */
static int add_heat_panel(tvv_view *v, const uname *u, size_t nu, size_t h, const size_t *idx)
{
    size_t nser = 0, nlay = 0, first = nu;
    for (size_t i = 0; i < nu; i++)
        if (u[i].heat == h) {
            nser += u[i].end - u[i].start;
            nlay++;
            first = first < i ? first : i;
        }
    char group[512];
    tvh_group_name(u[first].name, &u[first].l, group, sizeof group);
    panel *p = new_panel(v, group);
    if (!p)
        return -ENOMEM;
    p->heat = 1;
    p->series = malloc(nser * sizeof *p->series);
    p->layer_of = malloc(nser * sizeof *p->layer_of);
    p->layers = calloc(nlay, sizeof *p->layers);
    if (!p->series || !p->layer_of || !p->layers)
        return -ENOMEM;
    p->nlayers = nlay;
    for (size_t i = 0; i < nu; i++) {
        if (u[i].heat != h)
            continue;
        if (!(p->layers[u[i].row] = strdup(u[i].name)))
            return -ENOMEM;
        for (size_t k = u[i].start; k < u[i].end; k++) {
            p->layer_of[p->nseries] = u[i].row;
            p->series[p->nseries++] = idx[k];
        }
    }
    return 0;
}

/* Rebuild the panel list from the source's series: one panel per metric
 * name, sorted, so panels of one prefix are neighbours; the names of a layer
 * group (heat.h) in one heatmap panel instead, unless lines_only, placed
 * where its first name would be. */
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
    uname *u = malloc((ns ? ns : 1) * sizeof *u);
    size_t *scratch = malloc((ns ? ns : 1) * sizeof *scratch);
    unsigned char *made = calloc(ns + 1, 1);
    int rc = 0;
    if (!idx || !u || !scratch || !made) {
        rc = -ENOMEM;
        goto out;
    }
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
    size_t nu = 0;
    for (size_t i = 0; i < n;) {
        const char *name = tvm_series_at(v->src, idx[i])->name;
        size_t j = i;
        while (j < n && strcmp(tvm_series_at(v->src, idx[j])->name, name) == 0)
            j++;
        u[nu] = (uname){.name = name, .start = i, .end = j};
        u[nu].is_layer = tvh_parse(name, &u[nu].l);
        nu++;
        i = j;
    }
    if (!v->lines_only)
        find_heatmaps(u, nu, scratch);
    for (size_t i = 0; i < nu && rc == 0; i++) {
        if (u[i].heat) {
            if (!made[u[i].heat]) {
                made[u[i].heat] = 1;
                rc = add_heat_panel(v, u, nu, u[i].heat, idx);
            }
            continue;
        }
        panel *p = new_panel(v, u[i].name);
        if (!p || !(p->series = malloc((u[i].end - u[i].start) * sizeof *p->series))) {
            rc = -ENOMEM;
            break;
        }
        memcpy(p->series, &idx[u[i].start], (u[i].end - u[i].start) * sizeof *idx);
        p->nseries = u[i].end - u[i].start;
    }
out:
    free(idx);
    free(u);
    free(scratch);
    free(made);
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
    v->fsel = -1;
    v->hover_finding = -1;
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
    free(v->hval);
    free(v->hstate);
    free(v->hslot);
    free(v->hrow);
    free(v->frows);
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

int tvv__series_visible(const tvv_view *v, const tvm_series *s)
{
    return s->run < v->nruns && !v->run_hidden[s->run];
}

/* x of the series in view units -> the series' own x (TVM_X_STEP / TIME). */
int64_t tvv__series_offset(const tvv_view *v, const tvm_series *s)
{
    return v->xmode == TVV_X_SINCE_START ? v->run_start[s->run] : 0;
}

int tvv__model_flags(const tvv_view *v)
{
    return (v->xmode == TVV_X_STEP ? TVM_X_STEP : TVM_X_TIME) | (v->timelines ? TVM_ALL_TIMELINES : 0);
}

static void data_x_bounds(const tvv_view *v, int64_t *lo, int64_t *hi)
{
    int64_t a = INT64_MAX, b = INT64_MIN;
    for (size_t p = 0; p < v->npanels; p++)
        for (size_t k = 0; k < v->panels[p].nseries; k++) {
            const tvm_series *s = tvm_series_at(v->src, v->panels[p].series[k]);
            if (!tvv__series_visible(v, s) || s->count <= 0)
                continue;
            int64_t f = v->xmode == TVV_X_STEP ? s->step_first : s->t_first_ns - tvv__series_offset(v, s);
            int64_t l = v->xmode == TVV_X_STEP ? s->step_last : s->t_last_ns - tvv__series_offset(v, s);
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

/* x units per column when the range is a whole number of columns (model.h's
 * fast path: a pan by whole columns reuses the columns computed before), or
 * 0 when it is not. */
static int64_t grid_w(const tvv_view *v)
{
    if (v->ncols <= 0)
        return 0;
    uint64_t span = (uint64_t)v->x_to - (uint64_t)v->x_from + 1;
    if (span % (uint64_t)v->ncols)
        return 0;
    return (int64_t)(span / (uint64_t)v->ncols);
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

/* The whole data [lo, hi], filling the plot to within 1/16 of a column's
 * width. With many points per column the column edges are put at multiples
 * of a power of two u <= w/16: the store keeps M4 summaries of step-aligned
 * groups in each chunk (docs/store.md, chunks.groups; 128 steps for a full
 * chunk of consecutive steps), so a column whose edges fall between groups
 * is reduced without decoding the chunks it cuts, which is what makes the
 * first frame of a 100M-point store fast. Edge to edge would cut every group
 * it meets and decode every chunk. Columns are w wide, so a pan by whole
 * columns reuses them (grid_w). */
static void set_whole(tvv_view *v, int64_t lo, int64_t hi)
{
    v->x_from = lo;
    v->x_to = hi;
    if (v->ncols <= 0 || hi <= lo)
        return;
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1, n = (uint64_t)v->ncols;
    uint64_t w = (span + n - 1) / n;
    if (w < 256 || span > (uint64_t)INT64_MAX / 2)
        return;    /* few points per column: decoding them is cheap */
    uint64_t u = 1;
    while (u * 2 <= w / 16)
        u *= 2;
    int64_t from = lo >= 0 ? lo / (int64_t)u * (int64_t)u
                           : -(int64_t)((-(uint64_t)lo + u - 1) / u * u);
    w = (w + u - 1) / u * u;
    while ((uint64_t)from + w * n - 1 < (uint64_t)hi)
        w += u;
    v->x_from = from;
    v->x_to = (int64_t)((uint64_t)from + w * n - 1);
}

void tvv__update_x_range(tvv_view *v)
{
    int64_t lo, hi;
    data_x_bounds(v, &lo, &hi);
    if (v->x_auto && v->growing) {
        /* Live data: on the aligned grid that holds it, so each frame
         * recomputes only the newest columns (model.h's fast path); the grid
         * doubles when the data outgrows it. */
        set_aligned(v, lo, hi);
    } else if (v->x_auto) {
        set_whole(v, lo, hi);
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
int tvv__col_of_pixel(const tvv_view *v, int x, int y, int *col)
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
    tvv__col_of_pixel(v, x, v->hover_y, &col);
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
    if (abs(y1 - y0) >= 3 && !p->heat) {   /* a heatmap's rows are layers: x only */
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

int64_t tvv__finding_x(const tvv_view *v, const tvm_finding *f)
{
    if (v->xmode == TVV_X_STEP)
        return f->step_first;
    return v->xmode == TVV_X_WALL ? f->t_ns : f->t_ns - v->run_start[f->run];
}

void tvv__centre_on(tvv_view *v, int64_t x)
{
    int64_t width = (int64_t)((uint64_t)v->x_to - (uint64_t)v->x_from);
    tvv_set_x_range(v, x - width / 2, x - width / 2 + width);
}

int tvv_next_finding(tvv_view *v)
{
    int64_t width = (int64_t)((uint64_t)v->x_to - (uint64_t)v->x_from);
    int64_t centre = v->x_from + width / 2, best = 0, first = 0;
    ptrdiff_t ibest = -1, ifirst = -1;
    for (size_t i = 0; i < tvm_finding_count(v->src); i++) {
        const tvm_finding *f = tvm_finding_at(v->src, i);
        if (f->run >= v->nruns || v->run_hidden[f->run])
            continue;
        int64_t x = tvv__finding_x(v, f);
        if (ifirst < 0 || x < first) {
            first = x;
            ifirst = (ptrdiff_t)i;
        }
        if (x > centre && (ibest < 0 || x < best)) {
            best = x;
            ibest = (ptrdiff_t)i;
        }
    }
    if (ifirst < 0)
        return 0;
    v->fsel = ibest >= 0 ? ibest : ifirst;   /* the list, when open, follows */
    tvv__centre_on(v, ibest >= 0 ? best : first);
    return 1;
}

void tvv_toggle_heatmaps(tvv_view *v)
{
    v->lines_only = !v->lines_only;
    rebuild(v);
}

void tvv_toggle_rank_lines(tvv_view *v)
{
    v->each_rank = !v->each_rank;
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

void tvv_set_layout_out(tvv_view *v, FILE *f)
{
    v->opt.layout_out = f;
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
