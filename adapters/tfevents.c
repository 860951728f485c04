/* tfevents.c - Event / Summary / TensorProto decoding and encoding (see
 * tfevents.h for the fields and why by hand).
 */
#include "tfevents.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

enum {
    DT_FLOAT = 1, DT_DOUBLE = 2, DT_INT32 = 3, DT_UINT8 = 4, DT_INT16 = 5, DT_INT8 = 6,
    DT_STRING = 7, DT_INT64 = 9, DT_BOOL = 10, DT_BFLOAT16 = 14, DT_UINT16 = 17, DT_HALF = 19,
    DT_UINT32 = 22, DT_UINT64 = 23,
};

typedef struct pb {
    const uint8_t *p, *end;
} pb;

typedef struct field {
    uint32_t num;
    int wt;
    uint64_t v;                  /* varint, or the raw bits of I64/I32 */
    const uint8_t *data;         /* LEN */
    size_t len;
} field;

static int varint(pb *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && b->p < b->end; shift += 7) {
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* 1 and *f, 0 at the end, -1 malformed. */
static int next_field(pb *b, field *f)
{
    if (b->p >= b->end)
        return 0;
    uint64_t key;
    if (varint(b, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    switch (f->wt) {
    case WT_VARINT: return varint(b, &f->v) < 0 ? -1 : 1;
    case WT_I64:
        if (b->end - b->p < 8)
            return -1;
        f->v = 0;
        for (int i = 7; i >= 0; i--)
            f->v = f->v << 8 | b->p[i];
        b->p += 8;
        return 1;
    case WT_I32:
        if (b->end - b->p < 4)
            return -1;
        f->v = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 |
               (uint64_t)b->p[3] << 24;
        b->p += 4;
        return 1;
    case WT_LEN: {
        uint64_t n;
        if (varint(b, &n) < 0 || n > (uint64_t)(b->end - b->p))
            return -1;
        f->data = b->p;
        f->len = (size_t)n;
        b->p += n;
        return 1;
    }
    default: return -1; /* groups (3, 4) and reserved types: not in these messages */
    }
}

static double f64(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static double f32(uint32_t bits)
{
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

static double half_to_double(uint32_t h)
{
    int sign = (h >> 15) & 1, e = (h >> 10) & 0x1f;
    unsigned m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m | 0x400, e - 25);
    return sign ? -v : v;
}

static int dtype_size(uint64_t dt)
{
    switch (dt) {
    case DT_FLOAT: case DT_INT32: case DT_UINT32: return 4;
    case DT_DOUBLE: case DT_INT64: case DT_UINT64: return 8;
    case DT_HALF: case DT_BFLOAT16: case DT_INT16: case DT_UINT16: return 2;
    case DT_INT8: case DT_UINT8: case DT_BOOL: return 1;
    default: return 0;
    }
}

/* The number in n little-endian bytes of dtype dt. */
static double from_bytes(uint64_t dt, const uint8_t *p)
{
    uint64_t u = 0;
    int n = dtype_size(dt);
    for (int i = n - 1; i >= 0; i--)
        u = u << 8 | p[i];
    switch (dt) {
    case DT_FLOAT: return f32((uint32_t)u);
    case DT_DOUBLE: return f64(u);
    case DT_HALF: return half_to_double((uint32_t)u);
    case DT_BFLOAT16: return f32((uint32_t)u << 16);
    case DT_INT8: return (int8_t)u;
    case DT_INT16: return (int16_t)u;
    case DT_INT32: return (int32_t)u;
    case DT_INT64: return (double)(int64_t)u;
    default: return (double)u; /* unsigned and bool */
    }
}

/* A typed value (field of TensorProto) as the dtype says: 0 and *v, -1 when
 * the field does not hold one value of this dtype. */
static int typed_value(uint64_t dt, const field *f, double *v)
{
    uint64_t raw;
    if (f->wt == WT_LEN) { /* packed: exactly one element wanted */
        pb b = {f->data, f->data + f->len};
        if (f->num == 5 || f->num == 6) {
            size_t w = f->num == 5 ? 4 : 8;
            if (f->len != w)
                return -1;
            raw = 0;
            for (int i = (int)w - 1; i >= 0; i--)
                raw = raw << 8 | f->data[i];
        } else if (varint(&b, &raw) < 0 || b.p != b.end) {
            return -1;
        }
    } else {
        raw = f->v;
    }
    switch (f->num) {
    case 5: if (dt != DT_FLOAT) return -1; *v = f32((uint32_t)raw); return 0;
    case 6: if (dt != DT_DOUBLE) return -1; *v = f64(raw); return 0;
    case 7:
        if (dt == DT_INT32 || dt == DT_INT16 || dt == DT_INT8) *v = (int32_t)raw;
        else if (dt == DT_UINT8 || dt == DT_UINT16) *v = (uint32_t)raw;
        else return -1;
        return 0;
    case 10: if (dt != DT_INT64) return -1; *v = (double)(int64_t)raw; return 0;
    case 11: if (dt != DT_BOOL) return -1; *v = raw != 0; return 0;
    case 13:
        if (dt == DT_HALF) *v = half_to_double((uint32_t)raw & 0xffff);
        else if (dt == DT_BFLOAT16) *v = f32(((uint32_t)raw & 0xffff) << 16);
        else return -1;
        return 0;
    case 16: if (dt != DT_UINT32) return -1; *v = (uint32_t)raw; return 0;
    case 17: if (dt != DT_UINT64) return -1; *v = (double)raw; return 0;
    }
    return -1;
}

/* 1: a one-element shape; 0 otherwise; -1 malformed. */
static int shape_is_scalar(const uint8_t *p, size_t len)
{
    pb b = {p, p + len};
    field f;
    int r;
    while ((r = next_field(&b, &f)) > 0) {
        if (f.num == 3 && f.wt == WT_VARINT && f.v)
            return 0; /* unknown rank */
        if (f.num != 2 || f.wt != WT_LEN)
            continue;
        pb d = {f.data, f.data + f.len};
        field g;
        int s;
        while ((s = next_field(&d, &g)) > 0)
            if (g.num == 1 && g.wt == WT_VARINT && g.v != 1)
                return 0;
        if (s < 0)
            return -1;
    }
    return r < 0 ? -1 : 1;
}

/* 1 and *v for a numeric scalar tensor, 0 for any other tensor, -1 malformed. */
static int tensor_scalar(const uint8_t *p, size_t len, double *v)
{
    pb b = {p, p + len};
    field f, content = {0}, typed[4];
    uint64_t dt = 0;
    int r, scalar = 1, ntyped = 0, has_content = 0;
    while ((r = next_field(&b, &f)) > 0) {
        if (f.num == 1 && f.wt == WT_VARINT)
            dt = f.v;
        else if (f.num == 2 && f.wt == WT_LEN) {
            int s = shape_is_scalar(f.data, f.len);
            if (s < 0)
                return -1;
            scalar = s;
        } else if (f.num == 4 && f.wt == WT_LEN) {
            content = f;
            has_content = 1;
        } else if (f.num >= 5 && f.num != 8 && f.num != 9 && f.num != 12 && f.num != 14 &&
                   f.num != 15) {
            if (ntyped < 4)
                typed[ntyped] = f;
            ntyped++;
        }
    }
    if (r < 0)
        return -1;
    if (!scalar || dtype_size(dt) == 0)
        return 0;
    if (has_content && content.len > 0) {
        if (content.len != (size_t)dtype_size(dt))
            return 0;
        *v = from_bytes(dt, content.data);
        return 1;
    }
    if (ntyped != 1)
        return 0;
    return typed_value(dt, &typed[0], v) == 0 ? 1 : 0;
}

/* One Summary.Value: calls fn for a scalar; counts anything else. */
static int decode_value(const uint8_t *p, size_t len, tad_event *ev, tad_scalar_fn fn, void *ctx,
                        char *why, size_t whylen)
{
    pb b = {p, p + len};
    field f;
    const char *tag = NULL, *node = NULL;
    size_t tag_len = 0, node_len = 0;
    int have = 0, r;
    double v = 0;
    while ((r = next_field(&b, &f)) > 0) {
        if (f.num == 1 && f.wt == WT_LEN) {
            tag = (const char *)f.data;
            tag_len = f.len;
        } else if (f.num == 7 && f.wt == WT_LEN) {
            node = (const char *)f.data;
            node_len = f.len;
        } else if (f.num == 2 && f.wt == WT_I32) {
            v = f32((uint32_t)f.v);
            have = 1;
        } else if (f.num == 8 && f.wt == WT_LEN) {
            int s = tensor_scalar(f.data, f.len, &v);
            if (s < 0) {
                snprintf(why, whylen, "malformed tensor in a summary value");
                return -1;
            }
            have = s;
        }
    }
    if (r < 0) {
        snprintf(why, whylen, "malformed summary value");
        return -1;
    }
    if (!tag_len && node_len) {
        tag = node;
        tag_len = node_len;
    }
    if (!have || !tag_len) {
        ev->skipped++;
        return 0;
    }
    ev->scalars++;
    return fn ? fn(ctx, ev, tag, tag_len, v) : 0;
}

int tad_event_decode(const uint8_t *buf, size_t len, tad_event *ev, tad_scalar_fn fn, void *ctx,
                     char *why, size_t whylen)
{
    memset(ev, 0, sizeof *ev);
    pb b = {buf, buf + len};
    field f, summary = {0};
    int r;
    /* Fields may come in any order: find wall_time and step first. */
    while ((r = next_field(&b, &f)) > 0) {
        if (f.num == 1 && f.wt == WT_I64)
            ev->wall_time = f64(f.v);
        else if (f.num == 2 && f.wt == WT_VARINT)
            ev->step = (int64_t)f.v;
        else if (f.num == 3 && f.wt == WT_LEN)
            ev->is_file_version = 1;
        else if (f.num == 5 && f.wt == WT_LEN) {
            summary = f;
            ev->has_summary = 1;
        } else if (f.num <= 5 && f.wt != (f.num == 1 ? WT_I64 : f.num == 2 ? WT_VARINT : WT_LEN)) {
            snprintf(why, whylen, "not an Event: field %u has wire type %d", f.num, f.wt);
            return -1;
        }
    }
    if (r < 0) {
        snprintf(why, whylen, "not an Event: malformed protobuf");
        return -1;
    }
    if (!ev->has_summary)
        return 0;
    pb s = {summary.data, summary.data + summary.len};
    while ((r = next_field(&s, &f)) > 0) {
        if (f.num != 1 || f.wt != WT_LEN)
            continue;
        int rc = decode_value(f.data, f.len, ev, fn, ctx, why, whylen);
        if (rc)
            return rc;
    }
    if (r < 0) {
        snprintf(why, whylen, "malformed summary");
        return -1;
    }
    return 0;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct out {
    uint8_t *p;
    size_t n, cap;
    int overflow;
} out;

static void put(out *o, const void *d, size_t n)
{
    if (o->n + n > o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->n, d, n);
    o->n += n;
}

static void put_varint(out *o, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    put(o, b, (size_t)n);
}

static void put_key(out *o, uint32_t num, int wt)
{
    put_varint(o, (uint64_t)num << 3 | (uint64_t)wt);
}

static void put_fixed(out *o, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, (size_t)bytes);
}

static void put_double(out *o, uint32_t num, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    put_key(o, num, WT_I64);
    put_fixed(o, bits, 8);
}

static void put_bytes(out *o, uint32_t num, const void *d, size_t n)
{
    put_key(o, num, WT_LEN);
    put_varint(o, n);
    put(o, d, n);
}

size_t tad_event_encode_file_version(uint8_t *buf, size_t cap, double wall_time)
{
    out o = {buf, 0, cap, 0};
    put_double(&o, 1, wall_time);
    put_bytes(&o, 3, "brain.Event:2", 13);
    return o.overflow ? 0 : o.n;
}

size_t tad_event_encode_scalar(uint8_t *buf, size_t cap, double wall_time, int64_t step,
                               const char *tag, double value, int simple_value)
{
    /* Inside out: Value, then Summary around it, then the Event. */
    uint8_t vbuf[2048], sbuf[2100];
    out v = {vbuf, 0, sizeof vbuf, 0};
    put_bytes(&v, 1, tag, strlen(tag));
    if (simple_value) {
        float f = (float)value;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_key(&v, 2, WT_I32);
        put_fixed(&v, bits, 4);
    } else {
        static const uint8_t metadata[] = {
            0x0a, 0x09, 0x0a, 0x07, 's', 'c', 'a', 'l', 'a', 'r', 's', /* plugin_data.plugin_name */
        };
        put_bytes(&v, 9, metadata, sizeof metadata);
        uint8_t tbuf[32];
        out t = {tbuf, 0, sizeof tbuf, 0};
        put_key(&t, 1, WT_VARINT);
        put_varint(&t, DT_DOUBLE);
        put_bytes(&t, 2, "", 0); /* tensor_shape {}: a scalar */
        uint64_t bits;
        memcpy(&bits, &value, 8);
        put_key(&t, 6, WT_LEN); /* double_val, packed */
        put_varint(&t, 8);
        put_fixed(&t, bits, 8);
        put_bytes(&v, 8, tbuf, t.n);
    }
    out s = {sbuf, 0, sizeof sbuf, 0};
    put_bytes(&s, 1, vbuf, v.n);
    out o = {buf, 0, cap, 0};
    put_double(&o, 1, wall_time);
    put_key(&o, 2, WT_VARINT);
    put_varint(&o, (uint64_t)step);
    put_bytes(&o, 5, sbuf, s.n);
    return o.overflow || v.overflow || s.overflow ? 0 : o.n;
}
