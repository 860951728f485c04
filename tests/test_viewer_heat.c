/* test_viewer_heat.c - heat.h's rules: which metric names are layers, their
 * group and row order, the colour map's ends and the colour scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heat.h"

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static void layer_is(const char *name, long index, const char *label, const char *group)
{
    tvh_layer l;
    char g[256];
    if (!tvh_parse(name, &l)) {
        CHECK(0, "%s: not taken for a layer", name);
        return;
    }
    tvh_group_name(name, &l, g, sizeof g);
    CHECK(l.index == index, "%s: index %ld, want %ld", name, l.index, index);
    CHECK(strlen(label) == l.end - l.at && strncmp(name + l.at, label, l.end - l.at) == 0,
          "%s: label %.*s, want %s", name, (int)(l.end - l.at), name + l.at, label);
    CHECK(strcmp(g, group) == 0, "%s: group %s, want %s", name, g, group);
}

static void not_layer(const char *name)
{
    tvh_layer l;
    CHECK(!tvh_parse(name, &l), "%s: taken for a layer", name);
}

static int cmp_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    tvh_layer lx, ly;
    tvh_parse(x, &lx);
    tvh_parse(y, &ly);
    return tvh_cmp(x, &lx, y, &ly);
}

int main(void)
{
    layer_is("grad_norm/layer.12", 12, "12", "grad_norm/layer.*");
    layer_is("grad_norm/layers.3.attn", 3, "3.attn", "grad_norm/layers.*");
    layer_is("update_ratio/layer_7", 7, "7", "update_ratio/layer_*");
    layer_is("grad_norm/blocks.0.qkv", 0, "0.qkv", "grad_norm/blocks.*");
    layer_is("layer.3/grad_norm", 3, "3", "layer.*/grad_norm");
    layer_is("model.h.11-mlp/grad", 11, "11-mlp", "model.h.*/grad");
    not_layer("grad_norm/layer12");
    not_layer("load/m3");
    not_layer("x1.2");
    not_layer("train/loss");
    not_layer("grad_norm/layer.1234567");   /* 7 digits: a step or an id, not a layer */
    not_layer("grad_norm/layer.3x");
    not_layer("3.4");

    /* row order inside a group: index (numeric), then label; groups apart */
    const char *names[] = {"grad_norm/layers.12.attn", "grad_norm/layers.3.mlp", "grad_norm/layers.3.attn",
                           "grad_norm/layers.2.attn", "update_ratio/layers.1.attn", "grad_norm/layers.10.attn"};
    const char *want[] = {"grad_norm/layers.2.attn", "grad_norm/layers.3.attn", "grad_norm/layers.3.mlp",
                          "grad_norm/layers.10.attn", "grad_norm/layers.12.attn", "update_ratio/layers.1.attn"};
    qsort(names, 6, sizeof *names, cmp_names);
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(names[i], want[i]) == 0, "order %d: %s, want %s", i, names[i], want[i]);
    tvh_layer a, b;
    tvh_parse("grad_norm/layer.1", &a);
    tvh_parse("update_ratio/layer.1", &b);
    CHECK(!tvh_same_group("grad_norm/layer.1", &a, "update_ratio/layer.1", &b), "two metrics, two groups");
    tvh_parse("grad_norm/layer.20", &b);
    CHECK(tvh_same_group("grad_norm/layer.1", &a, "grad_norm/layer.20", &b), "one metric's layers, one group");
    CHECK(tvh_cmp("grad_norm/layer.1", &a, "grad_norm/layer.20", &b) < 0, "1 before 20");

    /* colours: the ends, monotone brightness, never white or the NaN colour */
    CHECK(tvh_colour(0) == 0xff000004u && tvh_colour(-1) == 0xff000004u && tvh_colour(NAN) == 0xff000004u,
          "the cold end");
    CHECK(tvh_colour(1) == TVH_HOT && tvh_colour(7) == TVH_HOT, "the hot end");
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
        uint32_t c = tvh_colour(i / 100.0);
        double lum = 0.2126 * ((c >> 16) & 255) + 0.7152 * ((c >> 8) & 255) + 0.0722 * (c & 255);
        CHECK(lum >= prev - 1e-9, "brightness rises with t (at %d)", i);
        CHECK(c != 0xffffffffu && c != TVH_NONFINITE, "no cell colour is background or NaN (%d)", i);
        prev = lum;
    }
    /* scale: log10 by default for grad norms spanning decades */
    CHECK(tvh_scale(1e-3, -3, 2, 1) == 0 && tvh_scale(100, -3, 2, 1) == 1 && fabs(tvh_scale(1, -3, 2, 1) - 0.6) < 1e-12,
          "log scale");
    CHECK(tvh_scale(0, -3, 2, 1) == 0 && tvh_scale(-5, -3, 2, 1) == 0, "non-positive values at the bottom of a log scale");
    CHECK(tvh_scale(5, 0, 10, 0) == 0.5 && tvh_scale(20, 0, 10, 0) == 1 && tvh_scale(-1, 0, 10, 0) == 0, "linear, clamped");
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
