/* csv_import.c - `trainscope import csv` (see csv_import.h). */
#include "csv_import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats.h"

typedef struct row {
    size_t run;          /* index into names (run names) */
    size_t metric;       /* index into names (metric names) */
    int rank;
    int64_t step, t_ns;
    double value;
} row;

typedef struct strtab {
    char **s;
    size_t n, cap;
} strtab;

typedef struct csv {
    char *text;          /* the whole file, fields unquoted in place */
    size_t len, pos;
    size_t line;
} csv;

/* Index of s in t, added if new; (size_t)-1 when out of memory. */
static size_t intern(strtab *t, const char *s)
{
    for (size_t i = t->n; i-- > 0;)
        if (strcmp(t->s[i], s) == 0)
            return i;
    if (t->n == t->cap) {
        size_t ncap = t->cap ? 2 * t->cap : 16;
        char **g = realloc(t->s, ncap * sizeof *g);
        if (!g)
            return (size_t)-1;
        t->s = g;
        t->cap = ncap;
    }
    t->s[t->n] = strdup(s);
    return t->s[t->n] ? t->n++ : (size_t)-1;
}

static void strtab_free(strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
}

/* Reads one record's fields (pointers into c->text, NUL-terminated, quotes
 * removed). Returns the field count, 0 at the end, -1 on an unterminated
 * quote. */
static int read_record(csv *c, char **fields, int max)
{
    if (c->pos >= c->len)
        return 0;
    c->line++;
    int n = 0;
    for (;;) {
        char *start = c->text + c->pos, *w = start;
        if (c->pos < c->len && c->text[c->pos] == '"') {
            c->pos++;
            for (;;) {
                if (c->pos >= c->len)
                    return -1;
                char ch = c->text[c->pos++];
                if (ch == '"') {
                    if (c->pos < c->len && c->text[c->pos] == '"') {
                        *w++ = '"';
                        c->pos++;
                        continue;
                    }
                    break;
                }
                if (ch == '\n')
                    c->line++;
                *w++ = ch;
            }
        } else {
            while (c->pos < c->len && c->text[c->pos] != ',' && c->text[c->pos] != '\n')
                *w++ = c->text[c->pos++];
            if (w > start && w[-1] == '\r')
                w--;
        }
        char sep = c->pos < c->len ? c->text[c->pos] : '\n';
        if (sep == '\r' && c->pos + 1 < c->len && c->text[c->pos + 1] == '\n')
            sep = '\n', c->pos++;
        c->pos++;
        *w = 0;
        if (n < max)
            fields[n] = start;
        n++;
        if (sep != ',')
            return n;
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *g = realloc(buf, cap + 1);
            if (!g) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = g;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || *e)
        return -1;
    *out = v;
    return 0;
}

#define MAX_COLS 4096

typedef struct layout {
    int wide;
    int c_run, c_metric, c_rank, c_step, c_wall, c_value;
    int ncols;
} layout;

static int find_col(char **h, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i], name) == 0)
            return i;
    return -1;
}

static int read_header(char **h, int n, layout *l, const char *path)
{
    l->ncols = n;
    l->c_run = find_col(h, n, "run");
    l->c_metric = find_col(h, n, "metric");
    l->c_rank = find_col(h, n, "rank");
    l->c_step = find_col(h, n, "step");
    l->c_wall = find_col(h, n, "wall_ns");
    l->c_value = find_col(h, n, "value");
    l->wide = l->c_metric < 0;
    if (l->c_step < 0) {
        fprintf(stderr,
                "trainscope import: %s: the header has no 'step' column (long layout: "
                "metric,step,value[,run,rank,wall_ns]; wide: step,METRIC,...)\n",
                path);
        return -1;
    }
    if (!l->wide && l->c_value < 0) {
        fprintf(stderr, "trainscope import: %s: a 'metric' column but no 'value' column\n", path);
        return -1;
    }
    if (l->wide && n < 2) {
        fprintf(stderr, "trainscope import: %s: no metric columns beside 'step'\n", path);
        return -1;
    }
    return 0;
}

/* Parses every data row into rows; 0 or -1 (reported). */
static int read_rows(csv *c, const layout *l, char **hdr, const char *path, const char *run_opt,
                     strtab *runs, strtab *metrics, row **rows, size_t *nrows)
{
    size_t cap = 0;
    char *f[MAX_COLS];
    size_t wide_metric[MAX_COLS];
    if (l->wide)
        for (int i = 0; i < l->ncols; i++)
            if (i != l->c_step && i != l->c_wall && i != l->c_run && i != l->c_rank &&
                strcasecmp(hdr[i], "timeline") != 0)
                if ((wide_metric[i] = intern(metrics, hdr[i])) == (size_t)-1)
                    goto oom;
    size_t fixed_run = run_opt ? intern(runs, run_opt) : 0;
    if (fixed_run == (size_t)-1)
        goto oom;
    int n;
    while ((n = read_record(c, f, MAX_COLS)) != 0) {
        if (n < 0) {
            fprintf(stderr, "trainscope import: %s:%zu: a quoted field never ends\n", path, c->line);
            return -1;
        }
        if (n == 1 && f[0][0] == 0)
            continue; /* blank line */
        if (n != l->ncols) {
            fprintf(stderr, "trainscope import: %s:%zu: %d fields, the header has %d\n", path,
                    c->line, n, l->ncols);
            return -1;
        }
        row r = {0};
        if (parse_i64(f[l->c_step], &r.step) < 0) {
            fprintf(stderr, "trainscope import: %s:%zu: step '%s' is not an integer\n", path,
                    c->line, f[l->c_step]);
            return -1;
        }
        int64_t rank = 0;
        if (l->c_rank >= 0 && (parse_i64(f[l->c_rank], &rank) < 0 || rank < 0 || rank > 65535)) {
            fprintf(stderr, "trainscope import: %s:%zu: rank '%s' is not a rank\n", path, c->line,
                    f[l->c_rank]);
            return -1;
        }
        r.rank = (int)rank;
        if (l->c_wall >= 0 && f[l->c_wall][0] && parse_i64(f[l->c_wall], &r.t_ns) < 0) {
            fprintf(stderr, "trainscope import: %s:%zu: wall_ns '%s' is not an integer\n", path,
                    c->line, f[l->c_wall]);
            return -1;
        }
        if (run_opt) {
            r.run = fixed_run;
        } else if (l->c_run >= 0 && f[l->c_run][0]) {
            if ((r.run = intern(runs, f[l->c_run])) == (size_t)-1)
                goto oom;
        } else {
            fprintf(stderr,
                    "trainscope import: %s:%zu: no run: give --run NAME (the file has no run "
                    "column%s)\n",
                    path, c->line, l->c_run >= 0 ? " value on this row" : "");
            return -1;
        }
        for (int i = 0; i < l->ncols; i++) {
            int is_value = l->wide ? (i != l->c_step && i != l->c_wall && i != l->c_run &&
                                      i != l->c_rank && strcasecmp(hdr[i], "timeline") != 0)
                                   : i == l->c_value;
            if (!is_value || (l->wide && f[i][0] == 0))
                continue;
            if (tad_parse_double(f[i], &r.value) < 0) {
                fprintf(stderr, "trainscope import: %s:%zu: value '%s' in column '%s' is not a number\n",
                        path, c->line, f[i], hdr[i]);
                return -1;
            }
            if (l->wide) {
                r.metric = wide_metric[i];
            } else {
                if (!f[l->c_metric][0]) {
                    fprintf(stderr, "trainscope import: %s:%zu: empty metric name\n", path, c->line);
                    return -1;
                }
                if ((r.metric = intern(metrics, f[l->c_metric])) == (size_t)-1)
                    goto oom;
            }
            if (*nrows == cap) {
                cap = cap ? cap * 2 : 4096;
                row *g = realloc(*rows, cap * sizeof *g);
                if (!g)
                    goto oom;
                *rows = g;
            }
            (*rows)[(*nrows)++] = r;
        }
    }
    return 0;
oom:
    fprintf(stderr, "trainscope import: out of memory reading %s\n", path);
    return -1;
}

/* Sends the rows of one (run, rank) in file order. */
static int send_group(tad_sink *s, const row *rows, size_t nrows, size_t run, int rank, int world,
                      const strtab *runs, const strtab *metrics, uint64_t *points)
{
    char err[1024];
    if (tad_sink_begin(s, runs->s[run], rank, world, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope import: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        if (r->run != run || r->rank != rank)
            continue;
        if (tad_sink_log(s, metrics->s[r->metric], r->step, r->t_ns, r->value, err, sizeof err) < 0) {
            fprintf(stderr, "trainscope import: %s\n", err);
            return -1;
        }
        (*points)++;
    }
    if (tad_sink_end(s, "finished", err, sizeof err) < 0) {
        fprintf(stderr, "trainscope import: %s\n", err);
        return -1;
    }
    return 0;
}

int tad_import_csv(const tad_sink_opts *so, const char *path, const char *run)
{
    int status = 1;
    strtab runs = {0}, metrics = {0};
    row *rows = NULL;
    size_t nrows = 0;
    tad_sink *s = NULL;
    csv c = {0};
    c.text = slurp(path, &c.len);
    if (!c.text) {
        fprintf(stderr, "trainscope import: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (c.len >= 3 && memcmp(c.text, "\xEF\xBB\xBF", 3) == 0)
        c.pos = 3; /* the byte-order mark spreadsheets put first */
    char *hdr[MAX_COLS];
    int nh = read_record(&c, hdr, MAX_COLS);
    if (nh <= 0 || (nh == 1 && !hdr[0][0])) {
        fprintf(stderr, "trainscope import: %s is empty (a CSV file starts with a header row)\n",
                path);
        goto out;
    }
    if (nh > MAX_COLS) {
        fprintf(stderr, "trainscope import: %s: more than %d columns\n", path, MAX_COLS);
        goto out;
    }
    layout l;
    if (read_header(hdr, nh, &l, path) < 0)
        goto out;
    if (read_rows(&c, &l, hdr, path, run, &runs, &metrics, &rows, &nrows) < 0)
        goto out;
    if (nrows == 0) {
        fprintf(stderr, "trainscope import: %s has a header but no points\n", path);
        goto out;
    }
    char err[1024];
    s = tad_sink_open(so, err, sizeof err);
    if (!s) {
        fprintf(stderr, "trainscope import: %s\n", err);
        goto out;
    }
    uint64_t points = 0;
    for (size_t ri = 0; ri < runs.n; ri++) {
        int world = 1;
        unsigned char seen[65536 / 8] = {0};
        for (size_t i = 0; i < nrows; i++)
            if (rows[i].run == ri) {
                seen[rows[i].rank / 8] |= (unsigned char)(1u << (rows[i].rank % 8));
                if (rows[i].rank + 1 > world)
                    world = rows[i].rank + 1;
            }
        for (int rank = 0; rank < world; rank++)
            if ((seen[rank / 8] >> (rank % 8)) & 1)
                if (send_group(s, rows, nrows, ri, rank, world, &runs, &metrics, &points) < 0)
                    goto out;
    }
    fprintf(stderr, "trainscope import: %s: %" PRIu64 " points (%s layout) into %zu run%s\n", path,
            points, l.wide ? "wide" : "long", runs.n, runs.n == 1 ? "" : "s");
    status = 0;
out:
    tad_sink_close(s);
    free(rows);
    strtab_free(&runs);
    strtab_free(&metrics);
    free(c.text);
    return status;
}
