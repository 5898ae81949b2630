#!/bin/sh
# same_output.sh OLD_CHAIN NEW_CHAIN [MODEL.chain...] -- checks that a change
# to the compiler changed none of its output: `chain check` (stdout, stderr,
# exit status) and the bytes of the `chain build` object (f64 and f32) of
# every model, by default examples/*.chain, tests/errors/*.chain and small
# bench/many_decls.sh models.  Run from the top of the tree; prints the
# models that differ and exits 1 if any does.
set -u
if [ $# -lt 2 ]; then
	echo "usage: $0 OLD_CHAIN NEW_CHAIN [MODEL.chain...]" >&2
	exit 2
fi
old=$1
new=$2
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/same_output.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
if [ $# -eq 0 ]; then
	for k in param dim let const family data; do
		sh bench/many_decls.sh $k 40 > "$tmp/many_$k.chain"
	done
	set -- examples/*.chain tests/errors/*.chain "$tmp"/many_*.chain
fi
same=0
differ=0
for src in "$@"; do
	ok=1
	"$old" check "$src" > "$tmp/old.out" 2>&1
	echo "status $?" >> "$tmp/old.out"
	"$new" check "$src" > "$tmp/new.out" 2>&1
	echo "status $?" >> "$tmp/new.out"
	if ! cmp -s "$tmp/old.out" "$tmp/new.out"; then
		echo "check differs: $src"
		diff "$tmp/old.out" "$tmp/new.out" | head -20
		ok=0
	elif tail -1 "$tmp/old.out" | grep -qx 'status 0'; then
		for p in f64 f32; do
			"$old" build "$src" --precision $p -o "$tmp/old.o" > /dev/null 2>&1
			"$new" build "$src" --precision $p -o "$tmp/new.o" > /dev/null 2>&1
			if ! cmp -s "$tmp/old.o" "$tmp/new.o"; then
				echo "build --precision $p differs: $src"
				ok=0
			fi
			rm -f "$tmp/old.o" "$tmp/new.o"
		done
	fi
	if [ $ok = 1 ]; then same=$((same + 1)); else differ=$((differ + 1)); fi
done
echo "same_output: $same models the same, $differ different"
[ $differ -eq 0 ]
