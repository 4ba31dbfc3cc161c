#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Shardplane side by side with the packet I/O limit, memcached and Redis, on this machine,
# in one run:
#
#   bench/compare.sh [BUILD_DIR]        (default BUILD_DIR: build; needs shardplane-dp and
#                                        shardplane-loadgen built there, release build)
#
# What runs (one server core each, the client on the other core; 2 cores are enough):
#   1. testpmd io   dpdk-testpmd io forwarding on a memif port, one forwarding core, fed by
#                   shardplane-loadgen --echo: the loadgen's request frames come back
#                   unchanged. This is the packet I/O limit of the same device kind (memif)
#                   with the same generator: no parsing, no store, no reply building.
#   2. Shardplane   shardplane-dp, one worker core, memif, --busy-poll; shardplane-loadgen
#                   preloads SP_BENCH_KEYS keys (8-byte keys, 8-byte values) and runs GETs,
#                   uniform keys, single-request datagrams and 32-request datagrams.
#   3. memcached    one worker thread (-t 1): memcaslap over UDP (-U) on loopback, and over
#                   TCP. memcaslap needs keys of at least 16 bytes: 16-byte keys, 8-byte
#                   values, GETs only (memcaslap sets each missing key once first).
#   4. Redis        redis-server (single-threaded), redis-benchmark GET plain and
#                   pipelined -P 16, 8-byte values, keys "key:" + 12 digits, preloaded.
# The memif runs use hugepages when at least SP_BENCH_HUGEPAGES_MIN 2 MiB pages are free
# (and SP_NO_HUGE is not 1), else --no-huge; the table says which.
#
# Environment: SP_BENCH_SECONDS (10) per measured run, SP_BENCH_KEYS (1000000),
# SP_BENCH_OUT (BUILD_DIR/compare-<date>): where the JSON reports, logs, table.md, results.dat and
# compare.png go; SP_BENCH_NICE (-10): nice level of the script's own session and of every
# benchmark process, so that other work on a shared machine disturbs the figures less (0 to
# leave it alone; negative levels need root).
#
# Every process is started by this script, bounded by timeout(1), and stopped by its pid.
set -euo pipefail

# Linux groups processes by session for scheduling (autogroup), so nice(1) alone only
# ranks them against each other. Run in a session of our own and give that session the
# nice level: on a shared machine the figures then depend less on other work.
if [[ -z ${SP_COMPARE_SESSION:-} ]] && command -v setsid >/dev/null; then
	SP_COMPARE_SESSION=1 exec setsid --wait "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-$root/build}
seconds=${SP_BENCH_SECONDS:-10}
keys=${SP_BENCH_KEYS:-1000000}
nice_level=${SP_BENCH_NICE:--10}
out=${SP_BENCH_OUT:-$build/compare-$(date -u +%Y%m%dT%H%M%SZ)}
hugepages_min=${SP_BENCH_HUGEPAGES_MIN:-400}

dp=$build/dataplane/runtime/shardplane-dp
lg=$build/bench/loadgen/shardplane-loadgen
for bin in "$dp" "$lg"; do
	if [[ ! -x $bin ]]; then
		echo "compare.sh: $bin not found: build first (meson setup $build && ninja -C $build)" >&2
		exit 2
	fi
done
for tool in dpdk-testpmd memcached memcaslap redis-server redis-benchmark gnuplot python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "compare.sh: $tool not found: run scripts/setup" >&2
		exit 2
	fi
done
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 300)); then
	echo "compare.sh: SP_BENCH_SECONDS=$seconds: give 1..300" >&2
	exit 2
fi
if ! [[ $keys =~ ^[0-9]+$ ]] || ((keys < 1000 || keys > 10000000)); then
	echo "compare.sh: SP_BENCH_KEYS=$keys: give 1000..10000000" >&2
	exit 2
fi
mkdir -p "$out"
if [[ -w /proc/self/autogroup ]]; then
	echo "$nice_level" >/proc/self/autogroup 2>/dev/null ||
		echo "compare.sh: could not set this session's nice level to $nice_level" >&2
fi
tmp=$(mktemp -d /tmp/sp-compare.XXXXXX)
pids=()

# Sends signal $2 to started process $1, waits up to $3 tenths of a second for it to end,
# then KILLs and reaps it.
end_pid() {
	local pid=$1
	kill -"$2" "$pid" 2>/dev/null || true
	for _ in $(seq "$3"); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Stops every process this script started, by pid: TERM, then KILL after 10 s.
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		end_pid "$pid" TERM 100
	done
	pids=()
	exec 3>&- 2>/dev/null || true
	rm -rf "$tmp"
	# The EAL runtime directories of our file prefixes (eal_mem; EAL makes one even with
	# --in-memory), left at exit.
	rm -rf /var/run/dpdk/sp-cmp-tp-$$ /var/run/dpdk/sp-cmp-lg-$$ /var/run/dpdk/sp-cmp-dp-$$
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one started process by pid (INT first: DPDK programs print their counters).
stop_pid() {
	local pid=$1
	end_pid "$pid" INT 150
	local keep=()
	for p in "${pids[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	pids=("${keep[@]+"${keep[@]}"}")
}

# Waits (bounded) until file $1 contains the text $2.
wait_for() {
	for _ in $(seq 600); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "compare.sh: gave up waiting for '$2' in $1" >&2
	tail -20 "$1" >&2
	return 1
}

ncpu=$(nproc)
if ((ncpu >= 2)); then
	server_cpu=1
	client_cpu=0
else
	server_cpu=0
	client_cpu=0
fi
hp_free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
if [[ ${SP_NO_HUGE:-0} != 1 ]] && ((hp_free >= hugepages_min)); then
	huge=hugepages
else
	huge=no-huge
fi
# EAL memory options: $1 = file prefix, $2 = MiB without hugepages.
eal_mem() {
	if [[ $huge == hugepages ]]; then
		echo "--in-memory --file-prefix $1-$$"
	else
		echo "--file-prefix $1-$$ --no-huge -m $2"
	fi
}
run_nice() {
	nice -n "$nice_level" "$@"
}
# A JSON counter of the first benchmark in a libcbench report.
json_field() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["benchmarks"][0][sys.argv[2]])' "$1" "$2"
}

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	echo "machine: $ncpu CPUs, $cpu_model, kernel $(uname -r), hugepages: $huge ($hp_free free)"
	echo "commit: $commit; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "command: SP_BENCH_SECONDS=$seconds SP_BENCH_KEYS=$keys SP_BENCH_NICE=$nice_level bench/compare.sh $build"
} | tee "$out/machine.txt"

# ---- 1. dpdk-testpmd io forwarding on memif (the I/O limit) -------------------------
sock_tp=$tmp/testpmd.sock
mkfifo "$tmp/testpmd.in"
exec 3<>"$tmp/testpmd.in" # keeps testpmd's stdin open (it exits on EOF)
# shellcheck disable=SC2046
timeout -s INT $((seconds * 2 + 120)) nice -n "$nice_level" dpdk-testpmd --no-pci \
	-l "$client_cpu,$server_cpu" --main-lcore "$client_cpu" $(eal_mem sp-cmp-tp 512) \
	--vdev "net_memif0,role=server,socket=$sock_tp" -- --forward-mode=io \
	--port-topology=loop --nb-cores=1 --total-num-mbufs=16384 --auto-start \
	<"$tmp/testpmd.in" >"$out/testpmd.log" 2>&1 &
tp_pid=$!
pids+=("$tp_pid")
wait_for "$out/testpmd.log" "Checking link statuses"
for rpd in 1 32; do
	window=$((rpd == 1 ? 256 : 1024))
	# shellcheck disable=SC2046
	timeout $((seconds + 60)) nice -n "$nice_level" "$lg" --no-pci -l "$client_cpu" \
		$(eal_mem sp-cmp-lg 256) --vdev "net_memif0,role=client,socket=$sock_tp" -- \
		--echo --dst-mac 02:00:00:00:00:01 --dst-ip 10.200.0.1 --keys "$keys" \
		--rpd "$rpd" --window "$window" --duration-s "$seconds" --timeout-ms 1000 \
		--json "$out/testpmd_rpd$rpd.json" >"$out/testpmd_rpd$rpd.log" 2>&1 ||
		echo "compare.sh: loadgen --echo rpd $rpd failed, see $out/testpmd_rpd$rpd.log" >&2
done
stop_pid "$tp_pid"
exec 3>&-

# ---- 2. Shardplane over memif ----------------------------------------------------------
sock_dp=$tmp/dp.sock
# shellcheck disable=SC2046
timeout -s INT $((seconds * 4 + 600)) nice -n "$nice_level" "$dp" --no-pci \
	--lcores "0@$client_cpu,1@$server_cpu" $(eal_mem sp-cmp-dp 1536) \
	--vdev "net_memif0,role=server,socket=$sock_dp" -- --ip 10.200.0.1/24 --port 9000 \
	--partitions 64 --memory-mb 512 --busy-poll >"$out/dp.out" 2>"$out/dp.log" &
dp_pid=$!
pids+=("$dp_pid")
wait_for "$out/dp.log" "ready:"
# Batched first: its preload (SETs packed 30 to a datagram) fills the store for both.
for rpd in 32 1; do
	window=$((rpd == 1 ? 256 : 1024))
	preload=()
	[[ $rpd == 32 ]] && preload=(--preload)
	# shellcheck disable=SC2046
	timeout $((seconds + 600)) nice -n "$nice_level" "$lg" --no-pci -l "$client_cpu" \
		$(eal_mem sp-cmp-lg 256) --vdev "net_memif0,role=client,socket=$sock_dp" -- \
		--dst-ip 10.200.0.1 --keys "$keys" --key-size 8 --value-size 8 "${preload[@]}" \
		--rpd "$rpd" --window "$window" --duration-s "$seconds" --timeout-ms 1000 \
		--json "$out/shardplane_rpd$rpd.json" >"$out/shardplane_rpd$rpd.log" 2>&1 ||
		echo "compare.sh: loadgen rpd $rpd failed, see $out/shardplane_rpd$rpd.log" >&2
done
stop_pid "$dp_pid"

# ---- 3. memcached: memcaslap over UDP and TCP ------------------------------------------
cat >"$tmp/memcaslap.cfg" <<'EOF'
key
16 16 1
value
8 8 1
cmd
0 0.0
1 1.0
EOF
mc_port=$((20000 + $$ % 10000))
for proto in udp tcp; do
	udp_flags=()
	[[ $proto == udp ]] && udp_flags=(-U)
	timeout $((seconds + 300)) nice -n "$nice_level" taskset -c "$server_cpu" memcached \
		-U "$mc_port" -p "$mc_port" -l 127.0.0.1 -t 1 -m 1024 -u root \
		>"$out/memcached_$proto.log" 2>&1 &
	mc_pid=$!
	pids+=("$mc_pid")
	sleep 1
	timeout $((seconds + 240)) nice -n "$nice_level" taskset -c "$client_cpu" memcaslap \
		-s "127.0.0.1:$mc_port" "${udp_flags[@]}" -F "$tmp/memcaslap.cfg" -t "${seconds}s" \
		-T 1 -c 16 -w 16k >"$out/memcaslap_$proto.log" 2>&1 ||
		echo "compare.sh: memcaslap $proto failed, see $out/memcaslap_$proto.log" >&2
	stop_pid "$mc_pid"
done

# ---- 4. Redis: redis-benchmark plain and pipelined ---------------------------------------
rd_port=$((30000 + $$ % 10000))
timeout $((seconds * 4 + 600)) nice -n "$nice_level" taskset -c "$server_cpu" redis-server \
	--port "$rd_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
	>"$out/redis-server.log" 2>&1 &
rd_pid=$!
pids+=("$rd_pid")
wait_for "$out/redis-server.log" "Ready to accept connections"
rb() {
	timeout $((seconds + 120)) nice -n "$nice_level" taskset -c "$client_cpu" \
		redis-benchmark -p "$rd_port" -r "$keys" -d 8 --csv "$@"
}
# Preload every key (pipelined SETs), then GETs: plain, and 16 requests per round trip.
rb -t set -n "$keys" -P 16 >"$out/redis_preload.csv" 2>&1 || true
rb -t get -n $((seconds * 20000)) >"$out/redis_get.csv" 2>&1 || true
rb -t get -n $((seconds * 200000)) -P 16 >"$out/redis_get_p16.csv" 2>&1 || true
stop_pid "$rd_pid"

# ---- The table -------------------------------------------------------------------------------
memcaslap_tps() {
	awk '/^Run time:/ {for (i = 1; i < NF; i++) if ($i == "TPS:") v = $(i + 1)} END {print v + 0}' "$1"
}
redis_rps() {
	awk -F'","' '/^"GET/ {gsub(/"/, "", $2); print $2 + 0; exit}' "$1"
}
sp_json() {
	if [[ -s $1 ]]; then json_field "$1" "$2"; else echo 0; fi
}
tp1=$(sp_json "$out/testpmd_rpd1.json" items_per_second)
tp32=$(sp_json "$out/testpmd_rpd32.json" items_per_second)
sp1=$(sp_json "$out/shardplane_rpd1.json" items_per_second)
sp32=$(sp_json "$out/shardplane_rpd32.json" items_per_second)
mcu=$(memcaslap_tps "$out/memcaslap_udp.log")
mct=$(memcaslap_tps "$out/memcaslap_tcp.log")
rdp=$(redis_rps "$out/redis_get.csv")
rdp16=$(redis_rps "$out/redis_get_p16.csv")
sp1_p99=$(sp_json "$out/shardplane_rpd1.json" p99_ns)
sp1_loss=$(sp_json "$out/shardplane_rpd1.json" losses)
sp32_loss=$(sp_json "$out/shardplane_rpd32.json" losses)

python3 - "$out" "$huge" "$tp1" "$tp32" "$sp1" "$sp32" "$mcu" "$mct" "$rdp" "$rdp16" <<'EOF'
import sys
out, huge = sys.argv[1], sys.argv[2]
tp1, tp32, sp1, sp32, mcu, mct, rdp, rdp16 = (float(x) for x in sys.argv[3:11])
rows = [
    ("testpmd io fwd (echo)", "memif, 1 req/dgram", huge, tp1, tp1),
    ("testpmd io fwd (echo)", "memif, 32 req/dgram", huge, tp32, tp32),
    ("Shardplane GET", "memif, 1 req/dgram", huge, sp1, tp1),
    ("Shardplane GET", "memif, 32 req/dgram", huge, sp32, tp32),
    ("memcached GET (memcaslap)", "UDP loopback", "n/a", mcu, tp1),
    ("memcached GET (memcaslap)", "TCP loopback", "n/a", mct, tp1),
    ("Redis GET (redis-benchmark)", "TCP, plain", "n/a", rdp, tp1),
    ("Redis GET (redis-benchmark)", "TCP, -P 16", "n/a", rdp16, tp32),
]
def ratio(a, b):
    return "%.2f" % (a / b) if b > 0 else "n/a"
lines = ["| system | transport | hugepages | requests/s | server cores | requests/s per core"
         " | vs testpmd (same batching) | vs memcached UDP |",
         "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
for name, transport, hp, rps, base in rows:
    lines.append("| %s | %s | %s | %.0f | 1 | %.0f | %s | %s |" %
                 (name, transport, hp, rps, rps, ratio(rps, base), ratio(rps, mcu)))
table = "\n".join(lines)
print(table)
with open(out + "/table.md", "w") as f:
    f.write(table + "\n")
with open(out + "/results.dat", "w") as f:
    f.write("# label requests_per_second\n")
    for name, transport, hp, rps, base in rows:
        f.write('"%s, %s" %.0f\n' % (name.split(" (")[0], transport, rps))
EOF
echo "Shardplane 1 req/dgram: p99 ${sp1_p99} ns, losses ${sp1_loss}; 32 req/dgram: losses ${sp32_loss}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
gnuplot -e "datafile='$out/results.dat'; outfile='$out/compare.png'" "$here/plot.gp" &&
	echo "chart: $out/compare.png"
echo "reports and logs: $out"
