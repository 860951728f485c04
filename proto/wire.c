/* wire.c - encode and decode trainscope protocol messages (see PROTOCOL.md).
 *
 * Every decoder treats its input as hostile: lengths are checked against the
 * frame before any field is read, and strings are checked for UTF-8.
 */
#include "wire.h"

#include <string.h>

_Static_assert(sizeof(double) == 8, "binary64 doubles required");

uint64_t tsw_double_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

double tsw_bits_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

void tsw_header_encode(uint8_t out[TSW_HEADER_SIZE], const tsw_header *h)
{
    tsw_put_u32(out, TSW_MAGIC);
    out[4] = h->version;
    out[5] = h->type;
    tsw_put_u16(out + 6, h->flags);
    tsw_put_u64(out + 8, h->stream);
    tsw_put_u64(out + 16, h->seq);
}

int tsw_header_decode(const void *buf, size_t len, tsw_header *h)
{
    const uint8_t *p = buf;
    if (len < 4)
        return -TSW_E_SHORT;
    if (tsw_get_u32(p) != TSW_MAGIC)
        return -TSW_E_MAGIC;
    if (len < 5)
        return -TSW_E_SHORT;
    h->version = p[4];
    /* Version is checked before the size so that a future, longer header
     * still gets the precise "wrong version" answer. */
    if (h->version != TSW_VERSION)
        return -TSW_E_VERSION;
    if (len != TSW_HEADER_SIZE)
        return -TSW_E_LENGTH;
    h->type = p[5];
    h->flags = tsw_get_u16(p + 6);
    h->stream = tsw_get_u64(p + 8);
    h->seq = tsw_get_u64(p + 16);
    switch (h->type) {
    case TSW_HELLO: case TSW_DEFINE: case TSW_BATCH: case TSW_EVENT:
    case TSW_DROPS: case TSW_BYE: case TSW_ACK: case TSW_ERROR: case TSW_LIVE:
        return 0;
    default:
        return -TSW_E_TYPE;
    }
}

void tsw_batch_encode_head(uint8_t *out, uint32_t count)
{
    tsw_put_u32(out, count);
    tsw_put_u32(out + 4, 0);
}

void tsw_sample_encode(uint8_t out[TSW_SAMPLE_SIZE], const tsw_sample *s)
{
    tsw_put_u32(out, s->metric);
    tsw_put_u64(out + 4, (uint64_t)s->step);
    tsw_put_u64(out + 12, (uint64_t)s->time_ns);
    tsw_put_u64(out + 20, tsw_double_bits(s->value));
}

int tsw_batch_decode(const void *buf, size_t len, uint32_t *count)
{
    const uint8_t *p = buf;
    if (len < TSW_BATCH_HEAD)
        return -TSW_E_SHORT;
    uint32_t n = tsw_get_u32(p);
    if (n > TSW_MAX_BATCH || len != tsw_batch_size(n))
        return -TSW_E_LENGTH;
    *count = n;
    return 0;
}

void tsw_sample_decode(const uint8_t in[TSW_SAMPLE_SIZE], tsw_sample *s)
{
    s->metric = tsw_get_u32(in);
    s->step = (int64_t)tsw_get_u64(in + 4);
    s->time_ns = (int64_t)tsw_get_u64(in + 12);
    s->value = tsw_bits_double(tsw_get_u64(in + 20));
}

size_t tsw_define_entry_size(size_t name_len) { return 6 + name_len; }

size_t tsw_define_entry_encode(uint8_t *out, uint32_t id, const char *name, size_t name_len)
{
    tsw_put_u32(out, id);
    tsw_put_u16(out + 4, (uint16_t)name_len);
    memcpy(out + 6, name, name_len);
    return 6 + name_len;
}

int tsw_define_next(const uint8_t *buf, size_t len, size_t *off,
                    uint32_t *id, const char **name, size_t *name_len)
{
    if (*off == len)
        return 0;
    if (len - *off < 6)
        return -TSW_E_SHORT;
    const uint8_t *p = buf + *off;
    uint32_t mid = tsw_get_u32(p);
    size_t n = tsw_get_u16(p + 4);
    if (n == 0 || n > TSW_MAX_NAME || mid > TSW_MAX_METRIC_ID)
        return -TSW_E_LENGTH;
    if (len - *off - 6 < n)
        return -TSW_E_SHORT;
    if (!tsw_utf8_valid((const char *)p + 6, n))
        return -TSW_E_UTF8;
    *id = mid;
    *name = (const char *)p + 6;
    *name_len = n;
    *off += 6 + n;
    return 1;
}

size_t tsw_event_size(const tsw_event *e) { return 8 + 8 + 2 + e->kind_len + 4 + e->text_len; }

void tsw_event_encode(uint8_t *out, const tsw_event *e)
{
    tsw_put_u64(out, (uint64_t)e->step);
    tsw_put_u64(out + 8, (uint64_t)e->time_ns);
    tsw_put_u16(out + 16, (uint16_t)e->kind_len);
    memcpy(out + 18, e->kind, e->kind_len);
    uint8_t *t = out + 18 + e->kind_len;
    tsw_put_u32(t, (uint32_t)e->text_len);
    memcpy(t + 4, e->text, e->text_len);
}

int tsw_event_decode(const void *buf, size_t len, tsw_event *e)
{
    const uint8_t *p = buf;
    if (len < 18)
        return -TSW_E_SHORT;
    e->step = (int64_t)tsw_get_u64(p);
    e->time_ns = (int64_t)tsw_get_u64(p + 8);
    e->kind_len = tsw_get_u16(p + 16);
    if (e->kind_len == 0 || e->kind_len > TSW_MAX_KIND)
        return -TSW_E_LENGTH;
    if (len < 18 + e->kind_len + 4)
        return -TSW_E_SHORT;
    e->kind = (const char *)p + 18;
    e->text_len = tsw_get_u32(p + 18 + e->kind_len);
    if (e->text_len > TSW_MAX_TEXT || len != 18 + e->kind_len + 4 + e->text_len)
        return -TSW_E_LENGTH;
    e->text = (const char *)p + 22 + e->kind_len;
    if (!tsw_utf8_valid(e->kind, e->kind_len) || !tsw_utf8_valid(e->text, e->text_len))
        return -TSW_E_UTF8;
    return 0;
}

void tsw_drops_encode(uint8_t out[TSW_DROPS_SIZE], const tsw_drops *d)
{
    tsw_put_u64(out, d->count);
    tsw_put_u64(out + 8, (uint64_t)d->step_first);
    tsw_put_u64(out + 16, (uint64_t)d->step_last);
    tsw_put_u64(out + 24, (uint64_t)d->t_first);
    tsw_put_u64(out + 32, (uint64_t)d->t_last);
}

int tsw_drops_decode(const void *buf, size_t len, tsw_drops *d)
{
    const uint8_t *p = buf;
    if (len != TSW_DROPS_SIZE)
        return -TSW_E_LENGTH;
    d->count = tsw_get_u64(p);
    d->step_first = (int64_t)tsw_get_u64(p + 8);
    d->step_last = (int64_t)tsw_get_u64(p + 16);
    d->t_first = (int64_t)tsw_get_u64(p + 24);
    d->t_last = (int64_t)tsw_get_u64(p + 32);
    return 0;
}

void tsw_ack_encode(uint8_t out[TSW_ACK_SIZE], uint64_t next_expected)
{
    tsw_put_u64(out, next_expected);
}

int tsw_ack_decode(const void *buf, size_t len, uint64_t *next_expected)
{
    if (len != TSW_ACK_SIZE)
        return -TSW_E_LENGTH;
    *next_expected = tsw_get_u64(buf);
    return 0;
}

size_t tsw_error_encode(uint8_t *out, size_t cap, uint32_t code, const char *msg)
{
    size_t n = strlen(msg);
    if (cap < 4)
        return 0;
    if (n > cap - 4)
        n = cap - 4;
    tsw_put_u32(out, code);
    memcpy(out + 4, msg, n);
    return 4 + n;
}

int tsw_error_decode(const void *buf, size_t len, uint32_t *code, const char **msg, size_t *msg_len)
{
    if (len < 4)
        return -TSW_E_SHORT;
    *code = tsw_get_u32(buf);
    *msg = (const char *)buf + 4;
    *msg_len = len - 4;
    return 0;
}

size_t tsw_live_head_size(size_t metric_len) { return 8 + 4 + 2 + metric_len + 4; }

size_t tsw_live_head_encode(uint8_t *out, const tsw_live *l)
{
    tsw_put_u64(out, l->series);
    tsw_put_u32(out + 8, l->rank);
    tsw_put_u16(out + 12, (uint16_t)l->metric_len);
    memcpy(out + 14, l->metric, l->metric_len);
    tsw_put_u32(out + 14 + l->metric_len, l->count);
    return tsw_live_head_size(l->metric_len);
}

void tsw_live_point_encode(uint8_t out[TSW_LIVE_POINT], int64_t step, int64_t time_ns, double value)
{
    tsw_put_u64(out, (uint64_t)step);
    tsw_put_u64(out + 8, (uint64_t)time_ns);
    tsw_put_u64(out + 16, tsw_double_bits(value));
}

int tsw_live_decode(const void *buf, size_t len, tsw_live *l)
{
    const uint8_t *p = buf;
    if (len < 14)
        return -TSW_E_SHORT;
    l->series = tsw_get_u64(p);
    l->rank = tsw_get_u32(p + 8);
    l->metric_len = tsw_get_u16(p + 12);
    if (len < tsw_live_head_size(l->metric_len))
        return -TSW_E_SHORT;
    l->metric = (const char *)p + 14;
    l->count = tsw_get_u32(p + 14 + l->metric_len);
    size_t head = tsw_live_head_size(l->metric_len);
    if ((len - head) / TSW_LIVE_POINT != l->count || (len - head) % TSW_LIVE_POINT)
        return -TSW_E_LENGTH;
    l->points = p + head;
    return 0;
}

void tsw_live_point_decode(const uint8_t in[TSW_LIVE_POINT], int64_t *step, int64_t *time_ns, double *value)
{
    *step = (int64_t)tsw_get_u64(in);
    *time_ns = (int64_t)tsw_get_u64(in + 8);
    *value = tsw_bits_double(tsw_get_u64(in + 16));
}

int tsw_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1; cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2; cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3; cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Reject overlong forms, surrogates and code points past U+10FFFF. */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += n + 1;
    }
    return 1;
}

const char *tsw_strerror(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case TSW_OK: return "ok";
    case TSW_E_SHORT: return "frame is shorter than its fields say";
    case TSW_E_MAGIC: return "not a trainscope message (bad magic)";
    case TSW_E_VERSION: return "unsupported protocol version";
    case TSW_E_TYPE: return "unknown message type";
    case TSW_E_LENGTH: return "a length field disagrees with the frame size or exceeds a limit";
    case TSW_E_UTF8: return "a name or text is not valid UTF-8";
    case TSW_E_JSON: return "HELLO is not a JSON object with a valid \"run\"";
    case TSW_E_METRIC: return "BATCH uses a metric id that was never defined on this stream";
    case TSW_E_STREAM: return "message for an unknown stream (send HELLO first)";
    case TSW_E_FRAMES: return "a message must have exactly two frames";
    case TSW_E_STORE: return "the collector could not write to its store";
    default: return "unknown error";
    }
}
