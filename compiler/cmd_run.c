/* cmd_run.c -- `chain train`, `chain eval` and `chain sample`: the commands
 * that run a compiled model.
 *
 * main.c has already compiled the model (or, for --help, not: m is NULL
 * then) and removed the model flags; what is left is parsed here against a
 * table of flags per command, then handed to libchain (chain_train,
 * chain_eval_nll, the model's sample/complete kernels, the loaders and
 * writers).  Every bad flag or value is reported as
 *     chain train: --lr: expected a positive number, got 'abc'
 * and gives exit status 1; --help prints the usage and gives 0.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain/alloc.h"
#include "chain/checkpoint.h"
#include "chain/data.h"
#include "chain/error.h"
#include "chain/image.h"
#include "chain/optim.h"
#include "chain/train.h"
#include "cmd.h"

#define MAX_THREADS 1024

/* Prints "chain CMD: message" on stderr; returns the exit status 1. */
static int run_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "chain %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* ------------------------------------------------------------------------
 * Flags: a table per command, parsed by cmd_flags.c
 * ------------------------------------------------------------------------ */

/* --binarize X: a threshold or 'stochastic', into a chain_load_options. */
static int parse_binarize(const char *prefix, const cmd_flag *f, const char *v)
{
	chain_load_options *lo = f->dst;
	double d;
	if (strcmp(v, "stochastic") == 0) {
		lo->binarize = CHAIN_BINARIZE_STOCHASTIC;
	} else if (cmd_parse_real(v, &d) == 0) {
		lo->binarize = CHAIN_BINARIZE_THRESHOLD;
		lo->threshold = d;
	} else {
		fprintf(stderr, "%s: %s: expected a threshold (a number such as 0.5) or 'stochastic', got '%s'\n", prefix,
		        f->name, v);
		return -1;
	}
	return 0;
}

/* --optimizer NAME: sgd | adam, into a chain_optim_kind. */
static int parse_optimizer(const char *prefix, const cmd_flag *f, const char *v)
{
	if (chain_optim_parse(v, f->dst) == 0)
		return 0;
	fprintf(stderr, "%s: %s: expected sgd or adam, got '%s'\n", prefix, f->name, v);
	return -1;
}

int cmd_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (strcmp(a, b) == 0)
		return 1;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The file of output flag oflag (-o, --log) against those of the input
 * flags ins (NULL-terminated): an output that is an input is replaced by,
 * or appended to, what the command writes (train --data d.amat -o d.amat
 * renamed the params over the data).  Prints and returns 1 when it is. */
static int refuse_overwrite(const char *cmd, cmd_flag *flags, size_t n, const char *oflag, const char *const *ins)
{
	const char *out = *(const char **)cmd_find_flag(flags, n, oflag)->dst;
	for (; out && *ins; ins++) {
		const char *in = *(const char **)cmd_find_flag(flags, n, *ins)->dst;
		if (in && cmd_same_file(out, in))
			return run_fail(cmd, "%s %s is the %s file: writing there would destroy it; give %s another name",
			                oflag, out, *ins, oflag);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Shared steps: the model, data files, parameters
 * ------------------------------------------------------------------------ */

/* The model's name for messages. */
static const char *model_name(const chain_model *m)
{
	return m->name ? m->name : "?";
}

/* Bytes of one real of the model's precision. */
static size_t real_bytes(const chain_model *m)
{
	return m->precision == CHAIN_F32 ? sizeof(float) : sizeof(double);
}

/* Loads a data file and checks it against the model; prints and returns 1 on
 * failure.  compact: one byte per value when they allow it (0/1 pixels
 * always do), for the commands that only hand the rows to libchain. */
static int load_data(const char *cmd, const chain_model *m, const char *path,
                     const chain_load_options *lo, int compact, chain_dataset *d)
{
	chain_error err = { "" };
	memset(d, 0, sizeof *d);
	if ((compact ? chain_data_load_compact : chain_data_load)(path, lo, d, &err) != 0)
		return run_fail(cmd, "%s", err.msg);
	if (chain_data_check(d, m, path, &err) != 0) {
		chain_dataset_free(d);
		return run_fail(cmd, "%s", err.msg);
	}
	if (d->rows == 0) {
		chain_dataset_free(d);
		return run_fail(cmd, "%s: no rows", path);
	}
	return 0;
}

char *cmd_temp_template(const char *stem)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	size_t len = strlen(dir) + strlen(stem) + 16;
	char *t = malloc(len);
	if (t)
		snprintf(t, len, "%s/%s-XXXXXX", dir, stem);
	return t;
}

/* num_params reals of the model's precision, zeroed; NULL after a message. */
static void *alloc_theta(const char *cmd, const chain_model *m)
{
	void *theta = chain_calloc_aligned(m->num_params ? m->num_params : 1, real_bytes(m));
	if (!theta)
		run_fail(cmd, "out of memory for %zu params", m->num_params);
	return theta;
}

/* Loads --params; prints and returns 1 on failure. */
static int load_params(const char *cmd, const chain_model *m, const char *path, void *theta)
{
	chain_error err = { "" };
	if (chain_checkpoint_load(path, m, theta, NULL, NULL, 0, &err) != 0)
		return run_fail(cmd, "%s", err.msg);
	return 0;
}

/* The checks every command makes of the model main.c compiled. */
static int check_model(const char *cmd, const chain_model *m)
{
	chain_error err = { "" };
	if (!m)
		return run_fail(cmd, "no model given");
	if (chain_model_check(m, cmd, &err) != 0) {
		fprintf(stderr, "chain %s\n", err.msg);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * chain train
 * ------------------------------------------------------------------------ */

static const char train_usage[] =
	"usage: chain train MODEL.chain --data FILE -o PARAMS.safetensors [options]\n"
	"\n"
	"Fits the params of MODEL by minibatch gradient steps on the mean log-likelihood\n"
	"(minus the model's penalties), validating after each epoch and keeping the best\n"
	"params.  Model flags (-D N=V, --precision f32|f64, -O0..3) as for chain build.\n"
	"\n"
	"  --data FILE         training data (.amat/.txt, .npy, MNIST IDX; .gz too)   [required]\n"
	"  -o PATH             where the params go (safetensors), rewritten each epoch [required]\n"
	"  --valid FILE        validation data: early stopping, keep the best params\n"
	"  --epochs E          epochs to train (default 10); after --resume, E more\n"
	"  --batch B           rows per step (default 100)\n"
	"  --optimizer NAME    adam (default) or sgd\n"
	"  --lr R              learning rate (default 0.001 for adam, 0.01 for sgd)\n"
	"  --momentum M        sgd momentum in [0, 1) (default 0.9)\n"
	"  --patience P        stop after P epochs without a better validation NLL\n"
	"                      (default 5; 0 = never stop early)\n"
	"  --seed S            initialisation, shuffling, stochastic binarization (default 1)\n"
	"  --threads T         threads (default: one per core); a run is reproducible for\n"
	"                      the same seed and T\n"
	"  --binarize X        X = a threshold such as 0.5, or 'stochastic'\n"
	"  --resume CKPT       start from a checkpoint (written by chain train) instead of\n"
	"                      the initialisation; epochs are numbered on from its epoch\n"
	"  --log FILE.csv      one line per epoch: epoch,train_nll,valid_nll,seconds\n"
	"  --quiet             no progress output\n"
	"  -h, --help          this text\n"
	"\n"
	"Exit status: 0 when trained, 1 on bad input or if the loss becomes NaN or Inf\n"
	"(the last good checkpoint stays in PATH).\n";

/* A metadata value for a message: at most 40 bytes, non-printable ones as
 * '?'. */
static void show_meta(const char *v, char *out, size_t cap)
{
	size_t o = 0;
	for (; *v && o + 4 < cap && o < 40; v++)
		out[o++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
	if (*v && o + 4 <= cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Loads a resumed checkpoint's params and reads its metadata: the epoch
 * it reached and the seed it was trained with.  chain train writes both;
 * a file with neither (written by another tool, or by chain_checkpoint_save
 * without them) counts as epoch 0 and keeps the seed of the command line.
 * One without the other, or a value that is not a plain non-negative
 * integer (a sign, spaces, junk, beyond 2^64 - 1), is an error naming the
 * file and the key: it is a damaged checkpoint, not one to guess about. */
static int resume_meta(const char *cmd, const chain_model *m, const char *path, void *theta,
                       uint64_t *epoch, uint64_t *seed, int *have_seed)
{
	chain_error err = { "" };
	*epoch = 0;
	*have_seed = 0;
	if (chain_checkpoint_load(path, m, theta, NULL, NULL, 0, &err) != 0)
		return run_fail(cmd, "--resume: %s", err.msg);
	static const char *const keys[2] = { "epoch", "seed" };
	char *values[2];
	if (chain_checkpoint_metadata(path, 2, keys, values, &err) != 0)
		return run_fail(cmd, "--resume: %s", err.msg);
	int rc = 0;
	if (values[0] || values[1]) {
		uint64_t *dst[2] = { epoch, seed };
		static const char *const what[2] = { "the last completed epoch", "the training seed" };
		for (int k = 0; k < 2 && rc == 0; k++) {
			char shown[48];
			if (!values[k])
				rc = run_fail(cmd, "--resume %s: __metadata__ has \"%s\" but no \"%s\" (%s); chain train writes both",
				              path, keys[1 - k], keys[k], what[k]);
			else if (cmd_parse_u64(values[k], dst[k]) != 0) {
				show_meta(values[k], shown, sizeof shown);
				rc = run_fail(cmd, "--resume %s: __metadata__ \"%s\" is '%s': expected %s, a non-negative integer below 2^64",
				              path, keys[k], shown, what[k]);
			}
		}
		*have_seed = rc == 0;
	}
	free(values[0]);
	free(values[1]);
	return rc;
}

/* The check of `~ INIT` keeps a double's init finite, but not a float's
 * (~ 1e300 in an f32 model): training would write the infinite params as
 * its first checkpoint, which no command loads, then stop at once with
 * 'loss became NaN ... the last good checkpoint is in ...; try a smaller
 * --lr'.  Prints and returns 1 when a param starts non-finite. */
static int init_not_finite(const char *cmd, const chain_model *m, const void *theta)
{
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		for (size_t e = 0; e < v->size; e++) {
			size_t i = v->offset + e;
			double x = m->precision == CHAIN_F32 ? ((const float *)theta)[i] : ((const double *)theta)[i];
			if (!isfinite(x))
				return run_fail(cmd, "model %s: the initialisation of param %s gives %g at entry %zu, out of the range of %s; "
				                "give it a smaller ~ INIT",
				                model_name(m), v->name, x, e, m->precision == CHAIN_F32 ? "a float (--precision f32)" : "a double");
		}
	}
	return 0;
}

/* Flags, then the starting params (the model's init with --seed, or
 * --resume), the data, and chain_train with the progress printer. */
int cmd_train(const chain_model *m, int argc, char **argv)
{
	const char *cmd = "train";
	const char *data_path = NULL, *valid_path = NULL, *out_path = NULL, *resume = NULL, *log_path = NULL;
	chain_train_options o;
	chain_train_defaults(&o);
	chain_optim_kind kind = CHAIN_OPTIM_ADAM;
	double lr = 0, momentum = 0.9;
	chain_load_options lo = { 0 };
	int quiet = 0;
	cmd_flag flags[] = {
		CMD_FILE("--data", &data_path),
		CMD_FILE("--valid", &valid_path),
		CMD_FILE("-o", &out_path),
		CMD_SIZE("--epochs", &o.epochs, 1, SIZE_MAX),
		CMD_SIZE("--batch", &o.batch, 1, SIZE_MAX),
		CMD_CUSTOM("--optimizer", &kind, parse_optimizer),
		CMD_POSITIVE("--lr", &lr),
		CMD_FRACTION("--momentum", &momentum),
		CMD_SIZE("--patience", &o.patience, 0, SIZE_MAX),
		CMD_SEED("--seed", &o.seed),
		CMD_UNSIGNED("--threads", &o.threads, 1, MAX_THREADS),
		CMD_CUSTOM("--binarize", &lo, parse_binarize),
		CMD_FILE("--resume", &resume),
		CMD_FILE("--log", &log_path),
		CMD_SWITCH("--quiet", &quiet),
	};
	const size_t nflags = sizeof flags / sizeof flags[0];
	int pr = cmd_parse_flags(cmd, flags, nflags, argc, argv);
	if (pr == 2) {
		fputs(train_usage, stdout);
		return 0;
	}
	if (pr != 0)
		return 1;
	if (!data_path)
		return run_fail(cmd, "missing --data FILE (the training data); see chain train --help");
	if (!out_path)
		return run_fail(cmd, "missing -o PATH (where the trained params go); see chain train --help");
	if (cmd_find_flag(flags, nflags, "--momentum")->given && kind != CHAIN_OPTIM_SGD)
		return run_fail(cmd, "--momentum applies to --optimizer sgd only");
	/* -o may be --resume (the checkpoint is read before the first is
	 * written); the log is appended to, so it may be neither */
	if (refuse_overwrite(cmd, flags, nflags, "-o", (const char *const[]){ "--data", "--valid", "--log", NULL }) ||
	    refuse_overwrite(cmd, flags, nflags, "--log", (const char *const[]){ "--data", "--valid", "--resume", NULL }))
		return 1;
	if (check_model(cmd, m) != 0)
		return 1;
	if (m->objective == CHAIN_OBJ_FREE)
		return run_fail(cmd, "model %s has a free objective (a function of the params alone, no data): use chain optimize",
		                model_name(m));
	if (m->objective != CHAIN_OBJ_LOGLIK)
		return run_fail(cmd, "model %s: only log-likelihood objectives can be trained", model_name(m));

	chain_optim_defaults(&o.optim, kind);
	if (lr > 0)
		o.optim.lr = lr;
	o.optim.momentum = momentum;

	/* Resume first: its seed (unless --seed is given) also drives the
	 * stochastic binarization of the data. */
	int rc = 1;
	chain_dataset train = { 0 }, valid = { 0 };
	void *theta = alloc_theta(cmd, m);
	if (!theta)
		return 1;
	uint64_t start = 0;
	if (resume) {
		uint64_t seed;
		int have_seed;
		if (resume_meta(cmd, m, resume, theta, &start, &seed, &have_seed) != 0)
			goto out;
		if (have_seed && !cmd_find_flag(flags, nflags, "--seed")->given)
			o.seed = seed;
		if (start > SIZE_MAX - o.epochs) {
			run_fail(cmd, "--resume %s: __metadata__ \"epoch\" is %" PRIu64 ": out of range (with --epochs %zu the last epoch would pass 2^64 - 1)",
			         resume, start, o.epochs);
			goto out;
		}
		/* --epochs more epochs, numbered on from the checkpoint's, so that
		 * each shuffles as it would have in one uninterrupted run */
		o.start_epoch = (size_t)start + 1;
		o.epochs += (size_t)start;
		o.log_append = 1;
	} else if (m->precision == CHAIN_F32 ? !m->f32->init : !m->f64->init) {
		run_fail(cmd, "model %s has no init kernel: give --resume CKPT", model_name(m));
		goto out;
	} else {
		if (m->precision == CHAIN_F32)
			m->f32->init(theta, o.seed);
		else
			m->f64->init(theta, o.seed);
		if (init_not_finite(cmd, m, theta) != 0)
			goto out;
	}
	lo.seed = o.seed;
	/* compact: the data is most of what training holds */
	if (load_data(cmd, m, data_path, &lo, 1, &train) != 0)
		goto out;
	if (valid_path && load_data(cmd, m, valid_path, &lo, 1, &valid) != 0)
		goto out;

	unsigned threads = o.threads ? o.threads : chain_default_threads();
	if (!quiet) {
		fprintf(stderr, "train %s: %zu params", model_name(m), m->num_params);
		if (m->num_params_unused)
			fprintf(stderr, " (%zu unused)", m->num_params_unused);
		fprintf(stderr, ", %zu rows", train.rows);
		if (valid_path)
			fprintf(stderr, " (+%zu valid)", valid.rows);
		fprintf(stderr, ", %s lr %g", chain_optim_name(kind), o.optim.lr);
		if (kind == CHAIN_OPTIM_SGD)
			fprintf(stderr, " momentum %g", o.optim.momentum);
		fprintf(stderr, ", batch %zu, epochs %zu..%zu, %u thread%s, seed %" PRIu64 "\n", o.batch,
		        o.start_epoch, o.epochs, threads, threads == 1 ? "" : "s", o.seed);
		if (resume)
			fprintf(stderr, "resuming from %s after epoch %" PRIu64 "\n", resume, start);
	}

	chain_progress_printer printer;
	chain_progress_printer_init(&printer, stderr);
	o.checkpoint_path = out_path;
	o.log_path = log_path;
	o.threads = threads;
	if (!quiet) {
		o.progress = chain_train_print_progress;
		o.progress_user = &printer;
	}
	chain_train_result r;
	chain_error err = { "" };
	if (chain_train(m, theta, &train, valid_path ? &valid : NULL, &o, &r, &err) != 0) {
		run_fail(cmd, "%s", err.msg);
		goto out;
	}
	if (!quiet) {
		if (r.stop == CHAIN_STOP_EARLY)
			fprintf(stderr, "stopped early after epoch %zu: no better validation NLL for %zu epochs\n",
			        r.last_epoch, o.patience);
		if (valid_path)
			fprintf(stderr, "kept the params of epoch %zu (valid NLL %.4f); saved to %s\n", r.best_epoch,
			        r.best_valid, out_path);
		else
			fprintf(stderr, "trained to epoch %zu (train NLL %.4f); saved to %s\n", r.last_epoch,
			        r.last_train_nll, out_path);
	}
	rc = 0;
out:
	chain_dataset_free(&train);
	chain_dataset_free(&valid);
	free(theta);
	return rc;
}

/* ------------------------------------------------------------------------
 * chain eval
 * ------------------------------------------------------------------------ */

static const char eval_usage[] =
	"usage: chain eval MODEL.chain --params PARAMS.safetensors --data FILE [options]\n"
	"\n"
	"Prints the mean negative log-likelihood of the rows of FILE, in nats and in bits\n"
	"per dimension, with its standard error:\n"
	"    test NLL: 95.21 nats (0.1752 bits/dim) +- 0.38 over 2000 rows\n"
	"\n"
	"  --params FILE       trained params (safetensors)                           [required]\n"
	"  --data FILE         the rows to evaluate                                   [required]\n"
	"  --binarize X        X = a threshold such as 0.5, or 'stochastic'\n"
	"  --seed S            for --binarize stochastic (default 1)\n"
	"  --threads T         threads (default: one per core); the result does not depend on T\n"
	"  -h, --help          this text\n";

/* Flags, params, data, chain_eval_nll, one line on stdout. */
int cmd_eval(const chain_model *m, int argc, char **argv)
{
	const char *cmd = "eval";
	const char *params = NULL, *data_path = NULL;
	chain_load_options lo = { .seed = 1 };
	unsigned threads = 0;
	cmd_flag flags[] = {
		CMD_FILE("--params", &params),
		CMD_FILE("--data", &data_path),
		CMD_CUSTOM("--binarize", &lo, parse_binarize),
		CMD_SEED("--seed", &lo.seed),
		CMD_UNSIGNED("--threads", &threads, 1, MAX_THREADS),
	};
	int pr = cmd_parse_flags(cmd, flags, sizeof flags / sizeof flags[0], argc, argv);
	if (pr == 2) {
		fputs(eval_usage, stdout);
		return 0;
	}
	if (pr != 0)
		return 1;
	if (!params)
		return run_fail(cmd, "missing --params FILE (trained params); see chain eval --help");
	if (!data_path)
		return run_fail(cmd, "missing --data FILE (the rows to evaluate); see chain eval --help");
	if (check_model(cmd, m) != 0)
		return 1;
	if (m->num_data == 0 || m->obs_size == 0)
		return run_fail(cmd, "model %s has no data variables: nothing to evaluate", model_name(m));

	int rc = 1;
	chain_dataset d = { 0 };
	void *theta = alloc_theta(cmd, m);
	if (!theta)
		return 1;
	if (load_params(cmd, m, params, theta) != 0 || load_data(cmd, m, data_path, &lo, 1, &d) != 0)
		goto out;
	chain_eval_result r;
	chain_error err = { "" };
	if (chain_eval_nll(m, theta, &d, threads, &r, &err) != 0) {
		run_fail(cmd, "%s", err.msg);
		goto out;
	}
	/* the standard error only where it means something: not for one row
	 * (no spread to estimate; chain_eval_nll gives 0), not for an infinite
	 * or NaN mean (it gives NaN) */
	printf("test NLL: %.2f nats", r.mean_nll);
	if (m->num_positions)
		printf(" (%.4f bits/dim)", r.bits_per_dim);
	if (isnan(r.mean_nll))
		printf(" over %zu row%s (no standard error: the NLL of a row is NaN)\n", r.rows, r.rows == 1 ? "" : "s");
	else if (isinf(r.mean_nll))
		printf(" over %zu row%s (no standard error: a row has probability 0)\n", r.rows, r.rows == 1 ? "" : "s");
	else if (r.rows < 2)
		printf(" over 1 row (no standard error from a single row)\n");
	else
		printf(" +- %.2f over %zu rows\n", r.std_err, r.rows);
	rc = fflush(stdout) == 0 ? 0 : run_fail(cmd, "cannot write the result: %s", strerror(errno));
out:
	chain_dataset_free(&d);
	free(theta);
	return rc;
}

/* ------------------------------------------------------------------------
 * chain sample
 * ------------------------------------------------------------------------ */

static const char sample_usage[] =
	"usage: chain sample MODEL.chain --params PARAMS.safetensors [options]\n"
	"\n"
	"Draws rows from the model (or completes given rows), and writes them by the\n"
	"extension of -o: .png (a grid of images), .amat/.txt (text), .npy; without -o,\n"
	"prints them as text on stdout, one row a line.\n"
	"\n"
	"  --params FILE       trained params (safetensors)                           [required]\n"
	"  -n N                rows to draw (default 16)\n"
	"  --seed S            the sample stream (default 1): the same S gives the same rows\n"
	"  --given FILE        complete the first N rows of FILE instead of drawing from scratch\n"
	"  --prefix K          with --given: keep the first K positions of the order, sample the rest\n"
	"  --binarize X        for --given: a threshold such as 0.5, or 'stochastic'\n"
	"  -o FILE             samples.png | samples.amat | samples.txt | samples.npy\n"
	"  -h, --help          this text\n";

/* Lower-case extension test: does path end with ext (".png")? */
static int has_ext(const char *path, const char *ext)
{
	size_t n = strlen(path), k = strlen(ext);
	return n > k && strcasecmp(path + n - k, ext) == 0;
}

/* A double as the shortest text that reads back to it (integers without a
 * decimal point), as the .amat writer prints. */
static void print_value(FILE *f, double v)
{
	char buf[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
}

/* Writes the samples as a PNG grid: only for a model whose one data
 * variable is a square image.  For --given, the pixels whose position in the
 * order is < prefix are marked as given. */
static int write_png(const char *cmd, const chain_model *m, const char *path, const chain_dataset *d,
                     int given, size_t prefix)
{
	size_t side = 0;
	if (m->num_data == 1 && m->data[0].size > 0) {
		side = (size_t)llround(sqrt((double)m->data[0].size));
		while (side * side > m->data[0].size)
			side--;
		while ((side + 1) * (side + 1) <= m->data[0].size)
			side++;
	}
	if (m->num_data != 1 || side * side != m->data[0].size || side == 0)
		return run_fail(cmd, "%s: PNG needs one square image variable; use .amat or .npy", path);
	const chain_var *v = &m->data[0];
	size_t npix = v->size, rows = d->rows;
	double *pix = malloc(rows * npix * sizeof *pix);
	unsigned char *mask = NULL;
	size_t *pos = NULL;
	int rc = 1;
	if (!pix)
		goto oom;
	for (size_t r = 0; r < rows; r++)
		memcpy(pix + r * npix, d->values + r * d->cols + v->offset, npix * sizeof *pix);
	if (given) {
		/* position in the order of each obs offset (SIZE_MAX = not in it) */
		pos = malloc(m->obs_size * sizeof *pos);
		mask = malloc(rows * npix);
		if (!pos || !mask)
			goto oom;
		for (size_t j = 0; j < m->obs_size; j++)
			pos[j] = SIZE_MAX;
		for (size_t k = 0; k < m->num_positions; k++)
			if (m->order[k] < m->obs_size)
				pos[m->order[k]] = k;
		for (size_t p = 0; p < npix; p++)
			mask[p] = pos[v->offset + p] < prefix;
		for (size_t r = 1; r < rows; r++)
			memcpy(mask + r * npix, mask, npix);
	}
	chain_error err = { "" };
	if (chain_png_grid(path, pix, mask, rows, side, 2, &err) != 0)
		run_fail(cmd, "%s", err.msg);
	else
		rc = 0;
	goto done;
oom:
	run_fail(cmd, "out of memory for %zu images", rows);
done:
	free(pix);
	free(mask);
	free(pos);
	return rc;
}

/* Flags, params, then the model's sample kernel (or complete, on the rows
 * of --given), then the rows by the extension of -o, or as text on stdout. */
int cmd_sample(const chain_model *m, int argc, char **argv)
{
	const char *cmd = "sample";
	const char *params = NULL, *given_path = NULL, *out_path = NULL;
	size_t n = 16, prefix = 0;
	uint64_t seed = 1;
	chain_load_options lo = { 0 };
	cmd_flag flags[] = {
		CMD_FILE("--params", &params),
		CMD_SIZE("-n", &n, 1, SIZE_MAX),
		CMD_SEED("--seed", &seed),
		CMD_FILE("--given", &given_path),
		CMD_SIZE("--prefix", &prefix, 0, SIZE_MAX),
		CMD_CUSTOM("--binarize", &lo, parse_binarize),
		CMD_FILE("-o", &out_path),
	};
	const size_t nflags = sizeof flags / sizeof flags[0];
	int pr = cmd_parse_flags(cmd, flags, nflags, argc, argv);
	if (pr == 2) {
		fputs(sample_usage, stdout);
		return 0;
	}
	if (pr != 0)
		return 1;
	if (!params)
		return run_fail(cmd, "missing --params FILE (trained params); see chain sample --help");
	int have_prefix = cmd_find_flag(flags, nflags, "--prefix")->given;
	if (given_path && !have_prefix)
		return run_fail(cmd, "--given needs --prefix K (how many positions of the order to keep)");
	if (have_prefix && !given_path)
		return run_fail(cmd, "--prefix needs --given FILE (the rows to complete)");
	if (cmd_find_flag(flags, nflags, "--binarize")->given && !given_path)
		return run_fail(cmd, "--binarize applies to --given FILE only");
	int png = out_path && has_ext(out_path, ".png");
	if (out_path && !png && !has_ext(out_path, ".amat") && !has_ext(out_path, ".txt") && !has_ext(out_path, ".npy"))
		return run_fail(cmd, "-o %s: unknown extension: expected .png, .amat, .txt or .npy", out_path);
	if (refuse_overwrite(cmd, flags, nflags, "-o", (const char *const[]){ "--given", "--params", NULL }))
		return 1;
	if (check_model(cmd, m) != 0)
		return 1;
	if (m->obs_size == 0)
		return run_fail(cmd, "model %s has no data variables: nothing to sample", model_name(m));
	/* the sampler reads the inputs from the row; drawing from scratch
	 * would give it zeros that nobody chose */
	if (m->num_inputs > 0 && !given_path)
		return run_fail(cmd,
		                "model %s has input variables (%s%s): give rows that hold their values with --given FILE "
		                "--prefix 0 (which samples every data variable)",
		                model_name(m), m->inputs[0].name, m->num_inputs > 1 ? ", ..." : "");
	int f32 = m->precision == CHAIN_F32;
	int have_kernel = given_path ? (f32 ? m->f32->complete != NULL : m->f64->complete != NULL)
	                             : (f32 ? m->f32->sample != NULL : m->f64->sample != NULL);
	if (!have_kernel)
		return run_fail(cmd, "model %s has no %s kernel", model_name(m), given_path ? "complete" : "sample");
	if (have_prefix && prefix > m->num_positions)
		return run_fail(cmd, "--prefix: %zu is more than the %zu positions of the order of model %s", prefix,
		                m->num_positions, model_name(m));
	/* n rows of obs_size reals, twice (the kernel's, the output's) */
	if (cmd_rows_fit("chain sample", "-n", n, m->obs_size) != 0)
		return 1;

	int rc = 1;
	chain_dataset given = { 0 }, out = { 0 };
	void *obs = NULL;
	void *theta = alloc_theta(cmd, m);
	if (!theta)
		return 1;
	if (load_params(cmd, m, params, theta) != 0)
		goto done;
	lo.seed = seed;
	if (given_path) {
		if (load_data(cmd, m, given_path, &lo, 0, &given) != 0)
			goto done;
		if (given.rows < n)
			n = given.rows;
	}
	size_t D = m->obs_size;
	obs = chain_calloc_aligned(n * D, real_bytes(m));
	out.values = malloc(n * D * sizeof *out.values);
	if (!obs || !out.values) {
		run_fail(cmd, "out of memory for %zu rows", n);
		goto done;
	}
	out.rows = n;
	out.cols = D;
	if (given_path)
		for (size_t i = 0; i < n * D; i++) {
			if (f32)
				((float *)obs)[i] = (float)given.values[i];
			else
				((double *)obs)[i] = given.values[i];
		}
	if (f32 && given_path)
		m->f32->complete(theta, seed, 0, prefix, n, obs);
	else if (f32)
		m->f32->sample(theta, seed, 0, n, obs);
	else if (given_path)
		m->f64->complete(theta, seed, 0, prefix, n, obs);
	else
		m->f64->sample(theta, seed, 0, n, obs);
	for (size_t i = 0; i < n * D; i++)
		out.values[i] = f32 ? (double)((float *)obs)[i] : ((double *)obs)[i];

	chain_error err = { "" };
	if (png) {
		rc = write_png(cmd, m, out_path, &out, given_path != NULL, prefix);
	} else if (out_path) {
		if (chain_data_save(out_path, &out, &err) != 0)
			run_fail(cmd, "%s", err.msg);
		else
			rc = 0;
	} else {
		for (size_t r = 0; r < n; r++) {
			for (size_t c = 0; c < D; c++) {
				if (c)
					putchar(' ');
				print_value(stdout, out.values[r * D + c]);
			}
			putchar('\n');
		}
		rc = fflush(stdout) == 0 ? 0 : run_fail(cmd, "cannot write the samples: %s", strerror(errno));
	}
done:
	chain_dataset_free(&given);
	free(out.values);
	free(obs);
	free(theta);
	return rc;
}
