/* columns.c - exact M4 columns and points of a series, from chunk summaries,
 * decoded chunks and cached columns (contract in model.h, data in
 * model_int.h, the design in docs/architecture.md "How the viewer gets
 * exact columns fast").
 *
 * The reference is tvm_points: the visible points of the series in timeline
 * order (by step; with TVM_ALL_TIMELINES by step, then generation, then
 * arrival; for TVM_X_TIME in the order they were logged, which is time order
 * while the clock does not go back). tvm_columns gives, per column, what
 * folding those points into their columns one by one gives (tss_bucket_add), bit
 * for bit, by folding in the same order:
 *   - a chunk that lies in one column: its summary (tss_bucket_merge; the chunk's
 *     first/last bits are made exact by a decode when a NaN is involved);
 *   - a chunk a column boundary cuts: its decoded points from the cache,
 *     64-point sub-summaries where a group lies in one column;
 *   - panning with a whole number of x per column: columns computed for an
 *     earlier frame with the same width and phase are reused (tvm_colcache),
 *     only the newly exposed ones are computed.
 * Slow paths (exact, O(points in range)): x by time when a series' times go
 * back; all timelines by step when one column's min or max ties between
 * generations with different bits (+0.0 / -0.0).
 */
#include "model_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 tvm_u128;

static void tvm_chunk_bucket(const tvm_chunk *c, tss_bucket *b)
{
    *b = (tss_bucket){.count = c->n, .step_first = c->step_first, .step_last = c->step_last,
                      .min = c->min, .max = c->max, .first = c->first, .last = c->last,
                      .n_nan = c->n_nan, .n_inf = c->n_inf};
}

/* ---- views ------------------------------------------------------------------ */

/* Rebuild view `all` (0 newest timeline, 1 all timelines) of series s under
 * the time limit. A generation's points at steps >= cut are superseded,
 * cut being the lowest first step of the later generations that existed at
 * the time limit. */
static int tvm_view_build(tvm_source *src, tvm_ser *s, int all)
{
    tvm_view *vw = &s->view[all];
    int64_t T = src->t_limit, *cut = NULL, prev_t = INT64_MIN;
    size_t ngen = s->nchunks ? (size_t)s->chunks[s->nchunks - 1].gen + 1 : 0;
    int first_gen = -1;

    vw->n = 0;
    vw->t_sorted = 1;
    vw->single_gen = 1;
    if (!all && ngen > 1) {
        cut = malloc(ngen * sizeof *cut);
        if (!cut)
            return tvm__fail(src, -ENOMEM, "out of memory");
        for (size_t g = 0; g < ngen; g++)
            cut[g] = INT64_MAX;
        /* first step of each generation, then the suffix minimum of the later ones */
        for (size_t i = s->nchunks; i-- > 0;)
            if (s->chunks[i].t_first <= T)
                cut[s->chunks[i].gen] = s->chunks[i].step_first;
        int64_t m = INT64_MAX;
        for (size_t g = ngen; g-- > 0;) {
            int64_t f = cut[g];
            cut[g] = m;
            if (f < m)
                m = f;
        }
    }
    if (vw->cap < s->nchunks) {
        tvm_vchunk *nv = realloc(vw->v, s->nchunks * sizeof *nv);
        if (!nv) {
            free(cut);
            return tvm__fail(src, -ENOMEM, "out of memory");
        }
        vw->v = nv;
        vw->cap = s->nchunks;
    }
    for (size_t i = 0; i < s->nchunks; i++) {
        const tvm_chunk *c = &s->chunks[i];
        int64_t k = cut ? cut[c->gen] : INT64_MAX;
        tvm_vchunk *v;

        if (c->t_first > T || c->step_first >= k)
            continue;
        v = &vw->v[vw->n++];
        v->chunk = (uint32_t)i;
        v->cut = k;
        v->partial = c->step_last >= k || c->t_last > T;
        v->s_lo = c->step_first;
        v->s_hi = c->step_last < k ? c->step_last : k - 1;
        v->t_lo = c->t_first;
        v->t_hi = c->t_last < T ? c->t_last : T;
        if (!c->time_sorted || v->t_lo < prev_t)
            vw->t_sorted = 0;
        prev_t = v->t_hi;
        if (first_gen < 0)
            first_gen = c->gen;
        else if (c->gen != first_gen)
            vw->single_gen = 0;
    }
    free(cut);
    vw->valid = 1;
    return 0;
}

static int tvm_view_get(tvm_source *src, tvm_ser *s, int all, tvm_view **out)
{
    int rc = s->view[all].valid ? 0 : tvm_view_build(src, s, all);

    *out = &s->view[all];
    return rc;
}

/* A decode can show that a chunk's times go back: views built assuming
 * otherwise must be rebuilt (and their cached time columns dropped). */
static void tvm_note_decode(tvm_ser *s, size_t ci)
{
    if (!s->chunks[ci].time_sorted)
        for (int a = 0; a < TVM_NVIEWS; a++)
            if (s->view[a].t_sorted)
                s->view[a].valid = 0;
}

/* ---- column mapping ---------------------------------------------------------- */

typedef struct tvm_map {
    int64_t x_from, x_to;
    size_t ncols;
    const uint64_t *lo;         /* lo[b]: offset from x_from where column b starts */
    uint64_t w;                 /* x per column when whole, else 0 */
} tvm_map;

static size_t tvm_col_of(const tvm_map *m, uint64_t off)
{
    size_t a = 0, b = m->ncols;

    if (m->w)
        return (size_t)(off / m->w);
    while (b - a > 1) {
        size_t mid = a + (b - a) / 2;
        if (m->lo[mid] <= off)
            a = mid;
        else
            b = mid;
    }
    return a;
}

static int tvm_map_init(tvm_source *src, tvm_map *m, int64_t x_from, int64_t x_to, size_t ncols)
{
    tvm_u128 span = (tvm_u128)((uint64_t)x_to - (uint64_t)x_from) + 1;

    if (src->scratch_cap < ncols) {
        uint64_t *lo = malloc(ncols * sizeof *lo);
        tss_bucket *tmp = malloc(ncols * sizeof *tmp);
        if (!lo || !tmp) {
            free(lo);
            free(tmp);
            return tvm__fail(src, -ENOMEM, "out of memory for %zu columns", ncols);
        }
        free(src->lo);
        free(src->tmp);
        src->lo = lo;
        src->tmp = tmp;
        src->scratch_cap = ncols;
        src->lo_n = 0;
    }
    m->x_from = x_from;
    m->x_to = x_to;
    m->ncols = ncols;
    m->w = span % ncols == 0 && span / ncols <= UINT64_MAX ? (uint64_t)(span / ncols) : 0;
    m->lo = src->lo;
    /* every series of a frame uses the same map: compute it once */
    if (src->lo_n == ncols && src->lo_from == x_from && src->lo_to == x_to)
        return 0;
    for (size_t b = 0; b < ncols; b++)
        src->lo[b] = m->w ? (uint64_t)b * m->w : (uint64_t)(((tvm_u128)b * span + ncols - 1) / ncols);
    src->lo_from = x_from;
    src->lo_to = x_to;
    src->lo_n = ncols;
    return 0;
}

static inline uint64_t tvm_off(const tvm_map *m, int64_t x)
{
    return (uint64_t)x - (uint64_t)m->x_from;
}

/* ---- reduction over one x-sorted run of chunks -------------------------------- */

/* Fold the visible points of block blk (view chunk v) with xa <= x <= xb
 * into out[] (indexed by column). */
static void tvm_fold_block(const tvm_map *m, const tvm_block *blk, const tvm_vchunk *v, int xtime,
                           int64_t t_limit, int64_t xa, int64_t xb, tss_bucket *out)
{
    const int64_t *x = xtime ? blk->t_ns : blk->step;
    uint32_t n = blk->n, i = 0, hi = n;
    size_t b;

    /* first point with x >= xa */
    while (i < hi) {
        uint32_t mid = i + (hi - i) / 2;
        if (x[mid] < xa)
            i = mid + 1;
        else
            hi = mid;
    }
    if (i >= n || x[i] > xb)
        return;
    b = tvm_col_of(m, tvm_off(m, x[i]));
    while (i < n && x[i] <= xb) {
        uint64_t off = tvm_off(m, x[i]);
        while (b + 1 < m->ncols && off >= m->lo[b + 1])
            b++;
        if (!v->partial && (i & (TVM_SUB_POINTS - 1)) == 0) {
            uint32_t last = i + TVM_SUB_POINTS - 1 < n ? i + TVM_SUB_POINTS - 1 : n - 1;
            if (x[last] <= xb && (b + 1 >= m->ncols || tvm_off(m, x[last]) < m->lo[b + 1])) {
                tss_bucket_merge(&out[b], &blk->sub[i >> TVM_SUB_SHIFT]);
                i = last + 1;
                continue;
            }
        }
        if (!v->partial || (blk->step[i] < v->cut && blk->t_ns[i] <= t_limit))
            tss_bucket_add(&out[b], blk->step[i], blk->value[i]);
        i++;
    }
}

/* A cut chunk from its sub-summaries alone (x = step): possible when no
 * column boundary and no range edge falls inside a group, as with
 * power-of-two columns over the store's step-aligned groups (or over
 * regular steps with a decode's 64-point groups). Returns 1 when folded. */
static int tvm_fold_subs(const tvm_map *m, const tvm_subs *sub, int64_t xa, int64_t xb, tss_bucket *out)
{
    uint32_t nsub;

    if (!sub)
        return 0;
    nsub = sub->nsub;
    for (uint32_t k = 0; k < nsub; k++) {
        const tss_bucket *g = &sub->sub[k];
        size_t c;
        if (g->step_last < xa || g->step_first > xb)
            continue;
        if (g->step_first < xa || g->step_last > xb)
            return 0;
        c = tvm_col_of(m, tvm_off(m, g->step_first));
        if (c + 1 < m->ncols && tvm_off(m, g->step_last) >= m->lo[c + 1])
            return 0;
    }
    for (uint32_t k = 0; k < nsub; k++) {
        const tss_bucket *g = &sub->sub[k];
        if (g->step_last < xa || g->step_first > xb)
            continue;
        tss_bucket_merge(&out[tvm_col_of(m, tvm_off(m, g->step_first))], g);
    }
    return 1;
}

/* Columns [b0, b1) of the map from the view chunks v[0..nv) (x-sorted):
 * out[b] for b in [b0, b1) must be empty on entry. */
static int tvm_reduce(tvm_source *src, tvm_ser *s, const tvm_vchunk *v, size_t nv, int xtime,
                      const tvm_map *m, size_t b0, size_t b1, tss_bucket *out)
{
    int64_t xa, xb;
    size_t k = 0, hi = nv;

    if (b0 >= b1)
        return 0;
    xa = (int64_t)((uint64_t)m->x_from + m->lo[b0]);
    xb = b1 >= m->ncols ? m->x_to : (int64_t)((uint64_t)m->x_from + m->lo[b1] - 1);
    /* first chunk whose visible x reaches xa (the upper bounds never go back) */
    while (k < hi) {
        size_t mid = k + (hi - k) / 2;
        if ((xtime ? v[mid].t_hi : v[mid].s_hi) < xa)
            k = mid + 1;
        else
            hi = mid;
    }
    for (; k < nv; k++) {
        const tvm_vchunk *vc = &v[k];
        int64_t xlo = xtime ? vc->t_lo : vc->s_lo, xhi = xtime ? vc->t_hi : vc->s_hi;
        tvm_chunk *ch = &s->chunks[vc->chunk];
        const tvm_block *blk;

        if (xlo > xb)
            break;
        if (!vc->partial && xlo >= xa && xhi <= xb && (ch->exact || (!isnan(ch->first) && !isnan(ch->last)))) {
            size_t c0 = tvm_col_of(m, tvm_off(m, xlo));
            if (c0 + 1 >= m->ncols || tvm_off(m, xhi) < m->lo[c0 + 1]) {
                tss_bucket sum;
                tvm_chunk_bucket(ch, &sum);
                tss_bucket_merge(&out[c0], &sum);
                continue;
            }
        }
        if (!xtime && !vc->partial) {
            const tvm_subs *sub = tvm__chunk_subs(src, ch, 0);
            if (tvm_fold_subs(m, sub, xa, xb, out))
                continue;
            if (sub && !sub->stored && tvm_fold_subs(m, tvm__chunk_subs(src, ch, 1), xa, xb, out))
                continue;
        }
        blk = tvm__chunk_points(src, s, vc->chunk);
        if (!blk)
            return -EINVAL;
        if (xtime && !ch->time_sorted) {
            tvm_note_decode(s, vc->chunk);
            return -EAGAIN;     /* the caller takes the slow path */
        }
        tvm_fold_block(m, blk, vc, xtime, src->t_limit, xa, xb, out);
    }
    return 0;
}

/* ---- points -------------------------------------------------------------------- */

static int tvm_point_before(const tss_point *a, const tss_point *b)
{
    return a->step < b->step || (a->step == b->step && a->generation < b->generation);
}

/* Stable merge sort by (step, generation). */
static int tvm_points_sort(tss_point *p, size_t n)
{
    tss_point *tmp, *from = p, *to;
    size_t i;

    for (i = 1; i < n && !tvm_point_before(&p[i], &p[i - 1]); i++)
        ;
    if (i >= n)
        return 0;
    tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return -ENOMEM;
    to = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                to[o++] = tvm_point_before(&from[b], &from[a]) ? from[b++] : from[a++];
            while (a < mid)
                to[o++] = from[a++];
            while (b < hi)
                to[o++] = from[b++];
        }
        tss_point *t = from;
        from = to;
        to = t;
    }
    if (from != p)
        memcpy(p, from, n * sizeof *p);
    free(tmp);
    return 0;
}

/* Every visible point with x in [x_from, x_to], in the reference order. */
static int tvm_collect(tvm_source *src, tvm_ser *s, int64_t x_from, int64_t x_to, int flags, tss_point **pts,
                       size_t *n)
{
    int xtime = (flags & TVM_X_TIME) != 0, all = (flags & TVM_ALL_TIMELINES) != 0;
    tss_point *out = NULL;
    size_t cnt = 0, cap = 0;
    tvm_view *vw;
    int rc;

    *pts = NULL;
    *n = 0;
    if (x_from > x_to)
        return 0;
    rc = tvm_view_get(src, s, all, &vw);
    for (size_t k = 0; rc == 0 && k < vw->n; k++) {
        const tvm_vchunk *vc = &vw->v[k];
        const tvm_block *blk;
        int64_t xlo = xtime ? vc->t_lo : vc->s_lo, xhi = xtime ? vc->t_hi : vc->s_hi;

        /* chunk ranges bound x only when x does not go back inside */
        if ((!xtime || s->chunks[vc->chunk].time_sorted) && (xhi < x_from || xlo > x_to))
            continue;
        blk = tvm__chunk_points(src, s, vc->chunk);
        if (!blk) {
            rc = -EINVAL;
            break;
        }
        if (cap < cnt + blk->n) {
            size_t ncap = cap ? cap : 4096;
            while (ncap < cnt + blk->n)
                ncap *= 2;
            tss_point *np = realloc(out, ncap * sizeof *np);
            if (!np) {
                rc = tvm__fail(src, -ENOMEM, "out of memory for %zu points", ncap);
                break;
            }
            out = np;
            cap = ncap;
        }
        for (uint32_t i = 0; i < blk->n; i++) {
            int64_t x = xtime ? blk->t_ns[i] : blk->step[i];
            if (x < x_from || x > x_to || blk->step[i] >= vc->cut || blk->t_ns[i] > src->t_limit)
                continue;
            out[cnt++] = (tss_point){blk->step[i], blk->t_ns[i], blk->value[i], s->chunks[vc->chunk].gen};
        }
    }
    if (rc == 0 && all && !xtime && !vw->single_gen && tvm_points_sort(out, cnt) < 0)
        rc = tvm__fail(src, -ENOMEM, "out of memory sorting %zu points", cnt);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *pts = out;
    *n = cnt;
    return 0;
}

int tvm_points(tvm_source *src, size_t series, int64_t x_from, int64_t x_to, int flags, tss_point **pts,
               size_t *n)
{
    if (!src || !pts || !n)
        return -EINVAL;
    *pts = NULL;
    *n = 0;
    if (series >= src->nser)
        return tvm__fail(src, -EINVAL, "tvm_points: no series %zu (the source has %zu)", series, src->nser);
    if (flags & ~(TVM_X_TIME | TVM_ALL_TIMELINES))
        return tvm__fail(src, -EINVAL, "tvm_points: unknown flags 0x%x", (unsigned)flags);
    return tvm_collect(src, &src->ser[series], x_from, x_to, flags, pts, n);
}

/* The slow path: fold the reference points one by one (columns b0..b1). */
static int tvm_reduce_points(tvm_source *src, tvm_ser *s, int flags, const tvm_map *m, size_t b0, size_t b1,
                             tss_bucket *out)
{
    int64_t xa = (int64_t)((uint64_t)m->x_from + m->lo[b0]);
    int64_t xb = b1 >= m->ncols ? m->x_to : (int64_t)((uint64_t)m->x_from + m->lo[b1] - 1);
    tss_point *p;
    size_t n;
    int rc = tvm_collect(src, s, xa, xb, flags, &p, &n);

    if (rc < 0)
        return rc;
    for (size_t b = b0; b < b1; b++)
        tss_bucket_init(&out[b]);
    for (size_t i = 0; i < n; i++) {
        int64_t x = (flags & TVM_X_TIME) ? p[i].t_ns : p[i].step;
        tss_bucket_add(&out[tvm_col_of(m, tvm_off(m, x))], p[i].step, p[i].value);
    }
    free(p);
    return 0;
}

/* ---- all timelines by step: one reduction per generation, merged ---------------- */

static int tvm_same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Merge column c of a later generation into a (order: step, then generation).
 * Returns 1 when min or max tie with different bits (+0.0 and -0.0): which
 * one comes first depends on steps the summaries do not keep. */
static int tvm_merge_gen(tss_bucket *a, const tss_bucket *c)
{
    int tie = 0;

    if (c->count == 0)
        return 0;
    if (a->count == 0) {
        *a = *c;
        return 0;
    }
    if (c->step_first < a->step_first) {
        a->step_first = c->step_first;
        a->first = c->first;
    }
    if (c->step_last >= a->step_last) {
        a->step_last = c->step_last;
        a->last = c->last;
    }
    a->count += c->count;
    a->n_nan += c->n_nan;
    a->n_inf += c->n_inf;
    if (!isnan(c->min)) {
        if (isnan(a->min) || c->min < a->min)
            a->min = c->min;
        else if (c->min == a->min && !tvm_same_bits(c->min, a->min))
            tie = 1;
    }
    if (!isnan(c->max)) {
        if (isnan(a->max) || c->max > a->max)
            a->max = c->max;
        else if (c->max == a->max && !tvm_same_bits(c->max, a->max))
            tie = 1;
    }
    return tie;
}

static int tvm_columns_all_steps(tvm_source *src, tvm_ser *s, const tvm_view *vw, const tvm_map *m,
                                 tss_bucket *out)
{
    tss_bucket *tmp = src->tmp;
    size_t k = 0;
    int rc;

    while (k < vw->n) {
        int gen = s->chunks[vw->v[k].chunk].gen;
        size_t e = k;
        while (e < vw->n && s->chunks[vw->v[e].chunk].gen == gen)
            e++;
        for (size_t b = 0; b < m->ncols; b++)
            tss_bucket_init(&tmp[b]);
        if ((rc = tvm_reduce(src, s, vw->v + k, e - k, 0, m, 0, m->ncols, tmp)) < 0)
            return rc;
        for (size_t b = 0; b < m->ncols; b++)
            if (tvm_merge_gen(&out[b], &tmp[b]) &&
                (rc = tvm_reduce_points(src, s, TVM_ALL_TIMELINES, m, b, b + 1, out)) < 0)
                return rc;
        k = e;
    }
    return 0;
}

/* ---- column cache ------------------------------------------------------------------ */

static int64_t tvm_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return q - (a % b != 0 && (a < 0) != (b < 0));
}

/* Columns of a whole-width map (m->w fits int64): reuse those computed for
 * an earlier call with the same width and phase, compute the rest. */
static size_t tvm_ring_at(const tvm_colcache *cc, int64_t g)
{
    int64_t r = g % (int64_t)cc->cap;

    return (size_t)(r < 0 ? r + (int64_t)cc->cap : r);
}

/* Copy columns [a, b) (global) between out (whose first column is g0) and
 * the ring; to_ring picks the direction. */
static void tvm_ring_copy(tvm_colcache *cc, tss_bucket *out, int64_t g0, int64_t a, int64_t b, int to_ring)
{
    while (a < b) {
        size_t at = tvm_ring_at(cc, a), len = cc->cap - at;
        if ((int64_t)len > b - a)
            len = (size_t)(b - a);
        if (to_ring)
            memcpy(cc->col + at, out + (a - g0), len * sizeof *out);
        else
            memcpy(out + (a - g0), cc->col + at, len * sizeof *out);
        a += (int64_t)len;
    }
}

static void tvm_empty_range(tss_bucket *out, size_t b0, size_t b1)
{
    for (size_t b = b0; b < b1; b++)
        tss_bucket_init(&out[b]);
}

/* Columns of a whole-width map (m->w fits int64): reuse those computed for
 * an earlier call with the same width and phase, compute the rest. The
 * cache is a ring indexed by global column, so a pan copies only the
 * columns it computed into it. */
static int tvm_columns_cached(tvm_source *src, tvm_ser *s, const tvm_view *vw, int flags, const tvm_map *m,
                              tss_bucket *out)
{
    int64_t w = (int64_t)m->w, g0 = tvm_floor_div(m->x_from, w), phase = m->x_from - g0 * w;
    int64_t ov0 = g0, ov1 = g0, n = (int64_t)m->ncols;
    int xtime = (flags & TVM_X_TIME) != 0;
    tvm_colcache *cc = NULL;
    int rc;

    for (int i = 0; i < 2; i++)
        if (s->cc[i].flags == flags && s->cc[i].w == w && s->cc[i].phase == phase)
            cc = &s->cc[i];
    if (!cc) {
        cc = &s->cc[s->cc_next];
        s->cc_next ^= 1;
        cc->n = 0;
    }
    if (cc->cap < m->ncols) {
        tss_bucket *nc = realloc(cc->col, m->ncols * sizeof *nc);
        if (!nc) {
            tvm_empty_range(out, 0, m->ncols);
            cc->n = 0;
            return tvm_reduce(src, s, vw->v, vw->n, xtime, m, 0, m->ncols, out);
        }
        cc->col = nc;
        cc->cap = m->ncols;
        cc->n = 0;
    }
    if (cc->n) {
        int64_t c1 = cc->g0 + (int64_t)cc->n;
        ov0 = g0 > cc->g0 ? g0 : cc->g0;
        ov1 = g0 + n < c1 ? g0 + n : c1;
        if (ov0 < ov1)
            tvm_ring_copy(cc, out, g0, ov0, ov1, 0);
        else
            ov0 = ov1 = g0;
    }
    tvm_empty_range(out, 0, (size_t)(ov0 - g0));
    tvm_empty_range(out, (size_t)(ov1 - g0), m->ncols);
    rc = tvm_reduce(src, s, vw->v, vw->n, xtime, m, 0, (size_t)(ov0 - g0), out);
    if (rc == 0)
        rc = tvm_reduce(src, s, vw->v, vw->n, xtime, m, (size_t)(ov1 - g0), m->ncols, out);
    if (rc < 0) {
        cc->n = 0;
        return rc;
    }
    tvm_ring_copy(cc, out, g0, g0, ov0, 1);
    tvm_ring_copy(cc, out, g0, ov1, g0 + n, 1);
    cc->flags = flags;
    cc->w = w;
    cc->phase = phase;
    cc->g0 = g0;
    cc->n = m->ncols;
    return 0;
}

void tvm__series_changed(tvm_source *src, size_t series, int64_t from_step, int64_t from_t_ns)
{
    tvm_ser *s = &src->ser[series];

    for (int a = 0; a < TVM_NVIEWS; a++)
        s->view[a].valid = 0;
    s->stats_valid = 0;
    for (int i = 0; i < 2; i++) {
        tvm_colcache *cc = &s->cc[i];
        int64_t from = (cc->flags & TVM_X_TIME) ? from_t_ns : from_step, keep;
        if (!cc->n)
            continue;
        if (from == INT64_MIN) {
            cc->n = 0;
            continue;
        }
        /* keep the columns that end before `from` */
        keep = tvm_floor_div(from - cc->phase, cc->w) - cc->g0;
        if (keep < 0)
            keep = 0;
        if ((uint64_t)keep < cc->n)
            cc->n = (size_t)keep;
    }
}

/* ---- tvm_columns ----------------------------------------------------------------------- */

int tvm_columns(tvm_source *src, size_t series, int64_t x_from, int64_t x_to, size_t ncols, int flags,
                tss_bucket *out)
{
    int xtime = (flags & TVM_X_TIME) != 0, all = (flags & TVM_ALL_TIMELINES) != 0;
    tvm_ser *s;
    tvm_view *vw;
    tvm_map m;
    int rc;

    if (!src || !out)
        return -EINVAL;
    if (series >= src->nser)
        return tvm__fail(src, -EINVAL, "tvm_columns: no series %zu (the source has %zu)", series, src->nser);
    if (ncols == 0 || x_from > x_to)
        return tvm__fail(src, -EINVAL, "tvm_columns: need at least one column and x_from <= x_to");
    if (flags & ~(TVM_X_TIME | TVM_ALL_TIMELINES))
        return tvm__fail(src, -EINVAL, "tvm_columns: unknown flags 0x%x", (unsigned)flags);
    s = &src->ser[series];
    if ((rc = tvm_map_init(src, &m, x_from, x_to, ncols)) < 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = tvm_view_get(src, s, all, &vw)) < 0)
            return rc;
        if (xtime && !vw->t_sorted)
            return tvm_reduce_points(src, s, flags, &m, 0, ncols, out);
        if (m.w && m.w <= INT64_MAX && !(all && !xtime && !vw->single_gen)) {
            rc = tvm_columns_cached(src, s, vw, flags, &m, out);
        } else {
            tvm_empty_range(out, 0, ncols);
            if (all && !xtime && !vw->single_gen)
                rc = tvm_columns_all_steps(src, s, vw, &m, out);
            else
                rc = tvm_reduce(src, s, vw->v, vw->n, xtime, &m, 0, ncols, out);
        }
        if (rc != -EAGAIN)
            return rc;
        /* a chunk's times went back: the view is rebuilt, start over */
        tvm__series_changed(src, series, INT64_MIN, INT64_MIN);
    }
    return tvm_reduce_points(src, s, flags, &m, 0, ncols, out);
}

/* ---- tvm_align_range --------------------------------------------------------------------- */

int tvm_align_range(int64_t x_from, int64_t x_to, size_t ncols, int64_t *a_from, int64_t *a_to)
{
    tvm_u128 span, w = 1;
    int64_t from;

    if (ncols == 0 || x_from > x_to || !a_from || !a_to)
        return -EINVAL;
    span = (tvm_u128)((uint64_t)x_to - (uint64_t)x_from) + 1;
    for (;;) {
        while (w * ncols < span)
            w *= 2;
        if (w > (tvm_u128)INT64_MAX / ncols)
            return -ERANGE;
        from = tvm_floor_div(x_from, (int64_t)w) * (int64_t)w;
        /* rounding x_from down may leave x_to out: then twice as wide */
        if ((tvm_u128)((uint64_t)x_to - (uint64_t)from) < w * ncols)
            break;
        w *= 2;
    }
    if ((tvm_u128)((uint64_t)INT64_MAX - (uint64_t)from) < w * ncols - 1)
        return -ERANGE;
    *a_from = from;
    *a_to = (int64_t)((uint64_t)from + (uint64_t)(w * ncols - 1));
    return 0;
}

/* ---- series statistics -------------------------------------------------------------------- */

int tvm__series_recount(tvm_source *src, size_t series)
{
    tvm_ser *s = &src->ser[series];
    tvm_series *p = &s->pub;
    tvm_view *vw;
    int rc = tvm_view_get(src, s, 1, &vw), gens = 0;

    p->count = 0;
    p->step_first = p->step_last = 0;
    p->t_first_ns = p->t_last_ns = 0;
    p->vmin = p->vmax = NAN;
    p->n_nan = p->n_inf = 0;
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < vw->n; k++) {
        const tvm_vchunk *vc = &vw->v[k];
        tvm_chunk *ch = &s->chunks[vc->chunk];
        tss_bucket b;
        int64_t tf = ch->t_first, tl = ch->t_last;
        double fmin = ch->fmin, fmax = ch->fmax;

        if (vc->partial || !ch->fvalid) {
            const tvm_block *blk = tvm__chunk_points(src, s, vc->chunk);
            if (!blk)
                return -EINVAL;
            tss_bucket_init(&b);
            fmin = fmax = NAN;
            tf = INT64_MAX;
            tl = INT64_MIN;
            for (uint32_t i = 0; i < blk->n; i++) {
                double v = blk->value[i];
                if (blk->step[i] >= vc->cut || blk->t_ns[i] > src->t_limit)
                    continue;
                tss_bucket_add(&b, blk->step[i], v);
                tf = blk->t_ns[i] < tf ? blk->t_ns[i] : tf;
                tl = blk->t_ns[i] > tl ? blk->t_ns[i] : tl;
                if (isfinite(v)) {
                    fmin = isnan(fmin) || v < fmin ? v : fmin;
                    fmax = isnan(fmax) || v > fmax ? v : fmax;
                }
            }
            if (!vc->partial) {
                ch->fmin = fmin;
                ch->fmax = fmax;
                ch->fvalid = 1;
            }
            if (b.count == 0)
                continue;
        } else {
            tvm_chunk_bucket(ch, &b);
        }
        if (p->count == 0 || b.step_first < p->step_first)
            p->step_first = b.step_first;
        if (p->count == 0 || b.step_last > p->step_last)
            p->step_last = b.step_last;
        if (p->count == 0 || tf < p->t_first_ns)
            p->t_first_ns = tf;
        if (p->count == 0 || tl > p->t_last_ns)
            p->t_last_ns = tl;
        p->count += b.count;
        p->n_nan += b.n_nan;
        p->n_inf += b.n_inf;
        if (!isnan(fmin) && (isnan(p->vmin) || fmin < p->vmin))
            p->vmin = fmin;
        if (!isnan(fmax) && (isnan(p->vmax) || fmax > p->vmax))
            p->vmax = fmax;
        if (ch->gen + 1 > gens)
            gens = ch->gen + 1;
    }
    p->generations = gens;
    s->stats_valid = 1;
    return 0;
}
