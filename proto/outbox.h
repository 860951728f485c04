/* outbox.h - sequenced messages kept until the collector acknowledges them
 * (libtrainscope, internal; used by the I/O thread only).
 *
 * This is PROTOCOL.md "Reliability" for a publisher, without the socket:
 * messages get seq 1, 2, 3 ... as they are pushed; a cursor says which one
 * goes to ZeroMQ next; an ACK frees the prefix it covers; a GAP or a second
 * without acknowledgement moves the cursor back so that the send loop sends
 * those messages again. Time is passed in (monotonic ns) so tests can drive it.
 *
 * Payload buffers: an acknowledged message's buffer of TS__SPARE_MIN bytes
 * or more is kept (up to TS__OUTBOX_SPARE of them) and handed out again by
 * ts__outbox_buffer, so a steady stream of BATCH messages (up to ~1.8 MB
 * each) allocates nothing: a fresh multi-megabyte malloc is an mmap, or
 * heap growth after a trim, and every page of it faults on first write.
 * ts__outbox_push_owned takes a filled buffer without copying it.
 *
 * Every message also carries a `mark`: the ring position up to which all
 * logged data is contained in this message or earlier ones. Acknowledging a
 * message therefore tells ts_flush how far the ring is durable.
 */
#ifndef TS_OUTBOX_H
#define TS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#define TS__RESEND_NS 1000000000LL   /* resend all after 1 s without ack progress */
#define TS__GAP_REPEAT_NS 200000000LL /* answer the same GAP at most every 200 ms */
#define TS__OUTBOX_SPARE 4           /* acknowledged payload buffers kept for reuse */
#define TS__SPARE_MIN (64 * 1024)    /* smaller ones are freed: malloc serves them well */

typedef struct ts__msg {
    uint8_t type;      /* enum tsw_type */
    uint8_t *payload;  /* owned; NULL when len is 0 */
    size_t len;
    size_t cap;        /* bytes allocated at payload (>= len) */
    uint32_t samples;  /* samples carried (BATCH), for ts_stats */
    uint32_t sends;    /* times handed to ZeroMQ */
    uint64_t mark;     /* ring position covered once this is acknowledged */
} ts__msg;

typedef struct ts__outbox {
    ts__msg *q;           /* circular, capacity a power of two */
    size_t cap;
    uint64_t first;       /* seq of the oldest kept message (= acked + 1) */
    uint64_t next;        /* seq the next pushed message gets */
    uint64_t cursor;      /* seq handed to ZeroMQ next; first <= cursor <= next */
    size_t bytes;         /* payload + header bytes kept */
    uint64_t acked_mark;  /* mark of the last acknowledged message */
    uint64_t last_mark;   /* mark of the last pushed message */
    int64_t progress_ns;  /* last ack progress (or first send after idle) */
    uint64_t gap_value;   /* last GAP next_expected answered */
    int64_t gap_ns;       /* and when */
    uint8_t *spare[TS__OUTBOX_SPARE];   /* free buffers, owned */
    size_t spare_cap[TS__OUTBOX_SPARE];
    size_t nspare;
} ts__outbox;

/* Totals of an ACK, for ts_stats. */
typedef struct ts__ack_result {
    uint64_t messages; /* messages freed */
    uint64_t samples;  /* samples in them */
} ts__ack_result;

void ts__outbox_init(ts__outbox *ob);
/* Frees every kept message and spare buffer. NULL-safe. */
void ts__outbox_destroy(ts__outbox *ob);

/* A buffer for a payload of up to len bytes: the smallest spare that is big
 * enough, else a new one (malloc). *cap receives its size. NULL when out of
 * memory. Give it back with ts__outbox_push_owned or ts__outbox_release. */
uint8_t *ts__outbox_buffer(ts__outbox *ob, size_t len, size_t *cap);
/* A buffer not pushed after all: kept as a spare, or freed. NULL-safe. */
void ts__outbox_release(ts__outbox *ob, uint8_t *buf, size_t cap);

/* Append a copy of payload[0..len) as the next seq. mark must not be below
 * the previous message's. Returns the seq, or 0 when out of memory (nothing
 * changed). */
uint64_t ts__outbox_push(ts__outbox *ob, uint8_t type, const void *payload, size_t len,
                         uint32_t samples, uint64_t mark);
/* The same, taking buf (cap bytes allocated, len of them the payload; from
 * ts__outbox_buffer or malloc) instead of copying. Returns the seq, or 0
 * when out of memory: then buf is still the caller's. */
uint64_t ts__outbox_push_owned(ts__outbox *ob, uint8_t type, uint8_t *buf, size_t len, size_t cap,
                               uint32_t samples, uint64_t mark);

/* The message the send loop should hand to ZeroMQ now, or NULL when every
 * kept message has been sent since the last rewind. *seq receives its seq. */
ts__msg *ts__outbox_peek(ts__outbox *ob, uint64_t *seq);
/* The peeked message was accepted by ZeroMQ. Returns 1 if it had been sent
 * before (a resend), else 0. */
int ts__outbox_sent(ts__outbox *ob, int64_t now_ns);

/* ACK with header seq `acked`: free every message with seq <= acked. */
ts__ack_result ts__outbox_ack(ts__outbox *ob, uint64_t acked, int64_t now_ns);
/* ACK with the GAP flag: send again from next_expected on, unless the same
 * value was answered less than 200 ms ago. Returns 1 if the cursor moved
 * back, 0 if not, -1 if the collector asks for messages already freed (it
 * lost data it had acknowledged: nothing can be resent). */
int ts__outbox_gap(ts__outbox *ob, uint64_t next_expected, int64_t now_ns);
/* Call regularly: after 1 s without ack progress while sent messages are
 * unacknowledged, rewind to the oldest. Returns 1 when it rewound. */
int ts__outbox_tick(ts__outbox *ob, int64_t now_ns);

static inline int ts__outbox_empty(const ts__outbox *ob) { return ob->first == ob->next; }

#endif
