/* live.c - LIVE fan-out: after a BATCH is applied, one message per series it
 * touched goes out on a PUB socket (PROTOCOL.md "LIVE"): [topic = run display
 * name][24-byte header, type LIVE, stream = series id][payload].
 *
 * The socket is an XPUB: it behaves as a PUB for subscribers, and also tells
 * the collector which topic prefixes are subscribed, so LIVE payloads are
 * only built for runs somebody watches (building them costs as much as a
 * seventh of ingest when nobody does).
 *
 * Knobs: LIVE_SNDHWM bounds what a slow subscriber can queue; beyond it the
 * socket drops, so ingest never waits for a viewer. LIVE_MAX_PREFIXES bounds
 * the distinct subscriptions remembered (past it, every run counts as
 * watched). Payloads are built in one buffer that only ever grows, so the
 * hot path does not allocate.
 */
#include "collector_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "security.h"
#include "wire.h"

#define LIVE_SNDHWM 1000        /* messages queued per subscriber before it drops */
#define LIVE_MAX_PREFIXES 1024  /* distinct subscribed prefixes remembered */

typedef struct prefix {
    char *text;
    size_t len;
} prefix;

struct tcl__live {
    void *pub;
    prefix *subs;        /* distinct subscribed topic prefixes */
    size_t nsubs;
    int overflow;        /* more than LIVE_MAX_PREFIXES: publish everything */
    uint8_t *buf;        /* payloads of the current batch, side by side */
    size_t cap;
    char endpoint[256];  /* as bound (wildcard port resolved) */
};

int tcl__live_open(void *zctx, const char *ep, const struct tsec_server *sec, tcl__live **out,
                   char *err, size_t errlen)
{
    int hwm = LIVE_SNDHWM, linger = 0;
    size_t eplen;
    tcl__live *l = calloc(1, sizeof *l);
    *out = NULL;
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    l->pub = zmq_socket(zctx, ZMQ_XPUB);
    if (!l->pub)
        goto fail_errno;
    zmq_setsockopt(l->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(l->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (tsec_server_socket(sec, l->pub) < 0 || zmq_bind(l->pub, ep) != 0)
        goto fail_errno;
    eplen = sizeof l->endpoint;
    if (zmq_getsockopt(l->pub, ZMQ_LAST_ENDPOINT, l->endpoint, &eplen) != 0)
        snprintf(l->endpoint, sizeof l->endpoint, "%s", ep);
    *out = l;
    return 0;

fail_errno:;
    int e = zmq_errno();
    snprintf(err, errlen, "cannot bind the live endpoint %s: %s", ep, zmq_strerror(e));
    tcl__live_close(l);
    return -e;
}

void tcl__live_close(tcl__live *l)
{
    if (!l)
        return;
    if (l->pub)
        zmq_close(l->pub);
    for (size_t i = 0; i < l->nsubs; i++)
        free(l->subs[i].text);
    free(l->subs);
    free(l->buf);
    free(l);
}

void *tcl__live_socket(tcl__live *l) { return l->pub; }

/* One subscription message: byte 1 subscribe / 0 unsubscribe, then the
 * prefix. XPUB passes only the first subscription of a prefix and its last
 * unsubscription, so a set (not a count) mirrors what subscribers want. */
static void subscription(tcl__live *l, const uint8_t *m, size_t n)
{
    if (n < 1 || m[0] > 1)
        return;
    const char *p = (const char *)m + 1;
    size_t len = n - 1;
    for (size_t i = 0; i < l->nsubs; i++) {
        if (l->subs[i].len == len && memcmp(l->subs[i].text, p, len) == 0) {
            if (m[0] == 0) {
                free(l->subs[i].text);
                l->subs[i] = l->subs[--l->nsubs];
            }
            return;
        }
    }
    if (m[0] == 0)
        return;
    if (l->nsubs == LIVE_MAX_PREFIXES) {
        l->overflow = 1;
        return;
    }
    if (l->nsubs % 16 == 0) {
        prefix *ns = realloc(l->subs, (l->nsubs + 16) * sizeof *ns);
        if (!ns) {
            l->overflow = 1;
            return;
        }
        l->subs = ns;
    }
    char *t = malloc(len ? len : 1);
    if (!t) {
        l->overflow = 1;
        return;
    }
    memcpy(t, p, len);
    l->subs[l->nsubs++] = (prefix){ t, len };
}

void tcl__live_readable(tcl__live *l)
{
    uint8_t m[1 + 2 * TSW_MAX_NAME + 2];  /* flag + the longest topic, project/name */
    int n;
    while ((n = zmq_recv(l->pub, m, sizeof m, ZMQ_DONTWAIT)) >= 0) {
        /* A prefix longer than the buffer arrives truncated: keep it as
         * "somebody watches everything" rather than guess. */
        if ((size_t)n > sizeof m)
            l->overflow = 1;
        else
            subscription(l, m, (size_t)n);
    }
}

int tcl__live_wanted(const tcl__live *l, const char *topic, size_t len)
{
    if (l->overflow)
        return 1;
    for (size_t i = 0; i < l->nsubs; i++)
        if (l->subs[i].len <= len && memcmp(l->subs[i].text, topic, l->subs[i].len) == 0)
            return 1;
    return 0;
}

const char *tcl__live_endpoint(const tcl__live *l) { return l->endpoint; }

size_t tcl__live_size(size_t mlen, uint32_t n)
{
    return tsw_live_head_size(mlen) + (size_t)n * TSW_LIVE_POINT;
}

uint8_t *tcl__live_buffer(tcl__live *l, size_t bytes)
{
    if (bytes > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < bytes)
            cap *= 2;
        uint8_t *nb = realloc(l->buf, cap);
        if (!nb)
            return NULL;
        l->buf = nb;
        l->cap = cap;
    }
    return l->buf;
}

size_t tcl__live_head(tcl__live *l, size_t off, uint64_t series, uint32_t rank,
                      const char *metric, size_t mlen, uint32_t n)
{
    tsw_live head = {
        .series = series, .rank = rank, .metric = metric, .metric_len = mlen, .count = n,
    };
    return off + tsw_live_head_encode(l->buf + off, &head);
}

void tcl__live_publish(tcl__live *l, const char *topic, size_t topic_len, uint64_t series,
                       size_t off, size_t len)
{
    uint8_t hdr[TSW_HEADER_SIZE];
    tsw_header h = { .version = TSW_VERSION, .type = TSW_LIVE, .stream = series };
    tsw_header_encode(hdr, &h);
    /* PUB never blocks, but DONTWAIT makes that explicit; a message that
     * cannot be queued is simply not delivered to that subscriber. The
     * first frame decides: zmq queues all parts of a message or none. */
    if (zmq_send(l->pub, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    zmq_send(l->pub, hdr, sizeof hdr, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(l->pub, l->buf + off, len, ZMQ_DONTWAIT);
}
