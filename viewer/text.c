/* text.c - fontconfig lookup, SDL2_ttf glyphs and the glyph cache.
 *
 * Glyphs are rendered white with TTF_RenderGlyph32_Blended and kept as
 * coverage masks in an open-addressed table keyed by code point; colour is
 * applied when painting. Kerning is not applied (UI labels don't need it),
 * which keeps a string's width the sum of cached advances.
 */
#include "text.h"

#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <SDL.h>
#include <SDL_ttf.h>

#define CACHE_SLOTS 1024   /* power of two; more distinct glyphs than a UI shows */

typedef struct glyph {
    uint32_t cp;           /* 0: empty slot */
    int w, h, advance;
    uint8_t *mask;         /* w*h coverage, NULL for blank glyphs */
} glyph;

struct tvt_font {
    TTF_Font *ttf;
    int px;
    glyph cache[CACHE_SLOTS];
};

/* The path of DejaVu Sans (or what fontconfig substitutes), malloc'd. */
static char *find_font(char *err, size_t errlen)
{
    char *path = NULL;
    FcPattern *pat = NULL, *match = NULL;
    if (!FcInit()) {
        snprintf(err, errlen, "fontconfig could not be initialised");
        return NULL;
    }
    pat = FcNameParse((const FcChar8 *)"DejaVu Sans:style=Book");
    if (!pat)
        goto nofont;
    FcPatternAddBool(pat, FC_SCALABLE, FcTrue);
    FcConfigSubstitute(NULL, pat, FcMatchPattern);
    FcDefaultSubstitute(pat);
    FcResult res;
    match = FcFontMatch(NULL, pat, &res);
    FcChar8 *file = NULL;
    if (!match || FcPatternGetString(match, FC_FILE, 0, &file) != FcResultMatch || !file)
        goto nofont;
    path = strdup((const char *)file);
    FcPatternDestroy(match);
    FcPatternDestroy(pat);
    return path;
nofont:
    if (match)
        FcPatternDestroy(match);
    if (pat)
        FcPatternDestroy(pat);
    snprintf(err, errlen, "no font found through fontconfig (DejaVu Sans): install the Debian "
             "package fonts-dejavu-core");
    return NULL;
}

static void drop_cache(tvt_font *f)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(f->cache[i].mask);
        f->cache[i] = (glyph){0};
    }
}

int tvt_open(tvt_font **out, int px, char *err, size_t errlen)
{
    *out = NULL;
    char *path = find_font(err, errlen);
    if (!path)
        return -ENOENT;
    tvt_font *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        free(path);
        return -ENOMEM;
    }
    if (TTF_Init() != 0) {   /* counted: tvt_close's TTF_Quit undoes exactly this one */
        snprintf(err, errlen, "SDL2_ttf: %s", TTF_GetError());
        free(path);
        free(f);
        return -EIO;
    }
    f->px = px > 4 ? px : 4;
    f->ttf = TTF_OpenFont(path, f->px);
    if (!f->ttf) {
        snprintf(err, errlen, "cannot open the font %s: %s (reinstall fonts-dejavu-core)", path, TTF_GetError());
        goto fail;
    }
    free(path);
    *out = f;
    return 0;
fail:
    TTF_Quit();
    free(path);
    free(f);
    return -EIO;
}

void tvt_close(tvt_font *f)
{
    if (!f)
        return;
    drop_cache(f);
    TTF_CloseFont(f->ttf);
    TTF_Quit();
    FcFini();   /* fontconfig's caches, so leak checkers see only real leaks */
    free(f);
}

int tvt_set_size(tvt_font *f, int px)
{
    px = px > 4 ? px : 4;
    if (px == f->px)
        return 0;
    if (TTF_SetFontSize(f->ttf, px) != 0)
        return -EIO;
    f->px = px;
    drop_cache(f);
    return 0;
}

int tvt_size(const tvt_font *f)
{
    return f->px;
}

int tvt_height(const tvt_font *f)
{
    return TTF_FontHeight(f->ttf);
}

/* Next code point of a UTF-8 string; malformed bytes come out as U+FFFD. */
static uint32_t next_cp(const char **s)
{
    const unsigned char *p = (const unsigned char *)*s;
    uint32_t c = p[0];
    int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0) {
        *s += 1;
        return 0xfffd;
    }
    c = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *s += i;
            return 0xfffd;
        }
        c = c << 6 | (p[i] & 0x3f);
    }
    *s += n + 1;
    return c;
}

static const glyph *get_glyph(tvt_font *f, uint32_t cp)
{
    size_t h = (cp * 2654435761u) & (CACHE_SLOTS - 1);
    for (size_t probe = 0; probe < CACHE_SLOTS; probe++) {
        glyph *g = &f->cache[(h + probe) & (CACHE_SLOTS - 1)];
        if (g->cp == cp)
            return g;
        if (g->cp == 0) {
            int minx, maxx, miny, maxy, adv = 0;
            if (TTF_GlyphMetrics32(f->ttf, cp, &minx, &maxx, &miny, &maxy, &adv) != 0)
                adv = 0;
            g->cp = cp;
            g->advance = adv;
            SDL_Surface *s = TTF_RenderGlyph32_Blended(f->ttf, cp, (SDL_Color){255, 255, 255, 255});
            SDL_Surface *a = s ? SDL_ConvertSurfaceFormat(s, SDL_PIXELFORMAT_ARGB8888, 0) : NULL;
            if (a && a->w > 0 && a->h > 0 && (g->mask = malloc((size_t)a->w * (size_t)a->h))) {
                g->w = a->w;
                g->h = a->h;
                for (int y = 0; y < a->h; y++) {
                    const uint32_t *row = (const uint32_t *)((const uint8_t *)a->pixels + (size_t)y * (size_t)a->pitch);
                    for (int x = 0; x < a->w; x++)
                        g->mask[(size_t)y * (size_t)a->w + (size_t)x] = (uint8_t)(row[x] >> 24);
                }
            }
            SDL_FreeSurface(a);
            SDL_FreeSurface(s);
            return g;
        }
    }
    return NULL;   /* cache full: the glyph is skipped */
}

int tvt_width(tvt_font *f, const char *utf8)
{
    int w = 0;
    while (*utf8) {
        const glyph *g = get_glyph(f, next_cp(&utf8));
        w += g ? g->advance : 0;
    }
    return w;
}

int tvt_draw(tvt_font *f, tvr_canvas *cv, int x, int y, const char *utf8, uint32_t argb, int align)
{
    int w = tvt_width(f, utf8);
    if (align == TVT_CENTER)
        x -= w / 2;
    else if (align == TVT_RIGHT)
        x -= w;
    while (*utf8) {
        const glyph *g = get_glyph(f, next_cp(&utf8));
        if (!g)
            continue;
        if (g->mask)
            tvr_blit_mask(cv, g->mask, g->w, g->h, x, y, argb);
        x += g->advance;
    }
    return w;
}
