/* checkpoint.c -- parameters as safetensors files.
 *
 * Layout (https://github.com/huggingface/safetensors):
 *     u64 little-endian N | N bytes of JSON header | raw little-endian data
 * The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end)} (offsets relative to the data block) and "__metadata__" to
 * a string-to-string map.  We write one tensor per model param, in
 * declaration order, and read back with a small strict JSON parser that
 * understands exactly this grammar, so a hostile file (huge header length,
 * offsets out of range or overlapping, unknown dtype) is an error message,
 * never a crash or a huge allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain/checkpoint.h"

#include "atomic_file.h"
#include "checkpoint_fd.h"

#define CHECKPOINT_FORMAT "chain-1"
#define MAX_HEADER (100u * 1000 * 1000) /* the limit of the reference implementation */

/* ------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------ */

static size_t precision_size(chain_precision p) { return p == CHAIN_F32 ? 4 : 8; }

/* "[500, 784]" (or "[]" for a scalar) for messages. */
static void show_shape(const size_t *shape, size_t rank, char *out, size_t cap)
{
	size_t o = (size_t)snprintf(out, cap, "[");
	for (size_t i = 0; i < rank && o + 1 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, i ? ", %zu" : "%zu", shape[i]);
	if (o + 1 < cap)
		snprintf(out + o, cap - o, "]");
}

/* A string from the file as messages show it: printable ASCII as is, other
 * bytes as \xNN, cut at 60 bytes, so that a hostile name cannot break the
 * one-line message or flood it. */
static void show_string(const char *s, char *out, size_t cap)
{
	size_t o = 0, i = 0;
	for (; s[i] && i < 60 && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	if (s[i] && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Checks that the descriptor's params are usable as tensors: names set,
 * unique and not "__metadata__", ranks and sizes consistent, and every
 * param inside theta.  Both save and load rely on this. */
static int check_params(const chain_model *m, chain_error *err)
{
	const char *mname = m->name ? m->name : "?";
	if (m->precision != CHAIN_F64 && m->precision != CHAIN_F32)
		return chain_error_set(err, "model %s: unknown precision %d", mname, (int)m->precision);
	if (m->num_param_vars && !m->params)
		return chain_error_set(err, "model %s: descriptor lists %zu params but no table", mname, m->num_param_vars);
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		if (!v->name || !v->name[0] || strcmp(v->name, "__metadata__") == 0)
			return chain_error_set(err, "model %s: param %zu has no usable name", mname, i + 1);
		if (v->rank > CHAIN_MAX_RANK)
			return chain_error_set(err, "model %s: param %s has rank %u, more than %d",
			                       mname, v->name, v->rank, CHAIN_MAX_RANK);
		size_t n = 1;
		for (size_t k = 0; k < v->rank; k++) {
			if (v->shape[k] && n > SIZE_MAX / v->shape[k])
				return chain_error_set(err, "model %s: param %s is too large", mname, v->name);
			n *= v->shape[k];
		}
		if (n != v->size || v->offset > m->num_params || v->size > m->num_params - v->offset)
			return chain_error_set(err, "model %s: param %s (offset %zu, size %zu) does not fit its shape or theta (%zu reals)",
			                       mname, v->name, v->offset, v->size, m->num_params);
		if (v->size > SIZE_MAX / 8)
			return chain_error_set(err, "model %s: param %s is too large", mname, v->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->params[j].name, v->name) == 0)
				return chain_error_set(err, "model %s: two params are named %s", mname, v->name);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/* A growable string for the JSON header. */
typedef struct strbuf {
	char *p;
	size_t n, cap;
	int oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->n <= n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->n <= n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = 1;
				return;
			}
			cap *= 2;
		}
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		b->oom = 1;
	else
		sb_add(b, tmp, (size_t)n);
}

/* s as a JSON string literal: quotes, backslashes and control characters
 * escaped, other bytes (UTF-8) as they are. */
static void sb_json_string(strbuf *b, const char *s)
{
	sb_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			sb_add(b, esc, 2);
		} else if (c < 0x20) {
			sb_printf(b, "\\u%04x", c);
		} else {
			sb_add(b, (const char *)&c, 1);
		}
	}
	sb_add(b, "\"", 1);
}

/* Builds the JSON header: metadata first, then the params in declaration
 * order with consecutive data offsets; padded with spaces to a multiple of
 * 8 bytes so that the data block is aligned, as the reference writer does. */
static int build_header(const chain_model *m, const chain_metadata *extra, size_t n_extra,
                        strbuf *b)
{
	size_t esize = precision_size(m->precision);
	sb_puts(b, "{\"__metadata__\":{\"format\":\"" CHECKPOINT_FORMAT "\",\"model\":");
	sb_json_string(b, m->name ? m->name : "");
	for (size_t i = 0; i < n_extra; i++) {
		sb_puts(b, ",");
		sb_json_string(b, extra[i].key);
		sb_puts(b, ":");
		sb_json_string(b, extra[i].value);
	}
	sb_puts(b, "}");
	size_t off = 0;
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		sb_puts(b, ",");
		sb_json_string(b, v->name);
		sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", m->precision == CHAIN_F32 ? "F32" : "F64");
		for (size_t k = 0; k < v->rank; k++)
			sb_printf(b, k ? ",%zu" : "%zu", v->shape[k]);
		sb_printf(b, "],\"data_offsets\":[%zu,%zu]}", off, off + v->size * esize);
		off += v->size * esize;
	}
	sb_puts(b, "}");
	while (b->n % 8 != 0)
		sb_puts(b, " ");
	return b->oom ? -1 : 0;
}

/* Writes one param's reals as little-endian bytes, whatever the host order. */
static int write_tensor(FILE *f, const void *theta, chain_precision prec, size_t offset, size_t size)
{
	size_t esize = precision_size(prec);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* safetensors is little-endian, as memory is here: the bytes as they are
	 * (byte by byte, FVSBN's 2.5 MB took 3.7 ms of every epoch's end) */
	const unsigned char *p = (const unsigned char *)theta + offset * esize;
	return fwrite(p, 1, size * esize, f) == size * esize ? 0 : -1;
#else
	unsigned char buf[8192];
	size_t o = 0;
	for (size_t i = 0; i < size; i++) {
		uint64_t u = 0;
		if (prec == CHAIN_F32) {
			uint32_t w;
			memcpy(&w, (const float *)theta + offset + i, 4);
			u = w;
		} else {
			memcpy(&u, (const double *)theta + offset + i, 8);
		}
		for (size_t k = 0; k < esize; k++)
			buf[o++] = (unsigned char)(u >> (8 * k));
		if (o == sizeof buf) {
			if (fwrite(buf, 1, o, f) != o)
				return -1;
			o = 0;
		}
	}
	return fwrite(buf, 1, o, f) == o ? 0 : -1;
#endif
}

/* Copies the data block of the checkpoint open as src (one this file wrote
 * for the same model: its tensors lie in declaration order, back to back)
 * to f, a buffer at a time.  The file's size is checked against the model
 * first, so a file changed under the descriptor is an error, not garbage. */
static int copy_tensors(FILE *f, int src, const chain_model *m, const char *path, chain_error *err)
{
	unsigned char buf[65536];
	uint64_t hlen = 0, data_len = 0;
	errno = 0;
	for (size_t i = 0; i < m->num_param_vars; i++)
		data_len += (uint64_t)m->params[i].size * precision_size(m->precision);
	struct stat st;
	if (pread(src, buf, 8, 0) != 8 || fstat(src, &st) != 0)
		return chain_error_set(err, "%s: cannot read back the previous checkpoint: %s", path,
		                       errno ? strerror(errno) : "truncated");
	for (int k = 8; k-- > 0;)
		hlen = hlen << 8 | buf[k];
	if (hlen > MAX_HEADER || (uint64_t)st.st_size != 8 + hlen + data_len)
		return chain_error_set(err, "%s: the previous checkpoint has changed size (%llu bytes): cannot copy its params",
		                       path, (unsigned long long)st.st_size);
	for (uint64_t off = 0; off < data_len;) {
		size_t want = data_len - off < sizeof buf ? (size_t)(data_len - off) : sizeof buf;
		ssize_t got = pread(src, buf, want, (off_t)(8 + hlen + off));
		if (got <= 0)
			return chain_error_set(err, "%s: cannot read back the previous checkpoint: %s", path,
			                       got < 0 ? strerror(errno) : "truncated");
		if (fwrite(buf, 1, (size_t)got, f) != (size_t)got)
			return chain_error_set(err, "%s: cannot write: %s", path, strerror(errno));
		off += (uint64_t)got;
	}
	return 0;
}

/* The writer behind the save functions: the tensors come from theta, or
 * (theta NULL) from the checkpoint open as src.  With out, the written temp
 * file is handed over uncommitted (*out); else it is committed here. */
static int save(const char *path, const chain_model *m, const void *theta, int src,
                const chain_metadata *extra, size_t n_extra, atomic_file *out, chain_error *err)
{
	if (!path)
		return chain_error_set(err, "chain_checkpoint_save: no file name given");
	if (!m)
		return chain_error_set(err, "%s: no model given", path);
	if (!theta && src < 0 && m->num_params)
		return chain_error_set(err, "%s: no parameters given", path);
	if (check_params(m, err) != 0)
		return -1;
	if (n_extra && !extra)
		return chain_error_set(err, "%s: %zu metadata entries announced but none given", path, n_extra);
	for (size_t i = 0; i < n_extra; i++) {
		if (!extra[i].key || !extra[i].value)
			return chain_error_set(err, "%s: metadata entry %zu has no key or no value", path, i + 1);
		if (strcmp(extra[i].key, "model") == 0 || strcmp(extra[i].key, "format") == 0)
			return chain_error_set(err, "%s: metadata key '%s' is reserved (written by chain itself)",
			                       path, extra[i].key);
		for (size_t j = 0; j < i; j++)
			if (strcmp(extra[j].key, extra[i].key) == 0)
				return chain_error_set(err, "%s: metadata key '%s' given twice", path, extra[i].key);
	}

	strbuf hdr = { 0 };
	if (build_header(m, extra, n_extra, &hdr) != 0) {
		free(hdr.p);
		return chain_error_set(err, "%s: out of memory building the header", path);
	}
	atomic_file af;
	if (chain__atomic_open(&af, path, err) != 0) {
		free(hdr.p);
		return -1;
	}
	unsigned char len[8];
	for (int k = 0; k < 8; k++)
		len[k] = (unsigned char)((uint64_t)hdr.n >> (8 * k));
	int ok = fwrite(len, 1, 8, af.f) == 8 && fwrite(hdr.p, 1, hdr.n, af.f) == hdr.n;
	free(hdr.p);
	if (ok && !theta && src >= 0) {
		if (copy_tensors(af.f, src, m, path, err) != 0) {
			chain__atomic_abort(&af);
			return -1;
		}
	}
	for (size_t i = 0; ok && theta && i < m->num_param_vars; i++)
		ok = write_tensor(af.f, theta, m->precision, m->params[i].offset, m->params[i].size) == 0;
	if (!ok) {
		int e = errno;
		chain__atomic_abort(&af);
		return chain_error_set(err, "%s: cannot write: %s", path, strerror(e));
	}
	if (out) {
		*out = af;
		return 0;
	}
	return chain__atomic_commit(&af, err);
}

int chain_checkpoint_save(const char *path, const chain_model *m, const void *theta,
                          const chain_metadata *extra, size_t n_extra, chain_error *err)
{
	return save(path, m, theta, -1, extra, n_extra, NULL, err);
}

int chain__checkpoint_write(const char *path, const chain_model *m, const void *theta, int src,
                            const chain_metadata *extra, size_t n_extra, atomic_file *af, chain_error *err)
{
	return save(path, m, theta, theta ? -1 : src, extra, n_extra, af, err);
}

/* ------------------------------------------------------------------------
 * Reading: a strict JSON parser for the safetensors header
 * ------------------------------------------------------------------------ */

/* One tensor as the header describes it. */
typedef struct st_tensor {
	char *name;                       /* decoded, malloc'd */
	char shown[80];                   /* name escaped and cut, for messages */
	size_t at;                        /* file offset of its key, for messages */
	chain_precision dtype;
	size_t rank;                      /* at most CHAIN_MAX_RANK */
	size_t shape[CHAIN_MAX_RANK];
	uint64_t begin, end;              /* data_offsets, relative to the data */
} st_tensor;

/* The header being parsed, with everything found so far. */
typedef struct st_header {
	const char *path;
	const unsigned char *p; /* the header bytes */
	size_t pos, n;
	chain_error *err;
	st_tensor *t;
	size_t nt, cap;
	int have_meta;
	char *format;      /* __metadata__ values we look at, malloc'd or NULL */
	const char *const *want_keys; /* the keys the caller asked for, */
	char **want_values;           /* their values (malloc'd, NULL if absent) */
	size_t nwant;
	char **meta_keys;  /* every key of __metadata__ so far, for repeats */
	size_t nmeta;
} st_header;

/* Header position -> file offset (the header follows the 8-byte length). */
static size_t at(const st_header *h, size_t pos) { return 8 + pos; }

/* "expected X, found Y" at the current position. */
static int json_expected(st_header *h, const char *what)
{
	if (h->pos >= h->n)
		return chain_error_set(h->err, "%s: byte %zu: header: expected %s, found the end of the header",
		                       h->path, at(h, h->pos), what);
	unsigned char c = h->p[h->pos];
	if (c >= 0x20 && c < 0x7f)
		return chain_error_set(h->err, "%s: byte %zu: header: expected %s, found '%c'",
		                       h->path, at(h, h->pos), what, c);
	return chain_error_set(h->err, "%s: byte %zu: header: expected %s, found byte 0x%02x",
	                       h->path, at(h, h->pos), what, c);
}

static void json_ws(st_header *h)
{
	while (h->pos < h->n && (h->p[h->pos] == ' ' || h->p[h->pos] == '\t' ||
	                         h->p[h->pos] == '\n' || h->p[h->pos] == '\r'))
		h->pos++;
}

/* Consumes character c (after blanks) or reports what was expected. */
static int json_char(st_header *h, char c, const char *what)
{
	json_ws(h);
	if (h->pos < h->n && h->p[h->pos] == (unsigned char)c) {
		h->pos++;
		return 0;
	}
	return json_expected(h, what);
}

/* Whether the next non-blank character is c (not consumed). */
static int json_peek(st_header *h, char c)
{
	json_ws(h);
	return h->pos < h->n && h->p[h->pos] == (unsigned char)c;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Four hex digits of a \u escape. */
static int json_hex4(st_header *h, unsigned *out)
{
	if (h->n - h->pos < 4)
		return json_expected(h, "four hex digits after \\u");
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_value(h->p[h->pos + (size_t)i]);
		if (d < 0) {
			h->pos += (size_t)i;
			return json_expected(h, "a hex digit in a \\u escape");
		}
		v = v * 16 + (unsigned)d;
	}
	h->pos += 4;
	*out = v;
	return 0;
}

/* A JSON string, decoded into a malloc'd NUL-terminated UTF-8 string.
 * Escapes \" \\ \/ \b \f \n \r \t \uXXXX (with surrogate pairs); raw control
 * characters and \u0000 are errors. */
static int json_string(st_header *h, char **out, const char *what)
{
	json_ws(h);
	if (h->pos >= h->n || h->p[h->pos] != '"')
		return json_expected(h, what);
	size_t start = ++h->pos;
	/* the decoded string is never longer than the encoded one */
	size_t len = 0;
	while (start + len < h->n && h->p[start + len] != '"')
		len += h->p[start + len] == '\\' ? 2 : 1;
	char *s = malloc(len + 1);
	if (!s)
		return chain_error_set(h->err, "%s: out of memory", h->path);
	size_t o = 0;
	for (;;) {
		if (h->pos >= h->n) {
			free(s);
			return json_expected(h, "a closing '\"'");
		}
		unsigned char c = h->p[h->pos];
		if (c == '"') {
			h->pos++;
			break;
		}
		if (c < 0x20) {
			free(s);
			return json_expected(h, "a string character (control characters must be escaped)");
		}
		if (c != '\\') {
			s[o++] = (char)c;
			h->pos++;
			continue;
		}
		h->pos++;
		if (h->pos >= h->n) {
			free(s);
			return json_expected(h, "an escape character after '\\'");
		}
		c = h->p[h->pos++];
		switch (c) {
		case '"': s[o++] = '"'; break;
		case '\\': s[o++] = '\\'; break;
		case '/': s[o++] = '/'; break;
		case 'b': s[o++] = '\b'; break;
		case 'f': s[o++] = '\f'; break;
		case 'n': s[o++] = '\n'; break;
		case 'r': s[o++] = '\r'; break;
		case 't': s[o++] = '\t'; break;
		case 'u': {
			unsigned cp;
			if (json_hex4(h, &cp) != 0) {
				free(s);
				return -1;
			}
			if (cp >= 0xD800 && cp < 0xDC00) { /* high surrogate: a low one must follow */
				unsigned lo;
				if (h->n - h->pos < 2 || h->p[h->pos] != '\\' || h->p[h->pos + 1] != 'u') {
					free(s);
					return json_expected(h, "a \\u low surrogate after a high surrogate");
				}
				h->pos += 2;
				if (json_hex4(h, &lo) != 0) {
					free(s);
					return -1;
				}
				if (lo < 0xDC00 || lo >= 0xE000) {
					h->pos -= 6;
					free(s);
					return json_expected(h, "a \\u low surrogate (DC00..DFFF)");
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp < 0xE000) {
				h->pos -= 6;
				free(s);
				return json_expected(h, "a character, not a lone low surrogate");
			} else if (cp == 0) {
				h->pos -= 6;
				free(s);
				return json_expected(h, "a character other than \\u0000");
			}
			/* UTF-8: at most 4 bytes, never more than the 6 or 12 consumed */
			if (cp < 0x80) {
				s[o++] = (char)cp;
			} else if (cp < 0x800) {
				s[o++] = (char)(0xC0 | cp >> 6);
				s[o++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				s[o++] = (char)(0xE0 | cp >> 12);
				s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
				s[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				s[o++] = (char)(0xF0 | cp >> 18);
				s[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
				s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
				s[o++] = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			h->pos -= 2;
			free(s);
			return json_expected(h, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
		}
	}
	s[o] = '\0';
	*out = s;
	return 0;
}

/* A non-negative JSON integer without leading zeros that fits 64 bits. */
static int json_uint(st_header *h, uint64_t *out, const char *what)
{
	json_ws(h);
	size_t start = h->pos;
	if (h->pos < h->n && h->p[h->pos] == '-')
		return json_expected(h, "a non-negative integer");
	if (h->pos >= h->n || h->p[h->pos] < '0' || h->p[h->pos] > '9')
		return json_expected(h, what);
	uint64_t v = 0;
	while (h->pos < h->n && h->p[h->pos] >= '0' && h->p[h->pos] <= '9') {
		unsigned d = (unsigned)(h->p[h->pos] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			h->pos = start;
			return json_expected(h, "an integer that fits in 64 bits");
		}
		v = v * 10 + d;
		h->pos++;
	}
	if (h->pos - start > 1 && h->p[start] == '0') {
		h->pos = start;
		return json_expected(h, "an integer without leading zeros");
	}
	if (h->pos < h->n && (h->p[h->pos] == '.' || h->p[h->pos] == 'e' || h->p[h->pos] == 'E'))
		return json_expected(h, "an integer (no fraction or exponent)");
	*out = v;
	return 0;
}

/* "__metadata__": an object of string values; keeps "format" and the
 * value the caller asked for. */
static int json_metadata(st_header *h)
{
	if (json_char(h, '{', "'{' starting __metadata__") != 0)
		return -1;
	if (json_peek(h, '}')) {
		h->pos++;
		return 0;
	}
	for (;;) {
		char *key, *value;
		json_ws(h);
		size_t key_at = h->pos;
		if (json_string(h, &key, "a metadata key (a string)") != 0)
			return -1;
		/* a repeated key would make its value depend on the reader */
		for (size_t i = 0; i < h->nmeta; i++)
			if (strcmp(h->meta_keys[i], key) == 0) {
				char shown[80];
				show_string(key, shown, sizeof shown);
				free(key);
				return chain_error_set(h->err, "%s: byte %zu: header: metadata key \"%s\" appears twice",
				                       h->path, at(h, key_at), shown);
			}
		char **mk = realloc(h->meta_keys, (h->nmeta + 1) * sizeof *mk);
		if (!mk) {
			free(key);
			return chain_error_set(h->err, "%s: out of memory", h->path);
		}
		h->meta_keys = mk;
		h->meta_keys[h->nmeta++] = key;
		if (json_char(h, ':', "':' after the metadata key") != 0 ||
		    json_string(h, &value, "a metadata value (a string)") != 0)
			return -1;
		for (size_t i = 0; i < h->nwant; i++)
			if (strcmp(key, h->want_keys[i]) == 0 && !h->want_values[i]) {
				h->want_values[i] = strdup(value);
				if (!h->want_values[i]) {
					free(value);
					return chain_error_set(h->err, "%s: out of memory", h->path);
				}
			}
		if (strcmp(key, "format") == 0) {
			h->format = value;
			value = NULL;
		}
		free(value);
		if (json_peek(h, ',')) {
			h->pos++;
			continue;
		}
		return json_char(h, '}', "',' or '}' in __metadata__");
	}
}

/* "shape": [d0, d1, ...], at most CHAIN_MAX_RANK dimensions. */
static int json_shape(st_header *h, st_tensor *t)
{
	if (json_char(h, '[', "'[' starting the shape") != 0)
		return -1;
	t->rank = 0;
	if (json_peek(h, ']')) {
		h->pos++;
		return 0;
	}
	for (;;) {
		uint64_t d;
		json_ws(h);
		size_t d_at = h->pos;
		if (json_uint(h, &d, "a dimension (a non-negative integer)") != 0)
			return -1;
		if (d > SIZE_MAX)
			return json_expected(h, "a dimension that fits in size_t");
		if (t->rank == CHAIN_MAX_RANK)
			return chain_error_set(h->err, "%s: byte %zu: tensor '%s': expected at most %d dimensions, found more",
			                       h->path, at(h, d_at), t->shown, CHAIN_MAX_RANK);
		t->shape[t->rank++] = (size_t)d;
		if (json_peek(h, ',')) {
			h->pos++;
			continue;
		}
		return json_char(h, ']', "',' or ']' in the shape");
	}
}

/* A tensor's description: exactly the keys dtype, shape and data_offsets. */
static int json_tensor(st_header *h, st_tensor *t)
{
	int have_dtype = 0, have_shape = 0, have_offsets = 0;
	if (json_char(h, '{', "'{' starting the tensor's description") != 0)
		return -1;
	size_t obj = h->pos - 1;
	if (!json_peek(h, '}')) {
		for (;;) {
			char *key;
			size_t key_at = h->pos;
			if (json_string(h, &key, "a key (\"dtype\", \"shape\" or \"data_offsets\")") != 0)
				return -1;
			if (json_char(h, ':', "':' after the key") != 0) {
				free(key);
				return -1;
			}
			int *seen = strcmp(key, "dtype") == 0 ? &have_dtype
			          : strcmp(key, "shape") == 0 ? &have_shape
			          : strcmp(key, "data_offsets") == 0 ? &have_offsets : NULL;
			if (!seen || *seen) {
				char shown[80];
				show_string(key, shown, sizeof shown);
				int rc = chain_error_set(h->err, "%s: byte %zu: header: tensor '%s': %s key \"%s\" (expected dtype, shape and data_offsets once each)",
				                         h->path, at(h, key_at), t->shown, seen ? "repeated" : "unexpected", shown);
				free(key);
				return rc;
			}
			*seen = 1;
			if (seen == &have_dtype) {
				char *dt;
				json_ws(h);
				size_t dt_at = h->pos;
				if (json_string(h, &dt, "a dtype string") != 0) {
					free(key);
					return -1;
				}
				if (strcmp(dt, "F64") == 0) {
					t->dtype = CHAIN_F64;
				} else if (strcmp(dt, "F32") == 0) {
					t->dtype = CHAIN_F32;
				} else {
					char shown[80];
					show_string(dt, shown, sizeof shown);
					int rc = chain_error_set(h->err, "%s: byte %zu: tensor '%s': expected dtype \"F64\" or \"F32\", found \"%s\"",
					                         h->path, at(h, dt_at), t->shown, shown);
					free(dt);
					free(key);
					return rc;
				}
				free(dt);
			} else if (seen == &have_shape) {
				if (json_shape(h, t) != 0) {
					free(key);
					return -1;
				}
			} else {
				if (json_char(h, '[', "'[' starting data_offsets") != 0 ||
				    json_uint(h, &t->begin, "the begin offset (a non-negative integer)") != 0 ||
				    json_char(h, ',', "',' between the two data offsets") != 0 ||
				    json_uint(h, &t->end, "the end offset (a non-negative integer)") != 0 ||
				    json_char(h, ']', "']' after the two data offsets") != 0) {
					free(key);
					return -1;
				}
			}
			free(key);
			if (json_peek(h, ',')) {
				h->pos++;
				continue;
			}
			break;
		}
	}
	if (json_char(h, '}', "',' or '}' in the tensor's description") != 0)
		return -1;
	if (!have_dtype || !have_shape || !have_offsets)
		return chain_error_set(h->err, "%s: byte %zu: header: tensor '%s' has no \"%s\"",
		                       h->path, at(h, obj), t->shown,
		                       !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
	return 0;
}

/* The whole header: one object of tensors and at most one __metadata__,
 * followed only by blanks (the padding). */
static int json_header(st_header *h)
{
	if (json_char(h, '{', "'{' starting the header") != 0)
		return -1;
	if (json_peek(h, '}')) {
		h->pos++;
	} else {
		for (;;) {
			char *name;
			json_ws(h);
			size_t name_at = h->pos;
			if (json_string(h, &name, "a tensor name (a string)") != 0)
				return -1;
			if (json_char(h, ':', "':' after the name") != 0) {
				free(name);
				return -1;
			}
			if (strcmp(name, "__metadata__") == 0) {
				free(name);
				if (h->have_meta)
					return chain_error_set(h->err, "%s: byte %zu: header: \"__metadata__\" appears twice",
					                       h->path, at(h, name_at));
				h->have_meta = 1;
				if (json_metadata(h) != 0)
					return -1;
			} else {
				for (size_t i = 0; i < h->nt; i++)
					if (strcmp(h->t[i].name, name) == 0) {
						int rc = chain_error_set(h->err, "%s: byte %zu: header: tensor '%s' appears twice (first at byte %zu)",
						                         h->path, at(h, name_at), h->t[i].shown, h->t[i].at);
						free(name);
						return rc;
					}
				if (h->nt == h->cap) {
					size_t cap = h->cap ? h->cap * 2 : 16;
					st_tensor *t = realloc(h->t, cap * sizeof *t);
					if (!t) {
						free(name);
						return chain_error_set(h->err, "%s: out of memory", h->path);
					}
					h->t = t;
					h->cap = cap;
				}
				st_tensor *t = &h->t[h->nt++];
				memset(t, 0, sizeof *t);
				t->name = name;
				show_string(name, t->shown, sizeof t->shown);
				t->at = at(h, name_at);
				if (json_tensor(h, t) != 0)
					return -1;
			}
			if (json_peek(h, ',')) {
				h->pos++;
				continue;
			}
			if (json_char(h, '}', "',' or '}' after a tensor") != 0)
				return -1;
			break;
		}
	}
	json_ws(h);
	if (h->pos != h->n)
		return json_expected(h, "only blanks after the header's closing '}'");
	return 0;
}

static void st_header_free(st_header *h)
{
	for (size_t i = 0; i < h->nt; i++)
		free(h->t[i].name);
	free(h->t);
	free(h->format);
	for (size_t i = 0; i < h->nmeta; i++)
		free(h->meta_keys[i]);
	free(h->meta_keys);
}

/* ------------------------------------------------------------------------
 * Reading: validation against the file and the model, then the data
 * ------------------------------------------------------------------------ */

static int by_begin(const void *a, const void *b)
{
	const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Each tensor's byte range must match its shape and dtype and lie inside
 * the data block, and the ranges must tile the block: no overlap, no gap,
 * nothing after the last (as the reference implementation requires). */
static int check_offsets(st_header *h, uint64_t data_len)
{
	for (size_t i = 0; i < h->nt; i++) {
		st_tensor *t = &h->t[i];
		uint64_t bytes = t->dtype == CHAIN_F32 ? 4 : 8;
		for (size_t k = 0; k < t->rank; k++) {
			if (t->shape[k] && bytes > UINT64_MAX / t->shape[k])
				return chain_error_set(h->err, "%s: byte %zu: tensor '%s': its shape overflows 64 bits",
				                       h->path, t->at, t->shown);
			bytes *= t->shape[k];
		}
		if (t->begin > t->end || t->end > data_len)
			return chain_error_set(h->err, "%s: byte %zu: tensor '%s': data_offsets [%llu, %llu] out of range: the data block has %llu bytes",
			                       h->path, t->at, t->shown, (unsigned long long)t->begin,
			                       (unsigned long long)t->end, (unsigned long long)data_len);
		if (t->end - t->begin != bytes)
			return chain_error_set(h->err, "%s: byte %zu: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, expected %llu for its dtype and shape",
			                       h->path, t->at, t->shown, (unsigned long long)t->begin,
			                       (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
			                       (unsigned long long)bytes);
	}
	st_tensor **sorted = malloc((h->nt ? h->nt : 1) * sizeof *sorted);
	if (!sorted)
		return chain_error_set(h->err, "%s: out of memory", h->path);
	size_t ns = h->nt;
	for (size_t i = 0; i < h->nt; i++)
		sorted[i] = &h->t[i];
	qsort(sorted, ns, sizeof *sorted, by_begin);
	uint64_t covered = 0;
	const st_tensor *prev = NULL;
	for (size_t i = 0; i < ns; i++) {
		const st_tensor *t = sorted[i];
		if (t->begin < covered) {
			int rc = chain_error_set(h->err, "%s: byte %zu: tensor '%s' (data [%llu, %llu)) overlaps tensor '%s' (data [%llu, %llu))",
			                         h->path, t->at, t->shown, (unsigned long long)t->begin,
			                         (unsigned long long)t->end, prev->shown,
			                         (unsigned long long)prev->begin, (unsigned long long)prev->end);
			free(sorted);
			return rc;
		}
		if (t->begin > covered) {
			int rc = chain_error_set(h->err, "%s: byte %zu: tensor '%s' starts at data byte %llu, expected %llu: bytes [%llu, %llu) of the data belong to no tensor",
			                         h->path, t->at, t->shown, (unsigned long long)t->begin,
			                         (unsigned long long)covered, (unsigned long long)covered,
			                         (unsigned long long)t->begin);
			free(sorted);
			return rc;
		}
		if (t->end > t->begin) {
			covered = t->end;
			prev = t;
		}
	}
	free(sorted);
	if (covered != data_len)
		return chain_error_set(h->err, "%s: byte %llu: expected the end of the file after the last tensor's data, found %llu more bytes",
		                       h->path, (unsigned long long)(8 + h->n + covered),
		                       (unsigned long long)(data_len - covered));
	return 0;
}

/* Every model param must be in the file with its exact shape, and the file
 * must hold nothing else. */
static int check_against_model(st_header *h, const chain_model *m)
{
	const char *mname = m->name ? m->name : "?";
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		char want[160], got[160];
		show_shape(v->shape, v->rank, want, sizeof want);
		const st_tensor *t = NULL;
		for (size_t j = 0; j < h->nt && !t; j++)
			if (strcmp(h->t[j].name, v->name) == 0)
				t = &h->t[j];
		if (!t)
			return chain_error_set(h->err, "%s: missing tensor '%s' (model %s has param %s: real%s)",
			                       h->path, v->name, mname, v->name, want);
		int same = t->rank == v->rank;
		for (size_t k = 0; same && k < v->rank; k++)
			same = t->shape[k] == v->shape[k];
		if (!same) {
			show_shape(t->shape, t->rank, got, sizeof got);
			return chain_error_set(h->err, "%s: byte %zu: tensor '%s' has shape %s where model %s has %s",
			                       h->path, t->at, t->shown, got, mname, want);
		}
	}
	for (size_t j = 0; j < h->nt; j++) {
		int known = 0;
		for (size_t i = 0; i < m->num_param_vars && !known; i++)
			known = strcmp(h->t[j].name, m->params[i].name) == 0;
		if (!known)
			return chain_error_set(h->err, "%s: byte %zu: unexpected tensor '%s': model %s has no param of that name",
			                       h->path, h->t[j].at, h->t[j].shown, mname);
	}
	return 0;
}

/* Reads n bytes at the current position of f, or says what is missing. */
static int read_exact(FILE *f, void *buf, size_t n, const char *path, size_t off, chain_error *err)
{
	size_t got = fread(buf, 1, n, f);
	if (got == n)
		return 0;
	if (ferror(f))
		return chain_error_set(err, "%s: byte %zu: read error: %s", path, off + got, strerror(errno));
	return chain_error_set(err, "%s: byte %zu: truncated file: expected %zu more bytes", path, off + got, n - got);
}

/* Element e of a tensor, row-major, as "W[2, 3]" for messages. */
static void show_index(const chain_var *v, size_t e, char *out, size_t cap)
{
	size_t idx[CHAIN_MAX_RANK] = { 0 };
	for (size_t k = v->rank; k-- > 0;) {
		idx[k] = v->shape[k] ? e % v->shape[k] : 0;
		e = v->shape[k] ? e / v->shape[k] : 0;
	}
	size_t o = (size_t)snprintf(out, cap, "%s", v->name);
	for (size_t k = 0; k < v->rank && o + 1 < cap; k++)
		o += (size_t)snprintf(out + o, cap - o, "%s%zu%s", k ? ", " : "[", idx[k], k + 1 == v->rank ? "]" : "");
}

/* Converts the data block into a copy of theta (so a bad value leaves the
 * caller's theta untouched), checking that every value is finite in the
 * model's precision. */
static int convert_data(st_header *h, const chain_model *m, const unsigned char *data,
                        void *staged)
{
	size_t data_off = 8 + h->n;
	for (size_t i = 0; i < m->num_param_vars; i++) {
		const chain_var *v = &m->params[i];
		const st_tensor *t = NULL;
		for (size_t j = 0; j < h->nt && !t; j++)
			if (strcmp(h->t[j].name, v->name) == 0)
				t = &h->t[j];
		size_t esize = t->dtype == CHAIN_F32 ? 4 : 8;
		const unsigned char *p = data + t->begin;
		for (size_t e = 0; e < v->size; e++, p += esize) {
			uint64_t u = 0;
			for (size_t k = esize; k-- > 0;)
				u = u << 8 | p[k];
			double x;
			if (esize == 4) {
				uint32_t w = (uint32_t)u;
				float f;
				memcpy(&f, &w, 4);
				x = f;
			} else {
				memcpy(&x, &u, 8);
			}
			int fits = isfinite(x) && (m->precision == CHAIN_F64 || fabs(x) <= FLT_MAX);
			if (!fits) {
				char idx[160], num[32];
				show_index(v, e, idx, sizeof idx);
				if (isnan(x))
					snprintf(num, sizeof num, "NaN");
				else if (isinf(x))
					snprintf(num, sizeof num, x > 0 ? "Inf" : "-Inf");
				else
					snprintf(num, sizeof num, "%.17g", x);
				return chain_error_set(h->err, "%s: byte %llu: %s is %s: expected a finite number%s",
				                       h->path, (unsigned long long)(data_off + t->begin + e * esize),
				                       idx, num, isfinite(x) ? " that fits a float (the model is f32)" : "");
			}
			if (m->precision == CHAIN_F32)
				((float *)staged)[v->offset + e] = (float)x;
			else
				((double *)staged)[v->offset + e] = x;
		}
	}
	return 0;
}

static int load_file(FILE *f, const char *path, const chain_model *m, void *theta,
                     const char *meta_key, char *meta_value, size_t meta_cap, chain_error *err);

int chain_checkpoint_load(const char *path, const chain_model *m, void *theta,
                          const char *meta_key, char *meta_value, size_t meta_cap,
                          chain_error *err)
{
	if (!path)
		return chain_error_set(err, "chain_checkpoint_load: no file name given");
	if (!m)
		return chain_error_set(err, "%s: no model given", path);
	if (!theta && m->num_params)
		return chain_error_set(err, "%s: nowhere to load the parameters", path);
	if (check_params(m, err) != 0)
		return -1;
	FILE *f = fopen(path, "rb");
	if (!f)
		return chain_error_set(err, "%s: cannot open: %s", path, strerror(errno));
	return load_file(f, path, m, theta, meta_key, meta_value, meta_cap, err);
}

int chain__checkpoint_load_fd(int fd, const char *path, const chain_model *m, void *theta,
                              chain_error *err)
{
	if (check_params(m, err) != 0)
		return -1;
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	FILE *f = d >= 0 ? fdopen(d, "rb") : NULL;
	if (!f || fseek(f, 0, SEEK_SET) != 0) {
		int e = errno;
		if (f)
			fclose(f);
		else if (d >= 0)
			close(d);
		return chain_error_set(err, "%s: cannot read back the checkpoint: %s", path, strerror(e));
	}
	return load_file(f, path, m, theta, NULL, NULL, 0, err);
}

/* Reads and parses the header of an open safetensors file: the 8-byte
 * length, the JSON (h->want_keys' values collected on the way), the
 * format.  h->p is malloc'd (freed by the caller, with st_header_free);
 * *file_size and *hlen for what follows. */
static int read_header(FILE *f, const char *path, st_header *h, uint64_t *file_size, uint64_t *hlen,
                       chain_error *err)
{
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
		return chain_error_set(err, "%s: not a regular file", path);
	*file_size = (uint64_t)st.st_size;
	unsigned char len8[8];
	if (*file_size < 8)
		return chain_error_set(err, "%s: byte 0: truncated file: expected an 8-byte header length, found %llu bytes",
		                       path, (unsigned long long)*file_size);
	if (read_exact(f, len8, 8, path, 0, err) != 0)
		return -1;
	uint64_t n = 0;
	for (int k = 8; k-- > 0;)
		n = n << 8 | len8[k];
	if (n > *file_size - 8 || n > MAX_HEADER || n < 2)
		return chain_error_set(err, "%s: byte 0: header length %llu is impossible: the file has %llu bytes after it (and headers are 2 to %u bytes)",
		                       path, (unsigned long long)n, (unsigned long long)(*file_size - 8), MAX_HEADER);
	*hlen = n;
	h->path = path;
	h->err = err;
	h->n = (size_t)n;
	unsigned char *hbuf = malloc(h->n);
	if (!hbuf)
		return chain_error_set(err, "%s: out of memory for a %zu-byte header", path, h->n);
	h->p = hbuf;
	if (read_exact(f, hbuf, h->n, path, 8, err) != 0 || json_header(h) != 0)
		return -1;
	if (h->format && strcmp(h->format, CHECKPOINT_FORMAT) != 0) {
		char shown[80];
		show_string(h->format, shown, sizeof shown);
		return chain_error_set(err, "%s: __metadata__ says format \"%s\", expected \"" CHECKPOINT_FORMAT "\"",
		                       path, shown);
	}
	return 0;
}

int chain_checkpoint_metadata(const char *path, size_t n, const char *const *keys, char **values,
                              chain_error *err)
{
	if (!path)
		return chain_error_set(err, "chain_checkpoint_metadata: no file name given");
	if (n && (!keys || !values))
		return chain_error_set(err, "%s: chain_checkpoint_metadata: no keys or nowhere for the values", path);
	for (size_t i = 0; i < n; i++)
		values[i] = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return chain_error_set(err, "%s: cannot open: %s", path, strerror(errno));
	st_header h = { 0 };
	h.want_keys = keys;
	h.want_values = values;
	h.nwant = n;
	uint64_t file_size, hlen;
	int rc = read_header(f, path, &h, &file_size, &hlen, err);
	free((void *)h.p);
	st_header_free(&h);
	fclose(f);
	if (rc != 0)
		for (size_t i = 0; i < n; i++) {
			free(values[i]);
			values[i] = NULL;
		}
	return rc;
}

/* The loader proper, on an open file (closed on return). */
static int load_file(FILE *f, const char *path, const chain_model *m, void *theta,
                     const char *meta_key, char *meta_value, size_t meta_cap, chain_error *err)
{
	st_header h = { 0 };
	char *want_value = NULL;
	const char *want_key = meta_key;
	if (meta_value && meta_key) {
		h.want_keys = &want_key;
		h.want_values = &want_value;
		h.nwant = 1;
	}
	uint64_t file_size = 0, hlen = 0;
	int rc = read_header(f, path, &h, &file_size, &hlen, err);
	uint64_t data_len = file_size - 8 - hlen;
	if (rc == 0)
		rc = check_offsets(&h, data_len);
	if (rc == 0)
		rc = check_against_model(&h, m);

	/* the data block now holds exactly the model's tensors: its size is
	 * bounded by the model, not by anything the file claims */
	unsigned char *data = NULL;
	void *staged = NULL;
	if (rc == 0) {
		size_t tsize = m->num_params * precision_size(m->precision);
		data = malloc(data_len ? (size_t)data_len : 1);
		staged = malloc(tsize ? tsize : 1);
		if (!data || !staged)
			rc = chain_error_set(err, "%s: out of memory for %llu bytes of data", path, (unsigned long long)data_len);
		else if (tsize)
			memcpy(staged, theta, tsize); /* keeps any reals no param covers */
	}
	if (rc == 0)
		rc = read_exact(f, data, (size_t)data_len, path, 8 + h.n, err);
	if (rc == 0)
		rc = convert_data(&h, m, data, staged);
	if (rc == 0) {
		if (m->num_params)
			memcpy(theta, staged, m->num_params * precision_size(m->precision));
		if (meta_value && meta_cap > 0)
			snprintf(meta_value, meta_cap, "%s", want_value ? want_value : "");
	}
	free(data);
	free(staged);
	free((void *)h.p);
	free(want_value);
	st_header_free(&h);
	fclose(f);
	return rc;
}
