/* image.c -- PNG grids of samples, through libpng.
 *
 * n images of side x side pixels are laid out ceil(sqrt(n)) to a row, each
 * pixel blown up to a scale x scale block, with 1-pixel dark grey lines
 * between the images and around the grid.  The PNG is 8-bit greyscale and
 * written one row at a time, so memory does not grow with the grid.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain/image.h"

#include "atomic_file.h"

#define GREY_SEPARATOR 64  /* lines between images, and empty grid cells */
#define GREY_GIVEN_MAX 160 /* a given pixel of value 1: light grey, not white */
#define MAX_SIDE 1000000u  /* libpng's default limit on width and height */

/* ------------------------------------------------------------------------
 * The grid
 * ------------------------------------------------------------------------ */

/* What to draw and where: the images and the grid's geometry. */
typedef struct grid {
	const double *pixels;
	const unsigned char *given;
	size_t n, side, scale;
	size_t per_row, rows; /* images per grid row, grid rows */
	size_t cell;          /* side * scale: one image's pixels on screen */
	size_t width, height;
} grid;

/* One image pixel as a grey level: given pixels are dimmed so that the
 * sampled part of an inpainted image stands out in full white. */
static unsigned char grey_level(double v, int given)
{
	if (v < 0.0)
		v = 0.0;
	if (v > 1.0)
		v = 1.0;
	double top = given ? GREY_GIVEN_MAX : 255.0;
	return (unsigned char)lround(v * top);
}

/* Fills output row y of the PNG: separators every cell + 1 pixels, image
 * pixels in between, separator grey for cells past the last image. */
static void fill_row(const grid *g, size_t y, unsigned char *row)
{
	size_t pitch = g->cell + 1;
	if (y % pitch == 0) {
		memset(row, GREY_SEPARATOR, g->width);
		return;
	}
	size_t gy = y / pitch, py = (y % pitch - 1) / g->scale;
	for (size_t x = 0; x < g->width; x++) {
		if (x % pitch == 0) {
			row[x] = GREY_SEPARATOR;
			continue;
		}
		size_t img = gy * g->per_row + x / pitch;
		if (img >= g->n) {
			row[x] = GREY_SEPARATOR;
			continue;
		}
		size_t px = (x % pitch - 1) / g->scale;
		size_t i = img * g->side * g->side + py * g->side + px;
		row[x] = grey_level(g->pixels[i], g->given ? g->given[i] != 0 : 0);
	}
}

/* libpng reports errors through a callback that must not return: keep the
 * message and jump back to write_png's setjmp. */
typedef struct png_failure {
	char msg[256];
} png_failure;

static void on_png_error(png_structp png, png_const_charp msg)
{
	png_failure *fail = png_get_error_ptr(png);
	snprintf(fail->msg, sizeof fail->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg; /* libchain never prints */
}

/* Encodes the grid into f.  Everything used after a longjmp (png, info,
 * row) is set before setjmp and never changed after, as setjmp requires. */
static int write_png(FILE *f, const grid *g, png_failure *fail)
{
	unsigned char *row = malloc(g->width);
	if (!row) {
		snprintf(fail->msg, sizeof fail->msg, "out of memory");
		return -1;
	}
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, fail, on_png_error, on_png_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!png || !info) {
		png_destroy_write_struct(png ? &png : NULL, NULL);
		free(row);
		snprintf(fail->msg, sizeof fail->msg, "out of memory");
		return -1;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		free(row);
		return -1;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)g->width, (png_uint_32)g->height, 8, PNG_COLOR_TYPE_GRAY,
	             PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (size_t y = 0; y < g->height; y++) {
		fill_row(g, y, row);
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(row);
	return 0;
}

/* Sets up the geometry, refusing sizes that overflow or exceed what a PNG
 * reader accepts, and rejects NaN pixels (a sampler bug, better reported
 * than drawn black). */
static int grid_layout(grid *g, const char *path, chain_error *err)
{
	if (g->n == 0 || g->side == 0 || g->scale == 0)
		return chain_error_set(err, "%s: expected at least one image of at least 1x1 pixels at scale >= 1, got %zu images of %zux%zu at scale %zu",
		                       path, g->n, g->side, g->side, g->scale);
	if (g->n > (size_t)MAX_SIDE * MAX_SIDE)
		return chain_error_set(err, "%s: %zu images are too many for one PNG grid", path, g->n);
	size_t c = (size_t)sqrt((double)g->n);
	while (c * c < g->n)
		c++;
	while (c > 1 && (c - 1) * (c - 1) >= g->n)
		c--;
	g->per_row = c;
	g->rows = (g->n + c - 1) / c;
	if (g->side > MAX_SIDE || g->scale > MAX_SIDE || g->side * g->scale > MAX_SIDE ||
	    g->per_row > MAX_SIDE || g->rows > MAX_SIDE)
		return chain_error_set(err, "%s: a grid of %zu images of %zux%zu pixels at scale %zu is too large for a PNG",
		                       path, g->n, g->side, g->side, g->scale);
	g->cell = g->side * g->scale;
	uint64_t w = (uint64_t)g->per_row * (g->cell + 1) + 1;
	uint64_t h = (uint64_t)g->rows * (g->cell + 1) + 1;
	if (w > MAX_SIDE || h > MAX_SIDE)
		return chain_error_set(err, "%s: a grid of %zu images of %zux%zu pixels at scale %zu would be %llux%llu pixels, more than %u a side",
		                       path, g->n, g->side, g->side, g->scale,
		                       (unsigned long long)w, (unsigned long long)h, MAX_SIDE);
	g->width = (size_t)w;
	g->height = (size_t)h;
	size_t per_image = g->side * g->side;
	for (size_t img = 0; img < g->n; img++)
		for (size_t i = 0; i < per_image; i++)
			if (isnan(g->pixels[img * per_image + i]))
				return chain_error_set(err, "%s: pixel (%zu, %zu) of image %zu is NaN: expected values in [0, 1]",
				                       path, i / g->side + 1, i % g->side + 1, img + 1);
	return 0;
}

int chain_png_grid(const char *path, const double *pixels, const unsigned char *given,
                   size_t n, size_t side, unsigned scale, chain_error *err)
{
	if (!path)
		return chain_error_set(err, "chain_png_grid: no file name given");
	if (!pixels)
		return chain_error_set(err, "%s: no pixels given", path);
	grid g = { .pixels = pixels, .given = given, .n = n, .side = side, .scale = scale };
	if (grid_layout(&g, path, err) != 0)
		return -1;
	atomic_file af;
	if (chain__atomic_open(&af, path, err) != 0)
		return -1;
	png_failure fail = { "" };
	if (write_png(af.f, &g, &fail) != 0) {
		int e = errno;
		chain__atomic_abort(&af);
		if (!fail.msg[0])
			snprintf(fail.msg, sizeof fail.msg, "%s", strerror(e));
		return chain_error_set(err, "%s: cannot write PNG: %s", path, fail.msg);
	}
	return chain__atomic_commit(&af, err);
}
