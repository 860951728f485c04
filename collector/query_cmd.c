/* query_cmd.c - `trainscope query API_EP [JSON]`: one request to a running
 * collector's query API (PROTOCOL.md "Query API"), local or remote, plain or
 * with CURVE keys (proto/keys.h: --server-key/--client-key or the
 * TRAINSCOPE_SERVER_KEY / TRAINSCOPE_CLIENT_KEY environment), printed as the
 * JSON reply. `points` and `buckets` replies are followed by their binary
 * frame decoded as CSV lines.
 *
 * Exit status: 0 reply with ok true, 1 an error reply, no reply in time or
 * a key problem, 2 bad command line.
 */
#include "query_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "keys.h"
#include "wire.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope query API_EP [JSON] [--timeout-ms N] [--server-key KEY] [--client-key FILE]\n"
            "\n"
            "Send one request to a collector's query API and print the reply, e.g.\n"
            "  trainscope query tcp://head-node:5558                       (runs)\n"
            "  trainscope query tcp://head-node:5558 '{\"op\":\"series\",\"run\":\"gpt2\"}'\n"
            "JSON defaults to {\"op\":\"runs\"}. Keys for a collector that uses CURVE: the\n"
            "collector's public key (Z85 or .pub; env TRAINSCOPE_SERVER_KEY) and this client's\n"
            "key file (env TRAINSCOPE_CLIENT_KEY). A collector that does not allow the key\n"
            "never answers: the command then fails after --timeout-ms (default 5000).\n");
}

/* The API's binary records are little-endian (PROTOCOL.md), as wire.h reads them. */
static double dbl(const uint8_t *p) { return tsw_bits_double(tsw_get_u64(p)); }
static int64_t i64(const uint8_t *p) { return (int64_t)tsw_get_u64(p); }

/* The binary frame of points (24-byte records) or buckets (56-byte ones). */
static void print_binary(const char *req, const uint8_t *p, size_t n)
{
    if (strstr(req, "\"buckets\"") && n % 56 == 0) {
        printf("count,step_first,step_last,min,max,first,last\n");
        for (size_t i = 0; i < n; i += 56)
            printf("%" PRId64 ",%" PRId64 ",%" PRId64 ",%.17g,%.17g,%.17g,%.17g\n", i64(p + i),
                   i64(p + i + 8), i64(p + i + 16), dbl(p + i + 24), dbl(p + i + 32),
                   dbl(p + i + 40), dbl(p + i + 48));
    } else if (n % 24 == 0) {
        printf("step,time_ns,value\n");
        for (size_t i = 0; i < n; i += 24)
            printf("%" PRId64 ",%" PRId64 ",%.17g\n", i64(p + i), i64(p + i + 8), dbl(p + i + 16));
    } else {
        printf("(%zu bytes of binary data)\n", n);
    }
}

int trc_query_main(int argc, char **argv)
{
    const char *ep = NULL, *req = "{\"op\":\"runs\"}", *server_key = NULL, *client_key = NULL;
    int timeout_ms = 5000, ret = 1, rc;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if ((strcmp(a, "--timeout-ms") == 0 || strcmp(a, "--server-key") == 0 ||
             strcmp(a, "--client-key") == 0) && i + 1 >= argc) {
            fprintf(stderr, "trainscope query: %s needs a value\n\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--timeout-ms") == 0) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 3600000) {
                fprintf(stderr, "trainscope query: --timeout-ms wants 1..3600000\n");
                return 2;
            }
            timeout_ms = (int)v;
        } else if (strcmp(a, "--server-key") == 0) {
            server_key = argv[++i];
        } else if (strcmp(a, "--client-key") == 0) {
            client_key = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "trainscope query: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!ep) {
            ep = a;
        } else if (req[0] == '{' && strcmp(req, "{\"op\":\"runs\"}") == 0) {
            req = a;
        } else {
            fprintf(stderr, "trainscope query: one endpoint and one JSON request\n\n");
            usage(stderr);
            return 2;
        }
    }
    if (!ep) {
        usage(stderr);
        return 2;
    }
    void *ctx = zmq_ctx_new(), *s = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    if (!s) {
        fprintf(stderr, "trainscope query: cannot create a ZeroMQ socket\n");
        goto done;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if ((rc = tkey_client_setup(s, server_key, client_key, err, sizeof err)) < 0) {
        fprintf(stderr, "trainscope query: %s\n", err);
        goto done;
    }
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "trainscope query: cannot connect to %s: %s\n", ep, zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_send(s, req, strlen(req), 0);
    zmq_pollitem_t it = { .socket = s, .events = ZMQ_POLLIN };
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        fprintf(stderr, "trainscope query: no reply from %s within %d ms (is a collector there? "
                "%s)\n", ep, timeout_ms, rc == 1 ? "does it allow this client's key?" :
                "does it use CURVE? then set TRAINSCOPE_SERVER_KEY and TRAINSCOPE_CLIENT_KEY");
        goto done;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    int part = 0, more = 1, ok = 0;
    while (more && zmq_msg_recv(&m, s, 0) >= 0) {
        const char *d = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        more = zmq_msg_more(&m);
        if (part++ == 0) {
            printf("%.*s\n", (int)n, d);
            ok = memmem(d, n, "\"ok\":true", 9) != NULL || memmem(d, n, "\"ok\": true", 10) != NULL;
        } else {
            print_binary(req, zmq_msg_data(&m), n);
        }
    }
    zmq_msg_close(&m);
    ret = ok ? 0 : 1;
done:
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    return ret;
}
