/* app.h - the viewer program around the view: opening the source, the SDL
 * window and its streaming texture, the event loop (input, once-per-frame
 * tvm_poll, redraw only when something changed), replay by wall clock,
 * screenshots and the frame-time benchmark. All SDL window code lives here.
 */
#ifndef TRAINSCOPE_VIEWER_APP_H
#define TRAINSCOPE_VIEWER_APP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tva_options {
    const char *source;             /* store path or tcp:// / ipc:// endpoint */
    const char **runs;              /* --run NAME ... */
    size_t nruns;
    const char *screenshot;         /* --screenshot FILE.png: render once and exit */
    int width, height;              /* --size, window points (screenshot: pixels) */
    int have_x_range;
    int64_t x_from, x_to;           /* --x-range A:B (steps) */
    const char *metric_glob;        /* --metric GLOB */
    int all_points;                 /* --all-points */
    double replay;                  /* --replay SPEED (1..1000), 0: off */
    long bench_frames;              /* --bench-frames N, 0: off */
    int print_layout;               /* --print-layout: panel geometry on stdout */
    int have_hover, hover_x, hover_y;   /* --hover X,Y: the mouse there (screenshot) */
    const char *keys;               /* --keys STRING: typed before the screenshot */
    int x_mode;                     /* --x step|wall|since */
    int log_y;                      /* --log-y */
    int all_timelines;              /* --all-timelines */
    double smoothing;               /* --smoothing W */
    double connect_timeout_s;       /* headless: how long to wait for a collector */
} tva_options;

/* Runs the program; returns the process exit code (0 ok, 1 bad input or
 * failure, with the message on stderr). */
int tva_main(const tva_options *o);

#endif
