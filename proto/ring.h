/* ring.h - the bounded ring between log calls (producers) and the I/O thread.
 *
 * Part of libtrainscope, internal. A log call copies one 32-byte slot into a
 * power-of-two array and returns: no allocation, no system call. Producers
 * serialise on a spinlock held for a dozen instructions; the single consumer
 * (the I/O thread) never takes it on the common path: it reads `tail`
 * (released by producers after the slot is written) and publishes `head`
 * (released after it has copied the slots out).
 *
 * Positions are 64-bit counters that never wrap in practice; the slot of
 * position p is slots[p & mask]. They start at 1: position 0 stands for the
 * run's HELLO, so "everything up to position p is acknowledged" also says the
 * collector knows the run (see client_int.h, `acked_mark`).
 *
 * When the ring is full a sample is dropped: counted, and its step and time
 * folded into a window of unreported drops that the I/O thread takes and
 * sends as a DROPS message. The last `reserve` slots are kept for markers
 * (events), so a flood of samples cannot make an event disappear.
 */
#ifndef TS_RING_H
#define TS_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainscope.h"
#include "wire.h"

enum ts__slot_kind {
    TS__SLOT_SAMPLE = 0, /* id, step, t_ns, value */
    TS__SLOT_EVENT = 1,  /* ptr: a heap ts__event_rec, owned by the ring until consumed */
};

typedef struct ts__slot {
    uint32_t id;   /* metric id (samples) */
    uint32_t kind; /* enum ts__slot_kind */
    int64_t step;
    int64_t t_ns;  /* Unix time in nanoseconds */
    union {
        double value; /* samples */
        void *ptr;    /* markers */
    };
} ts__slot;

_Static_assert(sizeof(ts__slot) == 32, "a slot is 32 bytes, two per cache line");

typedef struct ts__ring {
    /* Producer line: written only by the holder of `locked`. */
    alignas(64) atomic_bool locked;
    bool closed;              /* set by ts_close: later pushes fail with TS_ECLOSED */
    _Atomic uint64_t tail;    /* next position to write; stored (release) after the slot */
    uint64_t head_seen;       /* last head read: spares producers the consumer's line */
    _Atomic uint64_t logged;  /* samples accepted, total (single writer: the lock holder) */
    _Atomic uint64_t dropped; /* samples dropped, total (same) */
    tsw_drops window;         /* drops not yet taken by the I/O thread */

    /* Consumer line. */
    alignas(64) _Atomic uint64_t head; /* first position not yet copied out */

    /* Read-only after ts__ring_init. */
    alignas(64) ts__slot *slots;
    uint64_t mask;       /* capacity - 1, capacity a power of two */
    uint64_t sample_cap; /* samples may fill this many slots; markers all of them */
} ts__ring;

/* Capacity is rounded up to a power of two (at least 2). The slots are
 * touched once here so that page faults do not land in log calls.
 * Returns 0 or TS_ENOMEM. */
int ts__ring_init(ts__ring *r, size_t capacity);
void ts__ring_destroy(ts__ring *r);

/* Slow path of the lock: spin, then yield the CPU to the holder. */
void ts__ring_lock_contended(ts__ring *r);

static inline void ts__ring_lock(ts__ring *r)
{
    if (atomic_exchange_explicit(&r->locked, true, memory_order_acquire))
        ts__ring_lock_contended(r);
}

static inline void ts__ring_unlock(ts__ring *r)
{
    atomic_store_explicit(&r->locked, false, memory_order_release);
}

/* Counters with one writer (the lock holder) need no read-modify-write:
 * a plain load and store is enough and costs no locked instruction. */
static inline void ts__bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void ts__ring_note_drop(ts__ring *r, const ts__slot *s);

/* Copy *s into the ring. marker: may use the reserved slots, and is not
 * counted as a sample. Returns 0, TS_EDROPPED (full; a sample is counted
 * and its range noted) or TS_ECLOSED. */
static inline int ts__ring_push(ts__ring *r, const ts__slot *s, bool marker)
{
    int rc = 0;
    ts__ring_lock(r);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t limit = marker ? r->mask + 1 : r->sample_cap;
    if (r->closed) {
        rc = TS_ECLOSED;
        goto out;
    }
    if (t - r->head_seen >= limit) {
        /* Acquire pairs with the consumer's release of head: it is done
         * reading the slots we are about to overwrite. */
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t - r->head_seen >= limit) {
            if (!marker)
                ts__ring_note_drop(r, s);
            rc = TS_EDROPPED;
            goto out;
        }
    }
    r->slots[t & r->mask] = *s;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    if (!marker)
        ts__bump(&r->logged);
out:
    ts__ring_unlock(r);
    return rc;
}

/* Consumer side (the I/O thread only). */
static inline uint64_t ts__ring_tail(ts__ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire);
}

static inline const ts__slot *ts__ring_at(const ts__ring *r, uint64_t pos)
{
    return &r->slots[pos & r->mask];
}

/* Every slot below pos has been copied out: producers may reuse them. */
static inline void ts__ring_consume(ts__ring *r, uint64_t pos)
{
    atomic_store_explicit(&r->head, pos, memory_order_release);
}

/* Move the window of unreported drops into *out (count 0: none). */
void ts__ring_take_drops(ts__ring *r, tsw_drops *out);

/* Refuse further pushes; returns the final tail. */
uint64_t ts__ring_close(ts__ring *r);

#endif
