/* heat.c - the layer rule, row order and colour map of heat.h. */
#include "heat.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int tvh_parse(const char *name, tvh_layer *out)
{
    size_t n = strlen(name);
    for (size_t i = 2; i < n; i++) {
        if (!isdigit((unsigned char)name[i]) || isdigit((unsigned char)name[i - 1]))
            continue;
        if ((name[i - 1] != '.' && name[i - 1] != '_') || !isalpha((unsigned char)name[i - 2]))
            continue;
        size_t j = i;
        while (j < n && isdigit((unsigned char)name[j]))
            j++;
        if (j - i > 6 || (j < n && !strchr("._-/", name[j])))
            continue;
        const char *slash = strchr(name + j, '/');
        long idx = 0;
        for (size_t k = i; k < j; k++)
            idx = idx * 10 + (name[k] - '0');
        *out = (tvh_layer){.at = i, .end = slash ? (size_t)(slash - name) : n, .index = idx};
        return 1;
    }
    return 0;
}

/* The k-th character of the group name (0 past its end), without building it. */
static int group_char(const char *name, const tvh_layer *l, size_t k)
{
    if (k < l->at)
        return (unsigned char)name[k];
    if (k == l->at)
        return '*';
    return (unsigned char)name[l->end + (k - l->at - 1)];
}

static int cmp_group(const char *a, const tvh_layer *la, const char *b, const tvh_layer *lb)
{
    for (size_t k = 0;; k++) {
        int x = group_char(a, la, k), y = group_char(b, lb, k);
        if (x != y)
            return x < y ? -1 : 1;
        if (!x)
            return 0;
    }
}

int tvh_same_group(const char *a, const tvh_layer *la, const char *b, const tvh_layer *lb)
{
    return cmp_group(a, la, b, lb) == 0;
}

int tvh_cmp(const char *a, const tvh_layer *la, const char *b, const tvh_layer *lb)
{
    int c = cmp_group(a, la, b, lb);
    if (c)
        return c;
    if (la->index != lb->index)
        return la->index < lb->index ? -1 : 1;
    size_t na = la->end - la->at, nb = lb->end - lb->at;
    c = strncmp(a + la->at, b + lb->at, na < nb ? na : nb);
    if (c)
        return c;
    if (na != nb)
        return na < nb ? -1 : 1;
    return strcmp(a, b);   /* 3 and 03: the same index and label length, still two rows */
}

void tvh_group_name(const char *name, const tvh_layer *l, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s*%s", (int)l->at, name, name + l->end);
}

/* inferno at 0, .2, .4, .6, .8 and 1 */
static const uint32_t anchors[] = {0x000004, 0x420a68, 0x932667, 0xdd513a, 0xfca50a, 0xfcffa4};
#define NANCH (sizeof anchors / sizeof anchors[0])

uint32_t tvh_colour(double t)
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double pos = t * (double)(NANCH - 1);
    size_t i = (size_t)pos;
    if (i >= NANCH - 1)
        return 0xff000000u | anchors[NANCH - 1];
    double f = pos - (double)i;
    uint32_t out = 0xff000000u;
    for (int sh = 0; sh <= 16; sh += 8) {
        double a = (anchors[i] >> sh) & 255, b = (anchors[i + 1] >> sh) & 255;
        out |= (uint32_t)(a + (b - a) * f + 0.5) << sh;
    }
    return out;
}

double tvh_scale(double v, double lo, double hi, int log)
{
    if (log) {
        if (!(v > 0))
            return 0;
        v = log10(v);
    }
    double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return t < 0 ? 0 : t > 1 ? 1 : t;
}
