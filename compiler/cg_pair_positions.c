/* cg_pair_positions.c -- a loop over positions whose body is the rows of a
 * block starting with a jammed sum in vectors (FVSBN's sum(j before i)
 * W[i, j] * x[j]), run a group of positions at a time: the group's sums in
 * one loop (cg_jam_vec.c's jv_state), so that each x[j] loaded serves
 * every position of the group for every row, then each position's rows of
 * the block (cg_rows.c) with its sums given.  The body may write what the
 * sums read only ahead of what the group's common steps read (FVSBN's
 * sampling writes x[k]): writes_ahead; then the common steps' accumulators
 * wait in memory while each position's own steps follow the statements of
 * the positions before it (ahead_tiles).  Positions visited last first (the
 * gradient's) run in groups too, each group's positions in that order;
 * there the body's last statement, an accumulation into what the rows
 * share (FVSBN's dW), may wait for the group's other statements and run
 * for its positions together (group_add_ok, cg_jam_vec.c's jv_group_add).
 */
#include <stdlib.h>

#include "cg_kernel_internal.h"

/* Whether a statement of block b (from its statement `from` on, nested
 * bodies included) writes a buffer that value v, or index lo or hi,
 * reads. */
static bool writes_read(cg_ctx *c, const ir_block *b, size_t from, const ir_val *v, const ir_idx *lo,
                        const ir_idx *hi)
{
	for (size_t i = from; i < b->stmts.len; i++) {
		const ir_stmt *t = b->stmts.items[i];
		if (!t)
			continue;
		if (t->kind == S_FOR || t->kind == S_IF_GE) {
			if (writes_read(c, &t->body, 0, v, lo, hi))
				return true;
			continue;
		}
		for (int j = 0; j < t->nassigns; j++) {
			const ir_buf *w = t->assigns[j].buf;
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = !seen || cg_val_reads(c, v, w, seen) || ir_idx_reads(lo, w) || ir_idx_reads(hi, w);
			free(seen);
			if (r)
				return true;
		}
	}
	return false;
}

/* x as cf * L + k0 with constants cf and k0 (false when it is not). */
static bool idx_affine(const ir_idx *x, const ir_loop *L, int64_t *cf, int64_t *k0)
{
	int64_t ca, ka, cb, kb;
	if (!x)
		return false;
	switch (x->kind) {
	case IX_CONST: *cf = 0; *k0 = x->u.c; return true;
	case IX_LOOP: *cf = 1; *k0 = 0; return x->u.loop == L;
	case IX_ADD: case IX_SUB: case IX_MUL:
		if (!idx_affine(x->u.bin.a, L, &ca, &ka) || !idx_affine(x->u.bin.b, L, &cb, &kb))
			return false;
		if (x->kind == IX_MUL) {
			if (ca != 0 && cb != 0)
				return false;
			*cf = ca * kb + cb * ka;
			*k0 = ka * kb;
		} else {
			int64_t sg = x->kind == IX_ADD ? 1 : -1;
			*cf = ca + sg * cb;
			*k0 = ka + sg * kb;
		}
		return true;
	default: return false;
	}
}

/* The largest c of v's reads w[kk + c] (kk: loop l); false when v reads w
 * in another way. */
static bool reads_ahead(cg_ctx *c, const ir_val *v, const ir_buf *w, const ir_loop *l, int64_t *cmax)
{
	if (!v)
		return true;
	switch (v->kind) {
	case V_READ: {
		for (int i = 0; i < IR_MAX_RANK; i++) {
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = seen && i < v->u.read.buf->rank && ir_idx_reads(v->u.read.idx[i], w);
			free(seen);
			if (r)
				return false;
		}
		if (v->u.read.buf != w)
			return true;
		int64_t cf, k0;
		if (w->rank != 1 || !idx_affine(v->u.read.idx[0], l, &cf, &k0) || cf != 1)
			return false;
		if (k0 > *cmax)
			*cmax = k0;
		return true;
	}
	case V_OP:
		for (int i = 0; i < 3; i++)
			if (!reads_ahead(c, v->u.op.a[i], w, l, cmax))
				return false;
		return true;
	case V_STOP: return reads_ahead(c, v->u.stop, w, l, cmax);
	case V_CONST: return true;
	default: {
		bool *seen = calloc((size_t)c->nids, sizeof *seen);
		bool r = seen && !cg_val_reads(c, v, w, seen);
		free(seen);
		return r;
	}
	}
}

/* Whether every write of block b (statements of its own or under
 * branches) to what sum t reads is ahead of what the common steps of a
 * group of positions read: a single element w[L + dw] of a rank-1 buffer
 * that the summand reads as w[kk + c] only, with dw >= (t's end - L) +
 * every c (FVSBN's sampling writes x[k], its sums read x[kk] for kk < k).
 * The common steps read below the first position's end, so the writes of
 * a group's earlier positions never reach them; each later position's
 * own steps run after them (pair_positions). */
static bool writes_ahead(cg_ctx *c, const ir_block *b, const ir_stmt *t, const ir_loop *L)
{
	const ir_loop *l = t->loops[0];
	int64_t hc, hk;
	if (!idx_affine(l->hi, L, &hc, &hk) || hc != 1)
		return false;
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *u = b->stmts.items[i];
		if (!u)
			continue;
		if (u->kind == S_IF_GE) {
			if (!writes_ahead(c, &u->body, t, L))
				return false;
			continue;
		}
		if (u->kind == S_FOR) {
			if (writes_read(c, &u->body, 0, t->assigns[0].val, l->lo, l->hi))
				return false;
			continue;
		}
		for (int j = 0; j < u->nassigns; j++) {
			const ir_buf *w = u->assigns[j].buf;
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = !seen || cg_val_reads(c, t->assigns[0].val, w, seen);
			free(seen);
			if (!r)
				continue;
			if (ir_idx_reads(l->lo, w) || ir_idx_reads(l->hi, w) || u->nloops != 0 || w->rank != 1)
				return false;
			int64_t cf, dw, cmax = INT64_MIN;
			if (!idx_affine(u->assigns[j].idx[0], L, &cf, &dw) || cf != 1 ||
			    !reads_ahead(c, t->assigns[0].val, w, l, &cmax) || cmax == INT64_MIN || dw < hk + cmax)
				return false;
		}
	}
	return true;
}

/* The sums of rows [from, count) of a block at positions pk[0..npos) of L,
 * a row at a time: row r's at res[q * block + r]; prefetch: the
 * steps prefetch the params they read (log p's, jv_prefetch). */
static void pair_partial(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef from, LLVMValueRef count,
                         const ir_loop *L, const LLVMValueRef *pk, int npos, LLVMValueRef res, int block,
                         bool prefetch)
{
	cg_loop one;
	cg_loop_open(c, &one, NULL, from, count, false);
	jv_state st;
	if (jv_prepare(c, &st, t, rlo, &one.iv, 1, L, pk, npos)) {
		st.prefetch = prefetch;
		jv_fused(c, &st);
		/* each position's sum alone (one accumulator: its horizontal
		 * sum within the vector; jv_finish_all's folds of several
		 * positions' were slower at batch 1) */
		for (int q = 0; q < npos; q++) {
			LLVMValueRef sums[1];
			jv_finish(c, &st, q, sums, NULL);
			LLVMValueRef at = LLVMBuildNSWAdd(c->b, one.iv, cg_i64(c, q * block), "");
			cg_store_real(c, sums[0], LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
		}
		jv_end(&st);
	}
	cg_loop_close(c, &one);
}

/* The sums of the full tiles of TR rows of a block at a group of P
 * positions pk[], rows [0, ntiles * TR): a loop over the tiles emitted
 * once, each tile's TR x P accumulators in registers throughout the steps
 * (jv_fused); joint: the tile's horizontal sums of all positions together
 * (jv_finish_all; log p's), not position after position. */
static void tiles_whole(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef ntiles, const ir_loop *L,
                        const LLVMValueRef *pk, int P, int block, int TR, bool joint, LLVMValueRef res)
{
	cg_loop hl;
	cg_loop_open(c, &hl, NULL, cg_i64(c, 0), ntiles, false);
	LLVMValueRef h0 = LLVMBuildNSWMul(c->b, hl.iv, cg_i64(c, TR), "");
	LLVMValueRef lane[CG_JAM_ROWS];
	for (int r = 0; r < TR; r++)
		lane[r] = cg_i64(c, r);
	jv_state st;
	/* the tile's rows as (rlo + h0) + r, not rlo + (h0 + r): their rows of
	 * x are then constant offsets from one address (with 8 addresses the
	 * steps' accumulators were spilled) */
	if (jv_prepare(c, &st, t, LLVMBuildNSWAdd(c->b, rlo, h0, ""), lane, TR, L, pk, P)) {
		st.lane_off = h0;
		jv_fused(c, &st);
		if (joint) {
			jv_finish_all(c, &st, LLVMBuildInBoundsGEP2(c->b, c->real, res, &h0, 1, ""), block);
		} else {
			for (int q = 0; q < P; q++) {
				LLVMValueRef at = LLVMBuildNSWAdd(c->b, h0, cg_i64(c, q * block), "");
				jv_finish(c, &st, q, NULL, LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
			}
		}
		jv_end(&st);
	}
	cg_loop_close(c, &hl);
	cg_hint_vector_width(c, hl.latch, 1, 1);
	cg_cache_drop(c);
}

/* A tile's jv_state over rows rlo + h0 + [0, TR) (lanes h0 + r of the
 * block), its accumulators loaded from vectors base[] when `load` (a
 * branch around the loads), zero otherwise. */
static bool tile_state(cg_ctx *c, jv_state *st, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef h0,
                       const LLVMValueRef *lane, int TR, const ir_loop *L, const LLVMValueRef *pk, int P,
                       LLVMValueRef base, LLVMValueRef load)
{
	if (!jv_prepare(c, st, t, LLVMBuildNSWAdd(c->b, rlo, h0, ""), lane, TR, L, pk, P))
		return false;
	st->lane_off = h0;
	LLVMBasicBlockRef ld = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.load");
	LLVMBasicBlockRef go = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.go");
	LLVMBuildCondBr(c->b, load, ld, go);
	LLVMPositionBuilderAtEnd(c->b, ld);
	jv_acc_io(c, st, base, false);
	LLVMBuildBr(c->b, go);
	LLVMPositionBuilderAtEnd(c->b, go);
	return true;
}

/* Back outside the rows loop `rows` after code for some of its rows
 * (cg_set_lane, jv_*): no lane, the row and the rows' variable as they
 * were (row, rowvar), nothing cached from inside. */
static void leave_rows(cg_ctx *c, const ir_loop *rows, cg_row row, LLVMValueRef rowvar)
{
	c->lane = NULL;
	c->row = row;
	c->loop_var[rows->id] = rowvar;
	cg_cache_drop(c);
}

/* The common steps [0, mmin) of a group of P positions pk[] for the full
 * tiles [0, ntiles) of TR rows of a block (lanes lane[]), in chunks of
 * about equal length, at most CG_JAM_CHUNK steps (at least one chunk, so
 * that keep is written), each chunk run for every tile in turn, the tiles'
 * accumulators stored in keep (P x TR vectors a tile) between chunks and
 * after the last: a chunk of the positions' rows of W stays in L1 for all
 * the tiles beside a tile's chunk of x. */
static void chunks_for_tiles(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef ntiles, const ir_loop *L,
                             const LLVMValueRef *pk, int P, int TR, const LLVMValueRef *lane, LLVMValueRef mmin,
                             LLVMValueRef keep)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	LLVMValueRef zero = cg_i64(c, 0);
	int per = P * TR;
	LLVMValueRef nch = LLVMBuildUDiv(c->b, LLVMBuildNSWAdd(c->b, mmin, cg_i64(c, CG_JAM_CHUNK - 1), ""),
	                                 cg_i64(c, CG_JAM_CHUNK), "");
	nch = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, nch, zero, ""), cg_i64(c, 1), nch, "");
	cg_loop cl;
	cg_loop_open(c, &cl, NULL, zero, nch, false);
	LLVMValueRef j0 = LLVMBuildUDiv(c->b, LLVMBuildNSWMul(c->b, cl.iv, mmin, ""), nch, "");
	LLVMValueRef j1 =
		LLVMBuildUDiv(c->b, LLVMBuildNSWMul(c->b, LLVMBuildNSWAdd(c->b, cl.iv, cg_i64(c, 1), ""), mmin, ""), nch, "");
	LLVMValueRef later = LLVMBuildICmp(c->b, LLVMIntNE, cl.iv, zero, "");
	cg_loop tl;
	cg_loop_open(c, &tl, NULL, zero, ntiles, false);
	LLVMValueRef at = LLVMBuildNSWMul(c->b, tl.iv, cg_i64(c, per), "");
	LLVMValueRef base = LLVMBuildInBoundsGEP2(c->b, vt, keep, &at, 1, "");
	jv_state st;
	if (tile_state(c, &st, t, rlo, LLVMBuildNSWMul(c->b, tl.iv, cg_i64(c, TR), ""), lane, TR, L, pk, P, base,
	               later)) {
		jv_fused_range(c, &st, j0, j1);
		jv_acc_io(c, &st, base, true);
		jv_end(&st);
	}
	cg_loop_close(c, &tl);
	cg_hint_vector_width(c, tl.latch, 1, 1);
	cg_loop_close(c, &cl);
	cg_hint_vector_width(c, cl.latch, 1, 1);
	cg_cache_drop(c);
}

/* tiles_whole's sums (joint) when the positions' common steps, mmin, are
 * more than CG_JAM_CHUNK: the steps in nch chunks of about equal length,
 * at most CG_JAM_CHUNK, each chunk run for every tile in turn, the tiles'
 * accumulators stored between chunks (keep: block / TR tiles' P x TR
 * vectors), then each tile's own and masked steps and horizontal sums.  A
 * chunk of the P positions' rows of W (18 KB in f64) stays in L1 for all
 * the tiles beside a tile's chunk of x (12 KB), where whole rows of W and
 * x (up to 63 KB) did not.  Each lane adds its terms in the same order:
 * the bits of tiles_whole. */
static void tiles_chunked(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef ntiles, const ir_loop *L,
                          const LLVMValueRef *pk, int P, int block, int TR, LLVMValueRef mmin, LLVMValueRef res)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	int per = P * TR;
	LLVMValueRef keep = cg_entry_alloca(c, LLVMArrayType(vt, (unsigned)(block / TR * per)), "tiles");
	LLVMSetAlignment(keep, 64);
	LLVMValueRef lane[CG_JAM_ROWS], zero = cg_i64(c, 0);
	for (int r = 0; r < TR; r++)
		lane[r] = cg_i64(c, r);
	chunks_for_tiles(c, t, rlo, ntiles, L, pk, P, TR, lane, mmin, keep);
	cg_loop fl;
	cg_loop_open(c, &fl, NULL, zero, ntiles, false);
	LLVMValueRef h0 = LLVMBuildNSWMul(c->b, fl.iv, cg_i64(c, TR), "");
	LLVMValueRef at = LLVMBuildNSWMul(c->b, fl.iv, cg_i64(c, per), "");
	LLVMValueRef base = LLVMBuildInBoundsGEP2(c->b, vt, keep, &at, 1, "");
	jv_state st;
	if (tile_state(c, &st, t, rlo, h0, lane, TR, L, pk, P, base, LLVMConstInt(LLVMInt1TypeInContext(c->ctx), 1, 0))) {
		jv_finish_all(c, &st, LLVMBuildInBoundsGEP2(c->b, c->real, res, &h0, 1, ""), block);
		jv_end(&st);
	}
	cg_loop_close(c, &fl);
	cg_hint_vector_width(c, fl.latch, 1, 1);
	cg_cache_drop(c);
}

/* The sums of a group of P positions pk[] (padded: no writes ahead) for
 * rows [0, count) of a block: row r's at position q to res[q * block + r].
 * The rows run in tiles of TR (tiles_whole, or tiles_chunked when joint and
 * the common steps are long), and the positions' rows of W, loaded for the
 * first tile, are in cache for the next (a block of 64 rows reads W from
 * memory an eighth as often as one of 8); the rows past the last full tile
 * (a partial block) one at a time. */
static void group_sums(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef count, const ir_loop *L,
                       const LLVMValueRef *pk, int P, int block, int TR, bool joint, LLVMValueRef res)
{
	LLVMValueRef ntiles = LLVMBuildUDiv(c->b, count, cg_i64(c, TR), "");
	jv_state b;
	LLVMValueRef lane0 = cg_i64(c, 0);
	if (joint && jv_prepare(c, &b, t, rlo, &lane0, 1, L, pk, P)) {
		LLVMValueRef mmin = b.mmin;
		jv_end(&b);
		LLVMBasicBlockRef ch = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tiles.chunked");
		LLVMBasicBlockRef wh = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tiles.whole");
		LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tiles.done");
		LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntUGT, mmin, cg_i64(c, CG_JAM_CHUNK), ""), ch, wh);
		LLVMPositionBuilderAtEnd(c->b, ch);
		tiles_chunked(c, t, rlo, ntiles, L, pk, P, block, TR, mmin, res);
		LLVMBuildBr(c->b, done);
		LLVMPositionBuilderAtEnd(c->b, wh);
		tiles_whole(c, t, rlo, ntiles, L, pk, P, block, TR, joint, res);
		LLVMBuildBr(c->b, done);
		LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
		LLVMPositionBuilderAtEnd(c->b, done);
	} else {
		tiles_whole(c, t, rlo, ntiles, L, pk, P, block, TR, joint, res);
	}
	pair_partial(c, t, rlo, LLVMBuildNSWMul(c->b, ntiles, cg_i64(c, TR), ""), count, L, pk, P, res, block, joint);
}

/* The sums of position kq (the group's q-th) for rows [i0 * R, i1 * R)
 * of a block, R rows (R / TR tiles) at a time: a one-position jv_state of
 * the R rows, its accumulators the tiles' vectors for position q in keep
 * (after the group's common steps, mmin), then the position's own steps
 * and masked step and the rows' horizontal sums (to res[row]). */
static void ahead_finish(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef i0, LLVMValueRef i1, int R,
                         int TR, int per, const ir_loop *L, LLVMValueRef kq, LLVMValueRef q, LLVMValueRef mmin,
                         LLVMValueRef keep, LLVMValueRef res)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	LLVMValueRef lane[CG_JAM_ROWS];
	for (int r = 0; r < R; r++)
		lane[r] = cg_i64(c, r);
	cg_loop fl;
	cg_loop_open(c, &fl, NULL, i0, i1, false);
	LLVMValueRef h0 = LLVMBuildNSWMul(c->b, fl.iv, cg_i64(c, R), "");
	LLVMValueRef at = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, fl.iv, cg_i64(c, R / TR * per), ""),
	                                  LLVMBuildNSWMul(c->b, q, cg_i64(c, TR), ""), "");
	LLVMValueRef base = LLVMBuildInBoundsGEP2(c->b, vt, keep, &at, 1, "");
	jv_state st;
	if (jv_prepare(c, &st, t, LLVMBuildNSWAdd(c->b, rlo, h0, ""), lane, R, L, &kq, 1)) {
		st.lane_off = h0;
		for (int r = 0; r < R; r++) {
			LLVMValueRef o = cg_i64(c, r / TR * per + r % TR);
			LLVMValueRef v = LLVMBuildLoad2(c->b, vt, LLVMBuildInBoundsGEP2(c->b, vt, base, &o, 1, ""), "");
			LLVMSetAlignment(v, 64);
			LLVMSetAlignment(LLVMBuildStore(c->b, v, st.acc[r]), 64);
		}
		jv_fused_range(c, &st, mmin, st.mmin);
		jv_finish(c, &st, 0, NULL, LLVMBuildInBoundsGEP2(c->b, c->real, res, &h0, 1, ""));
		jv_end(&st);
	}
	cg_loop_close(c, &fl);
	cg_hint_vector_width(c, fl.latch, 1, 1);
	cg_cache_drop(c);
}

/* The sums and statements of a group of P positions pk[] (padded with the
 * last position) when the body writes ahead of the sums (sampling), for
 * rows [0, count) of a block: the group's common steps (mmin, below what
 * any of its positions writes) for every full tile of TR rows, the tiles'
 * accumulators stored (keep: block / TR tiles of P x TR vectors); then,
 * position after position (a loop, the body emitted once: qn of them), the
 * position's own steps and masked step, which read what the group's
 * earlier positions wrote, and its rows' horizontal sums for every tile
 * (a one-position jv_state of the tile's rows, its accumulators loaded
 * from keep), the rows past the last full tile a row at a time
 * (pair_partial), then the position's statements for the block's rows
 * (cg_rows_of_block).  Each lane adds its terms in the steps' order, and
 * each row's lanes in jv_hsum's tree: the bits a position's sum has
 * alone. */
static void ahead_tiles(cg_ctx *c, const ir_stmt *rs, const ir_stmt *t, const ir_loop *bl, LLVMValueRef rlo,
                        LLVMValueRef rhi, LLVMValueRef count, const ir_loop *L, const LLVMValueRef *pk, int P,
                        int TR, LLVMValueRef qn, LLVMValueRef res)
{
	int block = (int)bl->block, per = P * TR;
	const ir_loop *rows = rs->loop, *saved_rows = c->jam_rows;
	cg_row saved_row = c->row;
	LLVMValueRef saved_rowvar = c->loop_var[rows->id];
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	LLVMValueRef keep = cg_entry_alloca(c, LLVMArrayType(vt, (unsigned)(block / TR * per)), "atiles");
	LLVMSetAlignment(keep, 64);
	LLVMValueRef lane[CG_JAM_ROWS], zero = cg_i64(c, 0);
	for (int r = 0; r < TR; r++)
		lane[r] = cg_i64(c, r);
	LLVMValueRef ntiles = LLVMBuildUDiv(c->b, count, cg_i64(c, TR), "");
	c->jam_rows = rows;
	/* the group's common steps for every full tile */
	jv_state g;
	if (!jv_prepare(c, &g, t, rlo, lane, 1, L, pk, P)) {
		c->jam_rows = saved_rows;
		return;
	}
	LLVMValueRef mmin = g.mmin;
	jv_end(&g);
	chunks_for_tiles(c, t, rlo, ntiles, L, pk, P, TR, lane, mmin, keep);
	leave_rows(c, rows, saved_row, saved_rowvar);
	/* each position's sums, then its statements */
	cg_loop qst;
	cg_loop_open(c, &qst, NULL, zero, qn, false);
	LLVMValueRef kq = LLVMBuildNSWAdd(c->b, pk[0], qst.iv, "");
	LLVMValueRef resq = LLVMBuildInBoundsGEP2(c->b, c->real, res, (LLVMValueRef[]){LLVMBuildNSWMul(
								  c->b, qst.iv, cg_i64(c, block), "")},
	                                          1, "");
	c->jam_rows = rows;
	/* a vector of rows at a time (FR: 16 in f32, 8 in f64; FR / TR tiles),
	 * their horizontal sums filling whole vectors, then the full tiles
	 * left one at a time */
	int FR = 64 / (int)c->real_size;
	LLVMValueRef nf = LLVMBuildUDiv(c->b, count, cg_i64(c, FR), "");
	LLVMValueRef t1 = LLVMBuildNSWMul(c->b, nf, cg_i64(c, FR / TR), "");
	ahead_finish(c, t, rlo, zero, nf, FR, TR, per, L, kq, qst.iv, mmin, keep, resq);
	ahead_finish(c, t, rlo, t1, ntiles, TR, TR, per, L, kq, qst.iv, mmin, keep, resq);
	pair_partial(c, t, rlo, LLVMBuildNSWMul(c->b, ntiles, cg_i64(c, TR), ""), count, L, &kq, 1, resq, block,
	             true);
	c->jam_rows = saved_rows;
	leave_rows(c, rows, saved_row, saved_rowvar);
	c->loop_var[L->id] = kq;
	cg_rows_of_block(c, rs, bl, rlo, rhi, resq);
	cg_loop_close(c, &qst);
	cg_hint_vector_width(c, qst.latch, 1, 1);
	cg_cache_drop(c);
}

/* Whether a statement of block b (nested bodies included) other than
 * `skip` writes buffer w or reads it. */
static bool touches(cg_ctx *c, const ir_block *b, const ir_stmt *skip, const ir_buf *w)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *t = b->stmts.items[i];
		if (!t || t == skip)
			continue;
		if (t->kind == S_FOR || t->kind == S_IF_GE) {
			if (touches(c, &t->body, skip, w))
				return true;
			continue;
		}
		for (int j = 0; j < t->nassigns; j++) {
			if (t->assigns[j].buf == w)
				return true;
			for (int d = 0; d < t->assigns[j].buf->rank; d++)
				if (ir_idx_reads(t->assigns[j].idx[d], w))
					return true;
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = !seen || cg_val_reads(c, t->assigns[j].val, w, seen);
			free(seen);
			if (r)
				return true;
		}
		for (int j = 0; j < t->nloops; j++)
			if (ir_idx_reads(t->loops[j]->lo, w) || ir_idx_reads(t->loops[j]->hi, w))
				return true;
	}
	return false;
}

/* Whether the last statement u of the rows' body rs can wait until the
 * other statements of every position of a group have run, and then run
 * for the group's positions together (jv_group_add): an accumulation into
 * what the rows share over one loop (FVSBN's dW[k, kk] += x[kk] *
 * dtri[row], kk < k) whose start does not depend on the position, whose
 * target nothing else in the body reads or writes, and whose summand's
 * reads that vary along the loop (x[kk]) nothing in the body writes; the
 * parts that do not vary (dtri[row]) are saved at each position, where u
 * would have run. */
static bool group_add_ok(cg_ctx *c, const ir_stmt *rs, const ir_loop *L, const ir_val **inv, int *ninv)
{
	size_t n = rs->body.stmts.len;
	const ir_stmt *u = n >= 2 ? rs->body.stmts.items[n - 1] : NULL;
	if (!u || u->kind != S_ADD || u->nloops != 1 || u->nassigns != 1 ||
	    jam_kind_of(c, u, rs->loop) != JAM_ADD || !jv_add_ok(c, u, rs->loop) ||
	    !cg_idx_free_of(u->loops[0]->lo, L))
		return false;
	const ir_val *var[JV_PARTS];
	int nvar;
	if (!jv_parts(c, u->assigns[0].val, u->loops[0], inv, ninv, var, &nvar) ||
	    touches(c, &rs->body, u, u->assigns[0].buf))
		return false;
	for (int i = 0; i < nvar; i++)
		if (writes_read(c, &rs->body, 0, var[i], NULL, NULL))
			return false;
	return true;
}

/* A loop over positions whose body is the rows of a block, starting with a
 * jammed sum in vectors whose start does not depend on the position, and
 * whose inputs the body does not write, or writes only ahead of them
 * (writes_ahead: FVSBN's sampling): the positions run in groups of P, the
 * sums of all computed together as far as they can be (jv_fused: each
 * x[kk] loaded once for P positions of each row, W[k, kk] once for all
 * rows), then each position's statements in turn, its sums finished
 * (jv_finish) just before them when the body writes ahead (ahead_tiles).
 * A position's sum has the bits it has alone (jv_state), so a partial
 * block finishes its rows past the last full tile one at a time; the last
 * group is padded with copies of the last position.  Returns false when s
 * is not such a loop. */
bool pair_positions(cg_ctx *c, const ir_stmt *s)
{
	const ir_loop *L = s->loop;
	bool back = L->reverse || s->reverse; /* positions visited last first (a gradient's) */
	if (c->o->opt_level <= 0 || !c->lane_stride || c->lane || L->is_rows || s->body.stmts.len != 1)
		return false;
	const ir_stmt *rs = s->body.stmts.items[0];
	if (!rs || rs->kind != S_FOR || !rs->loop || !rs->loop->is_rows || !rs->loop->block_of)
		return false;
	const ir_loop *rows = rs->loop, *bl = rows->block_of;
	if (bl->block < 2 || bl->id < 0 || bl->id >= c->nids || !c->loop_var[bl->id] || rs->body.stmts.len < 1)
		return false;
	const ir_stmt *t = rs->body.stmts.items[0];
	if (!t || jam_kind_of(c, t, rows) != JAM_SUM || t->nloops != 1 || !cg_idx_free_of(t->loops[0]->lo, L) ||
	    !jv_summand(c, t->assigns[0].val, t->loops[0]))
		return false;
	bool ahead = false; /* the body writes ahead of the sums: each finished late */
	if (writes_read(c, &rs->body, 0, t->assigns[0].val, t->loops[0]->lo, t->loops[0]->hi)) {
		if (!writes_ahead(c, &rs->body, t, L))
			return false;
		ahead = true;
	}
	if (ahead && back)
		return false;
	/* the last statement's accumulation for the group's positions together
	 * (FVSBN's dW in the gradient), run after their other statements: rest
	 * is the body without it */
	const ir_val *inv[JV_PARTS];
	int ninv = 0;
	bool gadd = !ahead && group_add_ok(c, rs, L, inv, &ninv);
	ir_stmt rest = *rs;
	rest.body.stmts.len -= gadd ? 1 : 0;
	/* tiles of TR rows x P positions, TR x P accumulators (CG_JAM_TILE):
	 * log p's (no writes ahead, no group accumulation) of
	 * CG_JAM_TILE_ROWS_SUM rows */
	int TR = (int)bl->block, tile_rows = ahead || gadd ? CG_JAM_TILE_ROWS : CG_JAM_TILE_ROWS_SUM;
	/* writes ahead: tiles of log p's shape whose accumulators wait in
	 * memory for the positions' own steps (ahead_tiles) */
	if (ahead) {
		if (TR % CG_JAM_TILE_ROWS_SUM != 0)
			return false;
		TR = CG_JAM_TILE_ROWS_SUM;
	}
	if (TR > tile_rows && !ahead && TR % tile_rows == 0)
		TR = tile_rows;
	if (TR > CG_JAM_TILE_ROWS)
		return false;
	int P = CG_JAM_TILE / TR; /* positions together */
	if (P > CG_JAM_POS)
		P = CG_JAM_POS;
	int block = (int)bl->block;
	LLVMValueRef n = c->n ? c->n : cg_i64(c, 1);
	LLVMValueRef rlo = c->loop_var[bl->id];
	LLVMValueRef end = LLVMBuildNSWAdd(c->b, rlo, cg_i64(c, block), "");
	LLVMValueRef rhi = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, n, ""), end, n, "");
	LLVMValueRef count = LLVMBuildNSWSub(c->b, rhi, rlo, "");
	LLVMValueRef plo = cg_idx(c, L->lo), zero = cg_i64(c, 0);
	LLVMValueRef len = LLVMBuildNSWSub(c->b, cg_idx(c, L->hi), plo, "");
	len = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, len, zero, ""), len, zero, "");
	/* the last group is padded: its positions past the end repeat the
	 * last one, whose sums are computed again and not used (no loop of the
	 * last positions alone, a copy of the body fewer) */
	LLVMValueRef ngroups = LLVMBuildUDiv(c->b, LLVMBuildNSWAdd(c->b, len, cg_i64(c, P - 1), ""),
	                                     cg_i64(c, P), "");
	LLVMValueRef plast = LLVMBuildNSWAdd(c->b, plo, LLVMBuildNSWSub(c->b, len, cg_i64(c, 1), ""), "");
	LLVMValueRef res = cg_entry_alloca(c, LLVMArrayType(c->real, (unsigned)(P * block)), "pair");
	LLVMValueRef saved =
		gadd && ninv ? cg_entry_alloca(c, LLVMArrayType(c->real, (unsigned)(ninv * P * block)), "gsaved") : NULL;
	LLVMValueRef saved_pos = c->loop_var[L->id], saved_rowvar = c->loop_var[rows->id];
	const ir_loop *saved_rows = c->jam_rows;
	cg_row saved_row = c->row;
	cg_loop pst;
	cg_loop_open(c, &pst, NULL, zero, ngroups, false);
	/* the group's first position k; backwards, the group's positions are
	 * k, k - 1, ..., the last group padded with copies of plo */
	LLVMValueRef gk = LLVMBuildNSWMul(c->b, pst.iv, cg_i64(c, P), "");
	LLVMValueRef k = back ? LLVMBuildNSWSub(c->b, plast, gk, "") : LLVMBuildNSWAdd(c->b, plo, gk, "");
	LLVMValueRef pk[CG_JAM_POS];
	for (int q = 0; q < P; q++) {
		if (!q) {
			pk[q] = k;
		} else if (back) {
			pk[q] = LLVMBuildNSWSub(c->b, k, cg_i64(c, q), "");
			pk[q] = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, pk[q], plo, ""), pk[q], plo, "");
		} else {
			pk[q] = LLVMBuildNSWAdd(c->b, k, cg_i64(c, q), "");
			pk[q] = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, pk[q], plast, ""), pk[q], plast, "");
		}
	}
	if (ahead) {
		LLVMValueRef left = LLVMBuildNSWSub(c->b, LLVMBuildNSWAdd(c->b, plo, len, ""), k, "");
		LLVMValueRef qn =
			LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, left, cg_i64(c, P), ""), left, cg_i64(c, P), "");
		ahead_tiles(c, rs, t, bl, rlo, rhi, count, L, pk, P, TR, qn, res);
		cg_loop_close(c, &pst);
		c->loop_var[L->id] = saved_pos;
		cg_cache_drop(c);
		return true;
	}
	c->jam_rows = rows;
	group_sums(c, t, rlo, count, L, pk, P, block, TR, !gadd, res);
	c->jam_rows = saved_rows;
	leave_rows(c, rows, saved_row, saved_rowvar);
	/* the group's positions' statements in a loop, emitted once, not
	 * once per position */
	LLVMValueRef left = back ? LLVMBuildNSWAdd(c->b, LLVMBuildNSWSub(c->b, k, plo, ""), cg_i64(c, 1), "")
	                         : LLVMBuildNSWSub(c->b, LLVMBuildNSWAdd(c->b, plo, len, ""), k, "");
	LLVMValueRef qn =
		LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, left, cg_i64(c, P), ""), left, cg_i64(c, P), "");
	cg_loop qst;
	cg_loop_open(c, &qst, NULL, zero, qn, false);
	c->loop_var[L->id] = back ? LLVMBuildNSWSub(c->b, k, qst.iv, "") : LLVMBuildNSWAdd(c->b, k, qst.iv, "");
	LLVMValueRef at = LLVMBuildNSWMul(c->b, qst.iv, cg_i64(c, block), "");
	cg_rows_of_block(c, gadd ? &rest : rs, bl, rlo, rhi, LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
	if (gadd) {
		/* the parts of the last statement's summand that the
		 * position's statements computed, saved for jv_group_add */
		cg_loop sr;
		cg_loop_open(c, &sr, NULL, zero, count, false);
		cg_set_lane(c, rows, rlo, sr.iv);
		for (int i = 0; i < ninv; i++) {
			LLVMValueRef to = LLVMBuildNSWAdd(
				c->b, LLVMBuildNSWAdd(c->b, at, sr.iv, ""), cg_i64(c, i * P * block), "");
			cg_store_real(c, cg_val(c, inv[i]), LLVMBuildInBoundsGEP2(c->b, c->real, saved, &to, 1, ""));
		}
		cg_loop_close(c, &sr);
		leave_rows(c, rows, saved_row, saved_rowvar);
	}
	cg_loop_close(c, &qst);
	cg_hint_vector_width(c, qst.latch, 1, 1);
	if (gadd) {
		cg_cache_drop(c);
		jv_group_add(c, rs->body.stmts.items[rs->body.stmts.len - 1], rows, rlo, count, L, pk, P, qn, inv,
		             ninv, saved, block);
	}
	cg_loop_close(c, &pst);
	c->loop_var[L->id] = saved_pos;
	cg_cache_drop(c);
	return true;
}
