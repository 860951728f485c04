/* client.c - the public API of libtrainscope (trainscope.h): options, the
 * run handle's lifetime, the log calls, flush and close.
 *
 * The log calls only touch the ring (ring.h) and the name table (names.h);
 * everything that talks to the network is in io.c, on its own thread. This
 * file also builds the HELLO JSON, by hand: the library depends on libzmq
 * and nothing else.
 */
#include "client_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define TS__DEFAULT_RING ((size_t)1 << 20)
#define TS__DEFAULT_UNACKED ((size_t)64 << 20)
/* The I/O thread's wake-up interval bounds how long a logged point waits
 * before it leaves the process: 5 ms keeps "log call to pixel" within one
 * viewer frame plus 5 ms (bench_live_latency) for about 200 cheap wake-ups a
 * second; batches stay large because a busy ring is drained whole. */
#define TS__DEFAULT_INTERVAL_MS 5
#define TS__MAX_INTERVAL_MS 10000

ts_options ts_options_default(void)
{
    return (ts_options){
        .rank = 0,
        .world_size = 1,
        .ring_samples = TS__DEFAULT_RING,
        .max_unacked_bytes = TS__DEFAULT_UNACKED,
        .batch_interval_ms = TS__DEFAULT_INTERVAL_MS,
    };
}

const char *ts_strerror(int err)
{
    switch (err) {
    case TS_OK: return "success";
    case TS_EINVAL: return "invalid argument";
    case TS_ENOMEM: return "out of memory";
    case TS_EDROPPED: return "the buffer is full: the sample was dropped and counted";
    case TS_ETIMEDOUT: return "not everything was acknowledged by the collector in time";
    case TS_ECLOSED: return "the run is closing";
    case TS_EZMQ: return "ZeroMQ refused the endpoint or the socket setup";
    case TS_ETOOMANY: return "too many metric names for one run";
    case TS_EKEY: return "a CURVE key is missing, unreadable, unprotected or invalid";
    default: return "unknown error";
    }
}

/* ---- validation ---- */

/* 1 if s is a non-NULL UTF-8 string of min..max bytes. */
static int valid_text(const char *s, size_t min, size_t max)
{
    if (!s)
        return 0;
    size_t len = strnlen(s, max + 1);
    return len >= min && len <= max && tsw_utf8_valid(s, len);
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A superficial check that config_json is one JSON object: UTF-8, starts
 * with '{' and ends with '}'. The collector parses it for real; this catches
 * passing a file name or a bare value, which would spoil the whole HELLO. */
static int looks_like_object(const char *s)
{
    size_t len = strlen(s);
    if (!tsw_utf8_valid(s, len))
        return 0;
    size_t a = 0, b = len;
    while (a < b && is_json_space(s[a]))
        a++;
    while (b > a && is_json_space(s[b - 1]))
        b--;
    return b - a >= 2 && s[a] == '{' && s[b - 1] == '}';
}

static int check_options(const ts_options *o)
{
    if (!valid_text(o->run, 1, TSW_MAX_NAME))
        return TS_EINVAL;
    if (o->project && !valid_text(o->project, 0, TSW_MAX_NAME))
        return TS_EINVAL;
    if (o->rank < 0 || o->world_size < 1 || o->rank >= o->world_size)
        return TS_EINVAL;
    if (o->config_json && !looks_like_object(o->config_json))
        return TS_EINVAL;
    if (o->batch_interval_ms > TS__MAX_INTERVAL_MS)
        return TS_EINVAL;
    return 0;
}

/* ---- HELLO ---- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_puts(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

static void jb_printf_i64(jbuf *b, const char *key, long long v)
{
    char tmp[96];
    int n = snprintf(tmp, sizeof tmp, ",\"%s\":%lld", key, v);
    jb_put(b, tmp, (size_t)n);
}

/* A JSON string: quotes, backslashes and control characters escaped; the
 * rest is valid UTF-8 already and goes through as is. */
static void jb_string(jbuf *b, const char *s)
{
    jb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            jb_put(b, esc, 6);
        } else {
            jb_put(b, p, 1);
        }
    }
    jb_put(b, "\"", 1);
}

static void jb_key_string(jbuf *b, const char *key, const char *value)
{
    jb_puts(b, ",\"");
    jb_puts(b, key);
    jb_puts(b, "\":");
    jb_string(b, value);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The HELLO payload (PROTOCOL.md "HELLO"). Returns TS_EINVAL when it would
 * exceed the protocol's 1 MiB, TS_ENOMEM. */
static int build_hello(const ts_options *o, jbuf *b)
{
    char host[256] = "";
    jb_puts(b, "{\"run\":");
    jb_string(b, o->run);
    if (o->project && o->project[0])
        jb_key_string(b, "project", o->project);
    jb_printf_i64(b, "rank", o->rank);
    jb_printf_i64(b, "world_size", o->world_size);
    if (o->config_json) {
        jb_puts(b, ",\"config\":");
        jb_puts(b, o->config_json);
    }
    if (gethostname(host, sizeof host - 1) == 0 && tsw_utf8_valid(host, strlen(host)))
        jb_key_string(b, "host", host);
    jb_printf_i64(b, "pid", (long long)getpid());
    jb_printf_i64(b, "start_ns", (long long)realtime_ns());
    jb_key_string(b, "client", "libtrainscope " TS_VERSION_STRING);
    jb_puts(b, "}");
    if (b->oom)
        return TS_ENOMEM;
    return b->len > TSW_MAX_HELLO ? TS_EINVAL : 0;
}

/* ---- open ---- */

static uint64_t random_stream(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* No entropy source: time and pid still tell processes apart. */
            id = (uint64_t)realtime_ns() ^ ((uint64_t)getpid() << 32);
        }
    }
    return id;
}

static int sync_init(ts_run *run)
{
    pthread_condattr_t ca;
    if (pthread_mutex_init(&run->mu, NULL) != 0)
        return TS_ENOMEM;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_mutex;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&run->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        goto fail_mutex;
    run->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (run->wake_fd < 0)
        goto fail_cond;
    return 0;
fail_cond:
    pthread_cond_destroy(&run->cv);
fail_mutex:
    pthread_mutex_destroy(&run->mu);
    return TS_ENOMEM;
}

static void sync_destroy(ts_run *run)
{
    close(run->wake_fd);
    pthread_cond_destroy(&run->cv);
    pthread_mutex_destroy(&run->mu);
}

static const char *pick_endpoint(const ts_options *o)
{
    if (o->endpoint)
        return o->endpoint;
    const char *env = getenv("TRAINSCOPE_ENDPOINT");
    return env && env[0] ? env : TSW_DEFAULT_INGEST;
}

int ts_open(ts_run **out, const ts_options *opts)
{
    return ts_open_secure(out, opts, NULL);
}

int ts_open_secure(ts_run **out, const ts_options *opts, const ts_security *sec)
{
    if (!out)
        return TS_EINVAL;
    *out = NULL;
    if (!opts)
        return TS_EINVAL;
    int rc = check_options(opts);
    if (rc < 0)
        return rc;
    ts_run *run = NULL;
    jbuf hello = {0};
    rc = build_hello(opts, &hello);
    if (rc < 0)
        goto fail_hello;
    /* The ring's fields are cache-line aligned: so must the handle be. */
    size_t size = (sizeof(ts_run) + 63) & ~(size_t)63;
    run = aligned_alloc(64, size);
    rc = TS_ENOMEM;
    if (!run)
        goto fail_hello;
    memset(run, 0, size);
    run->stream = random_stream();
    run->max_unacked = opts->max_unacked_bytes ? opts->max_unacked_bytes : TS__DEFAULT_UNACKED;
    run->batch_interval_ms =
        opts->batch_interval_ms > 0 ? opts->batch_interval_ms : TS__DEFAULT_INTERVAL_MS;
    rc = ts__ring_init(&run->ring, opts->ring_samples ? opts->ring_samples : TS__DEFAULT_RING);
    if (rc < 0)
        goto fail_run;
    rc = ts__names_init(&run->names);
    if (rc < 0)
        goto fail_ring;
    rc = sync_init(run);
    if (rc < 0)
        goto fail_names;
    rc = ts__io_init(run, pick_endpoint(opts), sec, hello.p, hello.len);
    if (rc < 0)
        goto fail_sync;
    if (pthread_create(&run->thread, NULL, ts__io_main, run) != 0) {
        rc = TS_ENOMEM;
        goto fail_io;
    }
    free(hello.p);
    *out = run;
    return 0;
fail_io:
    ts__io_destroy(run);
fail_sync:
    sync_destroy(run);
fail_names:
    ts__names_destroy(&run->names);
fail_ring:
    ts__ring_destroy(&run->ring);
fail_run:
    free(run);
fail_hello:
    free(hello.p);
    return rc;
}

/* ---- logging ---- */

int ts_metric(ts_run *run, const char *name)
{
    if (!run || !valid_text(name, 1, TSW_MAX_NAME))
        return TS_EINVAL;
    size_t len = strlen(name);
    int id = ts__names_find(&run->names, name, len);
    return id >= 0 ? id : ts__names_add(&run->names, name, len);
}

static inline int log_sample(ts_run *run, int id, int64_t step, int64_t t_ns, double value)
{
    if (!run || id < 0 || (uint32_t)id >= ts__names_count(&run->names))
        return TS_EINVAL;
    ts__slot s = {.id = (uint32_t)id, .kind = TS__SLOT_SAMPLE, .step = step, .t_ns = t_ns,
                  .value = value};
    return ts__ring_push(&run->ring, &s, false);
}

int ts_log_at(ts_run *run, int id, int64_t step, int64_t time_ns, double value)
{
    return log_sample(run, id, step, time_ns, value);
}

int ts_log_id(ts_run *run, int id, int64_t step, double value)
{
    /* CLOCK_REALTIME is read through the vDSO: no system call. */
    return log_sample(run, id, step, realtime_ns(), value);
}

int ts_log(ts_run *run, const char *name, int64_t step, double value)
{
    if (!run || !name)
        return TS_EINVAL;
    /* Registered names are valid: a hit needs no UTF-8 check. */
    int id = ts__names_find(&run->names, name, strnlen(name, TSW_MAX_NAME + 1));
    if (id < 0)
        id = ts_metric(run, name);
    return id < 0 ? id : log_sample(run, id, step, realtime_ns(), value);
}

/* n samples of one step: ids and values are read with memcpy, so the same
 * code serves typed arrays (ts_log_many) and unaligned packed buffers
 * (ts_log_packed); for aligned data the copies compile to plain loads. */
static int log_many(ts_run *run, int64_t step, size_t n, const unsigned char *ids,
                    const unsigned char *values)
{
    uint32_t count = ts__names_count(&run->names);
    for (size_t i = 0; i < n; i++) {
        int32_t id;
        memcpy(&id, ids + 4 * i, 4);
        if (id < 0 || (uint32_t)id >= count)
            return TS_EINVAL;
    }
    /* One clock read for the whole call: the metrics of one dict are one
     * observation, and a binding's per-call overhead is what we are saving. */
    int64_t t_ns = realtime_ns();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ts__slot s = {.kind = TS__SLOT_SAMPLE, .step = step, .t_ns = t_ns};
        int32_t id;
        memcpy(&id, ids + 4 * i, 4);
        memcpy(&s.value, values + 8 * i, 8);
        s.id = (uint32_t)id;
        int r = ts__ring_push(&run->ring, &s, false);
        if (r == TS_ECLOSED)
            return r;
        if (r < 0)
            rc = r;
    }
    return rc;
}

int ts_log_many(ts_run *run, int64_t step, size_t n, const int *ids, const double *values)
{
    _Static_assert(sizeof(int) == 4, "ids are read as int32");
    if (!run || (n && (!ids || !values)))
        return TS_EINVAL;
    return log_many(run, step, n, (const unsigned char *)ids, (const unsigned char *)values);
}

int ts_log_packed(ts_run *run, const void *ids, const void *rec)
{
    if (!run || !ids || !rec)
        return TS_EINVAL;
    int32_t n;
    int64_t step;
    memcpy(&n, ids, 4);
    memcpy(&step, rec, 8);
    if (n < 0)
        return TS_EINVAL;
    return log_many(run, step, (size_t)n, (const unsigned char *)ids + 4,
                    (const unsigned char *)rec + 8);
}

int ts_event(ts_run *run, int64_t step, const char *kind, const char *text)
{
    if (!text)
        text = "";
    if (!run || !valid_text(kind, 1, TSW_MAX_KIND) || !valid_text(text, 0, TSW_MAX_TEXT))
        return TS_EINVAL;
    tsw_event e = {.step = step, .time_ns = realtime_ns(), .kind = kind,
                   .kind_len = strlen(kind), .text = text, .text_len = strlen(text)};
    size_t len = tsw_event_size(&e);
    ts__event_rec *rec = malloc(sizeof *rec + len);
    if (!rec)
        return TS_ENOMEM;
    rec->len = len;
    tsw_event_encode(rec->payload, &e);
    ts__slot s = {.kind = TS__SLOT_EVENT, .step = step, .t_ns = e.time_ns, .ptr = rec};
    int rc = ts__ring_push(&run->ring, &s, true);
    if (rc < 0)
        free(rec);
    return rc;
}

/* ---- flush and close ---- */

/* The monotonic deadline timeout_ms from now; -1 for none. */
static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ts__mono_ns() + (int64_t)timeout_ms * 1000000;
}

/* Wait until acked_mark reaches target or the deadline passes. */
static int wait_mark(ts_run *run, uint64_t target, int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    /* The I/O thread may be asleep for a batch interval: make it send now. */
    ts__io_wake(run);
    pthread_mutex_lock(&run->mu);
    while (run->acked_mark < target) {
        if (deadline < 0)
            pthread_cond_wait(&run->cv, &run->mu);
        else if (pthread_cond_timedwait(&run->cv, &run->mu, &ts) == ETIMEDOUT)
            break;
    }
    int rc = run->acked_mark >= target ? 0 : TS_ETIMEDOUT;
    pthread_mutex_unlock(&run->mu);
    return rc;
}

int ts_flush(ts_run *run, int timeout_ms)
{
    if (!run)
        return TS_EINVAL;
    return wait_mark(run, ts__ring_tail(&run->ring), deadline_after(timeout_ms));
}

int ts_close_status(ts_run *run, int timeout_ms, const char *status)
{
    if (!run)
        return 0;
    int64_t deadline = deadline_after(timeout_ms);
    int bad_status = status && !valid_text(status, 0, TS__STATUS_MAX);
    run->close_tail = ts__ring_close(&run->ring);
    if (status && !bad_status) {
        run->bye_len = strlen(status);
        memcpy(run->bye, status, run->bye_len);
    }
    atomic_store_explicit(&run->closing, true, memory_order_release);
    /* The BYE is acknowledged last, so one wait covers data and goodbye;
     * whether the data made it is what the caller is told. */
    wait_mark(run, run->close_tail + 1, deadline);
    pthread_mutex_lock(&run->mu);
    int rc = run->acked_mark >= run->close_tail ? 0 : TS_ETIMEDOUT;
    pthread_mutex_unlock(&run->mu);

    atomic_store_explicit(&run->stop, true, memory_order_release);
    ts__io_wake(run);
    pthread_join(run->thread, NULL);
    ts__io_destroy(run);
    sync_destroy(run);
    ts__names_destroy(&run->names);
    ts__ring_destroy(&run->ring);
    free(run);
    return rc == 0 && bad_status ? TS_EINVAL : rc;
}

int ts_close(ts_run *run, int timeout_ms)
{
    return ts_close_status(run, timeout_ms, NULL);
}

void ts_get_stats(ts_run *run, ts_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!run)
        return;
    out->logged = atomic_load_explicit(&run->ring.logged, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&run->ring.dropped, memory_order_relaxed);
    out->sent = atomic_load_explicit(&run->sent, memory_order_relaxed);
    out->acked = atomic_load_explicit(&run->acked, memory_order_relaxed);
    out->resent = atomic_load_explicit(&run->resent, memory_order_relaxed);
    out->connected = atomic_load_explicit(&run->connected, memory_order_relaxed);
}
