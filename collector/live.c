/* live.c - LIVE fan-out: after a BATCH is applied, one message per series it
 * touched goes out on a PUB socket (PROTOCOL.md "LIVE"): [topic = run display
 * name][24-byte header, type LIVE, stream = series id][payload].
 *
 * Knobs: LIVE_SNDHWM bounds what a slow subscriber can queue; beyond it PUB
 * drops, so ingest never waits for a viewer. Payloads are built in one
 * buffer that only ever grows, so the hot path does not allocate.
 */
#include "collector_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "wire.h"

#define LIVE_SNDHWM 1000   /* messages queued per subscriber before PUB drops */

struct tcl__live {
    void *pub;
    uint8_t *buf;        /* payloads of the current batch, side by side */
    size_t cap;
    char endpoint[256];  /* as bound (wildcard port resolved) */
};

int tcl__live_open(void *zctx, const char *ep, tcl__live **out, char *err, size_t errlen)
{
    int hwm = LIVE_SNDHWM, linger = 0;
    size_t eplen;
    tcl__live *l = calloc(1, sizeof *l);
    *out = NULL;
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    l->pub = zmq_socket(zctx, ZMQ_PUB);
    if (!l->pub)
        goto fail_errno;
    zmq_setsockopt(l->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(l->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(l->pub, ep) != 0)
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
    free(l->buf);
    free(l);
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
