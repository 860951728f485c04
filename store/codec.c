/* codec.c - the time-series chunk codec: an incremental bit-level encoder and
 * a defensive decoder for (step, time, value) points.
 *
 * Design (the exact bit format and the measurements are in docs/codec.md):
 * - Steps and times are coded as the delta of their delta (0 for a regular
 *   series), zigzag-mapped, then Rice-coded with a parameter k that follows a
 *   decayed mean of the recent code lengths, with an escape to an explicit
 *   length for outliers. An exact delta costs 1 bit, jitter of J units about
 *   log2(J) + 2. After 16 exact steps the step is not sent at all until an
 *   escape in the time code says it changed: training steps are that regular.
 * - Values are taken as their 64 IEEE bits (so every NaN payload, -0.0 and
 *   subnormal round-trips) and predicted in integer space by extrapolating
 *   the last values with a polynomial of order 0 (the last value) to 4; the
 *   order whose residuals were shortest lately wins, and as both sides keep
 *   the same scores no choice is sent. Order 0 suits noisy metrics, orders
 *   2..4 smooth schedules (a cosine learning rate costs 10 bits instead of
 *   46). The residual drops the trailing zero bits every recent residual had
 *   (29 for float32 data stored as float64), then is zigzag-mapped and
 *   Rice-coded like the deltas.
 * - Once a point is predicted exactly in all three fields the codec is in
 *   run mode: each further exact point costs one bit.
 * The encoder and the decoder share one model (tsc__model) and one update
 * function, so they cannot drift apart. All arithmetic on steps, times and
 * value bits is on uint64, where overflow wraps instead of being undefined.
 *
 * Knobs: RICE_QMAX (longest unary part before the escape), MEAN_SHIFT and
 * MEAN_BIAS (how fast and where k follows the code lengths), SCORE_SHIFT (how
 * long a predictor's record counts), TZ_BLOCK (how long the trailing-zero
 * floor remembers), STEP_RUN (exact steps before steps become implicit).
 * Changing any of them changes the format: bump TSC_VERSION.
 */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
    HDR_BYTES = 5,          /* version byte + uint32 LE point count */
    RICE_QMAX = 20,         /* unary part of a Rice code: below this it is sent, else escape */
    LEN_BITS = 7,           /* bit length field of an explicit-length number, 0..64 */
    SHIFT_BITS = 6,         /* an explicit trailing-zero shift, 0..63 */
    MEAN_SHIFT = 2,         /* code-length means decay by 1/4 per point */
    MEAN_UNIT = 16,         /* mean sums are in 1/16 bit */
    MEAN_BIAS = 20,         /* k = floor(mean length + 20/16) - 1, tuned on real data */
    SCORE_SHIFT = 4,        /* predictor scores decay by 1/16 per point */
    TZ_BLOCK = 16,          /* trailing-zero floor = min over the last 16..32 residuals */
    STEP_RUN = 16,          /* exact steps in a row after which steps are implicit */
    /* Room one point may need: at worst a run bit, a marker (27 bits) and
     * two escapes of 90 (step behind the marker, time), a value marker with
     * shift and long (103): 311 bits, 39 bytes; plus a partial byte and the
     * 8-byte window the writer stores. */
    POINT_MAX_BYTES = 64,
};

enum { F_STEP, F_TIME, F_VALUE };

/* ---- small bit helpers ------------------------------------------------ */

static inline unsigned bitlen(uint64_t x) { return x ? 64u - (unsigned)__builtin_clzll(x) : 0u; }
/* bitlen without the zero test, counting 0 as 1: good enough for scores. */
static inline unsigned bitlen1(uint64_t x) { return 64u - (unsigned)__builtin_clzll(x | 1); }
static inline unsigned ctz64(uint64_t x) { return x ? (unsigned)__builtin_ctzll(x) : 64u; }
static inline uint64_t zigzag(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }
static inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

/* Arithmetic shift right of a two's complement value held in a uint64,
 * written out because >> on a negative int64 is implementation-defined. */
static inline uint64_t sar(uint64_t x, unsigned s) { return (x >> s) | ((0 - (x >> 63)) << (63 - s) << 1); }

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

/* ---- bit writer: MSB first, into a buffer that is zero past the bits ---
 * An append collects bits in a register window (acc, the nacc top bits
 * valid) that starts at a byte of the buffer, stores the window when it is
 * full and once more at the end, so the partial last byte is always in the
 * buffer. tsc_enc_bytes sets the padding bits of that byte to ones; opening
 * the writer clears them again. */

typedef struct bitw {
    uint8_t *p;     /* first bit-stream byte (after the header) */
    size_t byte;    /* where acc starts */
    uint64_t acc;
    unsigned nacc;  /* bits in acc, <= 63 */
} bitw;

static inline void bitw_open(bitw *w, uint8_t *p, size_t pos)
{
    w->p = p;
    w->byte = pos >> 3;
    w->nacc = (unsigned)(pos & 7);
    w->acc = (uint64_t)(p[w->byte] & ~(0xffu >> w->nacc)) << 56;
}

/* Store the window (8 bytes: the buffer has room, and nothing but zeros
 * follows the byte in use) and slide it past its whole bytes. */
static inline void bitw_flush(bitw *w)
{
    unsigned whole = w->nacc >> 3;
    store_be64(w->p + w->byte, w->acc);
    w->byte += whole;
    w->acc <<= whole * 8;
    w->nacc &= 7;
}

/* Flush and return the bit position. */
static inline size_t bitw_close(bitw *w)
{
    bitw_flush(w);
    return w->byte * 8 + w->nacc;
}

/* Write the low n bits of v, n <= 56. The double shift keeps n == 0
 * defined. */
static inline void put_short(bitw *w, uint64_t v, unsigned n)
{
    if (w->nacc + n > 63)
        bitw_flush(w);
    w->acc |= v << (63 - w->nacc - n) << 1;
    w->nacc += n;
}

/* Write the low n bits of v, n <= 64; v must not have bits above n. */
static inline void put_bits(bitw *w, uint64_t v, unsigned n)
{
    if (n > 56) {
        put_short(w, v >> 32, n - 32);
        v &= 0xffffffffu;
        n = 32;
    }
    put_short(w, v, n);
}

/* An explicit-length number: its bit length n (0..64), then its n - 1 bits
 * below the top one, which is implied. */
static inline void put_long(bitw *w, uint64_t x)
{
    unsigned n = bitlen(x);
    put_short(w, n, LEN_BITS);
    if (n)
        put_bits(w, x & ~(UINT64_C(1) << (n - 1)), n - 1);
}

/* Rice code of z with parameter k: q = z >> k ones, a zero, the k low bits;
 * when q would reach RICE_QMAX, RICE_QMAX ones and z as a long instead. */
static inline void put_rice(bitw *w, uint64_t z, unsigned k)
{
    uint64_t q = z >> k;
    if (q < RICE_QMAX) {
        put_short(w, ((UINT64_C(1) << q) - 1) << 1, (unsigned)q + 1);
        put_bits(w, z & ((UINT64_C(1) << k) - 1), k);
        return;
    }
    put_short(w, (UINT64_C(1) << RICE_QMAX) - 1, RICE_QMAX);
    put_long(w, z);
}

/* The marker: an escape holding the long 0, which no Rice code produces
 * (an escaped z is at least RICE_QMAX). Announces an exception in a field. */
static inline void put_marker(bitw *w)
{
    put_short(w, (UINT64_C(1) << RICE_QMAX) - 1, RICE_QMAX);
    put_long(w, 0);
}

/* ---- bit reader: never reads past the end; bits past it read as zero, and
 * the caller checks pos against the size once per point. ----------------- */

typedef struct bitr {
    const uint8_t *p;
    size_t nbytes;
    size_t pos;     /* bits consumed; may pass the end on corrupt input */
} bitr;

/* The next 64 bits at pos, zero-filled past the end. */
static inline uint64_t peek64(const bitr *r)
{
    size_t byte = r->pos >> 3;
    uint64_t v;
    if (byte + 8 <= r->nbytes) {
        v = load_be64(r->p + byte);
    } else {
        uint8_t tmp[8] = {0};
        if (byte < r->nbytes)
            memcpy(tmp, r->p + byte, r->nbytes - byte);
        v = load_be64(tmp);
    }
    return v << (r->pos & 7);
}

/* Read n bits, n <= 56. */
static inline uint64_t get_short(bitr *r, unsigned n)
{
    uint64_t v = peek64(r) >> (63 - n) >> 1;
    r->pos += n;
    return v;
}

static inline uint64_t get_bits(bitr *r, unsigned n)
{
    uint64_t hi = 0;
    if (n > 56) {
        hi = get_short(r, n - 32) << 32;
        n = 32;
    }
    return hi | get_short(r, n);
}

/* Read what put_long wrote; -EINVAL for a length over 64. */
static inline int get_long(bitr *r, uint64_t *x)
{
    unsigned n = (unsigned)get_short(r, LEN_BITS);
    if (n > 64)
        return -EINVAL;
    *x = n ? (UINT64_C(1) << (n - 1)) | get_bits(r, n - 1) : 0;
    return 0;
}

/* Read a Rice code (or escape). Returns 0, 1 for the marker, or -EINVAL. */
static inline int get_rice(bitr *r, unsigned k, uint64_t *z)
{
    /* Leading ones, at most RICE_QMAX; a zero ends a shorter run. */
    uint64_t v = peek64(r);
    unsigned q = (unsigned)__builtin_clzll(~v | (UINT64_C(1) << (63 - RICE_QMAX)));
    if (q < RICE_QMAX && q + 1 + k <= 57) {
        /* The usual case from the one peek (it holds at least 57 bits). */
        r->pos += q + 1 + k;
        *z = ((uint64_t)q << k) | (v << q << 1 >> (63 - k) >> 1);
        return 0;
    }
    if (q < RICE_QMAX) {
        r->pos += q + 1;
        *z = ((uint64_t)q << k) | get_bits(r, k);
        return 0;
    }
    r->pos += RICE_QMAX;
    if (get_long(r, z) < 0)
        return -EINVAL;
    return *z == 0;
}

/* A Rice code that may not be the marker. */
static inline int get_plain(bitr *r, unsigned k, uint64_t *z)
{
    return get_rice(r, k, z) == 0 ? 0 : -EINVAL;
}

/* ---- the shared model -------------------------------------------------- */

/* Rice parameter of field f from the decayed mean of its code lengths. */
static inline unsigned model_k(const tsc__model *m, int f)
{
    unsigned len = (m->mean[f] + (MEAN_BIAS << MEAN_SHIFT)) >> MEAN_SHIFT >> 4;
    len = len > 64 ? 64 : len;
    return len ? len - 1 : 0;
}

/* Trailing zero bits every value residual has had lately. */
static inline unsigned model_shift(const tsc__model *m)
{
    unsigned s = m->tz_lo < m->tz_cur ? m->tz_lo : m->tz_cur;
    return s > 63 ? 63 : s;
}

static inline int model_step_implicit(const tsc__model *m)
{
    return m->step_zeros >= STEP_RUN;
}

/* The value prediction: Newton extrapolation, p_j = diff[0] + ... + diff[j],
 * of the order with the lowest score (ties go to the lower order). */
static inline uint64_t model_predict(const tsc__model *m)
{
    return m->pred;
}

static inline uint32_t decay_add(uint32_t sum, unsigned shift, unsigned x)
{
    return sum - (sum >> shift) + x;
}

/* Start the model after the first point (coded verbatim). */
static void model_first(tsc__model *m, uint64_t step, uint64_t time, uint64_t bits)
{
    unsigned tz = ctz64(bits);
    memset(m, 0, sizeof *m);
    m->step = step;
    m->time = time;
    m->diff[0] = m->pred = bits;
    m->tz_lo = m->tz_cur = (uint8_t)(tz > 63 ? 63 : tz);
}

/* Learn from one coded point: z[] are the three zigzag codes as sent (the
 * value's after the shift), r the value residual before the shift. */
static inline void model_update(tsc__model *m, uint64_t step, uint64_t time, uint64_t bits,
                                const uint64_t z[3], uint64_t r)
{
    uint64_t res = bits, d = bits;
    uint64_t p = 0;
    uint32_t low = UINT32_MAX;
    m->step_delta = step - m->step;
    m->step = step;
    m->time_delta = time - m->time;
    m->time = time;
    m->run = (z[F_STEP] | z[F_TIME] | r) == 0;
    m->step_zeros = z[F_STEP] ? 0 : (uint8_t)(m->step_zeros + (m->step_zeros < 255));
    for (int f = 0; f < 3; f++)
        m->mean[f] = decay_add(m->mean[f], MEAN_SHIFT, bitlen(z[f]) * MEAN_UNIT);
    /* Score every order on this value, then shift the new value into the
     * difference table: res is the residual of order j, d the new diff[j]. */
    for (int j = 0; j < TSC__ORDERS; j++) {
        uint64_t old = m->diff[j];
        res -= old;
        m->score[j] = decay_add(m->score[j], SCORE_SHIFT, bitlen1(zigzag(res)));
        m->diff[j] = d;
        p += d;                 /* the next value by extrapolation of order j */
        if (m->score[j] < low) {
            low = m->score[j];
            m->pred = p;
        }
        d -= old;
    }
    if (r) {
        /* A block min over nonzero residuals: exact points say nothing. */
        unsigned tz = ctz64(r);
        if (tz < m->tz_cur)
            m->tz_cur = (uint8_t)tz;
        if (++m->tz_n == TZ_BLOCK) {
            m->tz_lo = m->tz_cur;
            m->tz_cur = 64;
            m->tz_n = 0;
        }
    }
}

/* ---- encoder ----------------------------------------------------------- */

void tsc_enc_init(tsc_enc *e)
{
    memset(e, 0, sizeof *e);
}

void tsc_enc_free(tsc_enc *e)
{
    if (!e)
        return;
    free(e->buf);
    memset(e, 0, sizeof *e);
}

void tsc_enc_reset(tsc_enc *e)
{
    if (e->buf)
        memset(e->buf, 0, HDR_BYTES + ((e->bitpos + 7) >> 3));
    e->bitpos = 0;
    e->count = 0;
    memset(&e->m, 0, sizeof e->m);
}

/* Make room for one more point, doubling the buffer when needed. Keeps the
 * invariant that every byte past the bit position is zero. */
static int enc_reserve(tsc_enc *e)
{
    size_t need = HDR_BYTES + (e->bitpos >> 3) + POINT_MAX_BYTES, cap = e->cap ? e->cap : 256;
    uint8_t *nb;
    if (need <= e->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    nb = realloc(e->buf, cap);
    if (!nb)
        return -ENOMEM;
    memset(nb + e->cap, 0, cap - e->cap);
    e->buf = nb;
    e->cap = cap;
    return 0;
}

/* First point: step and time zigzag-mapped as longs, the value as the long
 * of its bits without trailing zeros, then (unless 0) the count of those. */
static void enc_first(bitw *w, tsc__model *m, uint64_t step, uint64_t time, uint64_t bits)
{
    unsigned tz = ctz64(bits) & 63;
    put_long(w, zigzag(step));
    put_long(w, zigzag(time));
    put_long(w, bits >> tz);
    if (bits)
        put_short(w, tz, SHIFT_BITS);
    model_first(m, step, time, bits);
}

/* The value residual r: shifted right by the model's floor and Rice-coded;
 * if it has fewer trailing zeros than the floor (float32 data turned
 * float64), the marker, its own shift and the shifted residual as a long.
 * Returns the zigzag code sent. */
static inline uint64_t enc_value(bitw *w, const tsc__model *m, uint64_t r)
{
    unsigned shift = model_shift(m);
    uint64_t z;
    if (ctz64(r) >= shift) {
        z = zigzag(sar(r, shift));
        put_rice(w, z, model_k(m, F_VALUE));
        return z;
    }
    shift = ctz64(r);
    z = zigzag(sar(r, shift));
    put_marker(w);
    put_short(w, shift, SHIFT_BITS);
    put_long(w, z);
    return z;
}

int tsc_enc_append(tsc_enc *e, int64_t step, int64_t time, double value)
{
    tsc__model *m = &e->m;
    uint64_t s = (uint64_t)step, t = (uint64_t)time, bits, r, z[3];
    bitw w;
    int rc;

    if (e->count >= TSC_MAX_POINTS)
        return -ENOSPC;
    if ((rc = enc_reserve(e)) < 0)
        return rc;
    memcpy(&bits, &value, sizeof bits);
    bitw_open(&w, e->buf + HDR_BYTES, e->bitpos);
    if (e->count == 0) {
        enc_first(&w, m, s, t, bits);
        goto done;
    }

    z[F_STEP] = zigzag(s - m->step - m->step_delta);
    z[F_TIME] = zigzag(t - m->time - m->time_delta);
    z[F_VALUE] = 0;
    r = bits - model_predict(m);
    if (m->run) {
        unsigned broken = (z[F_STEP] | z[F_TIME] | r) != 0;
        put_short(&w, broken, 1);
        if (!broken)
            goto update;
    }
    if (!model_step_implicit(m)) {
        put_rice(&w, z[F_STEP], model_k(m, F_STEP));
    } else if (z[F_STEP]) {
        /* The step broke its pattern: say so where the time code begins. */
        put_marker(&w);
        put_rice(&w, z[F_STEP], model_k(m, F_STEP));
    }
    put_rice(&w, z[F_TIME], model_k(m, F_TIME));
    z[F_VALUE] = enc_value(&w, m, r);
update:
    model_update(m, s, t, bits, z, r);
done:
    e->bitpos = bitw_close(&w);
    e->count++;
    return 0;
}

const uint8_t *tsc_enc_bytes(tsc_enc *e, size_t *len)
{
    static const uint8_t empty[HDR_BYTES] = {TSC_VERSION, 0, 0, 0, 0};
    if (!e->buf) {
        *len = HDR_BYTES;
        return empty;
    }
    e->buf[0] = TSC_VERSION;
    e->buf[1] = (uint8_t)e->count;
    e->buf[2] = (uint8_t)(e->count >> 8);
    e->buf[3] = (uint8_t)(e->count >> 16);
    e->buf[4] = (uint8_t)(e->count >> 24);
    /* Pad with ones: no point decodes from 7 one bits (a Rice code needs a
     * zero or 20 ones), so a count too high by any amount is detected. */
    if (e->bitpos & 7)
        e->buf[HDR_BYTES + (e->bitpos >> 3)] |= (uint8_t)(0xffu >> (e->bitpos & 7));
    *len = HDR_BYTES + ((e->bitpos + 7) >> 3);
    return e->buf;
}

/* ---- decoder ----------------------------------------------------------- */

int64_t tsc_blob_count(const uint8_t *blob, size_t len)
{
    uint32_t n;
    if (!blob || len < HDR_BYTES || blob[0] != TSC_VERSION)
        return -EINVAL;
    n = (uint32_t)blob[1] | (uint32_t)blob[2] << 8 | (uint32_t)blob[3] << 16 | (uint32_t)blob[4] << 24;
    if (n > TSC_MAX_POINTS)
        return -EINVAL;
    return n;
}

static int dec_first(bitr *r, tsc__model *m, uint64_t *s, uint64_t *t, uint64_t *bits)
{
    uint64_t zs, zt, v;
    unsigned tz = 0;
    if (get_long(r, &zs) < 0 || get_long(r, &zt) < 0 || get_long(r, &v) < 0)
        return -EINVAL;
    if (v)
        tz = (unsigned)get_short(r, SHIFT_BITS);
    /* Only the canonical form: v odd, and no bits shifted out of the top. */
    if (v && (!(v & 1) || bitlen(v) + tz > 64))
        return -EINVAL;
    *s = unzigzag(zs);
    *t = unzigzag(zt);
    *bits = v << tz;
    model_first(m, *s, *t, *bits);
    return 0;
}

/* The step and time codes of a point (not in an exact run). fbits, when not
 * NULL, receives the bits each took. */
static int dec_step_time(bitr *r, const tsc__model *m, uint64_t z[3], uint64_t *fbits)
{
    size_t at = r->pos, tat;
    int rc;
    if (!model_step_implicit(m) && get_plain(r, model_k(m, F_STEP), &z[F_STEP]) < 0)
        return -EINVAL;
    tat = r->pos;
    if ((rc = get_rice(r, model_k(m, F_TIME), &z[F_TIME])) < 0)
        return -EINVAL;
    if (rc == 1) {
        /* The marker: a step that broke its pattern, then the time. */
        if (!model_step_implicit(m) || get_plain(r, model_k(m, F_STEP), &z[F_STEP]) < 0 || z[F_STEP] == 0)
            return -EINVAL;
        tat = r->pos;
        if (get_plain(r, model_k(m, F_TIME), &z[F_TIME]) < 0)
            return -EINVAL;
    }
    if (fbits) {
        fbits[F_STEP] += tat - at;
        fbits[F_TIME] += r->pos - tat;
    }
    return 0;
}

/* The value code: the residual, shifted back. */
static int dec_value(bitr *r, const tsc__model *m, uint64_t *z, uint64_t *res)
{
    unsigned shift = model_shift(m);
    int rc = get_rice(r, model_k(m, F_VALUE), z);
    if (rc < 0)
        return -EINVAL;
    if (rc == 1) {
        shift = (unsigned)get_short(r, SHIFT_BITS);
        if (get_long(r, z) < 0 || *z == 0)
            return -EINVAL;
    }
    *res = unzigzag(*z) << shift;
    return 0;
}

/* Decode one point after the first; fbits (may be NULL) accumulates the bits
 * each field's code took. */
static int dec_point(bitr *r, tsc__model *m, uint64_t *s, uint64_t *t, uint64_t *bits,
                     uint64_t *fbits)
{
    uint64_t z[3] = {0, 0, 0}, res = 0;
    size_t at;
    if (m->run && get_short(r, 1) == 0)
        goto apply;
    if (dec_step_time(r, m, z, fbits) < 0)
        return -EINVAL;
    at = r->pos;
    if (dec_value(r, m, &z[F_VALUE], &res) < 0)
        return -EINVAL;
    if (fbits)
        fbits[F_VALUE] += r->pos - at;
apply:
    *s = m->step + m->step_delta + unzigzag(z[F_STEP]);
    *t = m->time + m->time_delta + unzigzag(z[F_TIME]);
    *bits = model_predict(m) + res;
    model_update(m, *s, *t, *bits, z, res);
    return 0;
}

/* tsc_decode (max: the blob's count), tsc_decode_prefix, and tsc_blob_bits
 * when fbits is not NULL. */
static int64_t decode(const uint8_t *blob, size_t len, int64_t max, int64_t *steps, int64_t *times,
                      double *values, uint64_t *fbits)
{
    int64_t n = tsc_blob_count(blob, len), all = n;
    tsc__model m;
    bitr r;
    size_t nbits;
    unsigned pad;

    if (n < 0)
        return n;
    if (max < n)
        n = max < 0 ? 0 : max;
    r.p = blob + HDR_BYTES;
    r.nbytes = len - HDR_BYTES;
    r.pos = 0;
    nbits = r.nbytes * 8;
    for (int64_t i = 0; i < n; i++) {
        uint64_t s, t, bits;
        int rc = i == 0 ? dec_first(&r, &m, &s, &t, &bits) : dec_point(&r, &m, &s, &t, &bits, fbits);
        if (rc < 0 || r.pos > nbits)
            return -EINVAL;
        if (steps)
            memcpy(&steps[i], &s, sizeof s);
        if (times)
            memcpy(&times[i], &t, sizeof t);
        if (values)
            memcpy(&values[i], &bits, sizeof bits);
    }
    if (n < all)
        return n;   /* a prefix: the rest of the stream is not read */
    /* Exactly the bytes the points need, padded with one bits. */
    pad = (unsigned)(nbits - r.pos);
    if (pad >= 8 || get_short(&r, pad) != (UINT64_C(1) << pad) - 1)
        return -EINVAL;
    return n;
}

int64_t tsc_decode(const uint8_t *blob, size_t len, int64_t *steps, int64_t *times, double *values)
{
    return decode(blob, len, INT64_MAX, steps, times, values, NULL);
}

int64_t tsc_decode_prefix(const uint8_t *blob, size_t len, int64_t max, int64_t *steps, int64_t *times,
                          double *values)
{
    return decode(blob, len, max, steps, times, values, NULL);
}

int64_t tsc_blob_bits(const uint8_t *blob, size_t len, uint64_t bits[4])
{
    int64_t n;
    bits[0] = bits[1] = bits[2] = 0;
    n = decode(blob, len, INT64_MAX, NULL, NULL, NULL, bits);
    bits[3] = n < 0 ? 0 : len * 8 - bits[0] - bits[1] - bits[2];
    return n;
}
