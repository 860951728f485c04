/* tda_roll.h - exact rolling median and MAD over the last w values of a
 * series, for robust z-scores (analysis/), with cheap guaranteed bounds for
 * the points that cannot be near a threshold.
 *
 * Why this structure: a detector scores every point as it arrives, in the
 * collector's ingest thread, within a budget of 50 ns, and almost every
 * point is nowhere near a spike. So the window is kept in arrival order (a
 * ring, written once per push) and as a sorted snapshot that lags behind by
 * fewer than `refresh` pushes (w/8, 1..64): the values that left and came
 * since are kept aside, and one merge brings the snapshot up to date every
 * `refresh` pushes, or at once when somebody needs the exact figures. The
 * merge locates the changes by binary searches run side by side and moves
 * every value once; inserting them one by one (a binary search and a
 * memmove each) cost about twice as much.
 *
 * Between merges tda_roll_bounds gives, in O(1), an interval that holds the
 * exact median and a lower bound of the exact MAD of the current window
 * (the argument is there). A detector judges a point against those first;
 * only a point that might pass its threshold asks for the exact median and
 * MAD (tda_roll_median, tda_roll_mad), which merge first. Nothing is
 * approximate: the exact figures are those of sorting the window, and the
 * bounds are bounds, rounding included.
 *
 * Use:
 *     double *buf = malloc(tda_roll_buf_len(128) * sizeof *buf);   // owned by the caller
 *     tda_roll r;
 *     tda_roll_init(&r, buf, 128);
 *     if (tda_roll_full(&r)) {
 *         double lo, hi, mad_lo;
 *         tda_roll_bounds(&r, &lo, &hi, &mad_lo);            // lo <= median <= hi, mad_lo <= MAD
 *         if (...might pass...) { double m = tda_roll_median(&r), s = tda_roll_mad(&r, m); ... }
 *     }
 *     tda_roll_push(&r, x);              // x finite (callers keep NaN and Inf out)
 */
#ifndef TRAINSCOPE_TDA_ROLL_H
#define TRAINSCOPE_TDA_ROLL_H

#include <stddef.h>
#include <stdint.h>

#define TDA_MAD_SIGMA 1.482602218505602  /* MAD x this = sigma for normal data */

typedef struct tda_roll {
    double *ring;           /* w values in arrival order; ring[head] is the oldest once full */
    double *sorted;         /* the snapshot, ascending; sorted[n] = +Inf (the merge's sentinel) */
    double *gone, *came;    /* values that left / came since the snapshot (full window only) */
    uint32_t w;             /* window length */
    uint32_t n;             /* values held (< w while filling) */
    uint32_t head;          /* next slot of ring to write */
    uint32_t pending;       /* replacements since the snapshot (< refresh) */
    uint32_t refresh;       /* merge after this many replacements */
    double mad_lo;          /* MAD lower bound valid up to refresh - 1 replacements */
    uint32_t merges;        /* snapshots made: mad_lo changes only with it */
} tda_roll;

/* Doubles the caller's buffer holds for a window of w. */
size_t tda_roll_buf_len(uint32_t w);
#define TDA_ROLL_WMAX 4096   /* the largest window (tda_detect.h: window=8..4096) */

/* buf holds tda_roll_buf_len(w) doubles and outlives r. 2 <= w <= TDA_ROLL_WMAX. */
void tda_roll_init(tda_roll *r, double *buf, uint32_t w);
static inline int tda_roll_full(const tda_roll *r) { return r->n == r->w; }
/* Add x (finite); once full, the oldest value leaves. Inline: it is on
 * every point's path, and once the window is full it is four stores. */
static inline void tda_roll_push(tda_roll *r, double x);
/* Median of the values held (n >= 1): the mean of the two middle ones when
 * n is even. Brings the snapshot up to date first (hence not const). */
double tda_roll_median(tda_roll *r);
/* Median absolute deviation from m (m = tda_roll_median(r)), n >= 1. */
double tda_roll_mad(tda_roll *r, double m);

/* For a full window, in O(1) and without merging: *lo <= median <= *hi and
 * *mad_lo <= MAD, for the window as it is now, with the median and MAD
 * exactly as tda_roll_median and tda_roll_mad compute them in floating
 * point.
 *
 * Why they hold, with j = pending replacements since the snapshot S
 * (ascending, n values) and h = (n-1)/2, the lower middle rank:
 *   - one replacement moves every order statistic by at most one rank of
 *     S, so the new lower middle value is >= S[h-j] and the upper middle
 *     <= S[n/2+j]; the median (one of them, or their mean) lies between,
 *     and rounding is monotone, so the computed median does too;
 *   - the MAD is at least d, the (h+1)-th smallest distance from the
 *     median m: [m-d, m+d] holds h+1 values of the window, at least h+1-j
 *     of them from S. So S has h+1-j values within 2d of each other, and
 *     2d >= min over i of S[i+h-j] - S[i], the shortest such span, which
 *     the merge bounds once for j = refresh-1 (the worst case). The
 *     factor (1 - 1e-12) covers the rounding of the distances.
 * For normal data with w = 128 the MAD bound is about 0.7 of the MAD and
 * the median within a quarter sigma: a point must be more than about 4
 * sigma from the median before a 6-sigma detector needs the exact figures. */
static inline void tda_roll_bounds(const tda_roll *r, double *lo, double *hi, double *mad_lo)
{
    *lo = r->sorted[(r->n - 1) / 2 - r->pending];
    *hi = r->sorted[r->n / 2 + r->pending];
    *mad_lo = r->mad_lo;
}

/* Bounds of the median that hold until the next merge (r->merges changes):
 * those of tda_roll_bounds at the most replacements a snapshot allows. A
 * detector derives its thresholds from them once per merge. */
static inline void tda_roll_range(const tda_roll *r, double *lo, double *hi)
{
    *lo = r->sorted[(r->n - 1) / 2 - (r->refresh - 1)];
    *hi = r->sorted[r->n / 2 + (r->refresh - 1)];
}

/* Internals of tda_roll_push, not to be called directly. */
void tda_roll_fill_(tda_roll *r, double x);
void tda_roll_merge_(tda_roll *r);

static inline void tda_roll_push(tda_roll *r, double x)
{
    if (r->n < r->w) {
        tda_roll_fill_(r, x);
        return;
    }
    r->gone[r->pending] = r->ring[r->head];
    r->came[r->pending] = x;
    r->ring[r->head] = x;
    r->head = r->head + 1 == r->w ? 0 : r->head + 1;
    if (++r->pending == r->refresh)
        tda_roll_merge_(r);
}

#endif
