/* keys.c - CURVE key files and client-side socket options (keys.h). */
#include "keys.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEYFILE_MAX (64 << 10)  /* an allow-list of ~1000 keys; anything larger is not a key file */

void tkey_wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* 1 when s is 40 Z85 characters that decode to 32 bytes. */
static int z85_key(const char *s, size_t n, uint8_t bin[32])
{
    char z[TKEY_Z85 + 1];
    uint8_t tmp[32];
    if (n != TKEY_Z85)
        return 0;
    memcpy(z, s, n);
    z[n] = 0;
    int ok = zmq_z85_decode(bin ? bin : tmp, z) != NULL;
    tkey_wipe(tmp, sizeof tmp);
    return ok;
}

/* Read a whole small file into a NUL-terminated buffer; *mode gets its
 * permission bits. */
static char *slurp(const char *path, mode_t *mode, char *err, size_t errlen, int *rc)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    if (fd < 0) {
        *rc = fail(err, errlen, -errno, "cannot open key file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *rc = fail(err, errlen, -EINVAL, "key file %s is not a regular file", path);
        goto done;
    }
    if (st.st_size > KEYFILE_MAX) {
        *rc = fail(err, errlen, -EFBIG, "key file %s is %lld bytes: not a key file", path,
                   (long long)st.st_size);
        goto done;
    }
    *mode = st.st_mode;
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        *rc = fail(err, errlen, -ENOMEM, "out of memory");
        goto done;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) {
            *rc = fail(err, errlen, r < 0 ? -errno : -EIO, "cannot read key file %s: %s", path,
                       r < 0 ? strerror(errno) : "it shrank while being read");
            tkey_wipe(buf, got);
            free(buf);
            buf = NULL;
            goto done;
        }
        got += (size_t)r;
    }
    buf[got] = 0;
done:
    close(fd);
    return buf;
}

/* The lines of a key file, one at a time. */
typedef struct line_key {
    int kind;               /* 0 none, 'p' public-key, 's' secret-key, 'b' bare key */
    const char *val;
    size_t len;
} line_key;

/* Classify one line (without its newline). Returns 0, or -1 when the line
 * is none of: blank, # comment, section name, name = value, bare key. */
static int parse_line(char *s, size_t n, line_key *k)
{
    memset(k, 0, sizeof *k);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    if (n == 0 || s[0] == '#')
        return 0;
    char *eq = memchr(s, '=', n);
    if (!eq) {
        if (z85_key(s, n, NULL)) {
            k->kind = 'b';
            k->val = s;
            k->len = n;
            return 0;
        }
        for (size_t i = 0; i < n; i++)   /* a section name such as `curve` */
            if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
                return -1;
        return 0;
    }
    size_t nlen = (size_t)(eq - s);
    while (nlen && isspace((unsigned char)s[nlen - 1]))
        nlen--;
    const char *v = eq + 1;
    size_t vlen = n - (size_t)(v - s);
    while (vlen && isspace((unsigned char)*v)) {
        v++;
        vlen--;
    }
    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
        v++;
        vlen -= 2;
    }
    if (nlen == 10 && memcmp(s, "public-key", 10) == 0)
        k->kind = 'p';
    else if (nlen == 10 && memcmp(s, "secret-key", 10) == 0)
        k->kind = 's';
    k->val = v;
    k->len = vlen;
    return 0;
}

/* Walk the lines of buf; for each key line call fn. Returns 0 or fn's
 * error, or -EINVAL naming the line. */
static int each_key(char *buf, const char *path, int (*fn)(void *, const line_key *, int line),
                    void *arg, char *err, size_t errlen)
{
    int line = 0;
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        line_key k;
        line++;
        if (parse_line(p, n, &k) < 0)
            return fail(err, errlen, -EINVAL, "%s line %d is not part of a key file "
                        "(expected `public-key = \"...\"` or a 40-character Z85 key)", path, line);
        if (k.kind) {
            int rc = fn(arg, &k, line);
            if (rc < 0)
                return rc;
        }
        p = nl ? nl + 1 : p + n;
    }
    return 0;
}

typedef struct pair_ctx {
    const char *path;
    char *err;
    size_t errlen;
    tkey_pair *kp;
    int have_pub, have_sec;
} pair_ctx;

static int pair_line(void *arg, const line_key *k, int line)
{
    pair_ctx *c = arg;
    if (k->kind != 'p' && k->kind != 's')
        return 0;
    if (!z85_key(k->val, k->len, NULL))
        return fail(c->err, c->errlen, -EINVAL, "%s line %d: the %s is not 40 Z85 characters",
                    c->path, line, k->kind == 'p' ? "public-key" : "secret-key");
    int *have = k->kind == 'p' ? &c->have_pub : &c->have_sec;
    char *dst = k->kind == 'p' ? c->kp->public_z85 : c->kp->secret_z85;
    if (*have)
        return fail(c->err, c->errlen, -EINVAL, "%s line %d: a second %s", c->path, line,
                    k->kind == 'p' ? "public-key" : "secret-key");
    memcpy(dst, k->val, TKEY_Z85);
    dst[TKEY_Z85] = 0;
    *have = 1;
    return 0;
}

int tkey_load_secret(const char *path, tkey_pair *out, char *err, size_t errlen)
{
    mode_t mode = 0;
    int rc = 0;
    memset(out, 0, sizeof *out);
    char *buf = slurp(path, &mode, err, errlen, &rc);
    if (!buf)
        return rc;
    size_t len = strlen(buf);
    pair_ctx c = { .path = path, .err = err, .errlen = errlen, .kp = out };
    if ((rc = each_key(buf, path, pair_line, &c, err, errlen)) < 0)
        goto done;
    if (!c.have_sec) {
        rc = fail(err, errlen, -EINVAL, "%s holds no secret-key: give the .key file that "
                  "`trainscope keygen` wrote, not the .pub", path);
        goto done;
    }
    if (mode & 077) {
        rc = fail(err, errlen, -EPERM, "secret key file %s can be %s by other users (mode %04o); "
                  "run: chmod 600 %s", path, (mode & 022) ? "changed" : "read",
                  (unsigned)(mode & 07777), path);
        goto done;
    }
    char derived[TKEY_Z85 + 1];
    if (zmq_curve_public(derived, out->secret_z85) != 0) {
        rc = fail(err, errlen, -EINVAL, "%s: cannot derive the public key (%s)", path,
                  zmq_strerror(zmq_errno()));
        goto done;
    }
    if (c.have_pub && strcmp(derived, out->public_z85) != 0) {
        rc = fail(err, errlen, -EINVAL, "%s: its public-key does not belong to its secret-key", path);
        goto done;
    }
    memcpy(out->public_z85, derived, sizeof derived);
done:
    tkey_wipe(buf, len);
    free(buf);
    if (rc < 0)
        tkey_wipe(out, sizeof *out);
    return rc;
}

typedef struct pub_ctx {
    const char *path;
    char *err;
    size_t errlen;
    int (*add)(void *, const uint8_t *);
    void *arg;
    int n;
} pub_ctx;

static int pub_line(void *arg, const line_key *k, int line)
{
    pub_ctx *c = arg;
    uint8_t bin[32];
    if (k->kind != 'p' && k->kind != 'b')
        return 0;   /* a secret-key line is skipped: only the public half is wanted */
    if (!z85_key(k->val, k->len, bin))
        return fail(c->err, c->errlen, -EINVAL, "%s line %d: the public-key is not 40 Z85 characters",
                    c->path, line);
    if (c->add(c->arg, bin) < 0)
        return fail(c->err, c->errlen, -ENOMEM, "out of memory");
    c->n++;
    return 0;
}

int tkey_read_publics(const char *path, int (*add)(void *arg, const uint8_t key[32]),
                      void *arg, char *err, size_t errlen)
{
    mode_t mode;
    int rc = 0;
    char *buf = slurp(path, &mode, err, errlen, &rc);
    if (!buf)
        return rc;
    pub_ctx c = { .path = path, .err = err, .errlen = errlen, .add = add, .arg = arg };
    rc = each_key(buf, path, pub_line, &c, err, errlen);
    tkey_wipe(buf, strlen(buf));    /* it may have been a .key file */
    free(buf);
    return rc < 0 ? rc : c.n;
}

static int one_public(void *arg, const uint8_t key[32])
{
    uint8_t *dst = arg;
    if (dst[32]++ == 0)
        memcpy(dst, key, 32);
    return 0;
}

int tkey_load_public(const char *spec, char out[TKEY_Z85 + 1], char *err, size_t errlen)
{
    uint8_t got[33] = {0};  /* key, count */
    if (z85_key(spec, strlen(spec), NULL)) {
        memcpy(out, spec, TKEY_Z85 + 1);
        return 0;
    }
    int n = tkey_read_publics(spec, one_public, got, err, errlen);
    if (n < 0) {
        if (n == -ENOENT && strlen(spec) == TKEY_Z85)
            snprintf(err, errlen, "'%s' is neither a 40-character Z85 key nor a key file", spec);
        return n;
    }
    if (n != 1)
        return fail(err, errlen, -EINVAL, "%s holds %d public keys; a server key file holds one",
                    spec, n);
    zmq_z85_encode(out, got, 32);
    return 0;
}

static int write_file(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return fail(err, errlen, -errno, errno == EEXIST ?
                    "%s exists; not replacing a key (remove it, or choose another --out)" :
                    "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    if (w != (ssize_t)n || fsync(fd) < 0 || close(fd) < 0) {
        unlink(path);
        return fail(err, errlen, -EIO, "cannot write %s: %s", path, strerror(w < 0 ? e : EIO));
    }
    return 0;
}

int tkey_generate(const char *name, tkey_pair *out, char *err, size_t errlen)
{
    char kpath[4096], ppath[4096], text[4096 + 512];
    int rc;
    if (snprintf(kpath, sizeof kpath, "%s.key", name) >= (int)sizeof kpath ||
        snprintf(ppath, sizeof ppath, "%s.pub", name) >= (int)sizeof ppath)
        return fail(err, errlen, -ENAMETOOLONG, "key name too long");
    if (zmq_curve_keypair(out->public_z85, out->secret_z85) != 0)
        return fail(err, errlen, -ENOTSUP, "this libzmq cannot make CURVE keys (%s): it was built "
                    "without libsodium", zmq_strerror(zmq_errno()));
    if (access(ppath, F_OK) == 0)
        return fail(err, errlen, -EEXIST, "%s exists; not replacing a key (remove it, or choose "
                    "another --out)", ppath);
    snprintf(text, sizeof text,
             "#   trainscope CURVE secret key: keep it private (mode 0600).\n"
             "#   Its public half is in %s.\n"
             "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             ppath, out->public_z85, out->secret_z85);
    rc = write_file(kpath, 0600, text, err, errlen);
    tkey_wipe(text, sizeof text);
    if (rc < 0)
        return rc;
    snprintf(text, sizeof text,
             "#   trainscope CURVE public key: give it to the collector's --allow list\n"
             "#   (a client's key) or to clients as TRAINSCOPE_SERVER_KEY (a collector's).\n"
             "curve\n    public-key = \"%s\"\n", out->public_z85);
    if ((rc = write_file(ppath, 0644, text, err, errlen)) < 0)
        unlink(kpath);
    return rc;
}

int tkey_client_setup(void *sock, const char *server_key, const char *client_key_file,
                      char *err, size_t errlen)
{
    const char *sk = server_key, *ck = client_key_file;
    const char *sk_from = "the server key", *ck_from = "the client key";
    char server[TKEY_Z85 + 1], e2[512];
    tkey_pair kp;
    int rc;
    if (!sk || !*sk) {
        sk = getenv(TKEY_ENV_SERVER);
        sk_from = TKEY_ENV_SERVER;
    }
    if (!ck || !*ck) {
        ck = getenv(TKEY_ENV_CLIENT);
        ck_from = TKEY_ENV_CLIENT;
    }
    if ((!sk || !*sk) && (!ck || !*ck))
        return 0;
    if (!sk || !*sk)
        return fail(err, errlen, -EINVAL, "%s is set but not the collector's public key: set "
                    TKEY_ENV_SERVER " (or --server-key) to its .pub file", ck_from);
    if (!ck || !*ck)
        return fail(err, errlen, -EINVAL, "%s is set but not this client's key: set "
                    TKEY_ENV_CLIENT " (or --client-key) to a .key file made by `trainscope keygen`",
                    sk_from);
    if (!zmq_has("curve"))
        return fail(err, errlen, -ENOTSUP, "this libzmq was built without CURVE (libsodium)");
    if ((rc = tkey_load_public(sk, server, e2, sizeof e2)) < 0)
        return fail(err, errlen, rc, "%s: %s", sk_from, e2);
    if ((rc = tkey_load_secret(ck, &kp, e2, sizeof e2)) < 0)
        return fail(err, errlen, rc, "%s: %s", ck_from, e2);
    rc = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, TKEY_Z85 + 1) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp.public_z85, TKEY_Z85 + 1) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.secret_z85, TKEY_Z85 + 1) < 0)
        rc = fail(err, errlen, -EINVAL, "ZeroMQ refused the CURVE keys: %s",
                  zmq_strerror(zmq_errno()));
    tkey_wipe(&kp, sizeof kp);
    return rc;
}
