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

#include "chain/model.h"

/* argv[0] is the command name; argv[1..argc-1] the flags still to parse. */
int cmd_train(const chain_model *m, int argc, char **argv);
int cmd_eval(const chain_model *m, int argc, char **argv);
int cmd_sample(const chain_model *m, int argc, char **argv);
/* cmd_compare.c: generated kernels against a hand-written reference */
int cmd_compare(const chain_model *m, int argc, char **argv);

/* cmd_run.c: a whole-string unsigned decimal integer (no sign, which
 * strtoull would take and wrap: -1 is 2^64 - 1; no spaces, no overflow);
 * 0, or -1 when s is not one. */
int cmd_parse_u64(const char *s, uint64_t *out);

/* Rows a checking command (gradcheck, compare) makes or reads at most: its
 * buffers are rows x obs_size reals. */
#define CMD_MAX_CHECK_ROWS 1000000

/* cmd_run.c: a mkstemp/mkdtemp template "DIR/stem-XXXXXX" in $TMPDIR (/tmp
 * when unset or empty), malloc'd; NULL when out of memory. */
char *cmd_temp_template(const char *stem);

#endif
