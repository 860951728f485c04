/* tda_alert.c - the --on-finding command runner (contract and the why:
 * tda_alert.h). */
#include "tda_alert.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define QUEUE_SLOTS 64
#define SLOT_BYTES 2048     /* a finding's JSON is well under 1 KiB */
#define MAX_CHILDREN 4

struct tda_alert {
    char *cmd;
    double interval_s;
    double tokens, burst;
    struct timespec refilled;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    char (*slots)[SLOT_BYTES];
    unsigned head, count;
    pid_t children[MAX_CHILDREN];
    int nchildren;
    uint64_t suppressed_since;  /* rate-limited since the last command that ran */
    tda_alert_stats stats;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reap(tda_alert *a, int block_ms)
{
    double until = now_s() + block_ms / 1000.0;
    do {
        for (int i = 0; i < a->nchildren;) {
            int status;
            pid_t r = waitpid(a->children[i], &status, WNOHANG);
            if (r == a->children[i] || (r < 0 && errno == ECHILD)) {
                a->children[i] = a->children[--a->nchildren];
                continue;
            }
            i++;
        }
        if (!a->nchildren || now_s() >= until)
            return;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    } while (1);
}

/* Start the command with json on its stdin. 0, or -1 when it could not start. */
static int spawn_one(tda_alert *a, const char *json, uint64_t suppressed)
{
    int fds[2];
    posix_spawn_file_actions_t fa;
    char supp[64];
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **env = malloc((nenv + 2) * sizeof *env);
    if (!env || pipe2(fds, O_CLOEXEC) < 0) {
        free(env);
        return -1;
    }
    memcpy(env, environ, nenv * sizeof *env);
    snprintf(supp, sizeof supp, "TRAINSCOPE_ALERTS_SUPPRESSED=%llu", (unsigned long long)suppressed);
    env[nenv] = supp;
    env[nenv + 1] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    char *argv[] = {"sh", "-c", a->cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        return -1;
    }
    /* The JSON fits in the pipe's buffer, so this write does not wait for
     * the child; a child that exits without reading gets EPIPE, ignored
     * (SIGPIPE is blocked in this thread). */
    size_t len = strlen(json), off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], json + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off == len && write(fds[1], "\n", 1) < 0)
        off = 0;
    close(fds[1]);
    a->children[a->nchildren++] = pid;
    return 0;
}

static int take_token(tda_alert *a)
{
    double t = now_s(), dt = t - ((double)a->refilled.tv_sec + (double)a->refilled.tv_nsec / 1e9);
    a->tokens += a->interval_s > 0 ? dt / a->interval_s : a->burst;
    if (a->tokens > a->burst)
        a->tokens = a->burst;
    clock_gettime(CLOCK_MONOTONIC, &a->refilled);
    if (a->tokens < 1)
        return 0;
    a->tokens -= 1;
    return 1;
}

static void *alert_thread(void *arg)
{
    tda_alert *a = arg;
    char json[SLOT_BYTES];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->count && !a->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &until);
            if (a->nchildren) {
                pthread_mutex_unlock(&a->mu);
                reap(a, 0);
                pthread_mutex_lock(&a->mu);
            }
        }
        if (!a->count && a->stop)
            break;
        memcpy(json, a->slots[a->head], SLOT_BYTES);
        a->head = (a->head + 1) % QUEUE_SLOTS;
        a->count--;
        pthread_mutex_unlock(&a->mu);
        reap(a, 0);
        int limited = !take_token(a), failed = 0;
        if (limited) {
            a->suppressed_since++;
        } else {
            while (a->nchildren >= MAX_CHILDREN)
                reap(a, 50);
            failed = spawn_one(a, json, a->suppressed_since) < 0;
            a->suppressed_since = 0;
        }
        pthread_mutex_lock(&a->mu);     /* the counters are read by tda_alert_get_stats */
        a->stats.rate_limited += limited;
        a->stats.failed += failed;
        a->stats.run += !limited && !failed;
    }
    pthread_mutex_unlock(&a->mu);
    reap(a, 5000);
    return NULL;
}

int tda_alert_open(tda_alert **out, const char *cmd, double interval_s, int burst, char *err, size_t errlen)
{
    tda_alert *a = calloc(1, sizeof *a);
    *out = NULL;
    if (!a || !(a->cmd = strdup(cmd)) || !(a->slots = calloc(QUEUE_SLOTS, SLOT_BYTES))) {
        if (a)
            free(a->cmd);
        free(a);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->interval_s = interval_s;
    a->burst = a->tokens = burst > 0 ? burst : 1;
    clock_gettime(CLOCK_MONOTONIC, &a->refilled);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    int rc = pthread_create(&a->thread, NULL, alert_thread, a);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the alert thread: %s", strerror(rc));
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a->slots);
        free(a->cmd);
        free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

int tda_alert_push(tda_alert *a, const char *json)
{
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (a->count == QUEUE_SLOTS) {
        a->stats.queue_full++;
        rc = -ENOSPC;
    } else {
        snprintf(a->slots[(a->head + a->count) % QUEUE_SLOTS], SLOT_BYTES, "%s", json);
        a->count++;
        a->stats.queued++;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void tda_alert_get_stats(tda_alert *a, tda_alert_stats *s)
{
    pthread_mutex_lock(&a->mu);
    *s = a->stats;
    pthread_mutex_unlock(&a->mu);
}

void tda_alert_close(tda_alert *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->slots);
    free(a->cmd);
    free(a);
}
