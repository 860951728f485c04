/* bench_viewer_model.c - what one viewer frame costs in the data model
 * (viewer/model/): exact M4 columns for every series of a big store.
 *
 *   build/bench/bench_viewer_model [POINTS_PER_SERIES [RUNS [METRICS]]]
 *
 * Default 10000000 points x 8 runs x 8 metrics = 640 M points (issue 4's
 * panning target). Writes the store under /tmp through the store writer API
 * (as the collector does; deleted at the end, also on failure), then:
 *   - open: tvm_open (runs, series, every chunk summary);
 *   - first frame: columns of all series over their whole extent, 1600
 *     columns, range from tvm_align_range; time-to-first-columns = both;
 *   - pan: at four zoom levels (whole extent, 1/16, 1/256, 1/4096 of it)
 *     60 frames dragging right by 10 columns, 60 back, all series per frame;
 *   - zoom: 12 frames zooming in by 2x around the middle, 12 back out.
 * Prints the per-frame time p50/p99/max of each script, the resident memory
 * (VmRSS) after open and at the end, and the store size.
 *
 * Knobs: TS_BENCH_KEEP=path keeps (or reuses, when it exists) the store
 * there instead of a temporary one, for repeated runs.
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

#include "model.h"
#include "store.h"

#define NCOLS 1600
#define PAN_FRAMES 60
#define PAN_COLS 10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1.0p-53;
}

/* A loss-like curve with noise, a few spikes and, for one metric, NaNs. */
static int write_store(const char *path, int64_t npts, int nruns, int nmetrics)
{
    tss_open_opts wo = {.writer = 1};
    tss_store *st;
    char err[512], name[64];
    int64_t *sid = calloc((size_t)nruns * nmetrics, sizeof *sid), t0 = 1700000000000000000ll;
    double t = now_s();
    int rc = tss_open(&st, path, &wo, err, sizeof err);

    if (rc < 0 || !sid) {
        fprintf(stderr, "bench_viewer_model: %s\n", rc < 0 ? err : "out of memory");
        free(sid);
        return -1;
    }
    for (int r = 0; r < nruns && rc >= 0; r++) {
        int64_t run;
        snprintf(name, sizeof name, "run%d", r);
        rc = tss_run_open(st, "bench", name, NULL, 1, t0, &run);
        for (int m = 0; m < nmetrics && rc >= 0; m++) {
            snprintf(name, sizeof name, "%s/m%d", m < nmetrics / 2 ? "train" : "grad_norm", m);
            rc = tss_series_open(st, run, 0, name, &sid[r * nmetrics + m]);
        }
    }
    for (int64_t i = 0; i < npts && rc >= 0; i++) {
        int64_t tns = t0 + i * 10000000 + (int64_t)(urand() * 1000000);
        for (int k = 0; k < nruns * nmetrics && rc >= 0; k++) {
            double v = (2.0 + k * 0.1) * exp(-(double)i / (double)npts * 3.0) + 0.05 * urand();
            if (urand() < 1e-6)
                v *= 100;
            if (k == 1 && i % 100000 == 7)
                v = NAN;
            rc = tss_append(st, sid[k], i, tns, v);
        }
        if (i % 50000 == 49999)
            rc = rc < 0 ? rc : tss_commit(st);
        if (i % 1000000 == 999999)
            fprintf(stderr, "  written %" PRId64 " M points per series (%.0f s)\n", (i + 1) / 1000000,
                    now_s() - t);
    }
    if (rc < 0)
        fprintf(stderr, "bench_viewer_model: write: %s\n", tss_errmsg(st));
    rc = tss_close(st) < 0 ? -1 : rc < 0 ? -1 : 0;
    free(sid);
    fprintf(stderr, "  wrote %" PRId64 " points in %.1f s\n", npts * nruns * nmetrics, now_s() - t);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, size_t n)
{
    if (n == 0)
        return;
    qsort(ms, n, sizeof *ms, cmp_double);
    printf("%-34s frames %4zu  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", what, n, ms[n / 2],
           ms[(size_t)ceil(0.99 * (double)n) - 1], ms[n - 1]);
}

/* One frame: columns of every series over [from, to]. ms of wall time, <0 on error. */
static double frame(tvm_source *src, int64_t from, int64_t to, tss_bucket *cols, int64_t *points)
{
    double t = now_s();

    for (size_t i = 0; i < tvm_series_count(src); i++) {
        if (tvm_columns(src, i, from, to, NCOLS, TVM_X_STEP, cols) < 0) {
            fprintf(stderr, "bench_viewer_model: %s\n", tvm_errmsg(src));
            return -1;
        }
        for (size_t b = 0; points && b < NCOLS; b++)
            *points += cols[b].count;
    }
    return (now_s() - t) * 1e3;
}

int main(int argc, char **argv)
{
    int64_t npts = argc > 1 ? strtoll(argv[1], NULL, 10) : 10000000;
    int nruns = argc > 2 ? atoi(argv[2]) : 8, nmetrics = argc > 3 ? atoi(argv[3]) : 8;
    const char *keep = getenv("TS_BENCH_KEEP");
    char path[256], err[512];
    tss_bucket cols[NCOLS];
    double ms[2 * PAN_FRAMES * 4], t_open, t_first, f;
    tvm_source *src = NULL;
    int64_t lo, hi, from, to, w, points = 0;
    struct stat sb;
    int status = 1;
    size_t n;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* results as they come, also into a file */
    if (npts < 1 || nruns < 1 || nmetrics < 1) {
        fprintf(stderr, "usage: bench_viewer_model [POINTS_PER_SERIES [RUNS [METRICS]]]\n");
        return 2;
    }
    if (keep)
        snprintf(path, sizeof path, "%s", keep);
    else
        snprintf(path, sizeof path, "/tmp/bench_viewer_model.%d.db", (int)getpid());
    if (!keep || stat(path, &sb) != 0) {
        fprintf(stderr, "writing %s: %d runs x %d metrics x %" PRId64 " points\n", path, nruns, nmetrics, npts);
        if (write_store(path, npts, nruns, nmetrics) < 0)
            goto out;
    }
    stat(path, &sb);
    printf("store %s: %.1f MB, %d x %d series x %" PRId64 " points = %.0f M points\n", path,
           (double)sb.st_size / 1e6, nruns, nmetrics, npts, (double)npts * nruns * nmetrics / 1e6);

    t_open = now_s();
    if (tvm_open(&src, path, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "bench_viewer_model: %s\n", err);
        goto out;
    }
    t_open = (now_s() - t_open) * 1e3;
    lo = tvm_series_at(src, 0)->step_first;
    hi = tvm_series_at(src, 0)->step_last;
    tvm_align_range(lo, hi, NCOLS, &from, &to);
    t_first = frame(src, from, to, cols, &points);
    if (t_first < 0)
        goto out;
    printf("open %.1f ms, first frame %.1f ms (%" PRId64 " points in columns), time to first columns %.1f ms, "
           "RSS %ld KiB\n", t_open, t_first, points, t_open + t_first, rss_kib());

    /* pan at four zoom levels */
    for (int z = 0; z < 4; z++) {
        int64_t span = (hi - lo + 1) >> (4 * z);
        char what[64];
        if (span < NCOLS)
            break;
        tvm_align_range(lo + (hi - lo) / 3, lo + (hi - lo) / 3 + span - 1, NCOLS, &from, &to);
        w = (to - from + 1) / NCOLS;
        if (frame(src, from, to, cols, NULL) < 0)     /* arriving at this zoom */
            goto out;
        n = 0;
        for (int k = 0; k < 2 * PAN_FRAMES; k++) {
            int64_t d = (k < PAN_FRAMES ? 1 : -1) * PAN_COLS * w;
            from += d;
            to += d;
            if ((f = frame(src, from, to, cols, NULL)) < 0)
                goto out;
            ms[n++] = f;
        }
        snprintf(what, sizeof what, "pan, %" PRId64 " steps/column", w);
        report(what, ms, n);
    }

    /* zoom in and out by 2x per frame around the middle */
    n = 0;
    {
        int64_t mid = lo + (hi - lo) / 2, span = hi - lo + 1;
        for (int k = 0; k < 24; k++) {
            int64_t s = k < 12 ? span >> (k + 1) : span >> (23 - k);
            if (s < NCOLS)
                s = NCOLS;
            tvm_align_range(mid - s / 2, mid + s / 2, NCOLS, &from, &to);
            if ((f = frame(src, from, to, cols, NULL)) < 0)
                goto out;
            ms[n++] = f;
        }
        report("zoom 2x per frame, in then out", ms, n);
    }
    /* the same zoom script again: levels seen before */
    n = 0;
    {
        int64_t mid = lo + (hi - lo) / 2, span = hi - lo + 1;
        for (int k = 0; k < 24; k++) {
            int64_t s = k < 12 ? span >> (k + 1) : span >> (23 - k);
            if (s < NCOLS)
                s = NCOLS;
            tvm_align_range(mid - s / 2, mid + s / 2, NCOLS, &from, &to);
            if ((f = frame(src, from, to, cols, NULL)) < 0)
                goto out;
            ms[n++] = f;
        }
        report("zoom again (decoded chunks cached)", ms, n);
    }
    printf("RSS at the end %ld KiB\n", rss_kib());
    status = 0;
out:
    tvm_close(src);
    if (!keep) {
        char aux[300];
        unlink(path);
        snprintf(aux, sizeof aux, "%s-wal", path);
        unlink(aux);
        snprintf(aux, sizeof aux, "%s-shm", path);
        unlink(aux);
    }
    return status;
}
