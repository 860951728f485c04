/* bench_publisher_faults.c - what the publisher's I/O thread costs the
 * trainer's process at a steady rate: page faults and CPU time.
 *
 *   bench_publisher_faults --endpoint EP [--rate POINTS_PER_S] [--seconds S]
 *
 * One run handle logs one metric at a fixed rate (default 2M points/s, for
 * 4 s: below what a collector ingests, as in training) into a collector at
 * EP started separately; then ts_flush waits until every point is
 * acknowledged. Reported: minor page faults and CPU time (user + system, all
 * threads) of the process between the first log call and the flush, i.e.
 * not counting ts_open's ring, whose pages fault once when it is cleared.
 * Page faults there are the I/O thread's fresh buffers: a BATCH payload of
 * up to ~1.8 MB (proto/outbox.h keeps acknowledged ones for reuse) and
 * libzmq's copy of each message it sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "trainscope.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(const struct rusage *u)
{
    return (double)(u->ru_utime.tv_sec + u->ru_stime.tv_sec) +
           (double)(u->ru_utime.tv_usec + u->ru_stime.tv_usec) * 1e-6;
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL;
    double rate = 2e6, seconds = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--endpoint"))
            endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--rate"))
            rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
    }
    if (!endpoint || !(rate > 0) || !(seconds > 0)) {
        fprintf(stderr, "usage: bench_publisher_faults --endpoint EP [--rate POINTS_PER_S] [--seconds S]\n");
        return 2;
    }
    ts_options o = ts_options_default();
    o.endpoint = endpoint;
    o.run = "bench-faults";
    ts_run *r = NULL;
    if (ts_open(&r, &o) < 0) {
        fprintf(stderr, "bench_publisher_faults: cannot open a run handle for %s\n", endpoint);
        return 1;
    }
    int id = ts_metric(r, "train/loss");
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    double t0 = now_s();
    long long n = 0;
    while (now_s() - t0 < seconds) {
        long long want = (long long)((now_s() - t0) * rate);
        for (; n < want; n++)
            ts_log_id(r, id, n, 1.0 / (double)(n + 1));
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    int flushed = ts_flush(r, 60000);
    getrusage(RUSAGE_SELF, &b);
    printf("publisher_faults rate=%.0f seconds=%.1f points=%lld acked=%s minor_faults=%ld cpu_s=%.3f\n", rate,
           seconds, n, flushed == 0 ? "all" : "NOT ALL", b.ru_minflt - a.ru_minflt, cpu_s(&b) - cpu_s(&a));
    ts_close(r, 5000);
    return flushed == 0 ? 0 : 1;
}
