/* tfrecord.h - TFRecord framing, the container of TensorBoard event files
 * (tad_ prefix).
 *
 * Each record is
 *   uint64 length (little-endian) | uint32 masked_crc32c(length bytes)
 *   | data[length] | uint32 masked_crc32c(data)
 * with masked_crc(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 where c is the
 * CRC-32C (Castagnoli) of x.
 *
 * The reader works on a file held in memory and never trusts a length whose
 * checksum is wrong: it reports the record and looks for the next offset
 * where a whole record checks out (both checksums), so one damaged byte
 * costs one record, not the rest of the file.
 */
#ifndef TRAINSCOPE_TFRECORD_H
#define TRAINSCOPE_TFRECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* CRC-32C of n bytes, continuing from crc (0 to start). Table-driven
 * (Debian 12 packages no CRC-32C C library). */
uint32_t tad_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t tad_masked_crc32c(const void *data, size_t n);

typedef struct tad_tfr_reader {
    const uint8_t *buf;
    size_t size;
    size_t pos;           /* offset of the next record */
} tad_tfr_reader;

enum {
    TAD_TFR_END = 0,      /* no more records */
    TAD_TFR_RECORD = 1,   /* *data, *len hold one record's payload */
    TAD_TFR_CORRUPT = 2,  /* why describes the damage at *offset; call again to go on */
};

/* The next record. *offset is where the record (or the damage) starts. */
int tad_tfr_next(tad_tfr_reader *r, const uint8_t **data, size_t *len, size_t *offset, char *why,
                 size_t whylen);

/* Appends one record to f: 0, or -1 with errno. */
int tad_tfr_write(FILE *f, const void *data, size_t len);

#endif
