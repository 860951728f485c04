/* tda_roll.c - exact rolling median and MAD (contract and the why: tda_roll.h). */
#include "tda_roll.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define REFRESH_MAX 64

static uint32_t refresh_of(uint32_t w)
{
    uint32_t k = w / 8;
    return k < 1 ? 1 : k > REFRESH_MAX ? REFRESH_MAX : k;
}

/* The caller's buffer, in doubles: ring (w), sorted and spare (w + 1 each,
 * the last a sentinel), gone (2 x refresh: the merge appends came to it)
 * and came (refresh + 1), then the merge's scratch: two byte arrays of
 * w + 1 (marks) and w + 1 uint32 (first). */
static size_t doubles_for(size_t bytes) { return (bytes + sizeof(double) - 1) / sizeof(double); }

size_t tda_roll_buf_len(uint32_t w)
{
    return 3 * (size_t)w + 2 + 3 * (size_t)refresh_of(w) + 1 + doubles_for(2 * ((size_t)w + 1)) +
           doubles_for(((size_t)w + 1) * sizeof(uint32_t));
}

void tda_roll_init(tda_roll *r, double *buf, uint32_t w)
{
    assert(w >= 2);
    uint32_t k = refresh_of(w);
    r->ring = buf;
    r->sorted = buf + w;
    r->spare = r->sorted + w + 1;
    r->gone = r->spare + w + 1;
    r->came = r->gone + 2 * k;
    double *scratch = r->came + k + 1;
    r->marks = (uint8_t *)scratch;
    r->first = (uint32_t *)(scratch + doubles_for(2 * ((size_t)w + 1)));
    r->w = w;
    r->n = 0;
    r->head = 0;
    r->pending = 0;
    r->refresh = k;
    r->mad_lo = 0;
    r->sorted[0] = INFINITY;
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

/* The MAD lower bound of the snapshot for up to refresh-1 replacements:
 * half the shortest span of S holding h+1-(refresh-1) values (tda_roll.h).
 * Four running minima: one would be a chain of dependent min operations. */
static void bound_mad(tda_roll *r)
{
    const double *s = r->sorted;
    uint32_t h = (r->n - 1) / 2, slack = r->refresh - 1;
    if (h <= slack) {
        r->mad_lo = 0;
        return;
    }
    uint32_t span = h - slack, last = r->n - span, i = 0;   /* spans start at 0..last-1 */
    double b0 = INFINITY, b1 = INFINITY, b2 = INFINITY, b3 = INFINITY;
    for (; i + 4 <= last; i += 4) {
        double d0 = s[i + span] - s[i], d1 = s[i + 1 + span] - s[i + 1];
        double d2 = s[i + 2 + span] - s[i + 2], d3 = s[i + 3 + span] - s[i + 3];
        b0 = d0 < b0 ? d0 : b0;
        b1 = d1 < b1 ? d1 : b1;
        b2 = d2 < b2 ? d2 : b2;
        b3 = d3 < b3 ? d3 : b3;
    }
    for (; i < last; i++) {
        double d = s[i + span] - s[i];
        b0 = d < b0 ? d : b0;
    }
    b0 = b1 < b0 ? b1 : b0;
    b2 = b3 < b2 ? b3 : b2;
    r->mad_lo = 0.5 * (b2 < b0 ? b2 : b0) * (1 - 1e-12);
}

/* lower_bound of each of xs[0..m) in a[0..n), side by side: every search
 * takes the same steps (n halves the same way), so the inner loop runs m
 * independent chains of load-compare-select, which the CPU overlaps,
 * instead of one chain of dependent loads after another. */
static void lower_bounds(const double *a, uint32_t n, const double *xs, uint32_t m, uint32_t *out)
{
    uint32_t base[2 * REFRESH_MAX];
    for (uint32_t k = 0; k < m; k++)
        base[k] = 0;
    while (n > 1) {
        uint32_t half = n / 2;
        for (uint32_t k = 0; k < m; k++)
            base[k] = a[base[k] + half] < xs[k] ? base[k] + half : base[k];
        n -= half;
    }
    for (uint32_t k = 0; k < m; k++)
        out[k] = base[k] + (a[base[k]] < xs[k]);
}

/* Bring the snapshot up to date with the j values that left and the j that
 * came since, in one pass into the spare array. A merge that compares
 * element by element is a chain of dependent loads and compares (about 12
 * cycles per element, measured); here every position is known before the
 * pass:
 *   - all 2j values are located by binary search, side by side;
 *   - a value that left is marked at its place (an equal value that left
 *     too takes the next copy);
 *   - a value that came goes before the first snapshot value >= it;
 * so snapshot value i lands at i + (came before it) - (marked before it),
 * two running counts, and the values that came before snapshot value i
 * fill the slots just before it, in order. A marked value is written too,
 * and overwritten by whatever comes next. */
static void merge(tda_roll *r)
{
    uint32_t j = r->pending, n = r->n;
    if (!j)
        return;
    const double *s = r->sorted, *came = r->came;
    double *t = r->spare;
    uint8_t *rm = r->marks, *ins = r->marks + n + 1;
    uint32_t *first = r->first, pos[2 * REFRESH_MAX];
    memcpy(r->gone + j, came, j * sizeof *came);    /* gone has room: one search for both */
    lower_bounds(s, n, r->gone, 2 * j, pos);
    memset(r->marks, 0, 2 * ((size_t)n + 1));
    for (uint32_t k = 0; k < j; k++) {
        uint32_t p = pos[k];
        while (rm[p])           /* an equal value left before: its next copy */
            p++;
        rm[p] = 1;
        ins[pos[j + k]]++;
    }
    uint32_t nins = 0, nrm = 0;
    for (uint32_t i = 0; i < n; i++) {
        first[i] = i + nins - nrm;      /* the first slot of what came before s[i] */
        nins += ins[i];
        t[i + nins - nrm] = s[i];
        nrm += rm[i];
    }
    first[n] = n + nins - nrm;
    /* Values that came at the same place (rare) are put in order there. */
    memset(rm, 0, (size_t)n + 1);
    for (uint32_t k = 0; k < j; k++) {
        uint32_t p = pos[j + k], m = rm[p]++, q = first[p] + m;
        double x = came[k];
        while (m > 0 && t[q - 1] > x) {
            t[q] = t[q - 1];
            q--;
            m--;
        }
        t[q] = x;
    }
    t[n] = INFINITY;
    r->spare = r->sorted;
    r->sorted = t;
    r->pending = 0;
    bound_mad(r);
}

void tda_roll_push(tda_roll *r, double x)
{
    double *s = r->sorted;
    if (r->n < r->w) {
        /* Filling: insert in place (w times in a series' life). */
        uint32_t p = lower_bound(s, r->n, x);
        memmove(s + p + 1, s + p, (r->n - p) * sizeof *s);
        s[p] = x;
        s[++r->n] = INFINITY;
        r->ring[r->head] = x;
        r->head = r->head + 1 == r->w ? 0 : r->head + 1;
        if (r->n == r->w)
            bound_mad(r);
        return;
    }
    r->gone[r->pending] = r->ring[r->head];
    r->came[r->pending] = x;
    r->ring[r->head] = x;
    r->head = r->head + 1 == r->w ? 0 : r->head + 1;
    if (++r->pending == r->refresh)
        merge(r);
}

double tda_roll_median(tda_roll *r)
{
    uint32_t n = r->n;
    assert(n >= 1);
    merge(r);
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

double tda_roll_mad(tda_roll *r, double m)
{
    merge(r);
    dist d = {.s = r->sorted, .n = r->n, .m = m};
    d.split = lower_bound(r->sorted, r->n, m);
    uint32_t n = r->n;
    if (n & 1)
        return kth(&d, n / 2);
    return 0.5 * (kth(&d, n / 2 - 1) + kth(&d, n / 2));
}
