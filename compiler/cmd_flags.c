/* cmd_flags.c -- the flags of every chain command, parsed one way.
 *
 * A flag that takes a value takes it as "--name VALUE" or "--name=VALUE"
 * (a short one, -o or -n, as "-o VALUE" only); a switch (--quiet, --help)
 * takes none, and "--quiet=1" is an error naming it.  cmd_flag_match is
 * the one place that knows the two spellings: main.c's model flags (-D,
 * --precision, --target, --cpu) and chain build's own (-o, --emit) use it
 * directly, and cmd_parse_flags, the table parser of train, eval, sample,
 * gradcheck, optimize and compare, goes through it.  compare, gradcheck,
 * optimize and build each had their own loop, and took "--rows 4" but
 * not "--rows=4" ("unknown flag '--cc=clang'"); train's took both.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

int cmd_flag_match(const char *prefix, int argc, char **argv, int *i, const char *name, bool takes_value,
                   const char **value)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '\0') {
		*value = NULL;
		if (!takes_value)
			return 1;
		if (*i + 1 >= argc) {
			fprintf(stderr, "%s: %s: expected a value after it\n", prefix, name);
			return -1;
		}
		*value = argv[++*i];
		return 1;
	}
	if (a[n] != '=' || strncmp(name, "--", 2) != 0)
		return 0; /* another flag that starts the same (--data-x), or -o=x */
	if (!takes_value) {
		fprintf(stderr, "%s: %s takes no value, got '%s'\n", prefix, name, a + n + 1);
		return -1;
	}
	*value = a + n + 1;
	return 1;
}

bool cmd_flag_takes_next(const char *a, const char *const *switches)
{
	if (a[0] != '-' || a[1] == '\0' || strchr(a, '='))
		return false;
	for (; *switches; switches++)
		if (strcmp(a, *switches) == 0)
			return false;
	return true;
}

/* Converts one flag's value into its destination, or says what was
 * expected.  0, or 1 after the message. */
static int set_flag(const char *prefix, cmd_flag *f, const char *v)
{
	uint64_t u;
	switch (f->type) {
	case CMD_FLAG_FILE:
		if (!*v) {
			fprintf(stderr, "%s: %s: expected a file name, got ''\n", prefix, f->name);
			return 1;
		}
		*(const char **)f->dst = v;
		return 0;
	case CMD_FLAG_TEXT:
		*(const char **)f->dst = v;
		return 0;
	case CMD_FLAG_SIZE:
		return cmd_flag_size(prefix, f->name, v, (size_t)f->lo, (size_t)f->hi, f->dst) == 0 ? 0 : 1;
	case CMD_FLAG_U64:
		return cmd_flag_u64(prefix, f->name, v, f->lo, f->hi, f->dst) == 0 ? 0 : 1;
	case CMD_FLAG_INT:
		if (cmd_flag_u64(prefix, f->name, v, f->lo, f->hi, &u) != 0)
			return 1;
		*(int *)f->dst = (int)u;
		return 0;
	case CMD_FLAG_UNSIGNED:
		if (cmd_flag_u64(prefix, f->name, v, f->lo, f->hi, &u) != 0)
			return 1;
		*(unsigned *)f->dst = (unsigned)u;
		return 0;
	case CMD_FLAG_POSITIVE:
		return cmd_flag_real(prefix, f->name, v, CMD_REAL_POSITIVE, f->dst) == 0 ? 0 : 1;
	case CMD_FLAG_FRACTION:
		return cmd_flag_real(prefix, f->name, v, CMD_REAL_FRACTION, f->dst) == 0 ? 0 : 1;
	case CMD_FLAG_CUSTOM:
		return f->parse(prefix, f, v) == 0 ? 0 : 1;
	case CMD_FLAG_SWITCH:
		*(int *)f->dst = 1;
		return 0;
	}
	fprintf(stderr, "%s: %s: internal error: unknown flag type\n", prefix, f->name);
	return 1;
}

int cmd_parse_flags(const char *cmd, cmd_flag *flags, size_t nflags, int argc, char **argv)
{
	char prefix[48];
	snprintf(prefix, sizeof prefix, "chain %s", cmd);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (a[0] != '-' || a[1] == '\0') {
			fprintf(stderr, "%s: unexpected argument '%s' (see chain %s --help)\n", prefix, a, cmd);
			return 1;
		}
		cmd_flag *f = NULL;
		int r = 0;
		for (size_t k = 0; k < nflags && r == 0; k++)
			if ((r = cmd_flag_match(prefix, argc, argv, &i, flags[k].name, flags[k].type != CMD_FLAG_SWITCH, &v)) > 0)
				f = &flags[k];
		if (r == 0) /* --help=1: not a request for help, and not unknown either */
			r = cmd_flag_match(prefix, argc, argv, &i, "--help", false, &v);
		if (r < 0)
			return 1;
		if (!f) {
			const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
			fprintf(stderr, "%s: unknown flag '%.*s' (see chain %s --help)\n", prefix,
			        (int)(eq ? (size_t)(eq - a) : strlen(a)), a, cmd);
			return 1;
		}
		f->given = 1;
		if (set_flag(prefix, f, v ? v : "") != 0)
			return 1;
	}
	return 0;
}

cmd_flag *cmd_find_flag(cmd_flag *flags, size_t n, const char *name)
{
	for (size_t k = 0; k < n; k++)
		if (strcmp(flags[k].name, name) == 0)
			return &flags[k];
	return NULL;
}
