/* view.h - what the viewer window shows and how input changes it, apart from
 * SDL: the panel grid (one panel per metric, grouped by name prefix), the
 * shared x range, per-panel y scales, and the rendering of a whole frame into
 * a tvr_canvas. app.c owns the window and turns SDL events into the tvv_
 * calls below; the same code renders --screenshot, --bench-frames and the
 * interactive window.
 *
 * Knobs: x as step, wall time or time since each run's start (tvv_x_mode);
 * log y; y autoscale ignoring the outer 1% of the columns' values;
 * debiased EMA smoothing (computed over the pixel columns, raw line faint
 * behind); superseded timelines; --all-points (draw every point, the
 * reference drawing of plot.h).
 *
 * Layer heatmaps. Metrics whose names hold a layer index (heat.h's rule:
 * grad_norm/layer.12, grad_norm/layers.3.attn, update_ratio/layer_7; the
 * index follows a letter and one '.' or '_') form groups; a group of two or
 * more names is one panel named by the group (grad_norm/layer.*), drawn as a
 * heatmap: a row per layer in index order, x the shared axis, a cell per
 * pixel column and layer. A cell's colour is the largest value of the
 * column (the M4 max, over the ranks of the run too), so a one-step
 * explosion in one layer shows at every zoom as the line plots keep a spike;
 * the colour scale is log10 by default (l makes it linear) over the cells in
 * view, with a colour bar and SI ticks under the x labels. A cell holding a
 * NaN or an Inf has its own colour (heat.h TVH_NONFINITE), a cell without
 * points stays background, except when zoomed in past one step per column
 * (x as step): then a point's cell reaches to the next point's column when
 * the two are neighbours at the series' step spacing in view (the line plot
 * joins them likewise; a larger distance, such as dropped data, stays
 * empty; hovering such a cell says "no points"). With several runs shown, each run gets its block
 * of rows (in legend order, marked with the run's colour at the left). More
 * rows than pixels: rows sharing a pixel row show their largest value.
 * Finding markers are drawn on a heatmap as on a line panel; events and
 * dropped-data shading are not (a dropped range is empty cells already).
 * tvv_toggle_heatmaps shows such groups as line panels instead.
 *
 * Findings (model.h tvm_finding): a marker per finding in its panel, with a
 * tooltip when hovered; the findings list (tvv_toggle_findings_list) lists
 * those of the shown runs by step, and selecting an entry centres the view
 * on it as tvv_next_finding does.
 */
#ifndef TRAINSCOPE_VIEWER_VIEW_H
#define TRAINSCOPE_VIEWER_VIEW_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "raster.h"
#include "text.h"

enum tvv_xmode { TVV_X_STEP, TVV_X_WALL, TVV_X_SINCE_START };

typedef struct tvv_view tvv_view;

typedef struct tvv_options {
    const char *metric_glob;    /* --metric GLOB (fnmatch), NULL: all */
    int all_points;             /* draw every point instead of the M4 columns */
    double scale;               /* HiDPI: UI pixels per point, >= 1 */
    FILE *layout_out;           /* when set, each render prints the panel geometry (tests) */
} tvv_options;

/* The view does not own src or font. */
int tvv_create(tvv_view **out, tvm_source *src, tvt_font *font, const tvv_options *opt);
void tvv_destroy(tvv_view *v);

/* Data changed (tvm_poll's mask): rebuild panels when runs/series changed. */
void tvv_data_changed(tvv_view *v, unsigned mask);

/* Render one frame into cv (its whole area). Returns 0 or a negative error
 * from the source (the frame then shows the message). *points gets how many
 * points the frame represents (sum of column counts), when not NULL. */
int tvv_render(tvv_view *v, tvr_canvas *cv, int64_t *points);
/* Whether something changed since the last render (redraw only then). */
int tvv_dirty(const tvv_view *v);
void tvv_set_dirty(tvv_view *v);

/* ---- input (coordinates in canvas pixels) ---- */
void tvv_hover(tvv_view *v, int x, int y);             /* x < 0: mouse left the window */
void tvv_zoom(tvv_view *v, int x, double factor);      /* factor < 1 zooms in, around column x */
void tvv_pan(tvv_view *v, int dx_pixels);               /* content follows the mouse */
void tvv_box_zoom(tvv_view *v, int x0, int y0, int x1, int y1);
void tvv_set_box(tvv_view *v, int on, int x0, int y0, int x1, int y1);  /* the rubber band */
void tvv_reset(tvv_view *v);
/* Set the x range explicitly (--x-range); in the current x mode's units
 * (steps, or ns for the time modes). */
void tvv_set_x_range(tvv_view *v, int64_t from, int64_t to);

void tvv_toggle_log_y(tvv_view *v);
void tvv_toggle_outliers(tvv_view *v);
void tvv_toggle_timelines(tvv_view *v);
void tvv_toggle_help(tvv_view *v);
/* A run's ranks in one panel: the band min..max with the mean line (the
 * default), or every rank's own line. */
void tvv_toggle_rank_lines(tvv_view *v);
/* Centre the x range (width kept) on the first finding of a shown run after
 * the current centre, wrapping to the first; 0 when there is none. */
int tvv_next_finding(tvv_view *v);
/* Layer groups as heatmaps (the default) or as line panels. */
void tvv_toggle_heatmaps(tvv_view *v);
/* The findings list over the panels: open / close, whether open. */
void tvv_toggle_findings_list(tvv_view *v);
int tvv_findings_list_open(const tvv_view *v);
/* Select the entry delta rows away in the list (the first one when none is
 * selected) and centre the view on its finding; 0 when there is none. */
int tvv_findings_move(tvv_view *v, int delta);
/* A click at (x, y): on an entry of the open list, select it and centre the
 * view on it. 1 when the click was on the list (consumed), else 0. */
int tvv_findings_click(tvv_view *v, int x, int y);
void tvv_cycle_x_mode(tvv_view *v);
void tvv_set_smoothing(tvv_view *v, double w);          /* 0 .. 0.999 */
double tvv_smoothing(const tvv_view *v);
/* Run visibility: index into the source's runs; -1: all visible again. */
void tvv_toggle_run(tvv_view *v, int run);
/* The same for the n-th run of the legend (keys 1-9). */
void tvv_toggle_run_nth(tvv_view *v, int nth);
/* Legend hit test: the run whose legend entry is at (x, y), or -1. */
int tvv_legend_hit(const tvv_view *v, int x, int y);
/* Metric filter (POSIX extended regex, case-insensitive); "" clears it.
 * Returns 0, or -EINVAL with the regcomp message in err. */
int tvv_set_filter(tvv_view *v, const char *regex, char *err, size_t errlen);
/* The filter being typed, shown in the status line (NULL: not typing). */
void tvv_set_prompt(tvv_view *v, const char *text);
/* One line in the status bar from the app (follow/pause, replay clock). */
void tvv_set_status(tvv_view *v, const char *text);
/* A message over the plots (bad input): NULL clears it. */
void tvv_set_error(tvv_view *v, const char *text);
/* Where renders print the panel geometry (NULL: nowhere). */
void tvv_set_layout_out(tvv_view *v, FILE *f);
/* HiDPI: UI pixels per window point (the window moved to another screen). */
void tvv_set_scale(tvv_view *v, double scale);
/* The help overlay's lines (not copied; static strings). */
void tvv_set_help(tvv_view *v, const char *const *lines, size_t n);

/* Earliest and latest wall time of the loaded runs (for replay). */
void tvv_time_bounds(tvv_view *v, int64_t *first_ns, int64_t *last_ns);
/* Number of panels (metrics) shown and series in them. */
size_t tvv_panel_count(const tvv_view *v);

#endif
