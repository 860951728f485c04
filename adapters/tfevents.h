/* tfevents.h - the few protobuf messages of TensorBoard event files that
 * carry scalars, decoded and encoded by hand (tad_ prefix).
 *
 * Hand-written rather than protobuf-c: we read six fields of five messages
 * and write fewer; a generated decoder would allocate a tree per record and
 * add a compiler to the build for ~250 lines of plain varint code that is
 * easy to test byte for byte against Google's own encoder (the tests write
 * event files with python3-protobuf).
 *
 * Read (field numbers from tensorflow/core/util/event.proto, summary.proto,
 * tensor.proto):
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
 *             Summary summary = 5; (graph_def = 4, log_message = 6, ... skipped) }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; string node_name = 7 (old writers); float simple_value = 2;
 *             SummaryMetadata metadata = 9; TensorProto tensor = 8;
 *             (histo = 5, image = 4, audio = 6: not scalars, counted as skipped) }
 *   TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2;
 *             bytes tensor_content = 4; float_val = 5; double_val = 6; int_val = 7;
 *             int64_val = 10; half_val = 13; uint32_val = 16; uint64_val = 17 }
 * A tensor is a scalar when every dimension is 1 (or there are none) and it
 * holds one number of dtype float, double, half, bfloat16, int8/16/32/64,
 * uint8/16/32/64 or bool; anything else (strings, histograms) is skipped.
 *
 * Written: a scalar as Value { tag, metadata { plugin_data { plugin_name:
 * "scalars" } }, tensor { dtype: DT_DOUBLE, tensor_shape {}, double_val: v } }
 * so the 64 bits survive (simple_value is a float32), or as simple_value on
 * request.
 */
#ifndef TRAINSCOPE_TFEVENTS_H
#define TRAINSCOPE_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tad_event {
    double wall_time;        /* seconds since the epoch */
    int64_t step;
    int has_summary;
    int is_file_version;     /* the first record of a file ("brain.Event:2") */
    size_t scalars;          /* scalar values found (passed to the callback) */
    size_t skipped;          /* summary values that are not scalars */
} tad_event;

/* Called for each scalar of an event, in order; tag is not NUL-terminated.
 * A non-zero return stops decoding and is returned. */
typedef int (*tad_scalar_fn)(void *ctx, const tad_event *ev, const char *tag, size_t tag_len,
                             double value);

/* Decodes one Event record. 0, the callback's non-zero return, or -1 with
 * why set when the bytes are not a valid Event (bad varint, a length past
 * the end, a wire type that does not fit the field). */
int tad_event_decode(const uint8_t *buf, size_t len, tad_event *ev, tad_scalar_fn fn, void *ctx,
                     char *why, size_t whylen);

/* Encoders: the record's length, or 0 when cap is too small. */
size_t tad_event_encode_file_version(uint8_t *buf, size_t cap, double wall_time);
size_t tad_event_encode_scalar(uint8_t *buf, size_t cap, double wall_time, int64_t step,
                               const char *tag, double value, int simple_value);

#endif
