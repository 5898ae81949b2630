/* test_check.c -- the checker: layout of theta and the observation row,
 * shapes, dims and overrides, orders and their permutations, causality,
 * and several errors in one run.  (tests/errors/ holds the golden
 * messages; these tests look at what the checker builds.) */
#include "test_helpers.h"

static model *check_src(parsed *p, dim_override *ov, size_t nov)
{
	return check_program(&p->d, &p->prog, ov, nov);
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
	assert_int_equal(x->perm[0], 3);
	assert_int_equal(x->perm[3], 0);
	assert_int_equal(y->perm[0], 1);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
