/* cmd_num.c -- the numbers of the command line, parsed one way everywhere.
 *
 * Every numeric flag of every command (train, eval, sample, gradcheck,
 * optimize, compare, -D) and the numbers chain train reads back from a
 * checkpoint's metadata go through these, so that all of them accept the
 * same spellings and refuse the same ones.  strtoull/strtod alone are
 * lenient: they skip leading spaces, take a sign ('-1' wraps to 2^64 - 1
 * in strtoull), hexadecimal, 'inf' and 'nan', and stop at junk unless the
 * caller checks the end.  Here a number is the whole string:
 *
 *   count (cmd_parse_u64):  digits only, no sign, at most 2^64 - 1;
 *   real (cmd_parse_real):  [-]digits[.digits][e[+-]digits] (or [-].digits...),
 *                           finite, 0 or at least DBL_MIN in magnitude
 *                           (no overflow to infinity, no underflow to 0 or
 *                           to a subnormal with lost digits).
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

int cmd_parse_u64(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Whether s is a plain decimal number: [-]digits[.digits][e[+-]digits],
 * with at least one digit before the exponent. */
static int is_decimal(const char *s)
{
	const char *p = s;
	if (*p == '-')
		p++;
	int digits = 0;
	for (; isdigit((unsigned char)*p); p++)
		digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits++;
	if (digits == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return *p == '\0';
}

int cmd_parse_real(const char *s, double *out)
{
	if (!s || !is_decimal(s))
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (*end || !isfinite(v))
		return -1;
	/* underflow: a nonzero number written, 0 or a subnormal read */
	if (fabs(v) < DBL_MIN) {
		for (const char *p = s; *p && *p != 'e' && *p != 'E'; p++)
			if (*p >= '1' && *p <= '9')
				return -1;
	}
	*out = v;
	return 0;
}

/* What a count in [lo, hi] is, for messages; a size's upper end (SIZE_MAX,
 * "as many as there can be") goes unsaid. */
static void describe_count(uint64_t lo, uint64_t hi, int size, char *buf, size_t cap)
{
	if (size && hi == SIZE_MAX && lo <= 1)
		snprintf(buf, cap, lo ? "a positive integer" : "a non-negative integer");
	else if (hi == UINT64_MAX && lo <= 1)
		snprintf(buf, cap, lo ? "a positive integer below 2^64" : "a non-negative integer below 2^64");
	else if (lo == 1 && hi == INT64_MAX)
		snprintf(buf, cap, "a positive integer below 2^63");
	else
		snprintf(buf, cap, "an integer from %" PRIu64 " to %" PRIu64, lo, hi);
}

static int flag_count(const char *prefix, const char *flag, const char *v, uint64_t lo, uint64_t hi,
                      int size, uint64_t *out)
{
	uint64_t u;
	if (cmd_parse_u64(v, &u) == 0 && u >= lo && u <= hi) {
		*out = u;
		return 0;
	}
	char what[64];
	describe_count(lo, hi, size, what, sizeof what);
	fprintf(stderr, "%s: %s: expected %s, got '%s'\n", prefix, flag, what, v ? v : "");
	return -1;
}

int cmd_flag_u64(const char *prefix, const char *flag, const char *v, uint64_t lo, uint64_t hi,
                 uint64_t *out)
{
	return flag_count(prefix, flag, v, lo, hi, 0, out);
}

int cmd_flag_size(const char *prefix, const char *flag, const char *v, size_t lo, size_t hi,
                  size_t *out)
{
	uint64_t u = 0;
	if (flag_count(prefix, flag, v, lo, hi, 1, &u) != 0)
		return -1;
	*out = (size_t)u;
	return 0;
}

int cmd_rows_fit(const char *prefix, const char *flag, size_t rows, size_t per_row)
{
	size_t most = per_row ? CMD_MAX_ROW_VALUES / per_row : SIZE_MAX;
	if (rows <= most)
		return 0;
	fprintf(stderr, "%s: %s: expected an integer from 1 to %zu (%zu value%s a row, at most 2^28 in all), got '%zu'\n",
	        prefix, flag, most, per_row, per_row == 1 ? "" : "s", rows);
	return -1;
}

int cmd_flag_real(const char *prefix, const char *flag, const char *v, cmd_real_range range,
                  double *out)
{
	double d;
	if (cmd_parse_real(v, &d) == 0) {
		int ok = range == CMD_REAL_ANY || (range == CMD_REAL_POSITIVE && d > 0) ||
		         (range == CMD_REAL_FRACTION && d >= 0 && d < 1);
		if (ok) {
			*out = d;
			return 0;
		}
	}
	const char *what = range == CMD_REAL_POSITIVE   ? "a positive number"
	                   : range == CMD_REAL_FRACTION ? "a number in [0, 1)"
	                                                : "a number";
	fprintf(stderr, "%s: %s: expected %s, got '%s'\n", prefix, flag, what, v ? v : "");
	return -1;
}
