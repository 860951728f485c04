/* bench_query.c - read latency of the store: a raw range of 1M points
 * (tss_read_points) and a 2000-bucket M4 reduction (tss_read_buckets) of a
 * whole 100M-point series.
 *
 *   bench_query [--points N] [--range R] [--buckets B] [--reps K] [--dir D]
 *
 * Builds a store of one series of N points (default 100M) in D (default
 * /tmp) through the store API (tss_append, a commit every 1M points), the way
 * the collector writes it: steps 0..N-1, times 200 ms apart with +-10 ms of
 * jitter, values a float32 loss curve with 3% noise (so the chunks are as
 * large as a real noisy metric's, about 3.4 bytes per point). Then opens it
 * as a reader, as the CLI and the viewer do, and times K queries of each
 * kind (range reads at K different offsets, spread over the series); prints
 * the median and the p99 (for K < 100 the p99 is the slowest), and for the
 * reduction how many chunks a bucket edge cuts (those are folded from
 * their groups when the edge falls between two, else decoded up to the last
 * group an edge cuts; the others
 * from their summaries), the same number of buckets of a power-of-two width
 * at multiples of it (the viewer's columns: groups only, no decode), and what
 * one bucket, all summaries,
 * costs. The file is deleted at the end, also on failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "bench_util.h"

/* xorshift64*: a fixed, fast pseudo-random stream so every run builds the same store. */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_u64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
}
static double uniform(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }

static int build(const char *path, int64_t points)
{
    tss_store *st;
    int64_t sid;
    int rc = bench_store_series("bench_query", path, "query", "train/loss", &st, &sid);
    if (rc < 0)
        return rc;
    int64_t t0 = 1700000000000000000LL;
    for (int64_t s = 0; rc >= 0 && s < points; s++) {
        double trend = 0.3 + 2.2 * exp(-(double)s / ((double)points / 4));
        float v = (float)(trend * (1.0 + 0.03 * (uniform() + uniform() + uniform() - 1.5)));
        int64_t t = t0 + s * 200000000 + (int64_t)((uniform() - 0.5) * 20e6);
        rc = tss_append(st, sid, s, t, v);
        if (rc >= 0 && (s + 1) % 1000000 == 0)
            rc = tss_commit(st);
    }
    if (rc < 0)
        fprintf(stderr, "bench_query: building the store: %s\n", tss_errmsg(st));
    int rc2 = tss_close(st);
    return rc < 0 ? rc : rc2;
}

static void report(const char *what, double *ms, int reps, const char *extra)
{
    qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
    int p99 = reps * 99 / 100;
    printf("%-34s median %8.2f ms  p99 %8.2f ms  (%d queries%s)\n", what, ms[reps / 2],
           ms[p99 < reps ? p99 : reps - 1], reps, extra);
}

int main(int argc, char **argv)
{
    int64_t points = 100000000, range = 1000000;
    int buckets = 2000, reps = 20;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--points")) points = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--range")) range = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--buckets")) buckets = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_query [--points N] [--range R] [--buckets B] [--reps K] [--dir D]\n");
            return 2;
        }
    }
    if (points < 1 || range < 1 || range > points || buckets < 1 || reps < 1 || reps > 10000) {
        fprintf(stderr, "bench_query: bad arguments\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/trainscope-bench-query-%ld.db", dir, (long)getpid());

    double t = (bench_now_s() * 1e3);
    int rc = build(path, points);
    double build_s = ((bench_now_s() * 1e3) - t) / 1e3;
    struct stat sb;
    if (rc == 0 && stat(path, &sb) == 0)
        printf("store: %" PRId64 " points of one series written through tss_append in %.1f s "
               "(%.2f M points/s), file %.1f MB = %.2f bytes/point\n",
               points, build_s, (double)points / build_s / 1e6, (double)sb.st_size / 1e6,
               (double)sb.st_size / (double)points);

    tss_store *st = NULL;
    char err[512];
    if (rc == 0 && (rc = tss_open(&st, path, NULL, err, sizeof err)) < 0)
        fprintf(stderr, "bench_query: %s\n", err);
    double *ms = calloc((size_t)reps, sizeof *ms);
    tss_bucket *out = calloc((size_t)buckets, sizeof *out);
    if (rc == 0 && (!ms || !out))
        rc = -ENOMEM;

    size_t got = 0;
    for (int i = 0; rc == 0 && i < reps; i++) {
        /* Offsets spread over the series, not aligned to chunk edges. */
        int64_t from = reps > 1 ? (points - range) / (reps - 1) * i : 0;
        tss_point *pts;
        t = (bench_now_s() * 1e3);
        rc = tss_read_points(st, 1, from, from + range - 1, 0, &pts, &got);
        ms[i] = (bench_now_s() * 1e3) - t;
        if (rc == 0 && got != (size_t)range) {
            fprintf(stderr, "bench_query: read %zu points, expected %" PRId64 "\n", got, range);
            rc = -EIO;
        }
        free(pts);
    }
    if (rc == 0) {
        char what[64], extra[64];
        snprintf(what, sizeof what, "raw range of %" PRId64 " points", range);
        qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
        snprintf(extra, sizeof extra, ", %.1f ns/point at the median", ms[reps / 2] * 1e6 / (double)range);
        report(what, ms, reps, extra);
    }

    int64_t counted = 0;
    for (int i = 0; rc == 0 && i < reps; i++) {
        t = (bench_now_s() * 1e3);
        rc = tss_read_buckets(st, 1, 0, points - 1, (size_t)buckets, out);
        ms[i] = (bench_now_s() * 1e3) - t;
        counted = 0;
        for (int b = 0; b < buckets; b++)
            counted += out[b].count;
        if (rc == 0 && counted != points) {
            fprintf(stderr, "bench_query: buckets hold %" PRId64 " points, expected %" PRId64 "\n",
                    counted, points);
            rc = -EIO;
        }
    }
    if (rc == 0) {
        /* The reducer folds a chunk from its row's summary unless a bucket
         * edge cuts it; those it decodes. Count them the same way. */
        __extension__ typedef unsigned __int128 u128;
        int64_t chunks = (points + 4095) / 4096, cut = 0, decoded = 0;
        for (int64_t c = 0; c < chunks; c++) {
            int64_t a = c * 4096, z = a + 4095 < points ? a + 4095 : points - 1;
            if ((u128)a * (u128)buckets / (u128)points == (u128)z * (u128)buckets / (u128)points)
                continue;
            cut++;
            /* the chunk's 32 groups of 128 steps: decoded when an edge cuts one */
            for (int64_t g = a; g <= z; g += 128) {
                int64_t ge = g + 127 < z ? g + 127 : z;
                if ((u128)g * (u128)buckets / (u128)points != (u128)ge * (u128)buckets / (u128)points) {
                    decoded++;
                    break;
                }
            }
        }
        char what[64], extra[160];
        snprintf(what, sizeof what, "%d M4 buckets of %" PRId64 " points", buckets, points);
        snprintf(extra, sizeof extra, "; %" PRId64 " of %" PRId64 " chunks cut by a bucket edge, %" PRId64
                 " decoded up to the group an edge cuts", cut, chunks, decoded);
        report(what, ms, reps, extra);
    }
    /* The same number of buckets with power-of-two widths at multiples of
     * the width, as the viewer's columns (tvm_align_range): every edge falls
     * between two groups (format 2), so nothing is decoded. */
    int64_t w = 1;
    while (w < INT64_MAX / 2 && w * buckets < points)
        w *= 2;
    for (int i = 0; rc == 0 && i < reps; i++) {
        t = (bench_now_s() * 1e3);
        rc = tss_read_buckets(st, 1, 0, w * buckets - 1, (size_t)buckets, out);
        ms[i] = (bench_now_s() * 1e3) - t;
        counted = 0;
        for (int b = 0; b < buckets; b++)
            counted += out[b].count;
        if (rc == 0 && counted != points)
            rc = -EIO;
    }
    if (rc == 0) {
        char what[64], extra[64];
        snprintf(what, sizeof what, "%d M4 buckets of 2^%d steps", buckets, __builtin_ctzll((unsigned long long)w));
        snprintf(extra, sizeof extra, "; edges at multiples of %" PRId64 ", over all points", w);
        report(what, ms, reps, extra);
    }
    /* One bucket: every chunk folded from its summary, nothing decoded: the
     * part of the reduction that is O(chunks). */
    for (int i = 0; rc == 0 && i < reps; i++) {
        t = (bench_now_s() * 1e3);
        rc = tss_read_buckets(st, 1, 0, points - 1, 1, out);
        ms[i] = (bench_now_s() * 1e3) - t;
        if (rc == 0 && out[0].count != points)
            rc = -EIO;
    }
    if (rc == 0)
        report("1 bucket (summaries only)", ms, reps, "");
    if (rc < 0 && st)
        fprintf(stderr, "bench_query: %s\n", tss_errmsg(st));

    tss_close(st);
    free(ms);
    free(out);
    bench_unlink_db(path);
    return rc == 0 ? 0 : 1;
}
