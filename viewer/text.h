/* text.h - UI text: a system font found through fontconfig (DejaVu Sans,
 * from Debian's fonts-dejavu-core), rasterized by SDL2_ttf into a glyph
 * cache of 8-bit coverage masks, painted onto a tvr_canvas in any colour.
 * After the first frame, drawing text allocates nothing.
 */
#ifndef TRAINSCOPE_VIEWER_TEXT_H
#define TRAINSCOPE_VIEWER_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "raster.h"

typedef struct tvt_font tvt_font;

/* Find the font and open it at px pixels. On failure *out is NULL and err
 * says why (no font found names the package to install). */
int tvt_open(tvt_font **out, int px, char *err, size_t errlen);
void tvt_close(tvt_font *f);
/* Change the size (HiDPI scale, window resize); drops the glyph cache. */
int tvt_set_size(tvt_font *f, int px);
int tvt_size(const tvt_font *f);
int tvt_height(const tvt_font *f);      /* line height in pixels */
int tvt_width(tvt_font *f, const char *utf8);

#define TVT_LEFT 0
#define TVT_CENTER 1
#define TVT_RIGHT 2
/* Draw one line with its top at y; x is the left edge, centre or right edge
 * by align. Returns the width drawn. */
int tvt_draw(tvt_font *f, tvr_canvas *cv, int x, int y, const char *utf8, uint32_t argb, int align);

#endif
