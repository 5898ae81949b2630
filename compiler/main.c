/* main.c -- the chain command line: parses flags, calls the compiler
 * library, then the runtime.  Thin on purpose: each command is a few calls.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain/checkpoint.h"
#include "chain/data.h"
#include "chain/lbfgs.h"
#include "chain/model.h"
#include "chain/rng.h"
#include "chainc.h"
#include "cg_build.h"
#include "cmd.h"

static const char usage[] =
	"usage: chain COMMAND MODEL.chain [options]\n"
	"\n"
	"commands:\n"
	"  build MODEL [-o OUT] [--emit obj|asm|llvm|bc|header|ir] [-O0..3] [-D N=V]\n"
	"              [--precision f64|f32] [--target TRIPLE] [--cpu CPU]\n"
	"  check MODEL [-D N=V]           diagnostics, or a summary of the model\n"
	"  train MODEL --data F [--valid F] [--epochs E] [--batch B] [--lr R] ... -o P.safetensors\n"
	"  eval MODEL --params P --data F  mean NLL in nats and bits per dimension\n"
	"  sample MODEL --params P [-n N] [--given F --prefix K] [-o OUT.png|.amat|.npy]\n"
	"  optimize MODEL [--seed S] [--max-iter N] [-o P.safetensors]\n"
	"                              the optimum of a free objective (L-BFGS)\n"
	"  compare MODEL --ref REF.c [--data F] [--rows R] [--cflags FLAGS]\n"
	"                              generated kernels against hand-written C: values, gradients, speed\n"
	"  gradcheck MODEL [--data F] [--seed S] [--rows R] [--tol T]\n"
	"                              generated gradient against finite differences\n"
	"\n"
	"Every command takes -D NAME=VALUE (override a dim), --precision and -O.\n"
	"`chain COMMAND --help` shows a command's own options.  Docs: docs/cli.md\n";

/* What every command needs to compile a model. */
typedef struct compile_opts {
	const char *path;
	dim_override ov[64];
	size_t nov;
	cg_options cg;
} compile_opts;

typedef struct compiled {
	arena *arena;
	diag_ctx diag;
	model *model;
	ir_module *ir;
} compiled;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("chain: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* Parses one model-related flag at argv[*i]; returns 1 if taken, 0 if not
 * one of them, -1 on a bad value (message printed). */
static int model_flag(compile_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strncmp(a, "-D", 2) == 0) { /* -D NAME=V or -DNAME=V */
		const char *spec = a[2] ? a + 2 : (*i + 1 < argc ? argv[++*i] : NULL);
		const char *eq = spec ? strchr(spec, '=') : NULL;
		if (!spec || !eq || eq == spec) {
			fail("-D: expected NAME=VALUE, e.g. -D H=100");
			return -1;
		}
		char flag[80];
		snprintf(flag, sizeof flag, "-D %.*s", (int)(eq - spec < 64 ? eq - spec : 64), spec);
		uint64_t v;
		if (cmd_flag_u64("chain", flag, eq + 1, 1, INT64_MAX, &v) != 0)
			return -1;
		if (o->nov == sizeof o->ov / sizeof o->ov[0]) {
			fail("-D: too many overrides");
			return -1;
		}
		o->ov[o->nov].name = strndup(spec, (size_t)(eq - spec));
		o->ov[o->nov].value = (int64_t)v;
		o->nov++;
		return 1;
	}
	if (strncmp(a, "-O", 2) == 0 && strlen(a) == 3 && a[2] >= '0' && a[2] <= '3') {
		o->cg.opt_level = a[2] - '0';
		return 1;
	}
	const char *v;
	int r = cmd_flag_match("chain", argc, argv, i, "--precision", true, &v);
	if (r > 0) {
		if (strcmp(v, "f64") == 0)
			o->cg.f32 = false;
		else if (strcmp(v, "f32") == 0)
			o->cg.f32 = true;
		else {
			fail("--precision: expected f64 or f32, got '%s'", v);
			return -1;
		}
		return 1;
	}
	if (r == 0 && (r = cmd_flag_match("chain", argc, argv, i, "--target", true, &v)) > 0)
		o->cg.target = v;
	else if (r == 0 && (r = cmd_flag_match("chain", argc, argv, i, "--cpu", true, &v)) > 0)
		o->cg.cpu = v;
	return r;
}

/* parse -> check -> lower -> ad -> opt.  Diagnostics are printed; returns
 * false when the model has errors. */
static bool compile_model(const compile_opts *o, compiled *c)
{
	c->arena = arena_new();
	diag_init(&c->diag, c->arena);
	program prog = {0};
	parse_stdlib(&c->diag, &prog);
	parse_path(&c->diag, o->path, &prog);
	if (c->diag.errors == 0) {
		dim_override ov[64];
		memcpy(ov, o->ov, sizeof ov);
		c->model = check_program(&c->diag, &prog, ov, o->nov);
	}
	if (c->model && c->diag.errors == 0)
		c->ir = lower_model(&c->diag, c->model, c->arena);
	if (c->ir && c->diag.errors == 0) {
		ad_module(&c->diag, c->ir);
		opt_module(c->ir);
	}
	diag_print(&c->diag, stderr, isatty(2));
	return c->diag.errors == 0 && c->ir;
}

static void compiled_free(compiled *c)
{
	arena_free(c->arena);
}

/* Removes the directory and the extension: "examples/nade.chain" -> "nade". */
/* `-o -`: what was written to path goes to stdout, and path is removed. */
static int copy_to_stdout(const char *path)
{
	FILE *f = fopen(path, "rb");
	int rc = f ? 0 : fail("cannot read '%s': %s", path, strerror(errno));
	unlink(path); /* now, before a closed pipe can end the process */
	char buf[65536];
	size_t got;
	while (f && (got = fread(buf, 1, sizeof buf, f)) > 0)
		if (fwrite(buf, 1, got, stdout) != got) {
			rc = fail("cannot write to stdout: %s", strerror(errno));
			break;
		}
	if (f && ferror(f))
		rc = fail("cannot read '%s': %s", path, strerror(errno));
	if (f)
		fclose(f);
	if (fflush(stdout) != 0 && rc == 0)
		rc = fail("cannot write to stdout: %s", strerror(errno));
	return rc;
}

static char *basename_noext(const char *path, const char *ext)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strcspn(b, ".");
	char *s = malloc(n + strlen(ext) + 1);
	memcpy(s, b, n);
	strcpy(s + n, ext);
	return s;
}

static int cmd_build(compile_opts *o, int argc, char **argv)
{
	const char *out = NULL, *emit = "obj", *v;
	for (int i = 1; i < argc; i++) {
		int r = model_flag(o, argc, argv, &i);
		if (r == 0 && (r = cmd_flag_match("chain build", argc, argv, &i, "-o", true, &v)) > 0)
			out = v;
		else if (r == 0 && (r = cmd_flag_match("chain build", argc, argv, &i, "--emit", true, &v)) > 0)
			emit = v;
		else if (r == 0) /* --help=1 (--help alone is taken in main) */
			r = cmd_flag_match("chain build", argc, argv, &i, "--help", false, &v);
		if (r < 0)
			return 1;
		if (r)
			continue;
		if (argv[i][0] == '-')
			return fail("build: unknown option '%s' (see chain --help)", argv[i]);
		else if (!o->path)
			o->path = argv[i];
		else
			return fail("build: more than one model file ('%s' and '%s')", o->path, argv[i]);
	}
	static const struct { const char *name, *ext; cg_emit_kind kind; } kinds[] = {
		{"obj", ".o", EMIT_OBJ}, {"asm", ".s", EMIT_ASM}, {"llvm", ".ll", EMIT_LLVM},
		{"bc", ".bc", EMIT_BC}, {"header", ".h", EMIT_HEADER},
	};
	int k = -1;
	for (int i = 0; i < 5; i++)
		if (strcmp(emit, kinds[i].name) == 0)
			k = i;
	bool ir_dump = strcmp(emit, "ir") == 0;
	if (k < 0 && !ir_dump)
		return fail("--emit: expected obj, asm, llvm, bc, header or ir, got '%s'", emit);
	if (!o->path)
		return fail("build: no model file given");
	/* the default output is named after the model: `chain build m.h --emit
	 * header` would write m.h */
	bool to_stdout = out && strcmp(out, "-") == 0;
	char *def = out || ir_dump ? NULL : basename_noext(o->path, kinds[k].ext);
	if (!to_stdout && (out || def) && cmd_same_file(out ? out : def, o->path)) {
		fail("build: the output %s is the model file: writing there would destroy it; give -o another name",
		     out ? out : def);
		free(def);
		return 1;
	}
	compiled c = {0};
	if (!compile_model(o, &c)) {
		free(def);
		compiled_free(&c);
		return 1;
	}
	if (ir_dump) {
		/* the model IR after lowering, AD and clean-ups: for reading; a
		 * file through a temporary beside it, as every other output */
		char *err = NULL;
		cg_file file = { .f = stdout };
		int rc = out && !to_stdout ? cg_file_open(&file, out, &err) : 0;
		if (rc == 0) {
			for (int i = 0; i < KER__COUNT; i++)
				if (c.ir->kernels[i])
					ir_print_kernel(file.f, c.ir->kernels[i]);
			if (file.f != stdout)
				rc = cg_file_close(&file, out, true, &err);
			else if (fflush(stdout) != 0 || ferror(stdout))
				rc = fail("cannot write to stdout: %s", strerror(errno));
		}
		if (rc && err)
			rc = fail("%s", err);
		free(err);
		compiled_free(&c);
		return rc ? 1 : 0;
	}
	char *tmp = NULL;
	if (to_stdout) { /* written to a temporary file, then copied: the emitters write files */
		int fd = (tmp = cmd_temp_template("chain-build")) ? mkstemp(tmp) : -1;
		if (fd < 0) {
			int e = tmp ? errno : ENOMEM;
			fail("cannot create a temporary file%s%s: %s", tmp ? " " : "", tmp ? tmp : "", strerror(e));
			free(tmp);
			free(def);
			compiled_free(&c);
			return 1;
		}
		close(fd);
		out = tmp;
	}
	if (!out)
		out = def;
	char *err = NULL;
	int rc = 0;
	if (kinds[k].kind != EMIT_HEADER)
		lower_descriptor_tables(c.ir); /* what the descriptor in the code needs */
	if (kinds[k].kind == EMIT_HEADER) {
		rc = cg_emit_header(c.ir, &o->cg, out, &err);
	} else if (kinds[k].kind == EMIT_OBJ) {
		/* the kernels on several threads: the same code as below, sooner */
		rc = cg_build_object(c.ir, &o->cg, out, &err);
	} else {
		cg_unit *u = cg_generate(c.ir, &o->cg, &err);
		rc = u ? cg_emit(u, kinds[k].kind, out, &err) : -1;
		if (u)
			cg_unit_free(u);
	}
	if (rc || err) {
		fail("%s", err ? err : "code generation failed");
		rc = 1;
	}
	if (to_stdout)
		rc = rc ? (unlink(tmp), rc) : copy_to_stdout(tmp);
	free(tmp);
	free(err);
	free(def);
	compiled_free(&c);
	return rc ? 1 : 0;
}

/* ------------------------------------------------------------- check */

/* Iterations of the innermost statements of a block, per observation:
 * each loop variable taken at the middle of its range when it bounds an
 * inner loop (so a triangular loop counts n^2/2). */
typedef struct cost_ctx {
	int64_t *mid;
	int n;
} cost_ctx;

static double cost_idx(cost_ctx *c, const ir_idx *i)
{
	switch (i->kind) {
	case IX_CONST: return (double)i->u.c;
	case IX_LOOP: return i->u.loop->id < c->n ? (double)c->mid[i->u.loop->id] : 0;
	case IX_ADD: return cost_idx(c, i->u.bin.a) + cost_idx(c, i->u.bin.b);
	case IX_SUB: return cost_idx(c, i->u.bin.a) - cost_idx(c, i->u.bin.b);
	case IX_MUL: return cost_idx(c, i->u.bin.a) * cost_idx(c, i->u.bin.b);
	default: return 0;
	}
}

static double cost_loop(cost_ctx *c, const ir_loop *l)
{
	if (l->is_rows)
		return 1;
	double lo = cost_idx(c, l->lo), hi = cost_idx(c, l->hi);
	if (l->id < c->n)
		c->mid[l->id] = (int64_t)((lo + hi) / 2);
	return hi > lo ? hi - lo : 0;
}

static double cost_block(cost_ctx *c, const ir_block *b)
{
	double total = 0;
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR) {
			double n = cost_loop(c, s->loop);
			total += n * cost_block(c, &s->body);
		} else if (s->kind == S_IF_GE) {
			total += cost_block(c, &s->body);
		} else {
			double n = 1;
			for (int l = 0; l < s->nloops; l++)
				n *= cost_loop(c, s->loops[l]);
			total += n;
		}
	}
	return total;
}

static const char *kind_str(val_kind k)
{
	return k == K_BIN ? "bin" : k == K_CAT ? "cat" : k == K_INT ? "int" : "real";
}

static void print_var(const sym *y)
{
	printf("  %-10s %s", y->name, kind_str(y->vkind));
	if (y->vkind == K_CAT)
		printf("(%lld)", (long long)y->cat_k);
	if (y->shape.rank) {
		printf("[");
		for (int d = 0; d < y->shape.rank; d++)
			printf("%s%lld", d ? ", " : "", (long long)y->shape.dims[d]);
		printf("]");
	}
}

/* Ends the line of input or data variable i (inputs first) with the limit
 * on its values that a sum's range depending on them sets, if any: data
 * files are held to it (chain_data_check), so the summary says it. */
static void print_value_max(const ir_module *ir, size_t i)
{
	if (ir->value_max && ir->value_max[i] >= 0)
		printf("   values 0..%lld (a sum's range depends on them)", (long long)ir->value_max[i]);
	printf("\n");
}

static int cmd_check(compile_opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *v;
		int r = model_flag(o, argc, argv, &i);
		if (r == 0) /* --help=1 (--help alone is taken in main) */
			r = cmd_flag_match("chain check", argc, argv, &i, "--help", false, &v);
		if (r < 0)
			return 1;
		if (r)
			continue;
		if (argv[i][0] == '-')
			return fail("check: unknown option '%s'", argv[i]);
		if (o->path)
			return fail("check: more than one model file ('%s' and '%s')", o->path, argv[i]);
		o->path = argv[i];
	}
	if (!o->path)
		return fail("check: no model file given");
	compiled c = {0};
	if (!compile_model(o, &c)) {
		compiled_free(&c);
		return 1;
	}
	const model *m = c.model;
	const ir_module *ir = c.ir;
	printf("model %s: ok\n", m->name);
	printf("data (%lld reals per observation):\n", (long long)m->obs_size);
	for (size_t i = 0; i < m->inputs.len; i++) {
		print_var(m->inputs.items[i]);
		printf("   (input)");
		print_value_max(ir, i);
	}
	for (size_t i = 0; i < m->data.len; i++) {
		const sym *y = m->data.items[i];
		print_var(y);
		printf("   ~ %s", y->cond->u.cond.family->u.call.name);
		print_value_max(ir, m->inputs.len + i);
	}
	printf("order: ");
	for (size_t i = 0; i < m->order.len; i++) {
		const sym *y = m->order.items[i];
		int64_t n = y->shape.rank ? y->shape.dims[0] : 1;
		printf("%s%s", i ? ", " : "", y->name);
		if (y->shape.rank) {
			printf(" [");
			for (int64_t k = 0; k < n && k < 4; k++)
				printf("%s%lld", k ? ", " : "", (long long)order_elem(y, k));
			printf("%s]", n > 4 ? ", ..." : "");
		}
	}
	printf("  (%lld positions)\n", (long long)m->num_positions);
	printf("params: %lld", (long long)m->num_params);
	if (ir->num_unused)
		printf(" (%lld used, %lld structurally unused)", (long long)(m->num_params - ir->num_unused), (long long)ir->num_unused);
	printf("\n");
	for (size_t i = 0; i < m->params.len; i++) {
		print_var(m->params.items[i]);
		if (ir->param_unused && ir->param_unused[i])
			printf("   %lld unused", (long long)ir->param_unused[i]);
		printf("\n");
	}
	printf("objective: %s", m->maximize ? "maximize" : "minimize");
	printf(m->objective_has_loglik ? " mean loglik%s\n" : " a function of the params%s\n",
	       m->objective_has_loglik && m->penalty ? " with a penalty" : "");
	printf("kernel cost (innermost loop iterations per observation):\n");
	cost_ctx cc = {.n = ir->next_id + 1};
	cc.mid = calloc((size_t)cc.n, sizeof(int64_t));
	for (int k = 0; k < KER__COUNT; k++)
		if (ir->kernels[k] && k != KER_INIT)
			printf("  %-14s %.3g\n", ir->kernels[k]->name, cost_block(&cc, &ir->kernels[k]->body));
	free(cc.mid);
	compiled_free(&c);
	return 0;
}

/* ------------------------------------------------------- jit commands */

/* Compiles and loads the model in-process; *s must be freed with jit_free. */
static const chain_model *load_model(compile_opts *o, compiled *c, jit_session **s)
{
	if (!o->path) {
		fail("no model file given: chain COMMAND MODEL.chain [options] (see chain --help)");
		return NULL;
	}
	if (!compile_model(o, c))
		return NULL;
	char *err = NULL;
	void *obj = NULL;
	size_t size = 0;
	const chain_model *m = NULL;
	lower_descriptor_tables(c->ir);
	o->cg.jit = true;
	if (jit_check_target(o->cg.target, &err) == 0 && cg_build_object_memory(c->ir, &o->cg, &obj, &size, &err) == 0) {
		char descriptor[512];
		snprintf(descriptor, sizeof descriptor, "%s_model", c->ir->model->name);
		*s = jit_load_object(obj, size, descriptor, &m, &err);
	}
	free(obj);
	if (!m) {
		fail("%s", err ? err : "could not compile the model");
		free(err);
		return NULL;
	}
	return m;
}

/* The command flags that take no value; every other `--name` of a command
 * takes the next argument as its value, even one that looks like a model
 * flag (`--cflags -O3`), unless it has its value after '='. */
static const char *const switches[] = {"--quiet", "--help", "-h", NULL};

/* The model flags (and the model file) apart from the command's own, which
 * are left in rargv for the command's table.  A command flag's value is
 * the next argument unless it came with '=' (--epochs=1 -D H=20: -D was
 * taken as the value of --epochs=1). */
static int split_args(compile_opts *o, int argc, char **argv, int *rargc, char **rargv)
{
	*rargc = 0;
	rargv[(*rargc)++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (*rargc > 1 && strncmp(rargv[*rargc - 1], "--", 2) == 0 &&
		    cmd_flag_takes_next(rargv[*rargc - 1], switches) && rargv[*rargc - 1] == argv[i - 1]) {
			rargv[(*rargc)++] = argv[i]; /* the value of the command flag before it */
			continue;
		}
		int r = model_flag(o, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r)
			continue;
		if (!o->path && argv[i][0] != '-' && (i == 1 || argv[i - 1][0] != '-' || strchr(argv[i], '.'))) {
			/* right after the command (the usage's place) any name is the
			 * model, as for check and build; elsewhere a positional
			 * argument is the model when it ends in .chain */
			const char *dot = strrchr(argv[i], '.');
			if (i == 1 || (dot && strcmp(dot, ".chain") == 0)) {
				o->path = argv[i];
				continue;
			}
		}
		rargv[(*rargc)++] = argv[i];
	}
	rargv[*rargc] = NULL;
	return 0;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

/* No command takes its model file as the value of a flag: as an output
 * (train -o m.chain, optimize -o m.chain) it would be replaced by the
 * params, as an input it is not data.  1 after the message when one does. */
static int names_model_file(const compile_opts *o, const char *cmd, int argc, char **argv)
{
	for (int i = 1; o->path && i < argc; i++) {
		const char *a = argv[i], *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		int flen = eq ? (int)(eq - a)
		           : i > 1 && cmd_flag_takes_next(argv[i - 1], switches) ? (int)strlen(argv[i - 1])
		           : 0;
		const char *flag = eq ? a : argv[i - 1], *v = eq ? eq + 1 : a;
		if ((eq || a[0] != '-') && flen > 0 && cmd_same_file(v, o->path))
			return fail("%s: %.*s %s is the model file; give %.*s another file", cmd, flen, flag, v, flen, flag);
	}
	return 0;
}

static int run_jit_command(compile_opts *o, int argc, char **argv, int (*fn)(const chain_model *, int, char **))
{
	char **rargv = calloc((size_t)argc + 1, sizeof(char *));
	int rargc, rc = 1;
	if (split_args(o, argc, argv, &rargc, rargv) == 0 && names_model_file(o, argv[0], rargc, rargv) == 0) {
		if (wants_help(rargc, rargv)) {
			rc = fn(NULL, rargc, rargv);
		} else {
			compiled c = {0};
			jit_session *s = NULL;
			const chain_model *m = load_model(o, &c, &s);
			if (m)
				rc = fn(m, rargc, rargv);
			if (s)
				jit_free(s);
			if (c.arena)
				compiled_free(&c);
		}
	}
	free(rargv);
	return rc;
}

/* ----------------------------------------------------------- gradcheck */

typedef struct gc_opts {
	const char *data;
	uint64_t seed;
	size_t rows;
	double tol;
	size_t samples;
} gc_opts;

static int gradcheck_run(const chain_model *m, const gc_opts *g);

static int gc_args(const chain_model *m, int argc, char **argv)
{
	gc_opts g = {.seed = 1, .rows = 3, .tol = 1e-6, .samples = 40};
	cmd_flag flags[] = {
		CMD_FILE("--data", &g.data),
		CMD_SEED("--seed", &g.seed),
		CMD_SIZE("--rows", &g.rows, 1, CMD_MAX_CHECK_ROWS),
		CMD_SIZE("--samples", &g.samples, 1, SIZE_MAX),
		CMD_POSITIVE("--tol", &g.tol),
	};
	int pr = cmd_parse_flags("gradcheck", flags, sizeof flags / sizeof flags[0], argc, argv);
	if (pr == 2) {
		printf("usage: chain gradcheck MODEL.chain [--data F] [--seed S] [--rows R] [--tol T] [--samples K] [-D N=V]\n"
		       "Compares the generated gradient of the objective with central finite differences\n"
		       "at random params (seeded) on R rows of F (or random data); checks K entries per\n"
		       "param (all of a small one).  Exit 1 if the worst relative error, beyond what the\n"
		       "differences are good to (their change from step h to 2h), exceeds T (1e-6).\n");
		return 0;
	}
	return pr ? 1 : gradcheck_run(m, &g);
}

static int gradcheck_run(const chain_model *m, const gc_opts *g)
{
	if (!m->f64)
		return fail("gradcheck runs in f64: drop --precision f32");
	size_t np = m->num_params, ob = m->obs_size, rows = g->rows;
	if (cmd_rows_fit("chain gradcheck", "--rows", rows, ob) != 0)
		return 1;
	double *theta = calloc(np + 1, sizeof(double)), *grad = calloc(np + 1, sizeof(double));
	double *obs = NULL;
	if (g->data) {
		chain_dataset d = {0};
		chain_error err;
		if (chain_data_load(g->data, NULL, &d, &err) || chain_data_check(&d, m, g->data, &err)) {
			free(theta);
			free(grad);
			chain_dataset_free(&d);
			return fail("%s", err.msg);
		}
		if (rows > d.rows)
			rows = d.rows;
		obs = ob < SIZE_MAX / sizeof(double) / (rows + 1) ? calloc(rows * ob + 1, sizeof(double)) : NULL;
		if (obs)
			memcpy(obs, d.values, rows * ob * sizeof(double));
		chain_dataset_free(&d);
	} else {
		obs = ob < SIZE_MAX / sizeof(double) / (rows + 1) ? calloc(rows * ob + 1, sizeof(double)) : NULL;
	}
	if (!theta || !grad || !obs) {
		free(theta);
		free(grad);
		free(obs);
		return fail("gradcheck: out of memory for %zu params and %zu rows of %zu reals", np, rows, ob);
	}
	if (!g->data) {
		/* random data of the declared kinds */
		const chain_var *groups[2] = {m->inputs, m->data};
		size_t counts[2] = {m->num_inputs, m->num_data};
		for (size_t r = 0; r < rows; r++)
			for (int gi = 0; gi < 2; gi++)
				for (size_t v = 0; v < counts[gi]; v++) {
					const chain_var *cv = &groups[gi][v];
					for (size_t e = 0; e < cv->size; e++) {
						double u = chain_rng_uniform(g->seed, CHAIN_STREAM_DATA, r, (uint32_t)(cv->offset + e), 1);
						double x = cv->kind == CHAIN_BIN ? (u < 0.5) : cv->kind == CHAIN_CAT ? floor(u * cv->cat_k)
						         : cv->kind == CHAIN_INT ? floor(u * 5) : chain_rng_normal(g->seed, CHAIN_STREAM_DATA, r, (uint32_t)(cv->offset + e), 2);
						/* within what a sum over the values lets in, as a data file must be */
						size_t most = chain_model_value_max(m, gi, v);
						obs[r * ob + cv->offset + e] = cv->kind != CHAIN_REAL && x > (double)most ? (double)most : x;
					}
				}
	}
	/* random params: the init, plus noise on the used entries */
	m->f64->init(theta, g->seed);
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		for (size_t e = 0; e < v->size; e++)
			if (!v->used || v->used[e])
				theta[v->offset + e] += 0.5 * chain_rng_normal(g->seed, CHAIN_STREAM_DATA, v->offset + e, 7, 0);
	}
	m->f64->objective(theta, obs, rows, grad);
	double worst_all = 0;
	printf("gradcheck %s: %zu rows, seed %llu\n", m->name, rows, (unsigned long long)g->seed);
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		double worst = 0, worst_unc = 0;
		size_t worst_at = 0, n = v->size <= g->samples ? v->size : g->samples;
		for (size_t s = 0; s < n; s++) {
			size_t e = v->size <= g->samples ? s : chain_rng_bits(g->seed, CHAIN_STREAM_DATA, p, 9, (uint32_t)s) % v->size;
			size_t t = v->offset + e;
			/* fourth-order central differences: truncation O(h^4), so h can
			 * be large enough that rounding in f stays small */
			double x = theta[t], h = 1e-3 * fmax(1, fabs(x)), f[6];
			const double steps[6] = {2, 1, -1, -2, 4, -4};
			for (int q = 0; q < 6; q++) {
				theta[t] = x + steps[q] * h;
				f[q] = m->f64->objective(theta, obs, rows, NULL);
			}
			theta[t] = x;
			double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
			/* What the differences themselves are good to: their change
			 * from step h to 2h.  Rounding in f (relative 1e-16 of an
			 * objective of hundreds of nats: NADE's) makes differences
			 * at step h wrong by ~1e-9 in either direction, which is
			 * 1e-6 of a gradient entry of 1e-3; truncation makes the
			 * step 2h ones wrong by 16 times those at h.  Either way a
			 * gradient is only wrong beyond that. */
			double fd2 = (-f[4] + 8 * f[0] - 8 * f[3] + f[5]) / (24 * h);
			double scale = fmax(fmax(fabs(grad[t]), fabs(fd)), 1e-3);
			double unc = fabs(fd - fd2) / scale;
			double rel = fmax(0, fabs(grad[t] - fd) / scale - unc);
			if (!(rel <= worst) || (rel == worst && worst == 0 && unc > worst_unc)) {
				worst = rel;
				worst_unc = unc;
				worst_at = e;
			}
		}
		printf("  %-10s worst relative error %.2e beyond the differences' own %.1e (entry %zu of %zu, %zu checked)\n",
		       v->name, worst, worst_unc, worst_at, v->size, n);
		if (!(worst <= worst_all))
			worst_all = worst;
	}
	free(theta);
	free(grad);
	free(obs);
	if (!(worst_all <= g->tol)) {
		printf("FAILED: worst relative error %.2e > tolerance %.1e\n", worst_all, g->tol);
		return 1;
	}
	printf("ok: worst relative error %.2e <= %.1e\n", worst_all, g->tol);
	return 0;
}

/* ------------------------------------------------------------ optimize */

typedef struct free_objective {
	const chain_model *m;
	double sign;          /* -1 to minimize the negative of a maximized objective */
} free_objective;

static double free_fg(void *ctx, const double *x, double *g)
{
	const free_objective *fo = ctx;
	double f = fo->m->f64->objective(x, NULL, 0, g);
	for (size_t i = 0; i < fo->m->num_params; i++)
		g[i] *= fo->sign;
	return fo->sign * f;
}

/* `chain optimize`: the optimum of a free objective (a function of the
 * params alone) by L-BFGS from the model's initialisation. */
static int opt_args(const chain_model *m, int argc, char **argv)
{
	uint64_t seed = 1;
	chain_lbfgs_options lo;
	chain_lbfgs_defaults(&lo);
	const char *out = NULL;
	cmd_flag flags[] = {
		CMD_SEED("--seed", &seed),
		CMD_INT("--max-iter", &lo.max_iter, 1, INT_MAX),
		CMD_POSITIVE("--tol", &lo.gtol),
		CMD_FILE("-o", &out),
	};
	int pr = cmd_parse_flags("optimize", flags, sizeof flags / sizeof flags[0], argc, argv);
	if (pr == 2) {
		printf("usage: chain optimize MODEL.chain [--seed S] [--max-iter N] [--tol T] [-o PARAMS.safetensors] [-D N=V]\n"
		       "Minimizes (or maximizes) a model's free objective, a function of its params alone,\n"
		       "by L-BFGS from the model's initialisation (seed S, default 1), and prints the\n"
		       "optimum; -o also saves the params.\n");
		return 0;
	}
	if (pr)
		return 1;
	if (m->objective != CHAIN_OBJ_FREE)
		return fail("optimize: model %s maximizes a log-likelihood of data: use chain train", m->name);
	if (!m->f64)
		return fail("optimize runs in f64: drop --precision f32");
	size_t np = m->num_params;
	double *theta = calloc(np + 1, sizeof(double));
	uint8_t *mask = NULL;
	m->f64->init(theta, seed);
	free_objective fo = {m, m->maximize ? -1 : 1};
	chain_lbfgs_result res;
	chain_error err;
	if (chain_lbfgs_minimize(np, theta, free_fg, &fo, mask, &lo, &res, &err)) {
		free(theta);
		return fail("%s", err.msg);
	}
	printf("%s %s: %.17g after %d iterations (max |gradient| %.3g%s)\n", m->maximize ? "maximum" : "minimum", m->name,
	       fo.sign * res.f, res.iterations, res.gmax, res.converged ? "" : "; not converged");
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		printf("  %s =", v->name);
		for (size_t e = 0; e < v->size && e < 16; e++)
			printf(" %.10g", theta[v->offset + e]);
		printf(v->size > 16 ? " ... (%zu values)\n" : "\n", v->size);
	}
	int rc = 0;
	if (out && chain_checkpoint_save(out, m, theta, NULL, 0, &err))
		rc = fail("%s", err.msg);
	free(theta);
	return rc ? rc : res.converged ? 0 : 1;
}

static int cmd_gradcheck(compile_opts *o, int argc, char **argv)
{
	o->cg.f32 = false;
	return run_jit_command(o, argc, argv, gc_args);
}

/* ---------------------------------------------------------------- main */

#if defined(__SANITIZE_ADDRESS__)
#define CHAIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAIN_ASAN 1
#endif
#endif

/* `chain build` has written its file, or said why not: what is left is
 * freeing memory the exit gives back anyway and running LLVM's static
 * destructors, 1.5 ms of a 0.15 s build (strace: from the rename of the
 * output to exit_group).  So the build ends the process at once, as clang
 * does; not under AddressSanitizer, whose leak check runs at exit. */
static int exit_now(int rc)
{
#ifndef CHAIN_ASAN
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	fflush(stderr);
	_exit(rc);
#endif
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("chain %s (LLVM 19)\n", CHAIN_VERSION);
		return 0;
	}
	compile_opts o = {.cg = {.opt_level = 2}};
	const char *cmd = argv[1];
	int sub_argc = argc - 1;
	char **sub_argv = argv + 1;
	if (wants_help(sub_argc, sub_argv) && (strcmp(cmd, "build") == 0 || strcmp(cmd, "check") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	int rc;
	if (strcmp(cmd, "build") == 0)
		rc = exit_now(cmd_build(&o, sub_argc, sub_argv));
	else if (strcmp(cmd, "check") == 0)
		rc = cmd_check(&o, sub_argc, sub_argv);
	else if (strcmp(cmd, "train") == 0)
		rc = run_jit_command(&o, sub_argc, sub_argv, cmd_train);
	else if (strcmp(cmd, "eval") == 0)
		rc = run_jit_command(&o, sub_argc, sub_argv, cmd_eval);
	else if (strcmp(cmd, "sample") == 0)
		rc = run_jit_command(&o, sub_argc, sub_argv, cmd_sample);
	else if (strcmp(cmd, "gradcheck") == 0)
		rc = cmd_gradcheck(&o, sub_argc, sub_argv);
	else if (strcmp(cmd, "compare") == 0)
		rc = run_jit_command(&o, sub_argc, sub_argv, cmd_compare);
	else if (strcmp(cmd, "optimize") == 0) {
		o.cg.f32 = false;
		rc = run_jit_command(&o, sub_argc, sub_argv, opt_args);
	}
	else
		rc = fail("unknown command '%s' (commands: build check train eval sample optimize compare gradcheck; see chain --help)", cmd);
	for (size_t i = 0; i < o.nov; i++)
		free((char *)o.ov[i].name);
	return rc;
}
