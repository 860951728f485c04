/* codec.h - the time-series chunk codec: lossless, bit-exact compression of
 * (step, time, value) points, one chunk per series at a time.
 *
 * Steps and times are int64 (time in the store's unit, see store.h), values
 * are float64 and come back with the same 64 bits, NaN payloads, -0.0, +-Inf
 * and subnormals included. The encoder is incremental: the collector appends
 * points as they arrive and can take a snapshot of the bytes at any moment
 * (the open chunk is rewritten on every commit), then keep appending.
 *
 * Format: see docs/codec.md. A blob starts with a one-byte codec
 * version and the point count, so a truncated or corrupt blob is detected by
 * the decoder and reported, never trusted.
 *
 * Errors: 0 or a negative errno-style code (-ENOMEM, -EINVAL for corrupt input).
 */
#ifndef TRAINSCOPE_CODEC_H
#define TRAINSCOPE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define TSC_VERSION 1
#define TSC_MAX_POINTS 4096  /* a chunk holds at most this many points */

/* The adaptive model the encoder and the decoder both run, point by point, so
 * the decoder learns the same coding parameters without side information.
 * Private: see codec.c and docs/codec.md. Steps, times and values are kept as
 * uint64 so that every delta wraps instead of overflowing. */
#define TSC__ORDERS 5     /* value predictors: extrapolation of order 0..4 */

typedef struct tsc__model {
    uint64_t step, step_delta;  /* last step and last step delta */
    uint64_t time, time_delta;  /* same for time */
    uint64_t diff[TSC__ORDERS]; /* value bits: last one, then its backward differences */
    uint64_t pred;              /* the next value's prediction: by the order with the lowest score */
    uint32_t score[TSC__ORDERS];/* decayed residual bit lengths of each predictor order */
    uint32_t mean[3];           /* decayed bit-length sums of the step, time and value codes */
    uint8_t tz_lo, tz_cur, tz_n;/* trailing-zero floor of value residuals: last and current block */
    uint8_t step_zeros;         /* consecutive exact steps (saturating): steps implicit from 16 */
    uint8_t run;                /* the last point was predicted exactly (run mode) */

} tsc__model;

typedef struct tsc_enc {
    uint8_t *buf;            /* owned; grows by doubling; zero past the last byte in use */
    size_t cap;              /* bytes allocated */
    /* encoder state: private, see codec.c */
    size_t bitpos;           /* bits written after the header */
    uint32_t count;          /* points appended */
    tsc__model m;
} tsc_enc;

/* Start an empty encoder; does not allocate until the first append. */
void tsc_enc_init(tsc_enc *e);
/* Free the buffer. NULL-safe; the encoder may be re-initialised after. */
void tsc_enc_free(tsc_enc *e);
/* Forget every point but keep the buffer. */
void tsc_enc_reset(tsc_enc *e);
/* Append one point. Returns 0, -ENOSPC when the chunk already holds
 * TSC_MAX_POINTS, or -ENOMEM. No allocation unless the buffer must grow. */
int tsc_enc_append(tsc_enc *e, int64_t step, int64_t time, double value);
static inline uint32_t tsc_enc_count(const tsc_enc *e) { return e->count; }
/* A complete blob of the points so far (valid until the next append or
 * reset). Cheap: patches the header in place, copies nothing. */
const uint8_t *tsc_enc_bytes(tsc_enc *e, size_t *len);

/* The number of points a blob says it holds, or a negative error. */
int64_t tsc_blob_count(const uint8_t *blob, size_t len);
/* Decode a whole blob into arrays of at least tsc_blob_count() entries (any
 * array may be NULL when not wanted). Returns the count or -EINVAL. */
int64_t tsc_decode(const uint8_t *blob, size_t len, int64_t *steps, int64_t *times, double *values);
/* The first min(max, count) points only (the codec is sequential: the cost
 * is that of the points decoded). Checks what it reads; the bits after the
 * prefix are not read, so a damage there goes unnoticed. Returns the number
 * decoded or -EINVAL. */
int64_t tsc_decode_prefix(const uint8_t *blob, size_t len, int64_t max, int64_t *steps, int64_t *times,
                          double *values);
/* For tools (bench_codec): decode a blob only to tell where its bits went:
 * bits[0], [1], [2] = the step, time and value codes of every point but the
 * first, bits[3] = the rest (header, first point, run-mode flags, padding).
 * Returns the count or -EINVAL. */
int64_t tsc_blob_bits(const uint8_t *blob, size_t len, uint64_t bits[4]);

#endif
