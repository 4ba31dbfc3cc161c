# shellcheck shell=bash
# SPDX-License-Identifier: BSD-3-Clause
# Shared by bench/ab.sh, bench/floors.sh and bench/instructions.sh; sourced, not run.

# Handles -h/--help (prints the script's header comment, exits 0) and too few arguments
# (prints it to stderr, exits 2). Usage: bench_args SCRIPT MIN_ARGS "$@".
bench_args() {
	local script=$1 min=$2
	shift 2
	if [[ ${1:-} == -h || ${1:-} == --help ]]; then
		bench_usage "$script"
		exit 0
	fi
	if [[ $# -lt $min ]]; then
		bench_usage "$script" >&2
		exit 2
	fi
}

# Sets the array args to the dp-ringbench arguments that follow "--" (the rest of a
# script's arguments must be empty or start with it; else exit 2). Usage:
# bench_ringbench_args SCRIPT "$@".
# shellcheck disable=SC2034 # args is the callers'
bench_ringbench_args() {
	local script=$1
	shift
	if [[ $# -gt 0 && $1 != -- ]]; then
		echo "${script##*/}: expected -- before the dp-ringbench arguments, got '$1'" >&2
		exit 2
	fi
	args=("${@:2}")
}

# Exits 2 with a message unless $3 is a count 1..99. Usage: bench_count SCRIPT NAME VALUE.
bench_count() {
	if ! [[ $3 =~ ^[1-9][0-9]?$ ]]; then
		echo "${1##*/}: $2 must be 1..99, not '$3'" >&2
		exit 2
	fi
}

# Prints the dp-ringbench of build directory $1: bench/ringbench/dp-ringbench, or where
# builds of older commits have it (dataplane/runtime/), so that alternating-pair runs can
# compare across the move. Prints the new path when neither exists.
bench_ringbench_of() {
	local old=$1/dataplane/runtime/dp-ringbench
	if [[ ! -x $1/bench/ringbench/dp-ringbench && -x $old ]]; then
		echo "$old"
	else
		echo "$1/bench/ringbench/dp-ringbench"
	fi
}

# The comment block under a script's licence line, without the '# ' marks.
bench_usage() {
	awk 'NR > 3 && /^#/ {sub(/^# ?/, ""); print; next} NR > 3 {exit}' "$1"
}

# Sets the array eal to the EAL options of a run on lcores 0-1: hugepages (--in-memory)
# when at least 256 are free and SP_NO_HUGE is not 1, else --no-huge (which cannot go with
# --in-memory). Both with the file prefix $1: EAL makes a runtime directory even in memory
# (/var/run/dpdk/rte without a prefix), and the caller removes /var/run/dpdk/$1.
# shellcheck disable=SC2034 # eal is the callers'
bench_eal() {
	local free
	free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
	eal=(--no-pci -l 0-1 --in-memory --file-prefix "$1")
	if [[ ${SP_NO_HUGE:-0} == 1 || $free -lt 256 ]]; then
		eal=(--no-pci -l 0-1 --file-prefix "$1" --no-huge -m 1024)
	fi
}
