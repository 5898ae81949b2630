#!/bin/sh
# run_unit.sh BUILD -- runs every cmocka unit test binary in BUILD/tests.
BUILD=${1:-build}
pass=0; fail=0; failed=""
for t in "$BUILD"/tests/test_*; do
	case "$t" in *.o|*.d) continue;; esac
	[ -x "$t" ] || continue
	if "$t" > "$t.log" 2>&1; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); failed="$failed $(basename "$t")"
		cat "$t.log"
	fi
done
echo "unit: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
