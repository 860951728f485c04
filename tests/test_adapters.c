/* test_adapters.c - unit tests of adapters/: CRC-32C against its published
 * check value, TFRecord framing and resynchronisation, Event encode/decode,
 * the line parsers on edge cases, and decoders fed random and mutated bytes
 * (run under ASan+UBSan in CI, so an out-of-bounds read fails the test).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "tfevents.h"
#include "tfrecord.h"

static int failures;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            failures++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
            printf(__VA_ARGS__);                          \
            printf("\n");                                 \
        }                                                 \
    } while (0)

static uint64_t bits_of(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static void crc_known_values(void)
{
    /* RFC 3720 / iSCSI check value of "123456789". */
    CHECK(tad_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value");
    uint8_t zeros[32] = {0};
    CHECK(tad_crc32c(0, zeros, 32) == 0x8A9136AAu, "crc32c of 32 zero bytes (RFC 3720 B.4)");
    /* incremental equals one-shot, across the 8-byte stride */
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t one = tad_crc32c(0, s, strlen(s));
    uint32_t two = tad_crc32c(tad_crc32c(0, s, 13), s + 13, strlen(s) - 13);
    CHECK(one == two && one == 0x22620404u, "crc32c incremental %08x %08x", one, two);
}

typedef struct collected {
    char tags[8][64];
    double values[8];
    int n;
} collected;

static int collect(void *ctx, const tad_event *ev, const char *tag, size_t len, double v)
{
    collected *c = ctx;
    if (c->n < 8) {
        snprintf(c->tags[c->n], 64, "%.*s", (int)len, tag);
        c->values[c->n++] = v;
    }
    return 0;
}

static void event_round_trip(void)
{
    double vals[] = {0.0, -0.0, 1e-310, INFINITY, -INFINITY, 0.1, 12345.678};
    uint64_t nan_bits = 0x7ff0000000000123ull;
    double snan;
    memcpy(&snan, &nan_bits, 8);
    for (size_t i = 0; i <= sizeof vals / sizeof vals[0]; i++) {
        double v = i < sizeof vals / sizeof vals[0] ? vals[i] : snan;
        uint8_t buf[256];
        size_t n = tad_event_encode_scalar(buf, sizeof buf, 1.5e9, -7 + (int64_t)i, "a/b", v, 0);
        CHECK(n > 0, "encode");
        tad_event ev;
        collected c = {0};
        char why[128];
        CHECK(tad_event_decode(buf, n, &ev, collect, &c, why, sizeof why) == 0, "decode: %s", why);
        CHECK(c.n == 1 && strcmp(c.tags[0], "a/b") == 0 && bits_of(c.values[0]) == bits_of(v),
              "double tensor keeps the 64 bits of value %zu", i);
        CHECK(ev.step == -7 + (int64_t)i && ev.wall_time == 1.5e9, "step and wall time");
        n = tad_event_encode_scalar(buf, sizeof buf, 1.5e9, 3, "s", 0.1, 1);
        c.n = 0;
        tad_event_decode(buf, n, &ev, collect, &c, why, sizeof why);
        CHECK(c.n == 1 && c.values[0] == (double)0.1f, "simple_value is float32");
    }
    uint8_t small[8];
    CHECK(tad_event_encode_scalar(small, sizeof small, 1, 1, "tag", 1, 0) == 0, "cap too small -> 0");
    uint8_t fv[64];
    size_t n = tad_event_encode_file_version(fv, sizeof fv, 1.0);
    tad_event ev;
    char why[128];
    CHECK(tad_event_decode(fv, n, &ev, NULL, NULL, why, sizeof why) == 0 && ev.is_file_version &&
              !ev.has_summary,
          "file_version record");
}

static void tfrecord_framing(void)
{
    FILE *f = tmpfile();
    const char *payloads[] = {"first", "", "third record"};
    for (int i = 0; i < 3; i++)
        CHECK(tad_tfr_write(f, payloads[i], strlen(payloads[i])) == 0, "write");
    long size = ftell(f);
    uint8_t *buf = malloc((size_t)size);
    rewind(f);
    CHECK(fread(buf, 1, (size_t)size, f) == (size_t)size, "read back");
    fclose(f);
    tad_tfr_reader r = {buf, (size_t)size, 0};
    const uint8_t *d;
    size_t len, off;
    char why[256];
    for (int i = 0; i < 3; i++) {
        int k = tad_tfr_next(&r, &d, &len, &off, why, sizeof why);
        CHECK(k == TAD_TFR_RECORD && len == strlen(payloads[i]) && memcmp(d, payloads[i], len) == 0,
              "record %d", i);
    }
    CHECK(tad_tfr_next(&r, &d, &len, &off, why, sizeof why) == TAD_TFR_END, "end");
    /* A damaged length: reported once, the next record still comes. */
    buf[2] ^= 0x10;
    r.pos = 0;
    CHECK(tad_tfr_next(&r, &d, &len, &off, why, sizeof why) == TAD_TFR_CORRUPT && off == 0 &&
              strstr(why, "length checksum"),
          "bad length reported: %s", why);
    CHECK(tad_tfr_next(&r, &d, &len, &off, why, sizeof why) == TAD_TFR_RECORD && len == 0 &&
              off == 16 + 5,
          "resynchronised at the second record (offset %zu)", off);
    buf[2] ^= 0x10;
    /* Every truncation of the file: never a crash, never a bogus record. */
    for (long cut = 0; cut < size; cut++) {
        tad_tfr_reader t = {buf, (size_t)cut, 0};
        int k, records = 0, corrupt = 0;
        while ((k = tad_tfr_next(&t, &d, &len, &off, why, sizeof why)) != TAD_TFR_END) {
            records += k == TAD_TFR_RECORD;
            corrupt += k == TAD_TFR_CORRUPT;
            CHECK(records + corrupt < 10, "reader terminates");
            if (records + corrupt >= 10)
                break;
        }
        int whole = (cut >= 21) + (cut >= 37) + (cut >= size);
        CHECK(records == whole && corrupt == (cut != 0 && cut != 21 && cut != 37),
              "cut at %ld: %d records, %d corrupt", cut, records, corrupt);
    }
    free(buf);
}

static void decoders_survive_garbage(void)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    uint8_t buf[512], good[512];
    size_t good_len = tad_event_encode_scalar(good, sizeof good, 1e9, 42, "loss", 1.25, 0);
    for (int iter = 0; iter < 200000; iter++) {
        size_t n;
        if (iter % 2) { /* random bytes */
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            n = (seed >> 33) % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                buf[i] = (uint8_t)(seed >> 56);
            }
        } else { /* a valid event with a few mutated bytes, maybe cut short */
            memcpy(buf, good, good_len);
            n = good_len;
            for (int m = 0; m < 3; m++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                buf[(seed >> 33) % good_len] = (uint8_t)(seed >> 20);
            }
            n -= (seed >> 40) % 4;
        }
        tad_event ev;
        collected c = {0};
        char why[128];
        tad_event_decode(buf, n, &ev, collect, &c, why, sizeof why);
        tad_tfr_reader r = {buf, n, 0};
        const uint8_t *d;
        size_t len, off;
        int guard = 0;
        while (tad_tfr_next(&r, &d, &len, &off, why, sizeof why) != TAD_TFR_END && guard++ < 600)
            ;
        CHECK(guard < 600, "reader terminates on garbage");
    }
}

static int parse_one(tad_parser *p, const char *line, int64_t *step, tad_sample *s)
{
    return tad_parse_line(p, line, step, s, TAD_MAX_SAMPLES);
}

static void parser_edges(void)
{
    char err[256];
    tad_sample s[TAD_MAX_SAMPLES];
    int64_t step;
    CHECK(tad_parser_new("tensorboard", 1, err, sizeof err) == NULL && strstr(err, "known: nanogpt"),
          "unknown format: %s", err);
    tad_parser *p = tad_parser_new("nanogpt", 1, err, sizeof err);
    CHECK(parse_one(p, "iter 5 loss 1.0", &step, s) == 0, "no colon: not a metrics line");
    CHECK(parse_one(p, "iter 99999999999: loss 1e-3, time 1.5ms", &step, s) == 2 &&
              step == 99999999999LL && s[0].value == 1e-3,
          "large step and exponent");
    CHECK(parse_one(p, "iter 99999999999999999999: loss 1", &step, s) == 0, "step overflow refused");
    CHECK(parse_one(p, "", &step, s) == 0, "empty line");
    tad_parser_free(p);

    p = tad_parser_new("kv", 1, err, sizeof err);
    CHECK(parse_one(p, "step=3 loss=-inf acc=nan x=0x10 name=abc", &step, s) == 2 && step == 3 &&
              isinf(s[0].value) && isnan(s[1].value),
          "kv: inf and nan as printed, hex and words are not values");
    char long_line[8192];
    int off = snprintf(long_line, sizeof long_line, "step=1");
    for (int i = 0; i < 200 && off < (int)sizeof long_line - 32; i++)
        off += snprintf(long_line + off, sizeof long_line - (size_t)off, " k%d=%d", i, i);
    CHECK(parse_one(p, long_line, &step, s) == TAD_MAX_SAMPLES, "at most TAD_MAX_SAMPLES per line");
    tad_parser_free(p);

    p = tad_parser_new("pattern", 1, err, sizeof err);
    CHECK(tad_parser_add_pattern(p, "loss=(?<loss>[\\d.]+)", err, sizeof err) < 0 &&
              strstr(err, "no group named step"),
          "pattern without step: %s", err);
    CHECK(tad_parser_add_pattern(p, "(?<step>\\d+)(?=x)", err, sizeof err) < 0, "lookahead refused");
    CHECK(tad_parser_add_pattern(p, "^\\[(?:rank\\d)\\] s(?<step>\\d+) [lL]=(?<loss>[\\d.e+-]+)",
                                 err, sizeof err) == 0,
          "brackets, (?:), \\d inside brackets: %s", err);
    CHECK(parse_one(p, "[rank0] s12 L=2.5e-3", &step, s) == 1 && step == 12 && s[0].value == 2.5e-3 &&
              strcmp(s[0].name, "loss") == 0,
          "pattern match");
    CHECK(parse_one(p, "[rank0] s12 L=oops", &step, s) == 0, "pattern mismatch passes through");
    tad_parser_free(p);

    double v;
    CHECK(tad_parse_double("nan(0x8000000000001)", &v) == 0 && bits_of(v) == 0x7ff8000000000001ull,
          "export's NaN payload read back exactly");
    CHECK(tad_parse_double("-nan", &v) == 0 && bits_of(v) == 0xfff8000000000000ull, "-nan keeps its sign");
    CHECK(tad_parse_double("nan(0x0)", &v) < 0 && tad_parse_double(" 1", &v) < 0 &&
              tad_parse_double("1 ", &v) < 0 && tad_parse_double("", &v) < 0,
          "malformed numbers refused");
}

/* Every parser on mutations of real lines of every format: no crash, no
 * read past the line (ASan), never more samples than asked for. */
static void parsers_survive_garbage(void)
{
    static const char *const lines[] = {
        "iter 100: loss 2.3456, time 31.20ms, mfu 12.34%",
        "step 2000: train loss 1.2345, val loss 1.4567",
        "step   42/74 | loss 3.512345 (+0.12z)| norm 1.2345 (+0.50z)| lr 6.00e-04 | 123.45 ms | 42.2% bf16 MFU | 12345 tok/s",
        "step 1: train loss 4.677779 (took 1234.567 ms)",
        "val loss 3.456",
        "{'loss': 2.31, 'grad_norm': np.float64(1.2), 'learning_rate': 5e-05, 'epoch': 0.1}",
        "\r 10%|#  | 5/50\r{'eval_loss': 'nan', \"x\": None, 'step': 7}",
        "step:125/7500 val_loss:4.5156 train_time:25705ms step_avg:nanms",
        "2024-05-01 12:00:01 step=100 loss: 2.3 lr=3e-4 tput=12tok/s",
    };
    static const char *const formats[] = {"nanogpt", "llmc", "hf", "modded-nanogpt", "kv", "pattern"};
    char err[256], buf[512];
    tad_sample s[TAD_MAX_SAMPLES];
    uint64_t seed = 12345;
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        tad_parser *p = tad_parser_new(formats[f], 10, err, sizeof err);
        if (f == 5)
            tad_parser_add_pattern(p, "(?<step>[0-9]+)[^0-9]+(?<x>[-+.0-9e]+)(.*)(?<y>nan|[0-9]+)", err,
                                   sizeof err);
        for (int iter = 0; iter < 20000; iter++) {
            const char *src = lines[(size_t)iter % (sizeof lines / sizeof lines[0])];
            size_t n = strlen(src);
            memcpy(buf, src, n + 1);
            for (int m = 0; m < 4; m++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                size_t at = (seed >> 33) % (n + 1);
                if (at < n)
                    buf[at] = (char)(seed >> 56 ? seed >> 56 : 'x');
                else
                    buf[(seed >> 40) % (n + 1)] = 0; /* cut the line short */
            }
            int64_t step;
            size_t cap = 1 + (size_t)iter % 3;
            int k = tad_parse_line(p, buf, &step, s, cap);
            CHECK(k >= 0 && (size_t)k <= cap, "format %s: %d samples for cap %zu", formats[f], k, cap);
            for (int i = 0; i < k; i++)
                CHECK(strlen(s[i].name) < TAD_NAME_MAX, "name length");
        }
        tad_parser_free(p);
    }
}

int main(void)
{
    crc_known_values();
    event_round_trip();
    tfrecord_framing();
    decoders_survive_garbage();
    parser_edges();
    parsers_survive_garbage();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
