/* lower_internal.h -- the lowered model, shared by lower.c (which builds
 * it and the forward kernels) and ad.c (which differentiates it).
 *
 * The statements of a model fall into stages by what they depend on:
 *   theta   params and consts only: once per kernel call;
 *   row     the current observation as a whole: once per row;
 *   segment per position of one data variable of the order (a segment):
 *           `pos` computes the family arguments at position k, `update`
 *           advances the prefix-scan accumulators after it.
 */
#ifndef LOWER_INTERNAL_H
#define LOWER_INTERNAL_H

#include "chainc.h"

typedef struct segment {
	sym *var;              /* the data variable */
	ir_buf *obs;           /* its BUF_OBS buffer */
	int64_t npos;
	int64_t first_pos;     /* global position of its first element */
	ir_loop *k;            /* the position loop: k in [0, npos) */
	ir_idx *elem;          /* the element index i at position k */
	ir_buf *perm;          /* int const perm table, or NULL (natural/reverse) */
	ir_block pre;          /* before the position loop (zeroing accumulators) */
	ir_block pos;          /* per position: up to the family arguments */
	ir_block update;       /* per position, after the value is known */
	ptrvec accs;           /* ir_buf*: the prefix-scan accumulators */
	ir_val *logp;          /* log p(x_i | args) at position k */
	ir_val *sample;        /* the family's draw at position k */
	ptrvec args;           /* ir_val*: each family argument, materialized (a scalar
	                          param or const read stays a read of that tensor) */
	ptrvec arg_shapes;     /* shape*: each argument's shape (the family's) */
	int64_t cond_size;     /* reals of family arguments per position */
	int64_t cond_base;     /* offset of its first position in M_conditionals' out */
} segment;

typedef struct lowered {
	ir_block theta;        /* stage theta statements */
	ir_block row;          /* stage row statements */
	segment *segs;
	int nsegs;
	ir_block penalty;      /* theta-stage statements of the penalty/free objective */
	ir_val *penalty_val;   /* its value (NULL: none) */
	double penalty_sign;
} lowered;

/* The update block of a segment, skipped at its last position (where it
 * would only prepare a position that does not exist: the entries it reads
 * are structurally unused). */
ir_stmt *segment_updates(ir_module *m, const segment *s, const ir_block *update);

/* Turns `for row in rows { body }` (rows_loop, built by ad.c) into blocks
 * of rows whose top-level position loops run each position for all the rows
 * of the block (as build_blocked does for logp_batch), so that codegen can
 * jam the rows.  Every TEMP the body sets gets a copy per row of the block;
 * TEMPs the body only adds into (lp, the adjoints of theta-stage values)
 * stay shared.  Leaves the loop as it is and returns false when those
 * copies would exceed max_reals, or a position loop's bounds depend on the
 * row. */
bool block_rows_loop(ir_module *m, ir_stmt *rows_loop, int64_t max_reals);

/* unused.c: marks m->param_used / param_unused / num_unused from the logp
 * kernel; params[p] is the buffer of the p-th param. */
void find_unused_params(ir_module *m, ir_buf **params);

#endif
