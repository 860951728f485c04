/* security.h - the listening side of CURVE: a server key, the allow-list
 * of client public keys, the ZAP handler that enforces it, the rule for
 * which endpoints need keys, and `trainscope keygen`. Key files and the
 * client side are proto/keys.h. Prefix tsec_.
 *
 * Use (collector and relay):
 *     tsec_server *s;
 *     tsec_server_load(&s, "collector.key", "clients/", err, sizeof err);
 *     tsec_zap_start(zctx, s, "collector", &zap, err, sizeof err);  // before any bind
 *     tsec_server_socket(s, sock);  zmq_bind(sock, ...);              // each listening socket
 *     ... zmq_close every socket; tsec_zap_stop(zap); zmq_ctx_term(zctx); tsec_server_free(s);
 *
 * Why a ZAP handler of our own: libzmq checks a CURVE client's key against
 * nothing unless a ZAP handler answers on inproc://zeromq.zap.01 of the
 * socket's context; without one every client that knows the server's public
 * key gets in. The handler runs in its own thread and answers 200 only for
 * mechanism CURVE with a key in the allow-list; everything else gets 400, so
 * the connection is closed before a single message passes either way.
 */
#ifndef TRAINSCOPE_SECURITY_H
#define TRAINSCOPE_SECURITY_H

#include <stddef.h>
#include <stdint.h>

typedef struct tsec_server tsec_server;
typedef struct tsec_zap tsec_zap;

/* Read the server's secret key file (mode 0600, keys.h) and the allowed
 * client public keys: allow is a file (a .pub, or a list of keys) or a
 * directory whose *.pub files are read. An allow-list without a key is an
 * error (nobody could connect). */
int tsec_server_load(tsec_server **out, const char *secret_file, const char *allow,
                     char *err, size_t errlen);
void tsec_server_free(tsec_server *s);
const char *tsec_server_public(const tsec_server *s);   /* Z85 */
size_t tsec_server_allowed(const tsec_server *s);       /* keys in the allow-list */

/* Make a socket a CURVE server with s's key, before it binds. s NULL: no-op.
 * Returns 0 or -errno. */
int tsec_server_socket(const tsec_server *s, void *sock);

/* Start the ZAP handler of zctx (one per context). Refused clients are
 * logged as "[log_name] refused ..." with their key and address, at most
 * one line per second plus a count of those held back. */
int tsec_zap_start(void *zctx, const tsec_server *s, const char *log_name, tsec_zap **out,
                   char *err, size_t errlen);
/* Stop the thread and close its socket (before zmq_ctx_term). NULL-safe. */
void tsec_zap_stop(tsec_zap *z);
/* Connections refused so far. */
uint64_t tsec_zap_refused(const tsec_zap *z);

/* 1 when an endpoint is reachable only from this machine: ipc://, inproc://,
 * tcp:// on 127.0.0.0/8, ::1 or localhost. */
int tsec_is_local(const char *ep);

/* The rule for listening: an endpoint that is not local needs CURVE
 * (secured) unless the user said --insecure. Returns 0, or -EACCES with a
 * sentence naming `what` (e.g. "--ingest") and the way out. */
int tsec_check_listen(const char *what, const char *ep, int secured, int insecure,
                      char *err, size_t errlen);

/* The listening side's command-line flags, shared by `collect` and `relay`:
 * --curve-secret FILE, --allow DIR|FILE, --insecure. */
typedef struct tsec_args {
    const char *secret, *allow;
    int insecure;
} tsec_args;

#define TSEC_USAGE \
    "  --curve-secret FILE  encrypt and authenticate with this key (`trainscope keygen`) ...\n" \
    "  --allow DIR|FILE     ... accepting only these clients' public keys (DIR: its *.pub)\n" \
    "  --insecure           listen beyond loopback without keys (anyone who reaches it gets in)\n"

/* 1 when argv[*i] is one of the flags (its value consumed), 0 when it is
 * not, -1 after printing "CMD: FLAG needs a value". */
int tsec_parse_arg(int argc, char **argv, int *i, tsec_args *a, const char *cmd);

/* Check the flags together and against the endpoints to listen on (n pairs
 * of option name and endpoint), then load the keys: *out is NULL for a plain
 * set-up. Returns 0; -EINVAL (flags that do not go together) or -EACCES (a
 * network endpoint without keys): a command-line mistake; other < 0: a key
 * file problem. err says which and what to do. */
int tsec_listen_setup(const tsec_args *a, const char *const *what_ep, size_t n, tsec_server **out,
                      char *err, size_t errlen);

/* `trainscope keygen [--out NAME]`: argv[0] is "keygen". */
int tsec_keygen_main(int argc, char **argv);

#endif
