/* test_client.c - libtrainscope against a real ZeroMQ ROUTER in the role of
 * the collector: the bytes of HELLO, DEFINE, BATCH, EVENT, DROPS and BYE,
 * and the Reliability rules of PROTOCOL.md (ACK frees, GAP resends from
 * next_expected, silence resends after 1 s), plus argument checking and
 * bounded behaviour with no collector at all.
 *
 * Two ways to play the collector:
 * - a router driven step by step from the test (protocol-level checks);
 * - `peer`, a thread that applies messages in order and acknowledges them
 *   as PROTOCOL.md's table says (flush, close, drops, threads).
 * Endpoints are ipc:// paths unique to this process, or tcp on a port the
 * kernel picks, so parallel test runs do not meet.
 *
 * Prints one FAIL line per failed check; exits 0 when none failed.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "trainscope.h"
#include "wire.h"

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond);              \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* An ipc endpoint nobody listens on (yet). */
static void ipc_endpoint(char *out, size_t cap, const char *what)
{
    snprintf(out, cap, "ipc:///tmp/trainscope-test-%ld-%s", (long)getpid(), what);
}

static ts_options options(const char *endpoint, const char *run)
{
    ts_options o = ts_options_default();
    o.endpoint = endpoint;
    o.run = run;
    o.batch_interval_ms = 5;
    return o;
}

/* The I/O thread counts a message just after ZeroMQ takes it, so the router
 * may hold it before the counters move: wait a little for them. */
static ts_stats stats_after(ts_run *run, uint64_t sent, uint64_t resent)
{
    ts_stats st;
    int64_t end = now_ms() + 1000;
    for (;;) {
        ts_get_stats(run, &st);
        if ((st.sent >= sent && st.resent >= resent) || now_ms() > end)
            return st;
        sleep_ms(1);
    }
}

/* ---- a ROUTER playing the collector ---- */

typedef struct router {
    void *ctx, *sock;
    char endpoint[256];
    uint8_t peer_id[256]; /* the DEALER's routing id, for replies */
    size_t peer_id_len;
} router;

typedef struct msg {
    tsw_header h;
    uint8_t *p;
    size_t len;
} msg;

static void router_open(router *r, const char *bind_to)
{
    memset(r, 0, sizeof *r);
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(r->sock, bind_to) < 0) {
        printf("FAIL router_open: bind %s: %s\n", bind_to, zmq_strerror(zmq_errno()));
        failures++;
    }
    size_t len = sizeof r->endpoint;
    zmq_getsockopt(r->sock, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
}

static void router_close(router *r)
{
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
    /* libzmq does not always remove the socket file of an ipc endpoint. */
    if (strncmp(r->endpoint, "ipc://", 6) == 0)
        unlink(r->endpoint + 6);
}

static void msg_free(msg *m)
{
    free(m->p);
    m->p = NULL;
}

/* Receive one publisher message within timeout_ms: 1, else 0. */
static int router_recv(router *r, msg *m, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = r->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    zmq_msg_t f[3];
    for (int i = 0; i < 3; i++) {
        zmq_msg_init(&f[i]);
        zmq_msg_recv(&f[i], r->sock, 0);
        if (i < 2 && !zmq_msg_more(&f[i])) {
            printf("FAIL router_recv: message of %d frames\n", i + 1);
            failures++;
            for (int k = 0; k <= i; k++)
                zmq_msg_close(&f[k]);
            return 0;
        }
    }
    CHECK(!zmq_msg_more(&f[2]));
    r->peer_id_len = zmq_msg_size(&f[0]);
    memcpy(r->peer_id, zmq_msg_data(&f[0]), r->peer_id_len);
    CHECK(tsw_header_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &m->h) == 0);
    m->len = zmq_msg_size(&f[2]);
    m->p = malloc(m->len + 1);
    memcpy(m->p, zmq_msg_data(&f[2]), m->len);
    m->p[m->len] = 0;
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&f[i]);
    return 1;
}

static void router_reply(router *r, uint64_t stream, uint8_t type, uint16_t flags,
                         uint64_t seq, const void *payload, size_t len)
{
    uint8_t hdr[TSW_HEADER_SIZE];
    tsw_header h = {.version = TSW_VERSION, .type = type, .flags = flags, .stream = stream,
                    .seq = seq};
    tsw_header_encode(hdr, &h);
    zmq_send(r->sock, r->peer_id, r->peer_id_len, ZMQ_SNDMORE);
    zmq_send(r->sock, hdr, sizeof hdr, ZMQ_SNDMORE);
    zmq_send(r->sock, payload, len, 0);
}

static void router_ack(router *r, uint64_t stream, uint64_t seq, uint16_t flags,
                       uint64_t next_expected)
{
    uint8_t p[TSW_ACK_SIZE];
    tsw_ack_encode(p, next_expected);
    router_reply(r, stream, TSW_ACK, flags, seq, p, sizeof p);
}

/* Receive until a message with this seq arrives (1) or timeout_ms (0). */
static int router_wait_seq(router *r, msg *m, uint64_t seq, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (!router_recv(r, m, (int)(end - now_ms())))
            return 0;
        if (m->h.seq == seq)
            return 1;
        msg_free(m);
    }
    return 0;
}

/* ---- a collector thread: applies in order, acknowledges at once ---- */

typedef struct peer {
    router r;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    uint64_t expected;         /* next seq to apply */
    uint64_t applied[8];       /* messages applied, by type */
    uint64_t samples;          /* samples applied */
    uint64_t per_metric[4];    /* samples per metric id 0..3 */
    uint64_t step_sum[4];
    bool defined[4];
    int undefined_uses;        /* samples whose id had no DEFINE before */
    int out_of_order;          /* samples of a series whose step went back */
    int64_t last_step[4];
    tsw_drops drops;           /* merged DROPS */
    char bye[80];
    int bye_len;               /* -1: no BYE yet */
} peer;

static void peer_apply_batch(peer *p, const msg *m)
{
    uint32_t n;
    CHECK(tsw_batch_decode(m->p, m->len, &n) == 0);
    for (uint32_t i = 0; i < n; i++) {
        tsw_sample s;
        tsw_sample_decode(m->p + tsw_batch_size(i), &s);
        p->samples++;
        if (s.metric >= 4)
            continue;
        if (!p->defined[s.metric])
            p->undefined_uses++;
        if (p->per_metric[s.metric] && s.step < p->last_step[s.metric])
            p->out_of_order++;
        p->last_step[s.metric] = s.step;
        p->per_metric[s.metric]++;
        p->step_sum[s.metric] += (uint64_t)s.step;
    }
}

static void peer_apply(peer *p, const msg *m)
{
    p->applied[m->h.type & 7]++;
    if (m->h.type == TSW_DEFINE) {
        size_t off = 0;
        uint32_t id;
        const char *name;
        size_t len;
        while (tsw_define_next(m->p, m->len, &off, &id, &name, &len) == 1)
            if (id < 4)
                p->defined[id] = true;
    } else if (m->h.type == TSW_BATCH) {
        peer_apply_batch(p, m);
    } else if (m->h.type == TSW_DROPS) {
        tsw_drops d;
        CHECK(tsw_drops_decode(m->p, m->len, &d) == 0);
        if (p->drops.count == 0) {
            p->drops = d;
        } else {
            p->drops.count += d.count;
            p->drops.step_first = d.step_first < p->drops.step_first ? d.step_first : p->drops.step_first;
            p->drops.step_last = d.step_last > p->drops.step_last ? d.step_last : p->drops.step_last;
            p->drops.t_first = d.t_first < p->drops.t_first ? d.t_first : p->drops.t_first;
            p->drops.t_last = d.t_last > p->drops.t_last ? d.t_last : p->drops.t_last;
        }
    } else if (m->h.type == TSW_BYE) {
        p->bye_len = (int)(m->len < sizeof p->bye ? m->len : sizeof p->bye - 1);
        memcpy(p->bye, m->p, (size_t)p->bye_len);
    }
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    while (!atomic_load(&p->stop)) {
        msg m;
        if (!router_recv(&p->r, &m, 10))
            continue;
        uint16_t flags = 0;
        pthread_mutex_lock(&p->mu);
        if (m.h.seq == p->expected) {
            peer_apply(p, &m);
            p->expected++;
        } else if (m.h.seq > p->expected) {
            flags = TSW_ACK_GAP;
        }
        uint64_t e = p->expected;
        pthread_mutex_unlock(&p->mu);
        router_ack(&p->r, m.h.stream, e - 1, flags, e);
        msg_free(&m);
    }
    return NULL;
}

static void peer_start(peer *p, const char *bind_to)
{
    memset(p, 0, sizeof *p);
    router_open(&p->r, bind_to);
    p->expected = 1;
    p->bye_len = -1;
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->stop, false);
    pthread_create(&p->th, NULL, peer_main, p);
}

static void peer_stop(peer *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    router_close(&p->r);
    pthread_mutex_destroy(&p->mu);
}

/* ---- argument checking ---- */

static void test_open_rejects_bad_options(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "args");
    ts_run *run = (ts_run *)&run;
    ts_options o = options(ep, "r");
    CHECK(ts_open(NULL, &o) == TS_EINVAL);
    CHECK(ts_open(&run, NULL) == TS_EINVAL && run == NULL);

    char long_name[TSW_MAX_NAME + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad_runs[] = {NULL, "", "\xff\xfe", "bad\xc0\x80overlong", long_name};
    for (size_t i = 0; i < sizeof bad_runs / sizeof bad_runs[0]; i++) {
        o = options(ep, bad_runs[i]);
        CHECK(ts_open(&run, &o) == TS_EINVAL);
    }
    o = options(ep, "r"), o.project = "\xed\xa0\x80"; /* a surrogate */
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options(ep, "r"), o.rank = -1;
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options(ep, "r"), o.world_size = 0;
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options(ep, "r"), o.rank = 2, o.world_size = 2;
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options(ep, "r"), o.config_json = "lr=0.1";
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options(ep, "r"), o.config_json = "[1, 2]";
    CHECK(ts_open(&run, &o) == TS_EINVAL);
    o = options("nonsense://here", "r");
    CHECK(ts_open(&run, &o) == TS_EZMQ);
    o = options("tcp://", "r");
    CHECK(ts_open(&run, &o) == TS_EZMQ);
    CHECK(run == NULL);

    /* The longest valid name and a last rank are fine. */
    long_name[TSW_MAX_NAME] = '\0';
    o = options(ep, long_name), o.rank = 3, o.world_size = 4, o.config_json = " {} ";
    CHECK(ts_open(&run, &o) == 0 && run != NULL);
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
    CHECK(ts_close(NULL, 0) == 0);
}

static void test_metric_and_log_reject_bad_arguments(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "metric");
    ts_options o = options(ep, "metrics");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);

    char long_name[TSW_MAX_NAME + 2];
    memset(long_name, 'm', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(ts_metric(NULL, "x") == TS_EINVAL);
    CHECK(ts_metric(run, NULL) == TS_EINVAL);
    CHECK(ts_metric(run, "") == TS_EINVAL);
    CHECK(ts_metric(run, "\x80") == TS_EINVAL);
    CHECK(ts_metric(run, long_name) == TS_EINVAL);
    CHECK(ts_log(run, long_name, 0, 1.0) == TS_EINVAL);
    CHECK(ts_log(run, "\xc3", 0, 1.0) == TS_EINVAL);
    long_name[TSW_MAX_NAME] = '\0';
    CHECK(ts_metric(run, long_name) == 0);

    CHECK(ts_metric(run, "train/loss") == 1);
    CHECK(ts_metric(run, "train/loss") == 1);
    CHECK(ts_metric(run, "caf\xc3\xa9 \"quoted\"") == 2);
    CHECK(ts_log(run, "new/by-name", 0, 1.0) == 0);
    CHECK(ts_metric(run, "new/by-name") == 3);

    CHECK(ts_log_id(run, 4, 0, 1.0) == TS_EINVAL);
    CHECK(ts_log_id(run, -1, 0, 1.0) == TS_EINVAL);
    CHECK(ts_log_id(NULL, 0, 0, 1.0) == TS_EINVAL);
    CHECK(ts_log_at(run, 1, 7, 123, NAN) == 0);

    CHECK(ts_event(run, 0, NULL, "x") == TS_EINVAL);
    CHECK(ts_event(run, 0, "", "x") == TS_EINVAL);
    CHECK(ts_event(run, 0, "a-kind-that-is-longer-than-sixty-four-bytes-which-is-the-limit-xx",
                   "x") == TS_EINVAL);
    CHECK(ts_event(run, 0, "note", "\xff") == TS_EINVAL);
    CHECK(ts_event(run, 0, "note", NULL) == 0);
    CHECK(ts_flush(NULL, 0) == TS_EINVAL);

    ts_stats st;
    ts_get_stats(run, &st);
    CHECK(st.logged == 2 && st.dropped == 0 && st.acked == 0 && st.connected == 0);
    ts_get_stats(NULL, &st);
    CHECK(st.logged == 0);

    /* An invalid BYE status still closes, and says so. */
    CHECK(ts_close_status(run, 0, "\xff") == TS_ETIMEDOUT);

    for (int e = TS_ETOOMANY; e <= TS_OK; e++)
        CHECK(ts_strerror(e) && strcmp(ts_strerror(e), "unknown error") != 0);
    CHECK(strcmp(ts_strerror(-99), "unknown error") == 0);
}

static void test_metric_ids_stop_at_protocol_limit(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "many");
    ts_options o = options(ep, "many");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    char name[32];
    int ok = 1;
    for (int i = 0; i <= TSW_MAX_METRIC_ID && ok; i++) {
        snprintf(name, sizeof name, "m%d", i);
        ok = ts_metric(run, name) == i;
    }
    CHECK(ok);
    CHECK(ts_metric(run, "one-too-many") == TS_ETOOMANY);
    CHECK(ts_metric(run, "m12345") == 12345);
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
}

/* ---- no collector ---- */

static void test_close_without_collector_times_out(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "nobody");
    ts_options o = options(ep, "lonely");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    int id = ts_metric(run, "x");
    for (int i = 0; i < 1000; i++)
        ts_log_id(run, id, i, i);
    int64_t t0 = now_ms();
    CHECK(ts_flush(run, 100) == TS_ETIMEDOUT);
    int64_t t1 = now_ms();
    CHECK(t1 - t0 >= 100 && t1 - t0 < 300);
    CHECK(ts_close(run, 300) == TS_ETIMEDOUT);
    int64_t t2 = now_ms();
    CHECK(t2 - t1 >= 300 && t2 - t1 < 500);

    /* Also on tcp, to a port nobody listens on, with a zero timeout. */
    router r;
    router_open(&r, "tcp://127.0.0.1:*");
    char tcp[256];
    snprintf(tcp, sizeof tcp, "%s", r.endpoint);
    router_close(&r);
    o = options(tcp, "lonely-tcp");
    CHECK(ts_open(&run, &o) == 0);
    CHECK(ts_log(run, "x", 0, 1.0) == 0);
    t0 = now_ms();
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
    CHECK(now_ms() - t0 < 200);
}

/* ---- the bytes ---- */

static void check_hello(const msg *m, const char *run_name)
{
    CHECK(m->h.type == TSW_HELLO && m->h.seq == 1 && m->h.stream != 0 && m->h.flags == 0);
    cJSON *j = cJSON_ParseWithLength((const char *)m->p, m->len);
    CHECK(j != NULL);
    if (!j)
        return;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
    CHECK(cJSON_IsString(run) && strcmp(run->valuestring, run_name) == 0);
    const cJSON *project = cJSON_GetObjectItemCaseSensitive(j, "project");
    CHECK(cJSON_IsString(project) && strcmp(project->valuestring, "tests") == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "rank")->valueint == 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "world_size")->valueint == 2);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(j, "config");
    CHECK(cJSON_IsObject(config));
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(config, "lr");
    CHECK(cJSON_IsNumber(lr) && lr->valuedouble == 0.25);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "pid")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "start_ns")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "client")));
    cJSON_Delete(j);
}

static void test_hello_define_batch_event_bytes(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "bytes");
    router r;
    router_open(&r, ep);
    const char *name = "run \"one\" \\ caf\xc3\xa9\n";
    ts_options o = options(ep, name);
    o.project = "tests";
    o.rank = 1;
    o.world_size = 2;
    o.config_json = "{\"lr\": 0.25, \"layers\": [1, 2]}";
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);

    int loss = ts_metric(run, "train/loss");
    int lr = ts_metric(run, "train/lr");
    CHECK(ts_log_at(run, loss, 0, 1000, 2.5) == 0);
    CHECK(ts_log_at(run, loss, 1, 2000, -0.0) == 0);
    CHECK(ts_log_at(run, loss, 2, 3000, INFINITY) == 0);
    CHECK(ts_event(run, 2, "checkpoint", "saved \"ckpt-2\"") == 0);
    CHECK(ts_log(run, "train/lr", 3, 0.125) == 0);

    msg m;
    CHECK(router_recv(&r, &m, 2000));
    check_hello(&m, name);
    uint64_t stream = m.h.stream;
    msg_free(&m);

    /* Collect until the three samples, the event and the fourth sample
     * are in; batching may split them differently from run to run, but
     * seqs are consecutive and a DEFINE precedes every id's first use. */
    bool defined[2] = {false, false};
    int samples = 0, events = 0, expect_seq = 2;
    int64_t end = now_ms() + 3000;
    while ((samples < 4 || events < 1) && now_ms() < end) {
        if (!router_recv(&r, &m, 200))
            continue;
        CHECK(m.h.stream == stream && m.h.seq == (uint64_t)expect_seq++);
        if (m.h.type == TSW_DEFINE) {
            size_t off = 0;
            uint32_t id;
            const char *nm;
            size_t len;
            int rc;
            while ((rc = tsw_define_next(m.p, m.len, &off, &id, &nm, &len)) == 1) {
                CHECK(id <= 1);
                CHECK(id != (uint32_t)loss || (len == 10 && memcmp(nm, "train/loss", 10) == 0));
                CHECK(id != (uint32_t)lr || (len == 8 && memcmp(nm, "train/lr", 8) == 0));
                if (id <= 1)
                    defined[id] = true;
            }
            CHECK(rc == 0);
        } else if (m.h.type == TSW_BATCH) {
            uint32_t n;
            CHECK(tsw_batch_decode(m.p, m.len, &n) == 0);
            for (uint32_t i = 0; i < n; i++, samples++) {
                tsw_sample s;
                tsw_sample_decode(m.p + tsw_batch_size(i), &s);
                CHECK(s.metric <= 1 && defined[s.metric]);
                CHECK(s.step == samples);
                if (samples < 3) {
                    CHECK(s.metric == (uint32_t)loss && s.time_ns == 1000 * (samples + 1));
                } else {
                    CHECK(s.metric == (uint32_t)lr && s.value == 0.125 && events == 1);
                }
                if (samples == 0)
                    CHECK(s.value == 2.5);
                if (samples == 1)
                    CHECK(s.value == 0.0 && signbit(s.value));
                if (samples == 2)
                    CHECK(isinf(s.value) && s.value > 0);
            }
        } else if (m.h.type == TSW_EVENT) {
            tsw_event e;
            CHECK(tsw_event_decode(m.p, m.len, &e) == 0);
            CHECK(e.step == 2 && e.kind_len == 10 && memcmp(e.kind, "checkpoint", 10) == 0);
            CHECK(e.text_len == 14 && memcmp(e.text, "saved \"ckpt-2\"", 14) == 0);
            CHECK(samples == 3);
            events++;
        } else {
            printf("FAIL %s: unexpected message type %d\n", __func__, m.h.type);
            failures++;
        }
        msg_free(&m);
    }
    CHECK(samples == 4 && events == 1);
    ts_stats st = stats_after(run, 4, 0);
    CHECK(st.logged == 4 && st.sent == 4 && st.acked == 0);
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
    router_close(&r);
}

/* ---- reliability ---- */

static void test_ack_frees_and_flush_returns(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "ack");
    peer p;
    peer_start(&p, ep);
    ts_options o = options(ep, "acked");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    CHECK(ts_flush(run, 5000) == 0); /* nothing logged: the HELLO alone */
    int id = ts_metric(run, "x");
    for (int i = 0; i < 10000; i++)
        CHECK(ts_log_id(run, id, i, i * 0.5) == 0 || (printf("at %d\n", i), 0));
    CHECK(ts_event(run, 9999, "note", "done") == 0);
    CHECK(ts_flush(run, 5000) == 0);
    ts_stats st;
    ts_get_stats(run, &st);
    CHECK(st.logged == 10000 && st.sent == 10000 && st.acked == 10000 && st.dropped == 0);
    CHECK(st.connected == 1);
    pthread_mutex_lock(&p.mu);
    CHECK(p.samples == 10000 && p.per_metric[0] == 10000 && p.undefined_uses == 0);
    CHECK(p.step_sum[0] == 9999ull * 10000 / 2 && p.out_of_order == 0);
    CHECK(p.applied[TSW_EVENT] == 1 && p.bye_len == -1);
    pthread_mutex_unlock(&p.mu);

    CHECK(ts_log_id(run, id, 10000, 1.0) == 0);
    CHECK(ts_close_status(run, 5000, "failed") == 0);
    pthread_mutex_lock(&p.mu);
    CHECK(p.samples == 10001);
    CHECK(p.bye_len == 6 && memcmp(p.bye, "failed", 6) == 0);
    pthread_mutex_unlock(&p.mu);
    peer_stop(&p);
}

static void test_gap_resends_from_next_expected(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "gap");
    router r;
    router_open(&r, ep);
    ts_options o = options(ep, "gappy");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    CHECK(ts_log(run, "x", 0, 1.0) == 0); /* DEFINE = seq 2, BATCH = seq 3 */
    msg m;
    CHECK(router_wait_seq(&r, &m, 3, 2000));
    CHECK(m.h.type == TSW_BATCH);
    uint64_t stream = m.h.stream;
    msg_free(&m);

    /* "I have applied 1, expected 2 and got something later." */
    router_ack(&r, stream, 1, TSW_ACK_GAP, 2);
    CHECK(router_recv(&r, &m, 500));
    CHECK(m.h.seq == 2 && m.h.type == TSW_DEFINE);
    msg_free(&m);
    CHECK(router_recv(&r, &m, 500));
    CHECK(m.h.seq == 3 && m.h.type == TSW_BATCH);
    msg_free(&m);

    /* The same GAP again at once is ignored (200 ms rule)... */
    router_ack(&r, stream, 1, TSW_ACK_GAP, 2);
    CHECK(!router_recv(&r, &m, 150));
    /* ...but answered once 200 ms have passed. */
    sleep_ms(100);
    router_ack(&r, stream, 1, TSW_ACK_GAP, 2);
    CHECK(router_recv(&r, &m, 500));
    CHECK(m.h.seq == 2);
    msg_free(&m);
    CHECK(router_recv(&r, &m, 500));
    CHECK(m.h.seq == 3);
    msg_free(&m);

    ts_stats st = stats_after(run, 1, 4);
    CHECK(st.resent == 4 && st.sent == 1 && st.acked == 0);

    /* A plain ACK of everything: nothing more is resent, flush returns. */
    router_ack(&r, stream, 3, 0, 4);
    CHECK(ts_flush(run, 1000) == 0);
    CHECK(!router_recv(&r, &m, 1300));
    ts_get_stats(run, &st);
    CHECK(st.acked == 1 && st.resent == 4);
    /* All data is acknowledged: close succeeds without waiting for the BYE's ACK. */
    CHECK(ts_close(run, 0) == 0);
    router_close(&r);
}

static void test_silence_resends_after_one_second(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "silence");
    router r;
    router_open(&r, ep);
    ts_options o = options(ep, "silence");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    msg m;
    CHECK(router_recv(&r, &m, 2000));
    int64_t t0 = now_ms();
    CHECK(m.h.seq == 1);
    msg_free(&m);
    CHECK(router_recv(&r, &m, 2000));
    int64_t t1 = now_ms();
    CHECK(m.h.seq == 1 && m.h.type == TSW_HELLO);
    CHECK(t1 - t0 >= 950 && t1 - t0 <= 1300);
    msg_free(&m);

    /* Acknowledge the HELLO, log, stay silent: the resend starts from the
     * oldest unacknowledged message (2), not from 1. */
    router_ack(&r, m.h.stream, 1, 0, 2);
    CHECK(ts_log(run, "x", 0, 1.0) == 0);
    CHECK(router_wait_seq(&r, &m, 3, 1000));
    t0 = now_ms();
    msg_free(&m);
    CHECK(router_recv(&r, &m, 2000));
    t1 = now_ms();
    CHECK(m.h.seq == 2 && t1 - t0 >= 900 && t1 - t0 <= 1300);
    msg_free(&m);
    CHECK(router_recv(&r, &m, 500));
    CHECK(m.h.seq == 3);
    msg_free(&m);
    ts_stats st = stats_after(run, 1, 3);
    CHECK(st.resent == 3 && st.connected == 0);
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
    router_close(&r);
}

static void test_error_reply_is_reported_not_fatal(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "error");
    router r;
    router_open(&r, ep);
    ts_options o = options(ep, "erroneous");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    CHECK(ts_log(run, "x", 0, 1.0) == 0);
    msg m;
    CHECK(router_wait_seq(&r, &m, 3, 2000));
    uint64_t stream = m.h.stream;
    msg_free(&m);
    /* The collector rejects seq 3 (the seq is consumed) and acks it. */
    uint8_t err[64];
    size_t n = tsw_error_encode(err, sizeof err, TSW_E_METRIC, "test: expected rejection");
    printf("(one 'collector rejected message 3' line on stderr is expected)\n");
    fflush(stdout);
    router_reply(&r, stream, TSW_ERROR, 0, 3, err, n);
    router_reply(&r, stream, TSW_ERROR, 0, 3, err, n); /* said once only */
    router_ack(&r, stream, 3, 0, 4);
    CHECK(ts_flush(run, 1000) == 0);
    CHECK(ts_log(run, "x", 1, 2.0) == 0);
    CHECK(router_wait_seq(&r, &m, 4, 1000));
    CHECK(m.h.type == TSW_BATCH);
    msg_free(&m);
    CHECK(ts_close(run, 0) == TS_ETIMEDOUT);
    router_close(&r);
}

/* ---- bounded memory ---- */

static void test_full_ring_drops_then_reports(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "drops");
    ts_options o = options(ep, "droppy");
    o.ring_samples = 64;
    o.max_unacked_bytes = 4096;
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    int id = ts_metric(run, "x");
    const int64_t t_base = 1700000000000000000;
    uint64_t accepted = 0, dropped = 0;
    int64_t accepted_sum = 0, first_drop = -1, last_drop = -1;
    for (int64_t step = 0; step < 20000; step++) {
        int rc = ts_log_at(run, id, step, t_base + step, (double)step);
        if (rc == 0) {
            accepted++;
            accepted_sum += step;
        } else {
            CHECK(rc == TS_EDROPPED);
            dropped++;
            if (first_drop < 0)
                first_drop = step;
            last_drop = step;
        }
    }
    /* 4 KiB of outbox and 64 slots hold far fewer than 20000 samples. */
    CHECK(dropped > 10000 && accepted + dropped == 20000);
    ts_stats st;
    ts_get_stats(run, &st);
    CHECK(st.dropped == dropped && st.logged == accepted && st.sent == 0);
    /* An event still fits in the reserve of a ring full of samples. */
    CHECK(ts_event(run, 20000, "note", "after the flood") == 0);

    /* The collector shows up: everything kept is delivered, then a DROPS
     * with the count and the ranges of what was not. */
    peer p;
    peer_start(&p, ep);
    CHECK(ts_flush(run, 5000) == 0);
    int64_t end = now_ms() + 2000;
    for (;;) {
        pthread_mutex_lock(&p.mu);
        bool done = p.drops.count >= dropped;
        pthread_mutex_unlock(&p.mu);
        if (done || now_ms() > end)
            break;
        sleep_ms(5);
    }
    pthread_mutex_lock(&p.mu);
    CHECK(p.drops.count == dropped);
    CHECK(p.drops.step_first == first_drop && p.drops.step_last == last_drop);
    CHECK(p.drops.t_first == t_base + first_drop && p.drops.t_last == t_base + last_drop);
    CHECK(p.samples == accepted && (int64_t)p.step_sum[0] == accepted_sum);
    CHECK(p.applied[TSW_EVENT] == 1 && p.undefined_uses == 0 && p.out_of_order == 0);
    pthread_mutex_unlock(&p.mu);
    ts_get_stats(run, &st);
    CHECK(st.acked == accepted && st.dropped == dropped);
    CHECK(ts_close(run, 2000) == 0);
    peer_stop(&p);
}

/* ---- several producer threads ---- */

typedef struct producer {
    ts_run *run;
    int id;
    int n;
    int by_name;
    int failed;
} producer;

static void *produce(void *arg)
{
    producer *pr = arg;
    char name[8];
    snprintf(name, sizeof name, "t%d", pr->id);
    for (int i = 0; i < pr->n; i++) {
        int rc = pr->by_name ? ts_log(pr->run, name, i, i) : ts_log_id(pr->run, pr->id, i, i);
        pr->failed += rc != 0;
    }
    return NULL;
}

static void test_threads_log_concurrently(void)
{
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "threads");
    peer p;
    peer_start(&p, ep);
    ts_options o = options(ep, "threads");
    ts_run *run;
    CHECK(ts_open(&run, &o) == 0);
    enum { THREADS = 3, N = 200000 };
    pthread_t th[THREADS];
    producer pr[THREADS];
    for (int t = 0; t < THREADS; t++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", t);
        CHECK(ts_metric(run, name) == t);
        pr[t] = (producer){.run = run, .id = t, .n = N, .by_name = t == 2};
        pthread_create(&th[t], NULL, produce, &pr[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK(pr[t].failed == 0);
    }
    CHECK(ts_close(run, 10000) == 0);
    pthread_mutex_lock(&p.mu);
    for (int t = 0; t < THREADS; t++) {
        CHECK(p.per_metric[t] == N);
        CHECK(p.step_sum[t] == (uint64_t)(N - 1) * N / 2);
    }
    CHECK(p.out_of_order == 0 && p.undefined_uses == 0 && p.bye_len == 0);
    pthread_mutex_unlock(&p.mu);
    peer_stop(&p);
}

/* Usage: test_client [SUBSTRING]: run the tests whose name contains it. */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"open_rejects_bad_options", test_open_rejects_bad_options},
        {"metric_and_log_reject_bad_arguments", test_metric_and_log_reject_bad_arguments},
        {"metric_ids_stop_at_protocol_limit", test_metric_ids_stop_at_protocol_limit},
        {"close_without_collector_times_out", test_close_without_collector_times_out},
        {"hello_define_batch_event_bytes", test_hello_define_batch_event_bytes},
        {"ack_frees_and_flush_returns", test_ack_frees_and_flush_returns},
        {"gap_resends_from_next_expected", test_gap_resends_from_next_expected},
        {"silence_resends_after_one_second", test_silence_resends_after_one_second},
        {"error_reply_is_reported_not_fatal", test_error_reply_is_reported_not_fatal},
        {"full_ring_drops_then_reports", test_full_ring_drops_then_reports},
        {"threads_log_concurrently", test_threads_log_concurrently},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        int before = failures;
        int64_t t0 = now_ms();
        tests[i].fn();
        bool ok = failures == before;
        passed += ok;
        failed += !ok;
        printf("%s %s (%lld ms)\n", ok ? "ok  " : "FAIL", tests[i].name,
               (long long)(now_ms() - t0));
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
