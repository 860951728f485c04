/* bench_ingest.c - end-to-end ingest rate: points per second from
 * libtrainscope publishers into a collector's durable store.
 *
 *   bench_ingest --endpoint EP [--publishers P] [--points N] [--metrics M]
 *
 * Starts P publisher processes (fork, one run handle each, like P ranks),
 * each logging N points over M metrics as fast as it can, and measures the
 * time from the first log call to the moment the last publisher's ts_close()
 * returns, i.e. until the collector has acknowledged every point as durable.
 * Every publisher opens its run handle (which allocates its ring) and names
 * its metrics before the clock starts; then all start at once.
 * The collector is started separately (bench/run does it), so its cost is
 * what is measured. Prints one line: publishers, points, seconds, points/s.
 *
 * --watch PID (the collector's): also samples its VmRSS (/proc/PID/status)
 * every 50 ms and its CPU time (/proc/PID/stat) at the start and the end, and
 * prints the resident memory at 10%, 50% and 100% of the run (by elapsed
 * time; the rate is steady, so that is by points too), its lowest and
 * highest value after 10%, and the collector's CPU time per point.
 */
#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trainscope.h"
#include "bench_util.h"

/* ---- the collector's memory and CPU ----------------------------------- */

#define MAX_SAMPLES 100000

typedef struct watch {
    int pid;
    volatile int stop;
    size_t n;
    double t[MAX_SAMPLES];
    long rss_kib[MAX_SAMPLES];
} watch;

static long rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* utime + stime in seconds, or -1. */
static double cpu_s(int pid)
{
    char path[64], buf[1024];
    unsigned long ut, stt;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static void *watcher(void *arg)
{
    watch *w = arg;
    double t0 = bench_now_s();
    while (!w->stop && w->n < MAX_SAMPLES) {
        long kib = rss_kib(w->pid);
        if (kib >= 0) {
            w->t[w->n] = bench_now_s() - t0;
            w->rss_kib[w->n++] = kib;
        }
        usleep(50000);
    }
    return NULL;
}

static long rss_at(const watch *w, double t)
{
    size_t best = 0;
    for (size_t i = 1; i < w->n; i++)
        if (fabs(w->t[i] - t) < fabs(w->t[best] - t))
            best = i;
    return w->rss_kib[best];
}

static void watch_report(const watch *w, double secs, double cpu, long total)
{
    if (w->n < 2) {
        printf("collector: too few memory samples\n");
        return;
    }
    long lo = -1, hi = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (w->t[i] < 0.1 * secs)
            continue;
        if (lo < 0 || w->rss_kib[i] < lo)
            lo = w->rss_kib[i];
        if (w->rss_kib[i] > hi)
            hi = w->rss_kib[i];
    }
    printf("collector VmRSS: 10%% %.1f MiB, 50%% %.1f MiB, 100%% %.1f MiB; after 10%%: min %.1f, max %.1f MiB "
           "(%zu samples)\n", rss_at(w, 0.1 * secs) / 1024.0, rss_at(w, 0.5 * secs) / 1024.0,
           rss_at(w, secs) / 1024.0, lo / 1024.0, hi / 1024.0, w->n);
    if (cpu >= 0)
        printf("collector CPU: %.2f s for %ld points = %.0f ns/point (one core would ingest %.1f M points/s)\n",
               cpu, total, cpu * 1e9 / (double)total, (double)total / cpu / 1e6);
}

static int publish(const char *endpoint, int rank, int world, long points, int metrics, int ready,
                   int go)
{
    char byte = 1;
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
    /* Ready; then wait until the parent closes the go pipe. */
    if (write(ready, &byte, 1) != 1 || read(go, &byte, 1) != 0)
        return 1;
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
    int publishers = 1, metrics = 8, watch_pid = 0;
    long points = 10000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--endpoint")) endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--publishers")) publishers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--points")) points = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--metrics")) metrics = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--watch")) watch_pid = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_ingest: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (publishers < 1 || publishers > 256 || metrics < 1 || metrics > 64 || points < metrics) {
        fprintf(stderr, "bench_ingest: bad arguments\n");
        return 2;
    }
    static watch w;
    pthread_t wth;
    double cpu0 = watch_pid ? cpu_s(watch_pid) : -1;
    w.pid = watch_pid;
    int ready[2], go[2];
    if (pipe(ready) < 0 || pipe(go) < 0) {
        perror("pipe");
        return 1;
    }
    for (int p = 0; p < publishers; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(go[1]);
            _exit(publish(endpoint, p, publishers, points / publishers, metrics, ready[1], go[0]));
        }
        if (pid < 0) {
            perror("fork");
            return 1;
        }
    }
    close(go[0]);
    close(ready[1]);
    char byte;
    for (int p = 0; p < publishers; p++)
        if (read(ready[0], &byte, 1) != 1)
            break; /* a publisher died: its status says so below */
    double t0 = bench_now_s();
    close(go[1]);
    /* After the forks: a child must not inherit a lock the sampler holds. */
    if (watch_pid && pthread_create(&wth, NULL, watcher, &w) != 0)
        watch_pid = 0;
    int failed = 0, status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    double secs = bench_now_s() - t0;
    long total = (points / publishers / metrics) * metrics * publishers;
    printf("ingest publishers=%d points=%ld seconds=%.3f points_per_s=%.0f%s\n", publishers, total,
           secs, (double)total / secs, failed ? " (SOME PUBLISHERS FAILED)" : "");
    if (watch_pid) {
        double cpu1 = cpu_s(watch_pid);
        w.stop = 1;
        pthread_join(wth, NULL);
        watch_report(&w, secs, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1, total);
    }
    return failed ? 1 : 0;
}
