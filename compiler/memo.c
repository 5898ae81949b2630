/* memo.c -- a row's values recomputed only when what they read changed.
 *
 * NADE's hidden layer, h = sigmoid(c + scan), is computed at every position
 * of every row: n*H sigmoids an image, what bounds its log p, sampling and
 * gradient.  But the scan changes only where a bin variable is 1 (its
 * update runs under `if x[k] >= 1`, opt.c's guard_bin_products): on
 * binarized digits at about one position in seven.  Where the scan did not
 * change, h would be computed again from the same operands, to the same
 * bits.  So such a set runs only when its scan was written since it last
 * ran:
 *   - a flag per row (`dirty`, one per row of a block, like the scan) is set
 *     to 1 at the kernel's start and after every statement that writes the
 *     scan;
 *   - the set becomes `if dirty >= 1 { set; dirty = 0 }`.
 * Invariant: when dirty is 0, h holds what the set would compute now.  The
 * set qualifies when it writes every element of a temp, element by element,
 * from the scan read at the element it writes and from params and
 * constants only (which no kernel but init writes); the temp is written
 * nowhere else; and the scan is written only by sets (resets) and by
 * statements under a condition on data (the guarded updates: without that,
 * the scan changes at every position and the flag would only cost the
 * forwarding of the set into its reader, fuse.c).
 * The rewrite builds new blocks and statements around the ones it changes:
 * kernels share statements.
 */
#include <string.h>

#include "chainc.h"

typedef struct memo {
	ir_module *m;
	const ir_stmt *set;       /* the set made conditional */
	ir_buf *h, *scan, *dirty;
	ir_buf *hp;               /* h with a copy per row of a block, or NULL */
	ir_idx *row;              /* the row's place in its block (hp's first index) */
} memo;

/* ------------------------------------------------------------ the checks */

/* Whether v reads only params, constants and scan at exactly idx, and
 * draws nothing; sets *seen when it reads scan. */
static bool reads_scan_at(const ir_val *v, const ir_buf *scan, ir_idx *const *idx, bool *seen)
{
	switch (v->kind) {
	case V_CONST: return true;
	case V_READ: {
		const ir_buf *b = v->u.read.buf;
		for (int d = 0; d < b->rank; d++)
			if (v->u.read.idx[d] && v->u.read.idx[d]->kind == IX_LOAD)
				return false;
		if (b->cls == BUF_THETA || b->cls == BUF_CONST)
			return true;
		if (b != scan)
			return false;
		for (int d = 0; d < b->rank; d++)
			if (!ir_idx_equal(v->u.read.idx[d], idx[d]))
				return false;
		*seen = true;
		return true;
	}
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (!reads_scan_at(v->u.op.a[k], scan, idx, seen))
				return false;
		return true;
	case V_STOP: return reads_scan_at(v->u.stop, scan, idx, seen);
	default: return false;  /* V_INT (row numbers, positions), V_DRAW */
	}
}

/* The one temp v reads, or NULL (none, or more than one). */
static ir_buf *temp_read(const ir_val *v, bool *several)
{
	switch (v->kind) {
	case V_READ:
		return v->u.read.buf->cls == BUF_TEMP ? v->u.read.buf : NULL;
	case V_OP: {
		ir_buf *t = NULL;
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++) {
			ir_buf *u = temp_read(v->u.op.a[k], several);
			if (u && t && u != t)
				*several = true;
			if (u)
				t = u;
		}
		return t;
	}
	case V_STOP: return temp_read(v->u.stop, several);
	case V_DRAW: return v->u.draw.arg ? temp_read(v->u.draw.arg, several) : NULL;
	default: return NULL;
	}
}

/* The first index of v's first read of scan. */
static ir_idx *row_of(const ir_val *v, const ir_buf *scan)
{
	switch (v->kind) {
	case V_READ: return v->u.read.buf == scan ? v->u.read.idx[0] : NULL;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++) {
			ir_idx *r = row_of(v->u.op.a[k], scan);
			if (r)
				return r;
		}
		return NULL;
	case V_STOP: return row_of(v->u.stop, scan);
	case V_DRAW: return v->u.draw.arg ? row_of(v->u.draw.arg, scan) : NULL;
	default: return NULL;
	}
}

/* Statements of blk (and what they nest) that write b other than sets
 * and not under a condition on data. */
static int unguarded_writes(const ir_block *blk, const ir_buf *b, bool guarded)
{
	int n = 0;
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			bool on_data = s->kind == S_IF_GE && s->a && s->a->kind == IX_LOAD &&
			               s->a->u.load.buf->cls == BUF_OBS;
			n += unguarded_writes(&s->body, b, guarded || on_data);
		} else if (!guarded && s->kind != S_SET && ir_stmt_writes(s, b)) {
			n++;
		}
	}
	return n;
}

/* Whether s sets every element of its temp element by element, each loop
 * of s indexing one dimension over the whole of it (the other dimensions
 * fixed, as a row's place in its block). */
static bool sets_whole_temp(const ir_stmt *s)
{
	const ir_assign *a = &s->assigns[0];
	const ir_buf *h = a->buf;
	if (s->nloops == 0)
		return false;
	int used = 0;
	for (int d = 0; d < h->rank; d++) {
		const ir_idx *x = a->idx[d];
		if (!x || x->kind == IX_LOAD)
			return false;
		for (int l = 0; l < s->nloops; l++) {
			if (x->kind == IX_LOOP && x->u.loop == s->loops[l]) {
				const ir_loop *L = s->loops[l];
				if (!L->lo || !L->hi || L->lo->kind != IX_CONST || L->hi->kind != IX_CONST ||
				    L->lo->u.c != 0 || L->hi->u.c != h->dims[d])
					return false;
				used++;
			} else if (ir_idx_uses_loop(x, s->loops[l])) {
				return false;
			}
		}
	}
	return used == s->nloops;
}

/* The block among whose statements s is, in blk or what it nests. */
static const ir_block *parent_of(const ir_block *blk, const ir_stmt *s)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *t = blk->stmts.items[i];
		if (t == s)
			return blk;
		if (t->kind == S_FOR || t->kind == S_IF_GE) {
			const ir_block *p = parent_of(&t->body, s);
			if (p)
				return p;
		}
	}
	return NULL;
}

static bool qualifies(const ir_kernel *k, const ir_stmt *s, ir_buf **scan_out)
{
	if (s->kind != S_SET || s->nassigns != 1 || !sets_whole_temp(s))
		return false;
	const ir_assign *a = &s->assigns[0];
	ir_buf *h = a->buf;
	if (h->cls != BUF_TEMP || h == k->result || h == k->nograd_result)
		return false;
	bool several = false;
	ir_buf *scan = temp_read(a->val, &several);
	if (!scan || several || scan == h)
		return false;
	/* the scan at the element the set writes; a scan with a copy per row
	 * of a block (first index: the row's place) and a temp without (each
	 * row's set and reads in turn, lower.c) makes h one per row too */
	ir_idx *want[IR_MAX_RANK] = { 0 };
	if (scan->rank == h->rank && scan->block_rows == h->block_rows) {
		memcpy(want, a->idx, sizeof want);
	} else if (scan->rank == h->rank + 1 && scan->block_rows && !h->block_rows) {
		want[0] = row_of(a->val, scan);
		if (!want[0])
			return false;
		for (int l = 0; l < s->nloops; l++)
			if (ir_idx_uses_loop(want[0], s->loops[l]))
				return false;
		for (int d = 0; d < h->rank; d++)
			want[d + 1] = a->idx[d];
		/* h becomes one per row, read at the row's place: every read must
		 * be where that place is known, beside the set in its loop */
		const ir_block *p = parent_of(&k->body, s);
		if (!p)
			p = parent_of(&k->nograd_body, s);
		if (!p || ir_block_count(p, h, false) != ir_block_count(&k->body, h, false) +
		                                          ir_block_count(&k->nograd_body, h, false))
			return false;
	} else {
		return false;
	}
	bool seen = false;
	if (!reads_scan_at(a->val, scan, want, &seen) || !seen)
		return false;
	if (ir_block_count(&k->body, h, true) + ir_block_count(&k->nograd_body, h, true) != 1)
		return false;
	if (ir_block_count(&k->body, scan, true) + ir_block_count(&k->nograd_body, scan, true) == 0 ||
	    unguarded_writes(&k->body, scan, false) + unguarded_writes(&k->nograd_body, scan, false) > 0)
		return false;
	*scan_out = scan;
	return true;
}

/* ----------------------------------------------------------- the rewrite */

/* dirty = v at the row of index row (NULL: every row; ignored when the
 * flag is a scalar). */
static ir_stmt *dirty_set(memo *z, ir_idx *row, double v)
{
	ir_module *m = z->m;
	if (z->dirty->rank == 0)
		return ir_assign_stmt(m, S_SET, NULL, 0, 0, z->dirty, NULL, ir_const(m, v));
	if (row)
		return ir_assign_stmt(m, S_SET, NULL, 0, 0, z->dirty, &row, ir_const(m, v));
	ir_loop *l = ir_loop_new(m, "dr", ir_idx_const(m, 0), ir_idx_const(m, z->dirty->dims[0]));
	ir_idx *i = ir_idx_loop(m, l);
	return ir_assign_stmt(m, S_SET, &l, 1, 1, z->dirty, &i, ir_const(m, v));
}

/* The row of the flag that a write of the scan (assignment a of s) dirties:
 * its first index when that names one row, else NULL (every row). */
static ir_idx *written_row(const memo *z, const ir_stmt *s, const ir_assign *a)
{
	if (z->dirty->rank == 0)
		return NULL;
	ir_idx *r = a->idx[0];
	for (int l = 0; l < s->nloops; l++)
		if (ir_idx_uses_loop(r, s->loops[l]))
			return NULL;
	return r;
}

/* ir_read_map: h read as hp at the row's copy. */
static ir_buf *to_row_copy(void *arg, ir_buf *b, ir_idx **idx)
{
	memo *z = arg;
	if (b != z->h)
		return b;
	memmove(idx + 1, idx, (IR_MAX_RANK - 1) * sizeof *idx);
	idx[0] = z->row;
	return z->hp;
}

/* s with h read and written as hp (a copy when it touches h). */
static ir_stmt *promoted(memo *z, ir_stmt *s)
{
	if (!z->hp)
		return s;
	bool touches = false;
	for (int a = 0; a < s->nassigns; a++)
		touches |= s->assigns[a].buf == z->h || ir_val_reads(s->assigns[a].val, z->h);
	if (!touches)
		return s;
	ir_stmt *c = ir_stmt_new(z->m, s->kind);
	*c = *s;
	c->assigns = arena_alloc(z->m->arena, (size_t)s->nassigns * sizeof *c->assigns);
	for (int a = 0; a < s->nassigns; a++) {
		ir_assign *d = &c->assigns[a];
		*d = s->assigns[a];
		d->val = ir_remap_val(z->m, d->val, to_row_copy, z);
		if (d->buf == z->h) {
			memmove(d->idx + 1, d->idx, (IR_MAX_RANK - 1) * sizeof *d->idx);
			d->idx[0] = z->row;
			d->buf = z->hp;
		}
	}
	return c;
}

static bool contains(const ir_stmt *s, const ir_stmt *set)
{
	if (s == set)
		return true;
	if (s->kind == S_FOR || s->kind == S_IF_GE)
		for (size_t i = 0; i < s->body.stmts.len; i++)
			if (contains(s->body.stmts.items[i], set))
				return true;
	return false;
}

/* in rebuilt into out; top: the kernel's body, where the flags are set
 * for every row just before the statement that holds the set (not at the
 * kernel's start: the objective's stretch that loglik_grad's call replaces,
 * cg_share.c, must keep loglik_grad's shape) */
static void rebuild(memo *z, const ir_block *in, ir_block *out, bool top)
{
	ir_module *m = z->m;
	for (size_t i = 0; i < in->stmts.len; i++) {
		ir_stmt *s = in->stmts.items[i];
		if (top && contains(s, z->set))
			ir_block_push(m, out, dirty_set(z, NULL, 1));
		if (s == z->set) {
			ir_idx *row = z->dirty->rank ? z->row : NULL;
			ir_stmt *g = ir_stmt_new(m, S_IF_GE);
			ir_idx *at[IR_MAX_RANK] = { row };
			g->a = ir_idx_load(m, z->dirty, at);
			g->b = ir_idx_const(m, 1);
			ir_block_push(m, &g->body, promoted(z, s));
			ir_block_push(m, &g->body, dirty_set(z, row, 0));
			ir_block_push(m, out, g);
			continue;
		}
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			ir_stmt *c = ir_stmt_new(m, s->kind);
			*c = *s;
			c->body.stmts = (ptrvec){ 0 };
			rebuild(z, &s->body, &c->body, false);
			ir_block_push(m, out, c);
			continue;
		}
		ir_block_push(m, out, promoted(z, s));
		for (int a = 0; a < s->nassigns; a++)
			if (s->assigns[a].buf == z->scan) {
				ir_block_push(m, out, dirty_set(z, written_row(z, s, &s->assigns[a]), 1));
				break;
			}
	}
}

static void rewrite(ir_module *m, ir_kernel *k, const ir_stmt *set, ir_buf *scan)
{
	memo z = { .m = m, .set = set, .h = set->assigns[0].buf, .scan = scan };
	z.row = scan->block_rows ? row_of(set->assigns[0].val, scan) : NULL;
	if (scan->block_rows && scan->rank == z.h->rank + 1) {
		int64_t hd[IR_MAX_RANK] = { scan->dims[0] };
		for (int d = 0; d < z.h->rank; d++)
			hd[d + 1] = z.h->dims[d];
		z.hp = ir_buf_new(m, z.h->name, BUF_TEMP, z.h->rank + 1, hd);
		z.hp->block_rows = true;
	}
	int64_t dims[IR_MAX_RANK] = { scan->block_rows ? scan->dims[0] : 0 };
	z.dirty = ir_buf_new(m, "dirty", BUF_TEMP, scan->block_rows ? 1 : 0, dims);
	z.dirty->block_rows = scan->block_rows;
	z.dirty->memo_flag = true;
	ir_block body = { { 0 } }, nograd = { { 0 } };
	rebuild(&z, &k->body, &body, true);
	k->body = body;
	if (k->nograd_body.stmts.len) {
		rebuild(&z, &k->nograd_body, &nograd, true);
		k->nograd_body = nograd;
	}
	ir_kernel_collect_temps(m, k);
}

/* The first qualifying set in blk not under a memo's condition already. */
static const ir_stmt *find_set(const ir_kernel *k, const ir_block *blk, ir_buf **scan)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_IF_GE && s->a && s->a->kind == IX_LOAD && s->a->u.load.buf->memo_flag)
			continue;
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			const ir_stmt *f = find_set(k, &s->body, scan);
			if (f)
				return f;
			continue;
		}
		if (qualifies(k, s, scan))
			return s;
	}
	return NULL;
}

void memo_kernel(ir_module *m, ir_kernel *k)
{
	if (k->kind == KER_INIT)  /* the one kernel that writes params */
		return;
	for (int round = 0; round < 8; round++) {
		ir_buf *scan = NULL;
		const ir_stmt *s = find_set(k, &k->body, &scan);
		if (!s)
			s = find_set(k, &k->nograd_body, &scan);
		if (!s)
			return;
		rewrite(m, k, s, scan);
	}
}
