/* test_check.c -- the checker: layout of theta and the observation row,
 * shapes, dims and overrides, orders and their permutations, causality,
 * and several errors in one run.  (tests/errors/ holds the golden
 * messages; these tests look at what the checker builds.) */
#include "test_helpers.h"

#include "check_internal.h"

static model *check_src(parsed *p, dim_override *ov, size_t nov)
{
	return check_program(&p->d, &p->prog, ov, nov);
}

/* The model checked and lowered, as chain check does. */
static ir_module *lower_src(parsed *p)
{
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	ir_module *ir = lower_model(&p->d, m, p->a);
	assert_non_null(ir);
	return ir;
}

static void test_check__nade__lays_out_theta_and_obs_in_declaration_order(void **state)
{
	parsed *p = parse_with_stdlib("model nade\ndim n = 6\ndim H = 4\ndata x : bin[n]\nparam W : real[H, n]\nparam c : real[H]\n"
	                              "param V : real[n, H]\nparam b : real[n]\norder x\n"
	                              "let h[i] = sigmoid(c + sum(j before i) W[:, j] * x[j])\n"
	                              "x[i] ~ bernoulli_logit(b[i] + dot(V[i, :], h[i]))\nmaximize loglik\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	assert_string_equal(m->name, "nade");
	assert_int_equal(m->num_params, 24 + 4 + 24 + 6);
	assert_int_equal(m->obs_size, 6);
	assert_int_equal(m->num_positions, 6);
	const sym *V = m->params.items[2], *b = m->params.items[3];
	assert_int_equal(V->offset, 28);
	assert_int_equal(b->offset, 52);
	const sym *h = m->lets.items[0];
	assert_true(h->let_indexed);
	assert_int_equal(h->shape.rank, 1);
	assert_int_equal(h->shape.dims[0], 4);
	parsed_free(p);
}

static void test_check__inputs__come_before_data_in_the_row(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndata x : bin[3]\ninput s : real[2]\nparam b : real[3]\n"
	                              "x[i] ~ bernoulli_logit(b[i] + sum(s))\nmaximize loglik\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	const sym *s = m->inputs.items[0], *x = m->data.items[0];
	assert_int_equal(s->offset, 0);
	assert_int_equal(x->offset, 2);
	assert_int_equal(m->obs_size, 5);
	parsed_free(p);
}

static void test_check__override__replaces_dim_and_shapes(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndim n = 784\ndata x : bin[n]\nparam W : real[n, n]\nparam b : real[n]\n"
	                              "x[i] ~ bernoulli_logit(b[i] + sum(j before i) W[i, j] * x[j])\nmaximize loglik\n");
	dim_override ov = {"n", 5, false};
	model *m = check_src(p, &ov, 1);
	assert_non_null(m);
	assert_true(ov.used);
	assert_int_equal(m->num_params, 30);
	parsed_free(p);
}

static void test_check__order_forms__build_permutations(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndim n = 4\ndata x : bin[n]\ndata y : bin[2]\nparam b : real[n]\n"
	                              "const P : int[2] = [1, 0]\norder reverse(x), y by P\n"
	                              "x[i] ~ bernoulli_logit(b[i])\ny[i] ~ bernoulli_logit(sum(x))\nmaximize loglik\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	const sym *x = m->order.items[0], *y = m->order.items[1];
	assert_int_equal(order_elem(x, 0), 3);
	assert_int_equal(order_elem(x, 3), 0);
	assert_int_equal(y->perm[0], 1);
	assert_int_equal(order_elem(y, 0), 1);
	assert_int_equal(y->first_pos, 4);
	assert_int_equal(y->order_rank, 1);
	parsed_free(p);
}

static void test_check__random_order__is_a_seeded_permutation(void **state)
{
	const char *src = "model m\ndim n = 50\ndata x : bin[n]\nparam b : real[n]\norder x by random(%d)\n"
	                  "x[i] ~ bernoulli_logit(b[i])\nmaximize loglik\n";
	char text[512];
	int64_t first[50];
	for (int seed = 3; seed <= 4; seed++) {
		snprintf(text, sizeof text, src, seed);
		parsed *p = parse_with_stdlib(text);
		model *m = check_src(p, NULL, 0);
		assert_non_null(m);
		const sym *x = m->order.items[0];
		int seen[50] = {0};
		for (int k = 0; k < 50; k++)
			seen[x->perm[k]]++;
		for (int k = 0; k < 50; k++)
			assert_int_equal(seen[k], 1);
		if (seed == 3)
			memcpy(first, x->perm, sizeof first);
		else
			assert_memory_not_equal(first, x->perm, sizeof first);
		parsed_free(p);
	}
}

static void test_check__causality__later_element_is_located(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndata x : bin[3]\nparam b : real[3]\n"
	                              "x[i] ~ bernoulli_logit(b[i] + x[2])\nmaximize loglik\n");
	assert_null(check_src(p, NULL, 0));
	CHECK_DIAG(&p->d, 0, "only x[j] with j bound by sum(j before i)", 4, 31);
	parsed_free(p);
}

static void test_check__several_errors__all_reported(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndata x : bin[3]\nparam b : real[3]\nparam b : real[2]\n"
	                              "x[i] ~ bernoulli_logit(q[i] + frob(b))\nmaximize loglik\n");
	assert_null(check_src(p, NULL, 0));
	CHECK_DIAG(&p->d, 0, "'b' is already declared", 4, 7);
	CHECK_DIAG(&p->d, 1, "previous declaration", 3, 7);
	CHECK_DIAG(&p->d, 2, "unknown name 'q'", 5, 24);
	CHECK_DIAG(&p->d, 3, "unknown function 'frob'", 5, 31);
	parsed_free(p);
}

static void test_check__shapes__matmul_and_broadcast(void **state)
{
	parsed *p = parse_with_stdlib("model q\ndim n = 3\nparam A : real[n, 2]\nparam B : real[2, 5]\nparam x : real[n]\n"
	                              "let Y = A @ B\nlet z = x @ A\nminimize sum(Y) + sum(z * 2) + sum(x + 1)\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	const sym *Y = m->lets.items[0], *z = m->lets.items[1];
	assert_int_equal(Y->shape.rank, 2);
	assert_int_equal(Y->shape.dims[0], 3);
	assert_int_equal(Y->shape.dims[1], 5);
	assert_int_equal(z->shape.rank, 1);
	assert_int_equal(z->shape.dims[0], 2);
	assert_false(m->objective_has_loglik);
	parsed_free(p);
}

static void test_check__penalty__split_from_loglik(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndata x : bin[3]\nparam b : real[3]\n"
	                              "x[i] ~ bernoulli_logit(b[i])\nmaximize loglik - 1e-4 * l2(b)\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	assert_true(m->objective_has_loglik);
	/* the penalty is the objective with loglik read as 0 */
	assert_true(m->penalty == m->objective->u.objective.value);
	assert_true(m->penalty_sign == 1);
	parsed_free(p);
}

static void test_check__user_family__shadows_stdlib(void **state)
{
	parsed *p = parse_with_stdlib("model m\nfamily bernoulli(p : real) on bin {\n  logp(v) = v * log(p)\n  sample = uniform() < p\n}\n"
	                              "data x : bin[3]\nparam b : real[3]\nx[i] ~ bernoulli(b[i])\nmaximize loglik\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	const sym *x = m->data.items[0];
	assert_int_equal(x->cond->u.cond.family->sym->decl->where.file, p->file);
	parsed_free(p);
}

/* ------------------------------------------------ name lookup at scale */

/* A model source of n scalar params p0..p{n-1} and `extra` after them. */
static char *many_params_src(arena *a, int n, const char *extra)
{
	size_t cap = (size_t)n * 24 + strlen(extra) + 256;
	char *src = arena_alloc(a, cap);
	size_t at = (size_t)snprintf(src, cap, "model m\ndata x : bin[2]\nparam b : real[2]\n");
	for (int k = 0; k < n; k++)
		at += (size_t)snprintf(src + at, cap - at, "param p%d : real\n", k);
	snprintf(src + at, cap - at, "%s", extra);
	return src;
}

static void test_check__scope__finds_every_name_among_many(void **state)
{
	arena *a = arena_new();
	checker c = {.a = a};
	scope s = {0};
	enum { N = 3000 };
	sym *added[N];
	for (int k = 0; k < N; k++)
		added[k] = scope_add(&c, &s, k % 2 ? SYM_PARAM : SYM_DIM, arena_printf(a, "n%d", k), (span){0, 0, 0});
	assert_non_null(s.index); /* large enough to be indexed */
	for (int k = 0; k < N; k++) {
		char name[16];
		snprintf(name, sizeof name, "n%d", k); /* another copy of the text: compared, not by pointer */
		assert_ptr_equal(scope_lookup(&s, name), added[k]);
		assert_ptr_equal(scope_lookup_kind(&s, name, added[k]->kind), added[k]);
		assert_null(scope_lookup_kind(&s, name, k % 2 ? SYM_DIM : SYM_PARAM));
	}
	assert_null(scope_lookup(&s, "n3000"));
	assert_null(scope_lookup(&s, "n"));
	assert_null(scope_lookup(&s, ""));
	arena_free(a);
}

static void test_check__scope__latest_declaration_and_inner_scopes_shadow(void **state)
{
	arena *a = arena_new();
	checker c = {.a = a};
	/* small (searched in order) and large (indexed) scopes alike */
	for (int n = 1; n <= 100; n += 99) {
		scope outer = {0};
		for (int k = 0; k < n; k++)
			scope_add(&c, &outer, SYM_PARAM, arena_printf(a, "v%d", k), (span){0, 0, 0});
		sym *fam1 = scope_add(&c, &outer, SYM_FAMILY, "f", (span){0, 0, 0});
		sym *dim = scope_add(&c, &outer, SYM_DIM, "f", (span){0, 0, 0});
		sym *fam2 = scope_add(&c, &outer, SYM_FAMILY, "f", (span){0, 0, 0});
		sym *late = scope_add(&c, &outer, SYM_DIM, "f", (span){0, 0, 0});
		assert_true((outer.index != NULL) == (n > SCOPE_INDEX_MIN));
		/* the latest of a name; of a kind, the latest of that kind */
		assert_ptr_equal(scope_lookup(&outer, "f"), late);
		assert_ptr_equal(scope_lookup_kind(&outer, "f", SYM_FAMILY), fam2);
		assert_ptr_equal(scope_lookup_kind(&outer, "f", SYM_DIM), late);
		assert_true(fam1 != fam2 && dim != late);
		assert_null(scope_lookup_kind(&outer, "f", SYM_LET));
		/* an inner scope's name shadows the outer one; the others show through */
		scope inner = {.parent = &outer};
		sym *idx = scope_add(&c, &inner, SYM_INDEX, "v0", (span){0, 0, 0});
		assert_ptr_equal(scope_lookup(&inner, "v0"), idx);
		assert_ptr_equal(scope_lookup_kind(&inner, "v0", SYM_PARAM), scope_lookup(&outer, "v0"));
		assert_ptr_equal(scope_lookup(&inner, "f"), late);
		assert_null(scope_lookup(&inner, "nothing"));
	}
	arena_free(a);
}

static void test_check__many_params__each_use_finds_its_declaration(void **state)
{
	arena *a = arena_new();
	parsed *p = parse_with_stdlib(many_params_src(a, 2000, "x[i] ~ bernoulli_logit(b[i] + p0 + p1999 + p777)\nmaximize loglik\n"));
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	assert_int_equal(m->params.len, 2001);
	assert_int_equal(m->num_params, 2002);
	const sym *x = m->data.items[0];
	const expr *sum = x->cond->u.cond.family->u.call.args.items[0];  /* ((b[i] + p0) + p1999) + p777 */
	assert_ptr_equal(sum->u.binary.rhs->sym, m->params.items[778]);
	assert_ptr_equal(sum->u.binary.lhs->u.binary.rhs->sym, m->params.items[2000]);
	assert_ptr_equal(sum->u.binary.lhs->u.binary.lhs->u.binary.rhs->sym, m->params.items[1]);
	assert_int_equal(((const sym *)m->params.items[2000])->offset, 2001);
	parsed_free(p);
	arena_free(a);
}

static void test_check__many_params__duplicates_and_unknown_names_still_reported(void **state)
{
	arena *a = arena_new();
	parsed *p = parse_with_stdlib(many_params_src(a, 500, "param p250 : real\nparam p499 : real[3]\n"
	                                                     "x[i] ~ bernoulli_logit(b[i] + p500 + sum(p0 before i) x[p0])\n"
	                                                     "maximize loglik\n"));
	assert_null(check_src(p, NULL, 0));
	CHECK_DIAG(&p->d, 0, "'p250' is already declared", 504, 7);
	CHECK_DIAG(&p->d, 1, "previous declaration of param 'p250'", 254, 7);
	CHECK_DIAG(&p->d, 2, "'p499' is already declared", 505, 7);
	CHECK_DIAG(&p->d, 3, "previous declaration of param 'p499'", 503, 7);
	CHECK_DIAG(&p->d, 4, "unknown name 'p500'", 506, 31);
	CHECK_DIAG(&p->d, 5, "'p0' is already a name here", 506, 42);
	parsed_free(p);
	arena_free(a);
}

static void test_check__many_lets__a_let_sees_only_the_lets_above_it(void **state)
{
	char src[8192];
	size_t at = (size_t)snprintf(src, sizeof src, "model m\ndata x : bin[2]\nparam b : real[2]\nlet l0 = b[0]\n");
	for (int k = 1; k < 100; k++)
		at += (size_t)snprintf(src + at, sizeof src - at, "let l%d = l%d + 1\n", k, k == 60 ? 70 : k - 1);
	snprintf(src + at, sizeof src - at, "x[i] ~ bernoulli_logit(b[i] + l99)\nmaximize loglik\n");
	parsed *p = parse_with_stdlib(src);
	assert_null(check_src(p, NULL, 0));
	assert_int_equal(p->d.errors, 1);
	CHECK_DIAG(&p->d, 0, "let 'l70' is used before its declaration is complete", 64, 11);
	parsed_free(p);
}

/* ------------------------------------------------------ large dims */

static void test_check__natural_and_reverse_orders__computed_not_stored(void **state)
{
	parsed *p = parse_with_stdlib("model m\ndim n = 100000\ndata x : bin[n]\ndata y : bin[n]\ndata z : bin[1]\n"
	                              "param b : real[n]\norder reverse(x), y, reverse(z)\n"
	                              "x[i] ~ bernoulli_logit(b[i])\ny[i] ~ bernoulli_logit(b[i])\nz[i] ~ bernoulli_logit(0)\n"
	                              "maximize loglik\n");
	model *m = check_src(p, NULL, 0);
	assert_non_null(m);
	const sym *x = m->order.items[0], *y = m->order.items[1], *z = m->order.items[2];
	assert_int_equal(x->order_form, ORD_REVERSE);
	assert_int_equal(y->order_form, ORD_NATURAL);
	for (int64_t k = 0; k < 100000; k += 997) {
		assert_int_equal(order_elem(x, k), 99999 - k);
		assert_int_equal(order_elem(y, k), k);
	}
	assert_int_equal(order_elem(x, 99999), 0);
	assert_int_equal(order_elem(z, 0), 0);
	/* no table behind them */
	assert_null(x->perm);
	assert_null(y->perm);
	assert_null(z->perm);
	/* the descriptor's table of row offsets, position by position */
	ir_module *ir = lower_model(&p->d, m, p->a);
	assert_non_null(ir);
	lower_descriptor_tables(ir);
	assert_int_equal(ir->order_offsets[0], 99999);
	assert_int_equal(ir->order_offsets[99999], 0);
	assert_int_equal(ir->order_offsets[100000], 100000);
	assert_int_equal(ir->order_offsets[199999], 199999);
	assert_int_equal(ir->order_offsets[200000], 200000);
	parsed_free(p);
}

static void test_check__descriptor_tables__filled_only_on_demand(void **state)
{
	/* two segments, 3 reals of conditional (a cat's probabilities) then 1
	 * per position; the second's order a permutation table */
	parsed *p = parse_with_stdlib("model m\ndata y : cat(3)[2]\ndata x : bin[3]\nparam a : real[3]\nparam b : real[3]\n"
	                              "const P : int[3] = [2, 0, 1]\norder y, x by P\ny[i] ~ categorical_logits(a)\nx[i] ~ bernoulli_logit(b[i])\n"
	                              "maximize loglik\n");
	ir_module *ir = lower_src(p);
	/* what chain check runs builds no table of the positions */
	assert_null(ir->order_offsets);
	assert_null(ir->cond_offset);
	lower_descriptor_tables(ir);
	const int64_t order[] = {0, 1, 4, 2, 3}, cond[] = {0, 3, 6, 7, 8, 9};
	for (int k = 0; k < 5; k++)
		assert_int_equal(ir->order_offsets[k], order[k]);
	for (int k = 0; k < 6; k++)
		assert_int_equal(ir->cond_offset[k], cond[k]);
	parsed_free(p);
}

static void test_check__unused_entries__found_over_a_long_position_loop(void **state)
{
	/* log p's position loop reads c[i + 1] and d[2 * i]: entries of c at
	 * 0 and n + 1 and the odd entries of d are never read */
	parsed *p = parse_with_stdlib("model m\ndim n = 100000\ndata x : bin[n]\nparam c : real[n + 2]\nparam d : real[2 * n]\n"
	                              "order x\nx[i] ~ bernoulli_logit(c[i + 1] + d[2 * i])\nmaximize loglik\n");
	ir_module *ir = lower_src(p);
	assert_int_equal(ir->param_unused[0], 2);
	assert_int_equal(ir->param_unused[1], 100000);
	assert_int_equal(ir->num_unused, 100002);
	assert_int_equal(param_entry_used(ir->param_used[0], 0), 0);
	assert_int_equal(param_entry_used(ir->param_used[0], 1), 1);
	assert_int_equal(param_entry_used(ir->param_used[0], 100000), 1);
	assert_int_equal(param_entry_used(ir->param_used[0], 100001), 0);
	assert_int_equal(param_entry_used(ir->param_used[1], 199998), 1);
	assert_int_equal(param_entry_used(ir->param_used[1], 199999), 0);
	parsed_free(p);
}

static void test_check__unused_entries__ranges_cut_inside_bytes_of_the_bitmap(void **state)
{
	/* c[i + 3] marks entries 3..15 of 20, c[2 * i + 1] with i < 13 the odd
	 * ones up to 25 of e's 30: ranges that start and end inside a byte of
	 * the bitmap (a bit per entry) */
	parsed *p = parse_with_stdlib("model m\ndim n = 13\ndata x : bin[n]\nparam c : real[20]\nparam e : real[30]\n"
	                              "order x\nx[i] ~ bernoulli_logit(c[i + 3] + e[2 * i + 1])\nmaximize loglik\n");
	ir_module *ir = lower_src(p);
	for (int64_t t = 0; t < 20; t++)
		assert_int_equal(param_entry_used(ir->param_used[0], t), t >= 3 && t < 16);
	for (int64_t t = 0; t < 30; t++)
		assert_int_equal(param_entry_used(ir->param_used[1], t), t % 2 == 1 && t < 26);
	assert_int_equal(ir->param_unused[0], 7);
	assert_int_equal(ir->param_unused[1], 17);
	assert_int_equal(ir->num_unused, 24);
	parsed_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check__nade__lays_out_theta_and_obs_in_declaration_order),
		cmocka_unit_test(test_check__inputs__come_before_data_in_the_row),
		cmocka_unit_test(test_check__override__replaces_dim_and_shapes),
		cmocka_unit_test(test_check__order_forms__build_permutations),
		cmocka_unit_test(test_check__random_order__is_a_seeded_permutation),
		cmocka_unit_test(test_check__causality__later_element_is_located),
		cmocka_unit_test(test_check__several_errors__all_reported),
		cmocka_unit_test(test_check__shapes__matmul_and_broadcast),
		cmocka_unit_test(test_check__penalty__split_from_loglik),
		cmocka_unit_test(test_check__user_family__shadows_stdlib),
		cmocka_unit_test(test_check__scope__finds_every_name_among_many),
		cmocka_unit_test(test_check__scope__latest_declaration_and_inner_scopes_shadow),
		cmocka_unit_test(test_check__many_params__each_use_finds_its_declaration),
		cmocka_unit_test(test_check__many_params__duplicates_and_unknown_names_still_reported),
		cmocka_unit_test(test_check__many_lets__a_let_sees_only_the_lets_above_it),
		cmocka_unit_test(test_check__natural_and_reverse_orders__computed_not_stored),
		cmocka_unit_test(test_check__descriptor_tables__filled_only_on_demand),
		cmocka_unit_test(test_check__unused_entries__found_over_a_long_position_loop),
		cmocka_unit_test(test_check__unused_entries__ranges_cut_inside_bytes_of_the_bitmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
