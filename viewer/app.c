/* app.c - the SDL side of the viewer (app.h): window, streaming texture,
 * event loop, replay clock, screenshot and benchmark.
 *
 * A frame is drawn by view.c into a 32-bit canvas and presented in one of
 * two ways:
 *  - the window surface (PRESENT_SURFACE): the canvas is SDL's own window
 *    framebuffer, which on X11 is an XImage in MIT-SHM shared memory, and a
 *    present is one XShmPutImage + XSync (under Xvfb 1600x1000 about 0.6 ms).
 *    SDL 2.26 on X11 backs the window surface with an OpenGL texture by
 *    default (SDL_FRAMEBUFFER_ACCELERATION); without a GPU, as under Xvfb,
 *    that is Mesa's llvmpipe rasterizing a full-window quad on the CPU and
 *    then copying it out: about 15 ms a frame, as much as the streaming
 *    texture + SDL_RenderPresent path below. So the hint is set to 0 (a
 *    user's SDL_FRAMEBUFFER_ACCELERATION in the environment still wins).
 *  - a renderer (PRESENT_RENDERER): an ARGB8888 surface uploaded to a
 *    streaming texture and presented. Used where the driver scales the
 *    window (HiDPI: drawable pixels != window points; the window surface
 *    would have only the points) or has no window surface.
 * Screenshots draw into an ARGB8888 surface and present nothing.
 * Only when the view says it is dirty (input, new data, a window event) is a
 * frame drawn; tvm_poll runs once per loop iteration, which waits at most
 * one 60 Hz frame for input.
 */
#include "app.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <SDL.h>
#include <SDL_image.h>

#include "model.h"
#include "plot.h"
#include "raster.h"
#include "text.h"
#include "view.h"

#define FONT_PT 13

static const char *const help_lines[] = {
    "Keys and mouse",
    "",
    "wheel\tzoom x by 2 around the cursor",
    "drag\tpan",
    "right-drag, shift-drag\tbox zoom (x, and y of that panel)",
    "double-click, r\treset zoom and y scales",
    "=  -  Left  Right\tzoom in, zoom out, pan",
    "l\tlog y",
    "o\ty autoscale ignores the outer 1% (outliers)",
    "x\tx axis: step / wall time / time since start",
    ",  .\tless / more smoothing (debiased EMA, raw line faint behind)",
    "/\tmetric filter (regex; Enter applies, empty clears, Esc cancels)",
    "1 .. 9, 0\tshow / hide run N (or click it in the legend); 0 shows all",
    "f\tfollow live (x range follows new data)",
    "p\tpause / resume updates from the source",
    "t\tshow superseded timelines of resumed runs",
    "b\tseveral ranks: band min..max + mean line / every rank's own line",
    "n\tcentre the next finding (triangle at the top: red critical, amber warning, blue info)",
    "i\tfindings list of the shown runs: j/k or Up/Down select and centre one, click jumps, i or Esc closes",
    "m\tlayer groups (grad_norm/layer.N, layers.N.attn, layer_N: a letter, . or _, the index) as heatmaps / lines",
    "\theatmap: a row per layer, cell = column max (log colour; l: linear), NaN/Inf cyan, hover for values",
    "space  [  ]  Home\treplay: play / pause, seek -/+ 10%, restart",
    "PageUp  PageDown\treplay faster / slower",
    "h  ?  F1\tthis help",
    "q  Esc\tquit (Esc closes the findings list first)",
};
#define NHELP (sizeof help_lines / sizeof help_lines[0])

typedef struct app {
    const tva_options *o;
    tvm_source *src;
    tvt_font *font;
    tvv_view *view;
    SDL_Window *win;
    enum { PRESENT_NONE, PRESENT_SURFACE, PRESENT_RENDERER } mode;
    SDL_Renderer *ren;              /* PRESENT_RENDERER */
    SDL_Texture *tex;
    SDL_Surface *winsurf;           /* PRESENT_SURFACE: SDL's, valid until a resize */
    SDL_Surface *surf;              /* our canvas, unless it is winsurf's pixels */
    tvr_canvas cv;
    double scale;
    int paused;
    /* replay */
    int64_t rp_first, rp_last;      /* wall time span of the runs */
    double rp_pos;                  /* ns into the span */
    double rp_speed;
    int rp_playing;
    int rp_started;                 /* the time limit was set at least once */
    double rp_applied;              /* rp_pos of the last tvm_set_time_limit */
    uint64_t rp_tick;               /* SDL_GetTicks64 of the last advance */
    /* input */
    int dragging, boxing, drag_x, box_x0, box_y0;
    int prompting, skip_slash;
    char prompt[256];
    char last_err[512];
} app;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Can view.c draw straight into the window surface? Its pixels must be
 * 32-bit xRGB/ARGB in that byte order (the raster writes 0xffRRGGBB and
 * never reads alpha back). */
static int direct_format(const SDL_Surface *s)
{
    return s->format->format == SDL_PIXELFORMAT_RGB888 || s->format->format == SDL_PIXELFORMAT_ARGB8888;
}

/* PRESENT_SURFACE: (re)fetch the window surface, which SDL replaces after
 * a resize, and draw into it, or into our own surface blitted there when
 * its format is not one the raster writes. */
static int surface_canvas(app *a)
{
    a->winsurf = SDL_GetWindowSurface(a->win);
    if (!a->winsurf)
        return -EIO;
    SDL_Surface *ws = a->winsurf;
    if (direct_format(ws)) {
        SDL_FreeSurface(a->surf);
        a->surf = NULL;
        tvr_canvas_init(&a->cv, ws->pixels, ws->w, ws->h, ws->pitch / 4);
        return 0;
    }
    if (!a->surf || a->surf->w != ws->w || a->surf->h != ws->h) {
        SDL_FreeSurface(a->surf);
        a->surf = SDL_CreateRGBSurfaceWithFormat(0, ws->w, ws->h, 32, SDL_PIXELFORMAT_ARGB8888);
        if (!a->surf)
            return -ENOMEM;
    }
    tvr_canvas_init(&a->cv, a->surf->pixels, ws->w, ws->h, a->surf->pitch / 4);
    return 0;
}

/* (Re)create the canvas at w x h pixels: the window surface (which has the
 * window's size whatever w x h say), or a surface plus, with a renderer, a
 * streaming texture. */
static int make_canvas(app *a, int w, int h)
{
    if (a->mode == PRESENT_SURFACE) {   /* before the size check: the old surface may be gone */
        int rc = surface_canvas(a);
        if (rc < 0)
            a->cv = (tvr_canvas){0};
        if (a->view)
            tvv_set_dirty(a->view);
        return rc;
    }
    if (w <= 0 || h <= 0)
        return -EINVAL;   /* minimised: keep what we have */
    if (a->surf && a->surf->w == w && a->surf->h == h)
        return 0;
    SDL_FreeSurface(a->surf);
    if (a->tex)
        SDL_DestroyTexture(a->tex);
    a->tex = NULL;
    a->surf = SDL_CreateRGBSurfaceWithFormat(0, w, h, 32, SDL_PIXELFORMAT_ARGB8888);
    if (!a->surf) {
        a->cv = (tvr_canvas){0};
        return -ENOMEM;
    }
    if (a->ren) {
        a->tex = SDL_CreateTexture(a->ren, SDL_PIXELFORMAT_ARGB8888, SDL_TEXTUREACCESS_STREAMING, w, h);
        if (!a->tex)
            return -EIO;
    }
    tvr_canvas_init(&a->cv, a->surf->pixels, w, h, a->surf->pitch / 4);
    if (a->view)
        tvv_set_dirty(a->view);
    return 0;
}

static void present(app *a)
{
    if (a->mode == PRESENT_SURFACE && a->winsurf) {
        if (a->surf)
            SDL_BlitSurface(a->surf, NULL, a->winsurf, NULL);
        SDL_UpdateWindowSurface(a->win);
        return;
    }
    if (!a->ren || !a->tex)
        return;
    SDL_UpdateTexture(a->tex, NULL, a->surf->pixels, a->surf->pitch);
    SDL_RenderClear(a->ren);
    SDL_RenderCopy(a->ren, a->tex, NULL, NULL);
    SDL_RenderPresent(a->ren);
}

/* Window size in points -> drawable pixels: the HiDPI scale. */
static void update_scale(app *a, int *pw, int *ph)
{
    int ww, wh;
    SDL_GetWindowSize(a->win, &ww, &wh);
    if (a->mode == PRESENT_SURFACE) {
        SDL_Surface *ws = SDL_GetWindowSurface(a->win);
        *pw = ws ? ws->w : ww;
        *ph = ws ? ws->h : wh;
    } else if (!a->ren || SDL_GetRendererOutputSize(a->ren, pw, ph) != 0 || *pw <= 0) {
        *pw = ww;
        *ph = wh;
    }
    a->scale = ww > 0 ? (double)*pw / ww : 1;
    if (a->scale < 1)
        a->scale = 1;
    tvt_set_size(a->font, (int)lround(FONT_PT * a->scale));
    if (a->view)
        tvv_set_scale(a->view, a->scale);
}

/* Does the driver draw the window at more pixels than points (HiDPI)? */
static int window_scaled(SDL_Window *win)
{
#if SDL_VERSION_ATLEAST(2, 26, 0)
    int ww, wh, pw, ph;
    SDL_GetWindowSize(win, &ww, &wh);
    SDL_GetWindowSizeInPixels(win, &pw, &ph);
    return pw != ww || ph != wh;
#else
    (void)win;
    return 0;
#endif
}

/* How frames reach the window: its surface when the driver has one at full
 * resolution, else a renderer (see the top of the file). */
static int open_presenter(app *a)
{
    if (!window_scaled(a->win)) {
        SDL_SetHint(SDL_HINT_FRAMEBUFFER_ACCELERATION, "0");
        if (SDL_GetWindowSurface(a->win)) {
            a->mode = PRESENT_SURFACE;
            return 0;
        }
    }
    a->ren = SDL_CreateRenderer(a->win, -1, 0);
    if (!a->ren)
        a->ren = SDL_CreateRenderer(a->win, -1, SDL_RENDERER_SOFTWARE);
    if (!a->ren) {
        fprintf(stderr, "trainscope-viewer: cannot create a renderer: %s\n", SDL_GetError());
        return -EIO;
    }
    a->mode = PRESENT_RENDERER;
    return 0;
}

/* What open_presenter chose, for the benchmark's report. */
static const char *present_name(const app *a)
{
    static char buf[64];
    SDL_RendererInfo ri;
    if (a->mode == PRESENT_SURFACE)
        return a->surf ? "window surface (blit)" : "window surface";
    if (a->mode == PRESENT_RENDERER && SDL_GetRendererInfo(a->ren, &ri) == 0) {
        snprintf(buf, sizeof buf, "renderer %s", ri.name);
        return buf;
    }
    return "none";
}

/* hidden: no window on screen; present: how frames get there (none for a
 * screenshot). */
static int open_window(app *a, int hidden, int present)
{
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        fprintf(stderr, "trainscope-viewer: cannot open a display: %s (set DISPLAY, run under xvfb-run, "
                "or set SDL_VIDEODRIVER=offscreen)\n", SDL_GetError());
        return -EIO;
    }
    Uint32 flags = SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI | (hidden ? SDL_WINDOW_HIDDEN : 0);
    a->win = SDL_CreateWindow("trainscope", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED,
                              a->o->width, a->o->height, flags);
    if (!a->win) {
        fprintf(stderr, "trainscope-viewer: cannot create a window: %s\n", SDL_GetError());
        return -EIO;
    }
    return present ? open_presenter(a) : 0;
}

/* Headless: wait until the source is usable (a collector answered) or
 * failed, at most connect_timeout_s. Returns 0 or -1 with a message. */
static int wait_source(app *a, char *err, size_t errlen)
{
    double deadline = now_s() + a->o->connect_timeout_s;
    for (;;) {
        int m = tvm_poll(a->src);
        if (m < 0) {
            snprintf(err, errlen, "%s", tvm_errmsg(a->src));
            return -1;
        }
        const char *msg = NULL;
        enum tvm_state st = tvm_state(a->src, &msg);
        if (st == TVM_READY)
            return 0;
        if (st == TVM_FAILED) {
            snprintf(err, errlen, "%s", msg && *msg ? msg : tvm_errmsg(a->src));
            return -1;
        }
        if (now_s() > deadline) {
            snprintf(err, errlen, "%s: no answer within %.0f s (%s)", a->o->source, a->o->connect_timeout_s,
                     msg && *msg ? msg : "is a collector running there?");
            return -1;
        }
        SDL_Delay(10);
    }
}

static void update_status(app *a)
{
    char s[256];
    if (a->o->replay > 0) {
        char pos[32], span[32];
        tvp_format_duration((int64_t)a->rp_pos, 1000000000, pos, sizeof pos);
        tvp_format_duration(a->rp_last - a->rp_first, 1000000000, span, sizeof span);
        snprintf(s, sizeof s, "replay %gx %s / %s%s%s", a->rp_speed, pos, span, a->rp_playing ? "" : " (paused)",
                 a->paused ? " | updates paused" : "");
    } else {
        snprintf(s, sizeof s, "%s", a->paused ? "updates paused (p)" : "live");
    }
    tvv_set_status(a->view, s);
}

static void replay_advance(app *a)
{
    uint64_t t = SDL_GetTicks64();
    if (a->rp_playing) {
        a->rp_pos += (double)(t - a->rp_tick) * 1e6 * a->rp_speed;
        double span = (double)(a->rp_last - a->rp_first);
        if (a->rp_pos >= span) {
            a->rp_pos = span;
            a->rp_playing = 0;
        }
    }
    a->rp_tick = t;
    if (a->rp_pos < 0)
        a->rp_pos = 0;
    if (a->rp_started && a->rp_pos == a->rp_applied)
        return;   /* paused or at the end, no seek: nothing to redraw */
    a->rp_started = 1;
    a->rp_applied = a->rp_pos;
    tvm_set_time_limit(a->src, a->rp_first + (int64_t)a->rp_pos);
    tvv_data_changed(a->view, TVM_CHANGED_POINTS | TVM_CHANGED_EVENTS);
}

static void handle_key(app *a, const SDL_KeyboardEvent *k, int *quit)
{
    SDL_Keycode c = k->keysym.sym;
    if (a->prompting) {
        if (c == SDLK_ESCAPE) {
            a->prompting = 0;
            SDL_StopTextInput();
            tvv_set_prompt(a->view, NULL);
        } else if (c == SDLK_RETURN || c == SDLK_KP_ENTER) {
            char err[256], line[600];
            if (tvv_set_filter(a->view, a->prompt, err, sizeof err) < 0) {
                /* stay in the prompt, with the reason, so it can be fixed */
                snprintf(line, sizeof line, "%s   <- %s", a->prompt, err);
                tvv_set_prompt(a->view, line);
            } else {
                a->prompting = 0;
                SDL_StopTextInput();
                tvv_set_prompt(a->view, NULL);
            }
        } else if (c == SDLK_BACKSPACE) {
            size_t n = strlen(a->prompt);
            while (n > 0 && (a->prompt[n - 1] & 0xc0) == 0x80)
                n--;
            if (n > 0)
                n--;
            a->prompt[n] = 0;
            tvv_set_prompt(a->view, a->prompt);
        }
        return;
    }
    int shift = (k->keysym.mod & KMOD_SHIFT) != 0;
    int w2 = a->cv.w / 2;
    switch (c) {
    case SDLK_q: *quit = 1; break;
    case SDLK_ESCAPE:
        if (tvv_findings_list_open(a->view))
            tvv_toggle_findings_list(a->view);   /* Esc closes the list first */
        else
            *quit = 1;
        break;
    case SDLK_h: case SDLK_F1: case SDLK_QUESTION: tvv_toggle_help(a->view); break;
    case SDLK_SLASH:
        if (shift) {
            tvv_toggle_help(a->view);
            break;
        }
        a->prompting = 1;
        a->prompt[0] = 0;
        a->skip_slash = 1;   /* the '/' that opened the prompt may also come as text */
        SDL_StartTextInput();
        tvv_set_prompt(a->view, "");
        break;
    case SDLK_r: tvv_reset(a->view); break;
    case SDLK_l: tvv_toggle_log_y(a->view); break;
    case SDLK_o: tvv_toggle_outliers(a->view); break;
    case SDLK_x: tvv_cycle_x_mode(a->view); break;
    case SDLK_t: tvv_toggle_timelines(a->view); break;
    case SDLK_n: tvv_next_finding(a->view); break;
    case SDLK_b: tvv_toggle_rank_lines(a->view); break;
    case SDLK_m: tvv_toggle_heatmaps(a->view); break;
    case SDLK_i: tvv_toggle_findings_list(a->view); break;
    case SDLK_j: case SDLK_k: case SDLK_UP: case SDLK_DOWN:
        if (tvv_findings_list_open(a->view))
            tvv_findings_move(a->view, c == SDLK_j || c == SDLK_DOWN ? 1 : -1);
        break;
    case SDLK_COMMA: tvv_set_smoothing(a->view, tvv_smoothing(a->view) - 0.1 < 0.05 ? 0 : tvv_smoothing(a->view) - 0.1); break;
    case SDLK_PERIOD: {
        double w = tvv_smoothing(a->view);
        tvv_set_smoothing(a->view, w >= 0.9 ? w + (0.999 - w) / 2 : w + 0.1);
        break;
    }
    case SDLK_EQUALS: case SDLK_PLUS: case SDLK_KP_PLUS: tvv_zoom(a->view, w2, 0.8); break;
    case SDLK_MINUS: case SDLK_KP_MINUS: tvv_zoom(a->view, w2, 1.25); break;
    case SDLK_LEFT: tvv_pan(a->view, a->cv.w / 10); break;
    case SDLK_RIGHT: tvv_pan(a->view, -a->cv.w / 10); break;
    case SDLK_0: tvv_toggle_run(a->view, -1); break;
    case SDLK_f: tvv_reset(a->view); break;
    case SDLK_p: a->paused = !a->paused; break;
    case SDLK_SPACE:
        if (a->o->replay > 0) {
            a->rp_playing = !a->rp_playing;
            a->rp_tick = SDL_GetTicks64();
        }
        break;
    case SDLK_LEFTBRACKET: case SDLK_RIGHTBRACKET:
        if (a->o->replay > 0) {
            a->rp_pos += (c == SDLK_LEFTBRACKET ? -0.1 : 0.1) * (double)(a->rp_last - a->rp_first);
            if (a->rp_pos > (double)(a->rp_last - a->rp_first))
                a->rp_pos = (double)(a->rp_last - a->rp_first);
        }
        break;
    case SDLK_HOME:
        if (a->o->replay > 0) {
            a->rp_pos = 0;
            a->rp_playing = 1;
        }
        break;
    case SDLK_PAGEUP: case SDLK_PAGEDOWN:
        if (a->o->replay > 0) {
            a->rp_speed *= c == SDLK_PAGEUP ? 2 : 0.5;
            a->rp_speed = a->rp_speed < 1 ? 1 : a->rp_speed > 1000 ? 1000 : a->rp_speed;
        }
        break;
    default:
        if (c >= SDLK_1 && c <= SDLK_9)
            tvv_toggle_run_nth(a->view, (int)(c - SDLK_1));
        break;
    }
    tvv_set_dirty(a->view);
}

static void handle_event(app *a, const SDL_Event *e, int *quit)
{
    int mx, my;
    switch (e->type) {
    case SDL_QUIT:
        *quit = 1;
        break;
    case SDL_WINDOWEVENT:
        if (e->window.event == SDL_WINDOWEVENT_SIZE_CHANGED || e->window.event == SDL_WINDOWEVENT_EXPOSED) {
            int pw, ph;
            update_scale(a, &pw, &ph);
            make_canvas(a, pw, ph);
            tvv_set_dirty(a->view);
        } else if (e->window.event == SDL_WINDOWEVENT_LEAVE) {
            tvv_hover(a->view, -1, -1);
        }
        break;
    case SDL_TEXTINPUT:
        if (a->skip_slash && strcmp(e->text.text, "/") == 0) {
            a->skip_slash = 0;
            break;
        }
        a->skip_slash = 0;
        if (a->prompting && strlen(a->prompt) + strlen(e->text.text) < sizeof a->prompt) {
            strcat(a->prompt, e->text.text);
            tvv_set_prompt(a->view, a->prompt);
        }
        break;
    case SDL_KEYDOWN:
        handle_key(a, &e->key, quit);
        break;
    case SDL_MOUSEWHEEL:
        SDL_GetMouseState(&mx, &my);
        if (e->wheel.y != 0)
            tvv_zoom(a->view, (int)(mx * a->scale), pow(0.8, e->wheel.y));
        break;
    case SDL_MOUSEBUTTONDOWN: {
        int x = (int)(e->button.x * a->scale), y = (int)(e->button.y * a->scale);
        int shift = (SDL_GetModState() & KMOD_SHIFT) != 0;
        if (e->button.button == SDL_BUTTON_LEFT && tvv_findings_click(a->view, x, y))
            break;   /* on the findings list: an entry selected, or nothing under it */
        if (e->button.button == SDL_BUTTON_LEFT && e->button.clicks == 2) {
            tvv_reset(a->view);
        } else if (e->button.button == SDL_BUTTON_RIGHT || (e->button.button == SDL_BUTTON_LEFT && shift)) {
            a->boxing = 1;
            a->box_x0 = x;
            a->box_y0 = y;
        } else if (e->button.button == SDL_BUTTON_LEFT) {
            int run = tvv_legend_hit(a->view, x, y);
            if (run >= 0)
                tvv_toggle_run(a->view, run);
            else {
                a->dragging = 1;
                a->drag_x = x;
            }
        }
        break;
    }
    case SDL_MOUSEMOTION: {
        int x = (int)(e->motion.x * a->scale), y = (int)(e->motion.y * a->scale);
        if (a->dragging) {
            tvv_pan(a->view, x - a->drag_x);
            a->drag_x = x;
        }
        if (a->boxing)
            tvv_set_box(a->view, 1, a->box_x0, a->box_y0, x, y);
        tvv_hover(a->view, x, y);
        break;
    }
    case SDL_MOUSEBUTTONUP: {
        int x = (int)(e->button.x * a->scale), y = (int)(e->button.y * a->scale);
        if (a->boxing)
            tvv_box_zoom(a->view, a->box_x0, a->box_y0, x, y);
        a->boxing = 0;
        a->dragging = 0;
        break;
    }
    default:
        break;
    }
}

/* Render when dirty; returns the view's error code. ms (when not NULL)
 * gets the time spent drawing in ms[0] and presenting in ms[1]. */
static int frame(app *a, int force, int64_t *points, double ms[2])
{
    if (!a->cv.px || (!force && !tvv_dirty(a->view)))
        return 0;
    double t0 = now_s();
    int rc = tvv_render(a->view, &a->cv, points);
    double t1 = now_s();
    present(a);
    if (ms) {
        ms[0] = (t1 - t0) * 1e3;
        ms[1] = (now_s() - t1) * 1e3;
    }
    return rc;
}

static int interactive(app *a)
{
    int quit = 0, pw, ph;
    update_scale(a, &pw, &ph);
    if (make_canvas(a, pw, ph) < 0)
        return 1;
    while (!quit) {
        SDL_Event e;
        if (SDL_WaitEventTimeout(&e, 16)) {
            do
                handle_event(a, &e, &quit);
            while (SDL_PollEvent(&e));
        }
        if (!a->paused) {
            int m = tvm_poll(a->src);
            if (m < 0) {
                if (strcmp(a->last_err, tvm_errmsg(a->src)) != 0) {
                    snprintf(a->last_err, sizeof a->last_err, "%s", tvm_errmsg(a->src));
                    fprintf(stderr, "trainscope-viewer: %s\n", a->last_err);
                    tvv_set_error(a->view, a->last_err);
                }
            } else if (m > 0) {
                tvv_data_changed(a->view, (unsigned)m);
            }
        }
        if (a->o->replay > 0)
            replay_advance(a);
        update_status(a);
        frame(a, 0, NULL, NULL);
    }
    return 0;
}

static long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int cmp_dbl(const void *x, const void *y)
{
    double p = *(const double *)x, q = *(const double *)y;
    return p < q ? -1 : p > q;
}

/* N frames of scripted zoom and pan around the middle of the data. */
/* p50 / p99 / max of v[0..n) (sorted in place) into out[3]. */
static void percentiles(double *v, size_t n, double out[3])
{
    out[0] = out[1] = out[2] = 0;
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_dbl);
    out[0] = v[n / 2];
    out[1] = v[(size_t)((double)n * 0.99)];
    out[2] = v[n - 1];
}

/* N frames of scripted pan and zoom around the middle of the data. Pan
 * frames and zoom frames are also reported apart: a pan reuses the model's
 * columns, a zoom by 2 recomputes them. */
static int bench(app *a, double t_open)
{
    size_t n = (size_t)a->o->bench_frames, npan = 0, nzoom = 0;
    double *ms = malloc(n * sizeof *ms), *rms = malloc(n * sizeof *rms), *pms = malloc(n * sizeof *pms);
    double *pan = malloc(n * sizeof *pan), *zoom = malloc(n * sizeof *zoom);
    int64_t total_points = 0, pts = 0;
    int rc = 1;
    if (!ms || !rms || !pms || !pan || !zoom || make_canvas(a, a->o->width, a->o->height) < 0)
        goto out;
    double t0 = now_s();
    frame(a, 1, &pts, NULL);
    double first = now_s() - t_open;
    fprintf(stdout, "first frame: %.1f ms after open (render %.1f ms), %" PRId64 " points represented\n",
            first * 1e3, (now_s() - t0) * 1e3, pts);
    /* A 200-frame cycle: zoom in by 2 every 10th frame while dragging
     * right, drag right, drag left, zoom back out while dragging left. */
    int w2 = a->cv.w / 2, d = (int)(7 * a->scale);
    for (size_t i = 0; i < n; i++) {
        size_t ph = i % 200;
        int zoomed = (ph < 50 || ph >= 150) && ph % 10 == 0;
        SDL_PumpEvents();   /* the shown window's events: not part of the frame */
        SDL_FlushEvents(SDL_FIRSTEVENT, SDL_LASTEVENT);
        if (zoomed)
            tvv_zoom(a->view, w2, ph < 50 ? 0.5 : 2);
        else
            tvv_pan(a->view, ph < 100 ? -d : d);
        double s = now_s(), fm[2] = {0, 0};
        int m = tvm_poll(a->src);
        if (m > 0)
            tvv_data_changed(a->view, (unsigned)m);
        pts = 0;
        frame(a, 1, &pts, fm);
        ms[i] = (now_s() - s) * 1e3;
        rms[i] = fm[0];
        pms[i] = fm[1];
        if (zoomed)
            zoom[nzoom++] = ms[i];
        else
            pan[npan++] = ms[i];
        total_points += pts;
    }
    double all[3], draw[3], pres[3], p[3], z[3], hd[3], hp[3];
    percentiles(ms, n, all);
    percentiles(rms, n, draw);
    percentiles(pms, n, pres);
    percentiles(pan, npan, p);
    percentiles(zoom, nzoom, z);
    /* Then the mouse alone: the hover crosshair moving 5 px a frame across
     * the middle of the window, nothing else changing (at most 200 frames,
     * reusing the arrays). */
    size_t nh = n < 200 ? n : 200;
    for (size_t i = 0; i < nh; i++) {
        SDL_PumpEvents();
        SDL_FlushEvents(SDL_FIRSTEVENT, SDL_LASTEVENT);
        tvv_hover(a->view, a->cv.w / 4 + (int)(5 * i) % (a->cv.w / 2), a->cv.h / 2);
        double fm[2] = {0, 0};
        frame(a, 1, NULL, fm);
        rms[i] = fm[0];
        pms[i] = fm[1];
    }
    percentiles(rms, nh, hd);
    percentiles(pms, nh, hp);
    fprintf(stdout, "frames %zu at %dx%d: p50 %.2f ms, p99 %.2f ms, max %.2f ms (drawing alone: p50 %.2f ms, "
            "p99 %.2f ms; present alone, %s: p50 %.2f ms, p99 %.2f ms); pan frames (%zu) p50 %.2f p99 %.2f ms; "
            "zoom frames (%zu) p50 %.2f p99 %.2f ms; points represented per frame %.0f; panels %zu; VmRSS %ld kB\n",
            n, a->cv.w, a->cv.h, all[0], all[1], all[2], draw[0], draw[1], present_name(a), pres[0], pres[1], npan,
            p[0], p[1], nzoom, z[0], z[1], (double)total_points / (double)n, tvv_panel_count(a->view), vm_rss_kb());
    fprintf(stdout, "hover frames %zu (crosshair moving, nothing else): drawing p50 %.2f ms, p99 %.2f ms; "
            "present p50 %.2f ms, p99 %.2f ms\n", nh, hd[0], hd[1], hp[0], hp[1]);
    rc = 0;
out:
    free(ms);
    free(rms);
    free(pms);
    free(pan);
    free(zoom);
    return rc;
}

/* Anything drawable? 0 when every visible series is empty or NaN only. */
static int drawable(app *a)
{
    for (size_t i = 0; i < tvm_series_count(a->src); i++) {
        const tvm_series *s = tvm_series_at(a->src, i);
        if (s->count > s->n_nan)
            return 1;
    }
    return 0;
}

/* --keys: each character goes through the window's own key handling, as
 * the key press SDL would deliver (and its text while a prompt is open);
 * '\n' is Enter, '\e' Escape. */
static void type_keys(app *a, const char *keys)
{
    int quit = 0;
    for (const char *k = keys; k && *k; k++) {
        SDL_Event e = {0};
        if (a->prompting && *k != '\n' && *k != 27) {
            e.type = SDL_TEXTINPUT;
            e.text.text[0] = *k;
        } else {
            e.type = SDL_KEYDOWN;
            e.key.keysym.sym = *k == '\n' ? SDLK_RETURN : *k == 27 ? SDLK_ESCAPE : (SDL_Keycode)(unsigned char)*k;
            if (*k == '?')
                e.key.keysym.mod = KMOD_SHIFT;
        }
        handle_event(a, &e, &quit);
    }
}

static int screenshot(app *a)
{
    int64_t pts = 0;
    if (make_canvas(a, a->o->width, a->o->height) < 0)
        return 1;
    if (a->o->have_hover || a->o->keys) {
        /* the panels must be laid out before a position means anything */
        tvv_render(a->view, &a->cv, NULL);
        if (a->o->have_hover)
            tvv_hover(a->view, a->o->hover_x, a->o->hover_y);
        type_keys(a, a->o->keys);
    }
    if (a->o->print_layout)   /* the geometry of the frame that is saved */
        tvv_set_layout_out(a->view, stdout);
    int rc = frame(a, 1, &pts, NULL);
    if (IMG_SavePNG(a->surf, a->o->screenshot) != 0) {
        fprintf(stderr, "trainscope-viewer: cannot write %s: %s\n", a->o->screenshot, IMG_GetError());
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "trainscope-viewer: %s\n", tvm_errmsg(a->src));
        return 1;
    }
    if (!drawable(a)) {
        fprintf(stderr, "trainscope-viewer: nothing to plot in %s: %s\n", a->o->source,
                tvm_series_count(a->src) == 0 ? (tvm_run_count(a->src) ? "the runs have no points" : "no runs")
                                              : "every series has only NaN values");
        return 1;
    }
    return 0;
}

/* The source could not be opened: say so on stderr and, in a window, in
 * the middle of it until it is closed. */
static int show_open_error(app *a, const char *msg, int headless)
{
    fprintf(stderr, "trainscope-viewer: %s\n", msg);
    if (headless)
        return 1;
    if (open_window(a, 0, 1) < 0)
        return 1;
    int pw, ph, quit = 0;
    update_scale(a, &pw, &ph);
    if (make_canvas(a, pw, ph) < 0)
        return 1;
    while (!quit) {
        tvr_reset_clip(&a->cv);
        tvr_fill(&a->cv, (tvr_rect){0, 0, a->cv.w, a->cv.h}, 0xffffffffu);
        int th = tvt_height(a->font);
        tvt_draw(a->font, &a->cv, a->cv.w / 2, a->cv.h / 2 - th, msg, 0xffc00000u, TVT_CENTER);
        tvt_draw(a->font, &a->cv, a->cv.w / 2, a->cv.h / 2 + th, "press q to quit", 0xff707070u, TVT_CENTER);
        present(a);
        SDL_Event e;
        if (SDL_WaitEvent(&e)) {
            if (e.type == SDL_QUIT || (e.type == SDL_KEYDOWN && (e.key.keysym.sym == SDLK_q || e.key.keysym.sym == SDLK_ESCAPE)))
                quit = 1;
            else if (e.type == SDL_WINDOWEVENT) {
                update_scale(a, &pw, &ph);
                make_canvas(a, pw, ph);
            }
        }
    }
    return 1;
}

int tva_main(const tva_options *o)
{
    app a = {.o = o, .scale = 1, .rp_speed = o->replay};
    char err[1024];
    int rc = 1, headless = o->screenshot || o->bench_frames;
    double t_open = now_s();
    if (tvt_open(&a.font, FONT_PT, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope-viewer: %s\n", err);
        return 1;
    }
    tvm_open_opts mo = {.runs = o->nruns ? o->runs : NULL, .nruns = o->nruns};
    if (tvm_open(&a.src, o->source, &mo, err, sizeof err) < 0) {
        rc = show_open_error(&a, err, headless);
        goto out;
    }
    if (headless && wait_source(&a, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope-viewer: %s\n", err);
        goto out;
    }
    /* the benchmark shows its window: X drops what is drawn into a hidden one */
    if (open_window(&a, o->screenshot != NULL, !o->screenshot) < 0)
        goto out;
    SDL_StopTextInput();   /* on by default in SDL2; only the filter prompt wants text */
    if (!headless) {
        int pw, ph;
        update_scale(&a, &pw, &ph);
    }
    tvv_options vo = {.metric_glob = o->metric_glob, .all_points = o->all_points, .scale = a.scale};
    if (tvv_create(&a.view, a.src, a.font, &vo) < 0) {
        fprintf(stderr, "trainscope-viewer: out of memory\n");
        goto out;
    }
    tvv_set_help(a.view, help_lines, NHELP);
    for (int i = 0; i < o->x_mode; i++)
        tvv_cycle_x_mode(a.view);
    if (o->log_y)
        tvv_toggle_log_y(a.view);
    if (o->all_timelines)
        tvv_toggle_timelines(a.view);
    tvv_set_smoothing(a.view, o->smoothing);
    if (o->have_x_range)
        tvv_set_x_range(a.view, o->x_from, o->x_to);
    if (o->replay > 0) {
        tvv_time_bounds(a.view, &a.rp_first, &a.rp_last);
        if (a.rp_first > a.rp_last)
            a.rp_first = a.rp_last = 0;
        a.rp_playing = 1;
        a.rp_tick = SDL_GetTicks64();
        replay_advance(&a);
    }
    update_status(&a);
    if (o->screenshot)
        rc = screenshot(&a);
    else if (o->bench_frames)
        rc = bench(&a, t_open);
    else
        rc = interactive(&a);
out:
    tvv_destroy(a.view);
    if (a.tex)
        SDL_DestroyTexture(a.tex);
    SDL_FreeSurface(a.surf);
    if (a.ren)
        SDL_DestroyRenderer(a.ren);
    if (a.win)
        SDL_DestroyWindow(a.win);
    tvm_close(a.src);
    tvt_close(a.font);
    SDL_Quit();
    return rc;
}
