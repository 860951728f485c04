/* outbox.c - the publisher's unacknowledged messages and the reliability
 * rules of PROTOCOL.md (see outbox.h).
 */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define TS__OUTBOX_MIN 64

static ts__msg *at(const ts__outbox *ob, uint64_t seq)
{
    return &ob->q[seq & (ob->cap - 1)];
}

void ts__outbox_init(ts__outbox *ob)
{
    memset(ob, 0, sizeof *ob);
    ob->first = ob->next = ob->cursor = 1;
}

void ts__outbox_destroy(ts__outbox *ob)
{
    if (!ob)
        return;
    for (uint64_t s = ob->first; s < ob->next; s++)
        free(at(ob, s)->payload);
    free(ob->q);
    ob->q = NULL;
    for (size_t i = 0; i < ob->nspare; i++)
        free(ob->spare[i]);
    ob->nspare = 0;
}

uint8_t *ts__outbox_buffer(ts__outbox *ob, size_t len, size_t *cap)
{
    size_t best = ob->nspare;
    for (size_t i = 0; i < ob->nspare; i++)
        if (ob->spare_cap[i] >= len && (best == ob->nspare || ob->spare_cap[i] < ob->spare_cap[best]))
            best = i;
    if (best < ob->nspare) {
        uint8_t *buf = ob->spare[best];
        *cap = ob->spare_cap[best];
        ob->nspare--;
        ob->spare[best] = ob->spare[ob->nspare];
        ob->spare_cap[best] = ob->spare_cap[ob->nspare];
        return buf;
    }
    uint8_t *buf = malloc(len ? len : 1);
    *cap = buf ? (len ? len : 1) : 0;
    return buf;
}

void ts__outbox_release(ts__outbox *ob, uint8_t *buf, size_t cap)
{
    if (!buf)
        return;
    if (cap < TS__SPARE_MIN) {
        free(buf);
        return;
    }
    if (ob->nspare < TS__OUTBOX_SPARE) {
        ob->spare[ob->nspare] = buf;
        ob->spare_cap[ob->nspare++] = cap;
        return;
    }
    /* Full: keep the larger buffers (a BATCH one serves any message). */
    size_t smallest = 0;
    for (size_t i = 1; i < ob->nspare; i++)
        if (ob->spare_cap[i] < ob->spare_cap[smallest])
            smallest = i;
    if (ob->spare_cap[smallest] < cap) {
        free(ob->spare[smallest]);
        ob->spare[smallest] = buf;
        ob->spare_cap[smallest] = cap;
    } else {
        free(buf);
    }
}

/* Double the ring of entries, keeping each seq at index seq & (cap - 1). */
static int grow(ts__outbox *ob)
{
    size_t cap = ob->cap ? ob->cap * 2 : TS__OUTBOX_MIN;
    ts__msg *q = malloc(cap * sizeof *q);
    if (!q)
        return -1;
    for (uint64_t s = ob->first; s < ob->next; s++)
        q[s & (cap - 1)] = *at(ob, s);
    free(ob->q);
    ob->q = q;
    ob->cap = cap;
    return 0;
}

uint64_t ts__outbox_push_owned(ts__outbox *ob, uint8_t type, uint8_t *buf, size_t len, size_t cap,
                               uint32_t samples, uint64_t mark)
{
    if (ob->next - ob->first == ob->cap && grow(ob) < 0)
        return 0;
    ts__msg *m = at(ob, ob->next);
    *m = (ts__msg){.type = type, .payload = buf, .len = len, .cap = cap, .samples = samples, .mark = mark};
    ob->bytes += len + TSW_HEADER_SIZE;
    ob->last_mark = mark;
    return ob->next++;
}

uint64_t ts__outbox_push(ts__outbox *ob, uint8_t type, const void *payload, size_t len,
                         uint32_t samples, uint64_t mark)
{
    uint8_t *copy = NULL;
    size_t cap = 0;
    if (len) {
        /* Small messages (HELLO, DEFINE, EVENT, DROPS) are plain mallocs;
         * only a large one takes a spare. */
        copy = len >= TS__SPARE_MIN ? ts__outbox_buffer(ob, len, &cap) : malloc(len);
        if (!copy)
            return 0;
        if (len < TS__SPARE_MIN)
            cap = len;
        memcpy(copy, payload, len);
    }
    uint64_t seq = ts__outbox_push_owned(ob, type, copy, len, cap, samples, mark);
    if (!seq)
        ts__outbox_release(ob, copy, cap);
    return seq;
}

ts__msg *ts__outbox_peek(ts__outbox *ob, uint64_t *seq)
{
    if (ob->cursor == ob->next)
        return NULL;
    *seq = ob->cursor;
    return at(ob, ob->cursor);
}

int ts__outbox_sent(ts__outbox *ob, int64_t now_ns)
{
    /* The resend clock starts when something goes out while nothing was
     * outstanding; otherwise an idle second would count as "no progress". */
    if (ob->cursor == ob->first && at(ob, ob->first)->sends == 0)
        ob->progress_ns = now_ns;
    ts__msg *m = at(ob, ob->cursor++);
    return m->sends++ > 0;
}

ts__ack_result ts__outbox_ack(ts__outbox *ob, uint64_t acked, int64_t now_ns)
{
    ts__ack_result r = {0, 0};
    if (acked >= ob->next)
        acked = ob->next - 1; /* never trust an ACK for what was not sent */
    while (ob->first <= acked) {
        ts__msg *m = at(ob, ob->first++);
        r.messages++;
        r.samples += m->samples;
        ob->bytes -= m->len + TSW_HEADER_SIZE;
        ob->acked_mark = m->mark;
        ts__outbox_release(ob, m->payload, m->cap);
        m->payload = NULL;
    }
    if (r.messages)
        ob->progress_ns = now_ns;
    if (ob->cursor < ob->first)
        ob->cursor = ob->first;
    return r;
}

int ts__outbox_gap(ts__outbox *ob, uint64_t next_expected, int64_t now_ns)
{
    if (next_expected == ob->gap_value && now_ns - ob->gap_ns < TS__GAP_REPEAT_NS)
        return 0;
    ob->gap_value = next_expected;
    ob->gap_ns = now_ns;
    int lost = next_expected < ob->first;
    uint64_t from = lost ? ob->first : next_expected;
    int moved = 0;
    if (from < ob->cursor) {
        ob->cursor = from;
        moved = 1;
    }
    return lost ? -1 : moved;
}

int ts__outbox_tick(ts__outbox *ob, int64_t now_ns)
{
    if (ts__outbox_empty(ob) || at(ob, ob->first)->sends == 0)
        return 0; /* nothing outstanding: there is nothing to time out */
    if (now_ns - ob->progress_ns < TS__RESEND_NS)
        return 0;
    ob->cursor = ob->first;
    ob->progress_ns = now_ns;
    return 1;
}
