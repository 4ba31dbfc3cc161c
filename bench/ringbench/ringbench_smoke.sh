#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# dp-ringbench as a correctness check, not a speed one: short runs over net_ring that must
# answer every request OK and give every mbuf back. Covers the single-request fast path of
# the generator, batched datagrams split over two workers (hand-off copies) and steering,
# and the --echo floor (every request answered, every frame back in the generator's pool).
# Uses hugepages when some are free (and SP_NO_HUGE is not 1), else --no-huge.
#   ringbench_smoke.sh PATH-TO-dp-ringbench
set -u
bench=${1:?usage: ringbench_smoke.sh PATH-TO-dp-ringbench}
free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
prefix=sp-rbsmoke-$$
if [ "${SP_NO_HUGE:-0}" != 1 ] && [ "$free" -ge 256 ]; then
	# With a prefix: EAL makes a runtime directory even in memory (removed on exit).
	mem="--in-memory --file-prefix $prefix"
	echo "ringbench_smoke: hugepages ($free free)"
else
	mem="--file-prefix $prefix --no-huge -m 512"
	echo "ringbench_smoke: --no-huge"
fi
out=$(mktemp)
trap 'rm -f "$out"; rm -rf "/var/run/dpdk/$prefix"' EXIT
status=0
run() {
	# $1: lcores, rest: dp-ringbench options
	lcores=$1
	shift
	# shellcheck disable=SC2086
	timeout 120 "$bench" --no-pci --lcores "$lcores" $mem -- --seconds 1 "$@" >"$out" 2>&1
	rc=$?
	grep '^ringbench:\|^mbufs:' "$out"
	if [ $rc -ne 0 ]; then
		echo "FAIL ($*): exit status $rc"
		tail -20 "$out"
		status=1
	elif { ! grep -q '^ringbench: echo floor' "$out" && ! grep -q 'bad statuses 0$' "$out"; } ||
		! grep -q ' 0 non-OK replies$' "$out" ||
		! grep -q '^mbufs: 0 in use' "$out"; then
		echo "FAIL ($*): a request was not answered OK, or an mbuf was not given back"
		status=1
	fi
}
# Bad flags are refused with exit status 2, before any load; --help exits 0.
flags() {
	want=$1
	shift
	# shellcheck disable=SC2086
	timeout 60 "$bench" --no-pci -l 0-1 $mem -- "$@" >"$out" 2>&1
	rc=$?
	if [ $rc -ne "$want" ]; then
		echo "FAIL (flags $*): exit status $rc, expected $want"
		tail -5 "$out"
		status=1
	fi
}
flags 2 --keys 12x
flags 2 --keys 0
flags 2 --repetitions 21
flags 2 --partitions 3
flags 2 --batch 33
flags 2 --seconds 61
flags 2 --steer --batch 2
flags 2 --echo --workers 2
flags 2 --echo --steer
flags 2 --bogus
flags 0 --help
# --echo with no lcore for its loop is refused, naming the need.
# shellcheck disable=SC2086
timeout 60 "$bench" --no-pci -l 0 $mem -- --echo >"$out" 2>&1
rc=$?
if [ $rc -ne 1 ] || ! grep -q 'needs a second lcore' "$out"; then
	echo "FAIL (--echo on one lcore): exit status $rc, expected 1 and a clear message"
	tail -5 "$out"
	status=1
fi
run 0@0,1@1 --keys 4096 --batch 1
run 0@0,1@1,2@1 --keys 4096 --batch 8 --workers 2 --partitions 16
run 0@0,1@1,2@1 --keys 4096 --batch 1 --workers 2 --steer
run 0@0,1@1 --echo --keys 4096 --batch 1
run 0@0,1@1 --echo --keys 4096 --batch 32
[ $status -eq 0 ] && echo "ringbench_smoke: PASS"
exit $status
