/* findings.c - the findings list and a finding marker's tooltip (view.h).
 *
 * The list holds the findings (model.h tvm_finding, ordered by step) of the
 * runs shown in the legend; selecting an entry (keys, click, or n) centres
 * the x range on it, as n does. It is drawn as a box on the right of the
 * panels, scrolled so the selected entry stays in it. Nothing is kept per
 * finding: each frame walks the model's list (its order is the list's).
 */
#include <stdio.h>
#include <string.h>

#include "view_int.h"

static int listed(const tvv_view *v, const tvm_finding *f)
{
    return f->run < v->nruns && !v->run_hidden[f->run];
}

static uint32_t severity_colour(const char *sev)
{
    return strcmp(sev, "critical") == 0 ? FIND_CRIT : strcmp(sev, "warning") == 0 ? FIND_WARN : FIND_INFO;
}

/* Position of the selected finding among the listed ones (-1: none), and
 * how many are listed. */
static ptrdiff_t selected_pos(const tvv_view *v, size_t *count)
{
    ptrdiff_t pos = -1;
    size_t n = 0;
    for (size_t i = 0; i < tvm_finding_count(v->src); i++) {
        if (!listed(v, tvm_finding_at(v->src, i)))
            continue;
        if ((ptrdiff_t)i == v->fsel)
            pos = (ptrdiff_t)n;
        n++;
    }
    *count = n;
    return pos;
}

static void select_finding(tvv_view *v, size_t i)
{
    v->fsel = (ptrdiff_t)i;
    tvv__centre_on(v, tvv__finding_x(v, tvm_finding_at(v->src, i)));
}

void tvv_toggle_findings_list(tvv_view *v)
{
    v->flist = !v->flist;
    v->dirty = 1;
}

int tvv_findings_list_open(const tvv_view *v)
{
    return v->flist;
}

int tvv_findings_move(tvv_view *v, int delta)
{
    size_t n;
    ptrdiff_t pos = selected_pos(v, &n), want;
    if (n == 0)
        return 0;
    if (pos < 0)
        want = delta >= 0 ? 0 : (ptrdiff_t)n - 1;
    else
        want = pos + delta;
    want = want < 0 ? 0 : want >= (ptrdiff_t)n ? (ptrdiff_t)n - 1 : want;
    for (size_t i = 0, k = 0; i < tvm_finding_count(v->src); i++) {
        if (!listed(v, tvm_finding_at(v->src, i)))
            continue;
        if ((ptrdiff_t)k++ == want) {
            select_finding(v, i);
            break;
        }
    }
    return 1;
}

int tvv_findings_click(tvv_view *v, int x, int y)
{
    tvr_rect b = v->fbox;
    if (!v->flist || b.w <= 0 || x < b.x || x >= b.x + b.w || y < b.y || y >= b.y + b.h)
        return 0;
    for (size_t k = 0; k < v->nfrows; k++) {
        tvr_rect r = v->frows[k].r;
        if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h && v->frows[k].finding < tvm_finding_count(v->src)) {
            select_finding(v, v->frows[k].finding);
            break;
        }
    }
    v->dirty = 1;
    return 1;
}

/* The entry's fields: severity, kind, run (and rank), series, steps, evidence. */
enum { F_SEV, F_KIND, F_RUN, F_SERIES, F_STEPS, F_MSG, NF };

static void fields_of(const tvv_view *v, const tvm_finding *f, char out[NF][160])
{
    const tvm_run *run = tvm_run_at(v->src, f->run);
    snprintf(out[F_SEV], 160, "%s", f->severity);
    snprintf(out[F_KIND], 160, "%s", f->kind);
    if (f->rank >= 0 && run->world_size > 1)
        snprintf(out[F_RUN], 160, "%s r%d", run->display, f->rank);
    else
        snprintf(out[F_RUN], 160, "%s", run->display);
    if (f->series >= 0 && (size_t)f->series < tvm_series_count(v->src))
        snprintf(out[F_SERIES], 160, "%s", tvm_series_at(v->src, (size_t)f->series)->name);
    else
        snprintf(out[F_SERIES], 160, "(whole run)");
    if (f->step_last > f->step_first)
        snprintf(out[F_STEPS], 160, "steps %lld..%lld", (long long)f->step_first, (long long)f->step_last);
    else
        snprintf(out[F_STEPS], 160, "step %lld", (long long)f->step_first);
    snprintf(out[F_MSG], 160, "%s", f->message ? f->message : "");
}

/* The list's box: on the right, from under the legend down, as high as
 * its rows need (at most to the status line). */
tvr_rect tvv__findings_box(tvv_view *v, const tvr_canvas *cv, int top, int bottom)
{
    double s = v->opt.scale;
    int th = tvt_height(v->font), pad = (int)(8 * s);
    int w = (int)(cv->w * 0.7);
    int wmax = (int)(1100 * s), wmin = (int)(420 * s) < cv->w - 16 ? (int)(420 * s) : cv->w - 16;
    w = w > wmax ? wmax : w < wmin ? wmin : w;
    size_t n = 0;
    for (size_t i = 0; i < tvm_finding_count(v->src); i++)
        n += listed(v, tvm_finding_at(v->src, i));
    int want = 2 * pad + th + (int)(4 * s) + (int)(n ? n : 1) * th;
    int h = bottom - top - (int)(8 * s);
    return (tvr_rect){cv->w - w - (int)(8 * s), top + (int)(4 * s), w, want < h ? want : h};
}

void tvv__draw_findings_list(tvv_view *v, tvr_canvas *cv, int top, int bottom)
{
    double s = v->opt.scale;
    int th = tvt_height(v->font), pad = (int)(8 * s);
    tvr_rect box = tvv__findings_box(v, cv, top, bottom);
    if (box.h < 3 * th)
        return;
    v->fbox = box;
    size_t n;
    ptrdiff_t pos = selected_pos(v, &n);
    int maxrows = (box.h - 2 * pad - th - (int)(4 * s)) / th;
    maxrows = maxrows < 1 ? 1 : maxrows;
    if (pos >= 0 && (size_t)pos < v->ftop)
        v->ftop = (size_t)pos;
    if (pos >= 0 && (size_t)pos >= v->ftop + (size_t)maxrows)
        v->ftop = (size_t)pos - (size_t)maxrows + 1;
    if (v->ftop + (size_t)maxrows > n)
        v->ftop = n > (size_t)maxrows ? n - (size_t)maxrows : 0;
    size_t nshow = n - v->ftop < (size_t)maxrows ? n - v->ftop : (size_t)maxrows;
    if (tvv__grow((void **)&v->frows, &v->frows_cap, nshow + 1, sizeof *v->frows) < 0)
        return;

    tvr_fill(cv, box, BG);
    tvr_outline(cv, box, FRAME);
    tvr_set_clip(cv, (tvr_rect){box.x + 1, box.y + 1, box.w - 2, box.h - 2});
    char head[256];
    if (n == 0)
        snprintf(head, sizeof head, "Findings: none for the shown runs   (i or Esc closes)");
    else
        snprintf(head, sizeof head, "Findings of the shown runs: %zu, by step%s   (j/k or Up/Down select, click "
                 "jumps, i or Esc closes)", n, n > nshow ? " (scrolls)" : "");
    tvt_draw(v->font, cv, box.x + pad, box.y + pad, head, FG, TVT_LEFT);
    int y0 = box.y + pad + th + (int)(4 * s);
    tvr_fill(cv, (tvr_rect){box.x + pad, y0 - (int)(2 * s), box.w - 2 * pad, 1}, FRAME);

    /* column widths from the rows shown (capped, the evidence takes the rest) */
    int colw[NF] = {0}, gap = (int)(14 * s), cap = box.w / 5;
    char f[NF][160];
    for (size_t i = 0, k = 0; i < tvm_finding_count(v->src); i++) {
        const tvm_finding *fd = tvm_finding_at(v->src, i);
        if (!listed(v, fd) || k++ < v->ftop || k > v->ftop + nshow)
            continue;
        fields_of(v, fd, f);
        for (int c = 0; c < F_MSG; c++) {
            int cw = tvt_width(v->font, f[c]);
            colw[c] = cw > colw[c] ? (cw > cap ? cap : cw) : colw[c];
        }
    }
    int sw = th * 2 / 3;
    colw[F_SEV] += sw + (int)(4 * s);
    v->nfrows = 0;
    if (v->opt.layout_out)
        fprintf(v->opt.layout_out, "findings-list %zu shown %zu first %zu selected %td box %d %d %d %d\n", n, nshow,
                v->ftop, v->fsel, box.x, box.y, box.w, box.h);
    for (size_t i = 0, k = 0; i < tvm_finding_count(v->src); i++) {
        const tvm_finding *fd = tvm_finding_at(v->src, i);
        if (!listed(v, fd) || k++ < v->ftop || k > v->ftop + nshow)
            continue;
        int y = y0 + (int)v->nfrows * th;
        tvr_rect row = {box.x + 2, y, box.w - 4, th};
        if ((ptrdiff_t)i == v->fsel)
            tvr_blend_fill(cv, row, 0x401f77b4u);
        v->frows[v->nfrows++] = (flist_row){row, i};
        fields_of(v, fd, f);
        int x = box.x + pad;
        uint32_t sc = severity_colour(fd->severity);
        tvr_fill(cv, (tvr_rect){x, y + (th - sw) / 2, sw, sw}, sc);
        for (int c = 0; c < NF; c++) {
            int cx = c == F_SEV ? x + sw + (int)(4 * s) : x;
            int right = c == F_MSG ? box.x + box.w - pad : x + colw[c];
            tvr_set_clip(cv, (tvr_rect){cx, y, right - cx, th});
            tvt_draw(v->font, cv, cx, y, f[c], c == F_SEV ? sc : c == F_RUN ? tvv__run_colour(v, fd->run)
                                                : c == F_MSG ? DIM : FG, TVT_LEFT);
            x += colw[c] + gap;
        }
        tvr_set_clip(cv, (tvr_rect){box.x + 1, box.y + 1, box.w - 2, box.h - 2});
        if (v->opt.layout_out)
            fprintf(v->opt.layout_out, "finding-row %zu y %d kind %s series %s step %lld selected %d\n", i, y, fd->kind,
                    f[F_SERIES], (long long)fd->step_first, (ptrdiff_t)i == v->fsel);
    }
    tvr_reset_clip(cv);
}

/* Cut text into lines of at most width characters at spaces (UTF-8 safe
 * enough for the detectors' ASCII sentences); returns how many. */
static size_t wrap(const char *text, size_t width, char (*out)[160], size_t max)
{
    size_t n = 0, len = strlen(text), at = 0;
    while (at < len && n < max) {
        size_t take = len - at;
        if (take > width) {
            take = width;
            while (take > width / 2 && text[at + take] != ' ')
                take--;
            if (text[at + take] != ' ')
                take = width;
        }
        snprintf(out[n], 160, "%s%.*s", n ? "  " : "", (int)take, text + at);
        n++;
        at += take;
        while (at < len && text[at] == ' ')
            at++;
    }
    return n;
}

void tvv__draw_finding_tooltip(tvv_view *v, tvr_canvas *cv)
{
    tvr_rect b = v->fbox;
    if (v->hover_finding < 0 || (size_t)v->hover_finding >= tvm_finding_count(v->src) ||
        (b.w > 0 && v->hover_x >= b.x && v->hover_x < b.x + b.w && v->hover_y >= b.y && v->hover_y < b.y + b.h))
        return;
    const tvm_finding *fd = tvm_finding_at(v->src, (size_t)v->hover_finding);
    char f[NF][160], lines[8][160];
    uint32_t colours[8];
    size_t nl = 0;
    fields_of(v, fd, f);
    snprintf(lines[nl], sizeof lines[0], "%.70s %.70s", f[F_SEV], f[F_KIND]);
    colours[nl++] = severity_colour(fd->severity);
    snprintf(lines[nl], sizeof lines[0], "%s", f[F_SERIES]);
    colours[nl++] = FG;
    snprintf(lines[nl], sizeof lines[0], "%.100s, %.50s", f[F_RUN], f[F_STEPS]);
    colours[nl++] = tvv__run_colour(v, fd->run);
    size_t nm = wrap(f[F_MSG], 72, &lines[nl], 8 - nl);
    for (size_t k = 0; k < nm; k++)
        colours[nl++] = DIM;
    tvv__tooltip(v, cv, v->hover_x, v->hover_y, lines, colours, nl);
    if (v->opt.layout_out)
        fprintf(v->opt.layout_out, "finding-tooltip %td kind %s step %lld\n", v->hover_finding, fd->kind,
                (long long)fd->step_first);
}
