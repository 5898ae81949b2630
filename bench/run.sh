#!/bin/sh
# run.sh BUILD -- the benchmarks: generated kernels against the hand-written
# references (images/s, median of runs, side by side), and NADE's O(nH)
# scaling.  f64, one thread, -O2 generated vs -O3 -march=native reference.
set -e
BUILD=${1:-build}
CHAIN=$BUILD/chain
CC=${CC:-cc}
T=$(mktemp -d /tmp/chain-bench-XXXXXX)
trap 'rm -rf "$T"' EXIT
$CC -O2 -Iruntime/include bench/bench.c -rdynamic "$BUILD/libchain.a" -lz -lpng -lm -lpthread -ldl -o "$T/bench"

# one model at one size: generated and reference .so, then the timing
run() { # MODEL N H KERNEL ROWS REPS
	model=$1; n=$2; h=$3
	defs="-D n=$n"; [ "$model" = nade ] && defs="$defs -D H=$h"
	"$CHAIN" build examples/$model.chain $defs -o "$T/g.o"
	$CC -shared -o "$T/g.so" "$T/g.o"
	$CC -O3 -march=native -shared -fPIC -Iruntime/include -DN=$n -DH=$h examples/reference/$model.c -o "$T/r.so"
	if [ "$model" = nade ]; then np=$((2 * h * n + h + n)); else np=$((n * n + n)); fi
	printf 'n=%-4s H=%-4s ' "$n" "$h"
	"$T/bench" "$T/g.so" "$T/r.so" "$model" "$4" "$5" "$6" "$np"
}
echo "== log p (logp_batch, 200 rows)"
run fvsbn 784 0 logp 200 7
run nade 784 100 logp 200 7
run nade 784 500 logp 100 5
echo "== NADE scaling: n doubled should double the time (H = 500)"
run nade 392 500 logp 100 5
run nade 784 500 logp 100 5
echo "== gradient (loglik_grad, 100 rows)"
run fvsbn 784 0 grad 100 5
run nade 784 100 grad 100 5
run nade 784 500 grad 50 5
echo "== chain build time (examples/nade.chain, -O2)"
for i in 1 2 3 4 5; do
	s=$(date +%s.%N); "$CHAIN" build examples/nade.chain -o "$T/n.o"; e=$(date +%s.%N)
	echo "$s $e" | awk '{printf "%.3f\n", $2 - $1}'
done | sort -n | sed -n 3p | sed 's/^/median of 5: /; s/$/ s/'
