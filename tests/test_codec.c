/* test_codec.c - unit tests of the chunk codec (store/codec.c).
 *
 * Round trips must be exact to the bit (values compared as uint64, so NaN
 * payloads and -0.0 count), for edge values, extreme steps and times and
 * random series of several shapes; a snapshot taken after any append must
 * decode to the points so far; a chunk stops at TSC_MAX_POINTS; and a
 * truncated, miscounted or corrupt blob must be reported (-EINVAL) or decode
 * to some count without reading out of bounds (run it under ASan/UBSan:
 * meson setup build-asan -Db_sanitize=address,undefined).
 *
 * Exit status 0 when every test passes; otherwise prints "FAIL: ..." with the
 * offending value and exits 1 at the first failure.
 */
#include "codec.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One series under test; arrays hold TSC_MAX_POINTS. */
typedef struct series {
    size_t n;
    int64_t step[TSC_MAX_POINTS], time[TSC_MAX_POINTS];
    double value[TSC_MAX_POINTS];
} series;

static series in, out;   /* big: static, not on the stack */

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    exit(1);
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Uniform in [-1, 1). */
static double uniform(uint64_t *x)
{
    return (double)(xorshift(x) >> 11) / 9007199254740992.0 * 2 - 1;
}

/* ---- checking ----------------------------------------------------------- */

/* The first n points of out must equal those of in, bit for bit. */
static void expect_same(const char *what, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out.step[i] != in.step[i])
            fail("%s: point %zu step %" PRId64 " decoded as %" PRId64, what, i, in.step[i], out.step[i]);
        if (out.time[i] != in.time[i])
            fail("%s: point %zu time %" PRId64 " decoded as %" PRId64, what, i, in.time[i], out.time[i]);
        if (bits_of(out.value[i]) != bits_of(in.value[i]))
            fail("%s: point %zu value 0x%016" PRIx64 " (%g) decoded as 0x%016" PRIx64, what, i,
                 bits_of(in.value[i]), in.value[i], bits_of(out.value[i]));
    }
}

/* Decode a blob that must hold the first n points of in. */
static void expect_blob(const char *what, const uint8_t *blob, size_t len, size_t n)
{
    uint64_t fbits[4];
    int64_t got = tsc_decode(blob, len, out.step, out.time, out.value);
    if (got != (int64_t)n)
        fail("%s: decode returned %" PRId64 ", expected %zu points (%zu bytes)", what, got, n, len);
    if (tsc_blob_count(blob, len) != (int64_t)n)
        fail("%s: tsc_blob_count says %" PRId64 ", expected %zu", what, tsc_blob_count(blob, len), n);
    expect_same(what, n);
    if (tsc_blob_bits(blob, len, fbits) != (int64_t)n ||
        fbits[0] + fbits[1] + fbits[2] + fbits[3] != (uint64_t)len * 8)
        fail("%s: tsc_blob_bits does not account for the %zu bytes", what, len);
}

/* Encode all of in into e (reset first) and return the blob. */
static const uint8_t *encode(tsc_enc *e, size_t *len)
{
    tsc_enc_reset(e);
    for (size_t i = 0; i < in.n; i++) {
        int rc = tsc_enc_append(e, in.step[i], in.time[i], in.value[i]);
        if (rc != 0)
            fail("append of point %zu returned %d", i, rc);
    }
    if (tsc_enc_count(e) != in.n)
        fail("tsc_enc_count %u, expected %zu", tsc_enc_count(e), in.n);
    return tsc_enc_bytes(e, len);
}

static void round_trip(const char *what)
{
    tsc_enc e;
    size_t len;
    const uint8_t *blob;
    tsc_enc_init(&e);
    blob = encode(&e, &len);
    expect_blob(what, blob, len, in.n);
    tsc_enc_free(&e);
}

/* ---- inputs ------------------------------------------------------------- */

static const uint64_t edge_values[] = {
    0x7ff8000000000000u,  /* quiet NaN */
    0xfff8000000000000u,  /* negative quiet NaN */
    0x7ff0000000000001u,  /* signalling NaN, smallest payload */
    0x7ff7ffffffffffffu,  /* signalling NaN, largest payload */
    0x7ff4000000000000u,  /* signalling NaN */
    0xfff0000000000001u,  /* negative signalling NaN */
    0x7fffffffffffffffu,  /* quiet NaN, all payload bits */
    0xffffffffffffffffu,  /* negative NaN, all bits */
    0x7ff8000000000001u,  /* quiet NaN with a payload */
    0x7ff0000000000000u,  /* +Inf */
    0xfff0000000000000u,  /* -Inf */
    0x0000000000000000u,  /* +0.0 */
    0x8000000000000000u,  /* -0.0 */
    0x0000000000000001u,  /* smallest subnormal */
    0x8000000000000001u,  /* its negative */
    0x000fffffffffffffu,  /* largest subnormal */
    0x800fffffffffffffu,
    0x0010000000000000u,  /* DBL_MIN */
    0x7fefffffffffffffu,  /* DBL_MAX */
    0xffefffffffffffffu,  /* -DBL_MAX */
    0x3ff0000000000000u,  /* 1.0 */
    0xbff0000000000000u,  /* -1.0 */
    0x3fb99999a0000000u,  /* (double)0.1f */
    0x3fb999999999999au,  /* 0.1 */
};
#define N_EDGE_VALUES (sizeof edge_values / sizeof edge_values[0])

static const int64_t edge_ints[] = {
    INT64_MIN, INT64_MIN + 1, INT64_MIN / 2, -INT64_C(1795475919994946031), -205, -1, 0, 1, 2, 205,
    INT64_C(1795475919994946031), INT64_MAX / 2, INT64_MAX - 1, INT64_MAX,
};
#define N_EDGE_INTS (sizeof edge_ints / sizeof edge_ints[0])

/* Every pair of edge values in a row, both ways, then each on its own and
 * after a run of regular points (a predictor that has settled). */
static void test_edge_values_round_trip(void)
{
    char what[96];
    for (size_t a = 0; a < N_EDGE_VALUES; a++) {
        for (size_t b = 0; b < N_EDGE_VALUES; b++) {
            in.n = 6;
            for (size_t i = 0; i < in.n; i++) {
                in.step[i] = (int64_t)i;
                in.time[i] = 1000 + 205 * (int64_t)i;
                in.value[i] = from_bits(edge_values[i & 1 ? b : a]);
            }
            snprintf(what, sizeof what, "edge values 0x%016" PRIx64 " / 0x%016" PRIx64, edge_values[a],
                     edge_values[b]);
            round_trip(what);
        }
        in.n = 40;
        for (size_t i = 0; i < in.n; i++) {
            in.step[i] = (int64_t)i;
            in.time[i] = 205 * (int64_t)i;
            in.value[i] = i == 30 ? from_bits(edge_values[a]) : (double)(float)(1.0 + 0.01 * (double)i);
        }
        snprintf(what, sizeof what, "edge value 0x%016" PRIx64 " after float32 points", edge_values[a]);
        round_trip(what);
    }
    in.n = N_EDGE_VALUES;
    for (size_t i = 0; i < in.n; i++) {
        in.step[i] = in.time[i] = (int64_t)i;
        in.value[i] = from_bits(edge_values[i]);
    }
    round_trip("all edge values in a row");
}

/* Steps and times at the int64 limits, going backwards, repeating, and
 * jumping across the whole range (the deltas wrap). */
static void test_extreme_steps_and_times(void)
{
    char what[96];
    for (size_t a = 0; a < N_EDGE_INTS; a++) {
        for (size_t b = 0; b < N_EDGE_INTS; b++) {
            in.n = 7;
            for (size_t i = 0; i < in.n; i++) {
                in.step[i] = edge_ints[i % 3 ? a : b];
                in.time[i] = edge_ints[i % 2 ? b : a];
                in.value[i] = 0.5;
            }
            snprintf(what, sizeof what, "steps/times %" PRId64 " / %" PRId64, edge_ints[a], edge_ints[b]);
            round_trip(what);
        }
    }
    /* Regular for long enough that steps become implicit, then broken. */
    for (size_t a = 0; a < N_EDGE_INTS; a++) {
        in.n = 60;
        for (size_t i = 0; i < in.n; i++) {
            in.step[i] = i == 40 ? edge_ints[a] : (int64_t)i * 10;
            in.time[i] = i == 50 ? edge_ints[a] : (int64_t)i * 205;
            in.value[i] = 2.0;
        }
        snprintf(what, sizeof what, "regular steps broken by %" PRId64, edge_ints[a]);
        round_trip(what);
    }
}

enum {
    GEN_RANDOM_BITS,    /* all 64 bits of everything random */
    GEN_RANDOM_WALK,    /* steps and values wander, time jitters */
    GEN_F32_NOISE,      /* a float32 loss curve */
    GEN_CONSTANT,       /* constant value, regular steps and time */
    GEN_SMOOTH,         /* a cosine schedule in float64 */
    GEN_COUNTER,        /* integer values, steps that restart */
    GEN_MIXED,          /* segments of the above, float32 and float64 mixed */
    GEN_KINDS
};
static const char *gen_names[GEN_KINDS] = {"random bits", "random walk", "float32 noise", "constant",
                                           "smooth", "counter", "mixed"};

/* Point i of a series of the given kind; state is carried in the statics of
 * the caller through x (rng) and the previous point. */
static void gen_point(int kind, size_t i, uint64_t *x)
{
    int64_t ps = i ? in.step[i - 1] : 0, pt = i ? in.time[i - 1] : INT64_C(1795475919994);
    double pv = i ? in.value[i - 1] : 1.0;
    switch (kind) {
    case GEN_RANDOM_BITS:
        in.step[i] = (int64_t)xorshift(x);
        in.time[i] = (int64_t)xorshift(x);
        in.value[i] = from_bits(xorshift(x));
        break;
    case GEN_RANDOM_WALK:
        in.step[i] = ps + (int64_t)(xorshift(x) % 5) - 1;
        in.time[i] = pt + 205 + (int64_t)(xorshift(x) % 41) - 20;
        in.value[i] = pv + uniform(x);
        break;
    case GEN_F32_NOISE:
        in.step[i] = (int64_t)i;
        in.time[i] = pt + 205 + (int64_t)(xorshift(x) % 5) - 2;
        in.value[i] = (double)(float)(4.0 * exp(-(double)i / 500.0) + 1.0 + 0.05 * uniform(x));
        break;
    case GEN_CONSTANT:
        in.step[i] = (int64_t)i;
        in.time[i] = pt + 1000;
        in.value[i] = 0.125;
        break;
    case GEN_SMOOTH:
        in.step[i] = 2 * (int64_t)i;
        in.time[i] = pt + 200 + (int64_t)(xorshift(x) % 3);
        in.value[i] = 0.015 * (1 + cos(3.14159265358979 * (double)i / 3000.0));
        break;
    case GEN_COUNTER:
        in.step[i] = xorshift(x) % 500 == 0 ? 0 : ps + 1;
        in.time[i] = pt + 100;
        in.value[i] = (double)in.step[i] * 1024;
        break;
    default: {
        /* A new shape every 64 points, drawn from the others. */
        static int seg;
        if (i % 64 == 0)
            seg = (int)(xorshift(x) % GEN_MIXED);
        gen_point(seg, i, x);
        break;
    }
    }
}

static void gen(int kind, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;
    in.n = n;
    for (size_t i = 0; i < n; i++)
        gen_point(kind, i, &x);
}

static void test_random_series_round_trip(void)
{
    static const size_t lengths[] = {1, 2, 3, 17, 1000, TSC_MAX_POINTS};
    char what[96];
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            for (uint64_t seed = 1; seed <= 5; seed++) {
                gen(kind, lengths[l], seed);
                snprintf(what, sizeof what, "%s, %zu points, seed %" PRIu64, gen_names[kind], lengths[l], seed);
                round_trip(what);
            }
        }
    }
}

/* A snapshot after each of the first 100 appends decodes to exactly the
 * points so far, and appending after a snapshot still works. */
static void test_snapshot_after_every_append(void)
{
    char what[96];
    tsc_enc e;
    tsc_enc_init(&e);
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        size_t len;
        const uint8_t *blob;
        gen(kind, 300, 42);
        tsc_enc_reset(&e);
        blob = tsc_enc_bytes(&e, &len);
        if (tsc_decode(blob, len, NULL, NULL, NULL) < 0)
            fail("%s: snapshot of an empty encoder does not decode", gen_names[kind]);
        for (size_t i = 0; i < in.n; i++) {
            if (tsc_enc_append(&e, in.step[i], in.time[i], in.value[i]) != 0)
                fail("%s: append %zu failed", gen_names[kind], i);
            if (i < 100) {
                blob = tsc_enc_bytes(&e, &len);
                snprintf(what, sizeof what, "%s, snapshot after %zu points", gen_names[kind], i + 1);
                expect_blob(what, blob, len, i + 1);
            }
        }
        blob = tsc_enc_bytes(&e, &len);
        snprintf(what, sizeof what, "%s, 300 points after 100 snapshots", gen_names[kind]);
        expect_blob(what, blob, len, in.n);
    }
    tsc_enc_free(&e);
}

/* An encoder that never saw a point, a reset one, a freed one. */
static void test_empty_and_reused_encoder(void)
{
    tsc_enc e;
    size_t len;
    const uint8_t *blob;
    tsc_enc_init(&e);
    blob = tsc_enc_bytes(&e, &len);
    if (len != 5 || tsc_decode(blob, len, NULL, NULL, NULL) != 0)
        fail("empty encoder: %zu bytes, decode %" PRId64, len, tsc_decode(blob, len, NULL, NULL, NULL));
    gen(GEN_RANDOM_BITS, 500, 7);
    encode(&e, &len);
    gen(GEN_F32_NOISE, 200, 7);
    blob = encode(&e, &len);
    expect_blob("encoder reused after reset", blob, len, in.n);
    tsc_enc_reset(&e);
    blob = tsc_enc_bytes(&e, &len);
    if (len != 5 || tsc_decode(blob, len, NULL, NULL, NULL) != 0)
        fail("reset encoder: %zu bytes, decode %" PRId64, len, tsc_decode(blob, len, NULL, NULL, NULL));
    tsc_enc_free(&e);
    tsc_enc_free(&e);
    tsc_enc_free(NULL);
    tsc_enc_init(&e);
    blob = encode(&e, &len);
    expect_blob("encoder initialised again after free", blob, len, in.n);
    tsc_enc_free(&e);
}

static void test_chunk_limit_is_enospc(void)
{
    tsc_enc e;
    size_t len;
    const uint8_t *blob;
    int rc;
    tsc_enc_init(&e);
    gen(GEN_RANDOM_WALK, TSC_MAX_POINTS, 3);
    blob = encode(&e, &len);
    rc = tsc_enc_append(&e, 1, 2, 3.0);
    if (rc != -ENOSPC)
        fail("append to a full chunk returned %d, expected -ENOSPC", rc);
    blob = tsc_enc_bytes(&e, &len);
    expect_blob("full chunk after a refused append", blob, len, TSC_MAX_POINTS);
    tsc_enc_free(&e);
}

/* Headers that lie: wrong version, count over the limit or off by one,
 * blobs shorter than a header, trailing garbage. */
static void test_bad_headers_are_einval(void)
{
    static uint8_t copy[1 << 16];
    tsc_enc e;
    size_t len;
    const uint8_t *blob;
    tsc_enc_init(&e);
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        for (size_t n = 1; n <= 70; n += 23) {
            int64_t rc;
            gen(kind, n, 11);
            blob = encode(&e, &len);
            memcpy(copy, blob, len);
            copy[0] = TSC_VERSION + 1;
            if ((rc = tsc_decode(copy, len, NULL, NULL, NULL)) != -EINVAL)
                fail("%s: version %d decoded as %" PRId64, gen_names[kind], copy[0], rc);
            copy[0] = TSC_VERSION;
            for (int d = -1; d <= 1; d += 2) {
                uint32_t c = (uint32_t)n + (uint32_t)d;
                memcpy(copy + 1, (uint8_t[4]){(uint8_t)c, (uint8_t)(c >> 8), 0, 0}, 4);
                if ((rc = tsc_decode(copy, len, out.step, out.time, out.value)) != -EINVAL)
                    fail("%s: %zu points with count %u decoded as %" PRId64, gen_names[kind], n, c, rc);
            }
            memcpy(copy + 1, (uint8_t[4]){0x01, 0x10, 0, 0}, 4);   /* 4097 */
            if ((rc = tsc_blob_count(copy, len)) != -EINVAL)
                fail("count 4097 accepted: %" PRId64, rc);
            memcpy(copy, blob, len);
            copy[len] = 0xff;
            if ((rc = tsc_decode(copy, len + 1, NULL, NULL, NULL)) != -EINVAL)
                fail("%s: a trailing byte decoded as %" PRId64, gen_names[kind], rc);
        }
    }
    for (size_t l = 0; l < 5; l++)
        if (tsc_blob_count(copy, l) != -EINVAL || tsc_decode(copy, l, NULL, NULL, NULL) != -EINVAL)
            fail("a %zu-byte blob was accepted", l);
    if (tsc_decode(NULL, 0, NULL, NULL, NULL) != -EINVAL)
        fail("a NULL blob was accepted");
    tsc_enc_free(&e);
}

/* Every truncation of a valid blob is detected. The copy is exactly as long
 * as the truncated blob, so ASan catches any read past it. */
static void test_every_truncation_is_einval(void)
{
    tsc_enc e;
    tsc_enc_init(&e);
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        size_t len;
        const uint8_t *blob;
        gen(kind, 300, 5);
        blob = encode(&e, &len);
        for (size_t l = 0; l < len; l++) {
            uint8_t *cut = malloc(l ? l : 1);
            int64_t rc;
            if (!cut)
                fail("out of memory");
            memcpy(cut, blob, l);
            rc = tsc_decode(cut, l, out.step, out.time, out.value);
            free(cut);
            if (rc != -EINVAL)
                fail("%s: blob of %zu bytes cut to %zu decoded as %" PRId64, gen_names[kind], len, l, rc);
        }
    }
    tsc_enc_free(&e);
}

/* Random byte flips: any answer but a crash or an out-of-range count. */
static void test_corrupt_bytes_never_crash(void)
{
    uint64_t x = 12345;
    tsc_enc e;
    tsc_enc_init(&e);
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        size_t len;
        const uint8_t *blob;
        uint8_t *bad;
        gen(kind, 400, 9);
        blob = encode(&e, &len);
        if (!(bad = malloc(len)))
            fail("out of memory");
        for (int trial = 0; trial < 3000; trial++) {
            int flips = 1 + (int)(xorshift(&x) % 4);
            int64_t rc;
            memcpy(bad, blob, len);
            for (int f = 0; f < flips; f++)
                bad[xorshift(&x) % len] ^= (uint8_t)(1 + xorshift(&x) % 255);
            rc = tsc_decode(bad, len, out.step, out.time, out.value);
            if (rc != -EINVAL && (rc < 0 || rc > TSC_MAX_POINTS))
                fail("%s: corrupt blob decoded as %" PRId64, gen_names[kind], rc);
        }
        free(bad);
    }
    tsc_enc_free(&e);
}

/* A prefix decode gives the first points of the full decode, bit for bit,
 * for every prefix length (and the whole blob for a max at or above the
 * count); a truncated header is refused. */
static void test_prefix_decode(void)
{
    static int64_t s1[TSC_MAX_POINTS], t1[TSC_MAX_POINTS], s2[TSC_MAX_POINTS], t2[TSC_MAX_POINTS];
    static double v1[TSC_MAX_POINTS], v2[TSC_MAX_POINTS];
    tsc_enc e;
    tsc_enc_init(&e);
    for (int kind = 0; kind < GEN_KINDS; kind++) {
        size_t len;
        const uint8_t *blob;
        gen(kind, 1000, 7);
        tsc_enc_reset(&e);
        for (size_t i = 0; i < in.n; i++)
            tsc_enc_append(&e, in.step[i], in.time[i], in.value[i]);
        blob = tsc_enc_bytes(&e, &len);
        if (tsc_decode(blob, len, s1, t1, v1) != 1000)
            fail("%s: full decode", gen_names[kind]);
        for (int64_t max = 0; max <= 1001; max += max < 70 ? 1 : 37) {
            int64_t want = max < 1000 ? max : 1000;
            int64_t got = tsc_decode_prefix(blob, len, max, s2, t2, v2);
            if (got != want || memcmp(s1, s2, (size_t)want * sizeof *s1) || memcmp(t1, t2, (size_t)want * sizeof *t1) ||
                memcmp(v1, v2, (size_t)want * sizeof *v1))
                fail("%s: prefix of %" PRId64 ": got %" PRId64 " points or other bits", gen_names[kind], max, got);
        }
        if (tsc_decode_prefix(blob, len, INT64_MAX, s2, t2, v2) != 1000)
            fail("%s: prefix of INT64_MAX", gen_names[kind]);
        if (tsc_decode_prefix(blob, 3, 10, s2, t2, v2) != -EINVAL)
            fail("%s: a truncated header is refused", gen_names[kind]);
    }
    tsc_enc_free(&e);
}

int main(void)
{
    test_edge_values_round_trip();
    test_extreme_steps_and_times();
    test_random_series_round_trip();
    test_snapshot_after_every_append();
    test_prefix_decode();
    test_empty_and_reused_encoder();
    test_chunk_limit_is_enospc();
    test_bad_headers_are_einval();
    test_every_truncation_is_einval();
    test_corrupt_bytes_never_crash();
    printf("test_codec: all passed\n");
    return 0;
}
