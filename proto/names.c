/* names.c - the metric name registry of a run (see names.h for the design).
 *
 * Readers never lock: records and tables are immutable once published (a
 * slot goes from NULL to a record exactly once), and nothing is freed before
 * the registry itself. Writers hold `mu`.
 */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#include "trainscope.h"

#define TS__TABLE_MIN 64 /* slots in the first table */

struct ts__name_table {
    size_t mask;                   /* slots - 1, slots a power of two */
    size_t used;                   /* records inserted (writers only) */
    ts__name_table *next_retired;  /* chain of outgrown tables */
    _Atomic(ts__name *) slot[];
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static ts__name_table *table_new(size_t slots)
{
    ts__name_table *t = calloc(1, sizeof *t + slots * sizeof t->slot[0]);
    if (!t)
        return NULL;
    t->mask = slots - 1;
    for (size_t i = 0; i < slots; i++)
        atomic_init(&t->slot[i], NULL);
    return t;
}

/* Writers only: put a record into the first free slot of its probe chain. */
static void table_insert(ts__name_table *t, ts__name *rec)
{
    size_t i = rec->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    /* Release: a reader that sees the pointer sees the record's bytes. */
    atomic_store_explicit(&t->slot[i], rec, memory_order_release);
    t->used++;
}

static ts__name *table_find(ts__name_table *t, const char *name, size_t len, uint64_t h)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        ts__name *rec = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!rec)
            return NULL;
        if (rec->hash == h && rec->len == len && memcmp(rec->str, name, len) == 0)
            return rec;
    }
}

int ts__names_init(ts__names *n)
{
    memset(n, 0, sizeof *n);
    for (size_t i = 0; i < TS__DIR_CHUNKS; i++)
        atomic_init(&n->dir[i], NULL);
    atomic_init(&n->count, 0);
    ts__name_table *t = table_new(TS__TABLE_MIN);
    if (!t)
        return TS_ENOMEM;
    atomic_init(&n->table, t);
    if (pthread_mutex_init(&n->mu, NULL) != 0) {
        free(t);
        return TS_ENOMEM;
    }
    return 0;
}

void ts__names_destroy(ts__names *n)
{
    if (!n)
        return;
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    for (uint32_t id = 0; id < count; id++)
        free((void *)ts__names_get(n, id));
    for (size_t i = 0; i < TS__DIR_CHUNKS; i++)
        free(atomic_load_explicit(&n->dir[i], memory_order_relaxed));
    free(atomic_load_explicit(&n->table, memory_order_relaxed));
    while (n->retired) {
        ts__name_table *next = n->retired->next_retired;
        free(n->retired);
        n->retired = next;
    }
    pthread_mutex_destroy(&n->mu);
}

int ts__names_find(ts__names *n, const char *name, size_t len)
{
    ts__name_table *t = atomic_load_explicit(&n->table, memory_order_acquire);
    ts__name *rec = table_find(t, name, len, fnv1a(name, len));
    return rec ? (int)rec->id : -1;
}

const ts__name *ts__names_get(ts__names *n, uint32_t id)
{
    if (id > TSW_MAX_METRIC_ID)
        return NULL;
    _Atomic(ts__name *) *chunk =
        atomic_load_explicit(&n->dir[id / TS__DIR_CHUNK], memory_order_acquire);
    if (!chunk)
        return NULL;
    return atomic_load_explicit(&chunk[id % TS__DIR_CHUNK], memory_order_acquire);
}

/* Writers only: make room for one more record, keeping the load at most 1/2
 * so that probe chains stay short. */
static int table_reserve(ts__names *n)
{
    ts__name_table *t = atomic_load_explicit(&n->table, memory_order_relaxed);
    if ((t->used + 1) * 2 <= t->mask + 1)
        return 0;
    ts__name_table *bigger = table_new((t->mask + 1) * 2);
    if (!bigger)
        return TS_ENOMEM;
    for (size_t i = 0; i <= t->mask; i++) {
        ts__name *rec = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (rec)
            table_insert(bigger, rec);
    }
    atomic_store_explicit(&n->table, bigger, memory_order_release);
    /* Readers may still be probing the old table: keep it until the end. */
    t->next_retired = n->retired;
    n->retired = t;
    return 0;
}

/* Writers only: the directory entry of a new id, allocating its chunk. */
static _Atomic(ts__name *) *dir_entry(ts__names *n, uint32_t id)
{
    _Atomic(_Atomic(ts__name *) *) *cp = &n->dir[id / TS__DIR_CHUNK];
    _Atomic(ts__name *) *chunk = atomic_load_explicit(cp, memory_order_relaxed);
    if (!chunk) {
        chunk = malloc(TS__DIR_CHUNK * sizeof *chunk);
        if (!chunk)
            return NULL;
        for (size_t i = 0; i < TS__DIR_CHUNK; i++)
            atomic_init(&chunk[i], NULL);
        atomic_store_explicit(cp, chunk, memory_order_release);
    }
    return &chunk[id % TS__DIR_CHUNK];
}

int ts__names_add(ts__names *n, const char *name, size_t len)
{
    uint64_t h = fnv1a(name, len);
    int rc;
    pthread_mutex_lock(&n->mu);
    ts__name *rec = table_find(atomic_load_explicit(&n->table, memory_order_relaxed),
                               name, len, h);
    if (rec) {
        rc = (int)rec->id;
        goto out;
    }
    uint32_t id = atomic_load_explicit(&n->count, memory_order_relaxed);
    if (id > TSW_MAX_METRIC_ID) {
        rc = TS_ETOOMANY;
        goto out;
    }
    _Atomic(ts__name *) *slot = dir_entry(n, id);
    if (!slot || table_reserve(n) < 0) {
        rc = TS_ENOMEM;
        goto out;
    }
    rec = malloc(sizeof *rec + len + 1);
    if (!rec) {
        rc = TS_ENOMEM;
        goto out;
    }
    rec->id = id;
    rec->len = (uint32_t)len;
    rec->hash = h;
    memcpy(rec->str, name, len);
    rec->str[len] = '\0';
    /* Directory first, then the table, then the count: whoever can learn
     * the id can also resolve it back to the name. */
    atomic_store_explicit(slot, rec, memory_order_release);
    table_insert(atomic_load_explicit(&n->table, memory_order_relaxed), rec);
    atomic_store_explicit(&n->count, id + 1, memory_order_release);
    rc = (int)id;
out:
    pthread_mutex_unlock(&n->mu);
    return rc;
}
