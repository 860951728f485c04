/* security.c - CURVE server side: allow-list, ZAP handler, listen rule,
 * keygen (security.h). */
#include "security.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "keys.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "trainscope"
#define ZAP_POLL_MS 100         /* how soon the handler notices tsec_zap_stop */

struct tsec_server {
    tkey_pair key;
    uint8_t (*allowed)[32];
    size_t n, cap;
};

struct tsec_zap {
    const tsec_server *srv;
    void *sock;
    pthread_t thread;
    atomic_int stop;
    atomic_uint_fast64_t refused;
    char name[32];
    time_t log_sec;
    uint64_t held_back;
};

/* ---- keys ----------------------------------------------------------------- */

static int allow_add(void *arg, const uint8_t key[32])
{
    tsec_server *s = arg;
    for (size_t i = 0; i < s->n; i++)
        if (memcmp(s->allowed[i], key, 32) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        void *p = realloc(s->allowed, cap * 32);
        if (!p)
            return -ENOMEM;
        s->allowed = p;
        s->cap = cap;
    }
    memcpy(s->allowed[s->n++], key, 32);
    return 0;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Every *.pub of a directory, so that adding a client is copying its .pub
 * there (and restarting). Secret .key files there are not read. */
static int load_dir(tsec_server *s, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0, files = 0;
    if (!d) {
        snprintf(err, errlen, "cannot read the allow directory %s: %s", dir, strerror(errno));
        return -errno;
    }
    while ((e = readdir(d)) && rc >= 0) {
        char path[4096];
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".pub"))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        rc = tkey_read_publics(path, allow_add, s, err, errlen);
        files++;
    }
    closedir(d);
    if (rc >= 0 && files == 0) {
        snprintf(err, errlen, "the allow directory %s holds no .pub file: nobody could connect "
                 "(copy each client's NAME.pub from `trainscope keygen` there)", dir);
        return -ENOENT;
    }
    return rc < 0 ? rc : 0;
}

int tsec_server_load(tsec_server **out, const char *secret_file, const char *allow,
                     char *err, size_t errlen)
{
    int rc;
    char e2[768];
    *out = NULL;
    if (!zmq_has("curve")) {
        snprintf(err, errlen, "this libzmq was built without CURVE (libsodium): cannot encrypt");
        return -ENOTSUP;
    }
    tsec_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if ((rc = tkey_load_secret(secret_file, &s->key, e2, sizeof e2)) < 0) {
        snprintf(err, errlen, "--curve-secret: %s", e2);
        goto fail;
    }
    DIR *d = opendir(allow);
    if (d) {
        closedir(d);
        rc = load_dir(s, allow, e2, sizeof e2);
    } else {
        rc = tkey_read_publics(allow, allow_add, s, e2, sizeof e2);
    }
    if (rc < 0) {
        snprintf(err, errlen, "--allow: %s", e2);
        goto fail;
    }
    if (s->n == 0) {
        snprintf(err, errlen, "--allow: %s lists no public key: nobody could connect", allow);
        rc = -ENOENT;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    tsec_server_free(s);
    return rc;
}

void tsec_server_free(tsec_server *s)
{
    if (!s)
        return;
    tkey_wipe(&s->key, sizeof s->key);
    free(s->allowed);
    free(s);
}

const char *tsec_server_public(const tsec_server *s)
{
    return s->key.public_z85;
}

size_t tsec_server_allowed(const tsec_server *s)
{
    return s->n;
}

int tsec_server_socket(const tsec_server *s, void *sock)
{
    int one = 1;
    if (!s)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->key.secret_z85, TKEY_Z85 + 1) < 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0)
        return -zmq_errno();
    return 0;
}

/* ---- ZAP handler (RFC 27) ------------------------------------------------ */

static int allowed(const tsec_server *s, const uint8_t *key, size_t len)
{
    if (len != 32)
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (memcmp(s->allowed[i], key, 32) == 0)
            return 1;
    return 0;
}

static void log_refusal(tsec_zap *z, const zmq_msg_t *addr, const zmq_msg_t *mech,
                        const zmq_msg_t *cred)
{
    time_t now = time(NULL);
    char key[TKEY_Z85 + 1] = "(none)", where[128] = "", mname[32] = "";
    if (now == z->log_sec) {
        z->held_back++;
        return;
    }
    z->log_sec = now;
    if (zmq_msg_size(cred) == 32)
        zmq_z85_encode(key, zmq_msg_data((zmq_msg_t *)cred), 32);
    snprintf(where, sizeof where, "%.*s", (int)zmq_msg_size(addr), (char *)zmq_msg_data((zmq_msg_t *)addr));
    snprintf(mname, sizeof mname, "%.*s", (int)zmq_msg_size(mech), (char *)zmq_msg_data((zmq_msg_t *)mech));
    if (strcmp(mname, "CURVE") == 0)
        fprintf(stderr, "[%s] refused a client from %s: its public key %s is not in the allow-list"
                " (%" PRIu64 " more held back)\n", z->name, where, key, z->held_back);
    else
        fprintf(stderr, "[%s] refused a client from %s: it does not use CURVE encryption (%s; "
                "%" PRIu64 " more held back)\n", z->name, where, mname, z->held_back);
    z->held_back = 0;
}

/* One request: version, request id, domain, address, routing id, mechanism,
 * credentials (the client's 32-byte public key for CURVE). Answer 200 or
 * 400 with the same request id. */
static void zap_one(tsec_zap *z)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    for (int i = 0; i < 8; i++)
        zmq_msg_init(&f[i]);
    while (more) {
        zmq_msg_t *dst = &f[n < 7 ? n : 7];
        if (zmq_msg_recv(dst, z->sock, 0) < 0)
            goto done;
        n++;
        more = zmq_msg_more(dst);
    }
    int ok = n >= 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
             allowed(z->srv, zmq_msg_data(&f[6]), zmq_msg_size(&f[6]));
    if (!ok) {
        atomic_fetch_add(&z->refused, 1);
        if (n >= 7)
            log_refusal(z, &f[3], &f[5], &f[6]);
    }
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0, ZMQ_SNDMORE);
    zmq_send(z->sock, code, 3, ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, ZMQ_SNDMORE);  /* user id */
    zmq_send(z->sock, "", 0, 0);            /* metadata */
done:
    for (int i = 0; i < 8; i++)
        zmq_msg_close(&f[i]);
}

static void *zap_main(void *arg)
{
    tsec_zap *z = arg;
    zmq_pollitem_t it = { .socket = z->sock, .events = ZMQ_POLLIN };
    while (!atomic_load(&z->stop)) {
        if (zmq_poll(&it, 1, ZAP_POLL_MS) > 0 && (it.revents & ZMQ_POLLIN))
            zap_one(z);
    }
    int zero = 0;
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(z->sock);
    return NULL;
}

int tsec_zap_start(void *zctx, const tsec_server *s, const char *log_name, tsec_zap **out,
                   char *err, size_t errlen)
{
    sigset_t all, old;
    *out = NULL;
    tsec_zap *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    z->srv = s;
    snprintf(z->name, sizeof z->name, "%s", log_name);
    /* Bound here, before the caller binds anything, so no handshake can
     * happen while the handler is missing (libzmq would then let it in). */
    if (!(z->sock = zmq_socket(zctx, ZMQ_REP)) || zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "cannot start the key checker (ZAP handler): %s", zmq_strerror(e));
        if (z->sock)
            zmq_close(z->sock);
        free(z);
        return -e;
    }
    /* Signals stay with the main thread, whose zmq_poll they interrupt. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&z->thread, NULL, zap_main, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        zmq_close(z->sock);
        free(z);
        snprintf(err, errlen, "cannot start the key checker thread: %s", strerror(rc));
        return -rc;
    }
    *out = z;
    return 0;
}

void tsec_zap_stop(tsec_zap *z)
{
    if (!z)
        return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    free(z);
}

uint64_t tsec_zap_refused(const tsec_zap *z)
{
    return z ? atomic_load((atomic_uint_fast64_t *)&z->refused) : 0;
}

/* ---- where keys are required ------------------------------------------- */

int tsec_is_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;   /* pgm, udp, ...: assume the network */
    const char *h = ep + 6;
    /* tcp://IFACE;HOST:PORT names a source for connects; for binds only the host counts */
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
           strncmp(h, "[::1]:", 6) == 0;
}

int tsec_check_listen(const char *what, const char *ep, int secured, int insecure,
                      char *err, size_t errlen)
{
    if (secured || insecure || tsec_is_local(ep))
        return 0;
    snprintf(err, errlen, "%s %s listens beyond this machine: give --curve-secret FILE and "
             "--allow DIR (keys from `trainscope keygen`) so only clients with an allowed key get "
             "in, or --insecure to let anyone who can reach the port read and write", what, ep);
    return -EACCES;
}

int tsec_parse_arg(int argc, char **argv, int *i, tsec_args *a, const char *cmd)
{
    const char *o = argv[*i];
    const char **dst = NULL;
    if (strcmp(o, "--insecure") == 0) {
        a->insecure = 1;
        return 1;
    }
    if (strcmp(o, "--curve-secret") == 0)
        dst = &a->secret;
    else if (strcmp(o, "--allow") == 0)
        dst = &a->allow;
    else if (strncmp(o, "--curve-secret=", 15) == 0 || strncmp(o, "--allow=", 8) == 0) {
        dst = o[2] == 'c' ? &a->secret : &a->allow;
        *dst = strchr(o, '=') + 1;
        return **dst ? 1 : (fprintf(stderr, "%s: %.*s needs a value\n\n", cmd,
                                    (int)(strchr(o, '=') - o), o), -1);
    }
    if (!dst)
        return 0;
    if (*i + 1 >= argc || !argv[*i + 1][0]) {
        fprintf(stderr, "%s: %s needs a value\n\n", cmd, o);
        return -1;
    }
    *dst = argv[++*i];
    return 1;
}

int tsec_listen_setup(const tsec_args *a, const char *const *what_ep, size_t n, tsec_server **out,
                      char *err, size_t errlen)
{
    int rc;
    *out = NULL;
    if (!a->secret != !a->allow) {
        snprintf(err, errlen, a->secret ? "--curve-secret needs --allow DIR|FILE: the public keys "
                 "of the clients to let in" : "--allow needs --curve-secret FILE: this side's own "
                 "secret key (`trainscope keygen`)");
        return -EINVAL;
    }
    if (a->secret && a->insecure) {
        snprintf(err, errlen, "--insecure and --curve-secret contradict each other");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = tsec_check_listen(what_ep[2 * i], what_ep[2 * i + 1], a->secret != NULL,
                                    a->insecure, err, errlen)) < 0)
            return rc;
    if (!a->secret)
        return 0;
    rc = tsec_server_load(out, a->secret, a->allow, err, errlen);
    return rc == -EINVAL || rc == -EACCES ? -EIO : rc;  /* keep the two command-line codes apart */
}

/* ---- trainscope keygen ----------------------------------------------------- */

int tsec_keygen_main(int argc, char **argv)
{
    char name[512], err[1024], host[256] = "trainscope";
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: trainscope keygen [--out NAME]\n\n"
                   "Make a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).\n"
                   "NAME defaults to this host's name. A collector needs its own .key\n"
                   "(--curve-secret) and the clients' .pub files (--allow DIR); a client needs\n"
                   "its own .key (TRAINSCOPE_CLIENT_KEY) and the collector's .pub\n"
                   "(TRAINSCOPE_SERVER_KEY). Existing files are never replaced.\n");
            return 0;
        }
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && argv[i + 1][0]) {
            out = argv[++i];
        } else if (strncmp(argv[i], "--out=", 6) == 0 && argv[i][6]) {
            out = argv[i] + 6;
        } else {
            fprintf(stderr, "trainscope keygen: unexpected '%s'\nusage: trainscope keygen [--out NAME]\n",
                    argv[i]);
            return 2;
        }
    }
    if (!out) {
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "trainscope");
        host[sizeof host - 1] = 0;
        out = host;
    }
    snprintf(name, sizeof name, "%s", out);
    if (has_suffix(name, ".key") || has_suffix(name, ".pub"))
        name[strlen(name) - 4] = 0;
    tkey_pair kp;
    int rc = tkey_generate(name, &kp, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "trainscope keygen: %s\n", err);
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600: keep it private) and %s.pub (public)\n"
           "public key: %s\n", name, name, kp.public_z85);
    tkey_wipe(&kp, sizeof kp);
    return 0;
}
