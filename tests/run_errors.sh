#!/bin/sh
# run_errors.sh CHAIN_BINARY -- golden diagnostic tests.
#
# Every tests/errors/NAME.chain is a model with mistakes; NAME.err beside it
# is exactly what `chain check NAME.chain` must print (stdout and stderr,
# no color since neither is a terminal) and the check must exit with status
# 1.  File names in the messages are as given on the command line, i.e.
# tests/errors/NAME.chain, so the script runs from the top of the tree.
#
# On a mismatch it prints a diff (expected first).  With CHAIN_UPDATE_ERR=1
# it rewrites the .err files from the current output instead (review the
# diff before committing).
set -u

if [ $# -lt 1 ]; then
	echo "usage: $0 CHAIN_BINARY" >&2
	exit 2
fi
bin=$1
case "$bin" in
/*) ;;
*) bin="$(pwd)/$bin" ;;
esac
if [ ! -x "$bin" ]; then
	echo "$0: $bin is not an executable" >&2
	exit 2
fi

cd "$(dirname "$0")/.." || exit 2
tmp=$(mktemp "${TMPDIR:-/tmp}/chain_errors.XXXXXX") || exit 2
trap 'rm -f "$tmp"' EXIT INT TERM

pass=0
fail=0
failed=""
for src in tests/errors/*.chain; do
	[ -e "$src" ] || continue
	want="${src%.chain}.err"
	"$bin" check "$src" >"$tmp" 2>&1 </dev/null
	status=$?
	if [ "${CHAIN_UPDATE_ERR:-0}" = 1 ]; then
		cp "$tmp" "$want"
	fi
	ok=1
	if [ $status -ne 1 ]; then
		echo "FAIL $src: exit status $status, expected 1"
		ok=0
	fi
	if [ ! -f "$want" ]; then
		echo "FAIL $src: no $want; the output was:"
		cat "$tmp"
		ok=0
	elif ! cmp -s "$want" "$tmp"; then
		echo "FAIL $src: output differs from $want (- expected, + actual):"
		diff -u "$want" "$tmp" | sed '1,2d'
		ok=0
	fi
	if [ $ok = 1 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed="$failed $src"
	fi
done

echo "errors: $pass passed, $fail failed"
if [ $fail -ne 0 ]; then
	echo "failed:$failed"
	exit 1
fi
exit 0
