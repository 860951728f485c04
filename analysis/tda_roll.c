/* tda_roll.c - exact rolling median and MAD (contract and the why: tda_roll.h). */
#include "tda_roll.h"

#include <assert.h>
#include <math.h>
#include <string.h>

void tda_roll_init(tda_roll *r, double *buf, uint32_t w)
{
    assert(w >= 2);
    r->ring = buf;
    r->sorted = buf + w;
    r->w = w;
    r->n = 0;
    r->head = 0;
    r->age = TDA_ROLL_REFRESH;   /* the first call computes the bound */
    r->ref_median = r->ref_dist = 0;
}

/* First index i in a[0..n) with a[i] >= x (lower bound). Branch-free: the
 * comparison becomes a conditional move, because on noisy data every
 * branch of a binary search is a coin toss the CPU mispredicts. */
static uint32_t lower_bound(const double *a, uint32_t n, double x)
{
    const double *base = a;
    if (n == 0)
        return 0;
    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half] < x ? base + half : base;
        n -= half;
    }
    return (uint32_t)(base - a) + (*base < x);
}

/* lower_bound of x and of y in one loop: two independent dependency
 * chains the CPU runs side by side, for the latency of one. */
static void lower_bound2(const double *a, uint32_t n, double x, double y, uint32_t *px, uint32_t *py)
{
    const double *bx = a, *by = a;
    while (n > 1) {
        uint32_t half = n / 2;
        bx = bx[half] < x ? bx + half : bx;
        by = by[half] < y ? by + half : by;
        n -= half;
    }
    *px = (uint32_t)(bx - a) + (*bx < x);
    *py = (uint32_t)(by - a) + (*by < y);
}

void tda_roll_push(tda_roll *r, double x)
{
    double *s = r->sorted;
    if (r->n < r->w) {
        uint32_t p = lower_bound(s, r->n, x);
        memmove(s + p + 1, s + p, (r->n - p) * sizeof *s);
        s[p] = x;
        r->n++;
    } else {
        /* The oldest value leaves at position o, x enters at p (the first
         * element >= x); shift only what lies between the two positions. */
        double old = r->ring[r->head];
        uint32_t o, p;
        lower_bound2(s, r->n, old, x, &o, &p);
        if (x > old) {              /* p > o */
            memmove(s + o, s + o + 1, (p - o - 1) * sizeof *s);
            s[p - 1] = x;
        } else {                    /* p <= o */
            memmove(s + p + 1, s + p, (o - p) * sizeof *s);
            s[p] = x;
        }
    }
    r->ring[r->head] = x;
    r->head = r->head + 1 == r->w ? 0 : r->head + 1;
    r->age += r->age < TDA_ROLL_REFRESH;
}

double tda_roll_median(const tda_roll *r)
{
    uint32_t n = r->n;
    assert(n >= 1);
    if (n & 1)
        return r->sorted[n / 2];
    return 0.5 * (r->sorted[n / 2 - 1] + r->sorted[n / 2]);
}

/* The distances from m, as two ascending sequences: below (m - s[split-1-t])
 * and above (s[split+t] - m). */
typedef struct dist {
    const double *s;
    uint32_t split, n;
    double m;
} dist;

static inline double below(const dist *d, uint32_t t) { return d->m - d->s[d->split - 1 - t]; }
static inline double above(const dist *d, uint32_t t) { return d->s[d->split + t] - d->m; }

/* The k-th smallest distance (0-based): take i from below and k+1-i from
 * above, with i found by binary search on the merge condition. */
static double kth(const dist *d, uint32_t k)
{
    uint32_t nl = d->split, nr = d->n - d->split;
    uint32_t lo = k + 1 > nr ? k + 1 - nr : 0, hi = k + 1 < nl ? k + 1 : nl;
    while (lo < hi) {
        uint32_t i = lo + (hi - lo) / 2, j = k + 1 - i;
        /* Too few taken from below when below[i] < above[j-1]. */
        if (j > 0 && i < nl && below(d, i) < above(d, j - 1))
            lo = i + 1;
        else
            hi = i;
    }
    uint32_t i = lo, j = k + 1 - i;
    double a = i > 0 ? below(d, i - 1) : -1.0, b = j > 0 ? above(d, j - 1) : -1.0;
    return a > b ? a : b;
}

double tda_roll_mad(const tda_roll *r, double m)
{
    dist d = {.s = r->sorted, .n = r->n, .m = m};
    d.split = lower_bound(r->sorted, r->n, m);
    uint32_t n = r->n;
    if (n & 1)
        return kth(&d, n / 2);
    return 0.5 * (kth(&d, n / 2 - 1) + kth(&d, n / 2));
}

double tda_roll_mad_lower(tda_roll *r, double m)
{
    assert(r->n == r->w);
    if (r->age >= TDA_ROLL_REFRESH) {
        /* Rank k - REFRESH of the distances from m: after j <= REFRESH
         * replacements the MAD's rank statistic cannot fall below it (one
         * replaced value moves each rank statistic by at most one place),
         * and a median that moved by |dm| changes every distance by at
         * most |dm|. */
        dist d = {.s = r->sorted, .n = r->n, .m = m};
        uint32_t k = (r->n - 1) / 2;   /* the lower middle rank: MAD >= it */
        d.split = lower_bound(r->sorted, r->n, m);
        r->ref_median = m;
        r->ref_dist = k >= TDA_ROLL_REFRESH ? kth(&d, k - TDA_ROLL_REFRESH) : 0;
        r->age = 0;
    }
    double lb = r->ref_dist - fabs(m - r->ref_median);
    return lb > 0 ? lb : 0;
}
