/* io.c - the I/O thread of libtrainscope: ring -> messages -> ZeroMQ, and
 * ACK/ERROR replies back into the outbox.
 *
 * One loop, every batch_interval_ms or sooner when woken (flush, close, a
 * reply, the socket becoming writable):
 *   1. take the drop window from the ring and queue a DROPS;
 *   2. drain the ring into DEFINE / BATCH / EVENT messages while the outbox
 *      holds less than max_unacked bytes. When it is full the ring is left
 *      alone, fills up, and log calls drop: memory stays bounded;
 *   3. when closing and everything is drained, queue the BYE;
 *   4. rewind the outbox after 1 s without ack progress;
 *   5. hand messages to ZeroMQ from the cursor until it refuses (EAGAIN:
 *      ZMQ_IMMEDIATE makes that mean "no connection", so nothing piles up
 *      in a queue to a dead peer);
 *   6. wait on the socket and the wake eventfd, read replies.
 *
 * Resources are taken before data leaves the ring: if an allocation fails,
 * what was drained stays in the pending DEFINE/BATCH buffers and is pushed
 * on the next pass, so nothing logged is lost to an out-of-memory moment.
 *
 * Knobs: TS__BATCH_MAX, TS__DEFINE_MAX (client_int.h); socket options in
 * set_socket_options().
 */
#include "client_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "keys.h"
#include "wire.h"

#define TS__SNDHWM 1024 /* messages queued in ZeroMQ per connection */

int64_t ts__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ts__io_wake(ts_run *run)
{
    uint64_t one = 1;
    /* Failure means the counter is saturated: the thread is woken anyway. */
    if (write(run->wake_fd, &one, sizeof one) < 0)
        return;
}

/* ---- setup and teardown ---- */

static int set_socket_options(void *sock)
{
    int zero = 0, one = 1, ivl = 100, ivl_max = 1000, hwm = TS__SNDHWM;
    /* LINGER 0: closing never waits for a collector that is not there.
     * IMMEDIATE: no queue to a connection that is not up; the outbox is the
     * only buffer, and it knows what the collector has. */
    if (zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one) < 0 ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0 ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0)
        return TS_EZMQ;
    return 0;
}

/* CURVE keys from sec or the environment (keys.h); a key problem is
 * printed, because the caller only gets TS_EKEY and the user needs to know
 * which file and why. */
static int set_keys(void *sock, const ts_security *sec)
{
    char err[1024];
    if (tkey_client_setup(sock, sec ? sec->server_key : NULL, sec ? sec->client_key : NULL, err,
                          sizeof err) >= 0)
        return 0;
    fprintf(stderr, "trainscope: %s\n", err);
    return TS_EKEY;
}

static int open_socket(ts_run *run, const char *endpoint, const ts_security *sec)
{
    int rc = TS_EZMQ;
    run->zctx = zmq_ctx_new();
    if (!run->zctx)
        return TS_EZMQ;
    run->sock = zmq_socket(run->zctx, ZMQ_DEALER);
    if (!run->sock || set_socket_options(run->sock) < 0)
        goto fail;
    if ((rc = set_keys(run->sock, sec)) < 0)
        goto fail;
    rc = TS_EZMQ;
    if (zmq_connect(run->sock, endpoint) < 0)
        goto fail;
    return 0;
fail:
    if (run->sock)
        zmq_close(run->sock);
    zmq_ctx_term(run->zctx);
    run->sock = run->zctx = NULL;
    return rc;
}

int ts__io_init(ts_run *run, const char *endpoint, const ts_security *sec, const char *hello,
                size_t hello_len)
{
    ts__io *io = &run->io;
    memset(io, 0, sizeof *io);
    ts__outbox_init(&io->ob);
    io->consumed = ts__ring_tail(&run->ring);
    io->batch_max = TS__BATCH_MAX;
    if (io->batch_max > run->ring.mask + 1)
        io->batch_max = (uint32_t)(run->ring.mask + 1);
    io->batch_cap = tsw_batch_size(io->batch_max);
    io->batch = malloc(io->batch_cap);
    io->defs = malloc(TS__DEFINE_MAX);
    /* The HELLO covers ring position 0 (client_int.h, "Marks"). */
    if (!io->batch || !io->defs ||
        ts__outbox_push(&io->ob, TSW_HELLO, hello, hello_len, 0, 1) != 1) {
        ts__io_destroy(run);
        return TS_ENOMEM;
    }
    int rc = open_socket(run, endpoint, sec);
    if (rc < 0)
        ts__io_destroy(run);
    return rc;
}

void ts__io_destroy(ts_run *run)
{
    ts__io *io = &run->io;
    if (run->sock)
        zmq_close(run->sock);
    if (run->zctx)
        zmq_ctx_term(run->zctx);
    run->sock = run->zctx = NULL;
    /* Events still in the ring own a record. */
    uint64_t tail = ts__ring_tail(&run->ring);
    for (uint64_t p = io->consumed; p < tail; p++) {
        const ts__slot *s = ts__ring_at(&run->ring, p);
        if (s->kind == TS__SLOT_EVENT)
            free(s->ptr);
    }
    io->consumed = tail;
    ts__outbox_destroy(&io->ob);
    free(io->defined);
    free(io->defs);
    free(io->batch);
    io->defined = io->defs = io->batch = NULL;
}

/* ---- building messages ---- */

static void publish_mark(ts_run *run, uint64_t mark)
{
    pthread_mutex_lock(&run->mu);
    run->acked_mark = mark;
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Bytes the outbox may still take, counting what is pending. */
static int has_room(const ts_run *run)
{
    const ts__io *io = &run->io;
    size_t pending = io->ob.bytes + io->defs_len + tsw_batch_size(io->batch_n);
    return pending < run->max_unacked;
}

static int push(ts_run *run, uint8_t type, const void *payload, size_t len,
                uint32_t samples, uint64_t mark)
{
    return ts__outbox_push(&run->io.ob, type, payload, len, samples, mark) ? 0 : TS_ENOMEM;
}

/* Push the pending DEFINE, then the pending BATCH: a DEFINE always goes
 * before the first BATCH that uses its ids. On failure what is left stays
 * pending for the next try. */
static int finish_pending(ts_run *run)
{
    ts__io *io = &run->io;
    if (io->defs_len) {
        /* A DEFINE covers no new ring position: it takes the last mark. */
        if (push(run, TSW_DEFINE, io->defs, io->defs_len, 0, io->ob.last_mark) < 0)
            return TS_ENOMEM;
        io->defs_len = 0;
    }
    if (io->batch_n) {
        /* The filled buffer becomes the message (no copy); the next batch
         * is built in a spare (no allocation once the outbox has some). */
        size_t cap;
        uint8_t *next = ts__outbox_buffer(&io->ob, tsw_batch_size(io->batch_max), &cap);
        if (!next)
            return TS_ENOMEM;
        tsw_batch_encode_head(io->batch, io->batch_n);
        if (!ts__outbox_push_owned(&io->ob, TSW_BATCH, io->batch, tsw_batch_size(io->batch_n), io->batch_cap,
                                   io->batch_n, io->consumed)) {
            ts__outbox_release(&io->ob, next, cap);
            return TS_ENOMEM;
        }
        io->batch = next;
        io->batch_cap = cap;
        io->batch_n = 0;
    }
    return 0;
}

/* Mark id as defined, queueing its DEFINE entry. */
static int define(ts_run *run, uint32_t id, const ts__name *name)
{
    ts__io *io = &run->io;
    if (id >= io->defined_cap) {
        size_t cap = io->defined_cap ? io->defined_cap : 64;
        while (cap <= id)
            cap *= 2;
        uint8_t *d = realloc(io->defined, cap);
        if (!d)
            return TS_ENOMEM;
        memset(d + io->defined_cap, 0, cap - io->defined_cap);
        io->defined = d;
        io->defined_cap = cap;
    }
    if (io->defined[id])
        return 0;
    size_t need = tsw_define_entry_size(name->len);
    if (io->defs_len + need > TS__DEFINE_MAX && finish_pending(run) < 0)
        return TS_ENOMEM;
    io->defs_len += tsw_define_entry_encode(io->defs + io->defs_len, id, name->str, name->len);
    io->defined[id] = 1;
    return 0;
}

static int add_sample(ts_run *run, const ts__slot *s)
{
    ts__io *io = &run->io;
    const ts__name *name = ts__names_get(&run->names, s->id);
    if (!name)
        return 0; /* cannot happen: ts_log_at checks ids; skip rather than send garbage */
    if (define(run, s->id, name) < 0)
        return TS_ENOMEM;
    tsw_sample ws = {.metric = s->id, .step = s->step, .time_ns = s->t_ns, .value = s->value};
    tsw_sample_encode(io->batch + tsw_batch_size(io->batch_n), &ws);
    io->batch_n++;
    return 0;
}

static int add_event(ts_run *run, const ts__slot *s)
{
    const ts__event_rec *rec = s->ptr;
    if (finish_pending(run) < 0)
        return TS_ENOMEM;
    return push(run, TSW_EVENT, rec->payload, rec->len, 0, run->io.consumed + 1);
}

/* Step 2 of the loop. A slot's position is consumed only once its content
 * is in the pending buffers or the outbox. */
static void drain(ts_run *run)
{
    ts__io *io = &run->io;
    if (finish_pending(run) < 0)
        return;
    uint64_t tail = ts__ring_tail(&run->ring);
    while (io->consumed < tail && has_room(run)) {
        const ts__slot *s = ts__ring_at(&run->ring, io->consumed);
        if (s->kind == TS__SLOT_EVENT) {
            if (add_event(run, s) < 0)
                break;
            free(s->ptr);
        } else if (add_sample(run, s) < 0) {
            break;
        }
        io->consumed++;
        if (io->batch_n == io->batch_max && finish_pending(run) < 0)
            break;
    }
    finish_pending(run);
    ts__ring_consume(&run->ring, io->consumed);
}

static void merge_drops(tsw_drops *into, const tsw_drops *d)
{
    if (d->count == 0)
        return;
    if (into->count == 0) {
        *into = *d;
        return;
    }
    into->count += d->count;
    if (d->step_first < into->step_first)
        into->step_first = d->step_first;
    if (d->step_last > into->step_last)
        into->step_last = d->step_last;
    if (d->t_first < into->t_first)
        into->t_first = d->t_first;
    if (d->t_last > into->t_last)
        into->t_last = d->t_last;
}

/* Step 1. Drops are reported only when the outbox has room, so a long
 * outage yields one DROPS with the whole range, not one per pass. */
static void report_drops(ts_run *run)
{
    ts__io *io = &run->io;
    if (!has_room(run))
        return;
    tsw_drops d;
    ts__ring_take_drops(&run->ring, &d);
    merge_drops(&io->unreported, &d);
    if (io->unreported.count == 0 || finish_pending(run) < 0)
        return;
    uint8_t buf[TSW_DROPS_SIZE];
    tsw_drops_encode(buf, &io->unreported);
    if (push(run, TSW_DROPS, buf, sizeof buf, 0, io->ob.last_mark) == 0)
        memset(&io->unreported, 0, sizeof io->unreported);
}

/* Step 3: the BYE follows everything logged before ts_close. */
static void queue_bye(ts_run *run)
{
    ts__io *io = &run->io;
    if (io->bye_queued || !atomic_load_explicit(&run->closing, memory_order_acquire))
        return;
    if (io->consumed != run->close_tail || io->batch_n || io->defs_len)
        return;
    if (push(run, TSW_BYE, run->bye, run->bye_len, 0, run->close_tail + 1) == 0)
        io->bye_queued = true;
}

/* ---- the socket ---- */

static int send_one(ts_run *run, const ts__msg *m, uint64_t seq)
{
    static const uint8_t empty[1];
    uint8_t hdr[TSW_HEADER_SIZE];
    tsw_header h = {.version = TSW_VERSION, .type = m->type, .stream = run->stream, .seq = seq};
    tsw_header_encode(hdr, &h);
    if (zmq_send(run->sock, hdr, sizeof hdr, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    /* Once the first frame is queued ZeroMQ accepts the rest of the message
     * (atomic multipart); if it still fails the message is dropped whole
     * and the resend rules deliver it later. */
    if (zmq_send(run->sock, m->len ? m->payload : empty, m->len, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

/* Step 5. */
static void send_pending(ts_run *run, int64_t now)
{
    ts__outbox *ob = &run->io.ob;
    uint64_t seq;
    ts__msg *m;
    while ((m = ts__outbox_peek(ob, &seq)) != NULL) {
        if (send_one(run, m, seq) < 0)
            return; /* EAGAIN: not connected (or HWM): the poll says when to retry */
        if (ts__outbox_sent(ob, now))
            atomic_fetch_add_explicit(&run->resent, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&run->sent, m->samples, memory_order_relaxed);
    }
}

/* Copy a collector's text for a terminal: printable, bounded. */
static void print_error(uint64_t seq, uint32_t code, const char *msg, size_t len)
{
    char clean[201];
    size_t n = len < sizeof clean - 1 ? len : sizeof clean - 1;
    for (size_t i = 0; i < n; i++)
        clean[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? '?' : msg[i];
    clean[n] = '\0';
    fprintf(stderr, "trainscope: collector rejected message %llu: %s (code %u)\n",
            (unsigned long long)seq, clean, (unsigned)code);
}

static void on_ack(ts_run *run, const tsw_header *h, const uint8_t *p, size_t len, int64_t now)
{
    ts__io *io = &run->io;
    uint64_t next_expected;
    if (tsw_ack_decode(p, len, &next_expected) < 0)
        return;
    atomic_store_explicit(&run->connected, 1, memory_order_relaxed);
    ts__ack_result r = ts__outbox_ack(&io->ob, h->seq, now);
    if (r.messages) {
        atomic_fetch_add_explicit(&run->acked, r.samples, memory_order_relaxed);
        publish_mark(run, io->ob.acked_mark);
    }
    if ((h->flags & TSW_ACK_GAP) && ts__outbox_gap(&io->ob, next_expected, now) < 0 &&
        !io->lost_warned) {
        io->lost_warned = true;
        fprintf(stderr, "trainscope: the collector asks for seq %llu, which it had "
                "acknowledged: that data is lost\n", (unsigned long long)next_expected);
    }
}

static void on_error(ts_run *run, const tsw_header *h, const uint8_t *p, size_t len)
{
    uint32_t code;
    const char *msg;
    size_t msg_len;
    if (tsw_error_decode(p, len, &code, &msg, &msg_len) < 0)
        return;
    uint32_t bit = 1u << (code < 31 ? code : 31);
    if (run->io.errors_seen & bit)
        return;
    run->io.errors_seen |= bit;
    print_error(h->seq, code, msg, msg_len);
}

static void on_reply(ts_run *run, zmq_msg_t *f0, zmq_msg_t *f1, int64_t now)
{
    tsw_header h;
    if (tsw_header_decode(zmq_msg_data(f0), zmq_msg_size(f0), &h) < 0 || h.stream != run->stream)
        return;
    const uint8_t *p = zmq_msg_data(f1);
    size_t len = zmq_msg_size(f1);
    if (h.type == TSW_ACK)
        on_ack(run, &h, p, len, now);
    else if (h.type == TSW_ERROR)
        on_error(run, &h, p, len);
}

/* Read every reply waiting; anything that is not two frames is ignored. */
static void receive(ts_run *run, int64_t now)
{
    zmq_msg_t f[2];
    zmq_msg_init(&f[0]);
    zmq_msg_init(&f[1]);
    for (;;) {
        int n = 0;
        bool more = true;
        while (more) {
            zmq_msg_t *dst = &f[n < 2 ? n : 1];
            if (zmq_msg_recv(dst, run->sock, ZMQ_DONTWAIT) < 0)
                goto out; /* parts of a message arrive together: none left */
            n++;
            more = zmq_msg_more(dst);
        }
        if (n == 2)
            on_reply(run, &f[0], &f[1], now);
    }
out:
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
}

/* Step 6: sleep until a reply, a wake-up, writability when messages wait
 * to go out, or the batch interval. */
static void wait_events(ts_run *run)
{
    uint64_t seq;
    zmq_pollitem_t items[2] = {
        {.socket = run->sock, .events = ZMQ_POLLIN},
        {.fd = run->wake_fd, .events = ZMQ_POLLIN},
    };
    if (ts__outbox_peek(&run->io.ob, &seq))
        items[0].events |= ZMQ_POLLOUT;
    if (zmq_poll(items, 2, run->batch_interval_ms) > 0 && (items[1].revents & ZMQ_POLLIN)) {
        uint64_t count;
        if (read(run->wake_fd, &count, sizeof count) < 0)
            return; /* EAGAIN: someone else read it; nothing to do */
    }
}

void *ts__io_main(void *arg)
{
    ts_run *run = arg;
    while (!atomic_load_explicit(&run->stop, memory_order_acquire)) {
        int64_t now = ts__mono_ns();
        report_drops(run);
        drain(run);
        queue_bye(run);
        if (ts__outbox_tick(&run->io.ob, now))
            atomic_store_explicit(&run->connected, 0, memory_order_relaxed);
        send_pending(run, now);
        wait_events(run);
        receive(run, ts__mono_ns());
    }
    return NULL;
}
