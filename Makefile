# chain -- a language for chain-rule probabilistic models, and its compiler.
#
#   make               build build/chain, build/libchain.a, build/libchain.so
#   make deps          install the missing Debian packages (sudo when not root)
#   make test          unit, golden-diagnostic and end-to-end tests, then the
#                      same again under AddressSanitizer + UBSan
#   make demo          the README's main job: train NADE on the shipped digits
#   make install       PREFIX=/usr/local DESTDIR=
#   make bench         benchmarks (not tests)
#
# Out-of-tree: everything goes to $(BUILD) (default build/); `make
# BUILD=build-asan SANITIZE=1` is the sanitizer build that `make test` runs.

VERSION     = 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD      ?= build
LLVM_CONFIG ?= llvm-config-19
CC         ?= cc
FLEX       ?= flex
BISON      ?= bison

ifeq ($(origin CC),default)
CC = cc
endif

LLVM_CFLAGS := $(shell $(LLVM_CONFIG) --cflags 2>/dev/null | sed 's/-std=[^ ]*//g')
LLVM_LIBS   := $(shell $(LLVM_CONFIG) --ldflags --libs 2>/dev/null) $(shell $(LLVM_CONFIG) --system-libs 2>/dev/null)
LLVM_LIBDIR := $(shell $(LLVM_CONFIG) --libdir 2>/dev/null)

# build/chain links LLVM (and libstdc++) statically when LLVM's static
# libraries are there (llvm-19-dev ships them), as a position-dependent
# executable that exports only the runtime (chain_*, which the JIT's code
# calls): libLLVM-19.so costs every command about 15 ms before main (340,000
# relocations of its tables, symbol lookups, the pages they dirty), 4-5 ms
# remain (`chain --version`, median of 60 runs: 23.7 -> 5.3 ms), a good part
# of the gap between `chain build examples/nade.chain` and 0.1 s.  All
# targets, so --target still cross-compiles.  LLVM_STATIC=0 (and the
# sanitizer build, and the unit tests) link the shared library.  zstd by its
# run-time name: LLVM needs it, and Debian installs libzstd1 with LLVM but not
# libzstd-dev.
LLVM_STATIC ?= $(if $(wildcard $(LLVM_LIBDIR)/libLLVMCore.a),$(if $(filter 1,$(SANITIZE)),0,1),0)
ifeq ($(LLVM_STATIC),1)
CHAIN_EXPORTS   = -Wl,--export-dynamic-symbol='chain_*'
CHAIN_LLVM_LIBS := -no-pie -L$(LLVM_LIBDIR) \
  $(shell $(LLVM_CONFIG) --link-static --libs all-targets core orcjit native passes analysis bitwriter target 2>/dev/null) \
  -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic -static-libgcc -lrt -ldl -lm -lz \
  $(if $(wildcard $(LLVM_LIBDIR)/libzstd.so /usr/lib/*/libzstd.so /usr/lib/libzstd.so),-lzstd,-l:libzstd.so.1)
else
CHAIN_EXPORTS   = -rdynamic
CHAIN_LLVM_LIBS = $(LLVM_LIBS) -Wl,-rpath,$(LLVM_LIBDIR)
endif

WARN    = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT    ?= -O2 -g
CFLAGS ?= $(OPT)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -MMD -MP \
             -Iruntime/include -Icompiler -I$(BUILD)/grammar -DCHAIN_VERSION='"$(VERSION)"'
ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDSAN = -fsanitize=address,undefined
endif
LDFLAGS ?=
RT_LIBS = -lz -lpng -lm -lpthread

RUNTIME_SRC  = $(wildcard runtime/*.c)
COMPILER_SRC = $(filter-out compiler/main.c,$(wildcard compiler/*.c))
RUNTIME_OBJ  = $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
COMPILER_OBJ = $(COMPILER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/grammar/lexer.o $(BUILD)/grammar/parser.o $(BUILD)/stdlib_src.o
UNIT_SRC     = $(wildcard tests/unit/test_*.c)
UNIT_BIN     = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/chain $(BUILD)/libchain.a $(BUILD)/libchain.so $(BUILD)/chain.pc

# ---- grammar: flex + bison, generated into $(BUILD)/grammar (`&:`: one run
# makes both files; GNU make >= 4.3, Debian 12 has 4.3)
$(BUILD)/grammar/parser.c $(BUILD)/grammar/parser.h &: grammar/parser.y
	@mkdir -p $(@D)
	$(BISON) -Wall -Werror --defines=$(BUILD)/grammar/parser.h -o $(BUILD)/grammar/parser.c $<
$(BUILD)/grammar/lexer.c $(BUILD)/grammar/lexer.h &: grammar/lexer.l $(BUILD)/grammar/parser.h
	@mkdir -p $(@D)
	$(FLEX) --header-file=$(BUILD)/grammar/lexer.h -o $(BUILD)/grammar/lexer.c $<
# generated code: warnings we do not control are not errors
$(BUILD)/grammar/%.o: $(BUILD)/grammar/%.c $(BUILD)/grammar/parser.h $(BUILD)/grammar/lexer.h
	$(CC) $(ALL_CFLAGS) -Wno-error -Wno-unused-function -Wno-sign-compare -Wno-missing-prototypes -Wno-shadow -c $< -o $@

# ---- stdlib/*.chain embedded into the binary as C strings
$(BUILD)/stdlib_src.c: $(wildcard stdlib/*.chain) tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh $(wildcard stdlib/*.chain) > $@
$(BUILD)/stdlib_src.o: $(BUILD)/stdlib_src.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/compiler/%.o: compiler/%.c $(BUILD)/grammar/parser.h $(BUILD)/grammar/lexer.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LLVM_CFLAGS) -c $< -o $@
$(BUILD)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(RUNTIME_LOOP_FLAGS_$(*F)) -c $< -o $@

# The training step's loops over every param (the gradient sum, Adam):
# vectorized (gcc vectorizes at -O2 only loops of known trip count), and sqrt
# without errno (its argument is never negative), so it vectorizes too.
RUNTIME_LOOP_FLAGS_optim = -O3 -fno-math-errno
RUNTIME_LOOP_FLAGS_train = -O3 -fno-math-errno

# ---- libchain
$(BUILD)/libchain.a: $(RUNTIME_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libchain.so: $(RUNTIME_OBJ)
	$(CC) -shared -Wl,-soname,libchain.so.0 $(LDSAN) $(LDFLAGS) -o $@ $^ $(RT_LIBS)
$(BUILD)/chain.pc: Makefile
	@mkdir -p $(@D)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: chain\nDescription: runtime of the chain model compiler\nVersion: %s\nLibs: -L$${libdir} -lchain\nLibs.private: -lz -lpng -lm -lpthread\nCflags: -I$${includedir}\n' '$(PREFIX)' '$(VERSION)' > $@

# ---- the chain binary: compiler library + runtime (exported for the JIT)
$(BUILD)/chain: $(BUILD)/compiler/main.o $(COMPILER_OBJ) $(BUILD)/libchain.a
	$(CC) $(LDSAN) $(LDFLAGS) $(CHAIN_EXPORTS) -o $@ $(BUILD)/compiler/main.o $(COMPILER_OBJ) \
	  -Wl,--whole-archive $(BUILD)/libchain.a -Wl,--no-whole-archive \
	  $(CHAIN_LLVM_LIBS) $(RT_LIBS) -ldl

# ---- tests
$(BUILD)/tests/%.o: tests/unit/%.c $(BUILD)/grammar/parser.h $(BUILD)/grammar/lexer.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LLVM_CFLAGS) -Itests/unit -c $< -o $@
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(COMPILER_OBJ) $(BUILD)/libchain.a
	$(CC) $(LDSAN) $(LDFLAGS) -rdynamic -o $@ $< $(COMPILER_OBJ) \
	  -Wl,--whole-archive $(BUILD)/libchain.a -Wl,--no-whole-archive \
	  $(LLVM_LIBS) -Wl,-rpath,$(LLVM_LIBDIR) $(RT_LIBS) -ldl -lcmocka

tests: $(UNIT_BIN)

check-unit: all $(UNIT_BIN)
	@sh tests/run_unit.sh $(BUILD)
check-errors: all
	@sh tests/run_errors.sh $(BUILD)/chain
check-e2e: all
	@LINK_FLAGS="$(LDSAN)" sh tests/run_e2e.sh $(BUILD)

# One pass of every test in this build, then the same under the sanitizers.
check: check-unit check-errors check-e2e
test: deps-quiet
	$(MAKE) check
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT='-O1 -g' check
	$(MAKE) BUILD=build-clang CC=clang all tests
	@echo "all tests passed (plain and ASan+UBSan; clang build warning-free)"

deps:
	sh tools/deps.sh
deps-quiet:
	@sh tools/deps.sh --quiet

demo: all
	sh tools/demo.sh $(BUILD)

bench: all
	sh bench/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/chain
	install -m 755 $(BUILD)/chain $(DESTDIR)$(PREFIX)/bin/chain
	install -m 644 $(BUILD)/libchain.a $(DESTDIR)$(PREFIX)/lib/libchain.a
	install -m 755 $(BUILD)/libchain.so $(DESTDIR)$(PREFIX)/lib/libchain.so.0
	ln -sf libchain.so.0 $(DESTDIR)$(PREFIX)/lib/libchain.so
	install -m 644 runtime/include/chain/*.h $(DESTDIR)$(PREFIX)/include/chain/
	install -m 644 $(BUILD)/chain.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/chain.pc

clean:
	rm -rf build build-asan build-clang

.PHONY: all tests check check-unit check-errors check-e2e test deps deps-quiet demo bench install clean
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
