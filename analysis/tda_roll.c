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

/* The caller's buffer, in doubles: ring (w), sorted (w + 1, the last a
 * sentinel), gone (2 x refresh + 4: the merge appends came to
 * it, and pads to a multiple of 4) and came (refresh + 1). */
size_t tda_roll_buf_len(uint32_t w)
{
    return 2 * (size_t)w + 1 + 3 * (size_t)refresh_of(w) + 4 + 1;
}

void tda_roll_init(tda_roll *r, double *buf, uint32_t w)
{
    assert(w >= 2 && w <= TDA_ROLL_WMAX);
    uint32_t k = refresh_of(w);
    r->ring = buf;
    r->sorted = buf + w;
    r->gone = r->sorted + w + 1;
    r->came = r->gone + 2 * k + 4;
    r->w = w;
    r->n = 0;
    r->head = 0;
    r->pending = 0;
    r->refresh = k;
    r->mad_lo = 0;
    r->merges = 0;
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
 * half the shortest span of S holding h+1-(refresh-1) values, i.e. the
 * least S[i+L] - S[i] over i, L = h - (refresh-1) (tda_roll.h). In a
 * window of 64 or more only every 4th start is visited, with spans 3 ranks
 * shorter: the span [i, i+L] contains [i', i'+L-3] for i' the multiple of
 * 4 in i..i+3, so the least of the shorter spans is a lower bound of the
 * least of the others, for a quarter of the work and a bound 3 ranks
 * looser. */
static void bound_mad(tda_roll *r)
{
    const double *s = r->sorted;
    uint32_t stride = r->n >= 64 ? 4 : 1;   /* small windows: every start, the bound is tight enough to matter */
    uint32_t h = (r->n - 1) / 2, slack = r->refresh - 1 + stride - 1;
    r->merges++;
    if (h <= slack) {
        r->mad_lo = 0;
        return;
    }
    uint32_t span = h - slack;
    double best = INFINITY;
    for (uint32_t i = 0; i + span < r->n; i += stride) {
        double d = s[i + span] - s[i];
        best = d < best ? d : best;
    }
    /* A span of values near +-DBL_MAX can overflow to +Inf: then say nothing. */
    r->mad_lo = best < INFINITY ? 0.5 * best * (1 - 1e-12) : 0;
}

/* lower_bound of each of xs[0..m) in a[0..n), four at a time: every
 * search takes the same steps (n halves the same way), so the four are
 * independent chains of load-compare-select, which the CPU overlaps,
 * instead of one chain of dependent loads after another. */
static void lower_bounds(const double *a, uint32_t n, const double *xs, uint32_t m, uint32_t *out)
{
    /* m is a multiple of 4 (the caller pads). */
    for (uint32_t k = 0; k < m; k += 4) {
        double x0 = xs[k], x1 = xs[k + 1], x2 = xs[k + 2], x3 = xs[k + 3];
        uint32_t b0 = 0, b1 = 0, b2 = 0, b3 = 0, len = n;
        while (len > 1) {
            uint32_t half = len / 2;
            b0 = a[b0 + half] < x0 ? b0 + half : b0;
            b1 = a[b1 + half] < x1 ? b1 + half : b1;
            b2 = a[b2 + half] < x2 ? b2 + half : b2;
            b3 = a[b3 + half] < x3 ? b3 + half : b3;
            len -= half;
        }
        out[k] = b0 + (a[b0] < x0);
        out[k + 1] = b1 + (a[b1] < x1);
        out[k + 2] = b2 + (a[b2] < x2);
        out[k + 3] = b3 + (a[b3] < x3);
    }
}

/* The merge's scratch, shared by every window of a thread (a merge does
 * not keep it): one copy stays in cache instead of one per series. */
static _Thread_local uint8_t tl_marks[2 * (TDA_ROLL_WMAX + 1)];
static _Thread_local int32_t tl_offs[TDA_ROLL_WMAX + 1];
static _Thread_local double tl_spare[TDA_ROLL_WMAX + 1];

/* Bring the snapshot up to date with the j values that left and the j that
 * came since, in one pass into a scratch array, copied back (a memcpy: cheaper
 * than a second array per series in the cache). A merge that compares
 * element by element is a chain of dependent loads and compares (about 12
 * cycles per element, measured); here every position is known before the
 * pass:
 *   - all 2j values are located by binary search, four side by side;
 *   - a value that left is marked at its place (an equal value that left
 *     too takes the next copy);
 *   - a value that came goes before the first snapshot value >= it;
 * so snapshot value i moves by off(i) = (came at or before i) - (marked
 * before i), a running sum of a small delta array, and the values that
 * came at i fill the slots just before it, in order. A marked value is
 * written too, and overwritten by whatever comes next. */
static void merge(tda_roll *r)
{
    uint32_t j = r->pending, n = r->n;
    if (!j)
        return;
    const double *s = r->sorted, *came = r->came;   /* s is read before sorted is overwritten */
    double *t = tl_spare;
    uint8_t *rm = tl_marks;
    int8_t *delta = (int8_t *)tl_marks + n + 1;
    int32_t *offs = tl_offs;
    uint32_t pos[2 * REFRESH_MAX + 4], npos = (2 * j + 3) & ~3u;
    memcpy(r->gone + j, came, j * sizeof *came);    /* gone has room: one search for both */
    for (uint32_t k = 2 * j; k < npos; k++)
        r->gone[k] = came[j - 1];
    lower_bounds(s, n, r->gone, npos, pos);
    memset(tl_marks, 0, 2 * ((size_t)n + 1));
    for (uint32_t k = 0; k < j; k++) {
        uint32_t p = pos[k];
        while (rm[p])           /* an equal value left before: its next copy */
            p++;
        rm[p] = 1;
        delta[p + 1]--;         /* the values after it move one slot down */
        delta[pos[j + k]]++;    /* a value that came: they move one up */
    }
    int32_t off = 0;
    uint32_t i = 0;
    for (; i + 2 <= n; i += 2) {
        off += delta[i];
        offs[i] = off;
        t[i + off] = s[i];
        off += delta[i + 1];
        offs[i + 1] = off;
        t[i + 1 + off] = s[i + 1];
    }
    for (; i < n; i++) {
        off += delta[i];
        offs[i] = off;
        t[i + off] = s[i];
    }
    offs[n] = off + delta[n];
    /* A value that came at place p goes to the slot after s[p-1] (the same
     * slot when s[p-1] left); several at one place (rare) in order. delta
     * now counts the values put at each place. */
    memset(delta, 0, (size_t)n + 1);
    for (uint32_t k = 0; k < j; k++) {
        uint32_t p = pos[j + k], m = (uint8_t)delta[p]++;
        uint32_t q = (p ? p + (uint32_t)offs[p - 1] - rm[p - 1] : 0) + m;
        double x = came[k];
        while (m > 0 && t[q - 1] > x) {
            t[q] = t[q - 1];
            q--;
            m--;
        }
        t[q] = x;
    }
    memcpy(r->sorted, t, n * sizeof *t);    /* sorted[n] stays +Inf */
    r->pending = 0;
    bound_mad(r);
}

void tda_roll_merge_(tda_roll *r)
{
    merge(r);
}

/* Filling: insert in place (w times in a series' life). */
void tda_roll_fill_(tda_roll *r, double x)
{
    double *s = r->sorted;
    uint32_t p = lower_bound(s, r->n, x);
    memmove(s + p + 1, s + p, (r->n - p) * sizeof *s);
    s[p] = x;
    s[++r->n] = INFINITY;
    r->ring[r->head] = x;
    r->head = r->head + 1 == r->w ? 0 : r->head + 1;
    if (r->n == r->w)
        bound_mad(r);
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
