/* plot.c - ticks, labels, mappings, smoothing and the two drawings of a
 * series (the exactness argument is in plot.h). */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- ticks and labels ---- */

static double nice_step(double raw)
{
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    double nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
    return nice * mag;
}

size_t tvp_ticks(double lo, double hi, int max_ticks, double *out, double *step)
{
    if (max_ticks < 2)
        max_ticks = 2;
    if (max_ticks > TVP_MAX_TICKS)
        max_ticks = TVP_MAX_TICKS;
    double s = nice_step((hi - lo) / (max_ticks - 1));
    *step = s;
    if (!(hi >= lo) || !isfinite(lo) || !isfinite(hi))
        return 0;
    double k0 = ceil(lo / s - 1e-9), k1 = floor(hi / s + 1e-9);
    size_t n = 0;
    /* n bounded by max_ticks + 1: at the limits of double precision the
     * count from k0..k1 could exceed what was asked for */
    for (double k = k0; k <= k1 && n < TVP_MAX_TICKS && n <= (size_t)max_ticks; k++) {
        double v = k * s;
        if (fabs(v) < s * 1e-9)
            v = 0;
        out[n++] = v;
    }
    return n;
}

size_t tvp_log_ticks(double lo_log10, double hi_log10, int max_ticks, double *out)
{
    size_t n = 0;
    if (!isfinite(lo_log10) || !isfinite(hi_log10) || hi_log10 < lo_log10)
        return 0;
    double d0 = ceil(lo_log10 - 1e-9), d1 = floor(hi_log10 + 1e-9);
    double decades = d1 - d0 + 1;
    if (decades >= 2) {
        double stride = 1;
        while (decades / stride > max_ticks && stride < 1e6)
            stride = stride < 2 ? 2 : stride < 5 ? 5 : stride * 2;
        for (double d = ceil(d0 / stride) * stride; d <= d1 && n < TVP_MAX_TICKS; d += stride)
            out[n++] = pow(10, d);
        return n;
    }
    /* Less than two decades visible: 1, 2 and 5 times the powers of ten. */
    static const double mult[] = {1, 2, 5};
    for (double d = floor(lo_log10); d <= ceil(hi_log10) && n < TVP_MAX_TICKS; d++)
        for (size_t i = 0; i < 3 && n < TVP_MAX_TICKS; i++) {
            double v = mult[i] * pow(10, d), l = log10(v);
            if (l >= lo_log10 - 1e-9 && l <= hi_log10 + 1e-9)
                out[n++] = v;
        }
    return n;
}

static int decimals_for(double step)
{
    if (!(step > 0))
        return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

/* "2.0e-04" -> "2e-4": no trailing zeros in the mantissa, no padded exponent. */
static void tidy_exponent(char *buf)
{
    char *e = strchr(buf, 'e');
    if (!e)
        return;
    char exp[16];
    snprintf(exp, sizeof exp, "%s", e + 1);
    char *m = e;
    if (memchr(buf, '.', (size_t)(e - buf))) {
        while (m > buf && m[-1] == '0')
            m--;
        if (m > buf && m[-1] == '.')
            m--;
    }
    int x = 0, neg = exp[0] == '-';
    sscanf(exp + (exp[0] == '-' || exp[0] == '+'), "%d", &x);
    sprintf(m, "e%s%d", neg ? "-" : "", x);
}

void tvp_format(double v, double step, char *buf, size_t len)
{
    double a = fabs(v);
    if (v == 0 || a < fabs(step) * 1e-9) {
        snprintf(buf, len, "0");
        return;
    }
    if (!isfinite(v)) {
        snprintf(buf, len, "%s", isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf");
        return;
    }
    static const struct {
        double unit;
        const char *suffix;
    } si[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
    if (a >= 1e15 || a < 1e-3 || (step > 0 && step < 1e-4)) {
        int d = (int)(floor(log10(a)) - floor(log10(step > 0 ? step : a)));
        d = d < 0 ? 0 : d > 9 ? 9 : d;
        snprintf(buf, len, "%.*e", d, v);
        tidy_exponent(buf);
        return;
    }
    for (size_t i = 0; i < sizeof si / sizeof si[0]; i++)
        if (a >= si[i].unit) {
            snprintf(buf, len, "%.*f%s", decimals_for(step / si[i].unit), v / si[i].unit, si[i].suffix);
            return;
        }
    snprintf(buf, len, "%.*f", decimals_for(step), v);
}

#define MS 1000000LL
#define SEC 1000000000LL

size_t tvp_time_ticks(int64_t lo_ns, int64_t hi_ns, int max_ticks, int64_t *out, int64_t *step_ns)
{
    static const int64_t steps[] = {
        1 * MS, 2 * MS, 5 * MS, 10 * MS, 20 * MS, 50 * MS, 100 * MS, 200 * MS, 500 * MS,
        1 * SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC,
        60 * SEC, 120 * SEC, 300 * SEC, 600 * SEC, 900 * SEC, 1800 * SEC,
        3600 * SEC, 7200 * SEC, 3 * 3600 * SEC, 6 * 3600 * SEC, 12 * 3600 * SEC,
        86400 * SEC, 2 * 86400 * SEC, 7 * 86400 * SEC, 30 * 86400 * SEC, 365 * 86400 * SEC};
    if (max_ticks < 2)
        max_ticks = 2;
    if (max_ticks > TVP_MAX_TICKS)
        max_ticks = TVP_MAX_TICKS;
    double span = (double)hi_ns - (double)lo_ns;
    int64_t s = steps[sizeof steps / sizeof steps[0] - 1];
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / (double)steps[i] <= max_ticks - 1) {
            s = steps[i];
            break;
        }
    *step_ns = s;
    if (hi_ns < lo_ns)
        return 0;
    int64_t k = lo_ns / s;
    if (k * s < lo_ns)
        k++;
    size_t n = 0;
    for (; n < TVP_MAX_TICKS && k <= hi_ns / s; k++)
        out[n++] = k * s;
    return n;
}

void tvp_format_duration(int64_t ns, int64_t step_ns, char *buf, size_t len)
{
    const char *sign = ns < 0 ? "-" : "";
    uint64_t a = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    uint64_t s = a / SEC;
    if (step_ns < SEC) {
        snprintf(buf, len, "%s%.*fs", sign, decimals_for((double)step_ns / SEC), (double)a / SEC);
        return;
    }
    uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d)
        snprintf(buf, len, h ? "%s%llud%lluh" : "%s%llud", sign, (unsigned long long)d, (unsigned long long)h);
    else if (h)
        snprintf(buf, len, m ? "%s%lluh%02llum" : "%s%lluh", sign, (unsigned long long)h, (unsigned long long)m);
    else if (m)
        snprintf(buf, len, sec ? "%s%llum%02llus" : "%s%llum", sign, (unsigned long long)m, (unsigned long long)sec);
    else
        snprintf(buf, len, "%s%llus", sign, (unsigned long long)sec);
}

void tvp_format_clock(int64_t ns, int64_t step_ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / SEC);
    struct tm tm;
    localtime_r(&t, &tm);
    if (step_ns >= 86400 * SEC)
        strftime(buf, len, "%m-%d", &tm);
    else if (step_ns >= 60 * SEC)
        strftime(buf, len, "%H:%M", &tm);
    else if (step_ns >= SEC)
        strftime(buf, len, "%H:%M:%S", &tm);
    else {
        char hms[16];
        strftime(hms, sizeof hms, "%H:%M:%S", &tm);
        snprintf(buf, len, "%s.%03lld", hms, (long long)(ns % SEC / MS));
    }
}

/* ---- mappings ---- */

#define ROW_LIMIT (1 << 24)

int tvp_row(const tvp_yscale *ys, double v)
{
    if (ys->log)
        v = v > 0 ? log10(v) : -INFINITY;
    double span = ys->hi - ys->lo;
    double t = (v - ys->lo) / (span > 0 ? span : 1) * (ys->height - 1);
    /* Clamp before converting (and catch +-Inf): clamping keeps the map monotone. */
    if (!(t < ROW_LIMIT))
        t = ROW_LIMIT;
    if (!(t > -ROW_LIMIT))
        t = -ROW_LIMIT;
    return ys->top + (ys->height - 1) - (int)floor(t + 0.5);
}

double tvp_value_at(const tvp_yscale *ys, int r)
{
    double t = (double)(ys->top + ys->height - 1 - r) / (ys->height > 1 ? ys->height - 1 : 1);
    double v = ys->lo + t * (ys->hi - ys->lo);
    return ys->log ? pow(10, v) : v;
}

size_t tvp_col(int64_t x_from, int64_t x_to, size_t ncols, int64_t x)
{
    unsigned __int128 w = (unsigned __int128)((uint64_t)x_to - (uint64_t)x_from) + 1;
    unsigned __int128 d = (uint64_t)x - (uint64_t)x_from;
    return (size_t)(d * ncols / w);
}

void tvp_col_range(int64_t x_from, int64_t x_to, size_t ncols, size_t c, int64_t *lo, int64_t *hi)
{
    unsigned __int128 w = (unsigned __int128)((uint64_t)x_to - (uint64_t)x_from) + 1;
    /* smallest d with d * ncols / w >= c is ceil(c * w / ncols) */
    unsigned __int128 a = ((unsigned __int128)c * w + ncols - 1) / ncols;
    unsigned __int128 b = ((unsigned __int128)(c + 1) * w + ncols - 1) / ncols;
    *lo = (int64_t)((uint64_t)x_from + (uint64_t)a);
    *hi = (int64_t)((uint64_t)x_from + (uint64_t)b - 1);
    if (b == a) {   /* empty column: report lo > hi without wrapping */
        *hi = *lo;
        *lo = *lo == INT64_MAX ? *lo : *lo + 1;
    }
}

/* ---- drawing ---- */

int tvp_gap_between(const tvp_gaps *g, int64_t a, int64_t b)
{
    if (!g)
        return 0;
    for (size_t i = 0; i < g->n; i++)
        if (a <= g->last[i] && b >= g->first[i])
            return 1;
    return 0;
}

int tvp_draw_columns(tvr_canvas *cv, int x0, const tss_bucket *cols, size_t ncols,
                     const tvp_yscale *ys, const tvp_gaps *gaps, tvp_fix_fn fix, void *ctx,
                     tvp_series_style st)
{
    int have_prev = 0, prev_x = 0, prev_row = 0;
    int64_t prev_step = 0;
    for (size_t c = 0; c < ncols; c++) {
        tss_bucket b = cols[c];
        if (b.count - b.n_nan <= 0)
            continue;
        if (isnan(b.first) || isnan(b.last)) {
            int rc = fix ? fix(ctx, c, &b) : -22;
            if (rc < 0)
                return rc;
        }
        int x = x0 + (int)c;
        tvr_vseg(cv, x, tvp_row(ys, b.max), tvp_row(ys, b.min), st.argb, st.blend);
        if (have_prev && !tvp_gap_between(gaps, prev_step, b.step_first))
            tvr_line(cv, prev_x, prev_row, x, tvp_row(ys, b.first), st.argb, st.blend);
        have_prev = 1;
        prev_x = x;
        prev_row = tvp_row(ys, b.last);
        prev_step = b.step_last;
    }
    return 0;
}

void tvp_draw_points(tvr_canvas *cv, int x0, const tss_point *pts, size_t n, int xtime,
                     int64_t x_from, int64_t x_to, size_t ncols,
                     const tvp_yscale *ys, const tvp_gaps *gaps, tvp_series_style st)
{
    int have_prev = 0, prev_x = 0, prev_row = 0;
    int64_t prev_step = 0;
    for (size_t i = 0; i < n; i++) {
        const tss_point *p = &pts[i];
        int64_t x = xtime ? p->t_ns : p->step;
        if (isnan(p->value) || x < x_from || x > x_to)
            continue;
        int px = x0 + (int)tvp_col(x_from, x_to, ncols, x), row = tvp_row(ys, p->value);
        tvr_line(cv, px, row, px, row, st.argb, st.blend);
        if (have_prev && (px == prev_x || !tvp_gap_between(gaps, prev_step, p->step)))
            tvr_line(cv, prev_x, prev_row, px, row, st.argb, st.blend);
        have_prev = 1;
        prev_x = px;
        prev_row = row;
        prev_step = p->step;
    }
}

/* ---- smoothing ---- */

void tvp_ema(double *v, size_t n, double w)
{
    if (!(w > 0))
        return;
    double last = 0, wk = 1;   /* wk = w^(values averaged so far) */
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        last = last * w + (1 - w) * v[i];
        wk *= w;
        v[i] = last / (1 - wk);
    }
}
