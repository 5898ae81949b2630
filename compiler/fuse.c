/* fuse.c -- fewer passes over the same elements.
 *
 * Differentiation writes each adjoint as a temp zeroed, then added into,
 * then read: NADE's gradient, per position and row, sets dh = 0 over the H
 * hidden units, adds dh += V[i, :] * ddot, and reads dh once more to
 * propagate through the sigmoid.  Each is a loop over H of its own, and
 * each stores and reloads the row's H reals.  Two rewrites remove such
 * passes:
 *   - forwarding: a temp that is zeroed and added into once (or set once)
 *     over all its elements, and read by one later statement, element by
 *     element, is replaced there by its value; its statements go.  The
 *     same makes log p's hidden layer h = sigmoid(...) part of the dot
 *     product that reads it: no store and reload of h;
 *   - merging: adjacent accumulations over the same ranges into buffers
 *     the rows of a block share (a gradient) or own (their state), which
 *     read nothing the other writes, become one statement: one loop that
 *     loads each element once (cg_rows.c runs it jammed over the rows).
 * Both change which loops compute a value, never the value: the forwarded
 * value is computed from the same operands in the same order, and merged
 * statements touch disjoint buffers.  Kernels share statement objects, so
 * a rewrite makes new statements and leaves the old ones as they are.
 */
#include "chainc.h"

enum {
	FUSE_MAX_LOOPS = 8,   /* the most loops of a statement rewritten */
	FUSE_MAX_DEPTH = 8,   /* the most conditions around a forwarded read */
};

/* ------------------------------------------------------- reads and writes */

static bool val_draws(const ir_val *v)
{
	switch (v->kind) {
	case V_DRAW: return true;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (val_draws(v->u.op.a[k]))
				return true;
		return false;
	case V_STOP: return val_draws(v->u.stop);
	default: return false;
	}
}

/* Whether s writes any buffer that v reads. */
static bool stmt_writes_read_of(const ir_stmt *s, const ir_val *v)
{
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		for (size_t i = 0; i < s->body.stmts.len; i++)
			if (stmt_writes_read_of(s->body.stmts.items[i], v))
				return true;
		return false;
	}
	for (int j = 0; j < s->nassigns; j++)
		if (ir_val_reads(v, s->assigns[j].buf))
			return true;
	return false;
}


/* ------------------------------------------------------------ use counts */

/* How many statements of the kernel (both bodies) read and write each
 * temp, counted as ir_block_count counts them.  Forwarding asks this of
 * every addition into a temp, and counting by a walk of the kernel made
 * each question O(kernel): quadratic in the statements, so in the data
 * variables of a model (one accumulation into log p each; 97 % of chain
 * check of 5,000 scalar data variables).  The table is counted once per
 * kernel and kept exact as forwarding replaces statements: a question
 * costs a lookup.  Only temps are forwarded, so only they are counted
 * (a model's data variables are buffers of their own: a table of them
 * would be most of the table). */
typedef struct use_count {
	int reads, writes;
	unsigned stamp;           /* the statement last counted (once each) */
} use_count;

typedef struct counts {
	arena *a;
	ptrmap of;                /* ir_buf * -> use_count * */
	unsigned stamp;
} counts;

/* b's counts; NULL when b is not a temp. */
static use_count *count_of(counts *c, const ir_buf *b)
{
	if (b->cls != BUF_TEMP)
		return NULL;
	use_count *u = ptrmap_get(&c->of, b);
	if (!u) {
		u = arena_alloc(c->a, sizeof *u);
		ptrmap_put(c->a, &c->of, b, u);
	}
	return u;
}

static void count_read(counts *c, const ir_buf *b, int sign)
{
	use_count *u = count_of(c, b);
	if (u && u->stamp != c->stamp) {
		u->stamp = c->stamp;
		u->reads += sign;
	}
}

/* A count_read for ir_idx_each_read and ir_val_each_read. */
typedef struct counting {
	counts *c;
	int sign;
} counting;

static bool count_one(const ir_buf *b, void *ctx)
{
	counting *k = ctx;
	count_read(k->c, b, k->sign);
	return false;
}

static void count_idx(counts *c, const ir_idx *i, int sign)
{
	ir_idx_each_read(i, count_one, &(counting){c, sign});
}

static void count_val(counts *c, const ir_val *v, int sign)
{
	ir_val_each_read(v, count_one, &(counting){c, sign});
}

/* Adds (sign 1) or takes away (-1) what assignment statement s reads
 * (ir_stmt_reads) and writes (ir_stmt_writes), each buffer once. */
static void count_stmt(counts *c, const ir_stmt *s, int sign)
{
	c->stamp++;
	for (int l = 0; l < s->nloops; l++) {
		count_idx(c, s->loops[l]->lo, sign);
		count_idx(c, s->loops[l]->hi, sign);
	}
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		count_val(c, a->val, sign);
		if (s->kind == S_ADD)
			count_read(c, a->buf, sign);
		for (int d = 0; d < a->buf->rank; d++)
			count_idx(c, a->idx[d], sign);
	}
	c->stamp++;
	for (int j = 0; j < s->nassigns; j++) {
		use_count *u = count_of(c, s->assigns[j].buf);
		if (u && u->stamp != c->stamp) {
			u->stamp = c->stamp;
			u->writes += sign;
		}
	}
}

/* A loop's bounds and a condition count as a read of their own, beside
 * the statements they hold (ir_block_count). */
static void count_block(counts *c, const ir_block *blk)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			c->stamp++;
			if (s->kind == S_FOR && s->loop) {
				count_idx(c, s->loop->lo, 1);
				count_idx(c, s->loop->hi, 1);
			} else if (s->kind == S_IF_GE) {
				count_idx(c, s->a, 1);
				count_idx(c, s->b, 1);
			}
			count_block(c, &s->body);
		} else {
			count_stmt(c, s, 1);
		}
	}
}

/* The statements that read temp b, and those that write it. */
static int reads_of(counts *c, const ir_buf *b)
{
	const use_count *u = ptrmap_get(&c->of, b);
	return u ? u->reads : 0;
}

static int writes_of(counts *c, const ir_buf *b)
{
	const use_count *u = ptrmap_get(&c->of, b);
	return u ? u->writes : 0;
}

/* ------------------------------------------------------------- forwarding */

static bool is_zero(const ir_val *v)
{
	return v->kind == V_CONST && v->u.c == 0;
}

static bool const_is(const ir_idx *x, int64_t c)
{
	return x && x->kind == IX_CONST && x->u.c == c;
}

/* Which of s's loops index dimension d of a (loop_of[d], or -1 for an index
 * none of s's loops changes); false unless every loop of s indexes exactly
 * one dimension, over the whole of it. */
static bool element_wise(const ir_stmt *s, const ir_assign *a, int *loop_of)
{
	int used = 0;
	for (int d = 0; d < a->buf->rank; d++) {
		loop_of[d] = -1;
		const ir_idx *x = a->idx[d];
		for (int l = 0; l < s->nloops; l++) {
			if (x && x->kind == IX_LOOP && x->u.loop == s->loops[l]) {
				if (!const_is(s->loops[l]->lo, 0) || !const_is(s->loops[l]->hi, a->buf->dims[d]))
					return false;
				loop_of[d] = l;
				used++;
			} else if (ir_idx_uses_loop(x, s->loops[l])) {
				return false;
			}
		}
		if (loop_of[d] < 0 && x && x->kind == IX_LOAD)
			return false;
	}
	for (int d = 0; d < a->buf->rank; d++)
		for (int e = 0; e < d; e++)
			if (loop_of[d] >= 0 && loop_of[d] == loop_of[e])
				return false;
	return used == s->nloops;
}

/* Whether a (of statement s) writes the same elements as w, given w's
 * loop_of. */
static bool same_elements(const ir_stmt *s, const ir_assign *a, const ir_assign *w, const int *loop_of)
{
	int mine[IR_MAX_RANK];
	if (!element_wise(s, a, mine))
		return false;
	for (int d = 0; d < a->buf->rank; d++) {
		if ((mine[d] < 0) != (loop_of[d] < 0))
			return false;
		if (mine[d] < 0 && !ir_idx_equal(a->idx[d], w->idx[d]))
			return false;
	}
	return true;
}

typedef struct forward {
	ir_module *m;
	const ir_buf *t;          /* the temp forwarded */
	const ir_stmt *def;       /* its addition */
	const ir_assign *add;
	const int *loop_of;
	const ir_stmt *use;       /* the statement that reads it */
	bool ok;
} forward;

/* Whether read idx of t in the using statement reads, for every iteration
 * of it, the element its own iteration names: the fixed dimensions as the
 * addition wrote them, one loop of the user per other dimension, every
 * loop of the user used (so the value is computed once per iteration, as
 * the read was). */
static bool read_matches(const forward *f, ir_idx *const *idx)
{
	if (f->use->nloops > FUSE_MAX_LOOPS)
		return false;
	bool used[FUSE_MAX_LOOPS] = {0};
	int nused = 0;
	for (int d = 0; d < f->t->rank; d++) {
		if (f->loop_of[d] < 0) {
			if (!ir_idx_equal(idx[d], f->add->idx[d]))
				return false;
			continue;
		}
		int l = 0;
		while (l < f->use->nloops && !(idx[d] && idx[d]->kind == IX_LOOP && idx[d]->u.loop == f->use->loops[l]))
			l++;
		if (l == f->use->nloops || used[l])
			return false;
		used[l] = true;
		nused++;
	}
	return nused == f->use->nloops;
}

/* v with each read of the temp replaced by the value added into it at the
 * element read. */
static ir_val *replace_reads(forward *f, ir_val *v)
{
	switch (v->kind) {
	case V_READ: {
		if (v->u.read.buf != f->t)
			return v;
		if (!read_matches(f, v->u.read.idx)) {
			f->ok = false;
			return v;
		}
		ir_loop *from[IR_MAX_RANK];
		ir_idx *to[IR_MAX_RANK];
		int n = 0;
		for (int d = 0; d < f->t->rank; d++)
			if (f->loop_of[d] >= 0) {
				from[n] = f->def->loops[f->loop_of[d]];
				to[n++] = v->u.read.idx[d];
			}
		return ir_subst_val(f->m, f->add->val, from, to, n);
	}
	case V_OP: {
		ir_val *a[3] = {0};
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			a[k] = replace_reads(f, v->u.op.a[k]);
		return ir_op(f->m, v->u.op.op, a[0], a[1], a[2]);
	}
	case V_STOP:
		return ir_stop(f->m, replace_reads(f, v->u.stop));
	case V_DRAW:
		if (!v->u.draw.arg)
			return v;
		return ir_draw_at(f->m, v->u.draw.kind, v->u.draw.stream, v->u.draw.a, v->u.draw.b, v->u.draw.c, v->u.draw.ci,
		                  replace_reads(f, v->u.draw.arg));
	default:
		return v;
	}
}

/* A copy of assignment statement s with room for n assignments, of which
 * the first min(n, s's) are s's: kernels share statements (lower.c builds
 * them from common pieces), so a rewrite for one kernel makes new ones. */
static ir_stmt *stmt_copy(ir_module *m, const ir_stmt *s, int n)
{
	ir_stmt *c = ir_stmt_new(m, s->kind);
	*c = *s;
	c->assigns = arena_alloc(m->arena, (size_t)(n > 0 ? n : 1) * sizeof *c->assigns);
	for (int j = 0; j < n && j < s->nassigns; j++)
		c->assigns[j] = s->assigns[j];
	c->nassigns = n;
	return c;
}

/* A copy of condition s whose body has statement i replaced by r. */
static ir_stmt *if_with(ir_module *m, const ir_stmt *s, size_t i, ir_stmt *r)
{
	ir_stmt *c = ir_stmt_new(m, s->kind);
	*c = *s;
	c->body.stmts = (ptrvec){ 0 };
	for (size_t j = 0; j < s->body.stmts.len; j++)
		ir_block_push(m, &c->body, j == i ? r : s->body.stmts.items[j]);
	return c;
}

static void remove_stmt(ir_block *b, size_t i)
{
	for (size_t k = i + 1; k < b->stmts.len; k++)
		b->stmts.items[k - 1] = b->stmts.items[k];
	b->stmts.len--;
}

/* Tries to forward assignment j of statement blk[i] (an addition into a
 * temp); true if done, c then counting the statements as they now are. */
static bool try_forward(ir_module *m, const ir_kernel *k, counts *c, ir_block *blk, size_t i, int j)
{
	ir_stmt *def = blk->stmts.items[i];
	ir_assign *add = &def->assigns[j];
	ir_buf *t = add->buf;
	if (t->cls != BUF_TEMP || t == k->result || t == k->nograd_result || ir_val_reads(add->val, t) ||
	    val_draws(add->val))
		return false;
	int loop_of[IR_MAX_RANK];
	if (!element_wise(def, add, loop_of))
		return false;
	/* the addition's other assignments neither change what the value
	 * reads nor read the temp */
	for (int a = 0; a < def->nassigns; a++) {
		if (ir_val_reads(add->val, def->assigns[a].buf) || (a != j && ir_val_reads(def->assigns[a].val, t)))
			return false;
		for (int d = 0; d < def->assigns[a].buf->rank; d++)
			if (ir_idx_reads(def->assigns[a].idx[d], t))
				return false;
	}
	/* written once in the whole kernel (set), or twice: zeroed, then this
	 * addition */
	bool set = def->kind == S_SET;
	if (writes_of(c, t) != (set ? 1 : 2))
		return false;
	size_t z = i;
	if (!set) {
		while (z > 0 && !ir_stmt_writes(blk->stmts.items[z - 1], t) && !ir_stmt_reads(blk->stmts.items[z - 1], t))
			z--;
		if (z == 0)
			return false;
		const ir_stmt *zero = blk->stmts.items[--z];
		if (zero->kind != S_SET || zero->nassigns != 1 || zero->assigns[0].buf != t ||
		    !is_zero(zero->assigns[0].val) || !same_elements(zero, &zero->assigns[0], add, loop_of))
			return false;
	}
	/* read by one later statement of this block, with nothing it reads
	 * written in between */
	size_t u = i + 1;
	while (u < blk->stmts.len && !ir_stmt_reads(blk->stmts.items[u], t)) {
		if (stmt_writes_read_of(blk->stmts.items[u], add->val))
			return false;
		u++;
	}
	if (u == blk->stmts.len)
		return false;
	/* the reader may sit under conditions that do not read the temp
	 * (complete's `if k >= prefix { x[k] = ... l ... }`): the value is then
	 * computed when it is needed, no more often */
	ir_stmt *use = blk->stmts.items[u];
	ir_stmt *under[FUSE_MAX_DEPTH];
	size_t at[FUSE_MAX_DEPTH];
	int depth = 0;
	while (use->kind == S_IF_GE && !ir_idx_reads(use->a, t) && !ir_idx_reads(use->b, t)) {
		if (depth == FUSE_MAX_DEPTH)
			return false;
		size_t w = 0;
		while (w < use->body.stmts.len && !ir_stmt_reads(use->body.stmts.items[w], t)) {
			if (stmt_writes_read_of(use->body.stmts.items[w], add->val))
				return false;
			w++;
		}
		if (w == use->body.stmts.len)
			return false;
		under[depth] = use;
		at[depth++] = w;
		use = use->body.stmts.items[w];
	}
	if (use->kind == S_FOR || use->kind == S_IF_GE || stmt_writes_read_of(use, add->val) ||
	    reads_of(c, t) != (set ? 1 : 2))
		return false; /* read by this statement only (and the addition) */
	for (int l = 0; l < use->nloops; l++)
		if (ir_idx_reads(use->loops[l]->lo, t) || ir_idx_reads(use->loops[l]->hi, t))
			return false;
	for (int a = 0; a < use->nassigns; a++)
		for (int d = 0; d < use->assigns[a].buf->rank; d++)
			if (ir_idx_reads(use->assigns[a].idx[d], t))
				return false;
	forward f = { .m = m, .t = t, .def = def, .add = add, .loop_of = loop_of, .use = use, .ok = true };
	ir_stmt *used = stmt_copy(m, use, use->nassigns);
	for (int a = 0; a < use->nassigns && f.ok; a++)
		used->assigns[a].val = replace_reads(&f, use->assigns[a].val);
	if (!f.ok)
		return false;
	/* the conditions around the reader are copied as they are: only the
	 * statements replaced change the counts */
	count_stmt(c, use, -1);
	count_stmt(c, used, 1);
	count_stmt(c, def, -1);
	if (!set)
		count_stmt(c, blk->stmts.items[z], -1);
	for (int d = depth - 1; d >= 0; d--)
		used = if_with(m, under[d], at[d], used);
	blk->stmts.items[u] = used;
	if (def->nassigns > 1) {
		ir_stmt *rest = stmt_copy(m, def, def->nassigns - 1);
		for (int a = j + 1; a < def->nassigns; a++)
			rest->assigns[a - 1] = def->assigns[a];
		count_stmt(c, rest, 1);
		blk->stmts.items[i] = rest;
	} else {
		remove_stmt(blk, i);
	}
	if (!set)
		remove_stmt(blk, z);
	return true;
}

static bool forward_block(ir_module *m, const ir_kernel *k, counts *c, ir_block *blk)
{
	bool changed = false;
	for (size_t i = 0; i < blk->stmts.len; i++) {
		ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			changed |= forward_block(m, k, c, &s->body);
			continue;
		}
		if (s->kind != S_ADD && !(s->kind == S_SET && s->nassigns == 1))
			continue;
		for (int j = 0; j < s->nassigns; j++)
			if (try_forward(m, k, c, blk, i, j))
				return true; /* the block changed under us: start again */
	}
	return changed;
}

/* --------------------------------------------------------------- merging */

/* Whether an index is the same for every row of a block (see cg_rows.c's
 * jammed accumulations). */
static bool row_free(const ir_idx *x, const ir_loop *rows)
{
	if (!x)
		return true;
	switch (x->kind) {
	case IX_LOOP: return x->u.loop != rows;
	case IX_ADD: case IX_SUB: case IX_MUL: return row_free(x->u.bin.a, rows) && row_free(x->u.bin.b, rows);
	case IX_LOAD: case IX_ROW: return false;
	default: return true;
	}
}

/* A target the rows of a block share at one index (a gradient) or each
 * own: what a jammed accumulation takes. */
static bool jam_target(const ir_assign *a, const ir_loop *rows)
{
	if (a->buf->cls == BUF_TEMP)
		return a->buf->block_rows;
	if (a->buf->cls != BUF_GRAD && a->buf->cls != BUF_THETA)
		return false;
	for (int d = 0; d < a->buf->rank; d++)
		if (!row_free(a->idx[d], rows))
			return false;
	return true;
}

static bool can_merge(const ir_stmt *a, const ir_stmt *b, const ir_loop *rows)
{
	if (a->kind != S_ADD || b->kind != S_ADD || a->nloops != b->nloops || a->nloops == 0)
		return false;
	for (int l = 0; l < a->nloops; l++)
		if (!ir_idx_equal(a->loops[l]->lo, b->loops[l]->lo) || !ir_idx_equal(a->loops[l]->hi, b->loops[l]->hi) ||
		    a->loops[l]->reverse != b->loops[l]->reverse)
			return false;
	for (int j = 0; j < a->nassigns; j++)
		if (!jam_target(&a->assigns[j], rows) || ir_stmt_reads(b, a->assigns[j].buf))
			return false;
	for (int j = 0; j < b->nassigns; j++)
		if (!jam_target(&b->assigns[j], rows) || ir_stmt_reads(a, b->assigns[j].buf))
			return false;
	return true;
}

/* a's assignments and then b's, b's loops renamed to a's. */
static ir_stmt *merged(ir_module *m, const ir_stmt *a, const ir_stmt *b)
{
	ir_stmt *s = stmt_copy(m, a, a->nassigns + b->nassigns);
	ir_idx *to[FUSE_MAX_LOOPS];
	for (int l = 0; l < b->nloops; l++)
		to[l] = ir_idx_loop(m, a->loops[l]);
	for (int j = 0; j < b->nassigns; j++) {
		ir_assign *d = &s->assigns[a->nassigns + j];
		*d = b->assigns[j];
		d->val = ir_subst_val(m, d->val, b->loops, to, b->nloops);
		for (int r = 0; r < d->buf->rank; r++)
			d->idx[r] = ir_subst_idx(m, d->idx[r], b->loops, to, b->nloops);
	}
	return s;
}

/* Merges within the rows of every block of rows. */
static void merge_block(ir_module *m, ir_block *blk, const ir_loop *rows)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			const ir_loop *inner = s->kind == S_FOR && s->loop->is_rows && s->loop->block_of ? s->loop : rows;
			merge_block(m, &s->body, inner);
			continue;
		}
		if (!rows || s->nloops > FUSE_MAX_LOOPS)
			continue;
		while (i + 1 < blk->stmts.len && can_merge(s, blk->stmts.items[i + 1], rows)) {
			s = blk->stmts.items[i] = merged(m, s, blk->stmts.items[i + 1]);
			remove_stmt(blk, i + 1);
		}
	}
}

void fuse_kernel(ir_module *m, ir_kernel *k)
{
	counts c = { .a = m->arena };
	count_block(&c, &k->body);
	count_block(&c, &k->nograd_body);
	while (forward_block(m, k, &c, &k->body))
		;
	while (forward_block(m, k, &c, &k->nograd_body))
		;
	merge_block(m, &k->body, NULL);
	merge_block(m, &k->nograd_body, NULL);
}
