/* bench_codec.c - compression and speed of the chunk codec (store/codec.c) on
 * real metrics and on a few synthetic series.
 *
 *   zcat /work/shared/data/pytorch-char-transformer-lr3e-2.csv.gz | build/bench/bench_codec
 *
 * Reads a CSV on stdin with the header `step,wall_ns,metric,value`, groups the
 * rows by metric (in order of first appearance) and encodes each series in
 * chunks of TSC_MAX_POINTS, once with time in milliseconds (the store's
 * default unit) and once in nanoseconds, to show what ns resolution costs.
 * Every chunk is decoded and compared bit for bit; a mismatch is fatal.
 * Prints bytes per point and, for the ms encoding, the bits per point spent
 * on each field (tsc_blob_bits). Then synthetic series and the encode and
 * decode speed. Exit status 0, or 1 on a decode mismatch or bad input.
 */
#include "codec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct series {
    char name[64];
    size_t n, cap;
    int64_t *step, *wall_ns, *time;   /* time: scratch for the unit being encoded */
    double *value;
} series;

typedef struct result {
    size_t points, bytes;
    uint64_t bits[4];                 /* step, time, value, rest */
} result;

static double now_ns(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int series_push(series *s, int64_t step, int64_t wall_ns, double value)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        int64_t *a = realloc(s->step, cap * sizeof *a), *b, *c;
        double *d;
        if (!a)
            return -ENOMEM;
        s->step = a;
        if (!(b = realloc(s->wall_ns, cap * sizeof *b)))
            return -ENOMEM;
        s->wall_ns = b;
        if (!(c = realloc(s->time, cap * sizeof *c)))
            return -ENOMEM;
        s->time = c;
        if (!(d = realloc(s->value, cap * sizeof *d)))
            return -ENOMEM;
        s->value = d;
        s->cap = cap;
    }
    s->step[s->n] = step;
    s->wall_ns[s->n] = wall_ns;
    s->value[s->n] = value;
    s->n++;
    return 0;
}

static void series_free(series *s)
{
    free(s->step);
    free(s->wall_ns);
    free(s->time);
    free(s->value);
}

/* Read the CSV into at most max series; returns the count or -1. */
static int read_csv(FILE *f, series *all, int max)
{
    char line[512];
    int n = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "step,wall_ns,metric,value", 25) != 0) {
        fprintf(stderr, "bench_codec: expected the header step,wall_ns,metric,value on stdin\n");
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line, *end, *name;
        int64_t step, wall;
        double v;
        int i;
        step = strtoll(p, &end, 10);
        if (*end != ',')
            goto bad;
        wall = strtoll(end + 1, &end, 10);
        if (*end != ',')
            goto bad;
        name = end + 1;
        if (!(end = strchr(name, ',')))
            goto bad;
        *end = '\0';
        v = strtod(end + 1, &p);
        if (p == end + 1)
            goto bad;
        for (i = 0; i < n && strcmp(all[i].name, name) != 0; i++)
            ;
        if (i == n) {
            if (n == max || strlen(name) >= sizeof all[i].name)
                goto bad;
            snprintf(all[n++].name, sizeof all[i].name, "%s", name);
        }
        if (series_push(&all[i], step, wall, v) < 0)
            goto bad;
    }
    return n;
bad:
    fprintf(stderr, "bench_codec: bad or unsupported line: %s", line);
    return -1;
}

static int same_bits(double a, double b)
{
    uint64_t x, y;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    return x == y;
}

/* Encode s (step, time, value) in chunks, check each decodes exactly, and
 * add sizes and the field split to *res. Returns 0 or -1 on a mismatch. */
static int encode_series(const series *s, result *res)
{
    static int64_t st[TSC_MAX_POINTS], tm[TSC_MAX_POINTS];
    static double val[TSC_MAX_POINTS];
    tsc_enc e;
    int rc = 0;

    tsc_enc_init(&e);
    for (size_t base = 0; base < s->n; base += TSC_MAX_POINTS) {
        size_t cnt = s->n - base < TSC_MAX_POINTS ? s->n - base : TSC_MAX_POINTS, len;
        const uint8_t *blob;
        uint64_t bits[4];
        tsc_enc_reset(&e);
        for (size_t i = 0; i < cnt; i++)
            if (tsc_enc_append(&e, s->step[base + i], s->time[base + i], s->value[base + i]) < 0)
                goto fail;
        blob = tsc_enc_bytes(&e, &len);
        if (tsc_decode(blob, len, st, tm, val) != (int64_t)cnt || tsc_blob_bits(blob, len, bits) != (int64_t)cnt)
            goto fail;
        for (size_t i = 0; i < cnt; i++)
            if (st[i] != s->step[base + i] || tm[i] != s->time[base + i] || !same_bits(val[i], s->value[base + i]))
                goto fail;
        res->points += cnt;
        res->bytes += len;
        for (int f = 0; f < 4; f++)
            res->bits[f] += bits[f];
    }
    goto done;
fail:
    fprintf(stderr, "bench_codec: %s does not round-trip\n", s->name);
    rc = -1;
done:
    tsc_enc_free(&e);
    return rc;
}

static void print_row(const char *name, const result *ms, const result *ns)
{
    double n = (double)ms->points;
    printf("%-30s %7zu %8.3f %8.3f %7.2f %7.2f %7.2f %7.2f\n", name, ms->points, ms->bytes / n,
           ns->bytes / n, ms->bits[0] / n, ms->bits[1] / n, ms->bits[2] / n, ms->bits[3] / n);
}

static void result_add(result *sum, const result *r)
{
    sum->points += r->points;
    sum->bytes += r->bytes;
    for (int f = 0; f < 4; f++)
        sum->bits[f] += r->bits[f];
}

/* One table row: ms encoding with its field split, and the ns size; both
 * also added to the totals when they are not NULL. */
static int report(series *s, result *tot_ms, result *tot_ns)
{
    result ms = {0}, ns = {0};
    for (size_t i = 0; i < s->n; i++)
        s->time[i] = s->wall_ns[i] / 1000000;
    if (encode_series(s, &ms) < 0)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        s->time[i] = s->wall_ns[i];
    if (encode_series(s, &ns) < 0)
        return -1;
    print_row(s->name, &ms, &ns);
    if (tot_ms) {
        result_add(tot_ms, &ms);
        result_add(tot_ns, &ns);
    }
    return 0;
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

/* Synthetic series of n points, steps 0.., 205 ms apart (wall_ns), with a
 * time jitter of +-jitter_ms and values from kind. */
enum { SYN_CONSTANT, SYN_COUNTER, SYN_F32_LOSS };

static int synth(series *s, const char *name, int kind, size_t n, int jitter_ms)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    for (size_t i = 0; i < n; i++) {
        int64_t jit = jitter_ms ? (int64_t)(xorshift(&x) % (2 * (uint64_t)jitter_ms + 1)) - jitter_ms : 0;
        int64_t wall = INT64_C(1795475919994946031) + (int64_t)i * 205000000 + jit * 1000000;
        double v = kind == SYN_CONSTANT ? 0.5
                   : kind == SYN_COUNTER ? (double)i
                   : (double)(float)(4.0 * exp(-(double)i / 800.0) + 1.2 + 0.05 * uniform(&x));
        if (series_push(s, (int64_t)i, wall, v) < 0)
            return -1;
    }
    return 0;
}

/* Encode the series reps times; returns ns per point. */
static double encode_speed(const series *s, int reps)
{
    tsc_enc e;
    double t0, t1;
    size_t len, total = 0;
    tsc_enc_init(&e);
    t0 = now_ns();
    for (int r = 0; r < reps; r++) {
        tsc_enc_reset(&e);
        for (size_t i = 0; i < s->n && i < TSC_MAX_POINTS; i++)
            tsc_enc_append(&e, s->step[i], s->time[i], s->value[i]);
        total += tsc_enc_bytes(&e, &len)[0] + len;   /* keep the work observable */
    }
    t1 = now_ns();
    tsc_enc_free(&e);
    return total ? (t1 - t0) / ((double)reps * (double)(s->n < TSC_MAX_POINTS ? s->n : TSC_MAX_POINTS)) : 0;
}

static double decode_speed(const series *s, int reps)
{
    static int64_t st[TSC_MAX_POINTS], tm[TSC_MAX_POINTS];
    static double val[TSC_MAX_POINTS];
    tsc_enc e;
    const uint8_t *blob;
    size_t len, n = s->n < TSC_MAX_POINTS ? s->n : TSC_MAX_POINTS;
    double t0, t1;
    int64_t sum = 0;
    tsc_enc_init(&e);
    for (size_t i = 0; i < n; i++)
        tsc_enc_append(&e, s->step[i], s->time[i], s->value[i]);
    blob = tsc_enc_bytes(&e, &len);
    t0 = now_ns();
    for (int r = 0; r < reps; r++)
        sum += tsc_decode(blob, len, st, tm, val);
    t1 = now_ns();
    tsc_enc_free(&e);
    return sum ? (t1 - t0) / ((double)reps * (double)n) : 0;
}

int main(void)
{
    enum { MAX_SERIES = 64 };
    static series all[MAX_SERIES], syn[3];
    static const char *syn_names[3] = {"syn/constant (regular time)", "syn/counter (regular time)",
                                       "syn/f32 loss (205+-2 ms)"};
    series *loss = NULL;
    result tot_ms = {0}, tot_ns = {0};
    int n, rc = 1;

    n = read_csv(stdin, all, MAX_SERIES);
    if (n < 0)
        goto out;
    printf("%-30s %7s %8s %8s %7s %7s %7s %7s\n", "series", "points", "B/pt ms", "B/pt ns",
           "step b", "time b", "value b", "other b");
    printf("%-30s %7s %8s %8s %7s %7s %7s %7s\n", "", "", "", "", "(ms)", "(ms)", "(ms)", "(ms)");
    for (int i = 0; i < n; i++) {
        if (report(&all[i], &tot_ms, &tot_ns) < 0)
            goto out;
        if (!strcmp(all[i].name, "train/loss"))
            loss = &all[i];
    }
    if (n > 0)
        print_row("all of the above", &tot_ms, &tot_ns);
    printf("\n");
    for (int i = 0; i < 3; i++) {
        if (synth(&syn[i], syn_names[i], i, 2500, i == SYN_F32_LOSS ? 2 : 0) < 0 || report(&syn[i], NULL, NULL) < 0)
            goto out;
    }
    if (!loss)
        loss = &syn[SYN_F32_LOSS];
    for (size_t i = 0; i < loss->n; i++)
        loss->time[i] = loss->wall_ns[i] / 1000000;
    /* Many short trials, keeping the best: on a shared machine the best
     * one is the one nothing else disturbed. */
    printf("\nspeed on %s (%zu points, time in ms), best of 40 trials:\n", loss->name, loss->n);
    {
        double enc = 1e30, dec = 1e30;
        for (int i = 0; i < 40; i++) {
            double a = encode_speed(loss, 50), b = decode_speed(loss, 50);
            enc = a < enc ? a : enc;
            dec = b < dec ? b : dec;
        }
        printf("  encode %.1f ns/point, decode %.1f ns/point\n", enc, dec);
    }
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        series_free(&all[i]);
    for (int i = 0; i < 3; i++)
        series_free(&syn[i]);
    return rc;
}
