/* formats.c - the line parsers behind `trainscope tail` (see formats.h for
 * the formats and the names they produce).
 *
 * nanoGPT and llm.c print "name value[unit]" phrases after a step prefix, so
 * both share one phrase scanner (scan_phrases); modded-nanogpt and kv print
 * key:value / key=value pairs (scan_pairs); Hugging Face prints a Python dict
 * (parse_hf); user patterns go through POSIX regcomp after a translation of
 * the named-group syntax. Nothing here allocates per line.
 */
#include "formats.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum fmt { FMT_NANOGPT, FMT_LLMC, FMT_HF, FMT_MODDED, FMT_KV, FMT_PATTERN };

#define MAX_PATTERNS 16
#define MAX_GROUPS 32

typedef struct pattern {
    regex_t re;
    size_t ngroups;                     /* subexpressions, named or not */
    int step_group;                     /* index of (?<step>...) */
    int name_of[MAX_GROUPS + 1];        /* group -> index into names, -1 unnamed */
    char names[MAX_GROUPS][TAD_NAME_MAX];
} pattern;

struct tad_parser {
    enum fmt fmt;
    int64_t last_step;                  /* llmc val loss, hf eval dicts */
    int have_step;
    int cpu_llmc;                       /* the last step line was train_gpt2.c's */
    int64_t hf_count;                   /* hf: training dicts seen */
    int hf_every;
    pattern *pats;
    size_t npats;
    char names[TAD_MAX_SAMPLES][TAD_NAME_MAX];
};

static const struct { const char *name; enum fmt fmt; } FORMATS[] = {
    {"nanogpt", FMT_NANOGPT}, {"llmc", FMT_LLMC}, {"hf", FMT_HF},
    {"modded-nanogpt", FMT_MODDED}, {"kv", FMT_KV}, {"pattern", FMT_PATTERN},
};

const char *tad_format_names(void)
{
    return "nanogpt, llmc, hf, modded-nanogpt, kv, pattern";
}

tad_parser *tad_parser_new(const char *format, int hf_logging_steps, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++) {
        if (strcmp(format, FORMATS[i].name) != 0)
            continue;
        tad_parser *p = calloc(1, sizeof *p);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        p->fmt = FORMATS[i].fmt;
        p->hf_every = hf_logging_steps > 0 ? hf_logging_steps : 1;
        return p;
    }
    snprintf(err, errlen, "unknown format '%s' (known: %s)", format, tad_format_names());
    return NULL;
}

void tad_parser_free(tad_parser *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->npats; i++)
        regfree(&p->pats[i].re);
    free(p->pats);
    free(p);
}

size_t tad_parser_patterns(const tad_parser *p)
{
    return p->npats;
}

/* ---- numbers ------------------------------------------------------------ */

int tad_parse_double(const char *s, double *out)
{
    int neg = s[0] == '-';
    const char *body = s + (neg || s[0] == '+');
    /* glibc's strtod sets the quiet bit of a NaN payload itself; parse the
     * payload ourselves so the 64 bits `export` printed come back. */
    if (strncasecmp(body, "nan(0x", 6) == 0) {
        char *end;
        errno = 0;
        unsigned long long mant = strtoull(body + 6, &end, 16);
        if (errno || end == body + 6 || strcmp(end, ")") != 0 || mant == 0 ||
            mant > 0x000fffffffffffffull)
            return -1;
        uint64_t bits = (neg ? 1ull << 63 : 0) | 0x7ff0000000000000ull | mant;
        memcpy(out, &bits, sizeof bits);
        return 0;
    }
    if (!*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end)
        return -1;
    /* strtod's "nan" is the default quiet NaN; "-nan" must keep its sign. */
    if (isnan(v) && neg)
        v = -fabs(v);
    *out = v;
    return 0;
}

/* A number at s as printed by a trainer: digits, sign, '.', exponent, or
 * nan/inf. Returns the end, or NULL when s does not start a number. */
static const char *number_at(const char *s, double *v)
{
    const char *d = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*d) && !(*d == '.' && isdigit((unsigned char)d[1])) &&
        strncasecmp(d, "nan", 3) != 0 && strncasecmp(d, "inf", 3) != 0)
        return NULL;
    if ((d[0] == '0') && (d[1] == 'x' || d[1] == 'X'))
        return NULL; /* not a value trainers print; keeps "0x1p3" out */
    char *end;
    *v = strtod(s, &end);
    if (end == s)
        return NULL;
    if (isnan(*v) && *s == '-')
        *v = -fabs(*v);
    return end;
}

static int parse_step(const char *s, const char **end, int64_t *step)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno)
        return -1;
    *step = v;
    *end = e;
    return 0;
}

/* Appends one sample named name (copied into the parser) if there is room. */
static void emit(tad_parser *p, tad_sample *out, size_t cap, int *n, const char *name, double v)
{
    if ((size_t)*n >= cap || *n >= TAD_MAX_SAMPLES || !name[0])
        return;
    snprintf(p->names[*n], TAD_NAME_MAX, "%s", name);
    out[*n].name = p->names[*n];
    out[*n].value = v;
    (*n)++;
}

/* ---- nanoGPT and llm.c: "words number[unit]" phrases -------------------- */

static int is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '/' || c == '.' || c == '-';
}

/* The stored suffix for a unit: "ms" -> "ms", "%" -> "pct", "tok/s" -> "per_s". */
static const char *unit_suffix(const char *u, size_t len)
{
    if (len == 2 && strncmp(u, "ms", 2) == 0)
        return "ms";
    if (len == 1 && u[0] == 's')
        return "s";
    if (len == 1 && u[0] == '%')
        return "pct";
    if ((len == 5 && strncmp(u, "tok/s", 5) == 0) || (len == 8 && strncmp(u, "tokens/s", 8) == 0))
        return "tok_per_s";
    return NULL;
}

/* Scans "train loss 4.67 (took 12.5 ms)", "loss 3.5 (+0.12z)| lr 6e-4 | 12 ms | 9 tok/s"
 * or "loss 2.3456, time 31.20ms, mfu 12.34%": each number is named by the
 * words before it ("train loss" -> "train/loss", "took" -> "time") plus its
 * unit ("_ms"); a number in "(+0.12z)" is the z-score of the previous one. */
static void scan_phrases(tad_parser *p, const char *s, tad_sample *out, size_t cap, int *n)
{
    char words[TAD_NAME_MAX] = "", last[TAD_NAME_MAX] = "";
    while (*s) {
        if (!is_word_char(*s) && *s != '+' && *s != '%') {
            s++;
            continue;
        }
        double v;
        const char *e = number_at(s, &v);
        if (!e) {
            const char *w = s;
            while (is_word_char(*s))
                s++;
            if (s == w) {
                s++;
                continue;
            }
            size_t len = strlen(words);
            const char *word = w;
            size_t wlen = (size_t)(s - w);
            if (wlen == 4 && strncmp(w, "took", 4) == 0) {
                word = "time";
                wlen = 4;
            }
            if (len + wlen + 2 < sizeof words)
                snprintf(words + len, sizeof words - len, "%s%.*s", len ? "/" : "", (int)wlen, word);
            continue;
        }
        /* A unit glued to the number (31.20ms, 12.34%, 0.12z) or the next word. */
        const char *u = e;
        while (isalpha((unsigned char)*u) || *u == '%' || (*u == '/' && u > e))
            u++;
        size_t ulen = (size_t)(u - e);
        const char *next = u;
        if (ulen == 0) {
            const char *w = e;
            while (*w == ' ')
                w++;
            const char *we = w;
            while (is_word_char(*we) || *we == '%')
                we++;
            if (unit_suffix(w, (size_t)(we - w))) {
                e = w;
                ulen = (size_t)(we - w);
                next = we;
            }
        }
        /* llm.c: "42.2% bf16 MFU": the words after a nameless number name it. */
        char after[TAD_NAME_MAX] = "";
        if (!words[0] && ulen) {
            const char *w = next;
            while (*w == ' ')
                w++;
            const char *we = w;
            while (*we && *we != '|' && *we != ',' && *we != '(' && *we != ')')
                we++;
            if (we > w && !number_at(w, &(double){0})) {
                snprintf(after, sizeof after, "%.*s", (int)(we - w), w);
                next = we;
            }
        }
        char name[2 * TAD_NAME_MAX + 16];
        if (after[0]) {
            const char *suf = unit_suffix(e, ulen);
            if (strcasestr(after, "mfu"))
                snprintf(name, sizeof name, "mfu%s%s", suf ? "_" : "", suf ? suf : "");
            else
                snprintf(name, sizeof name, "%s%s%s", after, suf ? "_" : "", suf ? suf : "");
            for (char *q = name; *q; q++)
                if (*q == ' ')
                    *q = '_';
        } else if (ulen == 1 && *e == 'z') {
            snprintf(name, sizeof name, "%s_z", last);
        } else {
            const char *suf = unit_suffix(e, ulen);
            if (words[0] && suf)
                snprintf(name, sizeof name, "%s_%s", words, suf);
            else if (words[0])
                snprintf(name, sizeof name, "%s", words);
            else if (suf && strcmp(suf, "tok_per_s") == 0)
                snprintf(name, sizeof name, "tok_per_s");
            else if (suf)
                snprintf(name, sizeof name, "time_%s", suf);
            else
                name[0] = 0; /* a bare number: nothing names it */
            if (words[0])
                snprintf(last, sizeof last, "%s", words);
        }
        /* nanoGPT prints mfu -100.00% until it has measured one. */
        if (!(strcmp(name, "mfu_pct") == 0 && v < 0))
            emit(p, out, cap, n, name, v);
        words[0] = 0;
        s = next;
    }
}

/* "iter 100:" / "step 2000:" (nanogpt), "step   42/74 |" / "step 1:" (llmc). */
static const char *step_prefix(const char *s, int allow_total, int64_t *step)
{
    while (*s == ' ' || *s == '\t')
        s++;
    const char *kw = NULL;
    if (strncmp(s, "iter ", 5) == 0)
        kw = s + 5;
    else if (strncmp(s, "step ", 5) == 0)
        kw = s + 5;
    if (!kw)
        return NULL;
    while (*kw == ' ')
        kw++;
    const char *e;
    if (parse_step(kw, &e, step) < 0)
        return NULL;
    if (allow_total && *e == '/') {
        int64_t total;
        if (parse_step(e + 1, &e, &total) < 0)
            return NULL;
    }
    while (*e == ' ')
        e++;
    if (*e != ':' && *e != '|')
        return NULL;
    return e + 1;
}

static int parse_nanogpt_llmc(tad_parser *p, const char *line, int64_t *step, tad_sample *out,
                              size_t cap)
{
    int llmc = p->fmt == FMT_LLMC;
    int n = 0;
    const char *rest = step_prefix(line, llmc, step);
    if (rest) {
        if (!llmc && strncmp(line + strspn(line, " \t"), "step", 4) == 0 && !strstr(rest, "loss"))
            return 0;
        scan_phrases(p, rest, out, cap, &n);
        if (n > 0) {
            p->last_step = *step;
            p->have_step = 1;
            /* train_gpt2.cu prints "step N/M |" with N = loop step + 1,
             * train_gpt2.c "step N:" with the loop step itself */
            p->cpu_llmc = rest[-1] == ':' && !memchr(line, '/', (size_t)(rest - line));
        }
        return n;
    }
    /* llm.c prints "val loss %f" at the top of loop step s, before that
     * step's own line: train_gpt2.cu's previous line said "step s/M",
     * train_gpt2.c's said "step s-1:". Before any step line it is step 0. */
    const char *s = line + strspn(line, " \t");
    if (llmc && strncmp(s, "val loss ", 9) == 0) {
        double v;
        char num[64];
        snprintf(num, sizeof num, "%s", s + 9);
        num[strcspn(num, " \t\r")] = 0;
        if (tad_parse_double(num, &v) == 0) {
            *step = !p->have_step ? 0 : p->cpu_llmc ? p->last_step + 1 : p->last_step;
            emit(p, out, cap, &n, "val/loss", v);
        }
    }
    return n;
}

/* ---- modded-nanogpt and kv: key:value / key=value pairs ----------------- */

static int is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '/' || c == '-';
}

static int is_step_key(const char *k, size_t len)
{
    static const char *const keys[] = {"step", "iter", "iteration", "global_step", "it"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == len && strncasecmp(k, keys[i], len) == 0)
            return 1;
    return 0;
}

/* Finds every key[:=]value pair; the step key gives the step ("12/500" ->
 * 12). modded: only ':' without spaces, and a glued unit joins the name
 * ("train_time:25705ms" -> train_time_ms). kv: ':' or '=' with optional
 * spaces after, glued units dropped. */
static int scan_pairs(tad_parser *p, const char *s, int modded, int64_t *step, tad_sample *out,
                      size_t cap)
{
    int n = 0, got_step = 0;
    const char *line = s;
    while (*s) {
        if (!(isalpha((unsigned char)*s) || *s == '_') || (s > line && is_key_char(s[-1]))) {
            s++;
            continue;
        }
        const char *k = s;
        while (is_key_char(*s))
            s++;
        size_t klen = (size_t)(s - k);
        if (*s != ':' && *s != '=')
            continue;
        if (modded && *s != ':')
            continue;
        const char *v = s + 1;
        if (!modded)
            while (*v == ' ' || *v == '\t')
                v++;
        if (is_step_key(k, klen)) {
            const char *e;
            int64_t st;
            if (parse_step(v, &e, &st) == 0 && !got_step) {
                if (*e == '/') {
                    int64_t total;
                    if (parse_step(e + 1, &e, &total) < 0)
                        continue;
                }
                *step = st;
                got_step = 1;
            }
            s = v;
            continue;
        }
        double val;
        const char *e = number_at(v, &val);
        if (!e) {
            s = v;
            continue;
        }
        const char *u = e;
        while (isalpha((unsigned char)*u) || *u == '%' || *u == '/')
            u++;
        if (is_key_char(*u) && *u != '-' && *u != '.') { /* "3_x", "3a9": not a value */
            s = u;
            continue;
        }
        char name[TAD_NAME_MAX];
        const char *suf = unit_suffix(e, (size_t)(u - e));
        if (modded && suf)
            snprintf(name, sizeof name, "%.*s_%s", (int)klen, k, suf);
        else
            snprintf(name, sizeof name, "%.*s", (int)klen, k);
        emit(p, out, cap, &n, name, val);
        s = u;
    }
    return got_step ? n : 0;
}

static int parse_modded(tad_parser *p, const char *line, int64_t *step, tad_sample *out, size_t cap)
{
    const char *s = line + strspn(line, " \t");
    if (strncmp(s, "step:", 5) != 0)
        return 0;
    return scan_pairs(p, s, 1, step, out, cap);
}

/* ---- Hugging Face: a printed Python dict -------------------------------- */

/* A Python literal value at s: number, np.float64(x) / np.float32(x) /
 * tensor(x), or a quoted number. Returns 0 and *v, -1 for anything else (a
 * string, None, True); *end is past the value either way. */
static int hf_value(const char *s, const char **end, double *v)
{
    while (*s == ' ')
        s++;
    char buf[64];
    const char *inner = s, *close = NULL;
    if (*s == '\'' || *s == '"') {
        close = strchr(s + 1, *s);
        inner = s + 1;
    } else if (strncmp(s, "np.float", 8) == 0 || strncmp(s, "np.int", 6) == 0 ||
               strncmp(s, "tensor(", 7) == 0) {
        inner = strchr(s, '(');
        close = inner ? strchr(inner, ')') : NULL;
        inner = inner ? inner + 1 : s;
    }
    if (close) {
        *end = close + 1;
        size_t len = (size_t)(close - inner);
        if (len >= sizeof buf)
            return -1;
        memcpy(buf, inner, len);
        buf[len] = 0;
        return tad_parse_double(buf, v);
    }
    const char *e = s;
    while (*e && *e != ',' && *e != '}')
        e++;
    *end = e;
    size_t len = (size_t)(e - s);
    while (len && s[len - 1] == ' ')
        len--;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    return tad_parse_double(buf, v);
}

static int parse_hf(tad_parser *p, const char *line, int64_t *step, tad_sample *out, size_t cap)
{
    const char *s = strstr(line, "{'");
    if (!s)
        s = strstr(line, "{\"");
    if (!s || !strchr(s, '}'))
        return 0;
    s++;
    int n = 0, is_train = 0, is_eval = 0, explicit_step = 0;
    int64_t st = 0;
    while (*s && *s != '}') {
        while (*s == ' ' || *s == ',')
            s++;
        char q = *s;
        if (q != '\'' && q != '"')
            return 0;
        const char *k = s + 1, *ke = strchr(k, q);
        if (!ke || ke[1] != ':')
            return 0;
        size_t klen = (size_t)(ke - k);
        double v;
        const char *e;
        int ok = hf_value(ke + 2, &e, &v) == 0;
        s = e;
        if (!ok)
            continue;
        if ((klen == 4 && strncmp(k, "step", 4) == 0) ||
            (klen == 11 && strncmp(k, "global_step", 11) == 0)) {
            st = (int64_t)v;
            explicit_step = 1;
            continue;
        }
        if (klen == 4 && strncmp(k, "loss", 4) == 0)
            is_train = 1;
        if (klen > 5 && strncmp(k, "eval_", 5) == 0)
            is_eval = 1;
        char name[TAD_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)klen, k);
        emit(p, out, cap, &n, name, v);
    }
    /* Eval dicts and the final summary repeat the epoch of the training dict
     * logged at the same step: one point of it is enough. */
    if (!is_train || is_eval)
        for (int i = 0; i < n; i++)
            if (strcmp(out[i].name, "epoch") == 0) {
                for (int j = i; j + 1 < n; j++) {
                    memcpy(p->names[j], p->names[j + 1], TAD_NAME_MAX);
                    out[j].value = out[j + 1].value;
                }
                n--;
                break;
            }
    if (n == 0)
        return 0;
    if (explicit_step) {
        *step = st;
    } else if (is_train && !is_eval) {
        p->hf_count++;
        *step = p->hf_count * p->hf_every;
    } else {
        *step = p->have_step ? p->last_step : 0;
    }
    p->last_step = *step;
    p->have_step = 1;
    return n;
}

/* ---- user patterns ------------------------------------------------------ */

/* Translates the documented syntax to POSIX ERE, recording group names. */
static int translate_pattern(const char *in, char *out, size_t cap, pattern *pt, char *err,
                             size_t errlen)
{
    size_t o = 0, group = 0, named = 0;
    int in_bracket = 0;
#define PUT(str)                                                          \
    do {                                                                  \
        size_t l_ = strlen(str);                                          \
        if (o + l_ + 1 > cap) {                                           \
            snprintf(err, errlen, "pattern too long");                    \
            return -1;                                                    \
        }                                                                 \
        memcpy(out + o, str, l_);                                         \
        o += l_;                                                          \
    } while (0)
    for (size_t i = 0; in[i]; i++) {
        char c = in[i];
        char one[2] = {c, 0};
        if (c == '\\' && in[i + 1]) {
            char d = in[++i];
            const char *rep = NULL;
            if (d == 'd')
                rep = in_bracket ? "0-9" : "[0-9]";
            else if (d == 's')
                rep = in_bracket ? "[:space:]" : "[[:space:]]";
            else if (d == 'w')
                rep = in_bracket ? "[:alnum:]_" : "[[:alnum:]_]";
            else if (d == 'S' && !in_bracket)
                rep = "[^[:space:]]";
            if (rep) {
                PUT(rep);
            } else if (in_bracket) {
                char lit[2] = {d, 0}; /* backslash is literal inside POSIX brackets */
                PUT(lit);
            } else {
                char esc[3] = {'\\', d, 0};
                PUT(esc);
            }
            continue;
        }
        if (in_bracket) {
            PUT(one);
            if (c == ']')
                in_bracket = 0;
            continue;
        }
        if (c == '[') {
            PUT(one);
            in_bracket = 1;
            if (in[i + 1] == '^') {
                PUT("^");
                i++;
            }
            if (in[i + 1] == ']') {
                PUT("]");
                i++;
            }
            continue;
        }
        if (c == '(') {
            if (++group > MAX_GROUPS) {
                snprintf(err, errlen, "more than %d groups", MAX_GROUPS);
                return -1;
            }
            pt->name_of[group] = -1;
            if (in[i + 1] == '?') {
                const char *s = in + i + 2;
                if (*s == ':') {
                    i += 2;
                } else {
                    if (*s == 'P')
                        s++;
                    if (*s != '<') {
                        snprintf(err, errlen, "unsupported group syntax at '%.10s'", in + i);
                        return -1;
                    }
                    const char *ne = strchr(s, '>');
                    size_t nlen = ne ? (size_t)(ne - s - 1) : 0;
                    if (!ne || nlen == 0 || nlen >= TAD_NAME_MAX) {
                        snprintf(err, errlen, "bad group name at '%.20s'", in + i);
                        return -1;
                    }
                    if (nlen == 4 && strncmp(s + 1, "step", 4) == 0) {
                        pt->step_group = (int)group;
                    } else {
                        memcpy(pt->names[named], s + 1, nlen);
                        pt->names[named][nlen] = 0;
                        pt->name_of[group] = (int)named++;
                    }
                    i = (size_t)(ne - in);
                }
            }
            PUT("(");
            continue;
        }
        PUT(one);
    }
#undef PUT
    out[o] = 0;
    pt->ngroups = group;
    return 0;
}

int tad_parser_add_pattern(tad_parser *p, const char *pattern_text, char *err, size_t errlen)
{
    if (p->npats == MAX_PATTERNS) {
        snprintf(err, errlen, "at most %d patterns", MAX_PATTERNS);
        return -1;
    }
    pattern *grown = realloc(p->pats, (p->npats + 1) * sizeof *grown);
    if (!grown) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->pats = grown;
    pattern *pt = &p->pats[p->npats];
    memset(pt, 0, sizeof *pt);
    pt->step_group = -1;
    char ere[4096];
    char why[200];
    if (translate_pattern(pattern_text, ere, sizeof ere, pt, why, sizeof why) < 0) {
        snprintf(err, errlen, "pattern '%s': %s", pattern_text, why);
        return -1;
    }
    if (pt->step_group < 0) {
        snprintf(err, errlen, "pattern '%s' has no group named step, e.g. (?<step>\\d+)",
                 pattern_text);
        return -1;
    }
    int rc = regcomp(&pt->re, ere, REG_EXTENDED);
    if (rc != 0) {
        regerror(rc, &pt->re, why, sizeof why);
        snprintf(err, errlen, "pattern '%s' does not compile: %s", pattern_text, why);
        return -1;
    }
    p->npats++;
    return 0;
}

static int parse_patterns(tad_parser *p, const char *line, int64_t *step, tad_sample *out,
                          size_t cap)
{
    int n = 0, got = 0;
    for (size_t i = 0; i < p->npats; i++) {
        pattern *pt = &p->pats[i];
        regmatch_t m[MAX_GROUPS + 1];
        if (regexec(&pt->re, line, pt->ngroups + 1, m, 0) != 0)
            continue;
        regmatch_t *sm = &m[pt->step_group];
        char buf[64];
        size_t len = (size_t)(sm->rm_eo - sm->rm_so);
        if (sm->rm_so < 0 || len == 0 || len >= sizeof buf)
            continue;
        memcpy(buf, line + sm->rm_so, len);
        buf[len] = 0;
        const char *e;
        int64_t st;
        if (parse_step(buf, &e, &st) < 0 || *e)
            continue;
        int before = n;
        for (size_t g = 1; g <= pt->ngroups; g++) {
            if (pt->name_of[g] < 0 || m[g].rm_so < 0)
                continue;
            len = (size_t)(m[g].rm_eo - m[g].rm_so);
            double v;
            if (len == 0 || len >= sizeof buf)
                continue;
            memcpy(buf, line + m[g].rm_so, len);
            buf[len] = 0;
            if (tad_parse_double(buf, &v) == 0)
                emit(p, out, cap, &n, pt->names[pt->name_of[g]], v);
        }
        if (n > before) {
            *step = st;
            got = 1;
        }
    }
    return got ? n : 0;
}

/* ---- dispatch ----------------------------------------------------------- */

int tad_parse_line(tad_parser *p, const char *line, int64_t *step, tad_sample *out, size_t cap)
{
    /* Progress bars (tqdm) redraw with carriage returns: the text that
     * counts is what comes after the last one. */
    const char *start = line;
    for (const char *c = line; *c; c++)
        if (*c == '\r' && c[1] && c[1] != '\r' && c[1] != '\n')
            start = c + 1;
    line = start;
    switch (p->fmt) {
    case FMT_NANOGPT:
    case FMT_LLMC: return parse_nanogpt_llmc(p, line, step, out, cap);
    case FMT_HF: return parse_hf(p, line, step, out, cap);
    case FMT_MODDED: return parse_modded(p, line, step, out, cap);
    case FMT_KV: return scan_pairs(p, line, 0, step, out, cap);
    case FMT_PATTERN: return parse_patterns(p, line, step, out, cap);
    }
    return 0;
}
