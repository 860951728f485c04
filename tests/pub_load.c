/* pub_load.c - a test publisher: logs a known set of points through
 * libtrainscope and writes the truth (what it logged, bit for bit) to a file
 * so that a test can compare the store against it.
 *
 *   pub_load --endpoint EP --run NAME [--rank R --world W] [--steps N]
 *            [--metrics M] [--seed S] [--step-from K] [--sleep-us U]
 *            [--truth FILE] [--timeout-ms T] [--ring SAMPLES]
 *
 * Values come from a seeded xorshift and include the awkward ones (NaN with
 * payloads, +-Inf, -0.0, subnormals, float32 noise). Exit 0 when every point
 * was acknowledged as durable within the timeout, 1 otherwise.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trainscope.h"

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Mostly a noisy float32 curve, now and then a value that codecs get wrong. */
static double next_value(uint64_t *rng, int64_t step)
{
    uint64_t r = xorshift(rng);
    switch (r % 64) {
    case 0: return bits_double(0x7ff8000000000000ull | (r >> 20));  /* NaN with payload */
    case 1: return bits_double(0xfff0000000000001ull);               /* negative signalling NaN */
    case 2: return (r & 64) ? INFINITY : -INFINITY;
    case 3: return -0.0;
    case 4: return bits_double(r >> 13);                             /* subnormal */
    case 5: return bits_double(r);                                   /* any bits at all */
    default: {
        float noise = (float)((double)(r >> 11) / 9007199254740992.0);
        return (double)(float)(3.0 * exp(-(double)step / 5000.0) + 0.1 * noise);
    }
    }
}

static int write_truth_value(FILE *f, int64_t step, const char *metric, double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return fprintf(f, "%" PRId64 ",%s,%016" PRIx64 "\n", step, metric, b) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    ts_options o = ts_options_default();
    long steps = 1000, metrics = 2, sleep_us = 0, timeout_ms = 60000;
    long long step_from = 0;
    uint64_t seed = 1;
    const char *truth_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--endpoint")) o.endpoint = v;
        else if (!strcmp(k, "--run")) o.run = v;
        else if (!strcmp(k, "--rank")) o.rank = atoi(v);
        else if (!strcmp(k, "--world")) o.world_size = atoi(v);
        else if (!strcmp(k, "--steps")) steps = atol(v);
        else if (!strcmp(k, "--metrics")) metrics = atol(v);
        else if (!strcmp(k, "--seed")) seed = strtoull(v, NULL, 10) * 2654435761u + 1;
        else if (!strcmp(k, "--step-from")) step_from = atoll(v);
        else if (!strcmp(k, "--sleep-us")) sleep_us = atol(v);
        else if (!strcmp(k, "--truth")) truth_path = v;
        else if (!strcmp(k, "--timeout-ms")) timeout_ms = atol(v);
        else if (!strcmp(k, "--ring")) o.ring_samples = (size_t)atol(v);
        else {
            fprintf(stderr, "pub_load: unknown option %s\n", k);
            return 2;
        }
    }
    if (metrics < 1 || metrics > 64) {
        fprintf(stderr, "pub_load: --metrics must be 1..64\n");
        return 2;
    }
    o.config_json = "{\"test\":\"pub_load\",\"lr\":0.001}";
    FILE *truth = truth_path ? fopen(truth_path, "w") : NULL;
    if (truth_path && !truth) {
        perror(truth_path);
        return 1;
    }
    ts_run *run = NULL;
    int rc = ts_open(&run, &o);
    if (rc < 0) {
        fprintf(stderr, "pub_load: ts_open: %s\n", ts_strerror(rc));
        return 1;
    }
    int ids[64];
    char names[64][32];
    for (long m = 0; m < metrics; m++) {
        snprintf(names[m], sizeof names[m], "load/m%ld", m);
        ids[m] = ts_metric(run, names[m]);
    }
    uint64_t rng = seed;
    long dropped = 0;
    for (long s = 0; s < steps; s++) {
        int64_t step = step_from + s;
        for (long m = 0; m < metrics; m++) {
            double v = next_value(&rng, step);
            if (ts_log_id(run, ids[m], step, v) == TS_EDROPPED)
                dropped++;
            else if (truth && write_truth_value(truth, step, names[m], v) < 0)
                return 1;
        }
        if (sleep_us)
            usleep((useconds_t)sleep_us);
    }
    rc = ts_close(run, (int)timeout_ms);
    if (truth)
        fclose(truth);
    fprintf(stderr, "pub_load %s rank %d: %ld steps x %ld metrics, dropped %ld, close: %s\n", o.run,
            o.rank, steps, metrics, dropped, ts_strerror(rc));
    return rc == 0 ? 0 : 1;
}
