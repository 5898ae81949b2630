/* test_arena.c -- the arena's containers: ptrmap (pointer keys to pointer
 * values) through growth, replacement and absent keys. */
#include "test_helpers.h"

static void test_arena__ptrmap__maps_many_keys_through_growth(void **state)
{
	arena *a = arena_new();
	ptrmap m = {0};
	enum { N = 5000 };
	int *keys = arena_alloc(a, N * sizeof *keys);  /* adjacent addresses: the worst case of a weak hash */
	for (int k = 0; k < N; k++)
		ptrmap_put(a, &m, &keys[k], &keys[N - 1 - k]);
	assert_int_equal(m.len, N);
	for (int k = 0; k < N; k++)
		assert_ptr_equal(ptrmap_get(&m, &keys[k]), &keys[N - 1 - k]);
	int other;
	assert_null(ptrmap_get(&m, &other));
	assert_null(ptrmap_get(&m, NULL));
	arena_free(a);
}

static void test_arena__ptrmap__put_replaces_and_empty_map_finds_nothing(void **state)
{
	arena *a = arena_new();
	ptrmap m = {0};
	int x, y, z;
	assert_null(ptrmap_get(&m, &x));
	ptrmap_put(a, &m, &x, &y);
	ptrmap_put(a, &m, &x, &z);
	assert_int_equal(m.len, 1);
	assert_ptr_equal(ptrmap_get(&m, &x), &z);
	assert_null(ptrmap_get(&m, &y));
	arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena__ptrmap__maps_many_keys_through_growth),
		cmocka_unit_test(test_arena__ptrmap__put_replaces_and_empty_map_finds_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
