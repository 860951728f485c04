/* raster.h - a software canvas: an ARGB8888 pixel buffer (usually the pixels
 * of an SDL_Surface, but this module knows nothing about SDL) and the integer
 * primitives the plots are drawn with.
 *
 * The data lines use tvr_line, an integer DDA with a fixed rounding rule and
 * no antialiasing: the pixels of a segment depend only on its two end
 * points and the clip rectangle, never on what was drawn before. That is what
 * lets the M4 drawing of a series equal the drawing of every point (see
 * plot.h). Clipping never moves a pixel: a clipped segment sets exactly the
 * pixels of the unclipped one that fall inside the clip rectangle, and costs
 * only the clipped length.
 *
 * Colours are 0xAARRGGBB. Alpha is used only by tvr_blend*, which mixes into
 * the (opaque) canvas.
 */
#ifndef TRAINSCOPE_VIEWER_RASTER_H
#define TRAINSCOPE_VIEWER_RASTER_H

#include <stdint.h>

typedef struct tvr_rect {
    int x, y, w, h;
} tvr_rect;

typedef struct tvr_canvas {
    uint32_t *px;       /* row-major, not owned */
    int w, h;
    int pitch;          /* in pixels (not bytes) */
    tvr_rect clip;      /* every primitive stays inside; tvr_canvas_init sets the whole canvas */
} tvr_canvas;

void tvr_canvas_init(tvr_canvas *c, uint32_t *px, int w, int h, int pitch_px);
/* Set the clip to r intersected with the canvas. */
void tvr_set_clip(tvr_canvas *c, tvr_rect r);
void tvr_reset_clip(tvr_canvas *c);

void tvr_fill(tvr_canvas *c, tvr_rect r, uint32_t argb);
/* Mix argb (its alpha as weight) into the rectangle. */
void tvr_blend_fill(tvr_canvas *c, tvr_rect r, uint32_t argb);
void tvr_outline(tvr_canvas *c, tvr_rect r, uint32_t argb);

/* Segment (x0,y0)-(x1,y1), both ends included. Coordinates may lie far
 * outside the canvas (up to +-2^28). blend: mix with the colour's alpha
 * instead of overwriting. */
void tvr_line(tvr_canvas *c, int x0, int y0, int x1, int y1, uint32_t argb, int blend);
/* Column x from row y0 to y1 (either order), the same pixels tvr_line draws. */
void tvr_vseg(tvr_canvas *c, int x, int y0, int y1, uint32_t argb, int blend);
/* Dashed lines for grid and markers: on pixels on, off pixels off. */
void tvr_dashed_v(tvr_canvas *c, int x, int y0, int y1, int on, int off, uint32_t argb);
void tvr_dashed_h(tvr_canvas *c, int y, int x0, int x1, int on, int off, uint32_t argb);

/* Paint argb through an 8-bit coverage mask (a glyph) at (x, y). */
void tvr_blit_mask(tvr_canvas *c, const uint8_t *mask, int w, int h, int x, int y, uint32_t argb);

#endif
