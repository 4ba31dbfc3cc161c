#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Smoke test of bench/ab.sh: this build against itself, one pair over 1,024 keys. It must
# exit 0 and print its summary line; the figures are not checked (this is not a speed test).
#   ab_smoke.sh PATH-TO-ab.sh BUILD_DIR
set -u
ab=${1:?usage: ab_smoke.sh PATH-TO-ab.sh BUILD_DIR}
build=${2:?usage: ab_smoke.sh PATH-TO-ab.sh BUILD_DIR}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$ab" "$build" "$build" 1 -- --keys 1024 --batch 4 >"$out" 2>&1
rc=$?
cat "$out"
if [ $rc -ne 0 ]; then
	echo "FAIL: ab.sh exited with status $rc"
	exit 1
fi
if ! grep -q '^new faster in [01] of 1 pairs; median new/old [0-9.]*; best run old [0-9.]* ns, new [0-9.]* ns$' "$out"; then
	echo "FAIL: no summary line"
	exit 1
fi
# Bad arguments are refused with status 2 and a message.
if "$ab" "$build" >/dev/null 2>&1 || [ $? -ne 2 ]; then
	echo "FAIL: one build directory was not refused with status 2"
	exit 1
fi
if "$ab" "$build" "$build" x >/dev/null 2>&1 || [ $? -ne 2 ]; then
	echo "FAIL: PAIRS 'x' was not refused with status 2"
	exit 1
fi
echo "ab_smoke: ok"
