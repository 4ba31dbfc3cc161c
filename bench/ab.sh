#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Before and after a change that claims speed: dp-ringbench of two builds in alternating
# runs, on a host whose speed drifts (2x within minutes on a shared VM), where only runs
# taken side by side compare.
#
#   bench/ab.sh OLD_BUILD NEW_BUILD [PAIRS] [-- DP_RINGBENCH_ARGS...]
#
# OLD_BUILD and NEW_BUILD are build directories holding bench/ringbench/dp-ringbench (or,
# built before it moved there, dataplane/runtime/dp-ringbench)
# (release builds). Each of PAIRS (default 8) pairs runs the old binary, then the new one,
# with the same arguments (default: --keys 1048576 --batch 1; --seconds 1 --repetitions 3
# are always given); a run's figure is the minimum busy ns per request over its
# repetitions. Prints every pair, then: how many pairs the new build won, the median of
# the new / old ratios (under 1 is faster), and each build's best run. Add --echo to the
# arguments to compare the echo floor. Hugepages when 256 are free, else --no-huge (and
# with SP_NO_HUGE=1); the first line says which.
set -euo pipefail

# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
bench_args "$0" 2 "$@"
old=$(bench_ringbench_of "$1")
new=$(bench_ringbench_of "$2")
shift 2
pairs=8
if [[ $# -gt 0 && $1 != -- ]]; then
	pairs=$1
	shift
fi
bench_ringbench_args "$0" "$@"
if [[ ${#args[@]} -eq 0 ]]; then
	args=(--keys 1048576 --batch 1)
fi
bench_count "$0" PAIRS "$pairs"
for bin in "$old" "$new"; do
	if [[ ! -x $bin ]]; then
		echo "ab.sh: $bin not found: build both first (ninja -C BUILD bench/ringbench/dp-ringbench)" >&2
		exit 2
	fi
done

prefix=sp-ab-$$
bench_eal "$prefix"
log=$(mktemp)
trap 'rm -f "$log"; rm -rf "/var/run/dpdk/$prefix"' EXIT

# The minimum busy ns per request of one run; empty (and the output on stderr) on failure.
run() {
	if ! timeout 300 "$1" "${eal[@]}" -- --seconds 1 --repetitions 3 "${args[@]}" \
		>"$log" 2>&1; then
		echo "ab.sh: $1 failed:" >&2
		tail -5 "$log" >&2
		return 1
	fi
	awk '/busy ns per request over/ {gsub(",", "", $10); print $10}' "$log"
}

echo "ab.sh: old $old, new $new, $pairs pairs, dp-ringbench ${args[*]}, EAL ${eal[*]}"
echo "pair old new new/old"
results=()
for ((i = 1; i <= pairs; i++)); do
	a=$(run "$old")
	b=$(run "$new")
	if [[ -z $a || -z $b ]]; then
		echo "ab.sh: pair $i gave no figure" >&2
		exit 1
	fi
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')
	echo "$i $a $b $ratio"
	results+=("$a $b $ratio")
done
printf '%s\n' "${results[@]}" | awk '
	{ a[NR] = $1; b[NR] = $2; r[NR] = $3; if ($3 < 1) won++ }
	END {
		n = NR
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
		med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
		amin = a[1]; bmin = b[1]
		for (i = 2; i <= n; i++) { if (a[i] < amin) amin = a[i]; if (b[i] < bmin) bmin = b[i] }
		printf "new faster in %d of %d pairs; median new/old %.3f; best run old %.1f ns, new %.1f ns\n",
		       won, n, med, amin, bmin
	}'
