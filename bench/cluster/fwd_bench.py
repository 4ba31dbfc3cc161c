#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Forwarding cost, measured on a real 3-node cluster (tests/integration/cluster/harness.py):

  1. memcached GETs sent to the key's owner (local) against the same GETs sent to another
     node, which forwards them and relays the reply (forwarded): the entry node's busy TSC
     cycles per request (telemetry busy_cycles: cycles of loop iterations that found work,
     so idle back-off is not counted), and the client-side latency p50/p99 with WINDOW
     requests in flight;
  2. shardplane-client bench (partition-aware, batched) through a 3-node cluster against a
     1-node cluster.

    bench/cluster/fwd_bench.py BUILD_DIR [REQUESTS] [--window N] [--rounds R] [--no-client-bench]

Prints one line per figure. The client is Python (one core), so its throughput figures
are the client's, not the nodes'; the cycles per request are the nodes' own. With
--rounds R the local and forwarded runs alternate R times on the same cluster and the
medians are printed with their ratio (the VM's speed drifts; alternating and taking
medians keeps the ratio honest). --window sets the GETs in flight (default 16): more in
flight means more requests per poll burst, which is where batching pays.
"""
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "cluster"))
import harness  # noqa: E402

WINDOW = 16
KEYS = 64


def run_gets(c, sock, via, keys, n, window=WINDOW):
    """n GETs of keys (round robin) to node via, WINDOW in flight. Returns the sorted
    latencies (s) and the elapsed time."""
    addr = (c.node(via).ip, c.node(via).mc_port)
    sent, done = {}, []
    next_id, i = 1, 0
    sock.setblocking(False)
    t0 = time.monotonic()
    deadline = t0 + 120
    while len(done) < n and time.monotonic() < deadline:
        while len(sent) < window and i < n:
            rid = next_id
            next_id = next_id % 65000 + 1
            sock.sendto(rid.to_bytes(2, "big") + b"\0\0\0\1\0\0" +
                        b"get " + keys[i % len(keys)] + b"\r\n", addr)
            sent[rid] = time.monotonic()
            i += 1
        try:
            data, _ = sock.recvfrom(2048)
        except BlockingIOError:
            time.sleep(0)
            # A lost datagram would stall the window: resend nothing, count it lost.
            now = time.monotonic()
            for rid, t in list(sent.items()):
                if now - t > 1.0:
                    del sent[rid]
                    done.append(None)
            continue
        rid = int.from_bytes(data[0:2], "big")
        t = sent.pop(rid, None)
        if t is not None:
            done.append(time.monotonic() - t)
    elapsed = time.monotonic() - t0
    lost = sum(1 for d in done if d is None)
    lat = sorted(d for d in done if d is not None)
    return lat, elapsed, lost


def pct(lat, p):
    return lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else float("nan")


def busy(c, i):
    st = c.dp_telemetry(i, "/shardplane/stats")
    return st["busy_cycles"], st["rx_pkts"], st.get("fwd_frames_out", 0), \
        st.get("fwd_msgs_out", 0)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    args = sys.argv[1:]
    window, rounds, client_bench = WINDOW, 1, True
    if "--window" in args:
        k = args.index("--window")
        window = int(args[k + 1])
        del args[k:k + 2]
    if "--rounds" in args:
        k = args.index("--rounds")
        rounds = int(args[k + 1])
        del args[k:k + 2]
    if "--no-client-bench" in args:
        args.remove("--no-client-bench")
        client_bench = False
    build = args[0]
    n = int(args[1]) if len(args) > 1 else 20000
    bins = harness.Binaries.from_build(build)
    with harness.Cluster(bins, nodes=3) as c:
        c.start()
        r = c.client(["where"] + ["b%d" % k for k in range(400)], check=True)
        own = {i: [] for i in range(3)}
        for line in r.stdout.splitlines():
            key, _p, _n, addr = line.split()
            idx = next(x.index for x in c.nodes if x.ip == addr.split(":")[0])
            if len(own[idx]) < KEYS:
                own[idx].append(key.encode())
        sock = c.hub_socket()
        for i in range(3):
            for k in own[i]:
                assert c.mc(i, b"set %s 0 0 8\r\nabcdefgh\r\n" % k, sock=sock) == b"STORED\r\n"
        sock.close()
        per = {"local": [], "forwarded": []}
        for rnd in range(rounds):
            for label, keys in (("local", own[0]), ("forwarded", own[1])):
                sock = c.hub_socket()
                run_gets(c, sock, 0, keys, 2000, window)  # warm up
                b0 = [busy(c, i) for i in range(3)]
                lat, elapsed, lost = run_gets(c, sock, 0, keys, n, window)
                b1 = [busy(c, i) for i in range(3)]
                sock.close()
                served = len(lat)
                entry = (b1[0][0] - b0[0][0]) / max(served, 1)
                owner = (b1[1][0] - b0[1][0]) / max(served, 1)
                frames = b1[0][2] - b0[0][2]
                msgs = b1[0][3] - b0[0][3]
                per[label].append(entry)
                print("memcached GET %-9s via node 0 (window %d, round %d): %d requests, %d "
                      "lost, client %.0f req/s, latency p50 %.0f us p99 %.0f us; entry node "
                      "busy cycles/request %.0f, owner node (node 1) %.0f; entry forward "
                      "messages/datagram %s" %
                      (label, window, rnd + 1, served, lost, served / elapsed,
                       pct(lat, 50) * 1e6, pct(lat, 99) * 1e6, entry, owner,
                       "%.2f" % (msgs / frames) if frames else "-"), flush=True)
        ml, mf = median(per["local"]), median(per["forwarded"])
        print("median entry busy cycles/request over %d rounds: local %.0f, forwarded %.0f, "
              "ratio %.2f" % (rounds, ml, mf, mf / ml), flush=True)
        if not client_bench:
            return
        r = c.client(["bench", "--duration-s", "5", "--requests", "2000000", "--keys",
                      "1000", "--batch", "32"], seeds=[0], timeout=120)
        line = next((l for l in r.stdout.splitlines() if "throughput_ops" in l), r.stdout)
        print("shardplane-client bench, 3 nodes: " + line, flush=True)
    with harness.Cluster(bins, nodes=1) as c:
        c.start()
        r = c.client(["bench", "--duration-s", "5", "--requests", "2000000", "--keys",
                      "1000", "--batch", "32"], seeds=[0], timeout=120)
        line = next((l for l in r.stdout.splitlines() if "throughput_ops" in l), r.stdout)
        print("shardplane-client bench, 1 node:  " + line, flush=True)


if __name__ == "__main__":
    main()
