#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Real client test: memcaslap over UDP with full get verification, against Shardplane's
# memcached protocol (mc_kernel_server: mcexec behind a kernel UDP socket on loopback) and,
# for comparison, against Debian's memcached on the same machine. Fails on any verification
# failure, UDP timeout, dropped or reordered packet reported against Shardplane.
#   memcaslap_test.sh SERVER_BINARY MEMCASLAP_BINARY
#   memcaslap_test.sh --target HOST:PORT MEMCASLAP_BINARY   (a running server, e.g. shardplane-dp)
# SP_MEMCASLAP_SECONDS (default 3) sets each run's length.
set -euo pipefail

server=$1
memcaslap=$2
target=
if [ "$1" = --target ]; then
	target=$2
	memcaslap=$3
fi
seconds=${SP_MEMCASLAP_SECONDS:-3}
run_timeout=$((seconds + 30))
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# Runs memcaslap against HOST:PORT $1 and writes its report to $2.
load() {
	timeout "$run_timeout" "$memcaslap" -s "$1" -U --verify=1.0 -t "${seconds}s" \
		-T 1 -c 16 -X 200 >"$2" 2>&1
}

field() { # report, name
	awk -v n="$2:" '$1 == n { print $2 }' "$1"
}

check() { # label, report, strict
	local r=$2 bad=0
	echo "--- $1: $(grep -E '^Run time' "$r")"
	for f in cmd_get cmd_set verify_failed verify_misses packet_drop packet_disorder udp_timeout; do
		printf '    %-16s %s\n' "$f" "$(field "$r" "$f")"
	done
	if [ "$3" = strict ]; then
		for f in verify_failed packet_drop packet_disorder udp_timeout; do
			if [ "$(field "$r" "$f")" != 0 ]; then
				echo "FAIL: $1 reports $f = $(field "$r" "$f")"
				bad=1
			fi
		done
		if [ -z "$(field "$r" cmd_get)" ] || [ "$(field "$r" cmd_get)" -lt 1000 ]; then
			echo "FAIL: $1 ran fewer than 1000 gets"
			bad=1
		fi
	fi
	return $bad
}

if [ -z "$target" ]; then
	"$server" --port 0 --max-seconds $((run_timeout + 30)) >"$tmp/server.out" \
		2>"$tmp/server.err" &
	pids+=($!)
	for _ in $(seq 50); do
		grep -q '^port ' "$tmp/server.out" && break
		sleep 0.1
	done
	sp_port=$(awk '/^port / { print $2 }' "$tmp/server.out")
	[ -n "$sp_port" ] || { echo "server did not start"; cat "$tmp/server.err"; exit 1; }
	target=127.0.0.1:$sp_port
fi
load "$target" "$tmp/sp.txt" || { echo "memcaslap failed against Shardplane"; cat "$tmp/sp.txt"; exit 1; }
status=0
check shardplane "$tmp/sp.txt" strict || status=1

if command -v memcached >/dev/null; then
	mc_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	memcached -U "$mc_port" -p 0 -l 127.0.0.1 -t 1 -u root >/dev/null 2>&1 &
	pids+=($!)
	sleep 0.5
	if load "127.0.0.1:$mc_port" "$tmp/mc.txt"; then
		check memcached "$tmp/mc.txt" report || true
	else
		echo "memcaslap against memcached failed (not counted)"
	fi
fi
if [ -f "$tmp/server.err" ]; then
	kill "${pids[0]}" && wait "${pids[0]}" 2>/dev/null || true
	pids=("${pids[@]:1}")
	cat "$tmp/server.err"
fi
exit $status
