/* test_cmd_flags.c -- compiler/cmd_flags.c, the flags of every command:
 * "--name VALUE" and "--name=VALUE" alike, "-o VALUE" for a short flag, a
 * switch that refuses a value, and a message naming the flag for whatever
 * is wrong.  gradcheck, optimize, compare and build once had loops of
 * their own that took only the first spelling.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd.h"

/* What the parser printed on stderr (through a pipe). */
static char captured[512];

typedef struct opts {
	const char *data, *cflags;
	size_t rows;
	int repeats;
	uint64_t seed;
	double tol;
	int quiet;
} opts;

typedef struct parse_call {
	opts o;
	const char *argv[24];
	int rc;
} parse_call;

/* cmd_parse_flags on call->argv (NULL-terminated, "cmd" first) against a
 * table like compare's, stderr captured. */
static int parse(parse_call *call)
{
	call->o = (opts){ .cflags = "-O2", .rows = 100, .repeats = 5, .seed = 1 };
	cmd_flag flags[] = {
		CMD_FILE("--data", &call->o.data),
		CMD_TEXT("--cflags", &call->o.cflags),
		CMD_SIZE("--rows", &call->o.rows, 1, 1000000),
		CMD_INT("--repeats", &call->o.repeats, 1, 999),
		CMD_SEED("--seed", &call->o.seed),
		CMD_POSITIVE("--tol", &call->o.tol),
		CMD_SWITCH("--quiet", &call->o.quiet),
		CMD_SIZE("-n", &call->o.rows, 1, SIZE_MAX),
	};
	int argc = 0;
	while (call->argv[argc])
		argc++;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fds[1], 2);
	close(fds[1]);
	call->rc = cmd_parse_flags("compare", flags, sizeof flags / sizeof flags[0], argc, (char **)call->argv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = read(fds[0], captured, sizeof captured - 1);
	captured[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	return call->rc;
}

static void test_parse__both_spellings__same_values(void **state)
{
	(void)state;
	parse_call a = { .argv = { "compare", "--data", "d.amat", "--cflags", "-O3 -DN=4", "--rows", "4", "--repeats",
	                           "7", "--seed", "9", "--tol", "1e-9", "--quiet", "-n", "5", NULL } };
	parse_call b = { .argv = { "compare", "--data=d.amat", "--cflags=-O3 -DN=4", "--rows=4", "--repeats=7", "--seed=9",
	                           "--tol=1e-9", "--quiet", "-n", "5", NULL } };
	for (parse_call *c = &a; c; c = c == &a ? &b : NULL) {
		assert_int_equal(parse(c), 0);
		assert_string_equal(captured, "");
		assert_string_equal(c->o.data, "d.amat");
		assert_string_equal(c->o.cflags, "-O3 -DN=4");
		assert_true(c->o.rows == 5); /* -n came last */
		assert_int_equal(c->o.repeats, 7);
		assert_true(c->o.seed == 9);
		assert_true(c->o.tol == 1e-9);
		assert_int_equal(c->o.quiet, 1);
	}
	/* a value that looks like a flag is the value all the same; '=' in it stays */
	parse_call c = { .argv = { "compare", "--cflags", "--rows=9", "--data=a=b", "--cflags=", NULL } };
	assert_int_equal(parse(&c), 0);
	assert_string_equal(c.o.cflags, "");
	assert_true(c.o.rows == 100);
	assert_string_equal(c.o.data, "a=b");
}

static void test_parse__wrong__one_message_naming_the_flag(void **state)
{
	(void)state;
	static const struct {
		const char *argv[4];
		const char *says;
	} cases[] = {
		{ { "--quiet=1" }, "chain compare: --quiet takes no value, got '1'\n" },
		{ { "--quiet=" }, "chain compare: --quiet takes no value, got ''\n" },
		{ { "--help=yes" }, "chain compare: --help takes no value, got 'yes'\n" },
		{ { "--rows=" }, "chain compare: --rows: expected an integer from 1 to 1000000, got ''\n" },
		{ { "--rows=4x" }, "chain compare: --rows: expected an integer from 1 to 1000000, got '4x'\n" },
		{ { "--repeats=1000" }, "chain compare: --repeats: expected an integer from 1 to 999, got '1000'\n" },
		{ { "--rows" }, "chain compare: --rows: expected a value after it\n" },
		{ { "--data=" }, "chain compare: --data: expected a file name, got ''\n" },
		{ { "--row=4" }, "chain compare: unknown flag '--row' (see chain compare --help)\n" },
		{ { "--rowsx", "4" }, "chain compare: unknown flag '--rowsx' (see chain compare --help)\n" },
		{ { "-n=4" }, "chain compare: unknown flag '-n=4' (see chain compare --help)\n" },
		{ { "stray" }, "chain compare: unexpected argument 'stray' (see chain compare --help)\n" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		parse_call c = { .argv = { "compare", cases[k].argv[0], cases[k].argv[1], NULL } };
		assert_int_equal(parse(&c), 1);
		assert_string_equal(captured, cases[k].says);
	}
	parse_call h = { .argv = { "compare", "--rows", "x", "--help", NULL } };
	assert_int_equal(parse(&h), 2); /* --help wins over a bad value */
	parse_call s = { .argv = { "compare", "-h", NULL } };
	assert_int_equal(parse(&s), 2);
}

/* The matcher main.c's model flags and chain build go through. */
static void test_match__spellings_and_neighbours(void **state)
{
	(void)state;
	char *argv[] = { "build", "--emit=llvm", "--emit", "asm", "--emitter", "-o", "x.o", "-o=y", "--target", NULL };
	const int argc = 9;
	const char *v;
	int i = 1;
	assert_int_equal(cmd_flag_match("chain build", argc, argv, &i, "--emit", true, &v), 1);
	assert_string_equal(v, "llvm");
	assert_int_equal(i, 1);
	i = 2;
	assert_int_equal(cmd_flag_match("chain build", argc, argv, &i, "--emit", true, &v), 1);
	assert_string_equal(v, "asm");
	assert_int_equal(i, 3); /* past the value */
	i = 4;
	assert_int_equal(cmd_flag_match("chain build", argc, argv, &i, "--emit", true, &v), 0);
	i = 5;
	assert_int_equal(cmd_flag_match("chain build", argc, argv, &i, "-o", true, &v), 1);
	assert_string_equal(v, "x.o");
	i = 7; /* a short flag takes no '=' */
	assert_int_equal(cmd_flag_match("chain build", argc, argv, &i, "-o", true, &v), 0);
	assert_true(cmd_flag_takes_next("--emit", (const char *const[]){ "--quiet", NULL }));
	assert_true(cmd_flag_takes_next("-o", (const char *const[]){ "--quiet", NULL }));
	assert_false(cmd_flag_takes_next("--emit=llvm", (const char *const[]){ "--quiet", NULL }));
	assert_false(cmd_flag_takes_next("--quiet", (const char *const[]){ "--quiet", NULL }));
	assert_false(cmd_flag_takes_next("m.chain", (const char *const[]){ NULL }));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse__both_spellings__same_values),
		cmocka_unit_test(test_parse__wrong__one_message_naming_the_flag),
		cmocka_unit_test(test_match__spellings_and_neighbours),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
