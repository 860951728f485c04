/* names.h - metric name <-> id registry of one run (libtrainscope, internal).
 *
 * Name -> id: an open-addressing hash table (FNV-1a, linear probing) read
 * without a lock: ts_log by name on an already registered name is a hash, a
 * probe and a compare. Registering takes a mutex, allocates a record and
 * publishes it with a release store. When the table passes half full a
 * twice larger one is built and published; the old one stays readable (a
 * reader may still be probing it) and is freed with the registry.
 *
 * Id -> name: a two-level directory (1024 chunks of 1024 entries, chunks
 * allocated on demand and never moved) that the I/O thread reads to write
 * DEFINE entries. Ids are dense: 0, 1, 2 ... in registration order.
 */
#ifndef TS_NAMES_H
#define TS_NAMES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define TS__DIR_CHUNK 1024
#define TS__DIR_CHUNKS ((TSW_MAX_METRIC_ID + 1) / TS__DIR_CHUNK)

typedef struct ts__name {
    uint32_t id;
    uint32_t len;  /* bytes, without the terminating NUL */
    uint64_t hash; /* FNV-1a of the bytes */
    char str[];    /* NUL-terminated copy */
} ts__name;

typedef struct ts__name_table ts__name_table;

typedef struct ts__names {
    _Atomic(ts__name_table *) table;             /* current table, read lock-free */
    _Atomic(_Atomic(ts__name *) *) dir[TS__DIR_CHUNKS]; /* id -> record */
    _Atomic uint32_t count;                      /* ids handed out so far */
    pthread_mutex_t mu;                          /* serialises registrations */
    ts__name_table *retired;                     /* outgrown tables, freed at the end */
} ts__names;

/* Returns 0 or TS_ENOMEM. */
int ts__names_init(ts__names *n);
/* Frees every record and table. NULL-safe. */
void ts__names_destroy(ts__names *n);

/* The id of name[0..len), or -1 if it is not registered. Lock-free. */
int ts__names_find(ts__names *n, const char *name, size_t len);

/* The id of name[0..len), registering it if needed. The caller has checked
 * length and UTF-8. Returns the id, TS_ENOMEM or TS_ETOOMANY. */
int ts__names_add(ts__names *n, const char *name, size_t len);

/* The record of an id handed out by ts__names_add, else NULL. */
const ts__name *ts__names_get(ts__names *n, uint32_t id);

/* Number of ids handed out; an id below it has a record (acquire). */
static inline uint32_t ts__names_count(ts__names *n)
{
    return atomic_load_explicit(&n->count, memory_order_acquire);
}

#endif
