/* bench_ingest.c - end-to-end ingest rate: points per second from
 * libtrainscope publishers into a collector's durable store.
 *
 *   bench_ingest --endpoint EP [--publishers P] [--points N] [--metrics M]
 *
 * Starts P publisher processes (fork, one run handle each, like P ranks),
 * each logging N points over M metrics as fast as it can, and measures the
 * time from the first log call to the moment the last publisher's ts_close()
 * returns, i.e. until the collector has acknowledged every point as durable.
 * The collector is started separately (bench/run does it), so its cost is
 * what is measured. Prints one line: publishers, points, seconds, points/s.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trainscope.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int publish(const char *endpoint, int rank, int world, long points, int metrics)
{
    ts_options o = ts_options_default();
    char run[64];
    snprintf(run, sizeof run, "bench-ingest-%d", (int)getppid());
    o.endpoint = endpoint;
    o.run = run;
    o.rank = rank;
    o.world_size = world;
    o.ring_samples = 1u << 22;
    o.max_unacked_bytes = 256u << 20;
    ts_run *r;
    if (ts_open(&r, &o) < 0)
        return 1;
    int ids[64];
    for (int m = 0; m < metrics; m++) {
        char name[32];
        snprintf(name, sizeof name, "bench/m%d", m);
        ids[m] = ts_metric(r, name);
    }
    long steps = points / metrics;
    float loss = 3.0f;
    for (long s = 0; s < steps; s++) {
        loss = loss * 0.9999f + 0.001f * (float)((s * 2654435761u) % 1000) / 1000.0f;
        for (int m = 0; m < metrics; m++)
            /* Spin rather than drop: this measures throughput, not the drop path. */
            while (ts_log_id(r, ids[m], s, (double)loss * (m + 1)) == TS_EDROPPED)
                usleep(100);
    }
    int rc = ts_close(r, 600000);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *endpoint = "tcp://127.0.0.1:5557";
    int publishers = 1, metrics = 8;
    long points = 10000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--endpoint")) endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--publishers")) publishers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--points")) points = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--metrics")) metrics = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_ingest: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (publishers < 1 || publishers > 256 || metrics < 1 || metrics > 64 || points < metrics) {
        fprintf(stderr, "bench_ingest: bad arguments\n");
        return 2;
    }
    double t0 = now_s();
    for (int p = 0; p < publishers; p++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(publish(endpoint, p, publishers, points / publishers, metrics));
        if (pid < 0) {
            perror("fork");
            return 1;
        }
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    double secs = now_s() - t0;
    long total = (points / publishers / metrics) * metrics * publishers;
    printf("ingest publishers=%d points=%ld seconds=%.3f points_per_s=%.0f%s\n", publishers, total,
           secs, (double)total / secs, failed ? " (SOME PUBLISHERS FAILED)" : "");
    return failed ? 1 : 0;
}
