/* heat.h - the layer heatmap's rules, apart from SDL and the data source:
 * which metric names are layers of one heatmap, the order of its rows, and
 * the colour of a cell. view.c groups the panels with these, heatmap.c draws.
 *
 * The layer rule. A metric name names a layer when it holds a layer index:
 * the first run of 1 to 6 decimal digits that follows a letter and one '.'
 * or '_', and is followed by the end of the name or by '.', '_', '-' or '/'.
 *   grad_norm/layer.12        index 12, row label "12"
 *   grad_norm/layers.3.attn   index 3,  row label "3.attn"
 *   update_ratio/layer_7      index 7,  row label "7"
 *   grad_norm/blocks.0.qkv    index 0,  row label "0.qkv"
 *   layer.3/grad_norm         index 3,  row label "3"
 * Not layers: grad_norm/layer12 (no separator), load/m3, x1.2 (a digit, not
 * a letter, before the separator).
 * The row label is the index and the rest of its path component (up to the
 * next '/'); the group is the name with the row label replaced by '*':
 * grad_norm/layers.*, layer.* /grad_norm. Names of one group are the rows of
 * one heatmap, ordered by index, then by label (3.attn before 3.mlp before
 * 12.attn). A group of one name stays a line panel.
 */
#ifndef TRAINSCOPE_VIEWER_HEAT_H
#define TRAINSCOPE_VIEWER_HEAT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tvh_layer {
    size_t at;          /* offset of the index digits in the name */
    size_t end;         /* end of the row label: the next '/' or the name's end */
    long index;
} tvh_layer;

/* 1 and *out filled when name names a layer (the rule above), else 0. */
int tvh_parse(const char *name, tvh_layer *out);
/* Compare two layer names by group (strcmp order of the group names), then
 * row order (index, then label): <0, 0 (the same name), >0. */
int tvh_cmp(const char *a, const tvh_layer *la, const char *b, const tvh_layer *lb);
/* 1 when both are rows of the same heatmap. */
int tvh_same_group(const char *a, const tvh_layer *la, const char *b, const tvh_layer *lb);
/* The group name ("grad_norm/layer.*") into buf. */
void tvh_group_name(const char *name, const tvh_layer *l, char *buf, size_t len);

/* ---- colour ---- */

/* The colour of t in [0, 1] (clamped): a perceptually ordered dark-to-bright
 * map (matplotlib's inferno through its anchors at 0, .2, .4, .6, .8, 1),
 * never white, so an empty cell (background) stays apart. */
uint32_t tvh_colour(double t);
#define TVH_HOT       0xfffcffa4u   /* tvh_colour(1): the top of the scale */
#define TVH_NONFINITE 0xff00e0e0u   /* a cell holding a NaN or an Inf */

/* Where v falls on the colour scale [lo, hi] (log10 of them when log): 0..1,
 * clamped; values <= 0 on a log scale are 0. */
double tvh_scale(double v, double lo, double hi, int log);

#endif
