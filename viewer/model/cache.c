/* cache.c - decoded store chunks, in a bounded LRU cache (model_int.h).
 *
 * A frame decodes only the chunks a column boundary cuts; panning exposes a
 * few new ones per frame and the rest come from here. Each slot holds one
 * chunk's points and its 64-point sub-summaries (about 100 KiB), allocated
 * on first use, so the memory is max_blocks slots at most whatever the
 * store holds.
 *
 * Knobs: TVM_CACHE_BLOCKS (model.c) slots.
 */
#include "model_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TVM_NONE UINT32_MAX

struct tvm_cache {
    tvm_block **slot;           /* max entries, NULL until first used */
    uint32_t max, used;
    uint32_t head, tail;        /* most and least recently used */
    uint32_t *hash;             /* nhash chains of slot indexes */
    uint32_t nhash;             /* power of two */
};

static uint32_t tvm_hash_of(const tvm_cache *c, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;

    return (uint32_t)(h >> 32) & (c->nhash - 1);
}

tvm_cache *tvm__cache_new(size_t max_blocks)
{
    tvm_cache *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->max = max_blocks ? (uint32_t)max_blocks : 1;
    c->nhash = 16;
    while (c->nhash < 2 * c->max)
        c->nhash *= 2;
    c->slot = calloc(c->max, sizeof *c->slot);
    c->hash = malloc(c->nhash * sizeof *c->hash);
    if (!c->slot || !c->hash) {
        tvm__cache_free(c);
        return NULL;
    }
    memset(c->hash, 0xff, c->nhash * sizeof *c->hash);
    c->head = c->tail = TVM_NONE;
    return c;
}

void tvm__cache_free(tvm_cache *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; c->slot && i < c->max; i++)
        free(c->slot[i]);
    free(c->slot);
    free(c->hash);
    free(c);
}

static void tvm_lru_unlink(tvm_cache *c, uint32_t i)
{
    tvm_block *b = c->slot[i];

    if (b->lru_prev != TVM_NONE)
        c->slot[b->lru_prev]->lru_next = b->lru_next;
    else
        c->head = b->lru_next;
    if (b->lru_next != TVM_NONE)
        c->slot[b->lru_next]->lru_prev = b->lru_prev;
    else
        c->tail = b->lru_prev;
}

static void tvm_lru_front(tvm_cache *c, uint32_t i)
{
    tvm_block *b = c->slot[i];

    b->lru_prev = TVM_NONE;
    b->lru_next = c->head;
    if (c->head != TVM_NONE)
        c->slot[c->head]->lru_prev = i;
    c->head = i;
    if (c->tail == TVM_NONE)
        c->tail = i;
}

static void tvm_hash_remove(tvm_cache *c, uint32_t i)
{
    uint32_t *p = &c->hash[tvm_hash_of(c, c->slot[i]->chunk_id)];

    while (*p != TVM_NONE && *p != i)
        p = &c->slot[*p]->hash_next;
    if (*p == i)
        *p = c->slot[i]->hash_next;
    c->slot[i]->chunk_id = 0;
}

static uint32_t tvm_cache_find(const tvm_cache *c, int64_t id)
{
    uint32_t i = c->hash[tvm_hash_of(c, id)];

    while (i != TVM_NONE && c->slot[i]->chunk_id != id)
        i = c->slot[i]->hash_next;
    return i;
}

void tvm__cache_forget(tvm_cache *c, int64_t chunk_id)
{
    uint32_t i = c ? tvm_cache_find(c, chunk_id) : TVM_NONE;

    if (i == TVM_NONE)
        return;
    tvm_hash_remove(c, i);
    tvm_lru_unlink(c, i);
    /* to the back: reused first */
    c->slot[i]->lru_next = TVM_NONE;
    c->slot[i]->lru_prev = c->tail;
    if (c->tail != TVM_NONE)
        c->slot[c->tail]->lru_next = i;
    c->tail = i;
    if (c->head == TVM_NONE)
        c->head = i;
}

/* A slot for a new entry: a never used one, else the least recently used. */
static int tvm_cache_take(tvm_cache *c, uint32_t *out)
{
    uint32_t i;

    if (c->used < c->max) {
        i = c->used;
        c->slot[i] = malloc(sizeof *c->slot[i]);
        if (!c->slot[i])
            return -ENOMEM;
        c->used++;
        c->slot[i]->chunk_id = 0;
        tvm_lru_front(c, i);
    } else {
        i = c->tail;
        if (c->slot[i]->chunk_id)
            tvm_hash_remove(c, i);
        tvm_lru_unlink(c, i);
        tvm_lru_front(c, i);
    }
    *out = i;
    return 0;
}

void tvm__block_resum(tvm_block *b, uint32_t from)
{
    uint32_t k0 = from >> TVM_SUB_SHIFT, nsub = (b->n + TVM_SUB_POINTS - 1) >> TVM_SUB_SHIFT;

    for (uint32_t k = k0; k < nsub; k++) {
        tss_bucket *s = &b->sub[k];
        uint32_t end = (k + 1) << TVM_SUB_SHIFT;

        *s = (tss_bucket){.min = NAN, .max = NAN, .first = NAN, .last = NAN};
        if (end > b->n)
            end = b->n;
        for (uint32_t i = k << TVM_SUB_SHIFT; i < end; i++) {
            double v = b->value[i];
            if (s->count == 0) {
                s->step_first = b->step[i];
                s->first = v;
            }
            s->count++;
            s->step_last = b->step[i];
            s->last = v;
            if (isnan(v)) {
                s->n_nan++;
                continue;
            }
            if (isinf(v))
                s->n_inf++;
            if (isnan(s->min) || v < s->min)
                s->min = v;
            if (isnan(s->max) || v > s->max)
                s->max = v;
        }
    }
}

/* After a decode: the chunk's summary takes the exact bits of its first and
 * last values, and we learn whether its times go back. Steps that go back
 * or disagree with the row mean a corrupt chunk. */
static int tvm_block_check(tvm_source *src, tvm_chunk *ch, const tvm_block *b)
{
    int sorted = 1;

    for (uint32_t i = 1; i < b->n; i++) {
        if (b->step[i] < b->step[i - 1])
            return tvm__fail(src, -EINVAL, "%s: chunk %lld: corrupt chunk data (steps go back)", src->where,
                             (long long)ch->id);
        if (b->t_ns[i] < b->t_ns[i - 1])
            sorted = 0;
    }
    if (b->step[b->n - 1] != ch->step_last)
        return tvm__fail(src, -EINVAL, "%s: chunk %lld: corrupt chunk data (steps differ from the chunk row)",
                         src->where, (long long)ch->id);
    ch->first = b->value[0];
    ch->last = b->value[b->n - 1];
    ch->exact = 1;
    ch->time_sorted = (uint8_t)sorted;
    return 0;
}

const tvm_block *tvm__chunk_points(tvm_source *src, tvm_ser *s, size_t ci)
{
    tvm_chunk *ch = &s->chunks[ci];
    tvm_cache *c = src->cache;
    tvm_block *b;
    uint32_t i;
    int64_t cnt;
    int rc;

    if (ch->mem)
        return ch->mem;
    if (!src->stq || !c) {
        tvm__fail(src, -EIO, "%s: chunk %lld has no store to read it from", src->where, (long long)ch->id);
        return NULL;
    }
    i = tvm_cache_find(c, ch->id);
    if (i != TVM_NONE && c->slot[i]->n == ch->n) {
        tvm_lru_unlink(c, i);
        tvm_lru_front(c, i);
        return c->slot[i];
    }
    if (i != TVM_NONE)
        tvm__cache_forget(c, ch->id);   /* the row grew: decode it again */
    rc = tvm_cache_take(c, &i);
    if (rc < 0) {
        tvm__fail(src, rc, "%s: out of memory for a decoded chunk", src->where);
        return NULL;
    }
    b = c->slot[i];
    cnt = tss_chunks_decode(src->stq, ch->id, ch->n, ch->step_first, b->step, b->t_ns, b->value);
    if (cnt < 0) {
        tvm__fail(src, (int)cnt, "%s", tss_errmsg(src->st));
        return NULL;
    }
    b->n = ch->n;   /* a row that grew since our summary: its prefix is what we know */
    if ((rc = tvm_block_check(src, ch, b)) < 0)
        return NULL;
    tvm__block_resum(b, 0);
    b->chunk_id = ch->id;
    b->hash_next = c->hash[tvm_hash_of(c, ch->id)];
    c->hash[tvm_hash_of(c, ch->id)] = i;
    return b;
}
