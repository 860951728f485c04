/* tda_roll.h - exact rolling median and MAD over the last w values of a
 * series, for robust z-scores (analysis/).
 *
 * Why this structure: a detector scores every point as it arrives, in the
 * collector's ingest thread, within a budget of about 50 ns. The window is
 * kept twice: in arrival order (a ring, to know which value leaves) and
 * sorted (a plain array). Replacing the oldest value by the newest moves
 * only the elements between their two positions (one memmove, on average a
 * third of the window), found by binary search; the median is then O(1) and
 * the MAD, the median of |x - median|, is the k-th smallest element of two
 * sorted sequences (the distances below and above the median), found by a
 * binary search in O(log w). Nothing is approximate: the figures are those
 * of sorting the window. tda_roll_mad_lower spares even that search for
 * most points (see there).
 *
 * Use:
 *     tda_roll r;
 *     tda_roll_init(&r, buf, 128);        // buf: 2*128 doubles, owned by the caller
 *     if (tda_roll_full(&r)) { double m = tda_roll_median(&r), s = tda_roll_mad(&r, m); ... }
 *     tda_roll_push(&r, x);              // x finite (callers keep NaN and Inf out)
 */
#ifndef TRAINSCOPE_TDA_ROLL_H
#define TRAINSCOPE_TDA_ROLL_H

#include <stddef.h>
#include <stdint.h>

#define TDA_MAD_SIGMA 1.482602218505602  /* MAD x this = sigma for normal data */

typedef struct tda_roll {
    double *ring;           /* w values in arrival order; ring[head] is the oldest once full */
    double *sorted;         /* the same values, ascending */
    uint32_t w;             /* window length */
    uint32_t n;             /* values held (< w while filling) */
    uint32_t head;          /* next slot of ring to write */
    uint32_t age;           /* pushes since ref_dist was computed */
    double ref_median;      /* the median when ref_dist was computed */
    double ref_dist;        /* a distance rank TDA_ROLL_REFRESH below the MAD's, then */
} tda_roll;

/* How many pushes a lower bound of the MAD stays valid for. */
#define TDA_ROLL_REFRESH 8

/* buf holds 2*w doubles and outlives r. w >= 2. */
void tda_roll_init(tda_roll *r, double *buf, uint32_t w);
static inline int tda_roll_full(const tda_roll *r) { return r->n == r->w; }
/* Add x (finite); once full, the oldest value leaves. */
void tda_roll_push(tda_roll *r, double x);
/* Median of the values held (n >= 1): the mean of the two middle ones when n is even. */
double tda_roll_median(const tda_roll *r);
/* Median absolute deviation from m (m = tda_roll_median(r)), n >= 1. */
double tda_roll_mad(const tda_roll *r, double m);
/* A lower bound of tda_roll_mad(r, m), for a full window: exact bookkeeping,
 * not an estimate. Every TDA_ROLL_REFRESH pushes it computes one rank
 * statistic (O(log w)); in between it costs a subtraction. A detector
 * compares |x - m| with threshold x bound first and computes the exact MAD
 * only for the rare point that passes, so the findings are those of the
 * exact MAD at a fraction of the cost. */
double tda_roll_mad_lower(tda_roll *r, double m);

#endif
