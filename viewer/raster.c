/* raster.c - the software canvas: fills, blends and the integer line
 * rasterizer (see raster.h for the rules it keeps). */
#include "raster.h"

#include <stdlib.h>

void tvr_canvas_init(tvr_canvas *c, uint32_t *px, int w, int h, int pitch_px)
{
    c->px = px;
    c->w = w;
    c->h = h;
    c->pitch = pitch_px;
    tvr_reset_clip(c);
}

void tvr_reset_clip(tvr_canvas *c)
{
    c->clip = (tvr_rect){0, 0, c->w, c->h};
}

static tvr_rect intersect(tvr_rect a, tvr_rect b)
{
    int x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
    int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
    int y1 = a.y + a.h < b.y + b.h ? a.y + a.h : b.y + b.h;
    if (x1 < x0)
        x1 = x0;
    if (y1 < y0)
        y1 = y0;
    return (tvr_rect){x0, y0, x1 - x0, y1 - y0};
}

void tvr_set_clip(tvr_canvas *c, tvr_rect r)
{
    c->clip = intersect(r, (tvr_rect){0, 0, c->w, c->h});
}

static inline int inside(const tvr_canvas *c, int64_t x, int64_t y)
{
    return x >= c->clip.x && x < c->clip.x + c->clip.w && y >= c->clip.y && y < c->clip.y + c->clip.h;
}

/* Mix src into dst with src's alpha; the result is opaque. */
static inline uint32_t mix(uint32_t dst, uint32_t src)
{
    uint32_t a = src >> 24, na = 255 - a;
    uint32_t r = (((src >> 16) & 255) * a + ((dst >> 16) & 255) * na + 127) / 255;
    uint32_t g = (((src >> 8) & 255) * a + ((dst >> 8) & 255) * na + 127) / 255;
    uint32_t b = ((src & 255) * a + (dst & 255) * na + 127) / 255;
    return 0xff000000u | r << 16 | g << 8 | b;
}

static inline void plot(tvr_canvas *c, int64_t x, int64_t y, uint32_t argb, int blend)
{
    if (!inside(c, x, y))
        return;
    uint32_t *p = &c->px[(size_t)y * (size_t)c->pitch + (size_t)x];
    *p = blend ? mix(*p, argb) : (argb | 0xff000000u);
}

void tvr_fill(tvr_canvas *c, tvr_rect r, uint32_t argb)
{
    r = intersect(r, c->clip);
    for (int y = r.y; y < r.y + r.h; y++) {
        uint32_t *row = &c->px[(size_t)y * (size_t)c->pitch];
        for (int x = r.x; x < r.x + r.w; x++)
            row[x] = argb | 0xff000000u;
    }
}

void tvr_blend_fill(tvr_canvas *c, tvr_rect r, uint32_t argb)
{
    r = intersect(r, c->clip);
    for (int y = r.y; y < r.y + r.h; y++) {
        uint32_t *row = &c->px[(size_t)y * (size_t)c->pitch];
        for (int x = r.x; x < r.x + r.w; x++)
            row[x] = mix(row[x], argb);
    }
}

void tvr_outline(tvr_canvas *c, tvr_rect r, uint32_t argb)
{
    if (r.w <= 0 || r.h <= 0)
        return;
    tvr_fill(c, (tvr_rect){r.x, r.y, r.w, 1}, argb);
    tvr_fill(c, (tvr_rect){r.x, r.y + r.h - 1, r.w, 1}, argb);
    tvr_fill(c, (tvr_rect){r.x, r.y, 1, r.h}, argb);
    tvr_fill(c, (tvr_rect){r.x + r.w - 1, r.y, 1, r.h}, argb);
}

/* floor(a / b) for b > 0. */
static inline int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* A DDA along the major axis: step i (0..n) is at major = m0 + i*sm and
 * minor = n0 + floor((2*i*dn + n) / (2n)), i.e. the exact line rounded half
 * up. Only the steps whose major coordinate lies in [lo, hi] (the clip along
 * the major axis) are visited, so a far-off end point costs nothing. */
static void dda(tvr_canvas *c, int64_t m0, int64_t n0, int64_t dm, int64_t dn, int x_major,
                uint32_t argb, int blend)
{
    int64_t n = dm < 0 ? -dm : dm, sm = dm < 0 ? -1 : 1;
    int64_t lo = x_major ? c->clip.x : c->clip.y;
    int64_t hi = lo + (x_major ? c->clip.w : c->clip.h) - 1;
    /* i range with lo <= m0 + i*sm <= hi */
    int64_t ilo, ihi;
    if (sm > 0) {
        ilo = lo - m0;
        ihi = hi - m0;
    } else {
        ilo = m0 - hi;
        ihi = m0 - lo;
    }
    if (ilo < 0)
        ilo = 0;
    if (ihi > n)
        ihi = n;
    for (int64_t i = ilo; i <= ihi; i++) {
        int64_t m = m0 + i * sm;
        int64_t mn = n == 0 ? n0 : n0 + floordiv(2 * i * dn + n, 2 * n);
        if (x_major)
            plot(c, m, mn, argb, blend);
        else
            plot(c, mn, m, argb, blend);
    }
}

void tvr_line(tvr_canvas *c, int x0, int y0, int x1, int y1, uint32_t argb, int blend)
{
    int64_t dx = (int64_t)x1 - x0, dy = (int64_t)y1 - y0;
    if ((dx < 0 ? -dx : dx) >= (dy < 0 ? -dy : dy))
        dda(c, x0, y0, dx, dy, 1, argb, blend);
    else
        dda(c, y0, x0, dy, dx, 0, argb, blend);
}

void tvr_vseg(tvr_canvas *c, int x, int y0, int y1, uint32_t argb, int blend)
{
    tvr_line(c, x, y0, x, y1, argb, blend);
}

void tvr_dashed_v(tvr_canvas *c, int x, int y0, int y1, int on, int off, uint32_t argb)
{
    if (y1 < y0) {
        int t = y0;
        y0 = y1;
        y1 = t;
    }
    for (int y = y0; y <= y1; y++)
        if ((y - y0) % (on + off) < on)
            plot(c, x, y, argb, (argb >> 24) != 255);
}

void tvr_dashed_h(tvr_canvas *c, int y, int x0, int x1, int on, int off, uint32_t argb)
{
    if (x1 < x0) {
        int t = x0;
        x0 = x1;
        x1 = t;
    }
    for (int x = x0; x <= x1; x++)
        if ((x - x0) % (on + off) < on)
            plot(c, x, y, argb, (argb >> 24) != 255);
}

void tvr_blit_mask(tvr_canvas *c, const uint8_t *mask, int w, int h, int x, int y, uint32_t argb)
{
    tvr_rect r = intersect((tvr_rect){x, y, w, h}, c->clip);
    uint32_t a = argb >> 24, rgb = argb & 0xffffffu;
    for (int yy = r.y; yy < r.y + r.h; yy++) {
        const uint8_t *s = &mask[(size_t)(yy - y) * (size_t)w];
        uint32_t *d = &c->px[(size_t)yy * (size_t)c->pitch];
        for (int xx = r.x; xx < r.x + r.w; xx++) {
            uint32_t m = s[xx - x];
            if (m)
                d[xx] = mix(d[xx], rgb | (m * a + 127) / 255 << 24);
        }
    }
}
