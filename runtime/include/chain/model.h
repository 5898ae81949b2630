/* chain/model.h -- the descriptor every compiled model exports.
 *
 * For `model M`, the generated object defines `const chain_model M_model`.
 * The runtime (training, evaluation, sampling) only ever sees this struct:
 * it never reads a model file.  This header is part of the generated C API
 * contract (docs/api.md); fields are only ever appended.
 */
#ifndef CHAIN_MODEL_H
#define CHAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2 appended chain_model.loglik_only, 3 chain_model.value_max; the runtime
 * still reads descriptors of versions 1 and 2 (chain_model_loglik_only,
 * chain_model_value_max; docs/api.md). */
#define CHAIN_ABI_VERSION 3

/* The most terms a sum whose range depends on an observation's value
 * (`sum(k in 0..v)` in a family on int) may add, together with the sums
 * around it, for one position of one row: the compiler derives from it the
 * largest value each such variable may hold (chain_model.value_max), which
 * chain_data_check enforces, so that no count in a data file makes a
 * kernel run for ever (a count of 10^15 did). */
#define CHAIN_SUM_TERMS_MAX ((uint64_t)1 << 24)

/* What values a variable takes. */
typedef enum chain_kind {
	CHAIN_BIN = 0,  /* 0 or 1 (stored as 0.0 / 1.0) */
	CHAIN_CAT = 1,  /* 0..K-1, K in chain_var.cat_k */
	CHAIN_INT = 2,  /* a count 0, 1, 2, ... */
	CHAIN_REAL = 3, /* any finite real */
} chain_kind;

typedef enum chain_precision {
	CHAIN_F64 = 0, /* real is double */
	CHAIN_F32 = 1, /* real is float */
} chain_precision;

typedef enum chain_objective_kind {
	CHAIN_OBJ_LOGLIK = 0,   /* mean log-likelihood over data, minus penalties */
	CHAIN_OBJ_FREE = 1,     /* a function of the params alone (no data) */
	CHAIN_OBJ_EXPECTED = 2, /* policy gradient (not compiled yet) */
} chain_objective_kind;

#define CHAIN_MAX_RANK 4

/* One named tensor: a param (offsets into theta) or an input/data variable
 * (offsets into one observation row). */
typedef struct chain_var {
	const char *name;
	chain_kind kind;             /* params are always CHAIN_REAL */
	uint32_t cat_k;              /* K of cat(K); 0 otherwise */
	uint32_t rank;               /* 0 = scalar */
	size_t shape[CHAIN_MAX_RANK];
	size_t offset;               /* first real of this tensor in theta / obs */
	size_t size;                 /* number of reals (product of shape) */
	size_t unused;               /* params: entries no conditional ever sees */
	const uint8_t *used;         /* params: NULL when every entry is used,
	                                else size flags, 1 = used */
} chain_var;

/* The kernels, typed by precision.  Exactly one of chain_model.f64 and
 * chain_model.f32 is non-NULL.  Semantics: see the generated header M.h. */
typedef struct chain_kernels_f64 {
	void (*init)(double *theta, uint64_t seed);
	double (*logp)(const double *theta, const double *obs);
	void (*logp_batch)(const double *theta, const double *obs, size_t n, double *out);
	double (*loglik_grad)(const double *theta, const double *obs, size_t n, double *grad);
	double (*objective)(const double *theta, const double *obs, size_t n, double *grad);
	void (*sample)(const double *theta, uint64_t seed, uint64_t first, size_t n, double *obs);
	void (*complete)(const double *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n, double *obs);
	void (*conditionals)(const double *theta, const double *obs, double *out);
} chain_kernels_f64;

typedef struct chain_kernels_f32 {
	void (*init)(float *theta, uint64_t seed);
	float (*logp)(const float *theta, const float *obs);
	void (*logp_batch)(const float *theta, const float *obs, size_t n, float *out);
	float (*loglik_grad)(const float *theta, const float *obs, size_t n, float *grad);
	float (*objective)(const float *theta, const float *obs, size_t n, float *grad);
	void (*sample)(const float *theta, uint64_t seed, uint64_t first, size_t n, float *obs);
	void (*complete)(const float *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n, float *obs);
	void (*conditionals)(const float *theta, const float *obs, float *out);
} chain_kernels_f32;

typedef struct chain_model {
	uint32_t abi_version;        /* CHAIN_ABI_VERSION */
	const char *name;            /* the `model NAME` */
	chain_precision precision;
	size_t num_params;           /* length of theta (M_NUM_PARAMS) */
	size_t num_params_unused;    /* of which structurally unused */
	size_t obs_size;             /* reals per observation (M_OBS_SIZE) */
	size_t num_param_vars;
	const chain_var *params;     /* declaration order */
	size_t num_inputs;
	const chain_var *inputs;
	size_t num_data;
	const chain_var *data;
	size_t num_positions;        /* length of the chain rule */
	const size_t *order;         /* position k -> offset in the obs row */
	const size_t *cond_offset;   /* num_positions + 1 entries: position k's
	                                family arguments are out[cond_offset[k] ..
	                                cond_offset[k+1]) of M_conditionals */
	chain_objective_kind objective;
	int maximize;                /* 1: maximize the objective, 0: minimize */
	const chain_kernels_f64 *f64;
	const chain_kernels_f32 *f32;
	/* ABI 2 on: 1 when the objective is the mean log-likelihood and nothing
	 * else, so that on 0 rows its value and gradient are 0 and training
	 * need not compute them; 0 when it has other terms (a penalty), or is
	 * not known to have none (a descriptor written by hand can leave it
	 * 0).  Read it only when abi_version >= 2. */
	int32_t loglik_only;
	/* ABI 3 on: num_inputs + num_data entries, one per input variable then
	 * one per data variable, in declaration order: the largest value an
	 * element may hold where it is below what its kind allows, else
	 * SIZE_MAX.  A variable gets one when a sum's range depends on its value
	 * (at most CHAIN_SUM_TERMS_MAX terms).  NULL when none has one.  Read it
	 * through chain_model_value_max. */
	const size_t *value_max;
} chain_model;

/* m->loglik_only, 0 for descriptors older than the field. */
static inline int chain_model_loglik_only(const chain_model *m)
{
	return m->abi_version >= 2 && m->loglik_only;
}

/* The largest value the elements of input variable i (data = 0) or data
 * variable i (data = 1) may hold: SIZE_MAX when only its kind limits it,
 * and for descriptors older than the field. */
static inline size_t chain_model_value_max(const chain_model *m, int data, size_t i)
{
	if (m->abi_version < 3 || !m->value_max)
		return (size_t)-1;
	return m->value_max[data ? m->num_inputs + i : i];
}

#ifdef __cplusplus
}
#endif
#endif
