/* bench_log.c - what a log call costs the training loop.
 *
 * Times ts_log_id and ts_log with the I/O thread running and no collector
 * reachable (the worst realistic case: nothing is acknowledged, the I/O
 * thread keeps trying to connect). Calls are timed in batches of 1000 with
 * CLOCK_MONOTONIC; the report gives the median and p99 of the per-call cost
 * over batches, and the mean over all calls.
 *
 * Cases:
 *   log_id        ring large enough that nothing drops (the normal path)
 *   log_at        the same with the time passed in: the ring's own cost,
 *                 without reading the clock (a vDSO call, ~30 ns on a VM)
 *   log_id drops  tiny ring and outbox: after a few hundred calls every call
 *                 takes the drop path (count + step/time range)
 *   log by name   8 names in turn: hash lookup + the same push
 *   log_id x2     two threads on one run (the lock under contention; this
 *                 machine has 2 cores and the I/O thread is a third)
 *   log_id live   with --live EP: a real collector at EP takes the samples
 *                 (the default ring of 1M samples, the I/O thread sending and
 *                 the collector ingesting on the same 2 cores): the trainer's
 *                 usual situation
 *
 * Usage: bench_log [--calls N] [--endpoint E] [--live EP]   (default 10M
 * calls, an ipc:// path nobody listens on)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trainscope.h"

#define BATCH 1000

static long long calls = 10000000;
static char endpoint[256], live[256];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double median, p99, mean; /* ns per call */
} result;

/* Per-batch costs -> median and p99; total time -> mean. */
static result summarize(double *per_call, size_t batches, int64_t total_ns, long long n)
{
    qsort(per_call, batches, sizeof *per_call, cmp_double);
    return (result){
        .median = per_call[batches / 2],
        .p99 = per_call[batches * 99 / 100],
        .mean = (double)total_ns / (double)n,
    };
}

enum mode { BY_ID, AT_TIME, BY_NAME };

/* Log `n` samples in batches, recording ns per call of each batch. */
static result run_calls(ts_run *run, enum mode mode, long long n)
{
    static const char *names[8] = {"train/loss", "train/lr", "train/grad_norm", "eval/loss",
                                   "perf/tokens_per_s", "perf/step_ms", "gpu/mem", "gpu/util"};
    size_t batches = (size_t)(n / BATCH);
    double *per_call = malloc(batches * sizeof *per_call);
    int id = ts_metric(run, names[0]);
    int64_t start = now_ns();
    for (size_t b = 0; b < batches; b++) {
        int64_t t0 = now_ns();
        long long base = (long long)b * BATCH;
        if (mode == BY_ID) {
            for (int i = 0; i < BATCH; i++)
                ts_log_id(run, id, base + i, (double)i);
        } else if (mode == AT_TIME) {
            for (int i = 0; i < BATCH; i++)
                ts_log_at(run, id, base + i, t0 + i, (double)i);
        } else {
            for (int i = 0; i < BATCH; i++)
                ts_log(run, names[i & 7], base + i, (double)i);
        }
        per_call[b] = (double)(now_ns() - t0) / BATCH;
    }
    result r = summarize(per_call, batches, now_ns() - start, (long long)batches * BATCH);
    free(per_call);
    return r;
}

static ts_run *open_run(const char *name, size_t ring, size_t unacked)
{
    ts_options o = ts_options_default();
    o.endpoint = endpoint;
    o.run = name;
    o.ring_samples = ring;
    o.max_unacked_bytes = unacked;
    ts_run *run;
    int rc = ts_open(&run, &o);
    if (rc < 0) {
        fprintf(stderr, "bench_log: ts_open: %s\n", ts_strerror(rc));
        exit(1);
    }
    return run;
}

static void report(const char *what, ts_run *run, result r, long long n)
{
    ts_stats st;
    ts_get_stats(run, &st);
    printf("%-13s %10lld calls  median %6.1f ns  p99 %6.1f ns  mean %6.1f ns  "
           "(logged %llu, dropped %llu)\n",
           what, n, r.median, r.p99, r.mean, (unsigned long long)st.logged,
           (unsigned long long)st.dropped);
}

static void bench_one(const char *what, enum mode mode, size_t ring, size_t unacked)
{
    ts_run *run = open_run(what, ring, unacked);
    result r = run_calls(run, mode, calls);
    report(what, run, r, calls);
    ts_close(run, 0);
}

/* Against a real collector: the default ring, and ts_close waits until
 * everything logged is acknowledged (not timed). */
static void bench_live(const char *what, enum mode mode)
{
    char saved[sizeof endpoint];
    memcpy(saved, endpoint, sizeof saved);
    memcpy(endpoint, live, sizeof endpoint);
    ts_run *run = open_run(what, 0, 0);
    result r = run_calls(run, mode, calls);
    report(what, run, r, calls);
    if (ts_close(run, 60000) != 0)
        printf("%-13s not everything was acknowledged within 60 s\n", what);
    memcpy(endpoint, saved, sizeof endpoint);
}

typedef struct worker {
    ts_run *run;
    long long n;
    result r;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    w->r = run_calls(w->run, BY_ID, w->n);
    return NULL;
}

static void bench_two_threads(size_t ring)
{
    ts_run *run = open_run("log_id x2", ring, 0);
    worker w[2] = {{.run = run, .n = calls / 2}, {.run = run, .n = calls / 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    /* Report thread 0's distribution; the mean is over both. */
    w[0].r.mean = (w[0].r.mean + w[1].r.mean) / 2;
    report("log_id x2", run, w[0].r, calls);
    ts_close(run, 0);
}

int main(int argc, char **argv)
{
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/trainscope-bench-nobody-%ld", (long)getpid());
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--calls") == 0) {
            calls = atoll(argv[i + 1]);
        } else if (strcmp(argv[i], "--endpoint") == 0) {
            snprintf(endpoint, sizeof endpoint, "%s", argv[i + 1]);
        } else if (strcmp(argv[i], "--live") == 0) {
            snprintf(live, sizeof live, "%s", argv[i + 1]);
        } else {
            fprintf(stderr, "usage: bench_log [--calls N] [--endpoint E] [--live EP]\n");
            return 2;
        }
    }
    if (calls < BATCH * 100)
        calls = BATCH * 100;
    /* Room for every call: the ring alone holds them all. */
    size_t ring = 1;
    while (ring < (size_t)calls)
        ring <<= 1;
    printf("bench_log: %lld calls per case, batches of %d, no collector at %s\n", calls, BATCH,
           endpoint);
    bench_one("log_id", BY_ID, ring, 0);
    bench_one("log_at", AT_TIME, ring, 0);
    bench_one("log_id drops", BY_ID, 1024, 64 << 10);
    bench_one("log by name", BY_NAME, ring, 0);
    bench_two_threads(ring);
    if (*live) {
        bench_live("log_id live", BY_ID);
        bench_live("by name live", BY_NAME);
    }
    return 0;
}
