/* view_int.h - internals shared by view.c (state, panels, x range, input)
 * and render.c (drawing a frame). Not part of the contract: app.c sees only
 * view.h.
 */
#ifndef TRAINSCOPE_VIEWER_VIEW_INT_H
#define TRAINSCOPE_VIEWER_VIEW_INT_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "plot.h"
#include "view.h"

/* colours, 0xAARRGGBB */
#define BG        0xffffffffu
#define FG        0xff202020u
#define DIM       0xff707070u
#define FRAME     0xffb0b0b0u
#define GRID      0xffebebebu
#define GAPSHADE  0x30d62728u
#define EVENT     0xff9a9a9au
#define RESUME    0xffe08000u
#define HOVER     0xff505050u
#define ERRCOL    0xffc00000u
/* finding markers, by severity (none of them a run colour) */
#define FIND_CRIT 0xffcc0033u
#define FIND_WARN 0xffe69500u
#define FIND_INFO 0xff2b7bd6u
#define BAND_ALPHA 0x40000000u  /* the rank band: its run's colour, faint */

typedef struct panel {
    char *name;                 /* metric name, owned */
    size_t group;
    size_t *series;             /* indexes into the source's series */
    size_t nseries;
    int y_manual;               /* box zoom fixed the y range */
    double ylo, yhi;            /* manual range (log10 when log_y) */
    tvr_rect plot;              /* last layout */
    tvp_yscale ys;
    /* a layer heatmap (heat.h): rows are layers, the panel's name its group */
    int heat;
    char **layers;              /* row labels in row order (full metric names), owned */
    size_t nlayers;
    size_t *layer_of;           /* per series of the panel: its row */
    tvr_rect cbar;              /* the colour bar under the x labels */
    double clo, chi;            /* colour scale of the last frame (log10 when clog) */
    int clog;
} panel;

/* a drawn row of the findings list, for clicks */
typedef struct flist_row {
    tvr_rect r;
    size_t finding;
} flist_row;

typedef struct legend_item {
    tvr_rect r;
    size_t run;
} legend_item;

struct tvv_view {
    tvm_source *src;
    tvt_font *font;
    tvv_options opt;

    panel *panels;
    size_t npanels;
    char **groups;              /* group names ("train/"), owned */
    size_t ngroups;

    size_t nruns;
    size_t *run_order;          /* runs by store id: legend order; a run's colour is its place here */
    size_t *run_rank;           /* inverse of run_order */
    unsigned char *run_hidden;
    int64_t *run_start;         /* ns: first point of the run (time since start) */
    legend_item *legend;
    size_t nlegend;

    int xmode, x_auto, follow;
    int rendered;               /* a frame was drawn */
    int growing;                /* points arrived after the first frame: live */
    int64_t x_from, x_to;
    int log_y, outliers, timelines, help;
    int each_rank;              /* a line per rank instead of the band of a run's ranks */
    int lines_only;             /* layer groups as line panels, not heatmaps */
    int flist;                  /* the findings list is open */
    ptrdiff_t fsel;             /* selected finding (model index), -1: none */
    size_t ftop;                /* first entry shown (scrolling) */
    tvr_rect fbox;              /* the list's box in the last frame (w 0: closed) */
    flist_row *frows;           /* rows drawn in the last frame */
    size_t nfrows, frows_cap;
    ptrdiff_t hover_finding;    /* the finding marker under the mouse this frame, -1: none */
    double smooth;

    int hover_x, hover_y;
    int box_on, bx0, by0, bx1, by1;
    regex_t re;
    int have_re;
    char prompt[256];
    int prompting;
    char status[256];
    char error[512];
    int dirty;

    int ncols;                  /* plot width shared by every panel (x linked) */
    int ylab;                   /* width left of each plot for the y labels */

    tss_bucket *cols;           /* scratch: nseries of a panel x ncols */
    size_t cols_cap;
    double *tmp;                /* scratch for quantiles and smoothing */
    size_t tmp_cap;
    int64_t *gap_first, *gap_last;
    size_t gap_cap;
    unsigned char *shown;       /* scratch: which series of a panel are drawn */
    size_t shown_cap;
    double *hval;               /* scratch: heatmap cells (rows x ncols) and a fold row */
    size_t hval_cap;
    unsigned char *hstate;      /* per cell: 0 empty, 1 finite value, 2 NaN or Inf */
    size_t hstate_cap;
    size_t *hslot;              /* per run: its block of rows in the heatmap, or SIZE_MAX */
    uint32_t *hrow;             /* scratch: one pixel row of cell colours, and its runs */
    size_t hrow_cap;
    size_t hslot_cap;
    const char *const *help_lines;
    size_t nhelp;
};

/* Grow *p (of *cap elements of elem bytes) to hold need: 0 or -ENOMEM. */
int tvv__grow(void **p, size_t *cap, size_t need, size_t elem);
int tvv__series_visible(const tvv_view *v, const tvm_series *s);
/* What to add to a view x to get the series' own x (time since start). */
int64_t tvv__series_offset(const tvv_view *v, const tvm_series *s);
/* The M4 columns of panel p's visible series into v->cols, v->shown set
 * (render.c). 0, -ENOMEM or the source's error. */
int tvv__panel_columns(tvv_view *v, const panel *p, size_t ncols, int64_t *points);
/* tvm_columns / tvm_points flags for the current x mode and timelines. */
int tvv__model_flags(const tvv_view *v);
/* A finding's x in the current x mode (step, wall ns, ns since its run's start). */
int64_t tvv__finding_x(const tvv_view *v, const tvm_finding *f);
/* The plot column under canvas x (all panels are linked): 1, or 0 when none. */
int tvv__col_of_pixel(const tvv_view *v, int x, int y, int *col);
/* Before drawing: the whole data (auto), or follow it (live). */
void tvv__update_x_range(tvv_view *v);

/* render.c, for heatmap.c and findings.c */
uint32_t tvv__run_colour(const tvv_view *v, size_t run);
void tvv__draw_x_axis(tvv_view *v, tvr_canvas *cv, const panel *p);
/* The finding markers of a panel; notes the one under the mouse. */
void tvv__draw_findings(tvv_view *v, tvr_canvas *cv, const panel *p);
/* A box of text lines near (x, y) (below right, flipped to stay on the
 * canvas), over everything; colours per line. */
void tvv__tooltip(tvv_view *v, tvr_canvas *cv, int x, int y, char (*lines)[160], const uint32_t *colours, size_t n);
/* The x range of a plot column as text ("steps 100..131", a clock, a duration). */
void tvv__col_text(const tvv_view *v, int64_t lo, int64_t hi, char *buf, size_t len);
/* Centre the x range on x, keeping its width. */
void tvv__centre_on(tvv_view *v, int64_t x);

/* heatmap.c: draw a heatmap panel (p->heat) */
int tvv__render_heat(tvv_view *v, tvr_canvas *cv, panel *p, int64_t *points);

/* findings.c: the list overlay and a marker's tooltip, over the panels */
tvr_rect tvv__findings_box(tvv_view *v, const tvr_canvas *cv, int top, int bottom);
void tvv__draw_findings_list(tvv_view *v, tvr_canvas *cv, int top, int bottom);
void tvv__draw_finding_tooltip(tvv_view *v, tvr_canvas *cv);

#endif
