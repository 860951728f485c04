/* relay.c - `trainscope relay` (relay.h): zmq_proxy between a ROUTER for the
 * node's publishers and a DEALER to the collector.
 *
 * Memory: the ROUTER queues at most RELAY_RCVHWM messages per publisher
 * and the DEALER at most RELAY_SNDHWM towards the collector (libzmq's proxy
 * only moves a message when the other side can take it), so a slow or
 * absent collector pushes back on the publishers, whose libtrainscope keeps
 * and resends what is unacknowledged: the relay parks at most about
 * (publishers x 8 + 64) messages.
 */
#include "relay.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "keys.h"
#include "security.h"
#include "wire.h"

#define RELAY_RCVHWM 8          /* messages per publisher, as the collector's ingest */
#define RELAY_SNDHWM 64         /* messages towards the collector */
#define RELAY_HEARTBEAT_MS 5000 /* notice an upstream that vanished without a FIN */

#define CONTROL_EP_FMT "inproc://trl-control-%p"

/* SIGINT/SIGTERM are blocked in every thread and taken here with sigwait,
 * then turned into the proxy's TERMINATE command: zmq_proxy does not return
 * on a signal while it waits for an upstream that is not there. */
typedef struct sig_thread {
    void *zctx;
    char ep[64];
    sigset_t set;
} sig_thread;

static void *sig_main(void *arg)
{
    sig_thread *t = arg;
    int sig, zero = 0;
    void *s = zmq_socket(t->zctx, ZMQ_PAIR);
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, t->ep);
    sigwait(&t->set, &sig);
    zmq_send(s, "TERMINATE", 9, ZMQ_DONTWAIT);
    zmq_close(s);
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope relay --upstream EP [--listen EP] [--server-key KEY] [--client-key FILE]\n"
            "                        [--curve-secret FILE --allow DIR|FILE | --insecure] [--quiet]\n"
            "\n"
            "Fan this node's ranks into one connection to the collector (ZeroMQ's proxy:\n"
            "replies go back to the rank that sent, resends come from the ranks, so a\n"
            "relay restart loses nothing).\n"
            "\n"
            "  --upstream EP        the collector's ingest endpoint, e.g. tcp://head-node:5557\n"
            "  --listen EP          where this node's publishers connect (default %s)\n"
            "  --server-key KEY     the collector's public key (Z85 or its .pub file; env %s)\n"
            "  --client-key FILE    this relay's key file for the collector (env %s)\n"
            "  --curve-secret FILE  encrypt the listening side with this key ...\n"
            "  --allow DIR|FILE     ... and accept only these publishers' public keys\n"
            "  --insecure           allow a non-loopback --listen without keys\n"
            "  --quiet              no start-up line\n",
            TSW_DEFAULT_INGEST, TKEY_ENV_SERVER, TKEY_ENV_CLIENT);
}

typedef struct relay_args {
    const char *upstream, *listen, *server_key, *client_key, *secret, *allow;
    int insecure, quiet;
} relay_args;

static int parse(int argc, char **argv, relay_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **dst = NULL;
        if (strcmp(o, "--insecure") == 0) {
            a->insecure = 1;
            continue;
        }
        if (strcmp(o, "--quiet") == 0 || strcmp(o, "-q") == 0) {
            a->quiet = 1;
            continue;
        }
        if (strcmp(o, "--upstream") == 0)
            dst = &a->upstream;
        else if (strcmp(o, "--listen") == 0)
            dst = &a->listen;
        else if (strcmp(o, "--server-key") == 0)
            dst = &a->server_key;
        else if (strcmp(o, "--client-key") == 0)
            dst = &a->client_key;
        else if (strcmp(o, "--curve-secret") == 0)
            dst = &a->secret;
        else if (strcmp(o, "--allow") == 0)
            dst = &a->allow;
        if (!dst) {
            fprintf(stderr, "trainscope relay: unknown option '%s'\n\n", o);
            return -1;
        }
        if (i + 1 >= argc || !argv[i + 1][0]) {
            fprintf(stderr, "trainscope relay: %s needs a value\n\n", o);
            return -1;
        }
        *dst = argv[++i];
    }
    if (!a->upstream) {
        fprintf(stderr, "trainscope relay: --upstream EP is required (the collector's ingest endpoint)\n\n");
        return -1;
    }
    if (!a->secret != !a->allow) {
        fprintf(stderr, "trainscope relay: --curve-secret and --allow go together\n\n");
        return -1;
    }
    return 0;
}

/* The ROUTER the node's publishers connect to. */
static int open_front(void *zctx, const relay_args *a, const tsec_server *sec, void **out,
                      char *err, size_t errlen)
{
    int64_t maxmsg = TSW_MAX_TRANSPORT_MSG;
    int hwm = RELAY_RCVHWM, zero = 0;
    void *s = zmq_socket(zctx, ZMQ_ROUTER);
    if (!s || zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) < 0 || tsec_server_socket(sec, s) < 0 ||
        zmq_bind(s, a->listen) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "cannot listen on %s: %s", a->listen, zmq_strerror(e));
        if (s)
            zmq_close(s);
        return -e;
    }
    *out = s;
    return 0;
}

/* The DEALER towards the collector. IMMEDIATE: while the collector is away
 * nothing queues here (the proxy stops reading the publishers, and they
 * keep their data until it is acknowledged). */
static int open_back(void *zctx, const relay_args *a, void **out, int *curve, char *err,
                     size_t errlen)
{
    int one = 1, zero = 0, hwm = RELAY_SNDHWM, ivl = 100, ivl_max = 1000;
    int hb = RELAY_HEARTBEAT_MS, hb_timeout = 3 * RELAY_HEARTBEAT_MS;
    char e2[768];
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int rc;
    if (!s) {
        snprintf(err, errlen, "cannot create the upstream socket: %s", zmq_strerror(zmq_errno()));
        return -zmq_errno();
    }
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if ((rc = tkey_client_setup(s, a->server_key, a->client_key, e2, sizeof e2)) < 0) {
        snprintf(err, errlen, "upstream key: %s", e2);
        zmq_close(s);
        return rc;
    }
    *curve = rc == 1;
    if (zmq_connect(s, a->upstream) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "cannot connect to %s: %s", a->upstream, zmq_strerror(e));
        zmq_close(s);
        return -e;
    }
    *out = s;
    return 0;
}

int trl_relay_main(int argc, char **argv)
{
    relay_args a = { .listen = TSW_DEFAULT_INGEST };
    tsec_server *sec = NULL;
    tsec_zap *zap = NULL;
    void *zctx = NULL, *front = NULL, *back = NULL, *control = NULL;
    char err[1024];
    int curve = 0, ret = 1, have_thread = 0;
    sig_thread st;
    pthread_t sig_tid;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    if (parse(argc, argv, &a) < 0) {
        usage(stderr);
        return 2;
    }
    if (tsec_check_listen("--listen", a.listen, a.secret != NULL, a.insecure, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope relay: %s\n", err);
        return 2;
    }
    if (a.secret && tsec_server_load(&sec, a.secret, a.allow, err, sizeof err) < 0)
        goto fail;
    /* Blocked before any thread exists, so that every thread (libzmq's
     * included) inherits the mask and only sig_main takes them. */
    sigemptyset(&st.set);
    sigaddset(&st.set, SIGINT);
    sigaddset(&st.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &st.set, NULL);
    if (!(zctx = zmq_ctx_new())) {
        snprintf(err, sizeof err, "cannot create a ZeroMQ context");
        goto fail;
    }
    st.zctx = zctx;
    snprintf(st.ep, sizeof st.ep, CONTROL_EP_FMT, (void *)&st);
    if (!(control = zmq_socket(zctx, ZMQ_PAIR)) || zmq_bind(control, st.ep) != 0 ||
        pthread_create(&sig_tid, NULL, sig_main, &st) != 0) {
        snprintf(err, sizeof err, "cannot set up the signal thread: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    have_thread = 1;
    if ((sec && tsec_zap_start(zctx, sec, "relay", &zap, err, sizeof err) < 0) ||
        open_back(zctx, &a, &back, &curve, err, sizeof err) < 0 ||
        open_front(zctx, &a, sec, &front, err, sizeof err) < 0)
        goto fail;
    if (!a.quiet)
        fprintf(stderr, "[relay] %s%s -> %s%s\n", a.listen, sec ? " (CURVE)" : "", a.upstream,
                curve ? " (CURVE)" : "");
    /* Returns 0 on TERMINATE (a signal), -1 on an error. */
    if (zmq_proxy_steerable(front, back, NULL, control) != 0) {
        snprintf(err, sizeof err, "the proxy stopped: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    ret = 0;
    goto done;
fail:
    fprintf(stderr, "trainscope relay: %s\n", err);
done:
    if (have_thread) {
        pthread_kill(sig_tid, SIGTERM);     /* no-op when it already took one */
        pthread_join(sig_tid, NULL);
    }
    if (control)
        zmq_close(control);
    if (front)
        zmq_close(front);
    if (back)
        zmq_close(back);
    tsec_zap_stop(zap);
    if (zctx)
        zmq_ctx_term(zctx);
    tsec_server_free(sec);
    return ret;
}
