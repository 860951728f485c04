/* main.c - trainscope-viewer: command-line parsing; everything else is in
 * app.c (window, loop), view.c (what is drawn) and model/ (the data). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: trainscope-viewer STORE|tcp://HOST:PORT [options]\n"
            "  --run NAME            show this run (repeatable; default: all runs)\n"
            "  --metric GLOB         only metrics matching GLOB (e.g. 'train/*')\n"
            "  --x step|wall|since   x axis: step (default), wall time, time since start\n"
            "  --x-range A:B         initial x range (steps)\n"
            "  --log-y               logarithmic y axes\n"
            "  --all-timelines       also the superseded points of runs resumed from a checkpoint\n"
            "  --smoothing W         debiased EMA weight, 0 (off) .. 0.999\n"
            "  --replay SPEED        play the runs back as they happened, SPEED x (1..1000)\n"
            "  --screenshot OUT.png  render one frame to a PNG and exit\n"
            "  --size WxH            window (or screenshot) size, default 1600x1000\n"
            "  --all-points          draw every point instead of per-pixel M4 columns (reference)\n"
            "  --bench-frames N      render N frames of scripted pan and zoom, print timings\n"
            "  --print-layout        print each panel's plot rectangle and scales (tests)\n"
            "  --hover X,Y           screenshot with the mouse at pixel X,Y (crosshair, values)\n"
            "  --keys STRING         screenshot after typing these keys in the window (\\n is Enter)\n"
            "In the window, press h for the keys.\n");
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    tva_options o = {.width = 1600, .height = 1000, .connect_timeout_s = 10};
    const char **runs = calloc((size_t)argc, sizeof *runs);
    int rc = 2;
    if (!runs)
        return 1;
    o.runs = runs;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--all-points")) {
            o.all_points = 1;
            takes = 0;
        } else if (!strcmp(a, "--print-layout")) {
            o.print_layout = 1;
            takes = 0;
        } else if (!strcmp(a, "--log-y")) {
            o.log_y = 1;
            takes = 0;
        } else if (!strcmp(a, "--all-timelines")) {
            o.all_timelines = 1;
            takes = 0;
        } else if (a[0] == '-' && a[1] == '-') {
            if (!val) {
                fprintf(stderr, "trainscope-viewer: %s needs a value\n", a);
                goto bad;
            }
            if (!strcmp(a, "--run"))
                runs[o.nruns++] = val;
            else if (!strcmp(a, "--keys"))
                o.keys = val;
            else if (!strcmp(a, "--metric"))
                o.metric_glob = val;
            else if (!strcmp(a, "--screenshot"))
                o.screenshot = val;
            else if (!strcmp(a, "--size")) {
                if (sscanf(val, "%dx%d", &o.width, &o.height) != 2 || o.width < 200 || o.height < 150 ||
                    o.width > 16384 || o.height > 16384) {
                    fprintf(stderr, "trainscope-viewer: --size wants WxH between 200x150 and 16384x16384, not %s\n", val);
                    goto bad;
                }
            } else if (!strcmp(a, "--x-range")) {
                char buf[128];
                snprintf(buf, sizeof buf, "%s", val);
                char *colon = strchr(buf, ':');
                if (!colon || (*colon = 0, parse_i64(buf, &o.x_from) < 0) || parse_i64(colon + 1, &o.x_to) < 0 ||
                    o.x_to <= o.x_from) {
                    fprintf(stderr, "trainscope-viewer: --x-range wants A:B with integers A < B, not %s\n", val);
                    goto bad;
                }
                o.have_x_range = 1;
            } else if (!strcmp(a, "--hover")) {
                if (sscanf(val, "%d,%d", &o.hover_x, &o.hover_y) != 2 || o.hover_x < 0 || o.hover_y < 0) {
                    fprintf(stderr, "trainscope-viewer: --hover wants X,Y in pixels, not %s\n", val);
                    goto bad;
                }
                o.have_hover = 1;
            } else if (!strcmp(a, "--x")) {
                o.x_mode = !strcmp(val, "step") ? 0 : !strcmp(val, "wall") ? 1 : !strcmp(val, "since") ? 2 : -1;
                if (o.x_mode < 0) {
                    fprintf(stderr, "trainscope-viewer: --x wants step, wall or since, not %s\n", val);
                    goto bad;
                }
            } else if (!strcmp(a, "--smoothing")) {
                char *end;
                o.smoothing = strtod(val, &end);
                if (*end || !(o.smoothing >= 0 && o.smoothing < 1)) {
                    fprintf(stderr, "trainscope-viewer: --smoothing wants a weight in [0, 1), not %s\n", val);
                    goto bad;
                }
            } else if (!strcmp(a, "--replay")) {
                char *end;
                o.replay = strtod(val, &end);
                if (*end || !(o.replay >= 1 && o.replay <= 1000)) {
                    fprintf(stderr, "trainscope-viewer: --replay wants a speed from 1 to 1000, not %s\n", val);
                    goto bad;
                }
            } else if (!strcmp(a, "--bench-frames")) {
                char *end;
                o.bench_frames = strtol(val, &end, 10);
                if (*end || o.bench_frames < 1) {
                    fprintf(stderr, "trainscope-viewer: --bench-frames wants a positive count, not %s\n", val);
                    goto bad;
                }
            } else {
                fprintf(stderr, "trainscope-viewer: unknown option %s\n", a);
                goto bad;
            }
        } else if (!o.source) {
            o.source = a;
            takes = 0;
        } else {
            fprintf(stderr, "trainscope-viewer: one source only (got %s and %s)\n", o.source, a);
            goto bad;
        }
        i += takes;
    }
    if (!o.source) {
        usage(stderr);
        goto bad;
    }
    rc = tva_main(&o);
    goto out;
bad:
    rc = 2;
out:
    free(runs);
    return rc;
}
