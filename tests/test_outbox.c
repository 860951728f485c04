/* test_outbox.c - the publisher's outbox (proto/outbox.h): payload buffers
 * of acknowledged messages come back through ts__outbox_buffer, so a steady
 * stream of large BATCH messages allocates nothing; what is kept is
 * bounded; the sequencing and resend rules are unchanged by it.
 *
 * Under ASan (scripts/test) a buffer freed twice, used after being handed
 * out again, or leaked at destroy fails the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "wire.h"

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("FAIL %s:%d: %s\n", __func__, __LINE__, #cond);              \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#define BIG (1800 * 1024)   /* about a full BATCH */

/* Fill a buffer as io.c builds a batch, push it without copying, and take
 * the next one; returns the next buffer. */
static uint8_t *push_batch(ts__outbox *ob, uint8_t *buf, size_t *cap, uint8_t fill, uint64_t mark)
{
    memset(buf, fill, BIG);
    size_t ncap;
    uint8_t *next = ts__outbox_buffer(ob, BIG, &ncap);
    CHECK(next != NULL && ncap >= BIG);
    CHECK(ts__outbox_push_owned(ob, 3, buf, BIG, *cap, 65536, mark) != 0);
    *cap = ncap;
    return next;
}

/* Steady state: acknowledged buffers are the ones handed out next. */
static void reuses_acknowledged_buffers(void)
{
    ts__outbox ob;
    ts__outbox_init(&ob);
    size_t cap;
    uint8_t *buf = ts__outbox_buffer(&ob, BIG, &cap);
    uint8_t *first = buf;
    buf = push_batch(&ob, buf, &cap, 1, 1);   /* seq 1 holds `first` */
    uint64_t seq;
    ts__msg *m = ts__outbox_peek(&ob, &seq);
    CHECK(m && seq == 1 && m->payload == first && m->len == BIG && m->payload[BIG - 1] == 1);
    ts__outbox_sent(&ob, 0);
    ts__ack_result r = ts__outbox_ack(&ob, 1, 0);
    CHECK(r.messages == 1 && r.samples == 65536 && ob.nspare == 1);
    /* The current batch buffer goes out, and `first` comes back for the next. */
    uint8_t *cur = buf;
    buf = push_batch(&ob, buf, &cap, 2, 2);
    CHECK(buf == first);
    m = ts__outbox_peek(&ob, &seq);
    CHECK(m && seq == 2 && m->payload == cur && m->payload[0] == 2);
    /* A thousand batches, each acknowledged after the next is built: two
     * buffers take turns, nothing else is allocated. */
    uint8_t *seen[2] = { first, cur };
    int others = 0;
    for (uint64_t s = 2; s < 1002; s++) {
        ts__outbox_sent(&ob, 0);
        ts__outbox_ack(&ob, s, 0);
        buf = push_batch(&ob, buf, &cap, (uint8_t)s, s + 1);
        others += buf != seen[0] && buf != seen[1];
    }
    CHECK(others == 0);
    CHECK(ob.bytes == BIG + TSW_HEADER_SIZE);   /* one message outstanding */
    ts__outbox_release(&ob, buf, cap);
    ts__outbox_destroy(&ob);
}

/* At most TS__OUTBOX_SPARE buffers are kept, the largest; small ones are
 * freed at once. */
static void keeps_a_bounded_number(void)
{
    ts__outbox ob;
    ts__outbox_init(&ob);
    for (int i = 0; i < 10; i++) {
        size_t cap;
        uint8_t *b = ts__outbox_buffer(&ob, BIG, &cap);
        memset(b, 0, BIG);
        CHECK(ts__outbox_push_owned(&ob, 3, b, BIG, cap, 1, (uint64_t)i + 1) != 0);
    }
    CHECK(ts__outbox_push(&ob, 2, "define", 6, 0, 10) != 0);   /* small: copied */
    for (uint64_t s = ob.first; s < ob.next; s++)
        ts__outbox_sent(&ob, 0);
    ts__outbox_ack(&ob, 11, 0);
    CHECK(ts__outbox_empty(&ob));
    CHECK(ob.nspare == TS__OUTBOX_SPARE);
    for (size_t i = 0; i < ob.nspare; i++)
        CHECK(ob.spare_cap[i] >= BIG);
    /* A larger buffer pushes out a smaller spare. */
    size_t cap;
    uint8_t *huge = ts__outbox_buffer(&ob, 2 * BIG, &cap);
    CHECK(huge && cap == 2 * BIG && ob.nspare == TS__OUTBOX_SPARE);   /* none was big enough */
    ts__outbox_release(&ob, huge, cap);
    int has_huge = 0;
    for (size_t i = 0; i < ob.nspare; i++)
        has_huge |= ob.spare[i] == huge;
    CHECK(has_huge && ob.nspare == TS__OUTBOX_SPARE);
    /* The smallest fitting spare is the one handed out. */
    uint8_t *b = ts__outbox_buffer(&ob, BIG, &cap);
    CHECK(b != huge && cap == BIG);
    ts__outbox_release(&ob, b, cap);
    /* Small buffers are not kept. */
    uint8_t *small = ts__outbox_buffer(&ob, 100, &cap);
    CHECK(small != NULL);
    size_t before = ob.nspare;
    if (cap < TS__SPARE_MIN) {
        ts__outbox_release(&ob, small, cap);
        CHECK(ob.nspare == before);
    } else {   /* a spare was big enough and was handed out: it goes back */
        ts__outbox_release(&ob, small, cap);
        CHECK(ob.nspare == before + 1);
    }
    ts__outbox_destroy(&ob);   /* frees the spares: ASan's leak check */
}

/* A copied large message takes a spare too, and the resend rules still
 * hand out the same payload again. */
static void copies_and_resends(void)
{
    ts__outbox ob;
    ts__outbox_init(&ob);
    uint8_t *src = malloc(BIG);
    memset(src, 7, BIG);
    CHECK(ts__outbox_push(&ob, 3, src, BIG, 5, 1) == 1);
    uint64_t seq;
    ts__msg *m = ts__outbox_peek(&ob, &seq);
    CHECK(m && m->payload != src && m->cap >= BIG && m->payload[BIG / 2] == 7);
    uint8_t *p1 = m->payload;
    CHECK(ts__outbox_sent(&ob, 0) == 0);
    CHECK(ts__outbox_tick(&ob, TS__RESEND_NS + 1) == 1);   /* a second without an ACK: rewind */
    m = ts__outbox_peek(&ob, &seq);
    CHECK(m && seq == 1 && m->payload == p1 && m->payload[BIG - 1] == 7);
    CHECK(ts__outbox_sent(&ob, TS__RESEND_NS + 2) == 1);   /* a resend */
    ts__outbox_ack(&ob, 1, TS__RESEND_NS + 3);
    CHECK(ob.nspare == 1 && ob.spare[0] == p1);
    memset(src, 9, BIG);
    CHECK(ts__outbox_push(&ob, 3, src, BIG, 5, 2) == 2);
    m = ts__outbox_peek(&ob, &seq);
    CHECK(m && m->payload == p1 && m->payload[0] == 9 && ob.nspare == 0);
    free(src);
    ts__outbox_destroy(&ob);
}

int main(void)
{
    reuses_acknowledged_buffers();
    keeps_a_bounded_number();
    copies_and_resends();
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
