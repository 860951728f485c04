/* wire.h - the trainscope wire protocol: message layout, encode and decode.
 *
 * This is the only code that publishers (libtrainscope), the collector and the
 * viewer share. proto/PROTOCOL.md is the normative description of every byte;
 * this header mirrors it. All integers are little-endian, floats are IEEE-754
 * binary64 bit patterns, strings are UTF-8 without a terminator.
 *
 * A message is a ZeroMQ multipart message of exactly two frames:
 *   frame 0: a 24-byte header (tsw_header), frame 1: the payload (may be empty).
 * Publisher -> collector: HELLO, DEFINE, BATCH, EVENT, DROPS, BYE (sequenced).
 * Collector -> publisher: ACK, ERROR.
 *
 * Encoders write into caller memory and never allocate. Decoders check every
 * length against the frame and return 0 or a negative TSW_E* code; they never
 * read past the buffer they are given. Decoded strings point into the frame.
 */
#ifndef TRAINSCOPE_WIRE_H
#define TRAINSCOPE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TSW_MAGIC 0x50435354u   /* the bytes "TSCP" read as a little-endian u32 */
#define TSW_VERSION 1
#define TSW_HEADER_SIZE 24

/* Limits a collector enforces (see PROTOCOL.md "Limits"). */
#define TSW_MAX_PAYLOAD (16u << 20)    /* 16 MiB per payload frame */
#define TSW_MAX_TRANSPORT_MSG (32 << 20) /* ZMQ_MAXMSGSIZE: larger frames drop the connection */
#define TSW_MAX_NAME 512               /* bytes in a run, project or metric name */
#define TSW_MAX_KIND 64                /* bytes in an event kind */
#define TSW_MAX_TEXT 65536             /* bytes in an event text */
#define TSW_MAX_HELLO 1048576          /* bytes of HELLO JSON (config included) */
#define TSW_MAX_METRIC_ID 1048575      /* metric ids are 0 .. 2^20-1 per stream */
#define TSW_SAMPLE_SIZE 28             /* u32 id, i64 step, i64 time_ns, f64 value */
#define TSW_BATCH_HEAD 8               /* u32 count, u32 reserved */
#define TSW_MAX_BATCH ((TSW_MAX_PAYLOAD - TSW_BATCH_HEAD) / TSW_SAMPLE_SIZE)

/* Default endpoints of a collector. */
#define TSW_DEFAULT_INGEST "tcp://127.0.0.1:5557"
#define TSW_DEFAULT_API "tcp://127.0.0.1:5558"
#define TSW_DEFAULT_LIVE "tcp://127.0.0.1:5559"

enum tsw_type {
    TSW_HELLO = 0x01,  /* JSON object: run, project, rank, world_size, host, pid, ... */
    TSW_DEFINE = 0x02, /* entries: u32 metric_id, u16 len, name bytes */
    TSW_BATCH = 0x03,  /* u32 count, u32 0, count x 28-byte samples */
    TSW_EVENT = 0x04,  /* i64 step, i64 time_ns, u16 kind_len, kind, u32 text_len, text */
    TSW_DROPS = 0x05,  /* u64 count, i64 step_first, i64 step_last, i64 t_first, i64 t_last */
    TSW_BYE = 0x06,    /* optional UTF-8 status ("finished", "failed", ...) */
    TSW_ACK = 0x81,    /* seq = highest durable seq; payload u64 next expected seq */
    TSW_ERROR = 0x82,  /* seq = rejected seq (or 0); payload u32 code, UTF-8 message */
    TSW_LIVE = 0x90,   /* collector PUB, three frames: topic (run name), header, tsw_live payload */
};

/* ACK flags */
#define TSW_ACK_GAP 0x0001u /* collector saw a seq past next_expected: resend from there */

/* Error codes, in ERROR payloads and as negative returns of decoders. */
enum tsw_err {
    TSW_OK = 0,
    TSW_E_SHORT = 1,    /* frame shorter than its fields say */
    TSW_E_MAGIC = 2,    /* not a trainscope message */
    TSW_E_VERSION = 3,  /* protocol version this collector does not speak */
    TSW_E_TYPE = 4,     /* unknown message type */
    TSW_E_LENGTH = 5,   /* a length field disagrees with the frame size or a limit */
    TSW_E_UTF8 = 6,     /* a name or text is not valid UTF-8 (or contains NUL) */
    TSW_E_JSON = 7,     /* HELLO is not a valid JSON object with the required fields */
    TSW_E_METRIC = 8,   /* BATCH references a metric id never DEFINEd on this stream */
    TSW_E_STREAM = 9,   /* message for a stream whose HELLO the collector never stored */
    TSW_E_FRAMES = 10,  /* not exactly two frames */
    TSW_E_STORE = 11,   /* the collector could not write to its store */
};

typedef struct tsw_header {
    uint8_t version;   /* TSW_VERSION */
    uint8_t type;      /* enum tsw_type */
    uint16_t flags;    /* type-specific; 0 unless stated */
    uint64_t stream;   /* random non-zero id chosen by the publisher per run handle */
    uint64_t seq;      /* 1, 2, 3 ... per stream for publisher messages */
} tsw_header;

typedef struct tsw_sample {
    uint32_t metric;   /* id from a DEFINE on the same stream */
    int64_t step;
    int64_t time_ns;   /* Unix time in nanoseconds */
    double value;
} tsw_sample;

/* Header */
void tsw_header_encode(uint8_t out[TSW_HEADER_SIZE], const tsw_header *h);
int tsw_header_decode(const void *buf, size_t len, tsw_header *h);

/* Little-endian field access, shared by every encoder and decoder. */
static inline void tsw_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void tsw_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tsw_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tsw_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tsw_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t tsw_get_u64(const uint8_t *p)
{
    return (uint64_t)tsw_get_u32(p) | (uint64_t)tsw_get_u32(p + 4) << 32;
}
uint64_t tsw_double_bits(double v);
double tsw_bits_double(uint64_t bits);

/* BATCH: tsw_batch_size(n) bytes; encode writes exactly that many. */
static inline size_t tsw_batch_size(size_t n) { return TSW_BATCH_HEAD + n * TSW_SAMPLE_SIZE; }
void tsw_batch_encode_head(uint8_t *out, uint32_t count);
void tsw_sample_encode(uint8_t out[TSW_SAMPLE_SIZE], const tsw_sample *s);
/* Checks the frame; on success *count is the number of samples that follow
 * at buf + TSW_BATCH_HEAD, each read with tsw_sample_decode. */
int tsw_batch_decode(const void *buf, size_t len, uint32_t *count);
void tsw_sample_decode(const uint8_t in[TSW_SAMPLE_SIZE], tsw_sample *s);

/* DEFINE: a sequence of entries. Iterate with tsw_define_next; returns 1 and
 * fills id/name/len for each entry, 0 at the end, negative on a bad frame. */
size_t tsw_define_entry_size(size_t name_len);
size_t tsw_define_entry_encode(uint8_t *out, uint32_t id, const char *name, size_t name_len);
int tsw_define_next(const uint8_t *buf, size_t len, size_t *off,
                    uint32_t *id, const char **name, size_t *name_len);

/* EVENT */
typedef struct tsw_event {
    int64_t step;
    int64_t time_ns;
    const char *kind; size_t kind_len;
    const char *text; size_t text_len;
} tsw_event;
size_t tsw_event_size(const tsw_event *e);
void tsw_event_encode(uint8_t *out, const tsw_event *e);
int tsw_event_decode(const void *buf, size_t len, tsw_event *e);

/* DROPS: samples the publisher discarded because its buffer was full. */
#define TSW_DROPS_SIZE 40
typedef struct tsw_drops {
    uint64_t count;
    int64_t step_first, step_last;
    int64_t t_first, t_last;
} tsw_drops;
void tsw_drops_encode(uint8_t out[TSW_DROPS_SIZE], const tsw_drops *d);
int tsw_drops_decode(const void *buf, size_t len, tsw_drops *d);

/* ACK payload: next expected seq. ERROR payload: code + message. */
#define TSW_ACK_SIZE 8
void tsw_ack_encode(uint8_t out[TSW_ACK_SIZE], uint64_t next_expected);
int tsw_ack_decode(const void *buf, size_t len, uint64_t *next_expected);
size_t tsw_error_encode(uint8_t *out, size_t cap, uint32_t code, const char *msg);
int tsw_error_decode(const void *buf, size_t len, uint32_t *code, const char **msg, size_t *msg_len);

/* LIVE payload (collector -> subscribers): u64 series id, u32 rank,
 * u16 metric_len, metric bytes, u32 count, count x (i64 step, i64 time_ns, f64 value). */
#define TSW_LIVE_POINT 24
typedef struct tsw_live {
    uint64_t series;
    uint32_t rank;
    const char *metric; size_t metric_len;
    uint32_t count;
    const uint8_t *points;  /* count x TSW_LIVE_POINT bytes */
} tsw_live;
size_t tsw_live_head_size(size_t metric_len);
size_t tsw_live_head_encode(uint8_t *out, const tsw_live *l);
void tsw_live_point_encode(uint8_t out[TSW_LIVE_POINT], int64_t step, int64_t time_ns, double value);
int tsw_live_decode(const void *buf, size_t len, tsw_live *l);
void tsw_live_point_decode(const uint8_t in[TSW_LIVE_POINT], int64_t *step, int64_t *time_ns, double *value);

/* Strings: 1 if s[0..len) is valid UTF-8 with no NUL and no overlong forms. */
int tsw_utf8_valid(const char *s, size_t len);

/* A human sentence for a TSW_E code. */
const char *tsw_strerror(int code);

#endif
