/* test_viewer_attach.c - the viewer model's network source (tvm_open on a
 * collector's API endpoint, viewer/model/net.c + remote.c) against a real
 * `trainscope collect` process fed by a real publisher (libtrainscope):
 *
 *   attach_sees_history_then_live   history loaded, then new points, events
 *                                   and a run that starts later arrive
 *                                   through tvm_poll; the model equals the
 *                                   store point for point (API and file history)
 *   collector_restart_fills_gap     kill -9 the collector: RECONNECTING,
 *                                   points kept; restart on the same store:
 *                                   READY again, no duplicate, no hole
 *   resumed_run_live_and_while_away steps going back, seen LIVE and
 *                                   while disconnected: newest timeline exact
 *   run_filter_follows_named_runs   --run keep: not keep2 (topic prefix)
 *   long_history_in_pages           25 pages of points (net.h directly), exact
 *   unreachable_endpoint            open returns at once, polls never block,
 *                                   the state says who does not answer
 *   bad_endpoints                   clear -EINVAL sentences
 *   tcp_attach_finds_live_port      given tcp://H:P, LIVE is found on P + 1
 *   protocol_2_peer_fails           a peer whose info says protocol 2
 *   not_json_peer_fails             a peer that answers garbage
 *   malformed_live_ignored          LIVE frames broken every way are counted
 *                                   and dropped; the valid one after them shows
 *   findings_over_the_network       the collector's detectors find a spike and
 *                                   a NaN: the model has them at attach, equal
 *                                   to the store's; a spike logged while
 *                                   attached shows within 2.5 s
 *
 * Usage: test_viewer_attach PATH/TO/trainscope [--file-history]
 * --file-history also runs the first test with "?history=file" (history
 * read from the store file by the model's file backend, LIVE over the
 * network); not registered yet: the file backend does not yet drop the
 * memory tail a grown store chunk now holds (duplicates).
 * Prints one FAIL line per failed check; exits 0 when none failed. Endpoints
 * are ipc:// paths in a fresh temp directory, so parallel runs do not meet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "model.h"
#include "net.h"
#include "store.h"
#include "trainscope.h"
#include "wire.h"

extern char **environ;

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond);              \
            fflush(stdout);                                                      \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static const char *collector_bin;
static char tmpdir[256];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- a collector process ------------------------------------------------ */

typedef struct collector {
    char store[300], ingest[300], api[300], live[300];
    pid_t pid;
} collector;

static void collector_init(collector *c, const char *name)
{
    snprintf(c->store, sizeof c->store, "%s/%s.db", tmpdir, name);
    snprintf(c->ingest, sizeof c->ingest, "ipc://%s/%s-ingest", tmpdir, name);
    snprintf(c->api, sizeof c->api, "ipc://%s/%s-api", tmpdir, name);
    snprintf(c->live, sizeof c->live, "ipc://%s/%s-live", tmpdir, name);
    c->pid = 0;
}

/* Start it and wait until its API answers `info`. */
static int collector_start(collector *c)
{
    char log[320];
    snprintf(log, sizeof log, "%s/collector.log", tmpdir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = { (char *)collector_bin, "collect", "--store", c->store, "--ingest", c->ingest,
                     "--api", c->api, "--live", c->live, "--quiet", NULL };
    int rc = posix_spawn(&c->pid, collector_bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        printf("cannot start %s: %s\n", collector_bin, strerror(rc));
        return -1;
    }
    void *ctx = zmq_ctx_new();
    int ok = 0;
    for (int64_t until = now_ms() + 10000; !ok && now_ms() < until;) {
        void *d = zmq_socket(ctx, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(d, c->api);
        zmq_send(d, "{\"op\":\"info\"}", 13, 0);
        zmq_pollitem_t it = { .socket = d, .events = ZMQ_POLLIN };
        ok = zmq_poll(&it, 1, 300) == 1;
        zmq_close(d);
    }
    zmq_ctx_term(ctx);
    return ok ? 0 : -1;
}

/* Stop it; after SIGTERM it must exit 0 (under ASan that also means no
 * error or leak in the collector, api.c's ops included). */
static void collector_kill(collector *c, int sig)
{
    int status = 0;
    if (c->pid > 0) {
        kill(c->pid, sig);
        waitpid(c->pid, &status, 0);
        if (sig == SIGTERM && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            printf("FAIL the collector on %s exited with status %d (see %s/collector.log)\n",
                   c->store, status, tmpdir);
            failures++;
        }
    }
    c->pid = 0;
}

/* ---- helpers on a source ---------------------------------------------------- */

/* tvm_poll until cond(src, arg) holds or ms pass; 1 when it held. Every
 * poll must come back quickly (the UI thread never waits on the network). */
static int64_t slowest_poll_ms;
static enum tvm_state last_state = (enum tvm_state)-1;   /* state changes are printed */
static char last_msg[1024];
static int poll_until(tvm_source *src, int (*cond)(tvm_source *, const void *), const void *arg, int ms)
{
    for (int64_t until = now_ms() + ms;;) {
        int64_t t0 = now_ms();
        int rc = tvm_poll(src);
        int64_t dt = now_ms() - t0;
        if (dt > slowest_poll_ms)
            slowest_poll_ms = dt;
        if (rc < 0) {
            printf("tvm_poll: %d %s\n", rc, tvm_errmsg(src));
            return 0;
        }
        const char *msg = NULL;
        enum tvm_state st = tvm_state(src, &msg);
        if (st != last_state || strcmp(msg ? msg : "", last_msg) != 0) {
            printf("  state %d: %s\n", (int)st, msg ? msg : "");
            last_state = st;
            snprintf(last_msg, sizeof last_msg, "%s", msg ? msg : "");
        }
        if (cond(src, arg))
            return 1;
        if (now_ms() >= until)
            return 0;
        sleep_ms(2);
    }
}

static int is_state(tvm_source *src, const void *arg)
{
    return tvm_state(src, NULL) == *(const enum tvm_state *)arg;
}

static size_t series_index(tvm_source *src, const char *run, const char *metric)
{
    for (size_t i = 0; i < tvm_series_count(src); i++) {
        const tvm_series *s = tvm_series_at(src, i);
        const tvm_run *r = tvm_run_at(src, s->run);
        if (strcmp(s->name, metric) == 0 && r && strcmp(r->display, run) == 0)
            return i;
    }
    return SIZE_MAX;
}

typedef struct want { const char *run, *metric; size_t n; } want;

static size_t points_held(tvm_source *src, size_t si)
{
    tss_point *p = NULL;
    size_t n = 0;
    if (si == SIZE_MAX || tvm_points(src, si, INT64_MIN, INT64_MAX, TVM_X_STEP, &p, &n) < 0)
        return 0;
    free(p);
    return n;
}

static int has_points(tvm_source *src, const void *arg)
{
    const want *w = arg;
    return points_held(src, series_index(src, w->run, w->metric)) == w->n;
}

/* Every series of the model equals the store's newest timeline, point for
 * point and bit for bit (the model's step/time/value vs tss_read_points). */
static int equals_store(tvm_source *src, const char *store_path, size_t *npoints)
{
    tss_store *st;
    char err[512];
    int same = 1;
    *npoints = 0;
    if (tss_open(&st, store_path, NULL, err, sizeof err) < 0) {
        printf("open %s: %s\n", store_path, err);
        return 0;
    }
    for (size_t i = 0; i < tvm_series_count(src); i++) {
        const tvm_series *s = tvm_series_at(src, i);
        tss_point *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (tvm_points(src, i, INT64_MIN, INT64_MAX, TVM_X_STEP, &a, &na) < 0 ||
            tss_read_points(st, s->id, INT64_MIN, INT64_MAX, 0, &b, &nb) < 0) {
            same = 0;
        } else if (na != nb) {
            printf("  series %s: model %zu points, store %zu\n", s->name, na, nb);
            same = 0;
        } else {
            for (size_t k = 0; k < na; k++) {
                if (a[k].step != b[k].step || a[k].t_ns != b[k].t_ns ||
                    memcmp(&a[k].value, &b[k].value, sizeof(double)) != 0) {
                    printf("  series %s point %zu: model (%" PRId64 ", %" PRId64 ", %a) store (%" PRId64
                           ", %" PRId64 ", %a)\n", s->name, k, a[k].step, a[k].t_ns, a[k].value,
                           b[k].step, b[k].t_ns, b[k].value);
                    same = 0;
                    break;
                }
            }
        }
        *npoints += na;
        free(a);
        free(b);
    }
    tss_close(st);
    return same;
}

static ts_run *publisher(const collector *c, const char *run)
{
    ts_options o = ts_options_default();
    o.endpoint = c->ingest;
    o.run = run;
    o.batch_interval_ms = 5;
    ts_run *r = NULL;
    if (ts_open(&r, &o) < 0)
        return NULL;
    return r;
}

/* Log steps [from, to) of two metrics: loss = a value with all 64 bits
 * meaningful (bit exactness), lr = a NaN every 97 steps. */
static void log_steps(ts_run *r, int64_t from, int64_t to)
{
    int loss = ts_metric(r, "train/loss"), lr = ts_metric(r, "train/lr");
    for (int64_t s = from; s < to; s++) {
        ts_log_id(r, loss, s, 1.0 / (double)(s + 3));
        ts_log_id(r, lr, s, s % 97 == 0 ? NAN : 1e-3 * (double)(s % 13));
    }
}

/* A finding of the model, by kind and step (SIZE_MAX: none). */
static size_t finding_index(tvm_source *src, const char *kind, int64_t step)
{
    for (size_t i = 0; i < tvm_finding_count(src); i++) {
        const tvm_finding *f = tvm_finding_at(src, i);
        if (strcmp(f->kind, kind) == 0 && f->step_first == step)
            return i;
    }
    return SIZE_MAX;
}

typedef struct want_finding { const char *kind; int64_t step; } want_finding;

static int has_finding(tvm_source *src, const void *arg)
{
    const want_finding *w = arg;
    return finding_index(src, w->kind, w->step) != SIZE_MAX;
}

/* The one sentence of a stored finding's detail ("" when none). */
static void detail_message(const char *detail, char *out, size_t len)
{
    const char *k = detail ? strstr(detail, "\"message\":\"") : NULL;
    size_t n = 0;
    if (k)
        for (k += 11; k[n] && k[n] != '"' && n + 1 < len; n++)
            out[n] = k[n];
    out[n] = 0;
}

/* Every finding the store holds for the model's runs is in the model with
 * the same run, series, rank, kind, severity, steps and message, and the
 * model has no other. */
static int findings_equal_store(tvm_source *src, const char *store_path)
{
    tss_store *st;
    char err[512];
    size_t total = 0;
    int same = 1;
    if (tss_open(&st, store_path, NULL, err, sizeof err) < 0) {
        printf("open %s: %s\n", store_path, err);
        return 0;
    }
    for (size_t r = 0; r < tvm_run_count(src); r++) {
        tss_finding *f = NULL;
        size_t n = 0;
        if (tss_list_findings(st, tvm_run_at(src, r)->id, &f, &n) < 0) {
            same = 0;
            continue;
        }
        total += n;
        for (size_t i = 0; i < n; i++) {
            size_t k = finding_index(src, f[i].kind, f[i].step_first);
            const tvm_finding *m = k == SIZE_MAX ? NULL : tvm_finding_at(src, k);
            const tvm_series *ms = m && m->series >= 0 ? tvm_series_at(src, (size_t)m->series) : NULL;
            char msg[512];
            detail_message(f[i].detail, msg, sizeof msg);
            if (!m || m->run != r || m->rank != f[i].rank || strcmp(m->severity, f[i].severity) != 0 ||
                m->step_last != f[i].step_last || strcmp(m->message, msg) != 0 ||
                (f[i].series_id ? !ms || ms->id != f[i].series_id : m->series != -1)) {
                printf("  finding %s at %" PRId64 " of run %zu: model %s\n", f[i].kind, f[i].step_first, r,
                       m ? "differs" : "has none");
                same = 0;
            }
        }
        tss_free_findings(f, n);
    }
    tss_close(st);
    if (total != tvm_finding_count(src)) {
        printf("  store %zu findings, model %zu\n", total, tvm_finding_count(src));
        same = 0;
    }
    return same && total > 0;
}

/* A decaying loss with a little noise (a fixed LCG, Box-Muller), as the
 * detectors expect of a loss; spike_at gets +2 (about 60 robust sigma),
 * nan_at a NaN. */
static double gauss(void)
{
    static uint64_t x = 88172645463325252ull;
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static void log_loss(ts_run *r, int64_t from, int64_t to, int64_t spike_at, int64_t nan_at)
{
    int loss = ts_metric(r, "train/loss");
    for (int64_t s = from; s < to; s++) {
        double v = 2.0 + 3.0 * exp(-(double)s / 250.0) + 0.03 * gauss();
        if (s == spike_at)
            v += 2.0;
        if (s == nan_at)
            v = NAN;
        ts_log_id(r, loss, s, v);
    }
}

/* ---- the tests ---------------------------------------------------------------- */

/* The collector runs its default online detectors (analysis/): what they
 * store reaches a viewer attached over the API (the `findings` op), at
 * attach and while it follows the run. */
static void findings_over_the_network(void)
{
    collector c;
    collector_init(&c, "findings");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "found");
    CHECK(pub != NULL);
    if (!pub)
        goto done_pub;
    log_loss(pub, 0, 1000, 300, 850);
    CHECK(ts_flush(pub, 10000) == 0);

    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, c.api, NULL, err, sizeof err) == 0);
    if (!src)
        goto done;
    enum tvm_state ready = TVM_READY;
    CHECK(poll_until(src, is_state, &ready, 10000));
    /* At attach: both findings are in the model by the time it is READY
     * (they are queued before the state), tied to the loss series. */
    size_t loss = series_index(src, "found", "train/loss");
    size_t spike = finding_index(src, "spike", 300), nan = finding_index(src, "nan", 850);
    CHECK(loss != SIZE_MAX && spike != SIZE_MAX && nan != SIZE_MAX);
    if (spike != SIZE_MAX && nan != SIZE_MAX) {
        CHECK(tvm_finding_at(src, spike)->series == (ptrdiff_t)loss);
        CHECK(tvm_finding_at(src, nan)->series == (ptrdiff_t)loss);
        CHECK(spike < nan);   /* ordered by step */
    }
    CHECK(findings_equal_store(src, c.store));
    unsigned before = (unsigned)tvm_finding_count(src);

    /* Live: a spike logged now is found by the collector and shows in the
     * model within about a refresh (TVN_REFRESH_MS) of being committed. */
    log_loss(pub, 1000, 1600, 1400, -1);
    CHECK(ts_flush(pub, 10000) == 0);
    int64_t t0 = now_ms();
    want_finding w = { "spike", 1400 };
    CHECK(poll_until(src, has_finding, &w, 2500));
    printf("  live spike finding in the model %" PRId64 " ms after the flush\n", now_ms() - t0);
    CHECK(tvm_finding_count(src) == before + 1);
    CHECK(findings_equal_store(src, c.store));
    /* Nothing changes: no duplicates after more refreshes. */
    poll_until(src, has_finding, &(want_finding){ "none", -5 }, 1500);
    CHECK(tvm_finding_count(src) == before + 1);
    tvm_close(src);
done:
    ts_close(pub, 5000);
done_pub:
    collector_kill(&c, SIGTERM);
}


static void attach_sees_history_then_live(const char *options)
{
    collector c;
    collector_init(&c, options[0] ? "attach-file" : "attach");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "attach");
    CHECK(pub != NULL);
    log_steps(pub, 0, 3000);
    CHECK(ts_event(pub, 1500, "note", "half way") == 0);
    CHECK(ts_flush(pub, 10000) == 0);

    char where[400];
    snprintf(where, sizeof where, "%s%s", c.api, options);
    tvm_source *src = NULL;
    char err[512];
    int64_t t0 = now_ms();
    CHECK(tvm_open(&src, where, NULL, err, sizeof err) == 0);
    CHECK(now_ms() - t0 < 500);   /* returns at once: connecting is the thread's job */
    if (!src)
        goto done;
    enum tvm_state ready = TVM_READY;
    CHECK(poll_until(src, is_state, &ready, 10000));
    want w = { "attach", "train/loss", 3000 };
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    size_t n = 0;
    CHECK(equals_store(src, c.store, &n) && n == 6000);

    /* Live: points logged now show up without a flush (LIVE, not history). */
    log_steps(pub, 3000, 4000);
    w = (want){ "attach", "train/loss", 4000 };
    CHECK(poll_until(src, has_points, &w, 5000));
    CHECK(ts_flush(pub, 10000) == 0);
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 5000));
    CHECK(equals_store(src, c.store, &n) && n == 8000);
    int saw_note = 0;
    for (size_t i = 0; i < tvm_event_count(src); i++)
        saw_note |= strcmp(tvm_event_at(src, i)->kind, "note") == 0 && tvm_event_at(src, i)->step == 1500;
    CHECK(saw_note);

    /* A run that starts after the attach: listed, and its points arrive. */
    ts_run *late = publisher(&c, "late");
    CHECK(late != NULL);
    log_steps(late, 0, 500);
    CHECK(ts_event(late, 10, "checkpoint", "saved") == 0);
    CHECK(ts_flush(late, 10000) == 0);
    w = (want){ "late", "train/loss", 500 };
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    CHECK(equals_store(src, c.store, &n) && n == 9000);
    int saw_ckpt = 0;
    for (int64_t until = now_ms() + 5000; !saw_ckpt && now_ms() < until; sleep_ms(20)) {
        tvm_poll(src);
        for (size_t i = 0; i < tvm_event_count(src); i++)
            saw_ckpt |= strcmp(tvm_event_at(src, i)->kind, "checkpoint") == 0;
    }
    CHECK(saw_ckpt);
    tvn_stats st;
    CHECK(tvm__net_stats(src, &st) == 0 && st.live_points > 0 && st.live_bad == 0);
    ts_close(late, 5000);
done:
    tvm_close(src);
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

static void collector_restart_fills_gap(void)
{
    collector c;
    collector_init(&c, "restart");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "restart");
    log_steps(pub, 0, 2000);
    CHECK(ts_flush(pub, 10000) == 0);
    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, c.api, NULL, err, sizeof err) == 0);
    if (!src)
        goto done;
    want w = { "restart", "train/loss", 2000 };
    CHECK(poll_until(src, has_points, &w, 10000));
    enum tvm_state st = TVM_READY;
    CHECK(poll_until(src, is_state, &st, 10000));

    /* Killed mid-stream: what LIVE brought may not be durable; the
     * publisher will send it again, and the viewer must not show it twice. */
    log_steps(pub, 2000, 2500);
    sleep_ms(30);
    collector_kill(&c, SIGKILL);
    st = TVM_RECONNECTING;
    CHECK(poll_until(src, is_state, &st, 8000));
    const char *msg = NULL;
    tvm_state(src, &msg);
    CHECK(msg && strstr(msg, "reconnecting"));
    size_t kept = points_held(src, series_index(src, "restart", "train/loss"));
    CHECK(kept >= 2000);
    log_steps(pub, 2500, 3000);   /* kept by the publisher meanwhile */
    sleep_ms(300);
    CHECK(tvm_state(src, NULL) == TVM_RECONNECTING);

    CHECK(collector_start(&c) == 0);
    st = TVM_READY;
    CHECK(poll_until(src, is_state, &st, 10000));
    CHECK(ts_flush(pub, 15000) == 0);
    log_steps(pub, 3000, 3100);   /* and live again after the return */
    CHECK(ts_flush(pub, 10000) == 0);
    w.n = 3100;
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    size_t n = 0;
    CHECK(equals_store(src, c.store, &n) && n == 6200);
    tvn_stats ns;
    CHECK(tvm__net_stats(src, &ns) == 0 && ns.reconnects == 1);

    /* Back at once, faster than any request times out: the live
     * connection dropping is what tells the source to fill the gap. */
    log_steps(pub, 3100, 3300);
    collector_kill(&c, SIGKILL);
    CHECK(collector_start(&c) == 0);
    log_steps(pub, 3300, 3400);
    CHECK(ts_flush(pub, 15000) == 0);
    w = (want){ "restart", "train/loss", 3400 };
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    CHECK(poll_until(src, is_state, &st, 10000));
    CHECK(equals_store(src, c.store, &n) && n == 6800);
    CHECK(tvm__net_stats(src, &ns) == 0 && ns.reconnects == 2);
    printf("restart: %" PRIu64 " live points, %" PRIu64 " duplicates dropped, %" PRIu64
           " history points\n", ns.live_points, ns.live_dups, ns.history_points);
done:
    tvm_close(src);
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

/* A run resumed from a checkpoint (steps go back): seen LIVE, and while
 * the viewer was away (the collector reports a timeline it has not seen:
 * the series is fetched again whole). The model's newest timeline equals
 * the store's. */
static void resumed_run_live_and_while_away(void)
{
    collector c;
    collector_init(&c, "resume");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "resume");
    log_steps(pub, 0, 1000);
    CHECK(ts_flush(pub, 10000) == 0);
    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, c.api, NULL, err, sizeof err) == 0);
    if (!src)
        goto done;
    enum tvm_state ready = TVM_READY;
    CHECK(poll_until(src, is_state, &ready, 10000));
    want w = { "resume", "train/loss", 1000 };
    CHECK(poll_until(src, has_points, &w, 10000));

    /* Resumed while watched: steps 500..699 again, a new timeline. */
    ts_run *again = publisher(&c, "resume");
    sleep_ms(5);   /* later wall times than anything before */
    log_steps(again, 500, 700);
    CHECK(ts_flush(again, 10000) == 0);
    w.n = 700;
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    size_t n = 0;
    CHECK(equals_store(src, c.store, &n) && n == 1400);
    ts_close(again, 5000);

    /* Resumed again while the viewer was away: the collector serves the
     * publisher on API and live endpoints the viewer does not know, then
     * comes back on its own. */
    collector_kill(&c, SIGTERM);
    enum tvm_state away = TVM_RECONNECTING;
    CHECK(poll_until(src, is_state, &away, 10000));
    collector hidden = c;
    strcat(hidden.api, "-hidden");
    strcat(hidden.live, "-hidden");
    CHECK(collector_start(&hidden) == 0);
    ts_run *third = publisher(&c, "resume");
    log_steps(third, 300, 400);
    CHECK(ts_flush(third, 10000) == 0);
    collector_kill(&hidden, SIGTERM);
    CHECK(collector_start(&c) == 0);
    CHECK(poll_until(src, is_state, &ready, 10000));
    w = (want){ "resume", "train/loss", 400 };
    CHECK(poll_until(src, has_points, &w, 10000));
    w.metric = "train/lr";
    CHECK(poll_until(src, has_points, &w, 10000));
    CHECK(equals_store(src, c.store, &n) && n == 800);
    tvn_stats st;
    CHECK(tvm__net_stats(src, &st) == 0 && st.resets == 2);   /* both series fetched whole */
    ts_close(third, 5000);
done:
    tvm_close(src);
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

/* History longer than one page comes in several `points` requests that
 * neither overlap nor leave a step out. Driven through net.h directly, with
 * small pages (the model's own part is tested above). */
typedef struct collect_sink {
    int64_t series;              /* the series collected (first one seen) */
    tss_point *pts;
    size_t n, cap;
    int listed;
} collect_sink;

static void collect_points(void *ctx, int64_t series_id, const tss_point *p, size_t n)
{
    collect_sink *k = ctx;
    if (!k->series)
        k->series = series_id;
    if (series_id != k->series)
        return;
    if (k->n + n > k->cap) {
        k->cap = (k->n + n) * 2;
        k->pts = realloc(k->pts, k->cap * sizeof *k->pts);
    }
    memcpy(k->pts + k->n, p, n * sizeof *p);
    k->n += n;
}

static void collect_listed(void *ctx)
{
    ((collect_sink *)ctx)->listed = 1;
}

static void long_history_in_pages(void)
{
    collector c;
    collector_init(&c, "pages");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "pages");
    int id = ts_metric(pub, "train/loss");
    const int64_t n = 25000;
    for (int64_t s = 0; s < n; s++)
        ts_log_id(pub, id, s * 3, (double)s * 0.5);   /* steps 3 apart */
    CHECK(ts_flush(pub, 30000) == 0);
    tvn_opts o = { .page_points = 1000 };
    tvn_conn *conn = NULL;
    char err[512];
    CHECK(tvn_open(&conn, c.api, &o, err, sizeof err) == 0);
    collect_sink k = { 0 };
    tvn_sink sink = { .points = collect_points, .listed = collect_listed };
    for (int64_t until = now_ms() + 30000; conn && k.n < (size_t)n && now_ms() < until; sleep_ms(5))
        tvn_drain(conn, &sink, &k);
    CHECK(k.n == (size_t)n);
    tss_store *st = NULL;
    tss_point *ref = NULL;
    size_t nref = 0;
    CHECK(tss_open(&st, c.store, NULL, err, sizeof err) == 0);
    CHECK(st && tss_read_points(st, k.series, INT64_MIN, INT64_MAX, 0, &ref, &nref) == 0);
    int same = nref == k.n;
    for (size_t i = 0; same && i < nref; i++)
        same = ref[i].step == k.pts[i].step && ref[i].t_ns == k.pts[i].t_ns &&
               memcmp(&ref[i].value, &k.pts[i].value, sizeof(double)) == 0;
    CHECK(same);
    tvn_stats stats = { 0 };
    if (conn)
        tvn_get_stats(conn, &stats);
    printf("pages: %" PRIu64 " history points in %" PRIu64 " requests\n", stats.history_points,
           stats.requests);
    CHECK(stats.requests >= 25 + 5);   /* 25 pages or more, and info, runs, series, events, gaps */
    free(ref);
    tss_close(st);
    free(k.pts);
    tvn_close(conn);
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

/* --run NAME over the network: only that run's series, history and LIVE
 * (also when another run's name starts the same: topics are prefixes). */
static void run_filter_follows_named_runs(void)
{
    collector c;
    collector_init(&c, "filter");
    CHECK(collector_start(&c) == 0);
    ts_run *keep = publisher(&c, "keep"), *skip = publisher(&c, "keep2");
    log_steps(keep, 0, 300);
    log_steps(skip, 0, 300);
    CHECK(ts_flush(keep, 10000) == 0 && ts_flush(skip, 10000) == 0);
    const char *runs[] = { "keep" };
    tvm_open_opts o = { .runs = runs, .nruns = 1 };
    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, c.api, &o, err, sizeof err) == 0);
    if (src) {
        enum tvm_state ready = TVM_READY;
        CHECK(poll_until(src, is_state, &ready, 10000));
        log_steps(keep, 300, 400);
        log_steps(skip, 300, 400);
        want w = { "keep", "train/lr", 400 };
        CHECK(poll_until(src, has_points, &w, 5000));
        CHECK(ts_flush(skip, 10000) == 0);
        sleep_ms(300);
        tvm_poll(src);
        CHECK(tvm_run_count(src) == 1 && strcmp(tvm_run_at(src, 0)->name, "keep") == 0);
        CHECK(tvm_series_count(src) == 2);
        CHECK(series_index(src, "keep2", "train/loss") == SIZE_MAX);
        tvm_close(src);
    }
    ts_close(keep, 5000);
    ts_close(skip, 5000);
    collector_kill(&c, SIGTERM);
}

/* A free TCP port p on loopback with p + 1 free too (the default layout:
 * API on p, live on p + 1). 0 when none was found. */
static int free_port_pair(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int fd[2] = { socket(AF_INET, SOCK_STREAM, 0), socket(AF_INET, SOCK_STREAM, 0) };
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int port = 0;
        if (fd[0] >= 0 && bind(fd[0], (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd[0], (struct sockaddr *)&a, &len) == 0 && ntohs(a.sin_port) < 65535) {
            port = ntohs(a.sin_port);
            a.sin_port = htons((uint16_t)(port + 1));
            if (fd[1] < 0 || bind(fd[1], (struct sockaddr *)&a, sizeof a) != 0)
                port = 0;
        }
        close(fd[0]);
        close(fd[1]);
        if (port)
            return port;
    }
    return 0;
}

/* Given only tcp://127.0.0.1:P, the live feed is found on P + 1. */
static void tcp_attach_finds_live_port(void)
{
    collector c;
    collector_init(&c, "tcp");
    int p = free_port_pair(), q = free_port_pair();
    CHECK(p && q);
    snprintf(c.api, sizeof c.api, "tcp://127.0.0.1:%d", p);
    snprintf(c.live, sizeof c.live, "tcp://127.0.0.1:%d", p + 1);
    snprintf(c.ingest, sizeof c.ingest, "tcp://127.0.0.1:%d", q);
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "tcp");
    log_steps(pub, 0, 10);
    CHECK(ts_flush(pub, 10000) == 0);
    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, c.api, NULL, err, sizeof err) == 0);
    if (src) {
        enum tvm_state ready = TVM_READY;
        CHECK(poll_until(src, is_state, &ready, 10000));
        const char *msg = NULL;
        tvm_state(src, &msg);
        CHECK(msg && strstr(msg, "live") && !strstr(msg, "does not answer"));
        log_steps(pub, 10, 20);   /* not flushed: these come LIVE */
        want w = { "tcp", "train/loss", 20 };
        CHECK(poll_until(src, has_points, &w, 5000));
        tvn_stats st;
        CHECK(tvm__net_stats(src, &st) == 0 && st.live_points >= 10);
        tvm_close(src);
    }
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

static void unreachable_endpoint(void)
{
    char where[320];
    snprintf(where, sizeof where, "ipc://%s/nobody-listens", tmpdir);
    tvm_source *src = NULL;
    char err[512];
    int64_t t0 = now_ms();
    CHECK(tvm_open(&src, where, NULL, err, sizeof err) == 0);
    CHECK(now_ms() - t0 < 500);
    if (!src)
        return;
    const char *msg = NULL;
    CHECK(tvm_state(src, &msg) == TVM_CONNECTING);
    /* After a request timeout the sentence says who does not answer. */
    for (int64_t until = now_ms() + 6000; now_ms() < until; sleep_ms(10)) {
        tvm_poll(src);
        tvm_state(src, &msg);
        if (msg && strstr(msg, "no answer"))
            break;
    }
    CHECK(tvm_state(src, &msg) == TVM_CONNECTING);
    CHECK(msg && strstr(msg, "no answer") && strstr(msg, "nobody-listens"));
    CHECK(tvm_series_count(src) == 0 && tvm_run_count(src) == 0);
    t0 = now_ms();
    tvm_close(src);
    CHECK(now_ms() - t0 < 1000);
}

static void bad_endpoints(void)
{
    const char *bad[] = { "tcp://", "ipc://x?live=", "ipc://x?frobnicate=1", "ipc://x?live=http://y" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tvm_source *src = NULL;
        char err[512] = "";
        CHECK(tvm_open(&src, bad[i], NULL, err, sizeof err) == -EINVAL);
        CHECK(src == NULL && strstr(err, bad[i]) != NULL);
        printf("%s: %s\n", bad[i], err);
    }
}

/* A ROUTER that answers every request with one fixed frame. */
typedef struct fake_peer {
    void *ctx, *router;
    const char *reply;
    pthread_t thread;
    atomic_int stop;
} fake_peer;

static void *fake_peer_main(void *arg)
{
    fake_peer *f = arg;
    zmq_pollitem_t it = { .socket = f->router, .events = ZMQ_POLLIN };
    while (!atomic_load(&f->stop)) {
        if (zmq_poll(&it, 1, 50) != 1)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        zmq_msg_recv(&id, f->router, 0);
        for (int more = zmq_msg_more(&id); more; more = zmq_msg_more(&body))
            if (zmq_msg_recv(&body, f->router, 0) < 0)
                break;
        zmq_msg_send(&id, f->router, ZMQ_SNDMORE);
        zmq_send(f->router, f->reply, strlen(f->reply), 0);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    return NULL;
}

static void fake_peer_fails(const char *name, const char *reply, const char *expect)
{
    fake_peer f = { .reply = reply };
    char ep[320];
    snprintf(ep, sizeof ep, "ipc://%s/%s", tmpdir, name);
    atomic_init(&f.stop, 0);
    f.ctx = zmq_ctx_new();
    f.router = zmq_socket(f.ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(f.router, ZMQ_LINGER, &linger, sizeof linger);
    CHECK(zmq_bind(f.router, ep) == 0);
    pthread_create(&f.thread, NULL, fake_peer_main, &f);

    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, ep, NULL, err, sizeof err) == 0);
    if (src) {
        enum tvm_state failed = TVM_FAILED;
        CHECK(poll_until(src, is_state, &failed, 8000));
        const char *msg = NULL;
        tvm_state(src, &msg);
        printf("%s: %s\n", name, msg ? msg : "(none)");
        CHECK(msg && strstr(msg, expect) && strstr(msg, name));
        CHECK(strstr(tvm_errmsg(src), expect) != NULL);
        CHECK(tvm_run_count(src) == 0);
        tvm_close(src);
    }
    atomic_store(&f.stop, 1);
    pthread_join(f.thread, NULL);
    zmq_close(f.router);
    zmq_ctx_term(f.ctx);
}

static void protocol_2_peer_fails(void)
{
    fake_peer_fails("proto2", "{\"ok\":true,\"protocol\":2,\"version\":\"9.0.0\",\"store\":\"\"}",
                    "speaks protocol version 2");
}

static void not_json_peer_fails(void)
{
    fake_peer_fails("garbage", "HTTP/1.1 400 Bad Request", "not JSON");
}

/* Send [topic][header][payload] on pub, with a header built from fields. */
static void send3(void *pub, const char *topic, uint32_t magic, uint8_t version, uint8_t type,
                  uint64_t stream, const void *payload, size_t len)
{
    uint8_t h[TSW_HEADER_SIZE] = { 0 };
    tsw_put_u32(h, magic);
    h[4] = version;
    h[5] = type;
    tsw_put_u64(h + 8, stream);
    zmq_send(pub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(pub, h, sizeof h, ZMQ_SNDMORE);
    zmq_send(pub, payload, len, 0);
}

/* A LIVE payload of one point; returns its length. */
static size_t live_payload(uint8_t *out, uint64_t series, const char *metric, size_t mlen,
                           uint32_t count_field, int64_t step, double value)
{
    tsw_put_u64(out, series);
    tsw_put_u32(out + 8, 0);
    tsw_put_u16(out + 12, (uint16_t)mlen);
    memcpy(out + 14, metric, mlen);
    tsw_put_u32(out + 14 + mlen, count_field);
    tsw_live_point_encode(out + 18 + mlen, step, 1700000000000000000, value);
    return 18 + mlen + TSW_LIVE_POINT;
}

static void malformed_live_ignored(void)
{
    collector c;
    collector_init(&c, "badlive");
    CHECK(collector_start(&c) == 0);
    ts_run *pub = publisher(&c, "bad");
    log_steps(pub, 0, 100);
    CHECK(ts_flush(pub, 10000) == 0);

    /* The viewer takes its live feed from our PUB, its API from the collector. */
    char pub_ep[320], where[700];
    snprintf(pub_ep, sizeof pub_ep, "ipc://%s/fake-live", tmpdir);
    snprintf(where, sizeof where, "%s?live=%s", c.api, pub_ep);
    void *ctx = zmq_ctx_new(), *pubs = zmq_socket(ctx, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(pubs, ZMQ_LINGER, &linger, sizeof linger);
    CHECK(zmq_bind(pubs, pub_ep) == 0);
    tvm_source *src = NULL;
    char err[512];
    CHECK(tvm_open(&src, where, NULL, err, sizeof err) == 0);
    if (!src)
        goto done;
    want w = { "bad", "train/loss", 100 };
    CHECK(poll_until(src, has_points, &w, 10000));
    enum tvm_state ready = TVM_READY;
    CHECK(poll_until(src, is_state, &ready, 10000));
    size_t si = series_index(src, "bad", "train/loss");
    CHECK(si != SIZE_MAX);
    if (si == SIZE_MAX)
        goto done;
    uint64_t sid = (uint64_t)tvm_series_at(src, si)->id;

    uint8_t p[256];
    size_t len = live_payload(p, sid, "train/loss", 10, 1, 1000, 42.0);
    int bad = 0;
    zmq_send(pubs, "bad", 3, 0), bad++;                                     /* one frame */
    zmq_send(pubs, "bad", 3, ZMQ_SNDMORE), zmq_send(pubs, p, len, 0), bad++; /* two frames */
    send3(pubs, "bad", 0xdeadbeef, 1, TSW_LIVE, sid, p, len), bad++;        /* bad magic */
    send3(pubs, "bad", TSW_MAGIC, 2, TSW_LIVE, sid, p, len), bad++;         /* version 2 */
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_ACK, sid, p, len), bad++;          /* not LIVE */
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid, p, 10), bad++;          /* truncated head */
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid, p, len - 1), bad++;     /* truncated point */
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid + 1, p, len), bad++;     /* header/payload disagree */
    uint8_t q[256];
    size_t qlen = live_payload(q, sid, "train/loss", 10, 7, 1000, 42.0);
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid, q, qlen), bad++;        /* count says 7 */
    qlen = live_payload(q, sid, "\xff\xfe", 2, 1, 1000, 42.0);
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid, q, qlen), bad++;        /* metric not UTF-8 */
    qlen = live_payload(q, 0, "train/loss", 10, 1, 1000, 42.0);
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, 0, q, qlen), bad++;          /* series 0 */
    zmq_send(pubs, "bad", 3, ZMQ_SNDMORE);                                  /* four frames */
    zmq_send(pubs, "x", 1, ZMQ_SNDMORE);
    zmq_send(pubs, "y", 1, ZMQ_SNDMORE);
    zmq_send(pubs, "z", 1, 0), bad++;
    send3(pubs, "bad", TSW_MAGIC, 1, TSW_LIVE, sid, p, len);                /* the good one */

    w.n = 101;
    CHECK(poll_until(src, has_points, &w, 5000));
    tvn_stats st;
    CHECK(tvm__net_stats(src, &st) == 0);
    printf("malformed LIVE: %" PRIu64 " counted of %d sent\n", st.live_bad, bad);
    CHECK(st.live_bad == (uint64_t)bad);
    CHECK(st.live_msgs == 1);
    tss_point *pts = NULL;
    size_t n = 0;
    CHECK(tvm_points(src, si, 1000, 1000, TVM_X_STEP, &pts, &n) == 0 && n == 1 && pts[0].value == 42.0);
    free(pts);
    CHECK(tvm_state(src, NULL) == TVM_READY);
done:
    tvm_close(src);
    zmq_close(pubs);
    zmq_ctx_term(ctx);
    ts_close(pub, 5000);
    collector_kill(&c, SIGTERM);
}

int main(int argc, char **argv)
{
    int file_history = argc == 3 && strcmp(argv[2], "--file-history") == 0;
    if (argc != 2 && !file_history) {
        fprintf(stderr, "usage: %s PATH/TO/trainscope [--file-history]\n", argv[0]);
        return 2;
    }
    collector_bin = argv[1];
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts-attach-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    struct { const char *name; void (*fn)(void); } tests[] = {
        { "bad_endpoints", bad_endpoints },
        { "unreachable_endpoint", unreachable_endpoint },
        { "protocol_2_peer_fails", protocol_2_peer_fails },
        { "not_json_peer_fails", not_json_peer_fails },
        { "malformed_live_ignored", malformed_live_ignored },
        { "findings_over_the_network", findings_over_the_network },
        { "tcp_attach_finds_live_port", tcp_attach_finds_live_port },
        { "resumed_run_live_and_while_away", resumed_run_live_and_while_away },
        { "long_history_in_pages", long_history_in_pages },
        { "run_filter_follows_named_runs", run_filter_follows_named_runs },
        { "collector_restart_fills_gap", collector_restart_fills_gap },
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %s\n", failures == before ? "ok" : "FAILED", tests[i].name);
        fflush(stdout);
    }
    int before = failures;
    attach_sees_history_then_live("");
    printf("%s attach_sees_history_then_live (history from the API)\n", failures == before ? "ok" : "FAILED");
    if (file_history) {
        before = failures;
        attach_sees_history_then_live("?history=file");
        printf("%s attach_sees_history_then_live (history from the store file)\n",
               failures == before ? "ok" : "FAILED");
    }
    printf("slowest tvm_poll: %" PRId64 " ms\n", slowest_poll_ms);
    CHECK(slowest_poll_ms < 200);
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (failures == 0 && system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
