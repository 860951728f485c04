/* cache.c - decoded store chunks, in bounded LRU caches (model_int.h).
 *
 * A frame decodes only the chunks a column boundary cuts into groups;
 * panning exposes a few new ones per frame and the rest come from here. Two
 * caches:
 *   - blocks: a chunk's points and 64-point sub-summaries (about 100 KiB);
 *   - subs: only sub-summaries (about 4.6 KiB), kept for many more chunks:
 *     the store's own groups (format 2: points of equal step >> g, read from
 *     the chunk row without decoding) or, for a version-1 store, the 64-point
 *     groups of a decode. A column boundary between two groups (power-of-two
 *     columns) needs nothing else: such a chunk is reduced without decoding.
 * Both are the same LRU of fixed-size payloads keyed by chunk id, allocated
 * slot by slot on first use, so memory is bounded whatever the store holds.
 *
 * Knobs: TVM_CACHE_BLOCKS and TVM_CACHE_SUBS (model.c) slots.
 */
#include "model_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TVM_NONE UINT32_MAX

struct tvm_cache {
    void **payload;             /* max entries, NULL until first used */
    int64_t *id;                /* chunk id per slot, 0 when free */
    uint32_t *prev, *next;      /* LRU list, most recent at head */
    uint32_t *hnext;            /* hash chain */
    uint32_t max, used;
    uint32_t head, tail;
    size_t size;                /* payload bytes */
    uint32_t *hash;             /* nhash chains of slot indexes */
    uint32_t nhash;             /* power of two */
};

static uint32_t tvm_hash_of(const tvm_cache *c, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;

    return (uint32_t)(h >> 32) & (c->nhash - 1);
}

tvm_cache *tvm__cache_new(size_t max, size_t payload_size)
{
    tvm_cache *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->max = max ? (uint32_t)max : 1;
    c->size = payload_size;
    c->nhash = 16;
    while (c->nhash < 2 * c->max)
        c->nhash *= 2;
    c->payload = calloc(c->max, sizeof *c->payload);
    c->id = calloc(c->max, sizeof *c->id);
    c->prev = malloc(c->max * sizeof *c->prev);
    c->next = malloc(c->max * sizeof *c->next);
    c->hnext = malloc(c->max * sizeof *c->hnext);
    c->hash = malloc(c->nhash * sizeof *c->hash);
    if (!c->payload || !c->id || !c->prev || !c->next || !c->hnext || !c->hash) {
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
    for (uint32_t i = 0; c->payload && i < c->used; i++)
        free(c->payload[i]);
    free(c->payload);
    free(c->id);
    free(c->prev);
    free(c->next);
    free(c->hnext);
    free(c->hash);
    free(c);
}

static void tvm_lru_unlink(tvm_cache *c, uint32_t i)
{
    if (c->prev[i] != TVM_NONE)
        c->next[c->prev[i]] = c->next[i];
    else
        c->head = c->next[i];
    if (c->next[i] != TVM_NONE)
        c->prev[c->next[i]] = c->prev[i];
    else
        c->tail = c->prev[i];
}

static void tvm_lru_front(tvm_cache *c, uint32_t i)
{
    c->prev[i] = TVM_NONE;
    c->next[i] = c->head;
    if (c->head != TVM_NONE)
        c->prev[c->head] = i;
    c->head = i;
    if (c->tail == TVM_NONE)
        c->tail = i;
}

static void tvm_lru_back(tvm_cache *c, uint32_t i)
{
    c->next[i] = TVM_NONE;
    c->prev[i] = c->tail;
    if (c->tail != TVM_NONE)
        c->next[c->tail] = i;
    c->tail = i;
    if (c->head == TVM_NONE)
        c->head = i;
}

static void tvm_hash_remove(tvm_cache *c, uint32_t i)
{
    uint32_t *p = &c->hash[tvm_hash_of(c, c->id[i])];

    while (*p != TVM_NONE && *p != i)
        p = &c->hnext[*p];
    if (*p == i)
        *p = c->hnext[i];
    c->id[i] = 0;
}

static uint32_t tvm_cache_find(const tvm_cache *c, int64_t id)
{
    uint32_t i = c->hash[tvm_hash_of(c, id)];

    while (i != TVM_NONE && c->id[i] != id)
        i = c->hnext[i];
    return i;
}

void *tvm__cache_get(tvm_cache *c, int64_t id)
{
    uint32_t i = tvm_cache_find(c, id);

    if (i == TVM_NONE)
        return NULL;
    tvm_lru_unlink(c, i);
    tvm_lru_front(c, i);
    return c->payload[i];
}

void tvm__cache_forget(tvm_cache *c, int64_t id)
{
    uint32_t i = c ? tvm_cache_find(c, id) : TVM_NONE;

    if (i == TVM_NONE)
        return;
    tvm_hash_remove(c, i);
    tvm_lru_unlink(c, i);
    tvm_lru_back(c, i);     /* reused first */
}

void *tvm__cache_put(tvm_cache *c, int64_t id)
{
    uint32_t i = tvm_cache_find(c, id), h;

    if (i != TVM_NONE) {
        tvm_lru_unlink(c, i);
        tvm_lru_front(c, i);
        return c->payload[i];
    }
    if (c->used < c->max) {
        i = c->used;
        c->payload[i] = malloc(c->size);
        if (!c->payload[i])
            return NULL;
        c->used++;
    } else {
        i = c->tail;
        if (c->id[i])
            tvm_hash_remove(c, i);
        tvm_lru_unlink(c, i);
    }
    tvm_lru_front(c, i);
    c->id[i] = id;
    h = tvm_hash_of(c, id);
    c->hnext[i] = c->hash[h];
    c->hash[h] = i;
    return c->payload[i];
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
    tvm_block *b;
    tvm_subs *sub;
    int64_t cnt;

    if (ch->mem)
        return ch->mem;
    if (!src->stq || !src->cache) {
        tvm__fail(src, -EIO, "%s: chunk %lld has no store to read it from", src->where, (long long)ch->id);
        return NULL;
    }
    b = tvm__cache_get(src->cache, ch->id);
    if (b && b->n == ch->n)
        return b;
    b = tvm__cache_put(src->cache, ch->id);
    if (!b) {
        tvm__fail(src, -ENOMEM, "%s: out of memory for a decoded chunk", src->where);
        return NULL;
    }
    cnt = tss_chunks_decode(src->stq, ch->id, ch->n, ch->step_first, b->step, b->t_ns, b->value);
    b->n = 0;
    if (cnt < 0) {
        tvm__cache_forget(src->cache, ch->id);
        tvm__fail(src, (int)cnt, "%s", tss_errmsg(src->st));
        return NULL;
    }
    b->n = ch->n;   /* a row that grew since our summary: its prefix is what we know */
    if (tvm_block_check(src, ch, b) < 0) {
        tvm__cache_forget(src->cache, ch->id);
        return NULL;
    }
    tvm__block_resum(b, 0);
    /* keep the sub-summaries longer than the points (in place of the store's
     * groups: finer, and tvm_reduce still reads the groups where they fit and
     * these do not) */
    if (src->subs && (sub = tvm__cache_put(src->subs, ch->id)) != NULL) {
        uint32_t nsub = (b->n + TVM_SUB_POINTS - 1) >> TVM_SUB_SHIFT;
        sub->n = b->n;
        sub->nsub = nsub;
        sub->stored = 0;
        memcpy(sub->sub, b->sub, nsub * sizeof *sub->sub);
    }
    return b;
}

const tvm_subs *tvm__chunk_subs(tvm_source *src, tvm_chunk *ch, int stored_only)
{
    tss_bucket grp[TSS_CHUNK_GROUPS_MAX];
    tvm_subs *sub;
    int ng;

    _Static_assert(TSS_CHUNK_GROUPS_MAX <= TVM_SUBS, "a chunk's stored groups fit a tvm_subs");
    if (ch->mem || !src->subs)
        return NULL;
    sub = stored_only ? NULL : tvm__cache_get(src->subs, ch->id);
    if (sub && sub->n == ch->n && ch->exact)
        return sub;
    if (!src->stq)
        return NULL;
    ng = tss_chunks_groups(src->stq, ch->id, ch->n, ch->step_first, ch->step_last, grp, TSS_CHUNK_GROUPS_MAX);
    if (ng <= 0)
        return NULL;    /* none (version 1, a row that grew) or an error: decode instead */
    if (stored_only) {
        if (!src->subs_tmp && !(src->subs_tmp = malloc(sizeof *src->subs_tmp)))
            return NULL;
        sub = src->subs_tmp;
    } else if (!(sub = tvm__cache_put(src->subs, ch->id))) {
        return NULL;
    }
    sub->n = ch->n;
    sub->nsub = (uint32_t)ng;
    sub->stored = 1;
    memcpy(sub->sub, grp, (size_t)ng * sizeof *grp);
    /* the groups keep the bits of NaN payloads, which the row's summary loses */
    ch->first = grp[0].first;
    ch->last = grp[ng - 1].last;
    ch->exact = 1;
    return sub;
}
