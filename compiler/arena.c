/* arena.c -- the one allocator of a compilation.
 *
 * Everything the compiler allocates for one model (source text, AST, types,
 * IR, diagnostics) comes from an arena and is freed at once with it: no
 * ownership to track, no frees scattered through the passes, and nothing
 * global, so two compilations can run side by side.
 *
 * An arena is a list of chunks.  Small requests are carved from the current
 * chunk; a request bigger than a quarter of a chunk gets a chunk of its own,
 * so a 16 MiB source file does not waste a 16 MiB tail.  Memory is zeroed and
 * 16-aligned.  Running out of memory is fatal (there is nothing sensible a
 * compiler can do half-way through a tree).
 */
#include "chainc.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_CHUNK (64u * 1024u)

typedef struct chunk {
	struct chunk *next;
	size_t size, used;      /* bytes of data[] */
	_Alignas(ARENA_ALIGN) unsigned char data[];
} chunk;

struct arena {
	chunk *head;            /* current chunk first */
};

/* Allocation failure: report and stop.  The compiler has no way to carry on
 * without memory, and hostile inputs are bounded (PARSE_MAX_FILE_SIZE) so
 * this only happens on a machine that is really out of memory. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fputs("chain: out of memory\n", stderr);
		abort();
	}
	return p;
}

arena *arena_new(void)
{
	arena *a = xmalloc(sizeof *a);
	a->head = NULL;
	return a;
}

void arena_free(arena *a)
{
	if (!a)
		return;
	for (chunk *c = a->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

/* Links a new chunk with room for `size` bytes.  A big chunk goes behind the
 * current one so the current one keeps serving small requests. */
static chunk *arena_chunk_new(arena *a, size_t size)
{
	if (size > SIZE_MAX - sizeof(chunk)) {
		fputs("chain: out of memory\n", stderr);
		abort();
	}
	chunk *c = xmalloc(sizeof(chunk) + size);
	c->size = size;
	c->used = 0;
	if (a->head && size > ARENA_CHUNK) {
		c->next = a->head->next;
		a->head->next = c;
	} else {
		c->next = a->head;
		a->head = c;
	}
	return c;
}

void *arena_alloc(arena *a, size_t size)
{
	if (size == 0)
		size = 1;
	if (size > SIZE_MAX - ARENA_ALIGN) {
		fputs("chain: out of memory\n", stderr);
		abort();
	}
	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	chunk *c = a->head;
	if (!c || c->size - c->used < size) {
		if (size > ARENA_CHUNK / 4)
			c = arena_chunk_new(a, size);
		else
			c = arena_chunk_new(a, ARENA_CHUNK);
	}
	void *p = c->data + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(arena *a, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	char *p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

/* Doubles the capacity when full; the old array stays in the arena (arenas
 * never free piecemeal, and vectors are short-lived or small). */
void ptrvec_push(arena *a, ptrvec *v, void *item)
{
	if (v->len == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		void **items = arena_alloc(a, cap * sizeof *items);
		if (v->len)
			memcpy(items, v->items, v->len * sizeof *items);
		v->items = items;
		v->cap = cap;
	}
	v->items[v->len++] = item;
}

/* Fibonacci hashing of the address: its low bits are alignment, the high
 * bits of the product depend on all of them. */
static size_t ptrmap_home(const ptrmap *m, const void *key)
{
	uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (m->cap - 1);
}

/* The slot of key: where it is, or the empty one where it would go (linear
 * probing in a table at most half full). */
static size_t ptrmap_slot(const ptrmap *m, const void *key)
{
	size_t i = ptrmap_home(m, key);
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

void ptrmap_put(arena *a, ptrmap *m, const void *key, void *val)
{
	if (2 * (m->len + 1) > m->cap) {
		/* double the table; the old one stays in the arena */
		ptrmap old = *m;
		m->cap = old.cap ? 2 * old.cap : 16;
		m->keys = arena_alloc(a, m->cap * sizeof *m->keys);
		m->vals = arena_alloc(a, m->cap * sizeof *m->vals);
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i]) {
				size_t j = ptrmap_slot(m, old.keys[i]);
				m->keys[j] = old.keys[i];
				m->vals[j] = old.vals[i];
			}
	}
	size_t i = ptrmap_slot(m, key);
	if (!m->keys[i]) {
		m->keys[i] = key;
		m->len++;
	}
	m->vals[i] = val;
}

void *ptrmap_get(const ptrmap *m, const void *key)
{
	if (!m->cap || !key)
		return NULL;
	return m->vals[ptrmap_slot(m, key)];
}

uint64_t str_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h ^ (h >> 32);
}
