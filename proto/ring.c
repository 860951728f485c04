/* ring.c - the bounded MPSC sample ring of libtrainscope (see ring.h).
 *
 * Only the rare paths live here: setup, the contended lock, drop accounting
 * and closing. The push itself is inline in ring.h so that a log call is one
 * function deep.
 */
#include "ring.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define TS__RING_MIN 2
#define TS__RING_MAX ((size_t)1 << 30) /* 32 GiB of slots: surely a mistake beyond */

static size_t round_up_pow2(size_t n)
{
    size_t c = TS__RING_MIN;
    while (c < n)
        c <<= 1;
    return c;
}

int ts__ring_init(ts__ring *r, size_t capacity)
{
    if (capacity > TS__RING_MAX)
        return TS_EINVAL;
    size_t cap = round_up_pow2(capacity);
    memset(r, 0, sizeof *r);
    r->slots = aligned_alloc(64, cap * sizeof(ts__slot));
    if (!r->slots)
        return TS_ENOMEM;
    /* Fault every page in now: a first touch inside a log call would cost a
     * page fault, which is the kind of stall the ring exists to avoid. */
    memset(r->slots, 0, cap * sizeof(ts__slot));
    r->mask = cap - 1;
    /* Keep 1/16 of the ring (at most 64 slots, at least 1 when there is
     * room) for event markers. */
    uint64_t reserve = cap / 16 < 64 ? cap / 16 : 64;
    if (reserve == 0 && cap > 1)
        reserve = 1;
    r->sample_cap = cap - reserve;
    atomic_init(&r->locked, false);
    atomic_init(&r->tail, 1);
    atomic_init(&r->head, 1);
    r->head_seen = 1;
    atomic_init(&r->logged, 0);
    atomic_init(&r->dropped, 0);
    return 0;
}

void ts__ring_destroy(ts__ring *r)
{
    if (!r)
        return;
    free(r->slots);
    r->slots = NULL;
}

void ts__ring_lock_contended(ts__ring *r)
{
    for (unsigned spins = 0;; spins++) {
        /* Test before test-and-set: spinning on a shared read keeps the
         * holder's cache line from bouncing between cores. */
        while (atomic_load_explicit(&r->locked, memory_order_relaxed)) {
            if (++spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                /* On a machine with fewer cores than threads the holder
                 * may be descheduled: let it run. */
                sched_yield();
            }
        }
        if (!atomic_exchange_explicit(&r->locked, true, memory_order_acquire))
            return;
    }
}

void ts__ring_note_drop(ts__ring *r, const ts__slot *s)
{
    tsw_drops *w = &r->window;
    if (w->count == 0) {
        w->step_first = w->step_last = s->step;
        w->t_first = w->t_last = s->t_ns;
    } else {
        if (s->step < w->step_first)
            w->step_first = s->step;
        if (s->step > w->step_last)
            w->step_last = s->step;
        if (s->t_ns < w->t_first)
            w->t_first = s->t_ns;
        if (s->t_ns > w->t_last)
            w->t_last = s->t_ns;
    }
    w->count++;
    ts__bump(&r->dropped);
}

void ts__ring_take_drops(ts__ring *r, tsw_drops *out)
{
    ts__ring_lock(r);
    *out = r->window;
    memset(&r->window, 0, sizeof r->window);
    ts__ring_unlock(r);
}

uint64_t ts__ring_close(ts__ring *r)
{
    ts__ring_lock(r);
    r->closed = true;
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    ts__ring_unlock(r);
    return t;
}
