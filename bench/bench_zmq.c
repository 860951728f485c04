/* bench_zmq.c - anchor: what ZeroMQ alone moves over loopback, in 64 KiB
 * messages, on this machine, measured in the same run as trainscope.
 *
 *   bench_zmq [--endpoint EP] [--size BYTES] [--count N]
 *
 * A PUSH socket in one thread sends N messages of SIZE bytes (default
 * 65536 x 20000 = 1.3 GB) to a PULL socket in another thread of the same
 * process over EP (default tcp://127.0.0.1 on a free port; ipc:// works too).
 * Time runs from the first send to the last receive. Prints GB/s and
 * messages/s. The sender reuses one buffer (zmq_send copies it), which is
 * what a publisher's I/O thread does too.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench_util.h"

typedef struct job {
    void *ctx;
    char endpoint[256];
    size_t size;
    long count;
    int rc;
} job;

static void *sender(void *arg)
{
    job *j = arg;
    void *push = zmq_socket(j->ctx, ZMQ_PUSH);
    char *buf = calloc(1, j->size);
    int hwm = 1000;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (!push || !buf || zmq_connect(push, j->endpoint) < 0) {
        j->rc = -1;
    } else {
        for (long i = 0; i < j->count; i++) {
            if (zmq_send(push, buf, j->size, 0) < 0) {
                j->rc = -1;
                break;
            }
        }
    }
    free(buf);
    zmq_close(push);
    return NULL;
}

int main(int argc, char **argv)
{
    job j = {.size = 65536, .count = 20000};
    const char *ep = "tcp://127.0.0.1:*";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--endpoint")) ep = argv[i + 1];
        else if (!strcmp(argv[i], "--size")) j.size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--count")) j.count = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_zmq [--endpoint EP] [--size BYTES] [--count N]\n");
            return 2;
        }
    }
    if (j.size < 1 || j.count < 1) {
        fprintf(stderr, "bench_zmq: bad arguments\n");
        return 2;
    }
    j.ctx = zmq_ctx_new();
    void *pull = zmq_socket(j.ctx, ZMQ_PULL);
    int hwm = 1000;
    size_t len = sizeof j.endpoint;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(pull, ep) < 0 || zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, j.endpoint, &len) < 0) {
        fprintf(stderr, "bench_zmq: cannot bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
        return 1;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    pthread_t th;
    pthread_create(&th, NULL, sender, &j);
    /* The clock starts at the first message, so connecting is not timed. */
    double t0 = 0;
    long got = 0;
    while (got < j.count && zmq_msg_recv(&msg, pull, 0) >= 0) {
        if (got++ == 0)
            t0 = bench_now_s();
    }
    double secs = bench_now_s() - t0;
    pthread_join(th, NULL);
    zmq_msg_close(&msg);
    zmq_close(pull);
    zmq_ctx_term(j.ctx);
    if (got != j.count || j.rc < 0) {
        fprintf(stderr, "bench_zmq: received %ld of %ld messages\n", got, j.count);
        return 1;
    }
    /* got - 1 message intervals were timed. */
    double bytes = (double)j.size * (double)(got - 1);
    printf("zmq PUSH/PULL over %s: %ld messages of %zu bytes, %.2f GB/s, %.0f messages/s\n", j.endpoint, got, j.size,
           bytes / secs / 1e9, (double)(got - 1) / secs);
    return 0;
}
