#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Smoke test of bench/instructions.sh on this build (1 s under callgrind): it must exit 0
# and count a plausible number of instructions per request (what the count is, is not
# checked: builds differ). Skipped (77) without valgrind.
#   instructions_smoke.sh PATH-TO-instructions.sh BUILD_DIR
set -u
script=${1:?usage: instructions_smoke.sh PATH-TO-instructions.sh BUILD_DIR}
build=${2:?usage: instructions_smoke.sh PATH-TO-instructions.sh BUILD_DIR}
if ! command -v valgrind >/dev/null; then
	echo "SKIP: valgrind is not installed (scripts/setup installs it)"
	exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
SP_INSTR_SECONDS=1 "$script" "$build" >"$out" 2>&1
rc=$?
cat "$out"
if [ $rc -ne 0 ]; then
	echo "FAIL: instructions.sh exited with status $rc"
	exit 1
fi
per=$(awk '/serve_burst \(all\)$/ {print int($1)}' "$out")
if [ -z "$per" ] || [ "$per" -lt 100 ] || [ "$per" -gt 100000 ]; then
	echo "FAIL: implausible instructions per request: '${per}'"
	exit 1
fi
if "$script" "$build" extra >/dev/null 2>&1 || [ $? -ne 2 ]; then
	echo "FAIL: a stray argument was not refused with status 2"
	exit 1
fi
echo "instructions_smoke: ok ($per instructions per request)"
