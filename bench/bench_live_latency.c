/* bench_live_latency.c - how long from a trainer's log call to the point
 * being visible in the viewer's model (tvm_poll on a network source):
 * libtrainscope -> collector ingest -> LIVE PUB -> the source's I/O thread
 * -> its queue -> tvm_poll. What a frame adds on top is at most its period.
 *
 * A real `trainscope collect` process (default commit interval) on a
 * temporary store, ipc:// endpoints; a publisher thread logs one point every
 * --interval-us (default 5000) and notes the monotonic time just before each
 * log call; the main thread calls tvm_poll every --poll-us (default 200) and
 * notes when each step first shows in the series. A third thread with a
 * plain SUB on the live endpoint notes when each step's LIVE message
 * arrives, which splits the total into publisher + collector (log call ->
 * LIVE) and the viewer's source (LIVE -> tvm_poll). Prints p50/p99/max over
 * --points (default 1000) points.
 *
 * Usage: bench_live_latency PATH/TO/trainscope [--points N] [--interval-us U]
 *        [--poll-us U] [--batch-ms M]   (M: the publisher's batch interval,
 *        0 = libtrainscope's default)
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "model.h"
#include "trainscope.h"
#include "wire.h"

extern char **environ;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = { (time_t)(t_ns / 1000000000), (long)(t_ns % 1000000000) };
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

typedef struct pub_args {
    ts_run *run;
    int metric;
    int n;
    int64_t interval_ns;
    int64_t *t_log;          /* per step: monotonic ns just before the log call */
    atomic_int go;
} pub_args;

static void *publisher(void *arg)
{
    pub_args *a = arg;
    while (!atomic_load(&a->go))
        sleep_until(mono_ns() + 1000000);
    int64_t t = mono_ns();
    for (int i = 0; i < a->n; i++) {
        t += a->interval_ns;
        sleep_until(t);
        a->t_log[i] = mono_ns();
        ts_log_id(a->run, a->metric, i, (double)i);
    }
    return NULL;
}

static int cmp_i64(const void *x, const void *y);

typedef struct sub_args {
    const char *live;
    int n;
    int64_t *t_live;         /* per step: monotonic ns its LIVE message arrived here */
    atomic_int ready, stop;
} sub_args;

static void *live_watcher(void *arg)
{
    sub_args *a = arg;
    void *ctx = zmq_ctx_new(), *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0, timeout = 50;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect(sub, a->live);
    atomic_store(&a->ready, 1);
    zmq_msg_t f[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&f[i]);
    while (!atomic_load(&a->stop)) {
        if (zmq_msg_recv(&f[0], sub, 0) < 0)
            continue;
        int nf = 1;
        while (nf < 3 && zmq_msg_more(&f[nf - 1]) && zmq_msg_recv(&f[nf], sub, 0) >= 0)
            nf++;
        int64_t t = mono_ns();
        tsw_live l;
        if (nf != 3 || tsw_live_decode(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &l) < 0)
            continue;
        for (uint32_t i = 0; i < l.count; i++) {
            int64_t step, tn;
            double v;
            tsw_live_point_decode(l.points + (size_t)i * TSW_LIVE_POINT, &step, &tn, &v);
            if (step >= 0 && step < a->n && !a->t_live[step])
                a->t_live[step] = t;
        }
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&f[i]);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return NULL;
}

static void print_quantiles(const char *what, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    printf("  %-28s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n", what, (double)v[n / 2] / 1e6,
           (double)v[(size_t)n * 99 / 100] / 1e6, (double)v[n - 1] / 1e6);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    int n = 1000, interval_us = 5000, poll_us = 200, batch_ms = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH/TO/trainscope [--points N] [--interval-us U] [--poll-us U] "
                "[--batch-ms M]\n", argv[0]);
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--points") == 0 && v > 0)
            n = v;
        else if (strcmp(argv[i], "--interval-us") == 0 && v > 0)
            interval_us = v;
        else if (strcmp(argv[i], "--poll-us") == 0 && v > 0)
            poll_us = v;
        else if (strcmp(argv[i], "--batch-ms") == 0 && v >= 0)
            batch_ms = v;
        else {
            fprintf(stderr, "bad option %s %s\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    char dir[] = "/tmp/ts-latency-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char store[128], ingest[128], api[128], live[128], log[128];
    snprintf(store, sizeof store, "%s/runs.db", dir);
    snprintf(ingest, sizeof ingest, "ipc://%s/ingest", dir);
    snprintf(api, sizeof api, "ipc://%s/api", dir);
    snprintf(live, sizeof live, "ipc://%s/live", dir);
    snprintf(log, sizeof log, "%s/collector.log", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    char *cargv[] = { argv[1], "collect", "--store", store, "--ingest", ingest, "--api", api,
                      "--live", live, "--quiet", NULL };
    pid_t pid;
    if (posix_spawn(&pid, argv[1], &fa, NULL, cargv, environ) != 0) {
        perror("posix_spawn");
        return 1;
    }
    posix_spawn_file_actions_destroy(&fa);

    int rc = 1;
    pub_args a = { .n = n, .interval_ns = (int64_t)interval_us * 1000 };
    atomic_init(&a.go, 0);
    a.t_log = calloc((size_t)n, sizeof *a.t_log);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    sub_args sa = { .live = live, .n = n, .t_live = calloc((size_t)n, sizeof(int64_t)) };
    int64_t *part1 = calloc((size_t)n, sizeof *part1), *part2 = calloc((size_t)n, sizeof *part2);
    pthread_t wt;
    int watching = 0;
    atomic_init(&sa.ready, 0);
    atomic_init(&sa.stop, 0);
    ts_options o = ts_options_default();
    o.endpoint = ingest;
    o.run = "latency";
    o.batch_interval_ms = batch_ms;
    tvm_source *src = NULL;
    char err[512];
    pthread_t th;
    int started = 0;
    if (!sa.t_live || !part1 || !part2 || pthread_create(&wt, NULL, live_watcher, &sa) != 0)
        goto out;
    watching = 1;
    if (!a.t_log || !lat || ts_open(&a.run, &o) < 0 || (a.metric = ts_metric(a.run, "latency/x")) < 0)
        goto out;
    /* The series must exist before the source attaches: one point, flushed. */
    ts_log_id(a.run, a.metric, -1, 0.0);
    if (ts_flush(a.run, 10000) < 0) {
        fprintf(stderr, "the collector did not acknowledge in 10 s (see %s)\n", log);
        goto out;
    }
    if (tvm_open(&src, api, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    int64_t until = mono_ns() + 10000000000;
    while (tvm_state(src, NULL) != TVM_READY || tvm_series_count(src) == 0) {
        if (tvm_poll(src) < 0 || mono_ns() > until) {
            fprintf(stderr, "the source did not become ready: %s\n", tvm_errmsg(src));
            goto out;
        }
        sleep_until(mono_ns() + 1000000);
    }
    if (pthread_create(&th, NULL, publisher, &a) != 0)
        goto out;
    started = 1;
    atomic_store(&a.go, 1);
    int64_t seen = -1;   /* highest step visible */
    int64_t poll_max = 0;
    until = mono_ns() + (int64_t)n * a.interval_ns + 10000000000;
    while (seen < n - 1 && mono_ns() < until) {
        sleep_until(mono_ns() + (int64_t)poll_us * 1000);
        int64_t t0 = mono_ns();
        int changed = tvm_poll(src);
        int64_t t1 = mono_ns();
        if (t1 - t0 > poll_max)
            poll_max = t1 - t0;
        if (changed < 0)
            break;
        if (!(changed & TVM_CHANGED_POINTS))
            continue;
        const tvm_series *s = tvm_series_at(src, 0);
        for (int64_t step = seen + 1; step <= s->step_last && step < n; step++)
            lat[step] = t1 - a.t_log[step];
        if (s->step_last > seen)
            seen = s->step_last < n ? s->step_last : n - 1;
    }
    if (seen < n - 1) {
        fprintf(stderr, "only %" PRId64 " of %d points became visible\n", seen + 1, n);
        goto out;
    }
    int nsplit = 0;
    for (int i = 0; i < n; i++) {
        if (!sa.t_live[i])
            continue;
        part1[nsplit] = sa.t_live[i] - a.t_log[i];
        part2[nsplit++] = a.t_log[i] + lat[i] - sa.t_live[i];
    }
    printf("%d points, one every %d us, tvm_poll every %d us, publisher batch interval %d ms%s, "
           "slowest tvm_poll %.3f ms:\n", n, interval_us, poll_us, batch_ms ? batch_ms : 20,
           batch_ms ? "" : " (default)", (double)poll_max / 1e6);
    print_quantiles("log call -> visible", lat, n);
    if (nsplit > 0) {
        print_quantiles("log call -> LIVE at a SUB", part1, nsplit);
        print_quantiles("LIVE at a SUB -> visible", part2, nsplit);
    }
    rc = 0;
out:
    if (started)
        pthread_join(th, NULL);
    if (watching) {
        atomic_store(&sa.stop, 1);
        pthread_join(wt, NULL);
    }
    free(sa.t_live);
    free(part1);
    free(part2);
    tvm_close(src);
    ts_close(a.run, 5000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(a.t_log);
    free(lat);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
