/* plot.h - plot maths, apart from SDL and from the data source: axis ticks
 * and their labels, the value-to-row mapping, the column mapping, debiased
 * EMA smoothing, and the two drawings of one series.
 *
 * The exactness rule. A series is drawn into the columns of a plot rect with
 * the column mapping of model.h (x in [x_from, x_to] cut into ncols columns)
 * and a monotone value-to-row mapping (tvp_row). The reference drawing
 * (tvp_draw_points) draws every point as a polyline: each non-NaN point is a
 * pixel (column, row), consecutive non-NaN points are joined by tvr_line, and
 * NaN points are skipped (the line joins across them). A dropped-data gap
 * (tvm_gap) breaks the join between two points in different columns whose
 * steps lie on both sides of it; a gap narrower than a pixel column cannot
 * be seen, so inside a column points are always joined. +-Inf are drawn at
 * rows far beyond the plot edge (the line leaves the plot towards them).
 *
 * The M4 drawing (tvp_draw_columns) takes per column only the count, min,
 * max, first and last: the segment row(max)..row(min) in the column, and a
 * tvr_line from the column's last to the next drawable column's first. The
 * joins inside a column form a chain of vertical segments whose union is
 * exactly row(max)..row(min) (row() is monotone), and the joins between
 * columns are the same segments in both drawings, so the pixels are
 * identical. A column whose first or last value is NaN needs the first or
 * last non-NaN value instead: the caller's fix callback supplies it (from the
 * points of that one column).
 */
#ifndef TRAINSCOPE_VIEWER_PLOT_H
#define TRAINSCOPE_VIEWER_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "raster.h"
#include "store.h"   /* tss_bucket, tss_point */

/* ---- ticks and labels ---- */

#define TVP_MAX_TICKS 32
/* Ticks at nice numbers (1, 2, 5 x 10^k) inside [lo, hi], at most max_ticks
 * of them (>= 2). Returns how many were written; *step gets the spacing. */
size_t tvp_ticks(double lo, double hi, int max_ticks, double *out, double *step);
/* Ticks for a log10 axis: the decades (or every 2nd, 5th ... when too many);
 * out holds the values (not their logs). */
size_t tvp_log_ticks(double lo_log10, double hi_log10, int max_ticks, double *out);
/* v formatted for an axis whose ticks are `step` apart: SI suffixes for
 * large magnitudes (1.2k, 3M, 4.5G), exponents for small ones (2e-4), as
 * few digits as tell neighbouring ticks apart. */
void tvp_format(double v, double step, char *buf, size_t len);
/* Ticks on a time axis in ns (durations since 0 or wall clock): nice steps
 * of 1 ms .. 1 day. */
size_t tvp_time_ticks(int64_t lo_ns, int64_t hi_ns, int max_ticks, int64_t *out, int64_t *step_ns);
/* A duration (time since start) as 45s, 1m30s, 2h05m; a wall time as
 * HH:MM:SS (local time), with the date when the range spans days. */
void tvp_format_duration(int64_t ns, int64_t step_ns, char *buf, size_t len);
void tvp_format_clock(int64_t ns, int64_t step_ns, char *buf, size_t len);

/* ---- mappings ---- */

typedef struct tvp_yscale {
    double lo, hi;      /* visible values (log10 of them when log) */
    int log;            /* log10 axis; values <= 0 go below the plot */
    int top, height;    /* rows of the plot rect */
} tvp_yscale;
/* The row of value v: monotone (a larger v never gets a larger row), finite
 * for every v (NaN excluded), clamped to +-2^24 rows around the plot. */
int tvp_row(const tvp_yscale *ys, double v);
/* The value at the centre of row r (inverse of tvp_row, for hover). */
double tvp_value_at(const tvp_yscale *ys, int r);

/* Column of x (model.h's mapping; x_from <= x <= x_to). */
size_t tvp_col(int64_t x_from, int64_t x_to, size_t ncols, int64_t x);
/* The x range of column c: [*lo, *hi]; *lo > *hi when no integer x maps to c. */
void tvp_col_range(int64_t x_from, int64_t x_to, size_t ncols, size_t c, int64_t *lo, int64_t *hi);

/* ---- drawing one series ---- */

typedef struct tvp_gaps {
    const int64_t *first, *last;  /* dropped step ranges of this series' run and rank */
    size_t n;
} tvp_gaps;
/* Is the join from a point at step a to one at step b (a < b) broken? */
int tvp_gap_between(const tvp_gaps *g, int64_t a, int64_t b);

typedef struct tvp_series_style {
    uint32_t argb;
    int blend;          /* mix with the colour's alpha (faint raw line behind a smoothed one) */
} tvp_series_style;

/* Replaces b's first/last (and step_first/step_last) by those of the first
 * and last non-NaN points of column col. Returns 0 or a negative error. */
typedef int (*tvp_fix_fn)(void *ctx, size_t col, tss_bucket *b);

/* The M4 drawing, plot rect columns x0 .. x0+ncols-1, clipped to the
 * canvas clip. Returns 0 or the fix callback's error. */
int tvp_draw_columns(tvr_canvas *cv, int x0, const tss_bucket *cols, size_t ncols,
                     const tvp_yscale *ys, const tvp_gaps *gaps, tvp_fix_fn fix, void *ctx,
                     tvp_series_style st);
/* The reference drawing of every point (ordered by x), x(p) being the step or
 * the wall time by xtime. */
void tvp_draw_points(tvr_canvas *cv, int x0, const tss_point *pts, size_t n, int xtime,
                     int64_t x_from, int64_t x_to, size_t ncols,
                     const tvp_yscale *ys, const tvp_gaps *gaps, tvp_series_style st);

/* ---- smoothing ---- */

/* TensorBoard's debiased EMA over the non-NaN values, in place: weight w in
 * [0, 1) (0: unchanged). NaN values stay NaN; +-Inf are kept as they are and
 * left out of the average. */
void tvp_ema(double *v, size_t n, double w);

#endif
