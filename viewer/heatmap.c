/* heatmap.c - drawing a layer heatmap panel (view.h, heat.h): per pixel
 * column and layer a cell coloured by the column's largest value.
 *
 * The cells come from the same M4 columns the line panels draw (tvm_columns,
 * with its fast path for pans and live data), one array per series into the
 * view's scratch; a cell folds the columns of its run's ranks of that layer:
 * the max of their maxima, or "non-finite" when any holds a NaN or an Inf.
 * Nothing here allocates once the scratch arrays have grown to the window.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heat.h"
#include "view_int.h"

enum { CELL_EMPTY, CELL_VALUE, CELL_NONFINITE };

/* Fold cell (b_state, b_val) into (*state, *val): non-finite wins, else the max. */
static void fold_cell(unsigned char *state, double *val, unsigned char b_state, double b_val)
{
    if (b_state == CELL_NONFINITE || *state == CELL_NONFINITE) {
        *state = b_state > *state ? b_state : *state;
        return;
    }
    if (b_state == CELL_VALUE && (*state == CELL_EMPTY || b_val > *val))
        *val = b_val;
    if (b_state > *state)
        *state = b_state;
}

/* The runs with a shown series in the panel, in legend order: their block
 * of rows (v->hslot[run]); returns how many. */
static size_t assign_slots(tvv_view *v, const panel *p, const unsigned char *shown)
{
    size_t nslots = 0;
    for (size_t r = 0; r < v->nruns; r++)
        v->hslot[r] = SIZE_MAX;
    for (size_t k = 0; k < p->nseries; k++)
        if (shown[k])
            v->hslot[tvm_series_at(v->src, p->series[k])->run] = 0;   /* has a row block */
    for (size_t i = 0; i < v->nruns; i++) {
        size_t r = v->run_order[i];
        if (v->hslot[r] != SIZE_MAX)
            v->hslot[r] = nslots++;
    }
    return nslots;
}

/* Pixel rows [*y0, *y1) of heatmap row R of n in the plot; at least one. */
static void row_span(const tvr_rect *pl, size_t R, size_t n, int *y0, int *y1)
{
    *y0 = pl->y + (int)((int64_t)R * pl->h / (int64_t)n);
    *y1 = pl->y + (int)((int64_t)(R + 1) * pl->h / (int64_t)n);
    if (*y1 <= *y0)
        *y1 = *y0 + 1;
}

/* The colour scale over the cells with a value: log10 of the positive ones,
 * or linear; padded when flat. */
static void colour_range(panel *p, const unsigned char *st, const double *val, size_t ncell, int log)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < ncell; i++) {
        if (st[i] != CELL_VALUE || (log && !(val[i] > 0)))
            continue;
        lo = val[i] < lo ? val[i] : lo;
        hi = val[i] > hi ? val[i] : hi;
    }
    if (lo > hi) {
        lo = log ? 0.1 : 0;
        hi = 1;
    }
    if (log) {
        lo = log10(lo);
        hi = log10(hi);
    }
    if (lo == hi) {
        double d = log ? 0.5 : fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    p->clo = lo;
    p->chi = hi;
    p->clog = log;
}

static void draw_colour_bar(tvv_view *v, tvr_canvas *cv, const panel *p)
{
    tvr_rect b = p->cbar;
    int th = tvt_height(v->font), sw = b.h;
    const char *nf = "NaN/Inf";
    int nfw = tvt_width(v->font, nf) + sw + (int)(12 * v->opt.scale);
    int w = b.w - nfw;
    if (w < 16)
        return;
    for (int i = 0; i < w; i++)
        tvr_fill(cv, (tvr_rect){b.x + i, b.y, 1, b.h}, tvh_colour((double)i / (w - 1)));
    tvr_outline(cv, (tvr_rect){b.x - 1, b.y - 1, w + 2, b.h + 2}, FRAME);
    tvr_fill(cv, (tvr_rect){b.x + w + (int)(8 * v->opt.scale), b.y, sw, sw}, TVH_NONFINITE);
    tvt_draw(v->font, cv, b.x + b.w, b.y + b.h / 2 - th / 2, nf, DIM, TVT_RIGHT);
    double t[TVP_MAX_TICKS], step = 0;
    int maxt = w / (int)(70 * v->opt.scale) + 2;
    size_t n = p->clog ? tvp_log_ticks(p->clo, p->chi, maxt, t) : tvp_ticks(p->clo, p->chi, maxt, t, &step);
    char buf[64];
    int last_right = -(1 << 30);
    for (size_t i = 0; i < n; i++) {
        double pos = ((p->clog ? log10(t[i]) : t[i]) - p->clo) / (p->chi - p->clo);
        if (!(pos >= -1e-9 && pos <= 1 + 1e-9))
            continue;
        int x = b.x + (int)lround(pos * (w - 1));
        tvr_fill(cv, (tvr_rect){x, b.y + b.h, 1, (int)(3 * v->opt.scale)}, FG);
        tvp_format(t[i], p->clog ? t[i] : step, buf, sizeof buf);
        int tw = tvt_width(v->font, buf);
        if (x - tw / 2 <= last_right + 4 || x + tw / 2 > b.x + w + nfw / 2)
            continue;
        tvt_draw(v->font, cv, x, b.y + b.h + (int)(2 * v->opt.scale), buf, DIM, TVT_CENTER);
        last_right = x + tw / 2;
    }
}

/* Row labels in the y label area: the layer's row label (heat.h), every
 * row when there is room, else every k-th; the run's colour as a strip. */
static void draw_row_labels(tvv_view *v, tvr_canvas *cv, const panel *p, size_t nslots)
{
    tvr_rect pl = p->plot;
    int th = tvt_height(v->font), strip = (int)(3 * v->opt.scale);
    size_t nrows = nslots * p->nlayers, every = 1;
    while ((int64_t)pl.h * (int64_t)every / (int64_t)nrows < th && every < nrows)
        every *= 2;
    tvr_set_clip(cv, (tvr_rect){pl.x - v->ylab + 2, pl.y - th / 2, v->ylab - strip - 4, pl.h + th});
    for (size_t R = 0; R < nrows; R += every) {
        const char *name = p->layers[R % p->nlayers];
        tvh_layer l;
        char label[96];
        if (tvh_parse(name, &l))
            snprintf(label, sizeof label, "%.*s", (int)(l.end - l.at), name + l.at);
        else
            snprintf(label, sizeof label, "%s", name);
        int y0, y1;
        row_span(&pl, R, nrows, &y0, &y1);
        tvt_draw(v->font, cv, pl.x - strip - (int)(5 * v->opt.scale), (y0 + y1) / 2 - th / 2, label, DIM, TVT_RIGHT);
    }
    tvr_reset_clip(cv);
    if (nslots > 1)
        for (size_t r = 0; r < v->nruns; r++) {
            if (v->hslot[r] == SIZE_MAX)
                continue;
            int y0, y1, z0, z1;
            row_span(&pl, v->hslot[r] * p->nlayers, nrows, &y0, &y1);
            row_span(&pl, v->hslot[r] * p->nlayers + p->nlayers - 1, nrows, &z0, &z1);
            tvr_fill(cv, (tvr_rect){pl.x - strip - 2, y0, strip, z1 - y0}, tvv__run_colour(v, r));
        }
}

/* The cell under the mouse: run, layer, column range and what the columns
 * of its series hold. */
static void draw_heat_hover(tvv_view *v, tvr_canvas *cv, const panel *p, const unsigned char *shown, size_t nslots)
{
    tvr_rect pl = p->plot;
    int col;
    if (v->hover_x < 0 || !tvv__col_of_pixel(v, v->hover_x, v->hover_y, &col) || col < 0 || col >= pl.w)
        return;
    tvr_dashed_v(cv, pl.x + col, pl.y, pl.y + pl.h - 1, 3, 3, HOVER);
    if (v->hover_y < pl.y || v->hover_y >= pl.y + pl.h || v->hover_x < pl.x || v->hover_x >= pl.x + pl.w ||
        nslots == 0 || v->hover_finding >= 0)
        return;
    size_t nrows = nslots * p->nlayers;
    size_t R = (size_t)((int64_t)(v->hover_y - pl.y) * (int64_t)nrows / pl.h);
    if (R >= nrows)
        R = nrows - 1;
    size_t slot = R / p->nlayers, layer = R % p->nlayers, run = SIZE_MAX;
    for (size_t r = 0; r < v->nruns; r++)
        if (v->hslot[r] == slot)
            run = r;
    if (run == SIZE_MAX)
        return;
    char lines[8][160];
    uint32_t colours[8];
    size_t nl = 0;
    int64_t lo, hi;
    tvp_col_range(v->x_from, v->x_to, (size_t)pl.w, (size_t)col, &lo, &hi);
    snprintf(lines[nl], sizeof lines[0], "%s", p->layers[layer]);
    colours[nl++] = FG;
    snprintf(lines[nl], sizeof lines[0], "%s", tvm_run_at(v->src, run)->display);
    colours[nl++] = tvv__run_colour(v, run);
    tvv__col_text(v, lo, hi, lines[nl], sizeof lines[0]);
    colours[nl++] = DIM;
    tss_bucket b;
    tss_bucket_init(&b);
    int nranks = 0;
    for (size_t k = 0; k < p->nseries; k++) {
        const tvm_series *s = tvm_series_at(v->src, p->series[k]);
        if (!shown[k] || s->run != run || p->layer_of[k] != layer)
            continue;
        nranks++;
        tss_bucket_merge(&b, &v->cols[k * (size_t)pl.w + (size_t)col]);
    }
    if (b.count == 0) {
        snprintf(lines[nl], sizeof lines[0], "no points");
    } else if (b.n_nan || b.n_inf) {
        snprintf(lines[nl], sizeof lines[0], "%lld NaN, %lld Inf of %lld points (max %.6g)", (long long)b.n_nan,
                 (long long)b.n_inf, (long long)b.count, b.max);
    } else if (b.count == 1) {
        snprintf(lines[nl], sizeof lines[0], "value %.6g", b.max);
    } else {
        snprintf(lines[nl], sizeof lines[0], "max %.6g, min %.6g, %lld points%s", b.max, b.min,
                 (long long)b.count, nranks > 1 ? " (all ranks)" : "");
    }
    colours[nl++] = b.n_nan || b.n_inf ? ERRCOL : FG;
    tvv__tooltip(v, cv, v->hover_x, v->hover_y, lines, colours, nl);
}

/* Paint the cells: rows in order, rows sharing a pixel row folded. A row's
 * colours are computed once into rowpx (0: empty, left as it is; rowpx has
 * 2 * ncols + 2 entries, the rest for its runs of cells) and copied straight
 * into the canvas rows it covers, inside the clip. */
static void paint_cells(tvr_canvas *cv, const panel *p, const unsigned char *st, const double *val,
                        size_t nrows, size_t ncols, unsigned char *acc_st, double *acc_val, uint32_t *rowpx)
{
    tvr_rect pl = p->plot, cl = cv->clip;
    int xa = pl.x > cl.x ? pl.x : cl.x, xb = pl.x + (int)ncols < cl.x + cl.w ? pl.x + (int)ncols : cl.x + cl.w;
    size_t R = 0;
    while (R < nrows) {
        int gy0, gy1;
        row_span(&pl, R, nrows, &gy0, &gy1);
        memcpy(acc_st, &st[R * ncols], ncols);
        memcpy(acc_val, &val[R * ncols], ncols * sizeof *acc_val);
        for (R++; R < nrows; R++) {
            int y0, y1;
            row_span(&pl, R, nrows, &y0, &y1);
            if (y0 != gy0)
                break;
            gy1 = y1 > gy1 ? y1 : gy1;
            for (size_t i = 0; i < ncols; i++)
                fold_cell(&acc_st[i], &acc_val[i], st[R * ncols + i], val[R * ncols + i]);
        }
        for (size_t i = 0; i < ncols; i++)
            rowpx[i] = acc_st[i] == CELL_EMPTY ? 0
                     : acc_st[i] == CELL_NONFINITE ? TVH_NONFINITE
                     : tvh_colour(tvh_scale(acc_val[i], p->clo, p->chi, p->clog));
        /* the runs of non-empty cells inside the clip, as (start, end) pairs
         * after the row's colours: each pixel row is then a few memcpys */
        uint32_t *seg = rowpx + ncols;
        size_t nseg = 0;
        for (int x = xa; x < xb;) {
            if (!rowpx[x - pl.x]) {
                x++;
                continue;
            }
            int e = x;
            while (e < xb && rowpx[e - pl.x])
                e++;
            seg[2 * nseg] = (uint32_t)x;
            seg[2 * nseg + 1] = (uint32_t)e;
            nseg++;
            x = e;
        }
        int ya = gy0 > cl.y ? gy0 : cl.y, yb = gy1 < cl.y + cl.h ? gy1 : cl.y + cl.h;
        for (int y = ya; y < yb; y++) {
            uint32_t *row = cv->px + (size_t)y * (size_t)cv->pitch;
            for (size_t k = 0; k < nseg; k++)
                memcpy(row + seg[2 * k], rowpx + (seg[2 * k] - (uint32_t)pl.x),
                       (size_t)(seg[2 * k + 1] - seg[2 * k]) * sizeof *row);
        }
    }
}

/* The series' step spacing in this frame: the smallest step distance
 * between two neighbouring non-empty columns (0 when fewer than two). */
static int64_t hold_stride(const tss_bucket *c, size_t ncols)
{
    int64_t best = 0;
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < ncols; i++) {
        if (c[i].count == 0)
            continue;
        if (last != SIZE_MAX) {
            int64_t d = c[i].step_first - c[last].step_last;
            if (d > 0 && (best == 0 || d < best))
                best = d;
        }
        last = i;
    }
    return best;
}

int tvv__render_heat(tvv_view *v, tvr_canvas *cv, panel *p, int64_t *points)
{
    tvr_rect pl = p->plot;
    size_t ncols = (size_t)pl.w;
    if (tvv__grow((void **)&v->hslot, &v->hslot_cap, v->nruns + 1, sizeof(size_t)) < 0)
        return -ENOMEM;
    int rc = tvv__panel_columns(v, p, ncols, points);
    if (rc < 0)
        return rc;
    unsigned char *shown = v->shown;
    size_t nslots = assign_slots(v, p, shown), nrows = nslots * p->nlayers, ncell = nrows * ncols;
    if (tvv__grow((void **)&v->hval, &v->hval_cap, ncell + ncols, sizeof(double)) < 0 ||
        tvv__grow((void **)&v->hstate, &v->hstate_cap, ncell + ncols, 1) < 0 ||
        tvv__grow((void **)&v->hrow, &v->hrow_cap, 2 * ncols + 2, sizeof(uint32_t)) < 0)
        return -ENOMEM;
    unsigned char *st = v->hstate;
    double *val = v->hval;
    memset(st, CELL_EMPTY, ncell);
    /* zoomed in past one step per column (x as step): a point's cell is as
     * wide as its step, as the line plot joins neighbouring points */
    int hold = v->xmode == TVV_X_STEP && (uint64_t)v->x_to - (uint64_t)v->x_from + 1 < (uint64_t)ncols;
    for (size_t k = 0; k < p->nseries; k++) {
        if (!shown[k])
            continue;
        size_t R = v->hslot[tvm_series_at(v->src, p->series[k])->run] * p->nlayers + p->layer_of[k];
        const tss_bucket *c = &v->cols[k * ncols];
        int64_t stride = hold ? hold_stride(c, ncols) : 0;
        size_t last = SIZE_MAX;
        for (size_t i = 0; i < ncols; i++) {
            if (c[i].count == 0)
                continue;
            unsigned char cs = c[i].n_nan || c[i].n_inf ? CELL_NONFINITE : CELL_VALUE;
            fold_cell(&st[R * ncols + i], &val[R * ncols + i], cs, c[i].max);
            /* the previous point's cell reaches to this one's when they are
             * neighbours at the series' step spacing (not across dropped data) */
            if (last != SIZE_MAX && i - last > 1 && stride > 0 && c[i].step_first - c[last].step_last <= stride) {
                unsigned char ls = c[last].n_nan || c[last].n_inf ? CELL_NONFINITE : CELL_VALUE;
                for (size_t j = last + 1; j < i; j++)
                    fold_cell(&st[R * ncols + j], &val[R * ncols + j], ls, c[last].max);
            }
            last = i;
        }
    }
    colour_range(p, st, val, ncell, !v->log_y);
    p->ys = (tvp_yscale){.lo = 0, .hi = 1, .top = pl.y, .height = pl.h};

    tvr_reset_clip(cv);
    tvv__draw_x_axis(v, cv, p);
    if (nrows > 0)
        draw_row_labels(v, cv, p, nslots);
    draw_colour_bar(v, cv, p);
    tvr_set_clip(cv, pl);
    if (nrows > 0)
        paint_cells(cv, p, st, val, nrows, ncols, st + ncell, val + ncell, v->hrow);
    /* a background line between the blocks of two runs, when rows are tall enough to spare it */
    for (size_t slot = 1; slot < nslots && pl.h >= 3 * (int)nrows; slot++) {
        int y0, y1;
        row_span(&pl, slot * p->nlayers, nrows, &y0, &y1);
        tvr_fill(cv, (tvr_rect){pl.x, y0, pl.w, 1}, BG);
    }
    tvv__draw_findings(v, cv, p);
    tvr_reset_clip(cv);
    tvr_outline(cv, (tvr_rect){pl.x - 1, pl.y - 1, pl.w + 2, pl.h + 2}, FRAME);
    tvr_set_clip(cv, pl);
    draw_heat_hover(v, cv, p, shown, nslots);
    tvr_reset_clip(cv);
    if (v->opt.layout_out) {
        fprintf(v->opt.layout_out, "heatmap %s rows %zu layers %zu cbar %d %d %d %d c %.17g %.17g log %d\n", p->name,
                nrows, p->nlayers, p->cbar.x, p->cbar.y, p->cbar.w, p->cbar.h, p->clo, p->chi, p->clog);
        for (size_t R = 0; R < nrows; R++) {
            int y0, y1;
            row_span(&pl, R, nrows, &y0, &y1);
            size_t run = 0;
            for (size_t r = 0; r < v->nruns; r++)
                if (v->hslot[r] == R / p->nlayers)
                    run = r;
            fprintf(v->opt.layout_out, "heatrow %s %zu %s %s %d %d\n", p->name, R, tvm_run_at(v->src, run)->name,
                    p->layers[R % p->nlayers], y0, y1);
        }
    }
    return 0;
}
