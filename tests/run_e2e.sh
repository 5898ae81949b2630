#!/bin/sh
# run_e2e.sh BUILD -- end-to-end tests of the chain binary as a user runs it:
# build a model into an object and a header, link it into a C program with
# libchain; train -> eval -> sample -> resume on small data; every data
# loader and bad-file case with its message; checkpoint atomicity.
BUILD=${1:-build}
CHAIN=$(cd "$BUILD" && pwd)/chain
CC=${CC:-cc}
T=$(mktemp -d /tmp/chain-e2e-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0

ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect_fail NAME PATTERN CMD...: exit status 1 and PATTERN in the output
expect_fail() {
	name=$1; pattern=$2; shift 2
	"$@" > "$T/out" 2>&1; rc=$?
	if [ $rc -ne 1 ]; then bad "$name: exit status $rc, want 1"; cat "$T/out"; return; fi
	if ! grep -q -- "$pattern" "$T/out"; then bad "$name: output lacks '$pattern'"; cat "$T/out"; return; fi
	ok
}
# expect_ok NAME CMD...
expect_ok() {
	name=$1; shift
	if "$@" > "$T/out" 2>&1; then ok; else bad "$name: exit status $?"; cat "$T/out"; fi
}

# ---- chain build: object + header, linked into a user's program
expect_ok "build nade.o" "$CHAIN" build examples/nade.chain -D H=20 -o "$T/nade.o"
expect_ok "build nade.h" "$CHAIN" build examples/nade.chain -D H=20 --emit header -o "$T/nade.h"
for e in asm llvm bc; do
	expect_ok "build --emit $e" "$CHAIN" build examples/fvsbn.chain --emit $e -o "$T/fvsbn.$e"
done
grep -q "define.*fvsbn_logp" "$T/fvsbn.llvm" && ok || bad "--emit llvm has no fvsbn_logp"
# a kernel that does what another does is a call of it (cg_share.c): sample
# is complete with prefix 0, objective's gradient is loglik_grad's, logp is
# logp_batch of one row; one body each, for half the build time
expect_ok "build nade --emit llvm" "$CHAIN" build examples/nade.chain -D H=20 --emit llvm -o "$T/nade.llvm"
for m in fvsbn nade; do
	for call in "sample complete" "objective loglik_grad" "logp logp_batch"; do
		caller=${call% *}; callee=${call#* }
		if awk -v f="define.*@${m}_$caller[(]" -v c="call .*@${m}_$callee[(]" \
			'$0 ~ f {in_f = 1} in_f && $0 ~ c {found = 1} in_f && /^}/ {in_f = 0} END {exit !found}' "$T/$m.llvm"
		then ok; else bad "$m: ${m}_$caller does not call ${m}_$callee"; fi
	done
done
# the temps of a kernel are disjoint (cg_kernel.c's alias scopes): the
# gradient's loads of them say so, or its loops over H stay scalar
if awk '/define.*@nade_loglik_grad[(]/ {in_f = 1} in_f && /load .*!alias.scope .*!noalias/ {found = 1}
	in_f && /^}/ {in_f = 0} END {exit !found}' "$T/nade.llvm"
then ok; else bad "nade: nade_loglik_grad's loads of temps carry no alias scopes"; fi
# -o -: stdout, the same bytes as the file, and no file named '-'
if (cd "$T" && "$CHAIN" build "$OLDPWD/examples/fvsbn.chain" --emit llvm -o - > "$T/stdout.ll" 2>&1) &&
   cmp -s "$T/stdout.ll" "$T/fvsbn.llvm" && [ ! -e "$T/-" ]; then ok; else bad "build -o - is not stdout"; fi
expect_ok "build -O0 f32" "$CHAIN" build examples/nade.chain -O0 --precision f32 -o "$T/nade32.o"
if $CC -std=c11 -Wall -Wextra -Werror -I"$T" -Iruntime/include tests/e2e/embed.c "$T/nade.o" "$BUILD/libchain.a" $LINK_FLAGS -lz -lpng -lm -lpthread -o "$T/embed" 2> "$T/out"; then
	expect_ok "embedded program runs" "$T/embed"
else
	bad "embedded program does not link"; cat "$T/out"
fi
expect_fail "unknown --emit" "expected obj, asm" "$CHAIN" build examples/nade.chain --emit exe
expect_fail "bad -D" "positive integer" "$CHAIN" build examples/nade.chain -D H=abc
expect_fail "unknown dim" "no dim named 'Q'" "$CHAIN" build examples/nade.chain -D Q=3
expect_fail "missing model file" "cannot open" "$CHAIN" check "$T/nope.chain"
expect_fail "unknown command" "unknown command" "$CHAIN" frobnicate
expect_fail "bad target" "target" "$CHAIN" build examples/fvsbn.chain --target nonsense-triple -o "$T/x.o"
# a target LLVM reports it cannot compile for (no libm calls on bpf): exit
# 1 with LLVM's reason, no object (it once wrote one and exited 0)
expect_fail "a target that cannot take the kernels" "cannot compile the model for target bpf" "$CHAIN" build examples/fvsbn.chain -D n=6 --target bpf -o "$T/x.o"
[ ! -e "$T/x.o" ] && ok || bad "a failed build left an output file"
# a target that has no object files (nvptx64 emits PTX text): the error,
# and no leak of the buffer LLVM makes on failure too (a LeakSanitizer
# report under the sanitizers, whose exit status stays 1)
expect_fail "an object for a target without objects" "cannot emit an object" "$CHAIN" build examples/fvsbn.chain -D n=6 --target nvptx64 -o "$T/x.o"
! grep -q "Sanitizer" "$T/out" && ok || { bad "an object for nvptx64: a sanitizer report"; cat "$T/out"; }
# an output that is not a file (/dev/null, a FIFO) is written in place, not
# renamed over (which replaced /dev/null with a file); a directory is refused
mkfifo "$T/fifo"
timeout 120 cat "$T/fifo" > "$T/from-fifo.ll" &  # bounded: a build that never opens it
expect_ok "build into a FIFO" timeout 120 "$CHAIN" build examples/fvsbn.chain -D n=6 --emit llvm -o "$T/fifo"
wait
"$CHAIN" build examples/fvsbn.chain -D n=6 --emit llvm -o "$T/direct.ll"
[ -p "$T/fifo" ] && cmp -s "$T/from-fifo.ll" "$T/direct.ll" && ok || bad "build into a FIFO: replaced, or not the same output"
expect_ok "build to /dev/null" "$CHAIN" build examples/fvsbn.chain -D n=6 -o /dev/null
# --emit ir goes the same way (it once wrote with a plain fopen: an error
# left half a file over the previous one, and /dev/full exited 0)
timeout 120 cat "$T/fifo" > "$T/ir-from-fifo.txt" &
expect_ok "build --emit ir into a FIFO" timeout 120 "$CHAIN" build examples/fvsbn.chain -D n=6 --emit ir -o "$T/fifo"
wait
"$CHAIN" build examples/fvsbn.chain -D n=6 --emit ir -o "$T/direct.ir"
[ -p "$T/fifo" ] && [ -s "$T/direct.ir" ] && cmp -s "$T/ir-from-fifo.txt" "$T/direct.ir" && ok || bad "build --emit ir into a FIFO: replaced, or not the same output"
expect_ok "build --emit ir to /dev/null" "$CHAIN" build examples/fvsbn.chain -D n=6 --emit ir -o /dev/null
expect_fail "build --emit ir to a full device" "/dev/full: No space left on device" "$CHAIN" build examples/fvsbn.chain -D n=6 --emit ir -o /dev/full
expect_fail "build --emit ir to a full stdout" "cannot write to stdout" sh -c '"$0" build examples/fvsbn.chain -D n=6 --emit ir > /dev/full' "$CHAIN"
expect_fail "build --emit ir into a directory" "is a directory" "$CHAIN" build examples/fvsbn.chain -D n=6 --emit ir -o "$T"
# a write that fails half-way (past the file size limit, SIGXFSZ ignored so
# that write() says EFBIG): an error, and the previous file as it was
mkdir "$T/fsize"
echo previous > "$T/fsize/m.ir"
(trap '' XFSZ; ulimit -f 2; exec "$CHAIN" build examples/fvsbn.chain -D n=30 --emit ir -o "$T/fsize/m.ir") > "$T/out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "m.ir: File too large" "$T/out" && ok || { bad "build --emit ir past the file size limit: exit status $rc"; cat "$T/out"; }
[ "$(cat "$T/fsize/m.ir")" = previous ] && [ "$(ls "$T/fsize")" = m.ir ] && ok || { bad "a failed --emit ir changed the previous file or left a temporary"; ls -l "$T/fsize"; }
# an output that is a symbolic link: the file it names is replaced and the
# link kept (the rename replaced the link: -o /dev/stdout, redirected to a
# file, made /dev/stdout a file for every process), and the file chain's
# own stdout is redirected to is written in place
mkdir "$T/links"
echo previous > "$T/links/real.ll"
ln -s real.ll "$T/links/link.ll"
expect_ok "build -o a symbolic link" "$CHAIN" build examples/fvsbn.chain -D n=6 --emit llvm -o "$T/links/link.ll"
[ -L "$T/links/link.ll" ] && cmp -s "$T/links/real.ll" "$T/direct.ll" && [ "$(ls "$T/links" | wc -l)" -eq 2 ] && ok || { bad "build -o a symbolic link: the link replaced, or its file not written"; ls -l "$T/links"; }
for e in llvm ir header; do
	"$CHAIN" build examples/fvsbn.chain -D n=6 --emit $e -o /proc/self/fd/1 > "$T/links/stdout.$e" 2> "$T/out"; rc=$?
	"$CHAIN" build examples/fvsbn.chain -D n=6 --emit $e -o - > "$T/links/dash.$e" 2>> "$T/out"
	[ $rc -eq 0 ] && [ -s "$T/links/stdout.$e" ] && cmp -s "$T/links/stdout.$e" "$T/links/dash.$e" && ok || { bad "build --emit $e -o /proc/self/fd/1: exit status $rc, or not what -o - writes"; cat "$T/out"; }
done
# an output that is an input is refused and the input left whole (build
# -o m.chain replaced the model with its object, train -o d.amat the data
# with the params)
cp examples/fvsbn.chain "$T/self.chain"
cp examples/fvsbn.chain "$T/self.h"
expect_fail "build -o the model file" "the output $T/self.chain is the model file" "$CHAIN" build "$T/self.chain" -D n=6 -o "$T/self.chain"
expect_fail "build --emit ir -o the model file" "is the model file" "$CHAIN" build "$T/self.chain" -D n=6 --emit ir -o "$T/../${T##*/}/self.chain"
(cd "$T" && "$CHAIN" build self.h -D n=6 --emit header > out 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "the output self.h is the model file" "$T/out" && ok || { bad "build m.h --emit header: exit status $rc"; cat "$T/out"; }
cmp -s examples/fvsbn.chain "$T/self.chain" && cmp -s examples/fvsbn.chain "$T/self.h" && ok || bad "a build into its model file changed it"
expect_fail "optimize -o the model file" "optimize: -o $T/self.chain is the model file" "$CHAIN" optimize "$T/self.chain" -o "$T/self.chain"
cmp -s examples/fvsbn.chain "$T/self.chain" && ok || bad "optimize -o the model file changed it"
[ -c /dev/null ] && ok || bad "/dev/null is no longer a device"
expect_fail "build into a directory" "is a directory" "$CHAIN" build examples/fvsbn.chain -D n=6 -o "$T"
# an output name of 255 bytes, the most a name may have: its temporary
# (name + ".tmpXXXXXX") was too long, and the build failed
mkdir "$T/long"
long=$(printf '%0253d' 0)
expect_ok "build -o a name of 255 bytes" "$CHAIN" build examples/fvsbn.chain -D n=6 -o "$T/long/$long.o"
expect_ok "build --emit header -o a name of 255 bytes" "$CHAIN" build examples/fvsbn.chain -D n=6 --emit header -o "$T/long/$long.h"
[ -s "$T/long/$long.o" ] && [ -s "$T/long/$long.h" ] && [ "$(ls "$T/long" | wc -l)" -eq 2 ] && ok || { bad "build -o a name of 255 bytes: not the two files alone"; ls "$T/long"; }
# the commands that run the model link its object in-process: another
# machine's code is refused before it is compiled (it once ran, and crashed)
other_arch=aarch64; [ "$(uname -m)" = aarch64 ] && other_arch=x86_64
expect_fail "run for another target" "is not this machine" "$CHAIN" gradcheck examples/nade.chain -D n=12 -D H=6 --target "$other_arch-linux-gnu"
expect_ok "run for this target, another vendor" "$CHAIN" gradcheck examples/nade.chain -D n=12 -D H=6 --target "$(uname -m)-linux-gnu"
# 2^24 positions, the most a model has (inputs are not positions)
printf 'model m\ndim n = 8388608\ninput u : real[134217728]\ndata x : bin[n]\ndata y : bin[n]\nx[i] ~ bernoulli_logit(u[i])\ny[i] ~ bernoulli_logit(0)\nmaximize loglik\n' > "$T/pos24.chain"
expect_ok "check a model of 2^24 positions and 2^27 inputs" "$CHAIN" check "$T/pos24.chain"
expect_ok "check summary" "$CHAIN" check examples/fvsbn.chain
grep -q "structurally unused" "$T/out" && ok || bad "check does not count unused params"
# a family body sees its own names, not the model's: a param k does not
# clash with categorical_logits' sum(k in ...)
printf 'model m\ndata x : cat(3)\nparam k : real[3]\nx ~ categorical_logits(k)\nmaximize loglik\n' > "$T/k.chain"
expect_ok "a param named like a family's index" "$CHAIN" build "$T/k.chain" -o "$T/k.o"
# nor the model's dims: a `dim K` (of 10) neither hides nor fixes
# categorical_logits' size K (3 here); once "unknown name 'K'"
printf 'model m\ndim n = 4\ndim K = 10\ndata y : cat(3)[n]\nparam L : real[n, 3]\ny[i] ~ categorical_logits(L[i, :])\nmaximize loglik\n' > "$T/dimk.chain"
expect_ok "a dim named like a stdlib family's size" "$CHAIN" gradcheck "$T/dimk.chain"
# a family of the model file may size an argument by a model dim, and its
# body sees that dim (once "unknown name 'M'")
printf 'model m\ndim n = 4\ndim M = 3\ndata y : cat(M)[n]\nparam L : real[n, M]\nfamily c(l : real[M]) on cat(M) {\n  logp(v) = l[v] - logsumexp(l)\n  let u = uniform()\n  sample = sum(k in 0..M-2) (sum(j in 0..k) exp(l[j] - logsumexp(l)) < u)\n}\ny[i] ~ c(L[i, :])\nmaximize loglik\n' > "$T/dimm.chain"
expect_ok "a model family sized by a model dim" "$CHAIN" gradcheck "$T/dimm.chain"
printf 'model m\ndim n = 4\ndim M = 3\ndata y : cat(M)[n]\nparam L : real[n, 4]\nfamily c(l : real[M]) on cat(M) {\n  logp(v) = l[v] - logsumexp(l)\n  sample = 0\n}\ny[i] ~ c(L[i, :])\nmaximize loglik\n' > "$T/dimm4.chain"
expect_fail "a model family's argument of another size than its model dim" "argument 'l' of c has 4 elements where 3 are expected" "$CHAIN" check "$T/dimm4.chain"
expect_ok "gradcheck nade" "$CHAIN" gradcheck examples/nade.chain -D n=12 -D H=6
# at its own sizes, NADE's objective (hundreds of nats) rounds enough that
# the differences at step h are off by ~1e-6 of its small gradient entries
expect_ok "gradcheck nade as shipped" "$CHAIN" gradcheck examples/nade.chain
# l1 of a param no conditional sees: it starts at 0, where |x| has
# subgradient 0 (the unused entries' gradient is 0), not 1
printf 'model l1u\ndata x : bin[2]\nparam b : real[2]\nparam V : real[2]\nx[i] ~ bernoulli_logit(b[i])\nmaximize loglik - 1e-3 * l1(V)\n' > "$T/l1u.chain"
expect_ok "gradcheck l1 of an unused param" "$CHAIN" gradcheck "$T/l1u.chain"
# the model file is the first argument whatever its name, as for check
cp "$T/l1u.chain" "$T/l1u_model"
expect_ok "gradcheck a model file without .chain" "$CHAIN" gradcheck "$T/l1u_model"
expect_fail "a command without a model file" "no model file given: chain COMMAND MODEL.chain" "$CHAIN" gradcheck --rows 2
# a model with inputs samples only with rows that hold them (once: zeros)
printf 'model inp\ninput u : real[2]\ndata x : bin[3]\nparam w : real[3, 2]\nx[i] ~ bernoulli_logit(dot(w[i, :], u))\nmaximize loglik\n' > "$T/inp.chain"
printf '5 -5 0 1 0\n-5 5 1 0 1\n' > "$T/inp.txt"
expect_ok "train a model with inputs" "$CHAIN" train "$T/inp.chain" --data "$T/inp.txt" --epochs 2 -o "$T/inp.safetensors" --quiet
expect_fail "sample a model with inputs from scratch" "chain sample: model inp has input variables (u): give rows that hold their values with --given FILE --prefix 0" "$CHAIN" sample "$T/inp.chain" --params "$T/inp.safetensors" -n 2
expect_ok "sample a model with inputs given" "$CHAIN" sample "$T/inp.chain" --params "$T/inp.safetensors" --given "$T/inp.txt" --prefix 0 -n 2 -o "$T/inp-s.txt"
awk 'NR == 1 && ($1 != 5 || $2 != -5) {bad = 1} NR == 2 && ($1 != -5 || $2 != 5) {bad = 1} END {exit bad || NR != 2}' "$T/inp-s.txt" && ok || { bad "sampled rows lost their inputs"; cat "$T/inp-s.txt"; }
# one-position variables in a row share a loop over the rows (lower.c), in
# which complete keeps the given values before the prefix (a select, not a
# branch) and draws from the prefix on, however the prefix cuts the run
printf 'model sc\ndata a : bin\ndata b : bin\ndata c : bin\ndata v : bin[3]\ndata d : bin\nparam w : real[4]\na ~ bernoulli_logit(w[0])\nb ~ bernoulli_logit(w[1] + 20 - 40 * a)\nc ~ bernoulli_logit(w[2] - 20 + 40 * b)\nv[i] ~ bernoulli_logit(w[3] + c)\nd ~ bernoulli_logit(w[0] * v[2])\nmaximize loglik\n' > "$T/sc.chain"
expect_ok "build --emit ir of scalar variables" "$CHAIN" build "$T/sc.chain" --emit ir -o "$T/sc.ir"
# (in the kernels over blocks of rows: log p of a batch, sample, complete)
awk '/^kernel/ {on = $2 == "logp_batch" || $2 == "sample" || $2 == "complete"} on && /for k in \[0, 1\)/ {n++} END {exit n > 0}' "$T/sc.ir" && ok || bad "scalar variables still have a position loop each"
printf '1 0 1 0 1 0 1\n1 0 1 1 1 1 0\n0 1 0 1 0 1 1\n' > "$T/sc.txt"
expect_ok "train scalar variables" "$CHAIN" train "$T/sc.chain" --data "$T/sc.txt" --epochs 2 -o "$T/sc.safetensors" --quiet
for p in 1 2 5; do
	expect_ok "sample scalar variables given $p" "$CHAIN" sample "$T/sc.chain" --params "$T/sc.safetensors" --given "$T/sc.txt" --prefix $p -n 3 -o "$T/sc-$p.txt"
	# the given columns are kept; b = 1 - a and c = b where they are drawn
	# (logits of +-20: a draw otherwise has odds of 2e-9)
	paste -d' ' "$T/sc.txt" "$T/sc-$p.txt" | awk -v p=$p '{for (i = 1; i <= p; i++) if ($i != $(i + 7)) bad = 1
		if (p < 2 && $9 != 1 - $8) bad = 1; if (p < 3 && $10 != $9) bad = 1} END {exit bad || NR != 3}' && ok || { bad "complete with prefix $p"; cat "$T/sc-$p.txt"; }
done
# every kernel writes what the descriptor says and nothing past it, for
# each stdlib family with arguments that are reads of a tensor's element,
# row or column, a scalar param, a computed value, under a permuted order
bn=0
for cond in "bin|bernoulli_logit(b[i])" "bin|bernoulli(sigmoid(b[i]))" "bin|bernoulli_logit(s)" \
	"cat(K)|categorical_logits(L[i, :])" "cat(K)|categorical_logits(LT[:, i] + sum(j before i) 0.5 * x[j])" \
	"real|normal(b[i], S[i])" "real|normal_logscale(b[i], s)" "real|mixture_normal(L[i, :], M[i, :], LT[:, i])" \
	"int|binomial(9, sigmoid(b[i]))" "int|poisson_log(b[i])"; do
	bn=$((bn + 1))
	printf 'model bnd%d\ndim n = 5\ndim K = 3\nconst S : real[n] = [1, 2, 3, 4, 5]\nconst P : int[n] = [4, 2, 0, 1, 3]\ndata x : %s[n]\nparam b : real[n]\nparam s : real\nparam L : real[n, K]\nparam LT : real[K, n]\nparam M : real[n, K]\norder x by P\nx[i] ~ %s\nmaximize loglik\n' \
		$bn "${cond%%|*}" "${cond#*|}" > "$T/bnd$bn.chain"
	if "$CHAIN" build "$T/bnd$bn.chain" -o "$T/bnd$bn.o" > "$T/out" 2>&1 &&
	   $CC -std=c11 -Wall -Wextra -Werror -Iruntime/include -DMODEL=bnd${bn}_model tests/e2e/bounds.c "$T/bnd$bn.o" \
		"$BUILD/libchain.a" $LINK_FLAGS -lz -lpng -lm -lpthread -o "$T/bounds" >> "$T/out" 2>&1 &&
	   "$T/bounds" >> "$T/out" 2>&1; then ok; else bad "kernels of x[i] ~ ${cond#*|} write out of bounds"; cat "$T/out"; fi
done
# a sign is not a count (strtoull wraps -1 to 2^64 - 1: a crash once)
expect_fail "gradcheck --rows -1" "chain gradcheck: --rows: expected an integer from 1 to 1000000, got '-1'" "$CHAIN" gradcheck examples/nade.chain -D n=12 -D H=6 --rows -1
expect_fail "gradcheck --seed -1" "chain gradcheck: --seed: expected a non-negative integer below 2^64, got '-1'" "$CHAIN" gradcheck examples/nade.chain -D n=12 -D H=6 --seed -1
expect_fail "compare --rows -1" "chain compare: --rows: expected an integer from 1 to 1000000, got '-1'" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --rows -1
# gradcheck and compare make --rows rows of the model's reals: at most
# 2^28 values (ASan aborted on 10^6 rows of 2^20 reals, 8 TB)
printf 'model wide\ndim n = 1048576\ndata x : bin[n]\nparam b : real[n]\nx[i] ~ bernoulli_logit(b[i])\nmaximize loglik\n' > "$T/wide.chain"
expect_fail "gradcheck --rows 10^6 of 2^20 reals" "^chain gradcheck: --rows: expected an integer from 1 to 256 (1048576 values a row, at most 2^28 in all), got '1000000'\$" "$CHAIN" gradcheck "$T/wide.chain" --rows 1000000
expect_fail "compare --rows 257 of 2^20 reals" "^chain compare: --rows: expected an integer from 1 to 256 (1048576 values a row, at most 2^28 in all), got '257'\$" "$CHAIN" compare "$T/wide.chain" --ref examples/reference/fvsbn.c --rows 257
expect_fail "optimize --max-iter -5" "chain optimize: --max-iter: expected an integer from 1 to 2147483647, got '-5'" "$CHAIN" optimize examples/quadratic.chain --max-iter -5
# every numeric flag of every command is parsed by cmd_num.c, strictly: no
# sign on a count, no leading or trailing space, no junk, no hexadecimal,
# no inf/nan, no overflow or underflow (strtol/strtod took ' 3' and '+2')
expect_fail "gradcheck --tol ' 1e-3'" "chain gradcheck: --tol: expected a positive number, got ' 1e-3'" "$CHAIN" gradcheck examples/fvsbn.chain -D n=4 --tol " 1e-3"
expect_fail "gradcheck --tol 1e-3x" "got '1e-3x'" "$CHAIN" gradcheck examples/fvsbn.chain -D n=4 --tol 1e-3x
expect_fail "optimize --tol +1e-9" "chain optimize: --tol: expected a positive number, got '+1e-9'" "$CHAIN" optimize examples/quadratic.chain --tol +1e-9
expect_fail "compare --repeats ' 3'" "chain compare: --repeats: expected an integer from 1 to 999, got ' 3'" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --repeats " 3"
expect_fail "compare --tol 0x1p-3" "chain compare: --tol: expected a positive number, got '0x1p-3'" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --tol 0x1p-3
expect_fail "-D n=+3" "chain: -D n: expected a positive integer below 2^63, got '+3'" "$CHAIN" check examples/fvsbn.chain -D n=+3
expect_fail "-D 'n= 3'" "got ' 3'" "$CHAIN" check examples/fvsbn.chain -D "n= 3"
# every flag that takes a value takes it as --flag VALUE or --flag=VALUE,
# in every command (compare, gradcheck, optimize and build's once refused
# the second: "unknown flag '--cc=clang'", "--rows=2 needs a value"); a
# switch given a value is an error naming it
expect_ok "compare --flag=value" "$CHAIN" compare examples/fvsbn.chain -D n=784 --ref=examples/reference/fvsbn.c --cc=cc --cflags=-O1 --rows=8 --repeats=3 --seed=2 --tol=1e-9 --data=examples/data/binarized-valid.amat.gz
grep -q "^fvsbn against examples/reference/fvsbn.c: 8 rows" "$T/out" && ok || { bad "compare --rows=8 did not compare 8 rows"; cat "$T/out"; }
expect_ok "gradcheck --flag=value" "$CHAIN" gradcheck examples/fvsbn.chain --precision=f64 -D n=4 --rows=2 --seed=3 --samples=5 --tol=1e-6
grep -q "2 rows, seed 3" "$T/out" && ok || { bad "gradcheck --rows=2 --seed=3 not taken"; cat "$T/out"; }
expect_ok "optimize --flag=value" "$CHAIN" optimize examples/quadratic.chain --seed=2 --max-iter=100 --tol=1e-9 -o "$T/q-eq.safetensors"
[ -s "$T/q-eq.safetensors" ] && ok || bad "optimize --flag=value wrote no params"
expect_ok "build --flag=value" "$CHAIN" build examples/fvsbn.chain -D n=6 --precision=f32 --emit=llvm --target="$(uname -m)-unknown-linux-gnu" --cpu=generic -o "$T/eq.ll"
grep -q "float" "$T/eq.ll" && ok || bad "build --precision=f32 did not build in float"
expect_fail "gradcheck --rows= (empty)" "chain gradcheck: --rows: expected an integer from 1 to 1000000, got ''" "$CHAIN" gradcheck examples/fvsbn.chain -D n=4 --rows=
expect_fail "compare --cc= (empty)" "chain compare: --cc: expected a C compiler command" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --cc=
expect_fail "compare --help=1" "chain compare: --help takes no value, got '1'" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --help=1
expect_fail "build --help=1" "chain build: --help takes no value, got '1'" "$CHAIN" build examples/fvsbn.chain --help=1
expect_fail "optimize -o without a value" "chain optimize: -o: expected a value after it" "$CHAIN" optimize examples/quadratic.chain -o
expect_fail "build -o without a value" "chain build: -o: expected a value after it" "$CHAIN" build examples/fvsbn.chain -o
expect_fail "build --emit= (empty)" "expected obj, asm, llvm, bc, header or ir, got ''" "$CHAIN" build examples/fvsbn.chain --emit=
expect_fail "--precision=f16" "chain: --precision: expected f64 or f32, got 'f16'" "$CHAIN" check examples/fvsbn.chain --precision=f16
expect_fail "gradcheck unknown --flag=value" "chain gradcheck: unknown flag '--row' (see chain gradcheck --help)" "$CHAIN" gradcheck examples/fvsbn.chain -D n=4 --row=2
expect_ok "gradcheck fvsbn on digits" "$CHAIN" gradcheck examples/fvsbn.chain --data examples/data/binarized-valid.amat.gz
expect_ok "--version" "$CHAIN" --version
expect_ok "compare with the reference" "$CHAIN" compare examples/nade.chain -D n=784 -D H=20 --ref examples/reference/nade.c --cflags "-O2 -DN=784 -DH=20" --rows 20 --data examples/data/binarized-valid.amat.gz
grep -q "gradient  worst difference" "$T/out" && ok || bad "compare printed no gradient difference"
expect_ok "compare f32" "$CHAIN" compare examples/fvsbn.chain -D n=784 --precision f32 --ref examples/reference/fvsbn.c --rows 20
# a reference that ignores -DCHAIN_F32 computes in double: a clean failure, no overflow
printf '#undef CHAIN_F32\n#include "%s/examples/reference/fvsbn.c"\n' "$PWD" > "$T/fvsbn64.c"
expect_fail "compare f32 with a double reference" "built for float" "$CHAIN" compare examples/fvsbn.chain -D n=784 --precision f32 --ref "$T/fvsbn64.c" --rows 20
expect_fail "compare with the wrong reference" "does not define fvsbn_logp_batch" "$CHAIN" compare examples/fvsbn.chain --ref examples/reference/nade.c --cflags "-O1"
# a reference built for other sizes: refused when it says so (its
# M_ref_num_params, M_ref_obs_size), caught when it crashes (once: a
# segmentation fault of chain itself)
expect_fail "compare with a reference built for 784 pixels" "examples/reference/fvsbn.c is built for 615440 params and 784 reals per row, but model fvsbn has 42 and 6" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c
printf '#include <stddef.h>\nvoid fvsbn_logp_batch(const double *t, const double *o, size_t n, double *out)\n{\n\t(void)t, (void)o, (void)n, (void)out;\n\t*(volatile double *)0 = 1;\n}\n' > "$T/crash.c"
expect_fail "compare with a reference that crashes" "crashed (Segmentation fault) in its kernels: is it built for model fvsbn's sizes (42 params, 6 reals per row)" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref "$T/crash.c"
# an empty compiler is a bad --cc, said once by chain (the shell ran the
# first flag as the command: a stray "sh: 1: -O2: not found" came first)
for cc in '' ' '; do
	expect_fail "compare --cc '$cc'" "^chain compare: --cc: expected a C compiler command (such as cc or clang), got '$cc'\$" "$CHAIN" compare examples/fvsbn.chain -D n=6 --ref examples/reference/fvsbn.c --cc "$cc"
	[ "$(wc -l < "$T/out")" -eq 1 ] && ok || { bad "compare --cc '$cc' printed more than its error"; cat "$T/out"; }
done
printf 'this is not C\n' > "$T/bad.c"
expect_fail "compare with a reference that does not compile" "cannot compile" "$CHAIN" compare examples/fvsbn.chain --ref "$T/bad.c"
expect_ok "optimize a quadratic" "$CHAIN" optimize examples/quadratic.chain -o "$T/q.safetensors"
# the optimum is x = -A^-1 b = (-1/2, 17/22, -7/22)
awk '/x =/ { d = ($3 + 0.5)^2 + ($4 - 17/22)^2 + ($5 + 7/22)^2; found = 1 } END { exit !(found && d < 1e-16) }' "$T/out" \
	&& ok || { bad "optimize: wrong optimum"; cat "$T/out"; }
# libchain's files (checkpoints, samples) through a symbolic link: the
# file it names is replaced, the link kept; chain's own stdout is refused
echo previous > "$T/links/q-real.safetensors"
ln -s q-real.safetensors "$T/links/q-link.safetensors"
expect_ok "optimize -o a symbolic link" "$CHAIN" optimize examples/quadratic.chain -o "$T/links/q-link.safetensors"
[ -L "$T/links/q-link.safetensors" ] && cmp -s "$T/links/q-real.safetensors" "$T/q.safetensors" && ok || { bad "optimize -o a symbolic link: the link replaced, or its file not written"; ls -l "$T/links"; }
"$CHAIN" optimize examples/quadratic.chain -o /proc/self/fd/1 > "$T/links/q-stdout" 2> "$T/out"; rc=$?
[ $rc -eq 1 ] && grep -q "is this command's own standard output" "$T/out" && ok || { bad "optimize -o its own stdout: exit status $rc"; cat "$T/out"; }
expect_fail "optimize a likelihood" "use chain train" "$CHAIN" optimize examples/fvsbn.chain -D n=4
expect_fail "train a free objective" "use chain optimize" "$CHAIN" train examples/quadratic.chain --data examples/data/labels-test.txt -o "$T/q2.safetensors"

# ---- the main job on small data: train -> eval -> sample -> resume
if [ -f compiler/cmd_run.c ]; then
	zcat examples/data/binarized-train.amat.gz | head -300 > "$T/train.amat"
	zcat examples/data/binarized-valid.amat.gz | head -100 > "$T/valid.amat"
	M="examples/nade.chain -D H=20"
	expect_ok "train" "$CHAIN" train $M --data "$T/train.amat" --valid "$T/valid.amat" --epochs 2 --batch 50 --seed 3 --threads 2 -o "$T/p.safetensors" --log "$T/log.csv" --quiet
	expect_ok "train again, same seed" "$CHAIN" train $M --data "$T/train.amat" --valid "$T/valid.amat" --epochs 2 --batch 50 --seed 3 --threads 2 -o "$T/p2.safetensors" --quiet
	cmp -s "$T/p.safetensors" "$T/p2.safetensors" && ok || bad "same seed, different checkpoints"
	[ "$(wc -l < "$T/log.csv")" -ge 3 ] && ok || bad "CSV log has no epochs"
	# --flag=value before a model flag: the next argument is not its value
	# (-D was taken as the value of --epochs=1: "unknown flag '-D'")
	expect_ok "train --flag=value then -D" "$CHAIN" train examples/nade.chain --data="$T/train.amat" --epochs=1 -D H=20 --batch=50 --lr=0.01 --seed=3 --threads=2 -o "$T/p-eq.safetensors" --log="$T/log-eq.csv" --quiet
	[ "$(wc -l < "$T/log-eq.csv")" -eq 2 ] && ok || bad "train --epochs=1 logged $(wc -l < "$T/log-eq.csv") lines"
	expect_fail "train --quiet=1" "chain train: --quiet takes no value, got '1'" "$CHAIN" train $M --data "$T/train.amat" -o "$T/p-eq.safetensors" --quiet=1
	# --log the file chain's own stderr goes to: appended to in place
	"$CHAIN" train $M --data "$T/train.amat" --epochs 2 --batch 50 -o "$T/p3.safetensors" --log /proc/self/fd/2 --quiet 2> "$T/stderr.csv"; rc=$?
	[ $rc -eq 0 ] && [ "$(head -n 1 "$T/stderr.csv")" = "epoch,train_nll,valid_nll,seconds" ] && [ "$(wc -l < "$T/stderr.csv")" -eq 3 ] && ok || { bad "train --log /proc/self/fd/2: exit status $rc"; cat "$T/stderr.csv"; }
	expect_ok "eval" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/valid.amat"
	grep -q "nats" "$T/out" && ok || bad "eval prints no NLL"
	expect_ok "sample png" "$CHAIN" sample $M --params "$T/p.safetensors" -n 16 -o "$T/s.png"
	head -c 8 "$T/s.png" | od -An -tx1 | grep -q "89 50 4e 47" && ok || bad "samples.png is not a PNG"
	# rows x reals per row at most 2^28, checked before anything is
	# allocated: -n 2^61-1 sized a buffer of 2^64-8 bytes (ASan aborted,
	# the plain build said "out of memory")
	expect_fail "sample -n 2^61-1" "^chain sample: -n: expected an integer from 1 to 342392 (784 values a row, at most 2^28 in all), got '2305843009213693951'\$" "$CHAIN" sample $M --params "$T/p.safetensors" -n 2305843009213693951 -o "$T/huge.amat"
	expect_fail "sample -n one row too many" "expected an integer from 1 to 342392 (784 values a row" "$CHAIN" sample $M --params "$T/p.safetensors" -n 342393 --given "$T/valid.amat" --prefix 3
	[ ! -e "$T/huge.amat" ] && ok || bad "sample -n 2^61-1 wrote a file"
	expect_ok "sample amat" "$CHAIN" sample $M --params "$T/p.safetensors" -n 5 -o "$T/s.amat"
	[ "$(wc -l < "$T/s.amat")" -eq 5 ] && ok || bad "sample -n 5 wrote $(wc -l < "$T/s.amat") rows"
	# every loader through the CLI: .npy written by sample, IDX + binarize, gzip
	expect_ok "sample npy" "$CHAIN" sample $M --params "$T/p.safetensors" -n 7 -o "$T/s.npy"
	expect_ok "eval npy" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/s.npy"
	grep -q "over 7 rows" "$T/out" && ok || bad "eval of the .npy did not see 7 rows"
	expect_ok "eval IDX gz, threshold" "$CHAIN" eval $M --params "$T/p.safetensors" --data examples/data/images-idx3-ubyte.gz --binarize 0.5
	expect_ok "eval IDX gz, stochastic" "$CHAIN" eval $M --params "$T/p.safetensors" --data examples/data/images-idx3-ubyte.gz --binarize stochastic --seed 4
	expect_fail "greyscale IDX without --binarize" "images-idx3-ubyte.gz" "$CHAIN" eval $M --params "$T/p.safetensors" --data examples/data/images-idx3-ubyte.gz
	expect_fail "labels are one column" "labels-idx1-ubyte.gz" "$CHAIN" eval $M --params "$T/p.safetensors" --data examples/data/labels-idx1-ubyte.gz
	head -c 100 examples/data/images-idx3-ubyte.gz > "$T/trunc.gz"
	expect_fail "truncated gzip" "trunc.gz" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/trunc.gz"
	printf 'not a checkpoint' > "$T/bad.safetensors"
	expect_fail "bad checkpoint" "bad.safetensors" "$CHAIN" eval $M --params "$T/bad.safetensors" --data "$T/valid.amat"
	expect_ok "inpaint" "$CHAIN" sample $M --params "$T/p.safetensors" --given "$T/valid.amat" --prefix 392 -n 4 -o "$T/in.png"
	mkfifo "$T/fifo.png"
	expect_fail "samples into a FIFO" "is not a regular file" "$CHAIN" sample $M --params "$T/p.safetensors" -n 2 -o "$T/fifo.png"
	[ -p "$T/fifo.png" ] && ok || bad "sample replaced a FIFO with a file"
	expect_ok "resume" "$CHAIN" train $M --data "$T/train.amat" --epochs 1 --batch 50 --resume "$T/p.safetensors" -o "$T/p3.safetensors" --quiet
	# libchain's outputs under names of 255 bytes (their temporaries too
	# were name + ".tmp-PID-N"); and a failed write leaves no temporary
	mkdir "$T/long2"
	expect_ok "train -o a name of 255 bytes" "$CHAIN" train $M --data "$T/train.amat" --epochs 1 --batch 50 -o "$T/long2/$(printf '%0243d' 0).safetensors" --quiet
	expect_ok "sample -o a name of 255 bytes" "$CHAIN" sample $M --params "$T/p.safetensors" -n 2 -o "$T/long2/$(printf '%0250d' 0).amat"
	mkdir "$T/long2/$(printf '%0250d' 1).amat"
	expect_fail "sample -o a directory of 255 bytes" "cannot replace: Is a directory" "$CHAIN" sample $M --params "$T/p.safetensors" -n 2 -o "$T/long2/$(printf '%0250d' 1).amat"
	[ "$(ls "$T/long2" | wc -l)" -eq 3 ] && ! ls "$T/long2" | grep -q tmp && ok || { bad "names of 255 bytes: not the two files and the directory alone"; ls "$T/long2"; }
	# --resume reads the checkpoint's epoch and seed: a damaged value is an
	# error naming the file and the key (it was silently taken as epoch 0)
	printf 'model r\ndata x : bin[3]\nparam b : real[3]\nx[i] ~ bernoulli_logit(b[i])\nmaximize loglik\n' > "$T/r.chain"
	printf '0 1 0\n1 1 0\n' > "$T/r.amat"
	# mk_ckpt FILE ',"key":"value",...': a checkpoint of model r (b = 0)
	mk_ckpt() {
		json="{\"__metadata__\":{\"format\":\"chain-1\",\"model\":\"r\"$2},\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}"
		while [ $((${#json} % 8)) -ne 0 ]; do json="$json "; done
		n=${#json}
		{ printf "$(printf '\\%03o\\%03o' $((n % 256)) $((n / 256)))"; printf '\0\0\0\0\0\0%s' "$json"; head -c 24 /dev/zero; } > "$1"
	}
	mk_ckpt "$T/r-ok.safetensors" ',"epoch":"3","seed":"7"'
	expect_ok "resume a made checkpoint" "$CHAIN" train "$T/r.chain" --data "$T/r.amat" --epochs 1 --resume "$T/r-ok.safetensors" -o "$T/r-out.safetensors"
	grep -q "epochs 4..4, .*seed 7" "$T/out" && ok || { bad "resume did not take epoch 3 and seed 7"; cat "$T/out"; }
	mk_ckpt "$T/r-none.safetensors" ''
	expect_ok "resume a checkpoint without epoch and seed" "$CHAIN" train "$T/r.chain" --data "$T/r.amat" --epochs 1 --resume "$T/r-none.safetensors" -o "$T/r-out.safetensors"
	grep -q "epochs 1..1, .*seed 1\$" "$T/out" && ok || { bad "resume without metadata: not epoch 0 and the default seed"; cat "$T/out"; }
	for meta in '"epoch":"x","seed":"7"' '"epoch":"+3","seed":"7"' '"epoch":" 3","seed":"7"' '"epoch":"","seed":"7"' \
	            '"epoch":"99999999999999999999","seed":"7"' '"epoch":"3","seed":"-1"' '"epoch":"3","seed":"0x10"' \
	            '"epoch":"3"' '"seed":"7"' '"epoch":"3","seed":"7","epoch":"4"'; do
		mk_ckpt "$T/r-bad.safetensors" ",$meta"
		case $meta in
		*'"epoch":"4"') want='metadata key "epoch" appears twice' ;;
		'"epoch":"3"') want='has "epoch" but no "seed"' ;;
		'"seed":"7"') want='has "seed" but no "epoch"' ;;
		*'"seed":"7"') want='__metadata__ "epoch" is' ;;
		*) want='__metadata__ "seed" is' ;;
		esac
		expect_fail "resume with $meta" "r-bad.safetensors.*$want" "$CHAIN" train "$T/r.chain" --data "$T/r.amat" --epochs 1 --resume "$T/r-bad.safetensors" -o "$T/r-out.safetensors"
	done
	mk_ckpt "$T/r-big.safetensors" ',"epoch":"18446744073709551615","seed":"7"'
	expect_fail "resume at the last epoch there is" 'r-big.safetensors: __metadata__ "epoch" is 18446744073709551615: out of range' "$CHAIN" train "$T/r.chain" --data "$T/r.amat" --epochs 1 --resume "$T/r-big.safetensors" -o "$T/r-out.safetensors"
	expect_fail "params of another shape" "shape" "$CHAIN" eval examples/nade.chain -D H=21 --params "$T/p.safetensors" --data "$T/valid.amat"
	# bad data files: each named with its row and what was expected
	printf '0 1 2\n' > "$T/bad.amat"
	expect_fail "ragged/short rows" "bad.amat" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/bad.amat"
	(head -1 "$T/valid.amat" | sed 's/^0/2/') > "$T/two.amat"
	expect_fail "value 2 in a bin column" "two.amat:1" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/two.amat"
	printf 'garbage' > "$T/bad.npy"
	expect_fail "not a data file" "bad.npy" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/bad.npy"
	expect_fail "missing data file" "nope.amat" "$CHAIN" train $M --data "$T/nope.amat" -o "$T/q.safetensors"
	cp "$T/train.amat" "$T/keep.amat"
	ln -s keep.amat "$T/keep-link.amat"
	expect_fail "train -o the data file" "-o $T/keep-link.amat is the --data file" "$CHAIN" train $M --data "$T/keep.amat" --epochs 1 -o "$T/keep-link.amat"
	expect_fail "train -o the valid file" "-o $T/keep.amat is the --valid file" "$CHAIN" train $M --data "$T/train.amat" --valid "$T/keep.amat" --epochs 1 -o "$T/keep.amat"
	expect_fail "train --log the data file" "--log $T/keep.amat is the --data file" "$CHAIN" train $M --data "$T/keep.amat" --epochs 1 -o "$T/q.safetensors" --log "$T/keep.amat"
	expect_fail "train --log the model file" "train: --log $T/self.chain is the model file" "$CHAIN" train "$T/self.chain" -D n=784 --data "$T/train.amat" --epochs 1 -o "$T/q.safetensors" --log="$T/self.chain"
	expect_fail "sample -o the given file" "-o $T/keep.amat is the --given file" "$CHAIN" sample $M --params "$T/p.safetensors" --given "$T/keep.amat" --prefix 3 -n 2 -o "$T/keep.amat"
	cmp -s "$T/train.amat" "$T/keep.amat" && ok || bad "an output named like an input changed it"
	cp "$T/p.safetensors" "$T/keep.safetensors"
	expect_fail "train --log the resumed checkpoint" "--log $T/keep.safetensors is the --resume file" "$CHAIN" train $M --data "$T/train.amat" --epochs 1 --resume "$T/keep.safetensors" -o "$T/q.safetensors" --log "$T/keep.safetensors"
	cmp -s "$T/p.safetensors" "$T/keep.safetensors" && ok || bad "train --log appended to the resumed checkpoint"
	# an init a float cannot hold: refused before the first checkpoint (it
	# was written with inf, and training stopped at 'loss became NaN')
	printf 'model big\ndata x : real\nparam b : real ~ 1e300\nx ~ normal(b * 1e-300, 1)\nmaximize loglik\n' > "$T/big.chain"
	printf '0.5\n1\n' > "$T/big.amat"
	expect_fail "train an f32 model whose init overflows" "the initialisation of param b gives inf at entry 0, out of the range of a float" "$CHAIN" train "$T/big.chain" --precision f32 --data "$T/big.amat" --epochs 1 -o "$T/big.safetensors"
	[ ! -e "$T/big.safetensors" ] && ok || bad "an f32 init that overflows: a checkpoint was written"
	expect_ok "train the same model in f64" "$CHAIN" train "$T/big.chain" --data "$T/big.amat" --epochs 1 -o "$T/big.safetensors" --quiet
	cmp -s examples/fvsbn.chain "$T/self.chain" && ok || bad "train --log appended to the model file"
	expect_fail "bad --lr" "--lr" "$CHAIN" train $M --data "$T/train.amat" --lr abc -o "$T/q.safetensors"
	expect_fail "train --lr +0.01" "chain train: --lr: expected a positive number, got '+0.01'" "$CHAIN" train $M --data "$T/train.amat" --lr +0.01 -o "$T/q.safetensors"
	expect_fail "train --lr 1e-400" "chain train: --lr: expected a positive number, got '1e-400'" "$CHAIN" train $M --data "$T/train.amat" --lr 1e-400 -o "$T/q.safetensors"
	expect_fail "train --epochs +2" "chain train: --epochs: expected a positive integer, got '+2'" "$CHAIN" train $M --data "$T/train.amat" --epochs +2 -o "$T/q.safetensors"
	expect_fail "train --batch '10 '" "chain train: --batch: expected a positive integer, got '10 '" "$CHAIN" train $M --data "$T/train.amat" --batch "10 " -o "$T/q.safetensors"
	expect_fail "eval --threads ' 3'" "chain eval: --threads: expected an integer from 1 to 1024, got ' 3'" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/valid.amat" --threads " 3"
	expect_fail "eval --binarize +0.5" "chain eval: --binarize: expected a threshold" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/valid.amat" --binarize +0.5
	expect_fail "sample --prefix +3" "chain sample: --prefix: expected a non-negative integer, got '+3'" "$CHAIN" sample $M --params "$T/p.safetensors" --given "$T/valid.amat" --prefix +3
	# atomicity: a training run killed mid-way leaves a loadable checkpoint
	"$CHAIN" train $M --data "$T/train.amat" --epochs 1000 --batch 10 -o "$T/k.safetensors" --quiet > /dev/null 2>&1 &
	pid=$!
	i=0; while [ ! -s "$T/k.safetensors" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.3; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
	expect_ok "killed run left a loadable checkpoint" "$CHAIN" eval $M --params "$T/k.safetensors" --data "$T/valid.amat"
	# counts: log p in time independent of the count (a count of 1e15 once
	# summed 1e15 logs), and 0 probability above binomial's N, not NaN
	printf 'model bn\ndata c : int\nparam m : real\nc ~ binomial(5, sigmoid(m))\nmaximize loglik\n' > "$T/bn.chain"
	printf '1\n3\n' > "$T/bn.amat"
	printf '2\n' > "$T/one.amat"
	expect_ok "train a count model" "$CHAIN" train "$T/bn.chain" --data "$T/bn.amat" --epochs 1 -o "$T/bn.safetensors" --quiet
	# the standard error only where there is one: not '+- 0.00' for one row,
	# not '+- nan' for an infinite mean
	expect_ok "eval one row" "$CHAIN" eval "$T/bn.chain" --params "$T/bn.safetensors" --data "$T/one.amat"
	grep -q "^test NLL: [0-9.]* nats ([0-9.]* bits/dim) over 1 row (no standard error from a single row)\$" "$T/out" && ok || { bad "eval of one row"; cat "$T/out"; }
	printf '1\n7\n' > "$T/inf2.amat"
	expect_ok "eval an impossible row" "$CHAIN" eval "$T/bn.chain" --params "$T/bn.safetensors" --data "$T/inf2.amat"
	grep -q "^test NLL: inf nats (inf bits/dim) over 2 rows (no standard error: a row has probability 0)\$" "$T/out" && ok || { bad "eval with an inf NLL"; cat "$T/out"; }
	! grep -q "nan" "$T/out" && ok || bad "eval printed nan"
	expect_ok "eval two rows" "$CHAIN" eval "$T/bn.chain" --params "$T/bn.safetensors" --data "$T/bn.amat"
	grep -q "^test NLL: [0-9.]* nats ([0-9.]* bits/dim) +- [0-9.]* over 2 rows\$" "$T/out" && ok || { bad "eval of two rows"; cat "$T/out"; }
	for c in 6 7 1e9 1e15 9007199254740991; do
		printf '%s\n' "$c" > "$T/big.amat"
		if timeout 60 "$CHAIN" eval "$T/bn.chain" --params "$T/bn.safetensors" --data "$T/big.amat" > "$T/out" 2>&1 &&
		   grep -q "test NLL: inf nats" "$T/out"; then ok; else bad "binomial(5) of a count $c: not an NLL of inf"; cat "$T/out"; fi
	done
	# a count is an integer a double holds exactly: up to 2^53 - 1
	for c in 9007199254740992 9007199254740993 1e300; do
		printf '%s\n' "$c" > "$T/big.amat"
		expect_fail "a count of $c" "big.amat:1:1: expected an integer from 0 to 2^53 - 1 (9007199254740991) for int variable c" "$CHAIN" eval "$T/bn.chain" --params "$T/bn.safetensors" --data "$T/big.amat"
	done
	# a count that bounds a sum's range (sum(k in 0..v) in a family on int)
	# sets how long the kernels run: 10^15 ran eval for ever; now the
	# compiler's limit (2^24 terms) is checked when the data is loaded
	printf 'model cs\ndata c : int\nparam l : real\nfamily f(l : real) on int {\n  logp(v) = sum(k in 0..v) l / (k + 1) - lfact(v)\n  sample = 0\n}\nc ~ f(l)\nmaximize loglik\n' > "$T/cs.chain"
	printf '3\n2\n' > "$T/cs.amat"
	printf '3\n1000000000000000\n' > "$T/cs-big.amat"
	printf '16777215\n' > "$T/cs-top.amat"
	expect_ok "check a model whose sum a count bounds" "$CHAIN" check "$T/cs.chain"
	grep -q "c  *int  *~ f   values 0..16777215 (a sum's range depends on them)" "$T/out" && ok || { bad "check does not print the limit of c"; cat "$T/out"; }
	expect_ok "train a model whose sum a count bounds" "$CHAIN" train "$T/cs.chain" --data "$T/cs.amat" --epochs 1 -o "$T/cs.safetensors" --quiet
	want="cs-big.amat:2:1: expected an integer from 0 to 16777215 (a sum's range in the model depends on it; at most 2^24 terms) for int variable c, found 1e+15"
	expect_fail "eval a count of 10^15 that bounds a sum" "$want" timeout 60 "$CHAIN" eval "$T/cs.chain" --params "$T/cs.safetensors" --data "$T/cs-big.amat"
	expect_fail "train on a count of 10^15 that bounds a sum" "$want" timeout 60 "$CHAIN" train "$T/cs.chain" --data "$T/cs-big.amat" --epochs 1 -o "$T/cs2.safetensors"
	expect_ok "eval a count at the limit" timeout 60 "$CHAIN" eval "$T/cs.chain" --params "$T/cs.safetensors" --data "$T/cs-top.amat"
	# an int input that bounds a sum, nested: 4096 x 4096 terms at most
	printf 'model ci\ninput s : int\ndata x : real\nparam m : real\nfamily g(N : int, mu : real) on real {\n  logp(v) = -0.5 * square(v - mu - sum(a in 1..N) sum(b in 1..N) 1e-9)\n  sample = mu\n}\nx ~ g(s, m)\nmaximize loglik\n' > "$T/ci.chain"
	printf '3 0.5\n4096 1.5\n4097 0.25\n' > "$T/ci.amat"
	expect_fail "an input that bounds two nested sums" "ci.amat:3:1: expected an integer from 0 to 4096 (a sum's range in the model depends on it; at most 2^24 terms) for int variable s, found 4097" timeout 60 "$CHAIN" train "$T/ci.chain" --data "$T/ci.amat" --epochs 1 -o "$T/ci.safetensors"
	# 1e-400 underflows (strtod gives 0): not a 0 in a bin column, and
	# refused in a real one too, like 1e400
	for v in 1e-400 1e-310 1e400; do
		(head -1 "$T/valid.amat" | sed "s/^[01] [01]/0 $v/") > "$T/tiny.amat"
		expect_fail "$v in a data file" "tiny.amat:1:3: expected a number from 2.2250738585072014e-308 to 1.7976931348623157e308 in magnitude, or 0 (value 2 of row 1), found '$v'" "$CHAIN" eval $M --params "$T/p.safetensors" --data "$T/tiny.amat"
	done
	# poisson_log: counts drawn (by tests/e2e/poisson_counts.c, not by chain)
	# at rates on both sides of chain_rng_poisson's switch at 10; training
	# recovers the rates, and the trained model's samples have mean and
	# variance exp(learned log rate) at each position
	printf 'model pl\ndim n = 4\ndata c : int[n]\nparam r : real[n]\nc[i] ~ poisson_log(r[i])\nmaximize loglik\n' > "$T/pl.chain"
	rates="0.5 4 12 150"
	if $CC -std=c11 -O2 -Wall -Wextra -Werror tests/e2e/poisson_counts.c -lm -o "$T/poisson_counts" 2> "$T/out"; then
		"$T/poisson_counts" 2000 7 $rates > "$T/pl.txt"
		expect_ok "build a poisson_log model" "$CHAIN" build "$T/pl.chain" -o "$T/pl.o"
		nm -u "$T/pl.o" | grep -q "chain_rng_poisson" && ok || bad "pl.o does not call chain_rng_poisson"
		expect_ok "build a poisson_log model, f32 -O0" "$CHAIN" build "$T/pl.chain" --precision f32 -O0 -o "$T/pl32.o"
		expect_ok "check a poisson_log model" "$CHAIN" check "$T/pl.chain"
		expect_ok "gradcheck a poisson_log model" "$CHAIN" gradcheck "$T/pl.chain" --data "$T/pl.txt"
		expect_ok "train a poisson_log model" "$CHAIN" train "$T/pl.chain" --data "$T/pl.txt" --epochs 20 --lr 0.05 --seed 3 -o "$T/pl1.safetensors" --quiet
		expect_ok "train a poisson_log model, smaller steps" "$CHAIN" train "$T/pl.chain" --data "$T/pl.txt" --epochs 10 --lr 0.005 --resume "$T/pl1.safetensors" -o "$T/pl.safetensors" --quiet
		# the one tensor r: F64[4] right after the safetensors header
		hlen=$(od -An -tu8 -N8 "$T/pl.safetensors" | tr -d ' ')
		learned=$(od -An -tf8 -j $((8 + hlen)) -N 32 "$T/pl.safetensors" | awk '{for (i = 1; i <= NF; i++) printf "%.17g ", exp($i)}')
		# within 4 standard errors of the data's rate, plus 2% for Adam's steps
		echo "$learned" | awk -v want="$rates" '{split(want, w, " "); bad = NF != 4
			for (i = 1; i <= NF; i++) if (($i - w[i])^2 > (4 * sqrt(w[i] / 2000) + 0.02 * w[i])^2) bad = 1
			exit bad}' && ok || bad "poisson_log: trained rates $learned, data drawn at $rates"
		expect_ok "sample a poisson_log model" "$CHAIN" sample "$T/pl.chain" --params "$T/pl.safetensors" -n 20000 --seed 5 -o "$T/pl-s.txt"
		# each position's mean within 5 standard errors of its rate, its
		# variance within 5 standard errors (sqrt((2 rate^2 + rate) / n)),
		# every value a count
		awk -v rates="$learned" 'BEGIN {split(rates, w, " ")} {for (i = 1; i <= NF; i++) {s[i] += $i; q[i] += $i * $i; if ($i < 0 || $i != int($i)) bad = 1}}
			END {if (NR != 20000 || NF != 4) bad = 1
			for (i = 1; i <= 4; i++) {m = s[i] / NR; v = q[i] / NR - m * m
				if ((m - w[i])^2 > 25 * w[i] / NR || (v - w[i])^2 > 25 * (2 * w[i]^2 + w[i]) / NR) {bad = 1; printf "position %d: mean %g variance %g, rate %g\n", i - 1, m, v, w[i]}}
			exit bad}' "$T/pl-s.txt" > "$T/out" && ok || { bad "poisson_log samples do not have the trained rates"; cat "$T/out"; }
	else
		bad "tests/e2e/poisson_counts.c does not compile"; cat "$T/out"
	fi
fi

echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
