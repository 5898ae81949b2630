/* test_data.c -- data loading (text, .npy, IDX, gzip), binarization,
 * checking against a model, saving.
 *
 * Every error case writes a small hostile file into a fresh temp directory
 * and checks that the message names the file, the place (line:col or byte
 * offset) and what was expected.  Run from the repository root: the last
 * tests load the shipped examples/data files.
 */
#include <dirent.h>
#include <ftw.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "chain/data.h"
#include "chain/rng.h"

/* ---- fixtures -------------------------------------------------------- */

static char tmpdir[256];

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/chain-test-data-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name, in a rotating set of static buffers. */
static const char *tmp_path(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

/* Writes bytes to tmpdir/name and returns the path. */
static const char *fixture(const char *name, const void *bytes, size_t n)
{
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *fixture_text(const char *name, const char *text)
{
	return fixture(name, text, strlen(text));
}

/* Writes bytes gzip-compressed to tmpdir/name. */
static const char *fixture_gz(const char *name, const void *bytes, size_t n)
{
	const char *path = tmp_path(name);
	gzFile gz = gzopen(path, "wb");
	assert_non_null(gz);
	assert_int_equal(gzwrite(gz, bytes, (unsigned)n), (int)n);
	assert_int_equal(gzclose(gz), Z_OK);
	return path;
}

/* A .npy file: magic, version major.0, header length, dict (unpadded), data. */
static size_t make_npy(unsigned char *out, int major, const char *dict, const void *data, size_t n)
{
	size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
	memcpy(out, "\x93NUMPY", 6);
	out[6] = (unsigned char)major;
	out[7] = 0;
	if (major == 1) {
		out[8] = (unsigned char)(dl & 0xff);
		out[9] = (unsigned char)(dl >> 8);
	} else {
		for (int k = 0; k < 4; k++)
			out[8 + k] = (unsigned char)(dl >> (8 * k));
	}
	memcpy(out + pre, dict, dl);
	if (n)
		memcpy(out + pre + dl, data, n);
	return pre + dl + n;
}

static const char *fixture_npy(const char *name, int major, const char *dict, const void *data, size_t n)
{
	static unsigned char buf[1 << 16];
	assert_true(n + strlen(dict) + 12 <= sizeof buf);
	return fixture(name, buf, make_npy(buf, major, dict, data, n));
}

/* Checks that msg contains every one of the NULL-terminated needles. */
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

/* Loads path expecting failure; returns the message. */
static const char *load_fails(const char *path, const chain_load_options *o)
{
	static chain_error err;
	chain_dataset d = { .rows = 7, .cols = 7, .values = (double *)&d };
	err.msg[0] = '\0';
	assert_int_equal(chain_data_load(path, o, &d, &err), -1);
	assert_null(d.values);
	assert_int_equal(d.rows, 0);
	assert_true(err.msg[0] != '\0');
	return err.msg;
}

/* Loads path expecting success, with rows x cols values. */
static chain_dataset load_ok(const char *path, const chain_load_options *o, size_t rows, size_t cols)
{
	chain_error err = { "" };
	chain_dataset d;
	if (chain_data_load(path, o, &d, &err) != 0)
		fail_msg("load failed: %s", err.msg);
	assert_int_equal(d.rows, rows);
	assert_int_equal(d.cols, cols);
	assert_non_null(d.values);
	return d;
}

/* ---- text ------------------------------------------------------------ */

static void test_data__amat__loads_rows_and_cols(void **state)
{
	chain_dataset d = load_ok(fixture_text("ok.amat", "0 1 0\n1 1 0\n"), NULL, 2, 3);
	static const double want[] = { 0, 1, 0, 1, 1, 0 };
	for (int i = 0; i < 6; i++)
		assert_true(d.values[i] == want[i]);
	chain_dataset_free(&d);
	assert_null(d.values);
}

/* The fast path and the strtod fallback agree with strtod bit for bit. */
static void test_data__decimals_and_exponents__parse_exactly(void **state)
{
	const char *toks[] = { "0.1", "-2.5e3", "1e-300", "3.14159265358979", "+7", "0.30000000000000004",
	                       "123456789012345678901234", "0.1000000000000000055511151231257827", "-0",
	                       "1E5", ".5", "5.", "2.2250738585072014e-308", "9007199254740993", "1e22", "1e23" };
	size_t n = sizeof toks / sizeof toks[0];
	char text[1024] = "";
	for (size_t i = 0; i < n; i++) {
		strcat(text, toks[i]);
		strcat(text, i + 1 < n ? "\t" : "\n");
	}
	chain_dataset d = load_ok(fixture_text("num.txt", text), NULL, 1, n);
	for (size_t i = 0; i < n; i++)
		if (d.values[i] != strtod(toks[i], NULL))
			fail_msg("%s parsed as %.17g", toks[i], d.values[i]);
	chain_dataset_free(&d);
}

static void test_data__crlf_blank_and_comment_lines__skipped(void **state)
{
	const char *p = fixture_text("crlf.txt", "# x y\r\n\r\n1 2\r\n   \n3 4\r\n# end\n5 6");
	chain_dataset d = load_ok(p, NULL, 3, 2);
	assert_true(d.values[4] == 5 && d.values[5] == 6);
	chain_dataset_free(&d);
}

static void test_data__ragged_row__names_row_and_count(void **state)
{
	const char *msg = load_fails(fixture_text("ragged.amat", "0 1 0\n1 1 0\n1 0\n0 0 0\n"), NULL);
	assert_msg(msg, "ragged.amat:3:4:", "row 3 has 2 values, row 1", "had 3");
}

static void test_data__extra_value__names_row_count_and_column(void **state)
{
	const char *msg = load_fails(fixture_text("extra.amat", "0 1 0\n1 1 0 1 1\n"), NULL);
	assert_msg(msg, "extra.amat:2:7:", "row 2 has 5 values, row 1", "had 3");
}

static void test_data__non_number__names_line_col_and_token(void **state)
{
	const char *msg = load_fails(fixture_text("word.amat", "0 1 1\n0 1 x7\n"), NULL);
	assert_msg(msg, "word.amat:2:5:", "expected a number", "value 3 of row 2", "found 'x7'");
	msg = load_fails(fixture_text("hex.amat", "0x10 1\n"), NULL);
	assert_msg(msg, "hex.amat:1:1:", "expected a number", "'0x10'");
	msg = load_fails(fixture_text("dots.amat", "1 1.2.3\n"), NULL);
	assert_msg(msg, "dots.amat:1:3:", "'1.2.3'");
	msg = load_fails(fixture_text("comma.amat", "1,2,3\n"), NULL);
	assert_msg(msg, "comma.amat:1:1:", "'1,2,3'");
}

static void test_data__nan_and_inf__rejected_as_not_finite(void **state)
{
	const char *msg = load_fails(fixture_text("nan.amat", "0 1\n0 nan\n"), NULL);
	assert_msg(msg, "nan.amat:2:3:", "expected a finite number", "'nan'");
	msg = load_fails(fixture_text("inf.amat", "-Inf 1\n"), NULL);
	assert_msg(msg, "inf.amat:1:1:", "finite", "'-Inf'");
	msg = load_fails(fixture_text("huge.amat", "1 1e999\n"), NULL);
	assert_msg(msg, "huge.amat:1:3:", "expected a number from 2.2250738585072014e-308 to 1.7976931348623157e308 in magnitude, or 0 (value 2 of row 1)", "'1e999'");
}

/* strtod underflows 1e-400 to 0 (and 1e-310 to a subnormal with digits
 * lost): read as is, a bin or cat column took it for the value 0.  Too
 * small is refused like too large, in every column, with the file, the
 * line and column, and the row. */
static void test_data__underflow__rejected_like_overflow(void **state)
{
	static const char *tiny[] = { "1e-400", "-1e-400", "1e-310", "4.9e-324", "2.2250738585072e-308",
	                              "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001" };
	for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
		char text[512], found[64];
		snprintf(text, sizeof text, "0 1 0\n1 %s 0\n", tiny[i]);
		const char *msg = load_fails(fixture_text("tiny.amat", text), NULL);
		snprintf(found, sizeof found, "found '%.20s", tiny[i]);
		assert_msg(msg, "tiny.amat:2:3: expected a number from 2.2250738585072014e-308 to 1.7976931348623157e308 in magnitude, or 0 (value 2 of row 2), ",
		           found);
	}
	/* the smallest normal double and zeros written any way are fine */
	chain_dataset d = load_ok(fixture_text("small.amat", "2.2250738585072014e-308 0e-400 -0.0e999 0.000\n"), NULL, 1, 4);
	assert_true(d.values[0] == DBL_MIN && d.values[1] == 0 && d.values[2] == 0 && d.values[3] == 0);
	chain_dataset_free(&d);
}

static void test_data__empty_file__says_empty(void **state)
{
	const char *msg = load_fails(fixture("empty.amat", "", 0), NULL);
	assert_msg(msg, "empty.amat", "empty file");
	msg = load_fails(fixture_text("blank.amat", "\n  \n# nothing\n"), NULL);
	assert_msg(msg, "blank.amat:3:", "no data");
	msg = load_fails(fixture_gz("empty.amat.gz", "", 0), NULL);
	assert_msg(msg, "empty.amat.gz", "empty file");
}

static void test_data__binary_garbage__shows_escaped_bytes(void **state)
{
	const char *msg = load_fails(fixture("garbage.txt", "\x01\x02\xff'z 1\n", 7), NULL);
	assert_msg(msg, "garbage.txt:1:1:", "expected a number", "'\\x01\\x02\\xff'z'");
	static const char nul[] = { '1', ' ', '2', 0, '3', '\n' };
	msg = load_fails(fixture("nul.txt", nul, sizeof nul), NULL);
	assert_msg(msg, "nul.txt:1:3:", "'2\\x003'");
}

static void test_data__missing_file_or_directory__says_so(void **state)
{
	const char *msg = load_fails(tmp_path("does-not-exist.amat"), NULL);
	assert_msg(msg, "does-not-exist.amat", "cannot open");
	msg = load_fails(tmpdir, NULL);
	assert_msg(msg, tmpdir, "directory");
}

/* ---- gzip ------------------------------------------------------------ */

static void test_data__gzip__detected_by_content_whatever_the_name(void **state)
{
	const char *text = "1 2 3\n4 5 6\n";
	chain_dataset d = load_ok(fixture_gz("plain-name.amat", text, strlen(text)), NULL, 2, 3);
	assert_true(d.values[5] == 6);
	chain_dataset_free(&d);
	d = load_ok(fixture_text("not-really.amat.gz", text), NULL, 2, 3);
	chain_dataset_free(&d);
}

static void test_data__truncated_gzip__reports_gzip_error(void **state)
{
	char text[20000];
	for (size_t i = 0; i < sizeof text; i += 2) {
		text[i] = (char)('0' + (i / 2 * 7919) % 10);
		text[i + 1] = i % 40 == 38 ? '\n' : ' ';
	}
	const char *p = fixture_gz("full.amat.gz", text, sizeof text);
	FILE *f = fopen(p, "rb");
	unsigned char buf[65536];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	const char *msg = load_fails(fixture("cut.amat.gz", buf, n / 2), NULL);
	assert_msg(msg, "cut.amat.gz", "byte", "gzip");
	buf[n / 2] ^= 0x55; /* corrupt the middle of the deflate stream */
	buf[n / 2 + 1] ^= 0xaa;
	msg = load_fails(fixture("corrupt.amat.gz", buf, n), NULL);
	assert_msg(msg, "corrupt.amat.gz", "byte");
}

/* One gzip member of bytes[0..n) at level `level` (0: stored, so its size
 * is known in advance), appended to out at *len. */
static void gz_member(unsigned char *out, size_t cap, size_t *len, const void *bytes, size_t n, int level)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (unsigned char *)bytes;
	z.avail_in = (uInt)n;
	z.next_out = out + *len;
	z.avail_out = (uInt)(cap - *len);
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*len += z.total_out;
	deflateEnd(&z);
}

/* Concatenated gzip members are one gzip stream (`cat a.gz b.gz`, what
 * gzip -d reads): their data follow each other, even when the boundary
 * between two members falls across a read of the loader. */
static void test_data__gzip_members__concatenated(void **state)
{
	static unsigned char buf[1 << 19], text[1 << 18];
	size_t n = 0;
	gz_member(buf, sizeof buf, &n, "1 2 3\n", 6, 6);
	gz_member(buf, sizeof buf, &n, "4 5 6\n", 6, 6);
	chain_dataset d = load_ok(fixture("cat.amat.gz", buf, n), NULL, 2, 3);
	assert_true(d.values[0] == 1 && d.values[5] == 6);
	chain_dataset_free(&d);
	/* an empty member is a member too */
	gz_member(buf, sizeof buf, &n, "", 0, 6);
	d = load_ok(fixture("cat-empty.amat.gz", buf, n), NULL, 2, 3);
	chain_dataset_free(&d);
	/* a stored first member ending 3 bytes before to 2 after 2^17 (the
	 * loader's read size): the next magic straddles a read */
	size_t probe = 0;
	memset(text, ' ', sizeof text);
	text[0] = '7';
	text[100000 - 1] = '\n';
	gz_member(buf, sizeof buf, &probe, text, 100000, 0);
	size_t over = probe - 100000; /* a stored member's header, trailer, block headers */
	for (size_t end = (1u << 17) - 3; end <= (1u << 17) + 2; end++) {
		size_t len = end - over;
		memset(text, ' ', len);
		text[0] = '7';
		text[len - 1] = '\n';
		n = 0;
		gz_member(buf, sizeof buf, &n, text, len, 0);
		assert_int_equal(n, end);
		gz_member(buf, sizeof buf, &n, "8\n", 2, 6);
		d = load_ok(fixture("boundary.amat.gz", buf, n), NULL, 2, 1);
		assert_true(d.values[0] == 7 && d.values[1] == 8);
		chain_dataset_free(&d);
		/* and what follows the last member is checked there too */
		n = end;
		buf[n++] = 'x';
		const char *msg = load_fails(fixture("boundary-junk.amat.gz", buf, n), NULL);
		char want[64];
		snprintf(want, sizeof want, "boundary-junk.amat.gz: byte %zu: trailing garbage", end);
		assert_msg(msg, want, "found byte 0x78");
	}
}

/* Bytes after the last gzip member that do not start another one were
 * dropped by zlib's gzread (the file loaded as if they were not there):
 * they are an error at their offset in the file. */
static void test_data__gzip_trailing_garbage__rejected_with_offset(void **state)
{
	static unsigned char buf[4096];
	size_t n = 0;
	gz_member(buf, sizeof buf, &n, "1 2 3\n", 6, 6);
	size_t end = n;
	char want[80];
	snprintf(want, sizeof want, "junk.amat.gz: byte %zu: trailing garbage after the gzip data", end);
	memcpy(buf + n, "garbage", 7);
	const char *msg = load_fails(fixture("junk.amat.gz", buf, n + 7), NULL);
	assert_msg(msg, want, "expected another gzip member (1f 8b) or the end of the file, found byte 0x67");
	/* zeros (a padded tape block), a lone first magic byte */
	memset(buf + n, 0, 512);
	snprintf(want, sizeof want, "zeros.amat.gz: byte %zu: trailing garbage", end);
	assert_msg(load_fails(fixture("zeros.amat.gz", buf, n + 512), NULL), want, "found byte 0x00");
	buf[n] = 0x1f;
	snprintf(want, sizeof want, "half.amat.gz: byte %zu: trailing garbage", end);
	assert_msg(load_fails(fixture("half.amat.gz", buf, n + 1), NULL), want, "found byte 0x1f");
	/* after a second member: the offset counts both */
	gz_member(buf, sizeof buf, &n, "4 5 6\n", 6, 6);
	buf[n] = '\n';
	snprintf(want, sizeof want, "junk2.amat.gz: byte %zu: trailing garbage", n);
	assert_msg(load_fails(fixture("junk2.amat.gz", buf, n + 1), NULL), want, "found byte 0x0a");
	/* a magic that starts a broken member: corrupt gzip data, not garbage */
	buf[n] = 0x1f;
	buf[n + 1] = 0x8b;
	buf[n + 2] = 0x99;
	msg = load_fails(fixture("broken2.amat.gz", buf, n + 10), NULL);
	assert_msg(msg, "broken2.amat.gz: byte 12 of the decompressed data: corrupt gzip data");
	/* a plain text file is not gzip and may end however it likes */
	chain_dataset d = load_ok(fixture_text("plain-junk.amat", "1 2 3\n# garbage\n"), NULL, 1, 3);
	chain_dataset_free(&d);
}

/* ---- .npy ------------------------------------------------------------ */

static void test_data__npy_f8_2d__loads(void **state)
{
	double v[6] = { 0.5, -1, 2, 3, 4.25, 5 };
	const char *p = fixture_npy("a.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }      \n", v, sizeof v);
	chain_dataset d = load_ok(p, NULL, 2, 3);
	assert_memory_equal(d.values, v, sizeof v);
	chain_dataset_free(&d);
}

static void test_data__npy_each_dtype__loads(void **state)
{
	unsigned char u1[4] = { 0, 1, 128, 255 };
	chain_dataset d = load_ok(fixture_npy("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", u1, 4), NULL, 2, 2);
	assert_true(d.values[2] == 128 && d.values[3] == 255);
	chain_dataset_free(&d);

	unsigned char b1[3] = { 0, 1, 1 };
	d = load_ok(fixture_npy("b1.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b1, 3), NULL, 3, 1);
	assert_true(d.values[0] == 0 && d.values[2] == 1);
	chain_dataset_free(&d);

	int32_t i4[2] = { -7, 2147483647 };
	d = load_ok(fixture_npy("i4.npy", 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", i4, sizeof i4), NULL, 1, 2);
	assert_true(d.values[0] == -7 && d.values[1] == 2147483647.0);
	chain_dataset_free(&d);

	int64_t i8[2] = { -5, (int64_t)1 << 40 };
	d = load_ok(fixture_npy("i8.npy", 3, "{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (2,)}", i8, sizeof i8), NULL, 2, 1);
	assert_true(d.values[0] == -5 && d.values[1] == 1099511627776.0);
	chain_dataset_free(&d);

	float f4[8] = { 0.25f, 1, 2, 3, 4, 5, 6, 7 };
	d = load_ok(fixture_npy("f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", f4, sizeof f4), NULL, 2, 4);
	assert_true(d.values[0] == 0.25 && d.values[7] == 7);
	chain_dataset_free(&d);

	double scalar = 3.5;
	d = load_ok(fixture_npy("scalar.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &scalar, 8), NULL, 1, 1);
	assert_true(d.values[0] == 3.5);
	chain_dataset_free(&d);
}

static void test_data__npy_fortran_order__rejected(void **state)
{
	double v[4] = { 0 };
	const char *msg = load_fails(fixture_npy("fortran.npy", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", v, sizeof v), NULL);
	assert_msg(msg, "fortran.npy: byte 44:", "expected C order", "fortran_order True");
}

static void test_data__npy_truncated_data__names_offset_and_sizes(void **state)
{
	double v[5] = { 0 };
	const char *msg = load_fails(fixture_npy("short.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof v), NULL);
	assert_msg(msg, "short.npy: byte", "truncated data", "2x3 needs 48 bytes, found 40");
	msg = load_fails(fixture("tiny.npy", "\x93NUMPY\x01", 7), NULL);
	assert_msg(msg, "tiny.npy: byte 7:", "truncated .npy header");
}

static void test_data__npy_trailing_bytes__rejected(void **state)
{
	double v[7] = { 0 };
	const char *msg = load_fails(fixture_npy("long.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof v), NULL);
	assert_msg(msg, "long.npy: byte 117:", "expected end of file", "8 more bytes");
}

/* A header claiming a terabyte must fail without allocating it. */
static void test_data__npy_huge_shape__fails_before_allocating(void **state)
{
	double v[2] = { 0 };
	const char *msg = load_fails(fixture_npy("huge.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000), }", v, sizeof v), NULL);
	assert_msg(msg, "huge.npy: byte", "1000000000000x1000");
	msg = load_fails(fixture_npy("overflow.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }", v, sizeof v), NULL);
	assert_msg(msg, "overflow.npy: byte", "overflows");
	msg = load_fails(fixture_npy("overflow2.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999, 2), }", v, sizeof v), NULL);
	assert_msg(msg, "overflow2.npy: byte 61:", "overflows size_t");
}

static void test_data__npy_negative_dim__rejected(void **state)
{
	double v[2] = { 0 };
	const char *msg = load_fails(fixture_npy("neg.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 1), }", v, sizeof v), NULL);
	assert_msg(msg, "neg.npy: byte 61:", "non-negative dimension");
}

static void test_data__npy_header_length_beyond_file__rejected(void **state)
{
	unsigned char b[40] = "\x93NUMPY\x01\x00\xff\xff{'descr': '<f8'";
	const char *msg = load_fails(fixture("hlen.npy", b, 26), NULL);
	assert_msg(msg, "hlen.npy: byte 8:", "header length 65535 exceeds the file");
	unsigned char c[40] = "\x93NUMPY\x02\x00\xff\xff\xff\xff{";
	msg = load_fails(fixture("hlen2.npy", c, 13), NULL);
	assert_msg(msg, "hlen2.npy: byte 8:", "header length 4294967295 exceeds the file");
}

static void test_data__npy_bad_dtype_version_or_magic__rejected(void **state)
{
	double v[2] = { 0 };
	const char *msg = load_fails(fixture_npy("be.npy", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", v, sizeof v), NULL);
	assert_msg(msg, "be.npy: byte 20:", "little-endian", "found '>f8'");
	msg = load_fails(fixture_npy("c16.npy", 1, "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", v, 16), NULL);
	assert_msg(msg, "c16.npy", "found '<c16'");
	msg = load_fails(fixture_npy("struct.npy", 1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", v, sizeof v), NULL);
	assert_msg(msg, "struct.npy: byte 20:", "structured dtype");
	msg = load_fails(fixture_npy("v9.npy", 9, "{}", v, sizeof v), NULL);
	assert_msg(msg, "v9.npy: byte 6:", "version 1.0, 2.0 or 3.0, found 9.0");
	msg = load_fails(fixture_text("magic.npy", "0 1 2\n"), NULL);
	assert_msg(msg, "magic.npy: byte 0:", "wrong magic", "NUMPY", "found '0 1 2\\x0a'");
}

static void test_data__npy_malformed_header__names_offset(void **state)
{
	double v[2] = { 0 };
	const char *msg = load_fails(fixture_npy("comma.npy", 1, "{'descr': '<f8' 'fortran_order': False, 'shape': (2,), }", v, sizeof v), NULL);
	assert_msg(msg, "comma.npy: byte 26:", "expected ',' or '}'", "found ''fortran_o");
	msg = load_fails(fixture_npy("nokey.npy", 1, "{'descr': '<f8', 'shape': (2,), }", v, sizeof v), NULL);
	assert_msg(msg, "nokey.npy: byte 10:", "'fortran_order' is missing");
	msg = load_fails(fixture_npy("odd.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", v, sizeof v), NULL);
	assert_msg(msg, "odd.npy: byte 66:", "the key 'descr', 'fortran_order' or 'shape'");
	msg = load_fails(fixture_npy("open.npy", 1, "{'descr': '<f8", v, sizeof v), NULL);
	assert_msg(msg, "open.npy: byte 20:", "closing quote");
	msg = load_fails(fixture_npy("after.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} junk", v, sizeof v), NULL);
	assert_msg(msg, "after.npy: byte 66:", "end of the header", "'junk'");
	msg = load_fails(fixture_npy("bool.npy", 1, "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}", v, sizeof v), NULL);
	assert_msg(msg, "bool.npy: byte 44:", "True or False");
}

static void test_data__npy_nan_value__names_row_and_column(void **state)
{
	double v[4] = { 0, 1, 2, NAN };
	const char *msg = load_fails(fixture_npy("nanv.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", v, sizeof v), NULL);
	assert_msg(msg, "nanv.npy: byte 93", "row 2, column 2", "finite", "NaN");
}

/* ---- IDX ------------------------------------------------------------- */

static size_t make_idx(unsigned char *b, unsigned char type, size_t nd, const uint32_t *dims,
                       const void *data, size_t n)
{
	b[0] = b[1] = 0;
	b[2] = type;
	b[3] = (unsigned char)nd;
	for (size_t i = 0; i < nd; i++)
		for (int k = 0; k < 4; k++)
			b[4 + 4 * i + (size_t)k] = (unsigned char)(dims[i] >> (24 - 8 * k));
	if (n)
		memcpy(b + 4 + 4 * nd, data, n);
	return 4 + 4 * nd + n;
}

static void test_data__idx_ubyte__loads_rows_by_first_dim(void **state)
{
	unsigned char b[64], px[12];
	for (int i = 0; i < 12; i++)
		px[i] = (unsigned char)(i * 20);
	uint32_t dims[3] = { 3, 2, 2 };
	chain_dataset d = load_ok(fixture("img-idx3-ubyte", b, make_idx(b, 0x08, 3, dims, px, 12)), NULL, 3, 4);
	assert_true(d.values[11] == 220);
	chain_dataset_free(&d);
	uint32_t one[1] = { 5 };
	d = load_ok(fixture_gz("lab-idx1-ubyte.gz", b, make_idx(b, 0x08, 1, one, px, 5)), NULL, 5, 1);
	assert_true(d.values[4] == 80);
	chain_dataset_free(&d);
}

static void test_data__idx_float_and_int__big_endian(void **state)
{
	unsigned char b[64];
	unsigned char f[8] = { 0x3f, 0xc0, 0, 0, 0xc0, 0x20, 0, 0 }; /* 1.5, -2.5 */
	uint32_t dims[1] = { 2 };
	chain_dataset d = load_ok(fixture("f.idx", b, make_idx(b, 0x0D, 1, dims, f, 8)), NULL, 2, 1);
	assert_true(d.values[0] == 1.5 && d.values[1] == -2.5);
	chain_dataset_free(&d);
	unsigned char i[8] = { 0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 0 }; /* -2, 256 */
	d = load_ok(fixture("i.idx", b, make_idx(b, 0x0C, 1, dims, i, 8)), NULL, 2, 1);
	assert_true(d.values[0] == -2 && d.values[1] == 256);
	chain_dataset_free(&d);
}

static void test_data__idx_wrong_magic__names_expected_magic(void **state)
{
	unsigned char b[64];
	uint32_t dims[1] = { 2 };
	const char *msg = load_fails(fixture("t-idx1-ubyte", b, make_idx(b, 0x07, 1, dims, "ab", 2)), NULL);
	assert_msg(msg, "t-idx1-ubyte: byte 2:", "wrong magic number 0x00000701", "0x08 (ubyte)");
	msg = load_fails(fixture_text("x-idx3-ubyte", "P5 28 28\n"), NULL);
	assert_msg(msg, "x-idx3-ubyte: byte 0:", "wrong magic number", "0x000008TT", "found 0x50352032");
	b[2] = 0x08;
	b[3] = 0;
	msg = load_fails(fixture("zero-dims.idx", b, 4), NULL);
	assert_msg(msg, "zero-dims.idx: byte 3:", "1 to 16 IDX dimensions, found 0");
}

static void test_data__idx_truncated__names_offset_and_sizes(void **state)
{
	unsigned char b[64];
	uint32_t dims[3] = { 10, 28, 28 };
	const char *msg = load_fails(fixture("cut-idx3-ubyte", b, make_idx(b, 0x08, 3, dims, "abc", 3)), NULL);
	assert_msg(msg, "cut-idx3-ubyte: byte 19:", "truncated data", "10x28x28 needs 7840 bytes, found 3");
	msg = load_fails(fixture("hdr-idx3-ubyte", b, 9), NULL);
	assert_msg(msg, "hdr-idx3-ubyte: byte 9:", "truncated IDX header", "3 dimension sizes (16 bytes)");
	msg = load_fails(fixture("two-idx3-ubyte", b, 2), NULL);
	assert_msg(msg, "two-idx3-ubyte: byte 0:", "truncated IDX header", "found 2 bytes");
	/* gzip: the offset is in the decompressed data */
	msg = load_fails(fixture_gz("cut-idx3-ubyte.gz", b, make_idx(b, 0x08, 3, dims, "abc", 3)), NULL);
	assert_msg(msg, "cut-idx3-ubyte.gz: byte 19 of the decompressed data:", "truncated data");
}

static void test_data__idx_huge_or_negative_dims__rejected_without_allocating(void **state)
{
	unsigned char b[64];
	uint32_t dims[4] = { 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff };
	const char *msg = load_fails(fixture("big-idx4-ubyte", b, make_idx(b, 0x0E, 4, dims, "x", 1)), NULL);
	assert_msg(msg, "big-idx4-ubyte: byte 20:", "overflows");
	uint32_t neg[2] = { 2, 0xfffffffe };
	msg = load_fails(fixture("neg-idx2-ubyte", b, make_idx(b, 0x08, 2, neg, "ab", 2)), NULL);
	assert_msg(msg, "neg-idx2-ubyte: byte 8:", "non-negative size for dimension 2, found -2");
	uint32_t zero[2] = { 0, 5 };
	msg = load_fails(fixture("zero-idx2-ubyte", b, make_idx(b, 0x08, 2, zero, NULL, 0)), NULL);
	assert_msg(msg, "zero-idx2-ubyte: byte 12:", "at least one row", "0x5");
}

/* ---- binarization ---------------------------------------------------- */

static void test_data__threshold__scales_uint8_first(void **state)
{
	unsigned char b[64], px[4] = { 0, 127, 128, 255 };
	uint32_t dims[2] = { 1, 4 };
	chain_load_options o = { CHAIN_BINARIZE_THRESHOLD, 0.5, 0 };
	chain_dataset d = load_ok(fixture("th-idx2-ubyte", b, make_idx(b, 0x08, 2, dims, px, 4)), &o, 1, 4);
	assert_true(d.values[0] == 0 && d.values[1] == 0 && d.values[2] == 1 && d.values[3] == 1);
	chain_dataset_free(&d);
	/* text is not uint8: 127 >= 0.5 */
	d = load_ok(fixture_text("th.txt", "0 0.49 0.5 127\n"), &o, 1, 4);
	assert_true(d.values[0] == 0 && d.values[1] == 0 && d.values[2] == 1 && d.values[3] == 1);
	chain_dataset_free(&d);
	o.threshold = NAN;
	const char *msg = load_fails(fixture_text("thnan.txt", "0 1\n"), &o);
	assert_msg(msg, "thnan.txt", "threshold");
}

static void test_data__stochastic__draws_from_the_binarize_stream(void **state)
{
	char text[4096] = "";
	double p[2][50];
	for (int r = 0; r < 2; r++) {
		for (int c = 0; c < 50; c++) {
			p[r][c] = (c % 11) / 10.0;
			char tok[16];
			snprintf(tok, sizeof tok, "%g%c", p[r][c], c == 49 ? '\n' : ' ');
			strcat(text, tok);
		}
	}
	chain_load_options o = { CHAIN_BINARIZE_STOCHASTIC, 0, 1234 };
	chain_dataset d = load_ok(fixture_text("probs.txt", text), &o, 2, 50);
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 50; c++) {
			double u = chain_rng_uniform(1234, CHAIN_STREAM_BINARIZE, (uint64_t)r, (uint32_t)c, 0);
			assert_true(d.values[r * 50 + c] == (u < p[r][c] ? 1.0 : 0.0));
		}
	chain_dataset_free(&d);
}

static void test_data__stochastic__rejects_values_outside_0_1(void **state)
{
	chain_load_options o = { CHAIN_BINARIZE_STOCHASTIC, 0, 1 };
	const char *msg = load_fails(fixture_text("p255.txt", "0 0.5\n0 255\n"), &o);
	assert_msg(msg, "p255.txt:2:2:", "values in [0, 1]", "found 255");
	/* the same values as uint8 are scaled, so they are fine */
	unsigned char b[64], px[4] = { 0, 128, 0, 255 };
	uint32_t dims[2] = { 2, 2 };
	chain_dataset d = load_ok(fixture("p-idx2-ubyte", b, make_idx(b, 0x08, 2, dims, px, 4)), &o, 2, 2);
	assert_true(d.values[3] == 1.0 && d.values[0] == 0.0);
	chain_dataset_free(&d);
}

/* ---- chain_data_check ------------------------------------------------ */

/* input s: real[2]; data x: bin[3]; data c: cat(4)[2, 2]; data k: int */
static const chain_var toy_inputs[] = {
	{ .name = "s", .kind = CHAIN_REAL, .rank = 1, .shape = { 2 }, .offset = 0, .size = 2 },
};
static const chain_var toy_data[] = {
	{ .name = "x", .kind = CHAIN_BIN, .rank = 1, .shape = { 3 }, .offset = 2, .size = 3 },
	{ .name = "c", .kind = CHAIN_CAT, .cat_k = 4, .rank = 2, .shape = { 2, 2 }, .offset = 5, .size = 4 },
	{ .name = "k", .kind = CHAIN_INT, .rank = 0, .offset = 9, .size = 1 },
};
static const chain_model toy = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .obs_size = 10,
	.num_inputs = 1, .inputs = toy_inputs, .num_data = 3, .data = toy_data,
};

static const char *check_fails(const double *row2, size_t cols)
{
	static chain_error err;
	double v[20] = { 0.5, -1, 0, 1, 1, 0, 1, 2, 3, 7 };
	memcpy(v + cols, row2, cols * sizeof(double));
	chain_dataset d = { .rows = 2, .cols = cols, .values = v };
	assert_int_equal(chain_data_check(&d, &toy, "t.amat", &err), -1);
	return err.msg;
}

static void test_data__check_valid_rows__pass(void **state)
{
	double v[20] = { 0.5, -1, 0, 1, 1, 0, 1, 2, 3, 7, 1e300, 0, 1, 0, 0, 3, 3, 3, 3, 0 };
	chain_dataset d = { .rows = 2, .cols = 10, .values = v };
	chain_error err = { "" };
	assert_int_equal(chain_data_check(&d, &toy, "t.amat", &err), 0);
}

static void test_data__check_bin_value_2__names_row_col_and_variable(void **state)
{
	double row[10] = { 0, 0, 0, 1, 2, 0, 0, 0, 0, 0 };
	assert_msg(check_fails(row, 10), "t.amat:2:5:", "expected 0 or 1 for bin variable x[2], found 2");
	double half[10] = { 0, 0, 0.5, 1, 1, 0, 0, 0, 0, 0 };
	assert_msg(check_fails(half, 10), "t.amat:2:3:", "bin variable x[0], found 0.5");
}

static void test_data__check_cat_out_of_range__names_element(void **state)
{
	double row[10] = { 0, 0, 0, 1, 1, 0, 0, 4, 0, 0 };
	assert_msg(check_fails(row, 10), "t.amat:2:8:", "expected an integer in 0..3 for cat variable c[1, 0], found 4");
	double frac[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 1.5, 0 };
	assert_msg(check_fails(frac, 10), "t.amat:2:9:", "cat variable c[1, 1], found 1.5");
	double neg[10] = { 0, 0, 0, 1, 1, -1, 0, 0, 0, 0 };
	assert_msg(check_fails(neg, 10), "t.amat:2:6:", "c[0, 0], found -1");
}

static void test_data__check_int_and_real__need_counts_and_finite(void **state)
{
	double negk[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, -3 };
	assert_msg(check_fails(negk, 10), "t.amat:2:10:", "expected an integer from 0 to 2^53 - 1 (9007199254740991) for int variable k, found -3");
	/* beyond 2^53 a double does not hold every integer: 9007199254740993
	 * (text, or an int64 .npy) is read as ...992, not the count written */
	double big[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, 9007199254740992.0 };
	assert_msg(check_fails(big, 10), "t.amat:2:10:", "expected an integer from 0 to 2^53 - 1", "found 9007199254740992");
	double huge[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, 1e300 };
	assert_msg(check_fails(huge, 10), "t.amat:2:10:", "found 1e+300");
	double top[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, 9007199254740991.0 };
	chain_dataset d = { .rows = 1, .cols = 10, .values = top };
	chain_error err;
	assert_int_equal(chain_data_check(&d, &toy, "t.amat", &err), 0);
	double fk[10] = { 0, 0, 0, 1, 1, 0, 0, 0, 0, 0.999999999 };
	assert_msg(check_fails(fk, 10), "t.amat:2:10:", "found 0.999999999");
	double nan_s[10] = { 0, NAN, 0, 1, 1, 0, 0, 0, 0, 0 };
	assert_msg(check_fails(nan_s, 10), "t.amat:2:2:", "expected a finite number for real variable s[1], found NaN");
}

/* A count a sum's range depends on is held to the descriptor's value_max
 * (a count of 10^15 ran the kernels for ever); a category too; a
 * descriptor older than the field is read without it. */
static void test_data__check_value_max__names_the_limit_and_why(void **state)
{
	size_t most[4] = { (size_t)-1, (size_t)-1, 2, 16777215 };
	chain_model lim = toy;
	lim.value_max = most;
	double v[10] = { 0, 0, 0, 1, 1, 0, 1, 2, 2, 16777215 };
	chain_dataset d = { .rows = 1, .cols = 10, .values = v };
	chain_error err = { "" };
	assert_int_equal(chain_data_check(&d, &lim, "t.amat", &err), 0);
	v[9] = 1e15;
	assert_int_equal(chain_data_check(&d, &lim, "t.amat", &err), -1);
	assert_msg(err.msg, "t.amat:1:10: expected an integer from 0 to 16777215 (a sum's range in the model depends on it; at most 2^24 terms) for int variable k, found 1e+15");
	/* what the kind refuses is said as the kind says it */
	v[9] = 2.5;
	assert_int_equal(chain_data_check(&d, &lim, "t.amat", &err), -1);
	assert_msg(err.msg, "t.amat:1:10: expected an integer from 0 to 2^53 - 1");
	v[9] = 0;
	v[8] = 3;
	assert_int_equal(chain_data_check(&d, &lim, "t.amat", &err), -1);
	assert_msg(err.msg, "t.amat:1:9: expected an integer from 0 to 2 (a sum's range", "for cat variable c[1, 1], found 3");
	lim.abi_version = 2; /* value_max is not there */
	assert_int_equal(chain_data_check(&d, &lim, "t.amat", &err), 0);
}

static void test_data__check_wrong_width__lists_what_a_row_holds(void **state)
{
	double v[9] = { 0 };
	chain_dataset d = { .rows = 1, .cols = 9, .values = v };
	chain_error err;
	assert_int_equal(chain_data_check(&d, &toy, "w.amat", &err), -1);
	assert_msg(err.msg, "w.amat:", "rows have 9 values", "model toy expects 10",
	           "input s: real[2]; data x: bin[3]; data c: cat(4)[2, 2]; data k: int");
}

/* ---- saving ---------------------------------------------------------- */

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[1 << 16];
	*n = fread(buf, 1, sizeof buf - 1, f);
	buf[*n] = '\0';
	fclose(f);
	return buf;
}

/* No "*.tmp-*" file is left in tmpdir after a save. */
static void assert_no_temp_files(void)
{
	DIR *d = opendir(tmpdir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strstr(e->d_name, ".tmp-"))
			fail_msg("temp file left behind: %s", e->d_name);
	closedir(d);
}

static void test_data__save_amat__integers_plain_and_roundtrip(void **state)
{
	double v[6] = { 0, 1, -3, 2.5, 0.1, 1e-20 };
	chain_dataset d = { .rows = 2, .cols = 3, .values = v };
	chain_error err;
	const char *p = tmp_path("out.amat");
	fixture_text("out.amat", "old contents\n");
	assert_int_equal(chain_data_save(p, &d, &err), 0);
	size_t n;
	assert_string_equal(slurp(p, &n), "0 1 -3\n2.5 0.1 1e-20\n");
	chain_dataset back = load_ok(p, NULL, 2, 3);
	assert_memory_equal(back.values, v, sizeof v);
	chain_dataset_free(&back);
	assert_no_temp_files();
}

/* Integers 0..255 compact to one byte each and read, check and save as the
 * doubles did; anything a byte cannot hold exactly (a fraction, -0, 256, a
 * negative, NaN) leaves the set as it is. */
static void test_data__compact__bytes_when_every_value_fits_same_results(void **state)
{
	/* row 2 has cat variable c[0, 1] = 5, out of 0..3 */
	const double fits[20] = { 255, 1, 0, 1, 1, 0, 1, 2, 3, 7, 1, 0, 1, 0, 0, 5, 3, 3, 3, 0 };
	chain_dataset d = { .rows = 2, .cols = 10 };
	d.values = malloc(sizeof fits);
	assert_non_null(d.values);
	memcpy(d.values, fits, sizeof fits);
	assert_int_equal(chain_data_compact(&d), 1);
	assert_null(d.values);
	assert_non_null(d.bytes);
	assert_int_equal(chain_data_compact(&d), 1); /* already compact */
	for (int i = 0; i < 20; i++)
		assert_true(chain_data_value(&d, (size_t)i) == fits[i]);

	/* save: the same files as from the doubles */
	chain_dataset dd = { .rows = 2, .cols = 10, .values = (double *)fits };
	chain_error err = { "" };
	const char *names[] = { "compact.npy", "compact.amat" };
	for (int k = 0; k < 2; k++) {
		const char *p = tmp_path(names[k]);
		size_t na, nb;
		assert_int_equal(chain_data_save(p, &dd, &err), 0);
		const char *first = slurp(p, &nb);
		char *want = malloc(nb ? nb : 1);
		assert_non_null(want);
		memcpy(want, first, nb);
		assert_int_equal(chain_data_save(p, &d, &err), 0);
		const char *got = slurp(p, &na);
		assert_int_equal(na, nb);
		assert_memory_equal(got, want, na);
		free(want);
	}

	/* check: the same verdict and message */
	assert_int_equal(chain_data_check(&dd, &toy, "t.amat", &err), -1);
	char msg[sizeof err.msg];
	memcpy(msg, err.msg, sizeof msg);
	assert_int_equal(chain_data_check(&d, &toy, "t.amat", &err), -1);
	assert_string_equal(err.msg, msg);
	assert_msg(msg, "t.amat:2:6:", "cat");
	chain_dataset_free(&d);
	assert_null(d.bytes);

	const double misfits[] = { 0.5, -0.0, 256, -1, NAN, INFINITY };
	for (size_t k = 0; k < sizeof misfits / sizeof misfits[0]; k++) {
		chain_dataset m = { .rows = 1, .cols = 3, .values = malloc(3 * sizeof(double)) };
		assert_non_null(m.values);
		m.values[0] = 1;
		m.values[1] = misfits[k];
		m.values[2] = 0;
		assert_int_equal(chain_data_compact(&m), 0);
		assert_non_null(m.values);
		assert_null(m.bytes);
		assert_true(memcmp(&m.values[1], &misfits[k], sizeof(double)) == 0);
		chain_dataset_free(&m);
	}
}

/* Loads path both ways; the compact load must give the same table, as
 * bytes when want_bytes, else as doubles. */
static void same_both_ways(const char *path, const chain_load_options *o, int want_bytes)
{
	chain_dataset a, b;
	chain_error err = { "" };
	if (chain_data_load(path, o, &a, &err) != 0)
		fail_msg("load: %s", err.msg);
	if (chain_data_load_compact(path, o, &b, &err) != 0)
		fail_msg("compact load: %s", err.msg);
	assert_int_equal(a.rows, b.rows);
	assert_int_equal(a.cols, b.cols);
	assert_true(want_bytes ? b.bytes && !b.values : b.values && !b.bytes);
	for (size_t i = 0; i < a.rows * a.cols; i++)
		assert_true(memcmp(&a.values[i], &(double){ chain_data_value(&b, i) }, sizeof(double)) == 0);
	chain_dataset_free(&a);
	chain_dataset_free(&b);
}

/* chain_data_load_compact: bytes parsed straight from text and uint8
 * binary files; doubles from the first value a byte cannot hold (here late
 * in the file, after bytes were already stored); binarized data compacted
 * after binarizing; the same errors as chain_data_load. */
static void test_data__load_compact__bytes_or_doubles_same_table(void **state)
{
	char text[8192];
	size_t o = 0;
	for (int r = 0; r < 300; r++) /* 3000 values: past the first growth */
		for (int c = 0; c < 10; c++)
			o += (size_t)snprintf(text + o, sizeof text - o, c == 9 ? "%d\n" : "%d ", (r * 7 + c) % 3);
	same_both_ways(fixture_text("c.amat", text), NULL, 1);
	snprintf(text + o - 2, sizeof text - o + 2, "-0\n");
	same_both_ways(fixture_text("c-neg0.amat", text), NULL, 0);
	snprintf(text + o - 2, sizeof text - o + 2, "0.5\n");
	same_both_ways(fixture_text("c-half.amat", text), NULL, 0);
	chain_load_options bin = { .binarize = CHAIN_BINARIZE_THRESHOLD, .threshold = 0.5 };
	same_both_ways(fixture_text("c-half2.amat", text), &bin, 1);
	same_both_ways("examples/data/images-idx3-ubyte.gz", NULL, 1);
	same_both_ways("examples/data/images-idx3-ubyte.gz", &bin, 1);
	const double f[4] = { 0, 1, 2, 300 };
	same_both_ways(fixture_npy("c.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", f, sizeof f), NULL, 0);

	chain_dataset d = { .rows = 7, .cols = 7, .values = (double *)&d };
	chain_error e1 = { "" }, e2 = { "" };
	const char *bad = fixture_text("c-bad.amat", "0 1 1\n1 0\n");
	assert_int_equal(chain_data_load(bad, NULL, &d, &e1), -1);
	assert_int_equal(chain_data_load_compact(bad, NULL, &d, &e2), -1);
	assert_null(d.values);
	assert_null(d.bytes);
	assert_string_equal(e1.msg, e2.msg);
}

static void test_data__save_npy__aligned_header_and_roundtrip(void **state)
{
	double v[6] = { 0, 1, -3, 2.5, 0.1, 1e-300 };
	chain_dataset d = { .rows = 3, .cols = 2, .values = v };
	chain_error err;
	const char *p = tmp_path("out.npy");
	assert_int_equal(chain_data_save(p, &d, &err), 0);
	size_t n;
	const char *bytes = slurp(p, &n);
	size_t data_at = 10 + ((unsigned char)bytes[8] | (unsigned char)bytes[9] << 8);
	assert_int_equal(data_at % 64, 0);
	assert_int_equal(n, data_at + sizeof v);
	assert_memory_equal(bytes, "\x93NUMPY\x01\x00", 8);
	assert_int_equal(bytes[data_at - 1], '\n');
	assert_non_null(strstr(bytes + 10, "'shape': (3, 2)"));
	chain_dataset back = load_ok(p, NULL, 3, 2);
	assert_memory_equal(back.values, v, sizeof v);
	chain_dataset_free(&back);
	assert_no_temp_files();
}

static void test_data__save_bad_requests__rejected_and_target_kept(void **state)
{
	double v[2] = { 1, INFINITY };
	chain_dataset d = { .rows = 1, .cols = 2, .values = v };
	chain_error err;
	const char *p = fixture_text("keep.amat", "precious\n");
	assert_int_equal(chain_data_save(p, &d, &err), -1);
	assert_msg(err.msg, "keep.amat", "row 1, column 2", "not finite");
	size_t n;
	assert_string_equal(slurp(p, &n), "precious\n");
	v[1] = 2;
	assert_int_equal(chain_data_save(tmp_path("x.csv"), &d, &err), -1);
	assert_msg(err.msg, "x.csv", "expected .amat, .txt or .npy");
	assert_int_equal(chain_data_save(tmp_path("x.amat.gz"), &d, &err), -1);
	assert_msg(err.msg, "x.amat.gz", "gzip");
	assert_int_equal(chain_data_save(tmp_path("no-such-dir/x.amat"), &d, &err), -1);
	assert_msg(err.msg, "no-such-dir/x.amat", "cannot create");
	assert_no_temp_files();
}

/* ---- hostile input in bulk ------------------------------------------- */

/* Truncations and byte flips of valid files of every format must load or
 * fail with a message, never crash (run under ASan/UBSan in `make test`). */
static void test_data__mutated_files__never_crash(void **state)
{
	unsigned char seeds[4][256];
	size_t lens[4];
	double v[6] = { 0, 1, 2, 3, 4, 5 };
	lens[0] = make_npy(seeds[0], 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof v);
	uint32_t dims[3] = { 2, 2, 2 };
	lens[1] = make_idx(seeds[1], 0x08, 3, dims, "abcdefgh", 8);
	const char *text = "0 1 0.5\n1e3 -2 7\n# c\n3 4 5\n";
	lens[2] = strlen(text);
	memcpy(seeds[2], text, lens[2]);
	lens[3] = make_npy(seeds[3], 2, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", "abc", 3);
	static const char *names[4] = { "m.npy", "m-idx3-ubyte", "m.amat", "m2.npy" };
	for (int s = 0; s < 4; s++) {
		unsigned char buf[256];
		for (size_t cut = 0; cut <= lens[s]; cut++) { /* every truncation */
			chain_dataset d;
			chain_error err;
			if (chain_data_load(fixture(names[s], seeds[s], cut), NULL, &d, &err) == 0)
				chain_dataset_free(&d);
		}
		for (uint64_t trial = 0; trial < 300; trial++) { /* random byte changes */
			memcpy(buf, seeds[s], lens[s]);
			for (uint32_t k = 0; k < 3; k++) {
				uint64_t r = chain_rng_bits(99, CHAIN_STREAM_DATA, trial, (uint32_t)s, k);
				buf[r % lens[s]] = (unsigned char)(r >> 32);
			}
			chain_dataset d;
			chain_error err = { "" };
			int rc = chain_data_load(fixture(names[s], buf, lens[s]), NULL, &d, &err);
			if (rc == 0)
				chain_dataset_free(&d);
			else
				assert_non_null(strstr(err.msg, names[s]));
		}
	}
}

/* ---- the shipped data ------------------------------------------------ */

static void test_data__shipped_binarized_valid__1000_rows_of_784_bits(void **state)
{
	chain_dataset d = load_ok("examples/data/binarized-valid.amat.gz", NULL, 1000, 784);
	size_t ones = 0;
	for (size_t i = 0; i < d.rows * d.cols; i++) {
		assert_true(d.values[i] == 0.0 || d.values[i] == 1.0);
		ones += d.values[i] == 1.0;
	}
	assert_true(ones > 0.05 * 784000 && ones < 0.5 * 784000); /* digits: mostly background */
	chain_dataset_free(&d);
}

static void test_data__shipped_train__loads_7000_rows_quickly(void **state)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	chain_dataset d = load_ok("examples/data/binarized-train.amat.gz", NULL, 7000, 784);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	print_message("binarized-train.amat.gz: 7000x784 in %.3f s\n", secs);
	for (size_t i = 0; i < d.rows * d.cols; i++)
		assert_true(d.values[i] == 0.0 || d.values[i] == 1.0);
	chain_dataset_free(&d);
	assert_true(secs < 10.0); /* well under a second in an optimized build; slack for sanitizers */
}

static void test_data__shipped_idx_images__10000_rows_of_784_bytes(void **state)
{
	chain_dataset d = load_ok("examples/data/images-idx3-ubyte.gz", NULL, 10000, 784);
	double lo = 255, hi = 0;
	for (size_t i = 0; i < d.rows * d.cols; i++) {
		double x = d.values[i];
		assert_true(x >= 0 && x <= 255 && x == floor(x));
		lo = x < lo ? x : lo;
		hi = x > hi ? x : hi;
	}
	assert_true(lo == 0 && hi == 255);
	assert_true(d.values[0] == 0); /* the corner of a digit is background */
	chain_dataset_free(&d);

	chain_load_options o = { CHAIN_BINARIZE_THRESHOLD, 0.5, 0 };
	d = load_ok("examples/data/images-idx3-ubyte.gz", &o, 10000, 784);
	for (size_t i = 0; i < d.rows * d.cols; i++)
		assert_true(d.values[i] == 0.0 || d.values[i] == 1.0);
	chain_dataset_free(&d);
}

static void test_data__shipped_labels__idx_and_text_agree(void **state)
{
	chain_dataset idx = load_ok("examples/data/labels-idx1-ubyte.gz", NULL, 10000, 1);
	chain_dataset txt = load_ok("examples/data/labels-train.txt", NULL, 7000, 1);
	for (size_t i = 0; i < idx.rows; i++)
		assert_true(idx.values[i] >= 0 && idx.values[i] <= 9);
	for (size_t i = 0; i < txt.rows; i++)
		assert_true(txt.values[i] >= 0 && txt.values[i] <= 9);
	chain_dataset_free(&idx);
	chain_dataset_free(&txt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data__amat__loads_rows_and_cols),
		cmocka_unit_test(test_data__decimals_and_exponents__parse_exactly),
		cmocka_unit_test(test_data__crlf_blank_and_comment_lines__skipped),
		cmocka_unit_test(test_data__ragged_row__names_row_and_count),
		cmocka_unit_test(test_data__extra_value__names_row_count_and_column),
		cmocka_unit_test(test_data__non_number__names_line_col_and_token),
		cmocka_unit_test(test_data__nan_and_inf__rejected_as_not_finite),
		cmocka_unit_test(test_data__underflow__rejected_like_overflow),
		cmocka_unit_test(test_data__empty_file__says_empty),
		cmocka_unit_test(test_data__binary_garbage__shows_escaped_bytes),
		cmocka_unit_test(test_data__missing_file_or_directory__says_so),
		cmocka_unit_test(test_data__gzip__detected_by_content_whatever_the_name),
		cmocka_unit_test(test_data__truncated_gzip__reports_gzip_error),
		cmocka_unit_test(test_data__gzip_members__concatenated),
		cmocka_unit_test(test_data__gzip_trailing_garbage__rejected_with_offset),
		cmocka_unit_test(test_data__npy_f8_2d__loads),
		cmocka_unit_test(test_data__npy_each_dtype__loads),
		cmocka_unit_test(test_data__npy_fortran_order__rejected),
		cmocka_unit_test(test_data__npy_truncated_data__names_offset_and_sizes),
		cmocka_unit_test(test_data__npy_trailing_bytes__rejected),
		cmocka_unit_test(test_data__npy_huge_shape__fails_before_allocating),
		cmocka_unit_test(test_data__npy_negative_dim__rejected),
		cmocka_unit_test(test_data__npy_header_length_beyond_file__rejected),
		cmocka_unit_test(test_data__npy_bad_dtype_version_or_magic__rejected),
		cmocka_unit_test(test_data__npy_malformed_header__names_offset),
		cmocka_unit_test(test_data__npy_nan_value__names_row_and_column),
		cmocka_unit_test(test_data__idx_ubyte__loads_rows_by_first_dim),
		cmocka_unit_test(test_data__idx_float_and_int__big_endian),
		cmocka_unit_test(test_data__idx_wrong_magic__names_expected_magic),
		cmocka_unit_test(test_data__idx_truncated__names_offset_and_sizes),
		cmocka_unit_test(test_data__idx_huge_or_negative_dims__rejected_without_allocating),
		cmocka_unit_test(test_data__threshold__scales_uint8_first),
		cmocka_unit_test(test_data__stochastic__draws_from_the_binarize_stream),
		cmocka_unit_test(test_data__stochastic__rejects_values_outside_0_1),
		cmocka_unit_test(test_data__check_valid_rows__pass),
		cmocka_unit_test(test_data__check_bin_value_2__names_row_col_and_variable),
		cmocka_unit_test(test_data__check_cat_out_of_range__names_element),
		cmocka_unit_test(test_data__check_int_and_real__need_counts_and_finite),
		cmocka_unit_test(test_data__check_value_max__names_the_limit_and_why),
		cmocka_unit_test(test_data__check_wrong_width__lists_what_a_row_holds),
		cmocka_unit_test(test_data__save_amat__integers_plain_and_roundtrip),
		cmocka_unit_test(test_data__save_npy__aligned_header_and_roundtrip),
		cmocka_unit_test(test_data__compact__bytes_when_every_value_fits_same_results),
		cmocka_unit_test(test_data__load_compact__bytes_or_doubles_same_table),
		cmocka_unit_test(test_data__save_bad_requests__rejected_and_target_kept),
		cmocka_unit_test(test_data__mutated_files__never_crash),
		cmocka_unit_test(test_data__shipped_binarized_valid__1000_rows_of_784_bits),
		cmocka_unit_test(test_data__shipped_train__loads_7000_rows_quickly),
		cmocka_unit_test(test_data__shipped_idx_images__10000_rows_of_784_bytes),
		cmocka_unit_test(test_data__shipped_labels__idx_and_text_agree),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
