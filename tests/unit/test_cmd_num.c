/* test_cmd_num.c -- compiler/cmd_num.c, the numbers of the command line:
 * every numeric flag of every command and the numbers chain train reads
 * from a checkpoint's metadata are parsed by these, so what they accept
 * is what the whole CLI accepts.  strtoull/strtod leniencies (a sign,
 * leading spaces, trailing junk, hexadecimal, inf/nan, overflow and
 * underflow) are each refused here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd.h"

static void test_u64__digits_only(void **state)
{
	(void)state;
	uint64_t u = 7;
	assert_int_equal(cmd_parse_u64("0", &u), 0);
	assert_true(u == 0);
	assert_int_equal(cmd_parse_u64("42", &u), 0);
	assert_true(u == 42);
	assert_int_equal(cmd_parse_u64("007", &u), 0);
	assert_true(u == 7);
	assert_int_equal(cmd_parse_u64("18446744073709551615", &u), 0);
	assert_true(u == UINT64_MAX);
	static const char *bad[] = {
		"", "+2", "-1", " 3", "3 ", "\t3", "3\n", "3x", "0x10", "1e3", "3.0", "1,000",
		"18446744073709551616", "99999999999999999999999", "inf",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		u = 7;
		if (cmd_parse_u64(bad[i], &u) == 0)
			fail_msg("cmd_parse_u64 took '%s'", bad[i]);
		assert_true(u == 7); /* untouched */
	}
	assert_int_equal(cmd_parse_u64(NULL, &u), -1);
}

static void test_real__plain_decimals_only(void **state)
{
	(void)state;
	double d = 0;
	static const struct { const char *s; double v; } good[] = {
		{ "0.5", 0.5 }, { "1", 1 }, { "-0.25", -0.25 }, { ".5", 0.5 }, { "5.", 5 },
		{ "1e-3", 1e-3 }, { "1E+2", 100 }, { "0", 0 }, { "-0", 0 }, { "0e-999", 0 },
		{ "2.2250738585072014e-308", 2.2250738585072014e-308 }, { "1.7976931348623157e308", 1.7976931348623157e308 },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (cmd_parse_real(good[i].s, &d) != 0)
			fail_msg("cmd_parse_real refused '%s'", good[i].s);
		assert_true(d == good[i].v);
	}
	static const char *bad[] = {
		"", "+0.5", " 0.5", "0.5 ", "0.5x", "0x1p-3", "inf", "-inf", "nan", "Infinity", "e5", ".",
		"-", "1e", "1e+", "1.2.3", "1,5", "--1",
		"1e999", "-1e400",                 /* overflow to infinity */
		"1e-400", "-1e-400", "1e-310",     /* underflow to 0, or to a subnormal */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		d = 7;
		if (cmd_parse_real(bad[i], &d) == 0)
			fail_msg("cmd_parse_real took '%s' as %g", bad[i], d);
		assert_true(d == 7);
	}
	/* 1e-320 written out: underflow without an exponent */
	char tiny[400] = "0.";
	memset(tiny + 2, '0', 319);
	strcpy(tiny + 321, "1");
	assert_int_equal(cmd_parse_real(tiny, &d), -1);
	tiny[2 + 300] = '1'; /* 1e-301 */
	tiny[321] = '\0';
	assert_int_equal(cmd_parse_real(tiny, &d), 0);
	assert_true(d == 1e-301);
}

/* The flag helpers: the value in range, or a message naming the flag and
 * the value (stderr captured through a pipe). */
static char captured[512];

static int capture_stderr(int (*fn)(void *), void *arg)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fds[1], 2);
	close(fds[1]);
	int rc = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = read(fds[0], captured, sizeof captured - 1);
	captured[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	return rc;
}

typedef struct call {
	const char *flag, *value;
	uint64_t lo, hi;
	cmd_real_range range;
	uint64_t u;
	double d;
} call;

static int call_u64(void *arg)
{
	call *c = arg;
	return cmd_flag_u64("chain train", c->flag, c->value, c->lo, c->hi, &c->u);
}

static int call_size(void *arg)
{
	call *c = arg;
	size_t z = 0;
	int rc = cmd_flag_size("chain train", c->flag, c->value, (size_t)c->lo, (size_t)c->hi, &z);
	c->u = z;
	return rc;
}

static int call_real(void *arg)
{
	call *c = arg;
	return cmd_flag_real("chain train", c->flag, c->value, c->range, &c->d);
}

static void test_flag__names_flag_and_value(void **state)
{
	(void)state;
	call c = { "--threads", "8", 1, 1024, CMD_REAL_ANY, 0, 0 };
	assert_int_equal(capture_stderr(call_u64, &c), 0);
	assert_true(c.u == 8);
	assert_string_equal(captured, "");

	c.value = "+2";
	assert_int_equal(capture_stderr(call_u64, &c), -1);
	assert_string_equal(captured, "chain train: --threads: expected an integer from 1 to 1024, got '+2'\n");
	c.value = "1025";
	assert_int_equal(capture_stderr(call_u64, &c), -1);
	assert_string_equal(captured, "chain train: --threads: expected an integer from 1 to 1024, got '1025'\n");

	c = (call){ "--epochs", " 3", 1, SIZE_MAX, CMD_REAL_ANY, 0, 0 };
	assert_int_equal(capture_stderr(call_size, &c), -1);
	assert_string_equal(captured, "chain train: --epochs: expected a positive integer, got ' 3'\n");
	c.value = "12";
	assert_int_equal(capture_stderr(call_size, &c), 0);
	assert_true(c.u == 12);
	c = (call){ "--seed", "-1", 0, UINT64_MAX, CMD_REAL_ANY, 0, 0 };
	assert_int_equal(capture_stderr(call_u64, &c), -1);
	assert_string_equal(captured, "chain train: --seed: expected a non-negative integer below 2^64, got '-1'\n");

	c = (call){ "--lr", "0.01", 0, 0, CMD_REAL_POSITIVE, 0, 0 };
	assert_int_equal(capture_stderr(call_real, &c), 0);
	assert_true(c.d == 0.01);
	c.value = "0";
	assert_int_equal(capture_stderr(call_real, &c), -1);
	assert_string_equal(captured, "chain train: --lr: expected a positive number, got '0'\n");
	c = (call){ "--momentum", "1", 0, 0, CMD_REAL_FRACTION, 0, 0 };
	assert_int_equal(capture_stderr(call_real, &c), -1);
	assert_string_equal(captured, "chain train: --momentum: expected a number in [0, 1), got '1'\n");
	c.value = "0";
	assert_int_equal(capture_stderr(call_real, &c), 0);
	assert_true(c.d == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64__digits_only),
		cmocka_unit_test(test_real__plain_decimals_only),
		cmocka_unit_test(test_flag__names_flag_and_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
