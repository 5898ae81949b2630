/* cmd.h -- the commands of the chain CLI that run a compiled model.
 *
 * main.c parses the model-related flags (the model file, -D, --precision,
 * -O), compiles the model in-process (JIT) and hands the rest of the
 * command line to one of these.  Each returns the process exit status:
 * 0 on success, 1 on bad input (with a message on stderr naming the
 * file/flag and what is wrong), never crashing.
 */
#ifndef CMD_H
#define CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/model.h"

/* argv[0] is the command name; argv[1..argc-1] the flags still to parse. */
int cmd_train(const chain_model *m, int argc, char **argv);
int cmd_eval(const chain_model *m, int argc, char **argv);
int cmd_sample(const chain_model *m, int argc, char **argv);
/* cmd_compare.c: generated kernels against a hand-written reference */
int cmd_compare(const chain_model *m, int argc, char **argv);

/* cmd_flags.c: the flags of every command, one way: "--name VALUE" or
 * "--name=VALUE" (a short flag, -o, only "-o VALUE"); a switch takes no
 * value ("--quiet=1" is an error naming --quiet). */

/* Whether argv[*i] is flag `name`: 0 when not; 1 when it is, with *value
 * its value (the next argument, *i moved past it, or the text after '=';
 * NULL for a switch, !takes_value); -1 after printing "PREFIX: NAME:
 * expected a value after it" or "PREFIX: NAME takes no value, got 'V'". */
int cmd_flag_match(const char *prefix, int argc, char **argv, int *i, const char *name, bool takes_value,
                   const char **value);
/* Whether flag argument a takes the next argument as its value: a flag
 * (-x, --xy) without '=' and not one of the NULL-terminated switches. */
bool cmd_flag_takes_next(const char *a, const char *const *switches);

typedef enum cmd_flag_type {
	CMD_FLAG_FILE,      /* a non-empty file name: const char * */
	CMD_FLAG_TEXT,      /* any text, empty too (--cflags ""): const char * */
	CMD_FLAG_SIZE,      /* an integer in [lo, hi]: size_t */
	CMD_FLAG_U64,       /* an integer in [lo, hi]: uint64_t */
	CMD_FLAG_INT,       /* an integer in [lo, hi], hi <= INT_MAX: int */
	CMD_FLAG_UNSIGNED,  /* an integer in [lo, hi], hi <= UINT_MAX: unsigned */
	CMD_FLAG_POSITIVE,  /* a finite real > 0: double */
	CMD_FLAG_FRACTION,  /* a real in [0, 1): double */
	CMD_FLAG_CUSTOM,    /* parse(prefix, flag, value) fills dst or prints why not */
	CMD_FLAG_SWITCH,    /* no value: int set to 1 */
} cmd_flag_type;

typedef struct cmd_flag {
	const char *name;   /* "--lr", "-o" */
	cmd_flag_type type;
	void *dst;
	uint64_t lo, hi;    /* the integer types: the range */
	int (*parse)(const char *prefix, const struct cmd_flag *f, const char *v); /* CMD_FLAG_CUSTOM: 0 or -1 */
	int given;          /* set by the parser */
} cmd_flag;

/* The entries of a table, one a line: CMD_SIZE("--rows", &rows, 1, 1000000). */
#define CMD_FILE(n, d) { .name = (n), .type = CMD_FLAG_FILE, .dst = (d) }
#define CMD_TEXT(n, d) { .name = (n), .type = CMD_FLAG_TEXT, .dst = (d) }
#define CMD_SIZE(n, d, l, h) { .name = (n), .type = CMD_FLAG_SIZE, .dst = (d), .lo = (l), .hi = (h) }
#define CMD_U64(n, d, l, h) { .name = (n), .type = CMD_FLAG_U64, .dst = (d), .lo = (l), .hi = (h) }
#define CMD_INT(n, d, l, h) { .name = (n), .type = CMD_FLAG_INT, .dst = (d), .lo = (l), .hi = (h) }
#define CMD_UNSIGNED(n, d, l, h) { .name = (n), .type = CMD_FLAG_UNSIGNED, .dst = (d), .lo = (l), .hi = (h) }
#define CMD_POSITIVE(n, d) { .name = (n), .type = CMD_FLAG_POSITIVE, .dst = (d) }
#define CMD_FRACTION(n, d) { .name = (n), .type = CMD_FLAG_FRACTION, .dst = (d) }
#define CMD_CUSTOM(n, d, fn) { .name = (n), .type = CMD_FLAG_CUSTOM, .dst = (d), .parse = (fn) }
#define CMD_SWITCH(n, d) { .name = (n), .type = CMD_FLAG_SWITCH, .dst = (d) }
#define CMD_SEED(n, d) CMD_U64(n, d, 0, UINT64_MAX)

/* Parses argv[1..argc-1] against the table of command `cmd` ("train"),
 * every flag through cmd_flag_match.  0 when all parsed; 1 after printing
 * "chain CMD: ..." (an unknown flag, a stray argument, a bad value); 2
 * when --help or -h was asked for (the caller prints the usage). */
int cmd_parse_flags(const char *cmd, cmd_flag *flags, size_t nflags, int argc, char **argv);
cmd_flag *cmd_find_flag(cmd_flag *flags, size_t n, const char *name);

/* cmd_num.c: the numbers of the command line and of checkpoint metadata,
 * parsed strictly (the whole string; no spaces, no '+', no hexadecimal,
 * no inf/nan), one way for every command. */

/* A whole-string unsigned decimal integer: digits only (no sign, which
 * strtoull would take and wrap: -1 is 2^64 - 1; no spaces), at most
 * 2^64 - 1.  0, or -1 when s is not one. */
int cmd_parse_u64(const char *s, uint64_t *out);
/* A whole-string decimal real, [-]digits[.digits][e[+-]digits], finite,
 * and 0 or at least DBL_MIN in magnitude (1e999 and 1e-400 are refused,
 * not read as inf or 0).  0, or -1 when s is not one. */
int cmd_parse_real(const char *s, double *out);

typedef enum cmd_real_range {
	CMD_REAL_ANY,       /* any number */
	CMD_REAL_POSITIVE,  /* > 0 */
	CMD_REAL_FRACTION,  /* in [0, 1) */
} cmd_real_range;

/* Flag values: the number v of flag `flag` in its range, or -1 after
 * printing "PREFIX: FLAG: expected WHAT, got 'V'" on stderr (PREFIX
 * "chain train", FLAG "--epochs"). */
int cmd_flag_u64(const char *prefix, const char *flag, const char *v, uint64_t lo, uint64_t hi,
                 uint64_t *out);
int cmd_flag_size(const char *prefix, const char *flag, const char *v, size_t lo, size_t hi,
                  size_t *out);
int cmd_flag_real(const char *prefix, const char *flag, const char *v, cmd_real_range range,
                  double *out);

/* Rows a checking command (gradcheck, compare) makes or reads at most: its
 * buffers are rows x obs_size reals. */
#define CMD_MAX_CHECK_ROWS 1000000

/* Values (rows x reals per row) a command holds at once in the rows it
 * makes or copies (sample -n, gradcheck and compare --rows): 2^28, the
 * language's limit of one observation, 2 GiB of doubles.  Without it
 * sample -n 2^61-1 sized a buffer of 2^64 - 8 bytes (ASan aborted). */
#define CMD_MAX_ROW_VALUES ((size_t)1 << 28)

/* Whether `rows` rows of per_row reals fit CMD_MAX_ROW_VALUES: 0, or -1
 * after printing "PREFIX: FLAG: expected an integer from 1 to MAX (...),
 * got 'ROWS'" with the most rows that fit.  Checked once the model, and
 * so per_row, is known, before anything is allocated. */
int cmd_rows_fit(const char *prefix, const char *flag, size_t rows, size_t per_row);

/* cmd_run.c: a mkstemp/mkdtemp template "DIR/stem-XXXXXX" in $TMPDIR (/tmp
 * when unset or empty), malloc'd; NULL when out of memory. */
char *cmd_temp_template(const char *stem);

/* cmd_run.c: 1 when paths a and b name one file: the same string, or an
 * existing file under two names (another spelling, a hard or symbolic
 * link: the same device and inode); else 0.  An output that is one of the
 * command's inputs is refused with it, before anything is written. */
int cmd_same_file(const char *a, const char *b);

#endif
