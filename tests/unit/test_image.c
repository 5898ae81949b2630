/* test_image.c -- PNG sample grids: geometry, grey levels, given pixels,
 * errors.  Written PNGs are read back with libpng's simplified API. */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "chain/image.h"

static char tmpdir[256];

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/chain-test-image-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_path(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

static void check_msg(const char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	for (const char *needle; (needle = va_arg(ap, const char *));)
		if (!strstr(msg, needle))
			fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
	va_end(ap);
}
#define assert_msg(msg, ...) check_msg(msg, __VA_ARGS__, (const char *)NULL)

static void assert_no_temp_files(void)
{
	DIR *d = opendir(tmpdir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strstr(e->d_name, ".tmp-"))
			fail_msg("temp file left behind: %s", e->d_name);
	closedir(d);
}

/* A PNG read back as 8-bit grey. */
typedef struct grey_image {
	unsigned w, h;
	unsigned char *px;
} grey_image;

static grey_image read_png(const char *path)
{
	png_image img;
	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&img, path))
		fail_msg("cannot read %s: %s", path, img.message);
	assert_int_equal(img.format & PNG_FORMAT_FLAG_COLOR, 0); /* greyscale */
	img.format = PNG_FORMAT_GRAY;
	grey_image g = { img.width, img.height, malloc(PNG_IMAGE_SIZE(img)) };
	assert_non_null(g.px);
	if (!png_image_finish_read(&img, NULL, g.px, 0, NULL))
		fail_msg("cannot decode %s: %s", path, img.message);
	return g;
}

static unsigned px(const grey_image *g, unsigned x, unsigned y)
{
	assert_true(x < g->w && y < g->h);
	return g->px[(size_t)y * g->w + x];
}

/* 5 images of 3x3 at scale 2: 3 a row, 2 rows; cells of 6 pixels with
 * 1-pixel separators around: 3*7+1 = 22 wide, 2*7+1 = 15 high. */
static void test_image__grid_of_5__geometry_separators_and_scaling(void **state)
{
	double pixels[5 * 9];
	for (int i = 0; i < 5 * 9; i++)
		pixels[i] = (i % 9) / 8.0; /* each image: 0, 1/8, ..., 1 row-major */
	chain_error err;
	const char *p = tmp_path("grid.png");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 5, 3, 2, &err), 0);
	grey_image g = read_png(p);
	assert_int_equal(g.w, 22);
	assert_int_equal(g.h, 15);
	/* separators: the border, and every 7th line */
	for (unsigned x = 0; x < g.w; x++) {
		assert_int_equal(px(&g, x, 0), 64);
		assert_int_equal(px(&g, x, 7), 64);
		assert_int_equal(px(&g, x, 14), 64);
	}
	for (unsigned y = 0; y < g.h; y++) {
		assert_int_equal(px(&g, 0, y), 64);
		assert_int_equal(px(&g, 7, y), 64);
		assert_int_equal(px(&g, 21, y), 64);
	}
	/* image 0, pixel (0, 0) = 0 covers (1..2, 1..2); pixel (2, 2) = 1 covers (5..6, 5..6) */
	assert_int_equal(px(&g, 1, 1), 0);
	assert_int_equal(px(&g, 2, 2), 0);
	assert_int_equal(px(&g, 5, 5), 255);
	assert_int_equal(px(&g, 6, 6), 255);
	/* pixel (0, 1) = 1/8 -> 32 (rounded) */
	assert_int_equal(px(&g, 3, 1), 32);
	assert_int_equal(px(&g, 4, 2), 32);
	/* image 4 is second row, second column: its (2, 2) at x 8+4.., y 8+4.. */
	assert_int_equal(px(&g, 12, 12), 255);
	/* the sixth cell is empty: separator grey */
	assert_int_equal(px(&g, 17, 10), 64);
	free(g.px);
	assert_no_temp_files();
}

/* Given pixels are dimmed (1 -> light grey 160), sampled ones full white. */
static void test_image__given_pixels__grey_sampled_white(void **state)
{
	double pixels[4] = { 1, 1, 0.5, 0 };
	unsigned char given[4] = { 1, 0, 1, 0 };
	chain_error err;
	const char *p = tmp_path("given.png");
	assert_int_equal(chain_png_grid(p, pixels, given, 1, 2, 1, &err), 0);
	grey_image g = read_png(p);
	assert_int_equal(g.w, 4);
	assert_int_equal(g.h, 4);
	assert_int_equal(px(&g, 1, 1), 160);
	assert_int_equal(px(&g, 2, 1), 255);
	assert_int_equal(px(&g, 1, 2), 80);
	assert_int_equal(px(&g, 2, 2), 0);
	free(g.px);
}

/* Values are clamped to [0, 1]; a perfect square fills its grid. */
static void test_image__out_of_range_values__clamped(void **state)
{
	double pixels[4] = { -0.5, 1.5, 1e300, -1e300 };
	chain_error err;
	const char *p = tmp_path("clamp.png");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 4, 1, 1, &err), 0);
	grey_image g = read_png(p);
	assert_int_equal(g.w, 5);
	assert_int_equal(g.h, 5);
	assert_int_equal(px(&g, 1, 1), 0);
	assert_int_equal(px(&g, 3, 1), 255);
	assert_int_equal(px(&g, 1, 3), 255);
	assert_int_equal(px(&g, 3, 3), 0);
	free(g.px);
}

static void test_image__bad_arguments__rejected(void **state)
{
	double pixels[4] = { 0, 0, 0, 0 };
	chain_error err;
	const char *p = tmp_path("bad.png");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 0, 2, 1, &err), -1);
	assert_msg(err.msg, "bad.png", "at least one image", "got 0 images");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1, 0, 1, &err), -1);
	assert_msg(err.msg, "bad.png", "0x0");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1, 2, 0, &err), -1);
	assert_msg(err.msg, "bad.png", "scale 0");
	assert_int_equal(chain_png_grid(p, NULL, NULL, 1, 2, 1, &err), -1);
	assert_msg(err.msg, "bad.png", "no pixels");
	pixels[3] = NAN;
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1, 2, 1, &err), -1);
	assert_msg(err.msg, "bad.png", "pixel (2, 2) of image 1 is NaN");
	/* far too large: refused before anything is allocated */
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1, 100000, 100, &err), -1);
	assert_msg(err.msg, "bad.png", "too large");
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1000000, 2, 1000, &err), -1);
	assert_msg(err.msg, "bad.png", "more than 1000000 a side");
	pixels[3] = 0;
	assert_int_equal(chain_png_grid(tmp_path("nodir/x.png"), pixels, NULL, 1, 2, 1, &err), -1);
	assert_msg(err.msg, "nodir/x.png", "cannot create");
	assert_no_temp_files();
}

/* Writing over an existing file replaces it whole. */
static void test_image__existing_file__replaced(void **state)
{
	const char *p = tmp_path("over.png");
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	fputs("not a png", f);
	fclose(f);
	double pixels[784];
	for (int i = 0; i < 784; i++)
		pixels[i] = (i % 28) / 27.0;
	chain_error err;
	assert_int_equal(chain_png_grid(p, pixels, NULL, 1, 28, 3, &err), 0);
	grey_image g = read_png(p);
	assert_int_equal(g.w, 86);
	assert_int_equal(px(&g, 84, 84), 255);
	free(g.px);
	assert_no_temp_files();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image__grid_of_5__geometry_separators_and_scaling),
		cmocka_unit_test(test_image__given_pixels__grey_sampled_white),
		cmocka_unit_test(test_image__out_of_range_values__clamped),
		cmocka_unit_test(test_image__bad_arguments__rejected),
		cmocka_unit_test(test_image__existing_file__replaced),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
