/* keys.h - CURVE key files and the client side of an encrypted connection.
 *
 * Shared by libtrainscope (publishers), the relay's upstream socket and the
 * `trainscope` query commands; the collector's side (allow-list, ZAP
 * handler, keygen) is collector/security.h. Prefix tkey_.
 *
 * Key files are the ZeroMQ/CZMQ certificate text format, so keys made with
 * either tool work in the other:
 *
 *     # comment
 *     curve
 *         public-key = "40 Z85 characters"
 *         secret-key = "40 Z85 characters"      (only in the secret file)
 *
 * `trainscope keygen --out NAME` writes NAME.key (both keys, mode 0600) and
 * NAME.pub (the public key). A file of allowed client keys may also list
 * bare 40-character Z85 keys, one per line.
 *
 * Where a client finds its keys (tkey_client_setup): the arguments, else the
 * environment:
 *   TRAINSCOPE_SERVER_KEY  the collector's public key: 40 Z85 characters, or
 *                          the path of its .pub file
 *   TRAINSCOPE_CLIENT_KEY  the path of this client's .key file
 * Neither set: a plain connection. One set without the other: an error.
 *
 * Errors: negative errno-style codes with a sentence in err that names the
 * file or variable and says what to do.
 */
#ifndef TRAINSCOPE_KEYS_H
#define TRAINSCOPE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define TKEY_Z85 40             /* a 32-byte key in Z85 text */
#define TKEY_ENV_SERVER "TRAINSCOPE_SERVER_KEY"
#define TKEY_ENV_CLIENT "TRAINSCOPE_CLIENT_KEY"

typedef struct tkey_pair {
    char public_z85[TKEY_Z85 + 1];
    char secret_z85[TKEY_Z85 + 1];
} tkey_pair;

/* Read a secret key file. It must be a regular file that only its owner
 * can read or write (mode 0600 or stricter: -EPERM otherwise, with the chmod
 * to run), holding a secret-key; its public-key, when present, must belong
 * to that secret key, and is derived from it when absent. */
int tkey_load_secret(const char *path, tkey_pair *out, char *err, size_t errlen);

/* A public key given as 40 Z85 characters, or the path of a file holding
 * exactly one public-key (a .pub file, or a .key file: only its public half
 * is read). */
int tkey_load_public(const char *spec, char out[TKEY_Z85 + 1], char *err, size_t errlen);

/* Every public key in a file (.pub files and lists of bare keys), in order:
 * calls add(arg, key) for each, stops at the first add that fails. A line
 * that is neither a key, a comment, a section name nor a `name = value`
 * is an error naming the line. Returns the number of keys, or < 0. */
int tkey_read_publics(const char *path, int (*add)(void *arg, const uint8_t key[32]),
                      void *arg, char *err, size_t errlen);

/* Make a new key pair and write NAME.key (mode 0600) and NAME.pub. Refuses
 * to replace an existing file (-EEXIST). */
int tkey_generate(const char *name, tkey_pair *out, char *err, size_t errlen);

/* Set up sock (before connect) as a CURVE client. server_key and
 * client_key_file may be NULL to use the environment (see above). Returns 1
 * when CURVE was set up, 0 when no key is configured anywhere (plain), < 0
 * on a bad, missing or unprotected key. */
int tkey_client_setup(void *sock, const char *server_key, const char *client_key_file,
                      char *err, size_t errlen);

/* Overwrite key material so it does not linger in freed memory. */
void tkey_wipe(void *p, size_t n);

#endif
