#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Instructions the node executes per request, by function: a figure that, unlike time,
# does not drift with a shared host, so it judges a change to the request path in one run.
#
#   bench/instructions.sh BUILD_DIR [-- DP_RINGBENCH_ARGS...]
#
# Runs BUILD_DIR's dp-ringbench under valgrind's callgrind (Debian package valgrind),
# counting only inside the workers' serve_burst() (everything a received datagram costs
# from classification to its reply being queued; not the receive and transmit calls), and
# prints instructions per request for the node's main functions, inclusive of what they
# call. Default arguments: --keys 1024 --batch 32 (the transport's per-datagram costs
# spread thin, the store in cache); --seconds SP_INSTR_SECONDS (8) --repetitions 1 are
# always given. Use a release build with the compiler flags of the build being judged;
# valgrind runs it about 50 times slower, without hugepages. Memory stalls are not
# counted: read time figures (bench/ab.sh) for those.
set -euo pipefail

# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
bench_args "$0" 1 "$@"
rb=$(bench_ringbench_of "$1")
shift
bench_ringbench_args "$0" "$@"
if [[ ${#args[@]} -eq 0 ]]; then
	args=(--keys 1024 --batch 32)
fi
seconds=${SP_INSTR_SECONDS:-8}
bench_count "$0" SP_INSTR_SECONDS "$seconds"
if [[ ! -x $rb ]]; then
	echo "instructions.sh: $rb not found: build first (ninja -C BUILD bench/ringbench/dp-ringbench)" >&2
	exit 2
fi
for tool in valgrind callgrind_annotate; do
	if ! command -v "$tool" >/dev/null; then
		echo "instructions.sh: $tool not found (Debian package valgrind; scripts/setup installs it)" >&2
		exit 2
	fi
done

# --workers W needs W + 1 lcores (the generator's and one per worker), here threads on CPUs
# 0-1 (valgrind runs one thread at a time anyway).
workers=1
for ((i = 0; i < ${#args[@]}; i++)); do
	if [[ ${args[i]} == --workers && $((i + 1)) -lt ${#args[@]} ]]; then
		workers=${args[i + 1]}
	fi
done
if ! [[ $workers =~ ^[1-9][0-9]?$ ]]; then
	echo "instructions.sh: --workers $workers: a number from 1" >&2
	exit 2
fi
prefix=sp-instr-$$
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "/var/run/dpdk/$prefix"' EXIT

# --fair-sched: the generator thread gets its turns while the worker busy-polls.
if ! timeout 600 valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$tmp/out" \
	--toggle-collect='serve_burst*' "$rb" --no-pci --no-huge -m 1024 --file-prefix "$prefix" \
	--lcores "(0-$workers)@(0-1)" -- --seconds "$seconds" --repetitions 1 "${args[@]}" >"$tmp/log" 2>&1; then
	echo "instructions.sh: dp-ringbench under valgrind failed:" >&2
	tail -20 "$tmp/log" >&2
	exit 1
fi
# Requests served by every worker (with --workers W a request handed to its owner is
# counted once, where it ran).
requests=$(grep -o 'stats worker[0-9]*: .* requests=[0-9]*' "$tmp/log" |
	grep -o 'requests=[0-9]*$' | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }' || true)
if [[ -z $requests || $requests -eq 0 ]]; then
	echo "instructions.sh: the run served no request:" >&2
	tail -20 "$tmp/log" >&2
	exit 1
fi
echo "instructions.sh: $rb, dp-ringbench ${args[*]}, $requests requests served under callgrind"
echo "instructions per request (inclusive), function"
callgrind_annotate --inclusive=yes "$tmp/out" 2>/dev/null |
	grep -E 'PROGRAM TOTALS|:(serve_local|answer|copy_group|carry_decoded|sp_binexec_run|store_get|store_get_probed|find_live|sp_bp_decode_requests|store_layout_probe|store_layout_prefetch_item|store_layout_prefetch|sp_bp_add_reply|reply_send|net_udp_reply|net_csum_add|net_classify|route_decide) ' |
	awk -v r="$requests" '{
		n = $1; gsub(",", "", n)
		name = $0; sub(/.*:/, "", name); sub(/ .*/, "", name)
		if ($0 ~ /PROGRAM TOTALS/) name = "serve_burst (all)"
		printf "%10.1f  %s\n", n / r, name
	}'
