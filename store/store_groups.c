/* store_groups.c - the group summaries of a chunk: the writer's grouping
 * (step >> g, coarsened as the chunk fills) and the blob of the chunks'
 * groups column (format in docs/store.md, "chunks.groups").
 *
 * Why: the codec is sequential, so a plot column or an M4 bucket whose edge
 * cuts a chunk used to cost a decode of the whole chunk. The M4 folding is
 * mergeable (tss_bucket_merge), so summaries of step-aligned groups give
 * every range whose edges fall on multiples of 2^g exactly, bit for bit,
 * from a few hundred bytes instead of 4096 decoded points.
 *
 * Knobs: TSS_GROUPS_MAX (store_int.h), groups per chunk: 32 keeps the blob
 * near 0.12 byte per point on a noisy float32 metric while a full chunk of
 * regular steps still has groups of 128 steps.
 */
#include "store_int.h"

#include <errno.h>
#include <string.h>

#define TSS_GRP_VERSION 2       /* 1: without the header bytes (never released) */
#define TSS_GRP_F32 1           /* flag: values are float32 (their doubles convert back exactly) */

/* A group's header byte: each bit set means the field has its usual value
 * and is not stored (a full group of regular steps is one byte + values). */
#define TSS_GH_DKEY 1           /* key = previous key + 1 (the first group: dkey 0) */
#define TSS_GH_COUNT 2          /* count = the previous group's */
#define TSS_GH_OFF 4            /* off = 0: the group starts its aligned range */
#define TSS_GH_SPAN 8           /* the group ends its aligned range: span = 2^g - 1 - off */
#define TSS_GH_FINITE 16        /* n_nan = n_inf = 0 */

/* Merge neighbours of equal step >> (g + 1), in the raw form (extrema
 * start at +-Inf, see tss__grps_add): ties keep the earlier value. */
static void tss_grps_coarsen(tss_grps *G)
{
    uint32_t o = 0;

    G->g++;
    for (uint32_t i = 0; i < G->n; i++) {
        tss_bucket *a = &G->b[o - (o > 0)], *c = &G->b[i];
        if (o > 0 && (a->step_first >> G->g) == (c->step_first >> G->g)) {
            a->count += c->count;
            a->step_last = c->step_last;
            a->last = c->last;
            a->n_nan += c->n_nan;
            a->n_inf += c->n_inf;
            if (c->min < a->min)
                a->min = c->min;
            if (c->max > a->max)
                a->max = c->max;
        } else {
            G->b[o++] = *c;
        }
    }
    G->n = o;
    G->key = G->b[o - 1].step_first >> G->g;
}

tss_bucket *tss__grps_start(tss_grps *G, int64_t step, double v)
{
    if (G->n == 0)
        G->g = 0;
    while (G->n == TSS_GROUPS_MAX && (step >> G->g) != G->key)
        tss_grps_coarsen(G);
    if (G->n == 0 || (step >> G->g) != G->key) {
        G->key = step >> G->g;
        G->b[G->n++] = (tss_bucket){.step_first = step, .first = v, .min = INFINITY, .max = -INFINITY};
    }
    G->cur = &G->b[G->n - 1];
    return G->cur;
}

/* ---- bytes ------------------------------------------------------------------ */

static uint8_t *tss_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static int tss_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t c = *(*p)++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -EINVAL;
}

static uint64_t tss_bits_of(double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof u);
    return u;
}

static int tss_is_f32(double v)
{
    double back = (double)(float)v;

    return tss_bits_of(back) == tss_bits_of(v);
}

/* A value as an unsigned integer that orders like the value (for non-NaN
 * values; NaN bits map one to one too): w = 32 for float32 bits, else 64.
 * Values are stored as differences of these, modulo 2^w, so that the
 * extrema, first and last of a noisy metric, which share sign, exponent and
 * leading mantissa bits, cost 2-3 bytes instead of 4 or 8. */
static uint64_t tss_ord(double v, int f32)
{
    if (f32) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        return (u & 0x80000000u) ? (uint32_t)~u : (u | 0x80000000u);
    }
    uint64_t u = tss_bits_of(v);
    return (u >> 63) ? ~u : (u | (1ull << 63));
}

static double tss_unord(uint64_t o, int f32)
{
    double v;

    if (f32) {
        uint32_t u = (uint32_t)o;
        float f;
        u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
        memcpy(&f, &u, sizeof f);
        return (double)f;
    }
    o = (o >> 63) ? (o & ~(1ull << 63)) : ~o;
    memcpy(&v, &o, sizeof v);
    return v;
}

/* v - ref in ord space, as a zigzag varint of the w-bit signed difference. */
static uint8_t *tss_put_delta(uint8_t *p, double v, uint64_t ref, int f32)
{
    uint64_t d = tss_ord(v, f32) - ref;
    int64_t sd = f32 ? (int64_t)(int32_t)(uint32_t)d : (int64_t)d;

    return tss_put_varint(p, ((uint64_t)sd << 1) ^ (uint64_t)(sd >> 63));
}

static int tss_get_delta(const uint8_t **p, const uint8_t *end, uint64_t ref, int f32, double *v, uint64_t *o)
{
    uint64_t z;

    if (tss_get_varint(p, end, &z) < 0)
        return -EINVAL;
    *o = ref + ((z >> 1) ^ (0 - (z & 1)));
    if (f32)
        *o &= 0xffffffffu;
    *v = tss_unord(*o, f32);
    return 0;
}

/* ---- the blob ------------------------------------------------------------------ */

/* A group of one point stores its value once: min, max, first and last
 * follow from it (tss_bucket_add of that point). */
size_t tss__grps_encode(const tss_grps *G, uint8_t *out)
{
    uint8_t *p = out;
    int f32 = 1;
    int64_t prev_key = 0;
    uint64_t ref = 0, prev_count = 0;

    for (uint32_t i = 0; i < G->n && f32; i++) {
        tss_bucket b = tss__grps_get(G, i);
        f32 = tss_is_f32(b.first) && tss_is_f32(b.last) && tss_is_f32(b.min) && tss_is_f32(b.max);
    }
    *p++ = TSS_GRP_VERSION;
    *p++ = (uint8_t)G->g;
    *p++ = f32 ? TSS_GRP_F32 : 0;
    p = tss_put_varint(p, G->n);
    for (uint32_t i = 0; i < G->n; i++) {
        tss_bucket bk = tss__grps_get(G, i), *b = &bk;
        int64_t key = b->step_first >> G->g;
        uint64_t base = (uint64_t)key << G->g;

        uint64_t dkey = i == 0 ? 0 : (uint64_t)key - (uint64_t)prev_key, off = (uint64_t)b->step_first - base;
        uint64_t span = (uint64_t)b->step_last - (uint64_t)b->step_first, full = ((uint64_t)1 << G->g) - 1 - off;
        uint8_t h = (uint8_t)((dkey == (i > 0) ? TSS_GH_DKEY : 0) | ((uint64_t)b->count == prev_count ? TSS_GH_COUNT : 0) |
                              (off == 0 ? TSS_GH_OFF : 0) | (span == full ? TSS_GH_SPAN : 0) |
                              (b->n_nan == 0 && b->n_inf == 0 ? TSS_GH_FINITE : 0));
        *p++ = h;
        if (!(h & TSS_GH_DKEY))
            p = tss_put_varint(p, dkey);
        if (!(h & TSS_GH_COUNT))
            p = tss_put_varint(p, (uint64_t)b->count);
        if (!(h & TSS_GH_OFF))
            p = tss_put_varint(p, off);
        if (!(h & TSS_GH_SPAN))
            p = tss_put_varint(p, span);
        if (!(h & TSS_GH_FINITE)) {
            p = tss_put_varint(p, (uint64_t)b->n_nan);
            p = tss_put_varint(p, (uint64_t)b->n_inf);
        }
        prev_count = (uint64_t)b->count;
        p = tss_put_delta(p, b->first, ref, f32);
        ref = tss_ord(b->first, f32);
        if (b->count > 1) {
            p = tss_put_delta(p, b->last, ref, f32);
            p = tss_put_delta(p, b->min, ref, f32);
            p = tss_put_delta(p, b->max, ref, f32);
            ref = tss_ord(b->last, f32);
        }
        prev_key = key;
    }
    return (size_t)(p - out);
}

/* Nothing is trusted: every group must lie in its aligned step range, after
 * the previous one, with counts that add up to the chunk's, and the first
 * and last steps must be the chunk's. */
int tss__grps_decode(const uint8_t *p, size_t len, int64_t n, int64_t step_first, int64_t step_last,
                     tss_bucket *out, size_t max, uint32_t *g)
{
    const uint8_t *end = p + len;
    uint64_t ng, total = 0;
    int64_t key = 0, prev_last = 0;
    uint64_t ref = 0, prev_count = 0;
    int f32;

    if (len >= 1 && p[0] != TSS_GRP_VERSION)
        return -ENOTSUP;
    if (len < 4 || p[1] > 62 || (p[2] & ~TSS_GRP_F32))
        return -EINVAL;
    *g = p[1];
    f32 = p[2] & TSS_GRP_F32;
    p += 3;
    if (tss_get_varint(&p, end, &ng) < 0 || ng == 0 || ng > max)
        return -EINVAL;
    for (uint64_t i = 0; i < ng; i++) {
        tss_bucket *b = &out[i];
        uint64_t dkey, cnt, off, span, nnan, ninf, base;
        double v;

        uint8_t h;

        if (p >= end)
            return -EINVAL;
        h = *p++;
        dkey = i > 0;
        cnt = prev_count;
        off = 0;
        nnan = ninf = 0;
        if ((h & ~0x1f) || (!(h & TSS_GH_DKEY) && tss_get_varint(&p, end, &dkey) < 0) ||
            (!(h & TSS_GH_COUNT) && tss_get_varint(&p, end, &cnt) < 0) ||
            (!(h & TSS_GH_OFF) && tss_get_varint(&p, end, &off) < 0) || off >> *g != 0)
            return -EINVAL;
        span = ((uint64_t)1 << *g) - 1 - off;
        if ((!(h & TSS_GH_SPAN) && tss_get_varint(&p, end, &span) < 0) ||
            (!(h & TSS_GH_FINITE) && (tss_get_varint(&p, end, &nnan) < 0 || tss_get_varint(&p, end, &ninf) < 0)))
            return -EINVAL;
        prev_count = cnt;
        if (i == 0) {
            if (dkey != 0)
                return -EINVAL;
            key = step_first >> *g;
        } else {
            if (dkey == 0 || dkey > (uint64_t)INT64_MAX >> *g || __builtin_add_overflow(key, (int64_t)dkey, &key))
                return -EINVAL;
            if (key > (INT64_MAX >> *g))
                return -EINVAL;
        }
        base = (uint64_t)key << *g;
        if (cnt == 0 || cnt > (uint64_t)n || nnan > cnt || ninf > cnt - nnan || (cnt == 1 && span != 0) ||
            off >> *g != 0 || span >> *g != 0 || off + span >= (uint64_t)1 << *g)
            return -EINVAL;
        tss_bucket_init(b);
        b->step_first = (int64_t)(base + off);
        b->step_last = (int64_t)(base + off + span);
        if ((b->step_last >> *g) != key || (i > 0 && b->step_first < prev_last))
            return -EINVAL;
        if (tss_get_delta(&p, end, ref, f32, &v, &ref) < 0)
            return -EINVAL;
        if (cnt == 1) {
            tss_bucket_add(b, b->step_first, v);
            if ((uint64_t)b->n_nan != nnan || (uint64_t)b->n_inf != ninf)
                return -EINVAL;
        } else {
            b->count = (int64_t)cnt;
            b->first = v;
            b->n_nan = (int64_t)nnan;
            b->n_inf = (int64_t)ninf;
            uint64_t first = ref, o;
            if (tss_get_delta(&p, end, first, f32, &b->last, &ref) < 0 ||
                tss_get_delta(&p, end, first, f32, &b->min, &o) < 0 ||
                tss_get_delta(&p, end, first, f32, &b->max, &o) < 0)
                return -EINVAL;
        }
        prev_last = b->step_last;
        total += cnt;
        if (total > (uint64_t)n)
            return -EINVAL;
    }
    if (p != end || total != (uint64_t)n || out[0].step_first != step_first || out[ng - 1].step_last != step_last)
        return -EINVAL;
    return (int)ng;
}
