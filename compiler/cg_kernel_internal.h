/* cg_kernel_internal.h -- what the files that emit a kernel's statements
 * share.
 *
 * cg_kernel.c emits each kernel (signature, scratch, the call of another
 * kernel) and its statements one by one: loops, assignments, branches.
 * Where a loop runs over the rows of a block, three files take over:
 *   cg_rows.c            the rows of a block: the statements run for all
 *                        rows in turn, sums and shared accumulations jammed
 *                        (one loop for all rows)
 *   cg_jam_vec.c         such a jammed sum or accumulation written in
 *                        vectors, not left to the loop vectorizer
 *   cg_pair_positions.c  a position loop whose rows start with such a sum:
 *                        the sums of several positions in one loop
 * They share cg_kernel.c's loops and loads and stores, and call each other
 * through what is declared here; all else stays static in its file.
 */
#ifndef CG_KERNEL_INTERNAL_H
#define CG_KERNEL_INTERNAL_H

#include "cg_context.h"

/* The most rows of a block and loops jammed; a jammed sum of a block of
 * more than CG_JAM_SUM_ROWS rows runs in tiles of CG_JAM_SUM_ROWS rows
 * (more accumulators than registers). */
enum { CG_JAM_ROWS = 64, CG_JAM_SUM_ROWS = 16, CG_JAM_LOOPS = 8 };
/* The sums of a group of positions (cg_pair_positions.c) run in tiles of
 * at most CG_JAM_TILE_ROWS rows x P positions, CG_JAM_TILE accumulators:
 * 8 rows x 3 positions, 24 vectors in registers beside the 3 positions'
 * W[k, kk] and a row's x[kk] (4 positions, 32 accumulators, spilled).
 * Log p's (nothing written ahead, no group accumulation) are tiles of
 * CG_JAM_TILE_ROWS_SUM rows: 4 rows x 6 positions, 24 accumulators beside
 * the 6 positions' W[k, kk] and a row's x[kk]; each x vector loaded serves
 * 6 positions, not 3, and each W vector 4 rows, not 8 (10 loads for 24
 * multiply-adds, not 11; FVSBN's log p at batch 256 1.2x in f32, 1.15x in
 * f64 with its rows in 16-byte-aligned buffers, 4 x 4 and 4 x 5 were
 * 1.04-1.1x, 2 x 8, 2 x 10 and 2 x 12 (the rows' x in registers) 0.9-1x;
 * with 64-byte-aligned rows, as libchain allocates them, the tiles, the
 * chunks and the prefetch below together are 1.02-1.1x: docs/internals.md).
 * When the body writes ahead of the sums (sampling), the tiles are log
 * p's too, their accumulators kept in memory until each position's own
 * steps (cg_pair_positions.c's ahead_tiles; groups of 2 positions of one
 * block of 8 rows, 16 accumulators, were 1.3x slower in f32, 1.55x in
 * f64). */
enum { CG_JAM_TILE = 24, CG_JAM_TILE_ROWS = 8, CG_JAM_TILE_ROWS_SUM = 4, CG_JAM_POS = 8 };
/* Log p's tiles take the common steps of their group's positions in
 * chunks of at most CG_JAM_CHUNK steps (of 64 bytes: 3 KB of a row) when
 * there are more (cg_pair_positions.c's tiles_chunked): FVSBN's log p at
 * batch 256 1.05x in f64 (chunks of 32-64 steps alike, 80 none; chunking
 * every group was 0.9x in f32, whose rows are at most 3 KB). */
enum { CG_JAM_CHUNK = 48 };
/* Log p's rows one at a time (a partial block: batch 1) prefetch the
 * params their sums read (FVSBN's rows of W, from L3 or memory, each read
 * once for the row) CG_JAM_PREFETCH bytes ahead: FVSBN's log p at batch 1
 * 1.08x in f32, 1.04x in f64 (256 bytes ahead 1.05x and 1.02x, 512 and
 * more slower than none; in the tiles, whose later tiles find W in cache,
 * 0.95x). */
enum { CG_JAM_PREFETCH = 128 };
/* The most parts of a summand jv_parts lists. */
enum { JV_PARTS = 4 };

/* ---------------------------------------------------- cg_kernel.c */

/* A counted loop being emitted (cg_loop_open .. cg_loop_close). */
typedef struct cg_loop {
	const ir_loop *l;
	LLVMBasicBlockRef header, exit;
	LLVMValueRef iv, lo, hi, saved;
	LLVMValueRef latch;          /* the back edge's branch, once closed */
	bool reverse;
} cg_loop;

LLVMValueRef cg_entry_alloca(cg_ctx *c, LLVMTypeRef ty, const char *name);
/* l may be NULL: a counter of codegen's own over [lo, hi). */
void cg_loop_open(cg_ctx *c, cg_loop *st, const ir_loop *l, LLVMValueRef lo, LLVMValueRef hi, bool reverse);
void cg_loop_close(cg_ctx *c, cg_loop *st);
/* Opens IR loop l over its own bounds. */
void cg_loop_open_stmt(cg_ctx *c, cg_loop *st, const ir_loop *l);
void cg_hint_vector_width(cg_ctx *c, LLVMValueRef br, int width, int interleave);

/* A real at p, aligned as a real. */
LLVMValueRef cg_store_real(cg_ctx *c, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef cg_load_real(cg_ctx *c, LLVMValueRef p);

bool cg_first_visit(cg_ctx *c, const ir_val *v, bool *seen);
bool cg_val_reads(cg_ctx *c, const ir_val *v, const ir_buf *b, bool *seen);

void cg_point_row(cg_ctx *c, LLVMValueRef row);
void cg_stmt(cg_ctx *c, const ir_stmt *s);

/* ------------------------------------------------------ cg_rows.c */

typedef enum { JAM_NONE, JAM_SUM, JAM_ADD } jam_kind;

jam_kind jam_kind_of(cg_ctx *c, const ir_stmt *s, const ir_loop *rows);
bool cg_rows_shared_target(const ir_assign *a, const ir_loop *rows);
bool cg_rows_sum_into(cg_ctx *c, const ir_assign *a, const ir_loop *rows);
void cg_set_lane(cg_ctx *c, const ir_loop *rows, LLVMValueRef first, LLVMValueRef lane);
bool cg_rows_of_block(cg_ctx *c, const ir_stmt *s, const ir_loop *bl, LLVMValueRef lo, LLVMValueRef hi,
                      LLVMValueRef given);

/* --------------------------------------------------- cg_jam_vec.c */

bool cg_idx_free_of(const ir_idx *x, const ir_loop *l);
bool jv_summand(cg_ctx *c, const ir_val *v, const ir_loop *l);
void jam_sum_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows);
bool jv_add_ok(cg_ctx *c, const ir_stmt *s, const ir_loop *rows);
void jam_add_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows);

/* The sums of statement s (a jammed sum over one loop, its summand passing
 * jv_summand) for `rows` rows (lanes lane[]) at `npos` values pk[] of the
 * position loop pl, which may move the sum's end (not its start).  Each
 * position's sum is computed in the steps of jam_sum_vec, so its bits are
 * those of jam_sum_vec's: jv_prepare computes the bounds, jv_fused runs
 * the full steps the positions have in common in one loop, where each
 * loaded x[kk] serves every position (register tiling: npos x rows
 * accumulators); jv_finish(q), later, position q's own full steps, its
 * masked step and its rows' horizontal sums; jv_finish_all, those of all
 * positions, the horizontal sums of all together (position q's row r to
 * out[q * stride + r]). */
typedef struct jv_state {
	const ir_stmt *s;
	const ir_loop *l, *pl;
	LLVMValueRef first;
	const LLVMValueRef *lane;
	int rows, npos;
	LLVMValueRef pk[CG_JAM_POS], acc[CG_JAM_TILE], len[CG_JAM_POS], m[CG_JAM_POS], mmin, lo;
	LLVMValueRef lane_off; /* not NULL: rows first + lane[r] are lanes lane_off + lane[r] of their block */
	bool prefetch;         /* the steps prefetch the params they read (jv_prefetch) */
	signed char *memo;
} jv_state;

bool jv_prepare(cg_ctx *c, jv_state *st, const ir_stmt *s, LLVMValueRef first, const LLVMValueRef *lane, int rows,
                const ir_loop *pl, const LLVMValueRef *pk, int npos);
void jv_fused(cg_ctx *c, jv_state *st);
void jv_fused_range(cg_ctx *c, jv_state *st, LLVMValueRef j0, LLVMValueRef j1);
void jv_acc_io(cg_ctx *c, jv_state *st, LLVMValueRef base, bool store);
void jv_finish(cg_ctx *c, jv_state *st, int q, LLVMValueRef *sums, LLVMValueRef out);
void jv_finish_all(cg_ctx *c, jv_state *st, LLVMValueRef out, int stride);
void jv_end(jv_state *st);

bool jv_parts(cg_ctx *c, const ir_val *v, const ir_loop *l, const ir_val **inv, int *ninv, const ir_val **var,
              int *nvar);
void jv_group_add(cg_ctx *c, const ir_stmt *s, const ir_loop *rows, LLVMValueRef first, LLVMValueRef count,
                  const ir_loop *pl, const LLVMValueRef *pk, int npos, LLVMValueRef nact, const ir_val *const *inv,
                  int ninv, LLVMValueRef saved, int block);

/* -------------------------------------------- cg_pair_positions.c */

bool pair_positions(cg_ctx *c, const ir_stmt *s);

#endif
