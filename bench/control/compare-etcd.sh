#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Side by side: a 3-member shardplane-cp cluster and a 3-member etcd 3.4 cluster on
# loopback, both fsyncing every commit, driven by the same closed-loop writer (cp-load).
#   bench/control/compare-etcd.sh [BUILD_DIR] [OUT.md]
# Measures: commit latency with one client, throughput with 1..64 clients, and the time
# from kill -9 of the leader to the first write accepted by a new leader (3 trials each).
# etcd is reached through its v3 JSON gateway (HTTP/1.1), the only client here without
# Go tooling; that path adds work on etcd's side, which the report says.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
OUT=${2:-bench/control/last-run.md}
CP=$BUILD/control/cp/shardplane-cp
CTL=$BUILD/control/shardctl/shardctl
LOAD=$BUILD/bench/control/cp-load
DURATION=${SP_BENCH_SECONDS:-4}
for b in "$CP" "$CTL" "$LOAD"; do
	[ -x "$b" ] || { echo "missing $b: build first (meson setup $BUILD && ninja -C $BUILD)"; exit 2; }
done
command -v etcd >/dev/null || { echo "etcd not installed: run scripts/setup"; exit 2; }

WORK=$(mktemp -d /tmp/sp-etcd-cmp-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	sleep 0.5
	rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
head -c 32 /dev/urandom | base64 >"$WORK/secret"
chmod 600 "$WORK/secret"

declare -A SP_PID SP_CLIENT ETCD_PID ETCD_CLIENT
start_sp() {
	local ic="" n
	for n in 1 2 3; do SP_PEER[$n]=127.0.0.1:$(port); SP_CLIENT[$n]=127.0.0.1:$(port); done
	for n in 1 2 3; do ic+="${ic:+,}s$n=${SP_PEER[$n]}"; done
	for n in 1 2 3; do
		"$CP" --name s$n --data-dir "$WORK/s$n" --listen-peer "${SP_PEER[$n]}" \
			--listen-client "${SP_CLIENT[$n]}" --initial-cluster "$ic" \
			--secret-file "$WORK/secret" >"$WORK/s$n.log" 2>&1 &
		SP_PID[$n]=$!
		PIDS+=($!)
		disown
	done
}
declare -A SP_PEER ETCD_PEER
start_etcd() {
	local ic="" n
	for n in 1 2 3; do ETCD_PEER[$n]=127.0.0.1:$(port); ETCD_CLIENT[$n]=127.0.0.1:$(port); done
	for n in 1 2 3; do ic+="${ic:+,}e$n=http://${ETCD_PEER[$n]}"; done
	for n in 1 2 3; do
		etcd --name e$n --data-dir "$WORK/e$n" --listen-client-urls "http://${ETCD_CLIENT[$n]}" \
			--advertise-client-urls "http://${ETCD_CLIENT[$n]}" \
			--listen-peer-urls "http://${ETCD_PEER[$n]}" \
			--initial-advertise-peer-urls "http://${ETCD_PEER[$n]}" \
			--initial-cluster "$ic" --initial-cluster-state new >"$WORK/e$n.log" 2>&1 &
		ETCD_PID[$n]=$!
		PIDS+=($!)
		disown
	done
}
sp_leader() { # the member most of the running members name as leader
	local n out
	for _ in $(seq 100); do
		out=""
		for n in 1 2 3; do
			out+=$("$CTL" --endpoints "${SP_CLIENT[$n]}" --secret-file "$WORK/secret" -w json \
				endpoint status 2>/dev/null | python3 -c 'import json,sys
s=json.load(sys.stdin)[0]
print(sys.argv[1], s["id"], s["leader"])' "$n" 2>/dev/null || true)$'\n'
		done
		n=$(echo "$out" | python3 -c 'import sys, collections
rows=[l.split() for l in sys.stdin if l.strip()]
votes=collections.Counter(r[2] for r in rows if r[2] != "0")
if votes:
    lead, cnt = votes.most_common(1)[0]
    if cnt >= 2:
        print(next((r[0] for r in rows if r[1] == lead), ""))')
		if [ -n "$n" ]; then echo "$n"; return; fi
		sleep 0.1
	done
	echo "no shardplane leader" >&2; exit 1
}
etcd_leader() { # the member most of the running members name as leader
	local n out
	for _ in $(seq 100); do
		out=""
		for n in 1 2 3; do
			out+=$(ETCDCTL_API=3 etcdctl --endpoints "${ETCD_CLIENT[$n]}" endpoint status -w json \
				2>/dev/null | python3 -c 'import json,sys
s=json.load(sys.stdin)[0]["Status"]
print(sys.argv[1], s["header"]["member_id"], s["leader"])' "$n" 2>/dev/null || true)$'\n'
		done
		n=$(echo "$out" | python3 -c 'import sys, collections
rows=[l.split() for l in sys.stdin if l.strip()]
votes=collections.Counter(r[2] for r in rows)
if votes:
    lead, cnt = votes.most_common(1)[0]
    if cnt >= 2:
        print(next((r[0] for r in rows if r[1] == lead), ""))')
		if [ -n "$n" ]; then echo "$n"; return; fi
		sleep 0.1
	done
	echo "no etcd leader" >&2; exit 1
}
load() { # target endpoint clients -> "throughput p50 p99"
	local extra=()
	[ "$1" = shardplane ] && extra=(--secret-file "$WORK/secret")
	"$LOAD" --target "$1" --endpoint "$2" --clients "$3" --duration "$DURATION" --json "${extra[@]}" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f %.2f %.2f" % (d["throughput"], d["p50_us"]/1000, d["p99_us"]/1000))'
}

# The machine's fdatasync latency where the members write (the floor of a durable commit).
FSYNC_P50=$(python3 - "$WORK" <<'PY'
import os, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync-probe"), os.O_WRONLY | os.O_CREAT, 0o600)
lat = []
for i in range(300):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1e6)
os.close(fd)
lat.sort()
print("%.0f" % lat[len(lat) // 2])
PY
)
echo "fdatasync p50 here: $FSYNC_P50 us (300 x 4 KiB writes)"
echo "starting 3 shardplane-cp and 3 etcd members on loopback in $WORK"
start_sp
start_etcd
L=$(sp_leader); LE=$(etcd_leader)
declare -A R
for c in 1 2 4 8 16 32 64; do
	R[sp,$c]=$(load shardplane "${SP_CLIENT[$L]}" $c)
	R[etcd,$c]=$(load etcd "${ETCD_CLIENT[$LE]}" $c)
	echo "  $c clients: shardplane ${R[sp,$c]} | etcd ${R[etcd,$c]}  (writes/s p50_ms p99_ms)"
done

# Sets FAIL_MS. Runs in this shell (not in a $(...) subshell), so the pid of the member it
# restarts is recorded in PIDS and cleanup ends it: no process outlives the script.
failover() { # kind
	local kind=$1 l eps="" n ms
	if [ "$kind" = sp ]; then l=$(sp_leader); else l=$(etcd_leader); fi
	for n in 1 2 3; do
		[ "$n" = "$l" ] && continue
		if [ "$kind" = sp ]; then eps+="${eps:+,}${SP_CLIENT[$n]}"; else eps+="${eps:+,}${ETCD_CLIENT[$n]}"; fi
	done
	if [ "$kind" = sp ]; then kill -9 "${SP_PID[$l]}"; else kill -9 "${ETCD_PID[$l]}"; fi
	if [ "$kind" = sp ]; then
		ms=$("$LOAD" --target shardplane --endpoint "$eps" --secret-file "$WORK/secret" --until-ok --duration 20 || true)
	else
		ms=$("$LOAD" --target etcd --endpoint "$eps" --until-ok --duration 20 || true)
	fi
	FAIL_MS=$(echo "$ms" | awk '/first successful write/ {print $(NF-1)}')
	FAIL_MS=${FAIL_MS:-none}
	# Bring the member back for the next trial (it restarts from its data directory).
	if [ "$kind" = sp ]; then
		"$CP" --name s$l --data-dir "$WORK/s$l" --listen-peer "${SP_PEER[$l]}" \
			--listen-client "${SP_CLIENT[$l]}" \
			--initial-cluster "s1=${SP_PEER[1]},s2=${SP_PEER[2]},s3=${SP_PEER[3]}" \
			--initial-cluster-state existing \
			--secret-file "$WORK/secret" >>"$WORK/s$l.log" 2>&1 &
		SP_PID[$l]=$!
	else
		etcd --name e$l --data-dir "$WORK/e$l" --listen-client-urls "http://${ETCD_CLIENT[$l]}" \
			--advertise-client-urls "http://${ETCD_CLIENT[$l]}" \
			--listen-peer-urls "http://${ETCD_PEER[$l]}" \
			--initial-advertise-peer-urls "http://${ETCD_PEER[$l]}" \
			--initial-cluster "e1=http://${ETCD_PEER[1]},e2=http://${ETCD_PEER[2]},e3=http://${ETCD_PEER[3]}" \
			--initial-cluster-state existing >>"$WORK/e$l.log" 2>&1 &
		ETCD_PID[$l]=$!
	fi
	PIDS+=($!)
	disown
	sleep 5 # the member rejoins and the cluster settles before the next trial
}
FS=(); FE=()
for t in 1 2 3; do
	failover sp
	FS+=("$FAIL_MS")
	failover etcd
	FE+=("$FAIL_MS")
	echo "  failover trial $t: shardplane ${FS[-1]} ms | etcd ${FE[-1]} ms"
done

{
	echo "### Control plane vs etcd ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))"
	echo
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo),"
	echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)."
	echo "3 members each on loopback, fsync on every commit for both, ${DURATION} s per point,"
	echo "closed loop with one request in flight per client, 64-byte values."
	echo "fdatasync p50 on this disk in the same run: $FSYNC_P50 us."
	echo "etcd $(etcd --version | head -1 | awk '{print $3}') through its v3 JSON gateway."
	echo "Command: \`bench/control/compare-etcd.sh $BUILD\`; binaries built $(date -u -r "$CP" +%Y-%m-%dT%H:%MZ)"
	echo "(the heading's commit is the checkout the script ran from, not necessarily theirs)."
	echo
	echo "| clients | shardplane writes/s | p50 ms | p99 ms | etcd writes/s | p50 ms | p99 ms | ratio |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for c in 1 2 4 8 16 32 64; do
		read -r st sp5 sp9 <<<"${R[sp,$c]}"
		read -r et ep5 ep9 <<<"${R[etcd,$c]}"
		echo "| $c | $st | $sp5 | $sp9 | $et | $ep5 | $ep9 | $(python3 -c "print('%.1fx' % ($st/max($et,1)))") |"
	done
	echo
	echo "Failover, kill -9 of the leader to the first write accepted (3 trials):"
	echo "shardplane ${FS[*]} ms; etcd ${FE[*]} ms."
} | tee "$OUT"
