#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The dataplane's single-core figures next to the floors of the machine they ran on, in
# one run (bench/RESULTS.md, "What this machine allows"):
#
#   bench/floors.sh [BUILD_DIR]     (default BUILD_DIR: build; a release build with
#                                    dp-ringbench, bench_store and bench_memory)
#
# What runs, on lcores 0-1 (two cores are enough), everything bounded by timeout(1):
#   reference  dpdk-testpmd io forwarding between two net_null ports, before and after:
#              how fast this host runs packet I/O right now (about 55 Mpps per port on a
#              quiet host of the project's kind; less when the host is busy).
#   memory     bench_memory: load latency at 1 MiB and 256 MiB, translation over 8,192
#              pages, random-line throughput at 256 MiB.
#   store      bench_store: a prefetched GET hit at 1,024 and 1,048,576 items.
#   rounds     SP_FLOORS_ROUNDS (3) rounds of dp-ringbench, alternating within each round:
#              the echo floor (--echo), the node over 1,024 keys (store in cache) and over
#              1,048,576 keys, at 1 and 32 requests per datagram. Each run is
#              --seconds 1 --repetitions 3; the table gives the min / median / max over the
#              runs of each row of the per-run minima (busy ns per request).
# Environment: SP_FLOORS_ROUNDS; SP_NO_HUGE=1 forces --no-huge (the default when fewer than
# 256 hugepages are free). The first line says which.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-$root/build}
rounds=${SP_FLOORS_ROUNDS:-3}
bs=$build/bench/store/bench_store
bm=$build/bench/memory/bench_memory

# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
rb=$(bench_ringbench_of "$build")
bench_args "$0" 0 "$@"
bench_count "$0" SP_FLOORS_ROUNDS "$rounds"
for bin in "$rb" "$bs" "$bm"; do
	if [[ ! -x $bin ]]; then
		echo "floors.sh: $bin not found: build first (meson setup $build -Dbuildtype=release && ninja -C $build)" >&2
		exit 2
	fi
done
if ! command -v dpdk-testpmd >/dev/null; then
	echo "floors.sh: dpdk-testpmd not found (Debian package dpdk)" >&2
	exit 2
fi

prefix=sp-floors-$$
bench_eal "$prefix"

# Mpps per port of testpmd io forwarding between two net_null ports (the last report).
reference() {
	# testpmd runs until timeout stops it with SIGINT: its exit status says nothing.
	timeout -s INT 8 dpdk-testpmd "${eal[@]}" --vdev net_null0 --vdev net_null1 -- \
		--forward-mode=io --auto-start --stats-period 1 --total-num-mbufs=8192 \
		</dev/null >"$tmp/testpmd.log" 2>&1 || true
	awk '/Rx-pps:/ {v = $2} END {printf "%.1f", v / 1e6}' "$tmp/testpmd.log"
}

# Busy ns per request (the minimum over the run's repetitions) of one dp-ringbench run.
ringbench() {
	timeout 300 "$rb" "${eal[@]}" -- --seconds 1 --repetitions 3 "$@" >"$tmp/rb.log" 2>&1 ||
		echo "floors.sh: dp-ringbench $* failed, see its output:" "$(tail -3 "$tmp/rb.log")" >&2
	awk '/busy ns per request over/ {gsub(",", "", $10); print $10}' "$tmp/rb.log"
}

# "min / median / max" of the numbers on stdin.
spread() {
	sort -n | awk '{v[NR] = $1} END {
		if (NR == 0) { print "-"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f / %.1f / %.1f\n", v[1], m, v[NR] }'
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "/var/run/dpdk/$prefix"' EXIT

echo "floors.sh: $(uname -n), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), EAL ${eal[*]}"
ref_before=$(reference)
echo "reference: testpmd io forwarding, two net_null ports: $ref_before Mpps per port"

echo "memory (bench_memory, ns per load):"
timeout 300 "$bm" --benchmark_min_time=0.3 \
	--benchmark_filter='chase/bytes:(1048576|268435456)$|pages/pages:8192$|prefetched/bytes:268435456$' \
	2>/dev/null | awk '/^BM_/ {printf "  %-40s %s %s\n", $1, $2, $3}'
echo "store (bench_store, ns per GET):"
timeout 300 "$bs" --benchmark_min_time=0.3 \
	--benchmark_filter='get_hit_prefetch/items:(1024|1048576)$' \
	2>/dev/null | awk '/^BM_/ {printf "  %-40s %s %s\n", $1, $2, $3}'

rows=("echo 1 --echo --keys 1048576 --batch 1"
	"node-1K 1 --keys 1024 --batch 1"
	"node-1M 1 --keys 1048576 --batch 1"
	"echo 32 --echo --keys 1048576 --batch 32"
	"node-1K 32 --keys 1024 --batch 32"
	"node-1M 32 --keys 1048576 --batch 32")
for ((r = 1; r <= rounds; r++)); do
	for i in "${!rows[@]}"; do
		read -r _ _ args <<<"${rows[$i]}"
		# shellcheck disable=SC2086 # args are words
		v=$(ringbench $args)
		[[ -n $v ]] && echo "$v" >>"$tmp/row$i"
	done
	echo "round $r of $rounds done"
done
ref_after=$(reference)

echo
echo "| run | requests per datagram | busy ns per request (min / median / max) |"
echo "| --- | ---: | ---: |"
for i in "${!rows[@]}"; do
	read -r name batch _ <<<"${rows[$i]}"
	touch "$tmp/row$i"
	echo "| $name | $batch | $(spread <"$tmp/row$i") |"
done
echo
echo "reference after: $ref_after Mpps per port (before: $ref_before)"
