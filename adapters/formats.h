/* formats.h - parsers for the metric lines trainers print (tad_ prefix).
 *
 * A parser turns one line of a trainer's text output into a step and a few
 * (name, value) samples, or says the line is not one of its lines (0), in
 * which case the caller passes it through untouched. Values are parsed with
 * strtod from the text exactly as printed; the step is taken from the line.
 *
 * Built-in formats (names as stored; tests/data/ holds real lines of each):
 *   nanogpt   karpathy/nanoGPT train.py
 *             "iter 100: loss 2.3456, time 31.20ms, mfu 12.34%"
 *                 -> loss, time_ms, mfu_pct (mfu -100.00%, the "not measured
 *                    yet" value of the first iterations, is skipped)
 *             "step 2000: train loss 1.2345, val loss 1.4567"
 *                 -> train/loss, val/loss
 *   llmc      karpathy/llm.c train_gpt2.cu and train_gpt2.c
 *             "step   42/74 | loss 3.512345 (+0.12z)| norm 1.2345 (+0.50z)| lr 6.00e-04 | 123.45 ms | 12345 tok/s"
 *                 -> loss, loss_z, norm, norm_z, lr, time_ms, tok_per_s
 *             (newer train_gpt2.cu adds "| 42.2% bf16 MFU |" -> mfu_pct)
 *             "step 1: train loss 4.677779 (took 1234.567 ms)"
 *                 -> train/loss, time_ms
 *             "val loss 3.456" -> val/loss of the loop step it was computed at:
 *                 the last "step N/M" (train_gpt2.cu prints N = step + 1), or
 *                 the last "step N:" + 1 (train_gpt2.c); 0 before any
 *   hf        Hugging Face Trainer's printed dicts (Python repr, also after
 *             tqdm's carriage returns, np.float64(x) values accepted)
 *             "{'loss': 2.31, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.1}"
 *                 -> every numeric key. The dicts carry no step: a 'step' or
 *                    'global_step' key is used when present, otherwise the
 *                    n-th training dict (one with 'loss') is step
 *                    n * hf_logging_steps; eval dicts ('eval_*') and the final
 *                    summary ('train_runtime', ...) take the current step.
 *   modded-nanogpt  KellerJordan/modded-nanogpt train_gpt.py
 *             "step:125/7500 val_loss:4.5156 train_time:25705ms step_avg:223.52ms"
 *                 -> val_loss, train_time_ms, step_avg_ms (nan as printed)
 *   kv        any line with a step key (step, iter, iteration, global_step,
 *             it; "12/500" allowed) and key=value or key: value pairs; a
 *             unit glued to a number (12ms, 50%) is ignored.
 *   pattern   user regexes (tad_parser_add_pattern) with named groups.
 *
 * Pattern syntax: an extended POSIX regex in which (?<name>...) or
 * (?P<name>...) names a group, (?:...) is a plain group, and \d \s \w \S
 * mean [0-9] [[:space:]] [[:alnum:]_] [^[:space:]]. The group named step is
 * the step (an integer); every other named group is a metric of that name.
 * Every pattern that matches a line contributes its samples.
 *
 * Errors: 0 / a count, or -1 with a sentence in err.
 */
#ifndef TRAINSCOPE_FORMATS_H
#define TRAINSCOPE_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#define TAD_NAME_MAX 128     /* longest metric name a parser produces, with NUL */
#define TAD_MAX_SAMPLES 64   /* most samples taken from one line */

typedef struct tad_sample {
    const char *name;        /* owned by the parser, valid until its next call */
    double value;
} tad_sample;

typedef struct tad_parser tad_parser;

/* format: one of the names above. hf_logging_steps: the step width of the
 * hf format's counted dicts (<= 0 means 1). NULL on an unknown format (err
 * lists the known ones) or out of memory. */
tad_parser *tad_parser_new(const char *format, int hf_logging_steps, char *err, size_t errlen);
/* "pattern" parsers: add one regex (syntax above). -1 when it does not
 * compile, has no group named step, or names too many groups. */
int tad_parser_add_pattern(tad_parser *p, const char *pattern, char *err, size_t errlen);
/* The number of patterns added. */
size_t tad_parser_patterns(const tad_parser *p);
void tad_parser_free(tad_parser *p);

/* Parse one NUL-terminated line without its newline. Returns the number of
 * samples written to out (at most cap), 0 when the line is not a metrics line
 * of this format. *step is set when the result is > 0. */
int tad_parse_line(tad_parser *p, const char *line, int64_t *step, tad_sample *out, size_t cap);

/* "nanogpt, llmc, hf, modded-nanogpt, kv, pattern" */
const char *tad_format_names(void);

/* strtod with the exact NaN payloads `trainscope export` prints
 * ("nan(0x8000000000001)", "-nan"): 0 and *out when the whole of s (no
 * surrounding space) is a number, -1 otherwise. */
int tad_parse_double(const char *s, double *out);

#endif
