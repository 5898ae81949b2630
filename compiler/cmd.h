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

#include <stddef.h>
#include <stdint.h>

#include "chain/model.h"

/* argv[0] is the command name; argv[1..argc-1] the flags still to parse. */
int cmd_train(const chain_model *m, int argc, char **argv);
int cmd_eval(const chain_model *m, int argc, char **argv);
int cmd_sample(const chain_model *m, int argc, char **argv);
/* cmd_compare.c: generated kernels against a hand-written reference */
int cmd_compare(const chain_model *m, int argc, char **argv);

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
