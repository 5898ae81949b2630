#!/bin/sh
# many_decls.sh KIND N -- prints a model with N declarations of one kind, to
# time the compiler's passes against the number of declarations (not a
# test: `chain check` and `chain build` of its output should grow linearly
# in N).  KIND is param, dim, let, const, family or data; the model's one
# conditional uses the first and the last of them, so none is dead code.
#
#   sh bench/many_decls.sh param 20000 > /tmp/many.chain
#   /usr/bin/time -v build/chain check /tmp/many.chain
set -eu
kind=${1:?usage: many_decls.sh KIND N}
n=${2:?usage: many_decls.sh KIND N}
last=$((n - 1))
echo "model many"
echo "dim N = 4"
echo "data x : bin[N]"
echo "param b : real[N]"
case $kind in
param)
	awk -v n="$n" 'BEGIN { for (k = 0; k < n; k++) printf "param p%d : real\n", k }'
	use="p0 + p$last" ;;
dim)
	# each dim defined from an earlier one: lookups across the whole scope
	awk -v n="$n" 'BEGIN { print "dim d0 = 1"; for (k = 1; k < n; k++) printf "dim d%d = d%d + 1 - 1\n", k, int(k / 2) }'
	echo "param q : real[d$last, N]"
	use="q[0, i]" ;;
let)
	# each let uses one above it (at most log2(N) deep)
	awk -v n="$n" 'BEGIN { print "let l0 = b[0]"; for (k = 1; k < n; k++) printf "let l%d = l%d * 0.5\n", k, int(k / 2) }'
	use="l0 + l$last" ;;
const)
	awk -v n="$n" 'BEGIN { for (k = 0; k < n; k++) printf "const c%d : real = %d\n", k, k }'
	use="c0 * c$last" ;;
family)
	awk -v n="$n" 'BEGIN { for (k = 0; k < n; k++) printf "family f%d(l : real) on bin {\n  logp(v) = v * l - softplus(l)\n  sample = uniform() < sigmoid(l)\n}\n", k }'
	use=0 ;;
data)
	# scalar data variables, each conditioned on the one before it
	awk -v n="$n" 'BEGIN { for (k = 0; k < n; k++) printf "data y%d : bin\n", k;
	                       print "y0 ~ bernoulli_logit(0)";
	                       for (k = 1; k < n; k++) printf "y%d ~ bernoulli_logit(y%d)\n", k, k - 1 }'
	use=0 ;;
*)
	echo "many_decls.sh: unknown kind '$kind'" >&2
	exit 2 ;;
esac
# without an order line the data variables come in declaration order
[ "$kind" = data ] || echo "order x"
if [ "$kind" = family ]; then
	echo "x[i] ~ f$last(b[i])"
else
	echo "x[i] ~ bernoulli_logit(b[i] + $use)"
fi
echo "maximize loglik"
