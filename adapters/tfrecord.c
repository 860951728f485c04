/* tfrecord.c - TFRecord framing and CRC-32C (see tfrecord.h). */
#include "tfrecord.h"

#include <inttypes.h>
#include <string.h>

#define HEADER 12  /* length + its checksum */
#define FOOTER 4   /* data checksum */

/* CRC-32C, reflected polynomial 0x82F63B78, as 8 tables of 256 entries
 * ("slicing by 8": 8 bytes per step), built once by a constructor-free
 * lazy init. The CLI reading it is single-threaded; the init is idempotent
 * anyway, so a race would only compute the same values twice. */
static uint32_t table[8][256];
static int table_ready;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    table_ready = 1;
}

uint32_t tad_crc32c(uint32_t crc, const void *data, size_t n)
{
    if (!table_ready)
        build_table();
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
              table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

uint32_t tad_masked_crc32c(const void *data, size_t n)
{
    uint32_t c = tad_crc32c(0, data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A whole, valid record at pos: its payload length, or -1. */
static int64_t valid_at(const tad_tfr_reader *r, size_t pos)
{
    if (r->size - pos < HEADER + FOOTER)
        return -1;
    const uint8_t *h = r->buf + pos;
    if (tad_masked_crc32c(h, 8) != le32(h + 8))
        return -1;
    uint64_t len = le64(h);
    if (len > r->size - pos - HEADER - FOOTER)
        return -1;
    if (tad_masked_crc32c(h + HEADER, (size_t)len) != le32(h + HEADER + len))
        return -1;
    return (int64_t)len;
}

/* After damage at from: the next offset where a record checks out, or size. */
static size_t resync(const tad_tfr_reader *r, size_t from)
{
    for (size_t q = from; q + HEADER + FOOTER <= r->size; q++)
        if (valid_at(r, q) >= 0)
            return q;
    return r->size;
}

int tad_tfr_next(tad_tfr_reader *r, const uint8_t **data, size_t *len, size_t *offset, char *why,
                 size_t whylen)
{
    size_t pos = r->pos;
    *offset = pos;
    if (pos >= r->size)
        return TAD_TFR_END;
    size_t left = r->size - pos;
    const uint8_t *h = r->buf + pos;
    if (left < HEADER) {
        snprintf(why, whylen, "truncated record: the file ends %zu bytes into a 12-byte header",
                 left);
        r->pos = r->size;
        return TAD_TFR_CORRUPT;
    }
    if (tad_masked_crc32c(h, 8) != le32(h + 8)) {
        size_t next = resync(r, pos + 1);
        if (next < r->size)
            snprintf(why, whylen,
                     "length checksum mismatch; skipped %zu bytes to the next valid record at "
                     "offset %zu",
                     next - pos, next);
        else
            snprintf(why, whylen,
                     "length checksum mismatch; no valid record in the remaining %zu bytes", left);
        r->pos = next;
        return TAD_TFR_CORRUPT;
    }
    uint64_t n = le64(h);
    if (n > left - HEADER || left - HEADER - n < FOOTER) {
        snprintf(why, whylen,
                 "truncated record: %" PRIu64 " data bytes announced, the file ends %zu bytes later",
                 n, left - HEADER);
        r->pos = r->size;
        return TAD_TFR_CORRUPT;
    }
    r->pos = pos + HEADER + (size_t)n + FOOTER;
    if (tad_masked_crc32c(h + HEADER, (size_t)n) != le32(h + HEADER + n)) {
        snprintf(why, whylen, "data checksum mismatch in a %" PRIu64 "-byte record; skipped", n);
        return TAD_TFR_CORRUPT;
    }
    *data = h + HEADER;
    *len = (size_t)n;
    return TAD_TFR_RECORD;
}

int tad_tfr_write(FILE *f, const void *data, size_t len)
{
    uint8_t h[HEADER], foot[FOOTER];
    uint64_t n = len;
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)(n >> (8 * i));
    uint32_t c = tad_masked_crc32c(h, 8);
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(c >> (8 * i));
    c = tad_masked_crc32c(data, len);
    for (int i = 0; i < 4; i++)
        foot[i] = (uint8_t)(c >> (8 * i));
    if (fwrite(h, 1, HEADER, f) != HEADER || fwrite(data, 1, len, f) != len ||
        fwrite(foot, 1, FOOTER, f) != FOOTER)
        return -1;
    return 0;
}
