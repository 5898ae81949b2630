/* elf_merge.c -- several relocatable ELF objects as one.
 *
 * `chain build` compiles a model's kernels in parts, each part a module of
 * its own optimized and code-generated on a thread of its own (cg_emit.c),
 * and writes one object file.  LLVM gives one object per module; this is
 * the small part of `ld -r` those objects need:
 *
 *   sections   the inputs' sections of one name, type, flags and entry
 *              size become one, their bytes end to end (each at its own
 *              alignment), in input order; the symbol and string tables are
 *              rebuilt, and .llvm_addrsig, an optional hint, is left out
 *              (without it every symbol counts as address-significant,
 *              which is always safe).  Some linkers (LLVM's JITLink) take
 *              an object with two sections of one name for overlapping
 *              blocks, so there is one of each;
 *   symbols    a section symbol per section, the inputs' other locals, each
 *              input's in its order, then the globals by name, in order of
 *              first appearance: a kernel that one part defines and another
 *              calls (or whose address the descriptor takes) becomes one
 *              defined symbol; values move with their section's bytes;
 *   relocations  those of a section follow its bytes: offsets move with
 *              them, symbols are renumbered, and an addend relative to an
 *              input's section symbol becomes relative to the merged
 *              section's.
 *
 * Anything else (section groups, SHT_REL, linked sections, extended
 * section numbering, 32-bit or big-endian objects, a symbol defined twice)
 * is refused, and the caller
 * compiles the model as one part instead.  The output depends only on the
 * inputs' bytes and order.
 */
#include <elf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_merge.h"

#ifndef SHT_LLVM_ADDRSIG
#define SHT_LLVM_ADDRSIG 0x6fff4c03
#endif

static void *refuse(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *refuse(char **why, const char *fmt, ...)
{
	if (why) {
		va_list ap;
		va_start(ap, fmt);
		free(*why);
		*why = NULL;
		if (vasprintf(why, fmt, ap) < 0)
			*why = NULL;
		va_end(ap);
	}
	return NULL;
}

/* A growable byte buffer. */
typedef struct bytes {
	unsigned char *p;
	size_t len, cap;
	bool oom;
} bytes;

static size_t put(bytes *b, const void *data, size_t n)
{
	size_t at = b->len;
	if (b->oom)
		return at;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return at;
		}
		b->p = p;
		b->cap = cap;
	}
	if (data)
		memcpy(b->p + b->len, data, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
	return at;
}

static void align(bytes *b, uint64_t a)
{
	if (a > 1 && b->len % a)
		put(b, NULL, (size_t)(a - b->len % a));
}

/* One input, checked: its header, section headers, symbol table. */
typedef struct obj {
	const unsigned char *base;
	size_t size;
	Elf64_Ehdr eh;
	Elf64_Shdr *sh;              /* eh.e_shnum of them (copies: the input may be unaligned) */
	unsigned symtab;             /* its section index */
	Elf64_Sym *sym;              /* nsym symbols */
	size_t nsym;
	const char *symstr;          /* the symbol names */
	size_t symstr_size;
	const char *shstr;
	size_t shstr_size;
	uint32_t *secmap;            /* input section -> output section, 0: dropped */
	uint64_t *secoff;            /* input section -> its offset in the output section */
	uint32_t *symmap;            /* input symbol -> output symbol, UINT32_MAX: none */
} obj;

static bool in_file(const obj *o, uint64_t off, uint64_t len)
{
	return off <= o->size && len <= o->size - off;
}

static const char *name_at(const char *tab, size_t size, uint32_t off)
{
	if (off >= size || !memchr(tab + off, 0, size - off))
		return NULL;
	return tab + off;
}

static void *load(obj *o, const elf_input *in, char **why)
{
	memset(o, 0, sizeof *o);
	o->base = in->data;
	o->size = in->size;
	if (!o->base || o->size < sizeof o->eh)
		return refuse(why, "not an ELF object");
	memcpy(&o->eh, o->base, sizeof o->eh);
	const unsigned char *id = o->eh.e_ident;
	if (memcmp(id, ELFMAG, SELFMAG) != 0 || id[EI_CLASS] != ELFCLASS64 || id[EI_DATA] != ELFDATA2LSB ||
	    o->eh.e_type != ET_REL)
		return refuse(why, "not a 64-bit little-endian ELF relocatable object");
	uint16_t one = 1;
	unsigned char little;
	memcpy(&little, &one, 1);
	if (!little)
		return refuse(why, "not on a little-endian host");
	if (o->eh.e_shentsize != sizeof(Elf64_Shdr) || o->eh.e_shnum == 0 || o->eh.e_shstrndx >= o->eh.e_shnum ||
	    !in_file(o, o->eh.e_shoff, (uint64_t)o->eh.e_shnum * sizeof(Elf64_Shdr)))
		return refuse(why, "unexpected section header table");
	o->sh = calloc(o->eh.e_shnum, sizeof *o->sh);
	o->secmap = calloc(o->eh.e_shnum, sizeof *o->secmap);
	o->secoff = calloc(o->eh.e_shnum, sizeof *o->secoff);
	if (!o->sh || !o->secmap || !o->secoff)
		return refuse(why, "out of memory");
	memcpy(o->sh, o->base + o->eh.e_shoff, o->eh.e_shnum * sizeof *o->sh);
	for (unsigned i = 0; i < o->eh.e_shnum; i++) {
		const Elf64_Shdr *s = &o->sh[i];
		if (s->sh_type != SHT_NOBITS && s->sh_type != SHT_NULL && !in_file(o, s->sh_offset, s->sh_size))
			return refuse(why, "a section outside the file");
		if (s->sh_type == SHT_GROUP || s->sh_type == SHT_SYMTAB_SHNDX || (s->sh_flags & SHF_GROUP))
			return refuse(why, "section groups");
		if (s->sh_type == SHT_REL)
			return refuse(why, "relocations without addends");
		if (s->sh_type == SHT_SYMTAB) {
			if (o->symtab)
				return refuse(why, "two symbol tables");
			o->symtab = i;
		}
	}
	const Elf64_Shdr *st = &o->sh[o->symtab];
	if (!o->symtab || st->sh_entsize != sizeof(Elf64_Sym) || st->sh_link == 0 || st->sh_link >= o->eh.e_shnum ||
	    o->sh[st->sh_link].sh_type != SHT_STRTAB || st->sh_info == 0 || st->sh_info > st->sh_size / sizeof(Elf64_Sym))
		return refuse(why, "unexpected symbol table");
	o->nsym = st->sh_size / sizeof(Elf64_Sym);
	o->sym = calloc(o->nsym, sizeof *o->sym);
	o->symmap = calloc(o->nsym, sizeof *o->symmap);
	if (!o->sym || !o->symmap)
		return refuse(why, "out of memory");
	memcpy(o->sym, o->base + st->sh_offset, o->nsym * sizeof *o->sym);
	o->symstr = (const char *)o->base + o->sh[st->sh_link].sh_offset;
	o->symstr_size = o->sh[st->sh_link].sh_size;
	const Elf64_Shdr *ss = &o->sh[o->eh.e_shstrndx];
	if (ss->sh_type != SHT_STRTAB)
		return refuse(why, "unexpected section name table");
	o->shstr = (const char *)o->base + ss->sh_offset;
	o->shstr_size = ss->sh_size;
	return o;
}

static void unload(obj *o)
{
	free(o->sh);
	free(o->sym);
	free(o->secmap);
	free(o->secoff);
	free(o->symmap);
}

/* Whether input section i is copied to the output. */
static bool kept(const obj *o, unsigned i)
{
	const Elf64_Shdr *s = &o->sh[i];
	if (i == 0 || s->sh_type == SHT_NULL || s->sh_type == SHT_SYMTAB || s->sh_type == SHT_LLVM_ADDRSIG)
		return false;
	if (s->sh_type == SHT_STRTAB && (i == o->sh[o->symtab].sh_link || i == o->eh.e_shstrndx))
		return false;
	return true;
}

/* An output section: the input sections of one name, type, flags and
 * entry size, end to end; or (rel) the relocations of output section
 * `target`. */
typedef struct osec {
	const char *name;
	Elf64_Shdr sh;               /* sh_size: so far; sh_offset: once written */
	bool rel;
	uint32_t target;             /* rel: the section it relocates (os[] index, then output index) */
} osec;

typedef struct global {
	const char *name;
	Elf64_Sym sym;               /* st_name still the input's, st_shndx and st_value the output's */
} global;

static bool same_kind(const osec *s, const char *name, const Elf64_Shdr *sh)
{
	return !s->rel && strcmp(s->name, name) == 0 && s->sh.sh_type == sh->sh_type &&
	       s->sh.sh_flags == sh->sh_flags && s->sh.sh_entsize == sh->sh_entsize;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return a > 1 ? (x + a - 1) / a * a : x;
}

void *elf_merge(const elf_input *in, int n, size_t *size, char **why)
{
	if (n < 1)
		return refuse(why, "no objects");
	obj *o = calloc((size_t)n, sizeof *o);
	global *g = NULL;
	size_t ng = 0, gcap = 0;
	osec *os = NULL;
	size_t nos = 0;
	uint32_t *order = NULL;      /* output section index -> os[] */
	uint32_t *sec_symbol = NULL; /* output section index -> its section symbol */
	Elf64_Shdr *osh = NULL;
	bytes out = { 0 }, symtab = { 0 }, strtab = { 0 }, shstr = { 0 };
	void *result = NULL;
	if (!o) {
		refuse(why, "out of memory");
		goto done;
	}
	for (int k = 0; k < n; k++)
		if (!load(&o[k], &in[k], why))
			goto done;
	for (int k = 1; k < n; k++)
		if (o[k].eh.e_machine != o[0].eh.e_machine || o[k].eh.e_flags != o[0].eh.e_flags ||
		    o[k].eh.e_ident[EI_OSABI] != o[0].eh.e_ident[EI_OSABI]) {
			refuse(why, "objects for different machines");
			goto done;
		}

	/* the output sections: each kept section joins the first of its kind,
	 * at its alignment; its relocations, the output's of that kind */
	size_t cap = 1;
	for (int k = 0; k < n; k++)
		cap += o[k].eh.e_shnum;
	os = calloc(2 * cap, sizeof *os);
	if (!os) {
		refuse(why, "out of memory");
		goto done;
	}
	for (int k = 0; k < n; k++)
		for (unsigned i = 0; i < o[k].eh.e_shnum; i++) {
			const Elf64_Shdr *s = &o[k].sh[i];
			if (!kept(&o[k], i) || s->sh_type == SHT_RELA)
				continue;
			const char *name = name_at(o[k].shstr, o[k].shstr_size, s->sh_name);
			if (!name) {
				refuse(why, "a section name outside the string table");
				goto done;
			}
			if (s->sh_link || s->sh_info || (s->sh_flags & SHF_LINK_ORDER)) {
				refuse(why, "a section linked to another (%s)", name);
				goto done;
			}
			size_t to = 0;
			while (to < nos && !same_kind(&os[to], name, s))
				to++;
			if (to == nos) {
				os[nos].name = name;
				os[nos].sh = *s;
				os[nos].sh.sh_size = 0;
				os[nos].sh.sh_addralign = 1;
				nos++;
			}
			osec *d = &os[to];
			uint64_t a = s->sh_addralign ? s->sh_addralign : 1;
			if (a > d->sh.sh_addralign)
				d->sh.sh_addralign = a;
			o[k].secoff[i] = align_up(d->sh.sh_size, a);
			d->sh.sh_size = o[k].secoff[i] + s->sh_size;
			o[k].secmap[i] = (uint32_t)to; /* an os[] index for now */
		}
	size_t ndata = nos;
	for (size_t t = 0; t < ndata; t++) {
		/* the relocations of os[t], if any input has some */
		for (int k = 0; k < n; k++)
			for (unsigned i = 0; i < o[k].eh.e_shnum; i++) {
				const Elf64_Shdr *s = &o[k].sh[i];
				if (s->sh_type != SHT_RELA || !kept(&o[k], i))
					continue;
				if (s->sh_link != o[k].symtab || s->sh_info == 0 || s->sh_info >= o[k].eh.e_shnum ||
				    !kept(&o[k], s->sh_info) || o[k].sh[s->sh_info].sh_type == SHT_RELA ||
				    s->sh_entsize != sizeof(Elf64_Rela) || s->sh_size % sizeof(Elf64_Rela)) {
					refuse(why, "unexpected relocation section");
					goto done;
				}
				if (o[k].secmap[s->sh_info] != t)
					continue;
				size_t r = ndata;
				while (r < nos && !(os[r].rel && os[r].target == t))
					r++;
				if (r == nos) {
					os[nos].name = name_at(o[k].shstr, o[k].shstr_size, s->sh_name);
					if (!os[nos].name) {
						refuse(why, "a section name outside the string table");
						goto done;
					}
					os[nos].sh = *s;
					os[nos].sh.sh_size = 0;
					os[nos].sh.sh_addralign = 8;
					os[nos].rel = true;
					os[nos].target = (uint32_t)t;
					nos++;
				}
				o[k].secmap[i] = (uint32_t)r;
			}
	}
	/* section indices: each data section, its relocations right after it,
	 * then .symtab, .strtab, .shstrtab */
	size_t nsec = 1 + nos + 3;
	if (nsec >= SHN_LORESERVE) {
		refuse(why, "too many sections");
		goto done;
	}
	order = calloc(nsec, sizeof *order);
	uint32_t *index_of = calloc(nos + 1, sizeof *index_of);
	osh = calloc(nsec, sizeof *osh);
	if (!order || !index_of || !osh) {
		free(index_of);
		refuse(why, "out of memory");
		goto done;
	}
	size_t next = 1;
	for (size_t t = 0; t < ndata; t++) {
		index_of[t] = (uint32_t)next;
		order[next++] = (uint32_t)t;
		for (size_t r = ndata; r < nos; r++)
			if (os[r].target == t) {
				index_of[r] = (uint32_t)next;
				order[next++] = (uint32_t)r;
			}
	}
	size_t sym_sec = next, str_sec = next + 1, shstr_sec = next + 2;
	for (int k = 0; k < n; k++)
		for (unsigned i = 0; i < o[k].eh.e_shnum; i++)
			if (kept(&o[k], i))
				o[k].secmap[i] = index_of[o[k].secmap[i]];
	for (size_t r = ndata; r < nos; r++)
		os[r].target = index_of[os[r].target];
	sec_symbol = calloc(nsec, sizeof *sec_symbol);
	free(index_of);
	if (!sec_symbol) {
		refuse(why, "out of memory");
		goto done;
	}

	/* symbols: null, a section symbol per section but the relocations,
	 * the inputs' other locals, then the globals */
	put(&strtab, "", 1);
	Elf64_Sym null = { 0 };
	put(&symtab, &null, sizeof null);
	size_t nout = 1;
	for (size_t x = 1; x < sym_sec; x++) {
		const osec *d = &os[order[x]];
		if (d->rel)
			continue;
		Elf64_Sym s = { .st_info = ELF64_ST_INFO(STB_LOCAL, STT_SECTION), .st_shndx = (uint16_t)x };
		put(&symtab, &s, sizeof s);
		sec_symbol[x] = (uint32_t)nout++;
	}
	for (int k = 0; k < n; k++) {
		o[k].symmap[0] = 0;
		for (size_t j = 1; j < o[k].nsym; j++) {
			Elf64_Sym s = o[k].sym[j];
			const char *name = name_at(o[k].symstr, o[k].symstr_size, s.st_name);
			if (!name) {
				refuse(why, "a symbol name outside the string table");
				goto done;
			}
			uint16_t shn = s.st_shndx;
			if (shn == SHN_XINDEX || (shn != SHN_UNDEF && shn < SHN_LORESERVE && shn >= o[k].eh.e_shnum)) {
				refuse(why, "a symbol in an unknown section");
				goto done;
			}
			if (shn != SHN_UNDEF && shn < SHN_LORESERVE) {
				if (!o[k].secmap[shn]) {
					/* a symbol of a dropped section (.llvm_addrsig's):
					 * nothing kept may refer to it */
					o[k].symmap[j] = UINT32_MAX;
					continue;
				}
				s.st_shndx = (uint16_t)o[k].secmap[shn];
				s.st_value += o[k].secoff[shn];
			}
			if (ELF64_ST_TYPE(s.st_info) == STT_SECTION) {
				/* relocations against it get the section's offset in
				 * their addend (below) */
				if (shn == SHN_UNDEF || shn >= SHN_LORESERVE || !sec_symbol[s.st_shndx]) {
					refuse(why, "a section symbol of no section");
					goto done;
				}
				o[k].symmap[j] = sec_symbol[s.st_shndx];
				continue;
			}
			if (ELF64_ST_BIND(s.st_info) != STB_LOCAL) {
				/* globals: merged below, in order of first appearance */
				size_t at = 0;
				while (at < ng && strcmp(g[at].name, name) != 0)
					at++;
				if (at == ng) {
					if (ng == gcap) {
						gcap = gcap ? 2 * gcap : 64;
						global *ng2 = realloc(g, gcap * sizeof *g);
						if (!ng2) {
							refuse(why, "out of memory");
							goto done;
						}
						g = ng2;
					}
					g[ng++] = (global){ name, s };
				} else {
					bool def_old = g[at].sym.st_shndx != SHN_UNDEF;
					bool def_new = s.st_shndx != SHN_UNDEF;
					if (def_old && def_new) {
						refuse(why, "symbol %s defined twice", name);
						goto done;
					}
					if (ELF64_ST_BIND(s.st_info) != ELF64_ST_BIND(g[at].sym.st_info)) {
						refuse(why, "symbol %s bound differently", name);
						goto done;
					}
					if (def_new)
						g[at].sym = s;
				}
				o[k].symmap[j] = (uint32_t)(UINT32_MAX - 1 - at); /* fixed up below */
				continue;
			}
			s.st_name = (uint32_t)put(&strtab, name, strlen(name) + 1);
			put(&symtab, &s, sizeof s);
			o[k].symmap[j] = (uint32_t)nout++;
		}
	}
	size_t first_global = nout;
	for (size_t at = 0; at < ng; at++) {
		Elf64_Sym s = g[at].sym;
		s.st_name = (uint32_t)put(&strtab, g[at].name, strlen(g[at].name) + 1);
		put(&symtab, &s, sizeof s);
	}
	for (int k = 0; k < n; k++)
		for (size_t j = 1; j < o[k].nsym; j++) {
			uint32_t m = o[k].symmap[j];
			if (m != UINT32_MAX && m >= UINT32_MAX - ng)
				o[k].symmap[j] = (uint32_t)(first_global + (UINT32_MAX - 1 - m));
		}

	/* the sections' bytes, in index order */
	Elf64_Ehdr eh = o[0].eh;
	put(&out, &eh, sizeof eh); /* rewritten at the end */
	put(&shstr, "", 1);
	for (size_t x = 1; x < sym_sec; x++) {
		osec *d = &os[order[x]];
		Elf64_Shdr sh = d->sh;
		sh.sh_name = (uint32_t)put(&shstr, d->name, strlen(d->name) + 1);
		if (d->rel) {
			sh.sh_link = (uint32_t)sym_sec;
			sh.sh_info = d->target;
		}
		align(&out, sh.sh_addralign);
		sh.sh_offset = out.len;
		size_t start = out.len;
		for (int k = 0; k < n; k++)
			for (unsigned i = 0; i < o[k].eh.e_shnum; i++) {
				if (!kept(&o[k], i) || o[k].secmap[i] != x)
					continue;
				const Elf64_Shdr *s = &o[k].sh[i];
				const unsigned char *src = o[k].base + s->sh_offset;
				if (!d->rel) {
					if (s->sh_type != SHT_NOBITS) {
						put(&out, NULL, (size_t)(start + o[k].secoff[i] - out.len));
						put(&out, src, s->sh_size);
					}
					continue;
				}
				uint64_t moved = o[k].secoff[s->sh_info];
				for (size_t e = 0; e < s->sh_size; e += sizeof(Elf64_Rela)) {
					Elf64_Rela r;
					memcpy(&r, src + e, sizeof r);
					uint64_t sym = ELF64_R_SYM(r.r_info);
					if (sym >= o[k].nsym || o[k].symmap[sym] == UINT32_MAX) {
						refuse(why, "a relocation against an unknown symbol");
						goto done;
					}
					const Elf64_Sym *is = &o[k].sym[sym];
					if (sym && ELF64_ST_TYPE(is->st_info) == STT_SECTION)
						r.r_addend += (int64_t)o[k].secoff[is->st_shndx];
					r.r_offset += moved;
					r.r_info = ELF64_R_INFO((uint64_t)o[k].symmap[sym], ELF64_R_TYPE(r.r_info));
					put(&out, &r, sizeof r);
				}
			}
		if (sh.sh_type == SHT_NOBITS)
			sh.sh_offset = start;
		else if (d->rel)
			sh.sh_size = out.len - start;
		else
			put(&out, NULL, (size_t)(start + sh.sh_size - out.len));
		osh[x] = sh;
	}
	Elf64_Shdr *ss = &osh[sym_sec];
	ss->sh_name = (uint32_t)put(&shstr, ".symtab", 8);
	ss->sh_type = SHT_SYMTAB;
	ss->sh_link = (uint32_t)str_sec;
	ss->sh_info = (uint32_t)first_global;
	ss->sh_addralign = 8;
	ss->sh_entsize = sizeof(Elf64_Sym);
	align(&out, 8);
	ss->sh_offset = put(&out, symtab.p, symtab.len);
	ss->sh_size = symtab.len;
	Elf64_Shdr *st = &osh[str_sec];
	st->sh_name = (uint32_t)put(&shstr, ".strtab", 8);
	st->sh_type = SHT_STRTAB;
	st->sh_addralign = 1;
	st->sh_offset = put(&out, strtab.p, strtab.len);
	st->sh_size = strtab.len;
	Elf64_Shdr *sn = &osh[shstr_sec];
	sn->sh_name = (uint32_t)put(&shstr, ".shstrtab", 10);
	sn->sh_type = SHT_STRTAB;
	sn->sh_addralign = 1;
	sn->sh_offset = put(&out, shstr.p, shstr.len);
	sn->sh_size = shstr.len;
	align(&out, 8);
	eh.e_shoff = out.len;
	eh.e_shnum = (uint16_t)nsec;
	eh.e_shstrndx = (uint16_t)shstr_sec;
	eh.e_phoff = 0;
	eh.e_phnum = 0;
	eh.e_phentsize = 0;
	eh.e_ehsize = sizeof eh;
	put(&out, osh, nsec * sizeof *osh);
	if (out.oom || symtab.oom || strtab.oom || shstr.oom) {
		refuse(why, "out of memory");
		goto done;
	}
	memcpy(out.p, &eh, sizeof eh);
	result = out.p;
	*size = out.len;
	out.p = NULL;
done:
	free(sec_symbol);
	if (o)
		for (int k = 0; k < n; k++)
			unload(&o[k]);
	free(o);
	free(g);
	free(os);
	free(order);
	free(osh);
	free(out.p);
	free(symtab.p);
	free(strtab.p);
	free(shstr.p);
	return result;
}
