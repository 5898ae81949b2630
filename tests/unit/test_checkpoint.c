/* test_checkpoint.c -- safetensors checkpoints: round trips, the exact
 * layout, model mismatches and hostile files. */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "chain/checkpoint.h"
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
	snprintf(tmpdir, sizeof tmpdir, "/tmp/chain-test-ckpt-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_path(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

static const char *fixture(const char *name, const void *bytes, size_t n)
{
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A safetensors file from a JSON header and a data block. */
static const char *fixture_st(const char *name, const char *json, const void *data, size_t n)
{
	static unsigned char buf[1 << 16];
	size_t h = strlen(json);
	assert_true(8 + h + n <= sizeof buf);
	for (int k = 0; k < 8; k++)
		buf[k] = (unsigned char)((uint64_t)h >> (8 * k));
	memcpy(buf + 8, json, h);
	if (n)
		memcpy(buf + 8 + h, data, n);
	return fixture(name, buf, 8 + h + n);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	static unsigned char buf[1 << 16];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	*n = fread(buf, 1, sizeof buf - 1, f);
	buf[*n] = '\0';
	fclose(f);
	return buf;
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

/* ---- models ---------------------------------------------------------- */

/* param W : real[2, 3]; param b : real[3]; param s : real (theta: 10 reals) */
static const chain_var toy_params[] = {
	{ .name = "W", .kind = CHAIN_REAL, .rank = 2, .shape = { 2, 3 }, .offset = 0, .size = 6 },
	{ .name = "b", .kind = CHAIN_REAL, .rank = 1, .shape = { 3 }, .offset = 6, .size = 3 },
	{ .name = "s", .kind = CHAIN_REAL, .rank = 0, .offset = 9, .size = 1 },
};
static const chain_model toy = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .precision = CHAIN_F64,
	.num_params = 10, .num_param_vars = 3, .params = toy_params,
};
static const chain_model toy32 = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .precision = CHAIN_F32,
	.num_params = 10, .num_param_vars = 3, .params = toy_params,
};

/* the same, W transposed */
static const chain_var toy_t_params[] = {
	{ .name = "W", .kind = CHAIN_REAL, .rank = 2, .shape = { 3, 2 }, .offset = 0, .size = 6 },
	{ .name = "b", .kind = CHAIN_REAL, .rank = 1, .shape = { 3 }, .offset = 6, .size = 3 },
	{ .name = "s", .kind = CHAIN_REAL, .rank = 0, .offset = 9, .size = 1 },
};
static const chain_model toy_t = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .precision = CHAIN_F64,
	.num_params = 10, .num_param_vars = 3, .params = toy_t_params,
};

/* toy plus a param c, and toy without s */
static const chain_var toy_c_params[] = {
	{ .name = "W", .kind = CHAIN_REAL, .rank = 2, .shape = { 2, 3 }, .offset = 0, .size = 6 },
	{ .name = "b", .kind = CHAIN_REAL, .rank = 1, .shape = { 3 }, .offset = 6, .size = 3 },
	{ .name = "s", .kind = CHAIN_REAL, .rank = 0, .offset = 9, .size = 1 },
	{ .name = "c", .kind = CHAIN_REAL, .rank = 1, .shape = { 2 }, .offset = 10, .size = 2 },
};
static const chain_model toy_c = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .precision = CHAIN_F64,
	.num_params = 12, .num_param_vars = 4, .params = toy_c_params,
};
static const chain_model toy_no_s = {
	.abi_version = CHAIN_ABI_VERSION, .name = "toy", .precision = CHAIN_F64,
	.num_params = 9, .num_param_vars = 2, .params = toy_params,
};

static const double theta0[10] = { 1, -2, 3.5, 1e-300, -0.0, 6, 7, 8, 9, 0.1 };

/* A valid F64 file of toy, saved by chain itself. */
static const char *saved_toy(const char *name)
{
	chain_error err;
	const char *p = tmp_path(name);
	if (chain_checkpoint_save(p, &toy, theta0, NULL, 0, &err) != 0)
		fail_msg("save failed: %s", err.msg);
	return p;
}

/* Loads into toy, expecting failure, and checks theta was not touched. */
static const char *load_fails(const char *path, const chain_model *m)
{
	static chain_error err;
	double theta[12];
	for (int i = 0; i < 12; i++)
		theta[i] = 42;
	err.msg[0] = '\0';
	assert_int_equal(chain_checkpoint_load(path, m, theta, NULL, NULL, 0, &err), -1);
	for (int i = 0; i < 12; i++)
		assert_true(theta[i] == 42);
	assert_true(err.msg[0] != '\0');
	return err.msg;
}

/* ---- round trips and layout ------------------------------------------ */

static void test_checkpoint__f64_roundtrip__bits_and_metadata_kept(void **state)
{
	chain_metadata extra[2] = { { "epoch", "12" }, { "note", "quote \" and \\ and \n newline" } };
	chain_error err;
	const char *p = tmp_path("rt.safetensors");
	assert_int_equal(chain_checkpoint_save(p, &toy, theta0, extra, 2, &err), 0);
	double theta[10] = { 0 };
	char value[64];
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "epoch", value, sizeof value, &err), 0);
	assert_memory_equal(theta, theta0, sizeof theta);
	assert_string_equal(value, "12");
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "note", value, sizeof value, &err), 0);
	assert_string_equal(value, "quote \" and \\ and \n newline");
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "model", value, sizeof value, &err), 0);
	assert_string_equal(value, "toy");
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "format", value, sizeof value, &err), 0);
	assert_string_equal(value, "chain-1");
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "absent", value, sizeof value, &err), 0);
	assert_string_equal(value, "");
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "note", value, 6, &err), 0);
	assert_string_equal(value, "quote"); /* truncated to meta_cap */
	assert_no_temp_files();
}

/* The exact bytes: header length, JSON in declaration order, 8-byte
 * alignment, little-endian data. */
static void test_checkpoint__layout__is_standard_safetensors(void **state)
{
	const char *p = saved_toy("layout.safetensors");
	size_t n;
	unsigned char *b = slurp(p, &n);
	uint64_t h = 0;
	for (int k = 8; k-- > 0;)
		h = h << 8 | b[k];
	assert_int_equal(h % 8, 0);
	assert_int_equal(n, 8 + h + 10 * 8);
	const char *want = "{\"__metadata__\":{\"format\":\"chain-1\",\"model\":\"toy\"},"
	                   "\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
	                   "\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[48,72]},"
	                   "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[72,80]}}";
	assert_memory_equal(b + 8, want, strlen(want));
	for (size_t i = strlen(want); i < h; i++)
		assert_int_equal(b[8 + i], ' ');
	/* theta0[2] = 3.5 = 0x400C000000000000, little-endian */
	static const unsigned char le35[8] = { 0, 0, 0, 0, 0, 0, 0x0C, 0x40 };
	assert_memory_equal(b + 8 + h + 16, le35, 8);
}

static void test_checkpoint__f32_model__writes_f32_and_converts_both_ways(void **state)
{
	float t32[10] = { 1, -2, 3.5f, 0, 0, 6, 7, 8, 9, 0.1f };
	chain_error err;
	const char *p32 = tmp_path("f32.safetensors");
	assert_int_equal(chain_checkpoint_save(p32, &toy32, t32, NULL, 0, &err), 0);
	size_t n;
	unsigned char *b = slurp(p32, &n);
	assert_non_null(strstr((char *)b + 8, "\"dtype\":\"F32\""));
	float back32[10];
	assert_int_equal(chain_checkpoint_load(p32, &toy32, back32, NULL, NULL, 0, &err), 0);
	assert_memory_equal(back32, t32, sizeof t32);
	double back64[10];
	assert_int_equal(chain_checkpoint_load(p32, &toy, back64, NULL, NULL, 0, &err), 0);
	for (int i = 0; i < 10; i++)
		assert_true(back64[i] == (double)t32[i]);
	/* an F64 file into an f32 model */
	const char *p64 = saved_toy("to32.safetensors");
	assert_int_equal(chain_checkpoint_load(p64, &toy32, back32, NULL, NULL, 0, &err), 0);
	for (int i = 0; i < 10; i++)
		assert_true(back32[i] == (float)theta0[i]);
}

static void test_checkpoint__save_replaces_existing_file_atomically(void **state)
{
	const char *p = fixture("over.safetensors", "old", 3);
	chain_error err;
	assert_int_equal(chain_checkpoint_save(p, &toy, theta0, NULL, 0, &err), 0);
	double theta[10];
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, NULL, NULL, 0, &err), 0);
	assert_no_temp_files();
	assert_int_equal(chain_checkpoint_save(tmp_path("nodir/x.safetensors"), &toy, theta0, NULL, 0, &err), -1);
	assert_msg(err.msg, "nodir/x.safetensors", "cannot create");
}

static void test_checkpoint__reserved_or_repeated_metadata_key__rejected(void **state)
{
	chain_metadata model[1] = { { "model", "x" } };
	chain_metadata twice[2] = { { "k", "1" }, { "k", "2" } };
	chain_error err;
	const char *p = tmp_path("meta.safetensors");
	assert_int_equal(chain_checkpoint_save(p, &toy, theta0, model, 1, &err), -1);
	assert_msg(err.msg, "meta.safetensors", "'model' is reserved");
	assert_int_equal(chain_checkpoint_save(p, &toy, theta0, twice, 2, &err), -1);
	assert_msg(err.msg, "meta.safetensors", "'k' given twice");
}

/* ---- the file against the model -------------------------------------- */

static void test_checkpoint__shape_differs__says_both_shapes(void **state)
{
	const char *msg = load_fails(saved_toy("shape.safetensors"), &toy_t);
	assert_msg(msg, "shape.safetensors: byte", "tensor 'W' has shape [2, 3] where model toy has [3, 2]");
}

static void test_checkpoint__missing_tensor__named(void **state)
{
	const char *msg = load_fails(saved_toy("missing.safetensors"), &toy_c);
	assert_msg(msg, "missing.safetensors", "missing tensor 'c'", "real[2]");
}

static void test_checkpoint__unexpected_tensor__named(void **state)
{
	const char *msg = load_fails(saved_toy("unexpected.safetensors"), &toy_no_s);
	assert_msg(msg, "unexpected.safetensors: byte", "unexpected tensor 's'", "no param");
}

static void test_checkpoint__nan_in_data__rejected_theta_untouched(void **state)
{
	double t[10];
	memcpy(t, theta0, sizeof t);
	t[4] = NAN;
	chain_error err;
	const char *p = tmp_path("nan.safetensors");
	assert_int_equal(chain_checkpoint_save(p, &toy, t, NULL, 0, &err), 0);
	const char *msg = load_fails(p, &toy);
	assert_msg(msg, "nan.safetensors: byte 256:", "W[1, 1] is NaN", "expected a finite number");
	/* 1e300 fits a double, not a float */
	t[4] = 1e300;
	assert_int_equal(chain_checkpoint_save(p, &toy, t, NULL, 0, &err), 0);
	float t32[10];
	assert_int_equal(chain_checkpoint_load(p, &toy32, t32, NULL, NULL, 0, &err), -1);
	assert_msg(err.msg, "W[1, 1]", "fits a float");
}

/* ---- hostile files --------------------------------------------------- */

static void test_checkpoint__short_or_huge_header_length__rejected(void **state)
{
	const char *msg = load_fails(fixture("short.safetensors", "\x10\0\0", 3), &toy);
	assert_msg(msg, "short.safetensors: byte 0:", "8-byte header length", "found 3 bytes");
	msg = load_fails(fixture("huge.safetensors", "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10), &toy);
	assert_msg(msg, "huge.safetensors: byte 0:", "header length 9223372036854775807", "2 bytes after it");
	msg = load_fails(fixture("past.safetensors", "\x40\0\0\0\0\0\0\0{}", 10), &toy);
	assert_msg(msg, "past.safetensors: byte 0:", "header length 64");
	msg = load_fails(fixture("empty.safetensors", "", 0), &toy);
	assert_msg(msg, "empty.safetensors", "found 0 bytes");
}

static const char good_json[] =
	"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
	"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[48,72]},"
	"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[72,80]}}";

/* A file written by another tool (no __metadata__, other key order) loads. */
static void test_checkpoint__foreign_file_without_metadata__loads(void **state)
{
	chain_error err;
	double theta[10];
	char value[16] = "x";
	const char *p = fixture_st("foreign.safetensors", good_json, theta0, sizeof theta0);
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "model", value, sizeof value, &err), 0);
	assert_memory_equal(theta, theta0, sizeof theta);
	assert_string_equal(value, "");
}

static void test_checkpoint__offsets_out_of_range_or_overlapping__rejected(void **state)
{
	const char *msg = load_fails(fixture_st("range.safetensors",
		"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[48,72]},"
		"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[80,88]}}", theta0, sizeof theta0), &toy);
	assert_msg(msg, "range.safetensors: byte", "tensor 's'", "[80, 88] out of range", "80 bytes");
	msg = load_fails(fixture_st("overlap.safetensors",
		"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[40,64]},"
		"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[72,80]}}", theta0, sizeof theta0), &toy);
	assert_msg(msg, "overlap.safetensors: byte", "'b' (data [40, 64)) overlaps tensor 'W' (data [0, 48))");
	static double eleven[11];
	msg = load_fails(fixture_st("gap.safetensors",
		"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[56,80]},"
		"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[80,88]}}", eleven, sizeof eleven), &toy);
	assert_msg(msg, "gap.safetensors: byte", "tensor 'b' starts at data byte 56, expected 48", "[48, 56)", "no tensor");
	msg = load_fails(fixture_st("size.safetensors",
		"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,40]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[40,64]},"
		"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[64,72]}}", theta0, 72), &toy);
	assert_msg(msg, "size.safetensors: byte 9:", "tensor 'W'", "hold 40 bytes, expected 48");
	msg = load_fails(fixture_st("trail.safetensors", good_json, theta0, sizeof theta0 - 1), &toy);
	assert_msg(msg, "trail.safetensors", "out of range");
	static double more[11];
	msg = load_fails(fixture_st("more.safetensors", good_json, more, sizeof more), &toy);
	assert_msg(msg, "more.safetensors: byte 254:", "end of the file", "8 more bytes");
	msg = load_fails(fixture_st("reversed.safetensors",
		"{\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[48,0]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[48,72]},"
		"\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[72,80]}}", theta0, sizeof theta0), &toy);
	assert_msg(msg, "reversed.safetensors", "[48, 0] out of range");
}

/* Data blocks need not follow the header's order: here s sits between W
 * and b, and must load from there. */
static void test_checkpoint__tensors_in_any_data_order__load(void **state)
{
	chain_error err;
	double theta[10];
	const char *p = fixture_st("perm.safetensors",
		"{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[48,56]},"
		"\"W\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
		"\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[56,80]}}", theta0, sizeof theta0);
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, NULL, NULL, 0, &err), 0);
	assert_true(theta[9] == theta0[6] && theta[6] == theta0[7] && theta[0] == theta0[0]);
}

static void test_checkpoint__wrong_dtype__rejected(void **state)
{
	const char *msg = load_fails(fixture_st("bf16.safetensors",
		"{\"W\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", theta0, 12), &toy);
	assert_msg(msg, "bf16.safetensors: byte 22:", "tensor 'W'", "expected dtype \"F64\" or \"F32\", found \"BF16\"");
	msg = load_fails(fixture_st("numdt.safetensors",
		"{\"W\":{\"dtype\":64,\"shape\":[2,3],\"data_offsets\":[0,48]}}", theta0, 48), &toy);
	assert_msg(msg, "numdt.safetensors: byte 22:", "expected a dtype string, found '6'");
	/* names from the file are shown escaped: a message stays on one line */
	msg = load_fails(fixture_st("nl.safetensors",
		"{\"a\\nb\":{\"dtype\":\"I\\u00078\",\"shape\":[],\"data_offsets\":[0,1]}}", theta0, 1), &toy);
	assert_msg(msg, "nl.safetensors: byte 25:", "tensor 'a\\x0ab'", "found \"I\\x078\"");
	assert_null(strchr(msg, '\n'));
}

/* Malformed JSON: each message points at the byte and says what was expected. */
static void test_checkpoint__malformed_json__names_byte_and_expectation(void **state)
{
	static const struct { const char *json, *needle1, *needle2; } cases[] = {
		{ "{\"W\" {}}", "byte 13:", "expected ':' after the name, found '{'" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[01],\"data_offsets\":[0,8]}}", "byte 37:", "without leading zeros" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[-1],\"data_offsets\":[0,8]}}", "byte 37:", "non-negative integer" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", "byte 38:", "no fraction" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", "byte 37:", "fits in 64 bits" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[1,2,3,4,5],\"data_offsets\":[0,8]}}", "byte 45:", "at most 4 dimensions" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0]}}", "byte 57:", "',' between the two data offsets" },
		{ "{\"W\":{\"dtype\":\"F64\",\"dtype\":\"F64\"}}", "byte 28:", "repeated key \"dtype\"" },
		{ "{\"W\":{\"dtype\":\"F64\",\"zzz\":1}}", "byte 28:", "unexpected key \"zzz\"" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[]}}", "byte 13:", "tensor 'W' has no \"data_offsets\"" },
		{ "{\"W\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
		  "\"W\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]}}", "byte 61:", "tensor 'W' appears twice (first at byte 9)" },
		{ "{\"__metadata__\":{},\"__metadata__\":{}}", "byte 27:", "\"__metadata__\" appears twice" },
		{ "{\"__metadata__\":{\"a\":1}}", "byte 29:", "a metadata value (a string), found '1'" },
		{ "{\"W\":{\"dtype\":\"F\\x64\"}}", "byte 24:", "a valid escape" },
		{ "{\"W\":{\"dtype\":\"F64}}", "byte 28:", "a closing '\"'" },
		{ "{\"W\":{\"dtype\":\"F\n64\"}}", "byte 24:", "control characters must be escaped" },
		{ "{\"a\\ud800\":{}}", "byte 17:", "low surrogate" },
		{ "{\"a\\u0000\":{}}", "byte 11:", "other than \\u0000" },
		{ "{\"a\\u12G4\":{}}", "byte 15:", "a hex digit" },
		{ "{}  x", "byte 12:", "only blanks after the header's closing '}', found 'x'" },
		{ "[]", "byte 8:", "'{' starting the header, found '['" },
		{ "{\"W\":{\"dtype\":\"F64\",", "byte 28:", "found the end of the header" },
	};
	char name[64];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(name, sizeof name, "json%zu.safetensors", i);
		const char *msg = load_fails(fixture_st(name, cases[i].json, NULL, 0), &toy);
		assert_msg(msg, name, cases[i].needle1, cases[i].needle2);
	}
}

static void test_checkpoint__unicode_escapes__decoded_to_utf8(void **state)
{
	char json[512];
	snprintf(json, sizeof json, "{\"__metadata__\":{\"who\":\"caf\\u00e9 \\ud83d\\ude00 \\/\"},%s", good_json + 1);
	const char *p = fixture_st("utf8.safetensors", json, theta0, sizeof theta0);
	chain_error err;
	double theta[10];
	char value[64];
	assert_int_equal(chain_checkpoint_load(p, &toy, theta, "who", value, sizeof value, &err), 0);
	assert_string_equal(value, "caf\xc3\xa9 \xf0\x9f\x98\x80 /");
}

static void test_checkpoint__other_format__rejected(void **state)
{
	char json[512];
	snprintf(json, sizeof json, "{\"__metadata__\":{\"format\":\"pt\"},%s", good_json + 1);
	const char *msg = load_fails(fixture_st("pt.safetensors", json, theta0, sizeof theta0), &toy);
	assert_msg(msg, "pt.safetensors", "format \"pt\", expected \"chain-1\"");
}

/* chain_checkpoint_metadata: several keys from one read of the header, a
 * missing key told apart from an empty value (chain train's --resume needs
 * both: an absent epoch is a foreign file, an empty one a damaged file). */
static void test_checkpoint__metadata__values_or_null_when_absent(void **state)
{
	chain_metadata extra[3] = { { "epoch", "12" }, { "seed", "" }, { "best_valid", "none" } };
	chain_error err;
	const char *p = tmp_path("meta.safetensors");
	assert_int_equal(chain_checkpoint_save(p, &toy, theta0, extra, 3, &err), 0);
	const char *keys[4] = { "epoch", "seed", "absent", "model" };
	char *values[4] = { (char *)"x", (char *)"x", (char *)"x", (char *)"x" };
	assert_int_equal(chain_checkpoint_metadata(p, 4, keys, values, &err), 0);
	assert_string_equal(values[0], "12");
	assert_string_equal(values[1], "");
	assert_null(values[2]);
	assert_string_equal(values[3], "toy");
	for (int i = 0; i < 4; i++)
		free(values[i]);
	/* a file without __metadata__: every value NULL */
	const char *f = fixture_st("meta-foreign.safetensors", good_json, theta0, sizeof theta0);
	assert_int_equal(chain_checkpoint_metadata(f, 2, keys, values, &err), 0);
	assert_null(values[0]);
	assert_null(values[1]);
	/* a damaged header: an error naming the file, and no values */
	const char *bad = fixture("meta-bad.safetensors", "\x08\0\0\0\0\0\0\0{\"a\":1}  ", 16);
	assert_int_equal(chain_checkpoint_metadata(bad, 2, keys, values, &err), -1);
	assert_msg(err.msg, "meta-bad.safetensors");
	assert_null(values[0]);
	assert_null(values[1]);
	assert_int_equal(chain_checkpoint_metadata(tmp_path("nope.safetensors"), 2, keys, values, &err), -1);
	assert_msg(err.msg, "nope.safetensors", "cannot open");
}

/* A key repeated inside __metadata__ ("epoch" twice) made the value depend
 * on which one the reader kept: it is refused like a repeated tensor. */
static void test_checkpoint__repeated_key_in_file_metadata__rejected(void **state)
{
	char json[512];
	snprintf(json, sizeof json, "{\"__metadata__\":{\"epoch\":\"3\",\"seed\":\"1\",\"epoch\":\"x\"},%s",
	         good_json + 1);
	const char *p = fixture_st("dupmeta.safetensors", json, theta0, sizeof theta0);
	const char *msg = load_fails(p, &toy);
	assert_msg(msg, "dupmeta.safetensors: byte 48: ", "metadata key \"epoch\" appears twice");
	const char *keys[1] = { "epoch" };
	char *values[1];
	chain_error err;
	assert_int_equal(chain_checkpoint_metadata(p, 1, keys, values, &err), -1);
	assert_msg(err.msg, "appears twice");
}

/* Truncations and byte changes of a valid file: an error or a load, never
 * a crash, and theta untouched on error. */
static void test_checkpoint__mutated_files__never_crash(void **state)
{
	size_t n;
	unsigned char good[1024];
	unsigned char *b = slurp(saved_toy("seed.safetensors"), &n);
	memcpy(good, b, n);
	for (size_t cut = 0; cut < n; cut++) {
		chain_error err;
		double theta[10];
		assert_int_equal(chain_checkpoint_load(fixture("cut.safetensors", good, cut), &toy, theta, NULL, NULL, 0, &err), -1);
		assert_non_null(strstr(err.msg, "cut.safetensors"));
	}
	unsigned char buf[1024];
	for (uint64_t trial = 0; trial < 2000; trial++) {
		memcpy(buf, good, n);
		for (uint32_t k = 0; k < 2; k++) {
			uint64_t r = chain_rng_bits(5, CHAIN_STREAM_DATA, trial, 0, k);
			size_t at = trial < 1000 ? r % 200 : r % n; /* mostly the header */
			buf[at] = (unsigned char)(r >> 32);
		}
		chain_error err = { "" };
		double theta[10];
		char value[8];
		if (chain_checkpoint_load(fixture("mut.safetensors", buf, n), &toy, theta, "model", value, sizeof value, &err) != 0)
			assert_non_null(strstr(err.msg, "mut.safetensors"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checkpoint__f64_roundtrip__bits_and_metadata_kept),
		cmocka_unit_test(test_checkpoint__layout__is_standard_safetensors),
		cmocka_unit_test(test_checkpoint__f32_model__writes_f32_and_converts_both_ways),
		cmocka_unit_test(test_checkpoint__save_replaces_existing_file_atomically),
		cmocka_unit_test(test_checkpoint__reserved_or_repeated_metadata_key__rejected),
		cmocka_unit_test(test_checkpoint__shape_differs__says_both_shapes),
		cmocka_unit_test(test_checkpoint__missing_tensor__named),
		cmocka_unit_test(test_checkpoint__unexpected_tensor__named),
		cmocka_unit_test(test_checkpoint__nan_in_data__rejected_theta_untouched),
		cmocka_unit_test(test_checkpoint__short_or_huge_header_length__rejected),
		cmocka_unit_test(test_checkpoint__foreign_file_without_metadata__loads),
		cmocka_unit_test(test_checkpoint__offsets_out_of_range_or_overlapping__rejected),
		cmocka_unit_test(test_checkpoint__tensors_in_any_data_order__load),
		cmocka_unit_test(test_checkpoint__wrong_dtype__rejected),
		cmocka_unit_test(test_checkpoint__malformed_json__names_byte_and_expectation),
		cmocka_unit_test(test_checkpoint__unicode_escapes__decoded_to_utf8),
		cmocka_unit_test(test_checkpoint__other_format__rejected),
		cmocka_unit_test(test_checkpoint__metadata__values_or_null_when_absent),
		cmocka_unit_test(test_checkpoint__repeated_key_in_file_metadata__rejected),
		cmocka_unit_test(test_checkpoint__mutated_files__never_crash),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
