#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# RATELIMIT and AGGREGATE through a real node: starts shardplane-dp on a net_tap interface
# (--in-memory, WORKERS workers on the machine's cores), runs bench/tasks/tasks_load
# against it from the kernel side, stops the node (its exit report is kept) and prints
# what was measured and on what (CPU, load average, commit). Needs root (tap).
#
#   bench/tasks/e2e.sh BUILD_DIR [WORKERS] [tasks_load args...]
set -eu
build=${1:?usage: e2e.sh BUILD_DIR [WORKERS] [tasks_load args...]}
workers=${2:-1}
[ $# -ge 2 ] && shift 2 || shift 1
tag=$$
ifname=spb$tag
log=$(mktemp /tmp/sp-tasks-e2e.XXXXXX)
dp=""
cleanup() {
	if [ -n "$dp" ] && kill -0 "$dp" 2>/dev/null; then
		kill -TERM "$dp" 2>/dev/null || true
		sleep 2
		kill -KILL "$dp" 2>/dev/null || true
	fi
	ip link del "$ifname" 2>/dev/null || true
	rm -rf "/var/run/dpdk/sp-tasks-e2e-$tag"
}
trap cleanup EXIT INT TERM

# Workers on lcores 1..W, spread over the machine's cores after the main one's.
ncpu=$(nproc)
lcores="0@0"
i=1
while [ "$i" -le "$workers" ]; do
	lcores="$lcores,$i@$(( (i % (ncpu > 1 ? ncpu - 1 : 1)) + (ncpu > 1 ? 1 : 0) ))"
	i=$((i + 1))
done
"$build/dataplane/runtime/shardplane-dp" --no-pci --in-memory --file-prefix "sp-tasks-e2e-$tag" --vdev "net_tap0,iface=$ifname" \
	--lcores "$lcores" -- --ip 10.213.0.1/24 --port 9000 --partitions 64 --memory-mb 64 \
	>"$log" 2>&1 &
dp=$!
for _ in $(seq 1 100); do
	ip link show "$ifname" >/dev/null 2>&1 && grep -q "ready:" "$log" && break
	sleep 0.1
done
ip addr add 10.213.0.2/24 dev "$ifname"
ip link set "$ifname" up
sleep 0.5
echo "e2e: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?');" \
	"$workers worker(s), net_tap, 64 partitions"
rc=0
"$build/bench/tasks/tasks_load" --server 10.213.0.1:9000 "$@" || rc=$?
echo "e2e: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$dp"
wait "$dp" || rc=1
dp=""
grep -E "^tasks:|^task |^mbufs:" "$log" || true
rm -f "$log"
exit $rc
