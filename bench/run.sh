#!/bin/sh
# run.sh BUILD [--quick] -- the benchmark suite (not tests; bench/README.md):
# the machine's limits (bench/limits.c), then for FVSBN and NADE (H = 100,
# 500), f64 and f32, every kernel (log p, gradient, sampling, a training
# epoch) at batch 1, 32, 256 and 1 or 2 threads: the generated kernels, the
# hand-written references and PyTorch (bench/torch_bench.py, when
# `import torch` works) side by side in one run (bench/bench.c), then
# `chain build` time and the peak memory of `chain train`.
#
# The generated kernels are `chain build` output (-O2, host CPU) linked into
# a .so; the references are compiled with cc -O3 -march=native.  PYTHON=...
# picks the interpreter for PyTorch (default: the first of python3 and
# /usr/bin/python3 that imports torch).  --quick: fewer repetitions, shorter
# measurements, smaller epochs.
#
# --scaling ROUNDS: only the thread scaling, ROUNDS paired rounds of 1 and
# 2 threads per kernel (of about 12 ms each), no PyTorch, build time or
# memory: a closer look at the 2-thread ratios than the table's 9 rounds.
set -e
BUILD=${1:-build}
QUICK=
SCALING=
case "${2:-}" in
--quick) QUICK=--quick ;;
--scaling) SCALING="--scaling ${3:?run.sh: --scaling needs a number of rounds}" ;;
"") ;;
*) echo "run.sh: unknown option $2 (--quick, --scaling ROUNDS)" >&2; exit 1 ;;
esac
CHAIN=$BUILD/chain
CC=${CC:-cc}
if [ ! -x "$CHAIN" ] || [ ! -f "$BUILD/libchain.a" ]; then
	echo "run.sh: no $CHAIN or $BUILD/libchain.a: run make first" >&2
	exit 1
fi
T=$(mktemp -d /tmp/chain-bench-XXXXXX)
trap 'rm -rf "$T"' EXIT
# a snapshot of the compiler, so that a rebuild during the run cannot change it
cp "$CHAIN" "$T/chain"
cp "$BUILD/libchain.a" "$T/libchain.a"
CHAIN=$T/chain
W="-Wall -Wextra"
$CC -O3 -march=native -ffast-math $W bench/limits.c -o "$T/limits" -lm -lpthread
$CC -O3 $W -Iruntime/include bench/bench.c -rdynamic \
	-Wl,--whole-archive "$T/libchain.a" -Wl,--no-whole-archive \
	-lz -lpng -lm -lpthread -ldl -o "$T/bench"

# the interpreter for the PyTorch column
PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then
		PY=$p
		break
	fi
done
[ -z "$PY" ] && command -v python3 >/dev/null 2>&1 && PY=python3  # prints why torch is missing

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "started: $(date -u '+%Y-%m-%d %H:%M UTC')"

# generated and reference .so for each model, size and precision
SPECS=
for m in fvsbn:0 nade:100 nade:500; do
	model=${m%:*}
	h=${m#*:}
	for p in f64 f32; do
		defs=
		[ "$model" = nade ] && defs="-D H=$h"
		rdef=
		[ "$p" = f32 ] && rdef=-DCHAIN_F32
		g=$T/gen-$model$h-$p
		r=$T/ref-$model$h-$p
		"$CHAIN" build "examples/$model.chain" $defs --precision "$p" -o "$g.o"
		$CC -shared -o "$g.so" "$g.o" -lm
		$CC -O3 -march=native -shared -fPIC -Iruntime/include -DN=784 -DH="$h" $rdef \
			"examples/reference/$model.c" -o "$r.so" -lm
		SPECS="$SPECS $model,$h,$p,$g.so,$r.so"
	done
done

if [ -n "$SCALING" ]; then
	echo
	echo "== thread scaling of the generated kernels ($SCALING)"
	echo "# no limits measured: the file only has to exist" > "$T/limits.txt"
	"$T/bench" table $SCALING --limits "$T/limits.txt" --chain "$CHAIN" --tmp "$T" $SPECS
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; finished $(date -u '+%H:%M UTC')"
	exit 0
fi

echo
echo "== machine limits (bench/limits.c; per thread count, both threads at once for 2)"
"$T/limits" $QUICK >"$T/limits.txt"
grep -v '^#' "$T/limits.txt" | awk '{printf "%-12s threads %s  %9s %s\n", $1, $2, $3, $4}'

echo
echo "== kernels: images/s (median), generated / reference / PyTorch side by side"
if [ -n "$PY" ]; then
	"$T/bench" table $QUICK --limits "$T/limits.txt" --chain "$CHAIN" --tmp "$T" \
		--torch "$PY bench/torch_bench.py" $SPECS
else
	"$T/bench" table $QUICK --limits "$T/limits.txt" --chain "$CHAIN" --tmp "$T" $SPECS
fi

echo
echo "== build time: chain build of the model against cc -O2 -c of its hand-written reference (median)"
if [ -n "$QUICK" ]; then reps=3; else reps=5; fi
"$T/bench" buildtime "$CHAIN" "$CC" "$T" $reps

echo
echo "== memory"
if [ -n "$QUICK" ]; then hs=100; else hs="100 500"; fi
"$T/bench" memory "$CHAIN" "$T" 2 $hs

echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; finished $(date -u '+%H:%M UTC')"
