#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Hostile connections against a 3-member control plane that commits writes.

Usage: hostile.py CP SHARDCTL REGION_TOOL CP_LOAD [--seconds S] [--conns N]

A quiet run of cp-load (4 clients, S seconds) measures commit latency. Then, while an
attacker holds N idle or garbage-sending connections open against every member's client
and peer ports (reopening each one the members close) and a second thread streams junk
frames over fresh connections, the same cp-load run and shardctl writes over new
connections must have every write acknowledged, commit p99 within 5x of the quiet run's,
every member alive and stopping cleanly, resident memory bounded, the hostile connections
closed by the members (authentication deadline, room for newer ones) and the log lines
they cause rate-limited. Every loop is bounded in time; only loopback is used.
"""
import argparse
import json
import os
import random
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("cp")
ap.add_argument("ctl")
ap.add_argument("region")
ap.add_argument("cp_load")
ap.add_argument("--seconds", type=float, default=4.0)
ap.add_argument("--conns", type=int, default=1000)
ARGS = ap.parse_args()
sys.path.insert(0, HERE)
import test_cluster as tc  # noqa: E402  (the Cluster of real members)

tc.use_binaries(ARGS.cp, ARGS.ctl, ARGS.region)

P99_FACTOR = 5
P99_FLOOR_US = 2000  # a quiet p99 below this counts as this (timer and scheduler noise)
RSS_GROWTH_MAX_KB = 64 * 1024
LOG_LINES_PER_S_MAX = 6  # per member: 2 limited lines a second, and a little slack


class Attacker:
    """Holds `n` hostile connections spread over `ports`, reopening those the server
    closes; a second thread opens fresh connections and sends junk frames. Both stop at
    stop() or after `limit_s`."""

    def __init__(self, ports, n, limit_s):
        self.ports, self.n, self.limit = ports, n, time.time() + limit_s
        self.stop_ev = threading.Event()
        self.opened = self.closed_by_server = self.junk_sent = 0
        self.rng = random.Random(os.getpid())
        self.threads = [threading.Thread(target=self.hold, daemon=True),
                        threading.Thread(target=self.junk, daemon=True)]

    def running(self):
        return not self.stop_ev.is_set() and time.time() < self.limit

    def connect(self, port):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return None
        self.opened += 1
        return s

    def garbage(self):
        kind = self.rng.randrange(4)
        if kind == 0:  # a length far over the pre-authentication limit
            return (0x7fffffff).to_bytes(4, "little") + b"\x02"
        if kind == 1:  # a well-framed frame of a type not allowed before AUTH
            body = bytes([self.rng.randrange(256)]) + os.urandom(self.rng.randrange(0, 100))
            return len(body).to_bytes(4, "little") + body
        if kind == 2:  # a truncated AUTH frame, then nothing
            return (90).to_bytes(4, "little") + b"\x02" + os.urandom(20)
        return os.urandom(self.rng.randrange(1, 200))

    def hold(self):
        sel = selectors.DefaultSelector()
        for i in range(self.n):
            s = self.connect(self.ports[i % len(self.ports)])
            if s:
                sel.register(s, selectors.EVENT_READ, self.ports[i % len(self.ports)])
        while self.running():
            for key, _ in sel.select(timeout=0.05):
                s, port = key.fileobj, key.data
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data and self.rng.random() < 0.3:
                    try:
                        s.send(self.garbage())  # answer the challenge with garbage
                    except OSError:
                        pass
                    continue
                if data:
                    continue  # the challenge: stay idle
                sel.unregister(s)
                s.close()
                self.closed_by_server += 1
                t = self.connect(port)
                if t:
                    sel.register(t, selectors.EVENT_READ, port)
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def junk(self):
        while self.running():
            s = self.connect(self.rng.choice(self.ports))
            if s is None:
                continue
            s.setblocking(True)
            s.settimeout(0.5)
            try:
                for _ in range(self.rng.randrange(1, 4)):
                    s.sendall(self.garbage())
                    self.junk_sent += 1
            except OSError:
                pass
            s.close()
            time.sleep(0.002)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def load(c, label):
    lead = c.members[c.leader()]["client"]  # cp-load writes to the leader
    r = subprocess.run([ARGS.cp_load, "--target", "shardplane", "--endpoint", lead,
                        "--secret-file", c.secret, "--clients", "4", "--duration",
                        str(ARGS.seconds), "--json", "--label", label],
                       capture_output=True, text=True, timeout=ARGS.seconds + 60)
    assert r.returncode == 0, f"cp-load ({label}) failed: {r.stdout} {r.stderr}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["failed"] == 0 and res["requests"] > 0, res
    return res


def check_auth_deadline(c, n=10):
    """n idle connections (fewer than one address may hold) are closed by the member at
    its authentication deadline (1 s, checked every 25 ms tick): returns (first, last)."""
    host, port = c.members["n1"]["client"].split(":")
    socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]
    t0 = time.time()
    took = []
    try:
        for s in socks:
            s.settimeout(5)
            got = s.recv(64)  # the challenge
            assert got, "closed before the challenge"
            while got:
                got = s.recv(64)
            took.append(time.time() - t0)
    finally:
        for s in socks:
            s.close()
    assert 0.9 <= min(took) and max(took) <= 2.5, f"closed after {took} s, not ~1 s"
    return min(took), max(took)


def log_lines(c, name):
    with open(c.log_path(name), errors="replace") as f:
        return sum(1 for line in f if "closed" in line or "refus" in line)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, ARGS.conns + 512))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    conns = min(ARGS.conns, want - 256)
    c = tc.Cluster(3)
    mports = {n: tc.free_port() for n in c.members}
    ok = False
    att = None
    try:
        for n in c.members:
            c.start(n, extra=["--metrics", f"127.0.0.1:{mports[n]}"])
        c.leader()
        deadline_s = check_auth_deadline(c)
        quiet = load(c, "quiet")
        rss0 = {n: rss_kb(p.pid) for n, p in c.procs.items()}
        lines0 = {n: log_lines(c, n) for n in c.members}
        ports = []
        for m in c.members.values():
            ports += [int(m["client"].split(":")[1]), int(m["peer"].split(":")[1])]
        att = Attacker(ports, conns, limit_s=ARGS.seconds + 60)
        t0 = time.time()
        att.start()
        time.sleep(1.5)  # every hostile connection open, the first ones already expired
        busy = load(c, "under attack")
        for i in range(10):  # new legitimate connections, through the handshake
            c.ctl("--command-timeout", "3000", "config", "set", f"h{i}", str(i))
        att.stop()
        attack_s = time.time() - t0
        alive = [n for n, p in c.procs.items() if p.poll() is None]
        assert len(alive) == 3, f"members died under attack: {set(c.members) - set(alive)}"
        limit = max(quiet["p99_us"], P99_FLOOR_US) * P99_FACTOR
        assert busy["p99_us"] <= limit, \
            f"p99 {busy['p99_us']} us under attack, quiet {quiet['p99_us']} us (limit {limit})"
        timeouts = sum(metric(mports[n], "sp_cp_auth_timeouts_total") for n in c.members)
        evicted = sum(metric(mports[n], "sp_cp_connections_evicted_total") for n in c.members)
        refused = sum(metric(mports[n], "sp_cp_connections_refused_total") for n in c.members)
        assert timeouts + evicted > 0, "no hostile connection was closed"
        for n in c.members:
            grew = rss_kb(c.procs[n].pid) - rss0[n]
            assert grew < RSS_GROWTH_MAX_KB, f"{n}: resident memory grew by {grew} KiB"
            lines = log_lines(c, n) - lines0[n]
            assert lines <= LOG_LINES_PER_S_MAX * (attack_s + 2), \
                f"{n}: {lines} connection log lines in {attack_s:.0f} s: not rate-limited"
        for i in range(10):
            assert c.local_get("n1", f"h{i}") == str(i) or c.wait(
                f"h{i} on n1", lambda i=i: c.local_get("n1", f"h{i}") == str(i))
        print(f"hostile: {att.opened} hostile connections opened ({conns} held at once over "
              f"{len(ports)} ports, {att.closed_by_server} closed by the members), "
              f"{att.junk_sent} junk frames; members closed {timeouts:.0f} at the auth "
              f"deadline, {evicted:.0f} for room, refused {refused:.0f}; idle connections "
              f"closed after {deadline_s[0]:.2f}-{deadline_s[1]:.2f} s (deadline 1 s)")
        print(f"hostile: commit p50/p99 quiet {quiet['p50_us']}/{quiet['p99_us']} us "
              f"({quiet['throughput']:.0f}/s), under attack {busy['p50_us']}/{busy['p99_us']}"
              f" us ({busy['throughput']:.0f}/s); every write acknowledged; resident memory "
              f"growth {max(rss_kb(c.procs[n].pid) - rss0[n] for n in c.members)} KiB at most")
        ok = True
    finally:
        if att:
            att.stop()
        try:
            c.stop()
        except AssertionError as e:
            print(f"hostile: a member did not stop cleanly: {e}")
            ok = False
    print(f"hostile: {1 if ok else 0} passed, {0 if ok else 1} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
