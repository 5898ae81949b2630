/* data.c -- data sets: loading, binarizing, checking against a model, saving.
 *
 * A file is read whole into memory (through zlib, which reads plain files
 * transparently and gunzips compressed ones), then parsed by the format its
 * first bytes announce: NumPy .npy, MNIST IDX or whitespace text.  Sizes that
 * a binary header claims are always checked against the bytes actually read
 * before anything is allocated for them, so a hostile header cannot make us
 * allocate more than the data the file really holds.
 *
 * Error locations: text files are "file:line:col:" (1-based, col in bytes);
 * binary files "file: byte N:"; chain_data_check, which sees only the table,
 * "file:row:col:" with col the 1-based value column.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "chain/data.h"
#include "chain/rng.h"

#include "atomic_file.h"

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

/* a*b, or 0 when it would overflow size_t (*ok set to 0). */
static size_t mul_size(size_t a, size_t b, int *ok)
{
	if (a != 0 && b > SIZE_MAX / a) {
		*ok = 0;
		return 0;
	}
	return a * b;
}

/* Copies at most 24 bytes of [s, e) into out as a printable, quoted-ready
 * snippet: non-printable bytes become \xNN, and "..." marks a cut.  Used to
 * show the offending token in messages without echoing binary garbage. */
static void show_token(const unsigned char *s, const unsigned char *e, char *out, size_t cap)
{
	size_t o = 0, shown = 0;
	for (; s < e && shown < 24; s++, shown++) {
		if (o + 5 >= cap)
			break;
		if (*s >= 0x20 && *s < 0x7f)
			out[o++] = (char)*s;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *s);
	}
	if (s < e && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < cap ? o : cap - 1] = '\0';
}

/* The C numeric locale for the duration of a load or save, so that a
 * caller's setlocale(LC_ALL, "de_DE") cannot turn "0.5" into a parse error
 * or make us write "0,5".  uselocale is per thread, so this is safe in a
 * multithreaded caller. */
typedef struct c_locale {
	locale_t c, old;
} c_locale;

static void c_locale_enter(c_locale *l)
{
	l->c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	l->old = l->c ? uselocale(l->c) : (locale_t)0;
}

static void c_locale_leave(c_locale *l)
{
	if (l->c) {
		uselocale(l->old);
		freelocale(l->c);
	}
}

/* A double as the shortest decimal that reads back to the same value, so a
 * message never shows 0.99999999 as "1"; in the C locale, whatever the
 * caller's. */
static void show_double(double v, char *out, size_t cap)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, cap, v > 0 ? "Inf" : "-Inf");
		return;
	}
	c_locale loc;
	c_locale_enter(&loc);
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	c_locale_leave(&loc);
}

/* ------------------------------------------------------------------------
 * Reading a whole file
 * ------------------------------------------------------------------------ */

/* The bytes of one input file (decompressed), and how to name places in it. */
typedef struct source {
	const char *path;
	unsigned char *p; /* n bytes, plus a terminating NUL */
	size_t n;
	int gz;           /* 1 if the file was gzip-compressed */
	const char *where; /* "" or " of the decompressed data", after "byte N" */
	chain_error *err;
	int compact;      /* store values as bytes while they fit (chain_data_load_compact) */
} source;

/* The output buffer of source_read: n bytes, cap allocated, always room
 * for the terminating NUL. */
typedef struct outbuf {
	unsigned char *p;
	size_t n, cap;
} outbuf;

/* At least `need` free bytes at the end of b (the NUL's among them). */
static int outbuf_reserve(outbuf *b, size_t need, const char *path, chain_error *err)
{
	while (b->cap - b->n < need) {
		if (b->cap > SIZE_MAX / 2)
			return chain_error_set(err, "%s: file too large", path);
		unsigned char *q = realloc(b->p, b->cap * 2);
		if (!q)
			return chain_error_set(err, "%s: out of memory after reading %zu bytes", path, b->n);
		b->p = q;
		b->cap *= 2;
	}
	return 0;
}

/* read(2) until n bytes or the end of the file; the count, or -1. */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

#define GZ_CHUNK (1u << 17)

/* Gunzips the rest of fd into b; in[0..have) are the file's first bytes
 * (starting with the gzip magic).  Concatenated members (`cat a.gz b.gz`)
 * are one stream, as gzip(1) reads them; after the last member only the
 * end of the file may follow: anything else (which zlib's gzread silently
 * drops) is an error at its byte offset in the file. */
static int gunzip_fd(source *s, int fd, unsigned char *in, size_t have, outbuf *b)
{
	const char *path = s->path;
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return chain_error_set(s->err, "%s: cannot start decompressing: out of memory", path);
	size_t base = 0;  /* file offset of in[0] */
	int eof = have < GZ_CHUNK, rc = 0;
	z.next_in = in;
	z.avail_in = (uInt)have;
	for (;;) {
		if (z.avail_in == 0 && !eof) {
			base += (size_t)(z.next_in - in);
			ssize_t r = read_full(fd, in, GZ_CHUNK);
			if (r < 0) {
				rc = chain_error_set(s->err, "%s: byte %zu: read error: %s", path, base, strerror(errno));
				break;
			}
			eof = (size_t)r < GZ_CHUNK;
			z.next_in = in;
			z.avail_in = (uInt)r;
		}
		if ((rc = outbuf_reserve(b, 2, path, s->err)) != 0)
			break;
		size_t room = b->cap - b->n - 1;
		z.next_out = b->p + b->n;
		z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
		uInt out_before = z.avail_out;
		int zr = inflate(&z, Z_NO_FLUSH);
		b->n += out_before - z.avail_out;
		if (zr == Z_STREAM_END) {
			/* the end of a member: the end of the file, or another member */
			if (z.avail_in < 2 && !eof) {
				/* keep what is left and read on, to see two bytes */
				size_t left = z.avail_in;
				base += (size_t)(z.next_in - in);
				if (left)
					memmove(in, z.next_in, left);
				ssize_t r = read_full(fd, in + left, GZ_CHUNK - left);
				if (r < 0) {
					rc = chain_error_set(s->err, "%s: byte %zu: read error: %s", path, base + left, strerror(errno));
					break;
				}
				eof = (size_t)r < GZ_CHUNK - left;
				z.next_in = in;
				z.avail_in = (uInt)(left + (size_t)r);
			}
			if (z.avail_in == 0)
				break; /* the end of the file: done */
			size_t at = base + (size_t)(z.next_in - in);
			if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
				rc = chain_error_set(s->err, "%s: byte %zu: trailing garbage after the gzip data: expected another gzip member (1f 8b) or the end of the file, found byte 0x%02x",
				                     path, at, z.next_in[0]);
				break;
			}
			inflateReset(&z);
			continue;
		}
		if (zr == Z_OK)
			continue;
		if (zr == Z_BUF_ERROR && z.avail_in == 0 && eof) {
			rc = chain_error_set(s->err, "%s: byte %zu%s: truncated gzip data: the file ends inside a gzip member",
			                     path, b->n, s->where);
			break;
		}
		if (zr == Z_BUF_ERROR)
			continue; /* more room or more input, next time round */
		if (zr == Z_MEM_ERROR) {
			rc = chain_error_set(s->err, "%s: out of memory decompressing", path);
			break;
		}
		rc = chain_error_set(s->err, "%s: byte %zu%s: corrupt gzip data: %s (at byte %zu of the file)", path,
		                     b->n, s->where, z.msg ? z.msg : "invalid data",
		                     base + (size_t)(z.next_in - in));
		break;
	}
	inflateEnd(&z);
	return rc;
}

/* Reads all of `path` into s->p, gunzipping if it starts with the gzip
 * magic.  The buffer grows with what is actually read, never with what some
 * header claims; corrupt or truncated gzip streams, and bytes after the
 * last gzip member, are reported as such. */
static int source_read(source *s, const char *path, chain_error *err)
{
	memset(s, 0, sizeof *s);
	s->path = path;
	s->err = err;
	s->where = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return chain_error_set(err, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return chain_error_set(err, "%s: cannot stat: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return chain_error_set(err, "%s: is a directory, expected a data file", path);
	}
	unsigned char *in = malloc(GZ_CHUNK);
	if (!in) {
		close(fd);
		return chain_error_set(err, "%s: out of memory", path);
	}
	ssize_t have = read_full(fd, in, GZ_CHUNK);
	if (have < 0) {
		int e = errno;
		free(in);
		close(fd);
		return chain_error_set(err, "%s: byte 0: read error: %s", path, strerror(e));
	}
	s->gz = have >= 2 && in[0] == 0x1f && in[1] == 0x8b;
	if (s->gz)
		s->where = " of the decompressed data";

	/* first guess: the file size (plain) or four times it (gzip), capped */
	outbuf b = { NULL, 0, 1u << 16 };
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		uint64_t guess = (uint64_t)st.st_size * (s->gz ? 4u : 1u) + 1;
		if (guess > ((uint64_t)1 << 30))
			guess = (uint64_t)1 << 30;
		if (guess > b.cap)
			b.cap = (size_t)guess;
	}
	b.p = malloc(b.cap);
	int rc = 0;
	if (!b.p) {
		rc = chain_error_set(err, "%s: out of memory", path);
	} else if (s->gz) {
		rc = gunzip_fd(s, fd, in, (size_t)have, &b);
	} else if ((rc = outbuf_reserve(&b, (size_t)have + 1, path, err)) == 0) {
		/* plain: the first chunk, then the rest read straight into the buffer */
		memcpy(b.p, in, (size_t)have);
		b.n = (size_t)have;
		for (size_t got = (size_t)have; got == GZ_CHUNK;) {
			if ((rc = outbuf_reserve(&b, GZ_CHUNK + 1, path, err)) != 0)
				break;
			ssize_t r = read_full(fd, b.p + b.n, GZ_CHUNK);
			if (r < 0) {
				rc = chain_error_set(err, "%s: byte %zu: read error: %s", path, b.n, strerror(errno));
				break;
			}
			got = (size_t)r;
			b.n += got;
		}
	}
	free(in);
	close(fd);
	if (rc != 0) {
		free(b.p);
		return -1;
	}
	b.p[b.n] = '\0';
	s->p = b.p;
	s->n = b.n;
	return 0;
}

/* ------------------------------------------------------------------------
 * Whitespace text: one row a line, values separated by blanks
 * ------------------------------------------------------------------------ */

static int is_ws(unsigned c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_blank(unsigned c) { return c != '\n' && is_ws(c); }

/* Exact powers of ten: every one up to 1e22 is a double exactly. */
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The fast path of number parsing (Clinger): a decimal [-+]ddd[.ddd][e[-+]dd]
 * whose digits fit in 2^53 and whose power of ten is at most 22 is one exact
 * integer times or divided by one exact power of ten, so a single IEEE
 * operation gives the correctly rounded result, as strtod would.  Returns 0
 * for anything else, which then goes to strtod. */
static int parse_number_fast(const unsigned char *s, const unsigned char *e, double *out)
{
	if (e - s == 1 && *s >= '0' && *s <= '9') { /* the .amat common case */
		*out = *s - '0';
		return 1;
	}
	int neg = 0;
	if (s < e && (*s == '-' || *s == '+')) {
		neg = *s == '-';
		s++;
	}
	uint64_t mant = 0;
	int digits = 0, frac = 0;
	for (; s < e && *s >= '0' && *s <= '9'; s++, digits++)
		mant = mant * 10 + (uint64_t)(*s - '0');
	if (s < e && *s == '.') {
		for (s++; s < e && *s >= '0' && *s <= '9'; s++, digits++, frac++)
			mant = mant * 10 + (uint64_t)(*s - '0');
	}
	if (digits == 0 || digits > 19)
		return 0;
	int exp10 = 0;
	if (s < e && (*s == 'e' || *s == 'E')) {
		int eneg = 0, edigits = 0;
		s++;
		if (s < e && (*s == '-' || *s == '+')) {
			eneg = *s == '-';
			s++;
		}
		for (; s < e && *s >= '0' && *s <= '9'; s++, edigits++) {
			if (exp10 > 1000)
				return 0;
			exp10 = exp10 * 10 + (*s - '0');
		}
		if (edigits == 0)
			return 0;
		if (eneg)
			exp10 = -exp10;
	}
	if (s != e || mant > ((uint64_t)1 << 53))
		return 0;
	exp10 -= frac;
	double v = (double)mant;
	if (exp10 > 0 && exp10 <= 22)
		v *= pow10_exact[exp10];
	else if (exp10 < 0 && exp10 >= -22)
		v /= pow10_exact[-exp10];
	else if (exp10 != 0)
		return 0;
	*out = neg ? -v : v;
	return 1;
}

/* Whether [s, e) spells NaN or infinity in a way strtod or NumPy would print
 * it (nan, -inf, Infinity, ...), so that we can say "finite" rather than
 * "a number". */
static int is_nonfinite_word(const unsigned char *s, const unsigned char *e)
{
	if (s < e && (*s == '-' || *s == '+'))
		s++;
	size_t n = (size_t)(e - s);
	return (n == 3 && strncasecmp((const char *)s, "nan", 3) == 0) ||
	       (n == 3 && strncasecmp((const char *)s, "inf", 3) == 0) ||
	       (n == 8 && strncasecmp((const char *)s, "infinity", 8) == 0);
}

/* Parses the token [s, e), which ends at a blank or at the end of the
 * buffer (so strtod cannot run past it).  Only finite decimal numbers are
 * accepted: not hex, not NaN/Inf, not 1e999. */
static int parse_number(const unsigned char *s, const unsigned char *e, double *out,
                        const char **why)
{
	if (parse_number_fast(s, e, out))
		return 0;
	if (is_nonfinite_word(s, e)) {
		*why = "a finite number";
		return -1;
	}
	*why = "a number";
	for (const unsigned char *q = s; q < e; q++)
		if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == '-' || *q == '+' ||
		      *q == 'e' || *q == 'E'))
			return -1;
	char *end;
	double v = strtod((const char *)s, &end);
	if ((const unsigned char *)end != e)
		return -1;
	/* 1e999: strtod overflowed to infinity; 1e-400 or 1e-310: it
	 * underflowed to 0 (a bin 0, a cat 0: silently another value) or to a
	 * subnormal with digits lost.  Both are refused, whatever the column. */
	int underflow = 0;
	if (isfinite(v) && fabs(v) < DBL_MIN)
		for (const unsigned char *q = s; q < e && *q != 'e' && *q != 'E'; q++)
			if (*q >= '1' && *q <= '9')
				underflow = 1;
	if (!isfinite(v) || underflow) {
		*why = "a number from 2.2250738585072014e-308 to 1.7976931348623157e308 in magnitude, or 0";
		return -1;
	}
	*out = v;
	return 0;
}

/* Whether x is stored exactly by a byte (what chain_data_compact keeps). */
static int fits_byte(double x)
{
	return x >= 0 && x <= 255 && !signbit(x) && x == (double)(uint8_t)x;
}

/* Where parse_text puts values: bytes while every value so far fits one
 * (compact loads), doubles otherwise, switching for good at the first value
 * that does not fit.  Grows by doubling. */
typedef struct sink {
	double *v;
	uint8_t *b;
	size_t n, cap;
} sink;

static void sink_free(sink *k)
{
	free(k->v);
	free(k->b);
	memset(k, 0, sizeof *k);
}

static int sink_put(sink *k, double x)
{
	if (k->b && !fits_byte(x)) {
		double *v = malloc((k->cap ? k->cap : 1) * sizeof(double));
		if (!v)
			return -1;
		for (size_t i = 0; i < k->n; i++)
			v[i] = k->b[i];
		free(k->b);
		k->b = NULL;
		k->v = v;
	}
	if (k->n == k->cap) {
		size_t esize = k->b ? 1 : sizeof(double);
		if (k->cap > SIZE_MAX / 2 / sizeof(double))
			return -1;
		size_t c = k->cap * 2;
		void *q = realloc(k->b ? (void *)k->b : (void *)k->v, c * esize);
		if (!q)
			return -1;
		if (k->b)
			k->b = q;
		else
			k->v = q;
		k->cap = c;
	}
	if (k->b)
		k->b[k->n++] = (uint8_t)x;
	else
		k->v[k->n++] = x;
	return 0;
}

/* Whitespace text: one row a line, values separated by spaces or tabs.
 * Blank lines and lines whose first non-blank character is '#' are skipped
 * (np.savetxt writes its header that way).  Every row must have as many
 * values as the first. */
static int parse_text(source *s, chain_dataset *out)
{
	const unsigned char *p = s->p, *end = s->p + s->n;
	const char *path = s->path;
	size_t rows = 0, cols = 0, line = 0, first_line = 0;
	char tok[128];
	sink v = { .cap = 1024 };
	if (s->compact)
		v.b = malloc(v.cap);
	else
		v.v = malloc(v.cap * sizeof(double));
	if (!v.b && !v.v)
		return chain_error_set(s->err, "%s: out of memory", path);

	while (p < end) {
		const unsigned char *ls = p; /* start of this line, for columns */
		size_t k = 0;
		line++;
		for (;;) {
			while (p < end && is_blank(*p))
				p++;
			if (p == end || *p == '\n')
				break;
			if (k == 0 && *p == '#') {
				while (p < end && *p != '\n')
					p++;
				break;
			}
			const unsigned char *ts = p;
			while (p < end && !is_ws(*p))
				p++;
			if (rows > 0 && k == cols) {
				/* one value too many: count the rest for the message */
				size_t total = k;
				for (const unsigned char *q = ts; q < end && *q != '\n';) {
					while (q < end && is_blank(*q))
						q++;
					if (q == end || *q == '\n')
						break;
					total++;
					while (q < end && !is_ws(*q))
						q++;
				}
				sink_free(&v);
				return chain_error_set(s->err, "%s:%zu:%zu: row %zu has %zu values, row 1 (line %zu) had %zu",
				                       path, line, (size_t)(ts - ls) + 1, rows + 1, total,
				                       first_line, cols);
			}
			const char *why = "";
			double x;
			if (parse_number(ts, p, &x, &why) != 0) {
				show_token(ts, p, tok, sizeof tok);
				sink_free(&v);
				return chain_error_set(s->err, "%s:%zu:%zu: expected %s (value %zu of row %zu), found '%s'",
				                       path, line, (size_t)(ts - ls) + 1, why, k + 1, rows + 1, tok);
			}
			if (sink_put(&v, x) != 0) {
				size_t nv = v.n;
				sink_free(&v);
				return chain_error_set(s->err, "%s:%zu: out of memory after %zu values", path, line, nv);
			}
			k++;
		}
		size_t eol_col = (size_t)(p - ls) + 1;
		if (p < end)
			p++; /* the '\n' */
		if (k == 0)
			continue;
		if (rows == 0) {
			cols = k;
			first_line = line;
		} else if (k != cols) {
			sink_free(&v);
			return chain_error_set(s->err, "%s:%zu:%zu: row %zu has %zu values, row 1 (line %zu) had %zu",
			                       path, line, eol_col, rows + 1, k, first_line, cols);
		}
		rows++;
	}
	if (rows == 0) {
		sink_free(&v);
		if (s->n == 0)
			return chain_error_set(s->err, "%s: empty file: expected rows of whitespace-separated numbers", path);
		return chain_error_set(s->err, "%s:%zu: no data: expected rows of whitespace-separated numbers, found only blank or comment lines",
		                       path, line);
	}
	out->rows = rows;
	out->cols = cols;
	out->values = v.v;
	out->bytes = v.b;
	return 0;
}

/* ------------------------------------------------------------------------
 * Binary element types shared by .npy and IDX
 * ------------------------------------------------------------------------ */

typedef enum elem_type {
	ELEM_U8, ELEM_I8, ELEM_BOOL, ELEM_I16, ELEM_I32, ELEM_I64, ELEM_F32, ELEM_F64,
} elem_type;

static const size_t elem_size[] = { 1, 1, 1, 2, 4, 8, 4, 8 };

/* The value of element i of type t, stored little- or big-endian at p. */
static double elem_get(const unsigned char *p, elem_type t, int big_endian)
{
	size_t n = elem_size[t];
	uint64_t u = 0;
	for (size_t i = 0; i < n; i++) {
		size_t b = big_endian ? i : n - 1 - i;
		u = (u << 8) | p[b];
	}
	switch (t) {
	case ELEM_U8: return (double)(uint8_t)u;
	case ELEM_I8: return (double)(int8_t)(uint8_t)u;
	case ELEM_BOOL: return u != 0;
	case ELEM_I16: return (double)(int16_t)(uint16_t)u;
	case ELEM_I32: return (double)(int32_t)(uint32_t)u;
	case ELEM_I64: return (double)(int64_t)u;
	case ELEM_F32: {
		uint32_t w = (uint32_t)u;
		float f;
		memcpy(&f, &w, sizeof f);
		return f;
	}
	case ELEM_F64: {
		double d;
		memcpy(&d, &u, sizeof d);
		return d;
	}
	}
	return 0;
}

/* Describes dims as "10000x28x28" for messages. */
static void show_dims(const size_t *dims, size_t nd, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	if (nd == 0)
		snprintf(out, cap, "a scalar");
	for (size_t i = 0; i < nd && o + 1 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, i ? "x%zu" : "%zu", dims[i]);
}

/* Turns the data block of a binary file into a table: checks that the file
 * holds exactly rows*cols elements after the header (truncated or trailing
 * bytes are errors, reported before allocating), converts to double and
 * rejects NaN and infinities. */
static int binary_table(source *s, size_t data_off, const size_t *dims, size_t nd,
                        elem_type t, int big_endian, chain_dataset *out)
{
	char shape[160];
	int ok = 1;
	size_t rows = nd ? dims[0] : 1, cols = 1;
	for (size_t i = 1; i < nd; i++)
		cols = mul_size(cols, dims[i], &ok);
	size_t count = mul_size(rows, cols, &ok);
	size_t bytes = mul_size(count, elem_size[t], &ok);
	show_dims(dims, nd, shape, sizeof shape);
	if (!ok)
		return chain_error_set(s->err, "%s: byte %zu%s: the header's shape %s overflows the address space",
		                       s->path, data_off, s->where, shape);
	size_t have = s->n - data_off;
	if (have < bytes)
		return chain_error_set(s->err, "%s: byte %zu%s: truncated data: shape %s needs %zu bytes, found %zu",
		                       s->path, s->n, s->where, shape, bytes, have);
	if (have > bytes)
		return chain_error_set(s->err, "%s: byte %zu%s: expected end of file after the %zu data bytes of shape %s, found %zu more bytes",
		                       s->path, data_off + bytes, s->where, bytes, shape, have - bytes);
	if (count == 0)
		return chain_error_set(s->err, "%s: byte %zu%s: expected at least one row and one column, found shape %s",
		                       s->path, data_off, s->where, shape);
	if (s->compact && t == ELEM_U8) { /* already one byte per value */
		uint8_t *b = malloc(count);
		if (!b)
			return chain_error_set(s->err, "%s: out of memory for %zu values", s->path, count);
		memcpy(b, s->p + data_off, count);
		out->rows = rows;
		out->cols = cols;
		out->bytes = b;
		return 0;
	}
	if (count > SIZE_MAX / sizeof(double))
		return chain_error_set(s->err, "%s: shape %s is too large", s->path, shape);
	double *v = malloc(count * sizeof(double));
	if (!v)
		return chain_error_set(s->err, "%s: out of memory for %zu values", s->path, count);
	const unsigned char *p = s->p + data_off;
	for (size_t i = 0; i < count; i++, p += elem_size[t]) {
		v[i] = elem_get(p, t, big_endian);
		if (!isfinite(v[i])) {
			char num[32];
			show_double(v[i], num, sizeof num);
			free(v);
			return chain_error_set(s->err, "%s: byte %zu%s (row %zu, column %zu): expected a finite number, found %s",
			                       s->path, data_off + i * elem_size[t], s->where,
			                       i / cols + 1, i % cols + 1, num);
		}
	}
	out->rows = rows;
	out->cols = cols;
	out->values = v;
	return 0;
}

/* ------------------------------------------------------------------------
 * MNIST IDX: 0 0 type ndims, ndims big-endian u32 sizes, big-endian data
 * ------------------------------------------------------------------------ */

#define IDX_MAX_DIMS 16

/* Parses an IDX file (Y. LeCun's MNIST format).  All the IDX element types
 * are accepted; only ubyte (0x08) counts as uint8 for binarization. */
static int parse_idx(source *s, chain_dataset *out, int *is_uint8)
{
	const unsigned char *p = s->p;
	if (s->n < 4)
		return chain_error_set(s->err, "%s: byte 0%s: truncated IDX header: expected a 4-byte magic number, found %zu bytes",
		                       s->path, s->where, s->n);
	uint32_t magic = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (p[0] != 0 || p[1] != 0)
		return chain_error_set(s->err, "%s: byte 0%s: wrong magic number: expected 0x000008TT (IDX), found 0x%08x",
		                       s->path, s->where, magic);
	elem_type t;
	switch (p[2]) {
	case 0x08: t = ELEM_U8; break;
	case 0x09: t = ELEM_I8; break;
	case 0x0B: t = ELEM_I16; break;
	case 0x0C: t = ELEM_I32; break;
	case 0x0D: t = ELEM_F32; break;
	case 0x0E: t = ELEM_F64; break;
	default:
		return chain_error_set(s->err, "%s: byte 2%s: wrong magic number 0x%08x: expected IDX type code 0x08 (ubyte), 0x09, 0x0B, 0x0C, 0x0D or 0x0E, found 0x%02x",
		                       s->path, s->where, magic, p[2]);
	}
	size_t nd = p[3];
	if (nd == 0 || nd > IDX_MAX_DIMS)
		return chain_error_set(s->err, "%s: byte 3%s: expected 1 to %d IDX dimensions, found %zu",
		                       s->path, s->where, IDX_MAX_DIMS, nd);
	size_t header = 4 + 4 * nd;
	if (s->n < header)
		return chain_error_set(s->err, "%s: byte %zu%s: truncated IDX header: expected %zu dimension sizes (%zu bytes), found %zu bytes",
		                       s->path, s->n, s->where, nd, header, s->n);
	size_t dims[IDX_MAX_DIMS];
	for (size_t i = 0; i < nd; i++) {
		const unsigned char *q = p + 4 + 4 * i;
		uint32_t d = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
		if (d > INT32_MAX)
			return chain_error_set(s->err, "%s: byte %zu%s: expected a non-negative size for dimension %zu, found %d",
			                       s->path, 4 + 4 * i, s->where, i + 1, (int)(d - 0x80000000u) - INT32_MAX - 1);
		dims[i] = d;
	}
	*is_uint8 = t == ELEM_U8;
	return binary_table(s, header, dims, nd, t, 1, out);
}

/* ------------------------------------------------------------------------
 * NumPy .npy: magic, version, header length, a Python dict literal, data
 * ------------------------------------------------------------------------ */

#define NPY_MAX_DIMS 32

/* A cursor over the .npy header dict, with the file offset of each byte so
 * errors can point at it. */
typedef struct npy_cursor {
	source *s;
	size_t pos, end; /* file offsets */
} npy_cursor;

static void npy_skip_ws(npy_cursor *c)
{
	while (c->pos < c->end && is_ws(c->s->p[c->pos]))
		c->pos++;
}

/* Reports that `what` was expected at the cursor and shows what is there. */
static int npy_expected(npy_cursor *c, const char *what)
{
	char tok[128];
	if (c->pos >= c->end)
		return chain_error_set(c->s->err, "%s: byte %zu%s: .npy header: expected %s, found the end of the header",
		                       c->s->path, c->pos, c->s->where, what);
	size_t e = c->pos + 1;
	while (e < c->end && e < c->pos + 12 && !is_ws(c->s->p[e]))
		e++;
	show_token(c->s->p + c->pos, c->s->p + e, tok, sizeof tok);
	return chain_error_set(c->s->err, "%s: byte %zu%s: .npy header: expected %s, found '%s'",
	                       c->s->path, c->pos, c->s->where, what, tok);
}

/* A quoted Python string without escapes ('<f8', 'shape'), copied to out. */
static int npy_string(npy_cursor *c, char *out, size_t cap, const char *what)
{
	npy_skip_ws(c);
	if (c->pos >= c->end || (c->s->p[c->pos] != '\'' && c->s->p[c->pos] != '"'))
		return npy_expected(c, what);
	unsigned char q = c->s->p[c->pos];
	size_t start = c->pos++, n = 0;
	while (c->pos < c->end && c->s->p[c->pos] != q) {
		if (c->s->p[c->pos] == '\\' || n + 1 >= cap) {
			c->pos = start;
			return npy_expected(c, what);
		}
		out[n++] = (char)c->s->p[c->pos++];
	}
	if (c->pos >= c->end) {
		c->pos = start;
		return npy_expected(c, "a closing quote");
	}
	c->pos++;
	out[n] = '\0';
	return 0;
}

/* Whether the next characters are the word w; consumes it if so. */
static int npy_word(npy_cursor *c, const char *w)
{
	size_t n = strlen(w);
	if (c->end - c->pos >= n && memcmp(c->s->p + c->pos, w, n) == 0) {
		c->pos += n;
		return 1;
	}
	return 0;
}

/* The shape tuple: "()" or "(n,)" or "(a, b, ...)", non-negative ints. */
static int npy_shape(npy_cursor *c, size_t *dims, size_t *nd)
{
	npy_skip_ws(c);
	if (c->pos >= c->end || c->s->p[c->pos] != '(')
		return npy_expected(c, "'(' starting the shape tuple");
	c->pos++;
	*nd = 0;
	for (;;) {
		npy_skip_ws(c);
		if (c->pos < c->end && c->s->p[c->pos] == ')') {
			c->pos++;
			return 0;
		}
		size_t at = c->pos;
		if (c->pos < c->end && c->s->p[c->pos] == '-') {
			c->pos++;
			if (c->pos < c->end && c->s->p[c->pos] >= '0' && c->s->p[c->pos] <= '9') {
				c->pos = at;
				return chain_error_set(c->s->err, "%s: byte %zu%s: .npy header: expected a non-negative dimension, found a negative one",
				                       c->s->path, at, c->s->where);
			}
		}
		if (c->pos >= c->end || c->s->p[c->pos] < '0' || c->s->p[c->pos] > '9')
			return npy_expected(c, "a dimension (a non-negative integer) or ')'");
		size_t d = 0;
		while (c->pos < c->end && c->s->p[c->pos] >= '0' && c->s->p[c->pos] <= '9') {
			unsigned digit = (unsigned)(c->s->p[c->pos] - '0');
			if (d > (SIZE_MAX - digit) / 10)
				return chain_error_set(c->s->err, "%s: byte %zu%s: .npy header: dimension overflows size_t",
				                       c->s->path, at, c->s->where);
			d = d * 10 + digit;
			c->pos++;
		}
		if (c->pos < c->end && c->s->p[c->pos] == 'L') /* Python 2 longs */
			c->pos++;
		if (*nd == NPY_MAX_DIMS)
			return chain_error_set(c->s->err, "%s: byte %zu%s: .npy header: more than %d dimensions",
			                       c->s->path, at, c->s->where, NPY_MAX_DIMS);
		dims[(*nd)++] = d;
		npy_skip_ws(c);
		if (c->pos < c->end && c->s->p[c->pos] == ',') {
			c->pos++;
			continue;
		}
		if (c->pos < c->end && c->s->p[c->pos] == ')') {
			c->pos++;
			return 0;
		}
		return npy_expected(c, "',' or ')' in the shape tuple");
	}
}

/* Maps a NumPy dtype string to an element type; little-endian only. */
static int npy_dtype(const char *descr, elem_type *t)
{
	static const struct { const char *descr; elem_type t; } known[] = {
		{ "|u1", ELEM_U8 }, { "<u1", ELEM_U8 }, { "u1", ELEM_U8 },
		{ "|b1", ELEM_BOOL }, { "<b1", ELEM_BOOL }, { "b1", ELEM_BOOL },
		{ "<i4", ELEM_I32 }, { "<i8", ELEM_I64 },
		{ "<f4", ELEM_F32 }, { "<f8", ELEM_F64 },
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(descr, known[i].descr) == 0) {
			*t = known[i].t;
			return 0;
		}
	return -1;
}

/* Parses a .npy file: format versions 1.0, 2.0 and 3.0, C order, the dtypes
 * npy_dtype knows.  The header dict is parsed strictly (the three keys NumPy
 * writes, nothing else), and the data size is checked against the file. */
static int parse_npy(source *s, chain_dataset *out, int *is_uint8)
{
	const unsigned char *p = s->p;
	if (s->n < 10)
		return chain_error_set(s->err, "%s: byte %zu%s: truncated .npy header: expected at least 10 bytes, found %zu",
		                       s->path, s->n, s->where, s->n);
	unsigned major = p[6], minor = p[7];
	size_t hlen, hstart;
	if (major == 1) {
		hlen = (size_t)p[8] | (size_t)p[9] << 8;
		hstart = 10;
	} else if (major == 2 || major == 3) {
		if (s->n < 12)
			return chain_error_set(s->err, "%s: byte %zu%s: truncated .npy header: expected at least 12 bytes, found %zu",
			                       s->path, s->n, s->where, s->n);
		hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
		hstart = 12;
	} else {
		return chain_error_set(s->err, "%s: byte 6%s: expected .npy format version 1.0, 2.0 or 3.0, found %u.%u",
		                       s->path, s->where, major, minor);
	}
	if (hlen > s->n - hstart)
		return chain_error_set(s->err, "%s: byte 8%s: .npy header length %zu exceeds the file (%zu bytes after the prefix)",
		                       s->path, s->where, hlen, s->n - hstart);

	npy_cursor c = { s, hstart, hstart + hlen };
	char descr[32] = "", key[32];
	int have_descr = 0, have_order = 0, have_shape = 0;
	size_t dims[NPY_MAX_DIMS], nd = 0;
	npy_skip_ws(&c);
	if (c.pos >= c.end || p[c.pos] != '{')
		return npy_expected(&c, "'{' starting the header dict");
	c.pos++;
	for (;;) {
		npy_skip_ws(&c);
		if (c.pos < c.end && p[c.pos] == '}') {
			c.pos++;
			break;
		}
		size_t key_at = c.pos;
		if (npy_string(&c, key, sizeof key, "a quoted key ('descr', 'fortran_order' or 'shape') or '}'") != 0)
			return -1;
		npy_skip_ws(&c);
		if (c.pos >= c.end || p[c.pos] != ':')
			return npy_expected(&c, "':' after the key");
		c.pos++;
		npy_skip_ws(&c);
		if (strcmp(key, "descr") == 0) {
			size_t at = c.pos;
			if (c.pos < c.end && p[c.pos] == '[')
				return chain_error_set(s->err, "%s: byte %zu%s: expected a plain dtype (uint8, bool, int32, int64, float32 or float64), found a structured dtype",
				                       s->path, at, s->where);
			if (npy_string(&c, descr, sizeof descr, "a quoted dtype such as '<f8'") != 0)
				return -1;
			elem_type t;
			if (npy_dtype(descr, &t) != 0)
				return chain_error_set(s->err, "%s: byte %zu%s: expected dtype '|u1', '|b1', '<i4', '<i8', '<f4' or '<f8' (little-endian), found '%s'",
				                       s->path, at, s->where, descr);
			have_descr = 1;
		} else if (strcmp(key, "fortran_order") == 0) {
			size_t at = c.pos;
			if (npy_word(&c, "True"))
				return chain_error_set(s->err, "%s: byte %zu%s: expected C order (fortran_order False), found fortran_order True; save with np.save(f, np.ascontiguousarray(a))",
				                       s->path, at, s->where);
			if (!npy_word(&c, "False"))
				return npy_expected(&c, "True or False");
			have_order = 1;
		} else if (strcmp(key, "shape") == 0) {
			if (npy_shape(&c, dims, &nd) != 0)
				return -1;
			have_shape = 1;
		} else {
			c.pos = key_at;
			return npy_expected(&c, "the key 'descr', 'fortran_order' or 'shape'");
		}
		npy_skip_ws(&c);
		if (c.pos < c.end && p[c.pos] == ',') {
			c.pos++;
			continue;
		}
		if (c.pos < c.end && p[c.pos] == '}') {
			c.pos++;
			break;
		}
		return npy_expected(&c, "',' or '}' in the header dict");
	}
	npy_skip_ws(&c);
	if (c.pos != c.end)
		return npy_expected(&c, "the end of the header after '}'");
	if (!have_descr || !have_order || !have_shape)
		return chain_error_set(s->err, "%s: byte %zu%s: .npy header: expected the keys 'descr', 'fortran_order' and 'shape', '%s' is missing",
		                       s->path, hstart, s->where,
		                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
	elem_type t = ELEM_F64;
	npy_dtype(descr, &t);
	*is_uint8 = t == ELEM_U8;
	return binary_table(s, hstart + hlen, dims, nd, t, 0, out);
}

/* ------------------------------------------------------------------------
 * Format choice, binarization, chain_data_load
 * ------------------------------------------------------------------------ */

/* Whether path ends with suffix (case-insensitive), a trailing ".gz" ignored. */
static int name_ends_with(const char *path, const char *suffix)
{
	size_t n = strlen(path), k = strlen(suffix);
	if (n >= 3 && strcmp(path + n - 3, ".gz") == 0)
		n -= 3;
	return n >= k && strncasecmp(path + n - k, suffix, k) == 0;
}

/* Names like train-images-idx3-ubyte, t10k-labels.idx1-ubyte, x.idx (but
 * not labels-idx1.txt, which says text). */
static int name_says_idx(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (name_ends_with(base, ".txt") || name_ends_with(base, ".amat") || name_ends_with(base, ".csv"))
		return 0;
	if (name_ends_with(base, "ubyte") || name_ends_with(base, ".idx"))
		return 1;
	for (const char *q = strstr(base, "idx"); q; q = strstr(q + 1, "idx"))
		if (q[3] >= '0' && q[3] <= '9')
			return 1;
	return 0;
}

/* Applies the binarization options in place.  uint8 sources (0..255) are
 * scaled to [0, 1] first; a stochastic draw for (row, col) is the same
 * whatever else is loaded, since it is a pure function of its coordinates. */
static int binarize(const char *path, chain_dataset *d, int is_uint8,
                    const chain_load_options *o, chain_error *err)
{
	if (o->binarize == CHAIN_BINARIZE_NONE)
		return 0;
	double scale = is_uint8 ? 1.0 / 255.0 : 1.0;
	if (o->binarize == CHAIN_BINARIZE_THRESHOLD) {
		if (!isfinite(o->threshold))
			return chain_error_set(err, "%s: binarization threshold must be a finite number", path);
		size_t n = d->rows * d->cols;
		for (size_t i = 0; i < n; i++)
			d->values[i] = d->values[i] * scale >= o->threshold ? 1.0 : 0.0;
		return 0;
	}
	if (o->binarize != CHAIN_BINARIZE_STOCHASTIC)
		return chain_error_set(err, "%s: unknown binarization mode %d", path, (int)o->binarize);
	/* check first, so that an error leaves the values as loaded */
	for (size_t r = 0; r < d->rows; r++)
		for (size_t c = 0; c < d->cols; c++) {
			double v = d->values[r * d->cols + c] * scale;
			if (!(v >= 0.0 && v <= 1.0)) {
				char num[32];
				show_double(d->values[r * d->cols + c], num, sizeof num);
				return chain_error_set(err, "%s:%zu:%zu: stochastic binarization expects values in [0, 1] (probabilities), found %s",
				                       path, r + 1, c + 1, num);
			}
		}
	for (size_t r = 0; r < d->rows; r++)
		for (size_t c = 0; c < d->cols; c++) {
			double *v = &d->values[r * d->cols + c];
			double u = chain_rng_uniform(o->seed, CHAIN_STREAM_BINARIZE, r, (uint32_t)c, 0);
			*v = u < *v * scale ? 1.0 : 0.0;
		}
	return 0;
}

/* Both loaders.  A compact load with binarization parses doubles (the
 * values to binarize may be fractions) and compacts after binarizing. */
static int load(const char *path, const chain_load_options *opts, int compact,
                chain_dataset *out, chain_error *err)
{
	if (!out)
		return chain_error_set(err, "chain_data_load: no output data set given");
	out->rows = out->cols = 0;
	out->values = NULL;
	out->bytes = NULL;
	if (!path)
		return chain_error_set(err, "chain_data_load: no file name given");
	source s;
	if (source_read(&s, path, err) != 0)
		return -1;
	s.compact = compact && !(opts && opts->binarize != CHAIN_BINARIZE_NONE);
	c_locale loc;
	c_locale_enter(&loc);
	int is_uint8 = 0, rc;
	static const unsigned char npy_magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };
	if (s.n == 0) {
		rc = chain_error_set(err, "%s: empty file: expected rows of numbers, a .npy array or an IDX file", path);
	} else if (s.n >= 6 && memcmp(s.p, npy_magic, 6) == 0) {
		rc = parse_npy(&s, out, &is_uint8);
	} else if (name_ends_with(path, ".npy")) {
		char tok[64];
		show_token(s.p, s.p + (s.n < 6 ? s.n : 6), tok, sizeof tok);
		rc = chain_error_set(err, "%s: byte 0%s: wrong magic: expected '\\x93NUMPY' (.npy), found '%s'",
		                     path, s.where, tok);
	} else if ((s.n >= 2 && s.p[0] == 0 && s.p[1] == 0) || name_says_idx(path)) {
		rc = parse_idx(&s, out, &is_uint8);
	} else {
		rc = parse_text(&s, out);
	}
	c_locale_leave(&loc);
	free(s.p);
	if (rc == 0 && out->values && opts && binarize(path, out, is_uint8, opts, err) != 0) {
		chain_dataset_free(out);
		rc = -1;
	}
	if (rc == 0 && compact)
		chain_data_compact(out);
	return rc;
}

int chain_data_load(const char *path, const chain_load_options *opts,
                    chain_dataset *out, chain_error *err)
{
	return load(path, opts, 0, out, err);
}

int chain_data_load_compact(const char *path, const chain_load_options *opts,
                            chain_dataset *out, chain_error *err)
{
	return load(path, opts, 1, out, err);
}

/* Every value must survive the round trip through a byte exactly, -0 and
 * NaN included (they do not), so a compact set feeds the kernels the same
 * bits. */
int chain_data_compact(chain_dataset *d)
{
	if (!d || !d->values)
		return d && d->bytes ? 1 : 0;
	size_t count = d->rows * d->cols; /* the doubles exist, so this does not overflow */
	for (size_t i = 0; i < count; i++)
		if (!fits_byte(d->values[i]))
			return 0;
	uint8_t *b = malloc(count ? count : 1);
	if (!b)
		return 0;
	for (size_t i = 0; i < count; i++)
		b[i] = (uint8_t)d->values[i];
	free(d->values);
	d->values = NULL;
	d->bytes = b;
	return 1;
}

void chain_dataset_free(chain_dataset *d)
{
	if (!d)
		return;
	free(d->values);
	free(d->bytes);
	d->values = NULL;
	d->bytes = NULL;
	d->rows = d->cols = 0;
}

/* ------------------------------------------------------------------------
 * Checking a data set against a model
 * ------------------------------------------------------------------------ */

/* "x[3, 4]" for element e (row-major) of v; "x" for a scalar. */
static void show_element(const chain_var *v, size_t e, char *out, size_t cap)
{
	size_t rank = v->rank <= CHAIN_MAX_RANK ? v->rank : 0;
	size_t idx[CHAIN_MAX_RANK] = { 0 };
	for (size_t i = rank; i-- > 0;) {
		size_t d = v->shape[i] ? v->shape[i] : 1;
		idx[i] = e % d;
		e /= d;
	}
	size_t o = (size_t)snprintf(out, cap, "%s", v->name ? v->name : "?");
	for (size_t i = 0; i < rank && o + 1 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%zu%s", i ? ", " : "[", idx[i], i + 1 == rank ? "]" : "");
}

static const char *kind_name(chain_kind k)
{
	switch (k) {
	case CHAIN_BIN: return "bin";
	case CHAIN_CAT: return "cat";
	case CHAIN_INT: return "int";
	case CHAIN_REAL: return "real";
	}
	return "?";
}

/* "input s: real[3]; data x: bin[784]" -- what a row holds, for messages. */
static void show_layout(const chain_model *m, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	for (int pass = 0; pass < 2; pass++) {
		size_t nvars = pass ? m->num_data : m->num_inputs;
		const chain_var *vars = pass ? m->data : m->inputs;
		for (size_t i = 0; i < nvars && vars && o + 1 < cap; i++) {
			const chain_var *v = &vars[i];
			o += (size_t)snprintf(out + o, cap - o, "%s%s %s: %s", o ? "; " : "",
			                      pass ? "data" : "input", v->name ? v->name : "?", kind_name(v->kind));
			if (v->kind == CHAIN_CAT && o + 1 < cap)
				o += (size_t)snprintf(out + o, cap - o, "(%u)", v->cat_k);
			for (size_t k = 0; k < v->rank && k < CHAIN_MAX_RANK && o + 1 < cap; k++)
				o += (size_t)snprintf(out + o, cap - o, "%s%zu%s", k ? ", " : "[", v->shape[k],
				                      k + 1 == v->rank ? "]" : "");
		}
	}
}

/* Whether x fits one element of a variable of kind v whose values the
 * model limits to most (SIZE_MAX: its kind alone), and if not what was
 * expected, as a phrase for the message. */
static const char *value_misfit(const chain_var *v, size_t most, double x, char *buf, size_t cap)
{
	/* a count or category a sum's range depends on: the compiler's limit
	 * keeps that sum within CHAIN_SUM_TERMS_MAX terms (a count of 10^15
	 * ran the kernels for ever) */
	if (most != (size_t)-1 && v->kind != CHAIN_REAL && !(x <= (double)most)) {
		const char *kind_says = value_misfit(v, (size_t)-1, x, buf, cap);
		if (kind_says)
			return kind_says;
		snprintf(buf, cap, "an integer from 0 to %zu (a sum's range in the model depends on it; at most 2^%d terms)",
		         most, __builtin_ctzll(CHAIN_SUM_TERMS_MAX));
		return buf;
	}
	switch (v->kind) {
	case CHAIN_BIN:
		return x == 0.0 || x == 1.0 ? NULL : "0 or 1";
	case CHAIN_CAT:
		if (isfinite(x) && x == floor(x) && x >= 0 && x < (double)v->cat_k)
			return NULL;
		if (v->cat_k == 0)
			return "a category, but the model declares cat(0)";
		snprintf(buf, cap, "an integer in 0..%u", v->cat_k - 1);
		return buf;
	case CHAIN_INT:
		/* up to 2^53 - 1: beyond, a double no longer holds every integer
		 * (9007199254740993 is read as ...992), so a count there is not
		 * the count the file says */
		return isfinite(x) && x == floor(x) && x >= 0 && x <= 9007199254740991.0
		       ? NULL : "an integer from 0 to 2^53 - 1 (9007199254740991)";
	case CHAIN_REAL:
		return isfinite(x) ? NULL : "a finite number";
	}
	return "a value of a known kind";
}

int chain_data_check(const chain_dataset *d, const chain_model *m,
                     const char *path, chain_error *err)
{
	if (!path)
		path = "<data>";
	if (!d || !m)
		return chain_error_set(err, "%s: no data set or no model given", path);
	char layout[512];
	show_layout(m, layout, sizeof layout);
	if (d->cols != m->obs_size)
		return chain_error_set(err, "%s: rows have %zu values, but model %s expects %zu per observation (%s)",
		                       path, d->cols, m->name ? m->name : "?", m->obs_size, layout);
	if (d->rows > 0 && !d->values && !d->bytes)
		return chain_error_set(err, "%s: data set has %zu rows but no values", path, d->rows);
	for (int pass = 0; pass < 2; pass++) {
		size_t nvars = pass ? m->num_data : m->num_inputs;
		const chain_var *vars = pass ? m->data : m->inputs;
		if (nvars && !vars)
			return chain_error_set(err, "model %s: descriptor lists %zu %s variables but no table",
			                       m->name ? m->name : "?", nvars, pass ? "data" : "input");
		for (size_t i = 0; i < nvars; i++)
			if (vars[i].offset > m->obs_size || vars[i].size > m->obs_size - vars[i].offset)
				return chain_error_set(err, "model %s: descriptor puts variable %s at columns %zu..%zu, beyond the %zu of a row",
				                       m->name ? m->name : "?", vars[i].name ? vars[i].name : "?",
				                       vars[i].offset + 1, vars[i].offset + vars[i].size, m->obs_size);
	}
	/* row by row, so the first bad value reported is the first in the file */
	for (size_t r = 0; r < d->rows; r++) {
		size_t row = r * d->cols;
		for (int pass = 0; pass < 2; pass++) {
			size_t nvars = pass ? m->num_data : m->num_inputs;
			const chain_var *vars = pass ? m->data : m->inputs;
			for (size_t i = 0; i < nvars; i++) {
				const chain_var *v = &vars[i];
				for (size_t e = 0; e < v->size; e++) {
					double x = chain_data_value(d, row + v->offset + e);
					char buf[128];
					const char *want = value_misfit(v, chain_model_value_max(m, pass, i), x, buf, sizeof buf);
					if (!want)
						continue;
					char elem[128], num[32];
					show_element(v, e, elem, sizeof elem);
					show_double(x, num, sizeof num);
					return chain_error_set(err, "%s:%zu:%zu: expected %s for %s variable %s, found %s",
					                       path, r + 1, v->offset + e + 1, want, kind_name(v->kind), elem, num);
				}
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Saving
 * ------------------------------------------------------------------------ */

/* Appends v to buf as text: integers without a decimal point, others as the
 * shortest decimal that reads back exactly.  Returns the length written. */
static size_t format_value(double v, char *buf)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		long long k = (long long)v;
		char tmp[24];
		size_t n = 0;
		unsigned long long u = k < 0 ? 0ull - (unsigned long long)k : (unsigned long long)k;
		do {
			tmp[n++] = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		size_t o = 0;
		if (k < 0)
			buf[o++] = '-';
		while (n)
			buf[o++] = tmp[--n];
		return o;
	}
	int len = 0;
	for (int prec = 15; prec <= 17; prec++) {
		len = snprintf(buf, 32, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return (size_t)len;
}

static int save_text(FILE *f, const chain_dataset *d)
{
	char line[1 << 16];
	size_t o = 0;
	for (size_t r = 0; r < d->rows; r++) {
		for (size_t c = 0; c < d->cols; c++) {
			if (o + 40 > sizeof line) {
				if (fwrite(line, 1, o, f) != o)
					return -1;
				o = 0;
			}
			if (c)
				line[o++] = ' ';
			o += format_value(chain_data_value(d, r * d->cols + c), line + o);
		}
		line[o++] = '\n';
	}
	return fwrite(line, 1, o, f) == o ? 0 : -1;
}

/* .npy version 1.0, '<f8', C order, shape (rows, cols); the header is padded
 * with spaces so the data starts at a multiple of 64 bytes, as NumPy does. */
static int save_npy(FILE *f, const chain_dataset *d)
{
	char dict[256];
	int n = snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }",
	                 d->rows, d->cols);
	size_t hlen = (size_t)n + 1; /* + the final '\n' */
	size_t total = 10 + hlen;
	size_t pad = (64 - total % 64) % 64;
	hlen += pad;
	unsigned char prefix[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
	                             (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8) };
	if (fwrite(prefix, 1, 10, f) != 10 || fwrite(dict, 1, (size_t)n, f) != (size_t)n)
		return -1;
	for (size_t i = 0; i < pad; i++)
		if (fputc(' ', f) == EOF)
			return -1;
	if (fputc('\n', f) == EOF)
		return -1;
	unsigned char buf[8 * 1024];
	size_t o = 0, count = d->rows * d->cols;
	for (size_t i = 0; i < count; i++) {
		uint64_t u;
		double x = chain_data_value(d, i);
		memcpy(&u, &x, sizeof u);
		for (int b = 0; b < 8; b++)
			buf[o++] = (unsigned char)(u >> (8 * b));
		if (o == sizeof buf) {
			if (fwrite(buf, 1, o, f) != o)
				return -1;
			o = 0;
		}
	}
	return fwrite(buf, 1, o, f) == o ? 0 : -1;
}

int chain_data_save(const char *path, const chain_dataset *d, chain_error *err)
{
	if (!path)
		return chain_error_set(err, "chain_data_save: no file name given");
	if (!d)
		return chain_error_set(err, "%s: no data set given", path);
	int ok = 1;
	size_t count = mul_size(d->rows, d->cols, &ok);
	if (!ok || (count && !d->values && !d->bytes))
		return chain_error_set(err, "%s: data set of %zu x %zu has no values", path, d->rows, d->cols);
	if (count == 0)
		return chain_error_set(err, "%s: data set is empty (%zu rows of %zu values): nothing to write",
		                       path, d->rows, d->cols);
	size_t len = strlen(path);
	if (len >= 3 && strcmp(path + len - 3, ".gz") == 0)
		return chain_error_set(err, "%s: writing gzip-compressed data is not supported: expected .amat, .txt or .npy", path);
	int npy = name_ends_with(path, ".npy");
	if (!npy && !name_ends_with(path, ".amat") && !name_ends_with(path, ".txt"))
		return chain_error_set(err, "%s: unknown extension: expected .amat, .txt or .npy", path);
	for (size_t i = 0; i < count && d->values; i++)
		if (!isfinite(d->values[i]))
			return chain_error_set(err, "%s: row %zu, column %zu is not finite: refusing to write a file that cannot be read back",
			                       path, i / d->cols + 1, i % d->cols + 1);
	atomic_file af;
	if (chain__atomic_open(&af, path, err) != 0)
		return -1;
	c_locale loc;
	c_locale_enter(&loc);
	int rc = npy ? save_npy(af.f, d) : save_text(af.f, d);
	c_locale_leave(&loc);
	if (rc != 0) {
		int e = errno;
		chain__atomic_abort(&af);
		return chain_error_set(err, "%s: cannot write: %s", path, strerror(e));
	}
	return chain__atomic_commit(&af, err);
}
