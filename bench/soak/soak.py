#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Soak: the 3-node cluster and a memif node under mixed load and periodic faults.

Usage: bench/soak/soak.py BUILD_DIR [--minutes M] [--fault-every S] [--seed N]

Runs (all on this machine, in network namespaces the harness creates and on a memif
socket in a temporary directory):
  - a 3-node cluster (tests/integration/cluster/harness.py: shardplane-cp + shardplane-dp
    per node, dataplanes on af_packet over veth, joined by a bridge);
  - a checker: set/get/del of 200 keys through shardplane-client (partition-aware, seeds
    on every node), every answer checked against a model. A write whose outcome the client
    did not learn (timeout, not serving, unavailable) makes its key uncertain until the
    next acknowledged write; a read of a key whose partition may have moved since its last
    write (the cluster's epoch changed) may find it missing (moved partitions start
    empty). Any other answer is a violation: a stale or wrong value, a value never written;
  - background load: shardplane-client bench through the cluster, 20 s at a time;
  - a standalone shardplane-dp on a memif server port, and load-generator clients that
    connect, load and leave (every other one killed with SIGKILL mid-run).
Faults, one every --fault-every seconds (default 20), in turn: a link flap of one
dataplane's veth (down 1.5 s), kill -9 of one control plane and its restart with
--initial-cluster-state existing 3 s later, a memif peer disconnect. Every minute it prints
resident memory of every process, mbufs in use per dataplane, and the error counters.
Exit status 0 when there was no violation, no process died unexpectedly, every dataplane
stopped with no mbuf in use, and no process's resident memory grew by more than 64 MiB
between the second minute and the end. Default 30 minutes; every load loop is bounded.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "bench", "loadgen"))
import harness  # noqa: E402
import lg_integration as lgi  # noqa: E402
import memif_cycles as mcy  # noqa: E402

KEYS = 200
RSS_GROWTH_MAX_KB = 64 * 1024
BENCH_S = 20


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Checker(threading.Thread):
    def __init__(self, c, seed):
        super().__init__(daemon=True)
        self.c, self.rng = c, random.Random(seed)
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.model = {}        # key -> value or None (absent)
        self.uncertain = {}    # key -> set of values it may hold (None: absent)
        self.write_epoch = {}  # key -> cluster epoch at its last acknowledged write
        self.epoch = 0
        self.ops = self.ok = self.unavailable = self.lost = 0
        self.violations = []
        self.seeds = list(range(len(c.nodes)))

    def cli(self, *args):
        r = self.c.client(["--timeout-ms", "300", "--retries", "2"] + list(args),
                          seeds=self.seeds, timeout=30)
        return r.returncode, r.stdout.strip(), r.stderr.strip()

    def refresh_epoch(self):
        """The cluster's committed map epoch (shardctl, linearizable): a partition can
        only have moved between two reads of it that differ."""
        r = self.c.ctl(["-w", "json", "partitions", "show"], check=False)
        if r.returncode == 0:
            try:
                self.epoch = max(self.epoch, int(json.loads(r.stdout)["epoch"]))
            except (ValueError, KeyError, TypeError):
                pass

    def violation(self, msg):
        with self.lock:
            self.violations.append(msg)
        print("VIOLATION: " + msg, flush=True)

    def step(self):
        k = "soak:%d" % self.rng.randrange(KEYS)
        op = self.rng.random()
        self.ops += 1
        if op < 0.45 or op >= 0.9:
            self.refresh_epoch()  # before a write: the epoch noted is at most its real one
        if op < 0.45:
            v = "v%d.%d" % (self.ops, self.rng.getrandbits(24))
            rc, _, err = self.cli("set", k, v)
            if rc == 0:
                self.model[k], self.write_epoch[k] = v, self.epoch
                self.uncertain.pop(k, None)
                self.ok += 1
            else:
                self.unavailable += 1
                self.uncertain.setdefault(k, {self.model.get(k)}).add(v)
        elif op < 0.9:
            rc, out, err = self.cli("get", k)
            if rc == 0 or "not found" in err:
                got = out if rc == 0 else None
                self.ok += 1
                if k in self.uncertain:
                    if got not in self.uncertain[k] and got is not None:
                        self.violation("get %s = %r, never written (may be %r)" %
                                       (k, got, self.uncertain[k]))
                    self.model[k] = got
                    self.uncertain.pop(k, None)
                elif got != self.model.get(k):
                    if got is None:
                        self.refresh_epoch()  # a move since the last look?
                    moved = self.epoch > self.write_epoch.get(k, self.epoch)
                    if got is None and moved:
                        self.lost += 1  # its partition moved: moved keys start empty
                        self.model[k] = None
                    else:
                        self.violation("get %s = %r, model %r (written at epoch %s, now %s)"
                                       % (k, got, self.model.get(k),
                                          self.write_epoch.get(k), self.epoch))
            else:
                self.unavailable += 1
        else:
            rc, _, err = self.cli("del", k)
            if rc == 0 or "not found" in err:
                self.model[k], self.write_epoch[k] = None, self.epoch
                self.uncertain.pop(k, None)
                self.ok += 1
            else:
                self.unavailable += 1
                self.uncertain.setdefault(k, {self.model.get(k)}).add(None)

    def run(self):
        while not self.stop_ev.is_set():
            self.step()


class Load(threading.Thread):
    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop_ev = threading.Event()
        self.runs = self.replies = self.errors = 0

    def run(self):
        while not self.stop_ev.is_set():
            r = self.c.client(["--timeout-ms", "200", "bench", "--duration-s", str(BENCH_S),
                               "--requests", "100000000", "--keys", "5000", "--batch", "16"],
                              seeds=[0, 1, 2], timeout=BENCH_S + 60)
            self.runs += 1
            for line in r.stdout.splitlines():
                if " replies=" in line and "errors=" in line:
                    for tok in line.split():
                        if tok.startswith("replies="):
                            self.replies += int(tok.split("=")[1])
                        if tok.startswith("errors="):
                            self.errors += int(tok.split("=")[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--fault-every", type=float, default=20)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if not 0.5 <= args.minutes <= 24 * 60 or not 5 <= args.fault_every <= 3600:
        ap.error("--minutes 0.5..1440, --fault-every 5..3600")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    b = os.path.abspath(args.build)
    bins = harness.Binaries.from_build(b)
    dp_bin = os.path.join(b, "dataplane/runtime/shardplane-dp")
    lg_bin = os.path.join(b, "bench/loadgen/shardplane-loadgen")
    print("soak: seed %d, %.0f minutes, a fault every %.0f s; machine: %d CPUs, %s" %
          (seed, args.minutes, args.fault_every, os.cpu_count() or 0,
           open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" \t:")),
          flush=True)
    tmp = tempfile.mkdtemp(prefix="sp-soak-")
    sock = os.path.join(tmp, "memif.sock")
    memif = None
    faults = {"link flap": 0, "cp kill -9": 0, "memif peer": 0}
    memif_fail = []
    died = []
    rss_base, rss_last = {}, {}
    ok = False
    t0 = time.monotonic()
    with harness.Cluster(bins, nodes=3, partitions=64, workers=1) as c:
        c.start()
        memif = lgi.start_dp(dp_bin, sock, "soak%d" % os.getpid(),
                             os.path.join(tmp, "memif-dp.err"), os.path.join(tmp, "memif-dp.out"))
        mcy.run(lg_bin, sock, "soakp", ["--preload", "--duration-s", "0", "--count", "200",
                                        "--rpd", "1"], os.path.join(tmp, "lg.json"))
        chk, load = Checker(c, seed), Load(c)
        chk.start()
        load.start()

        def procs():
            out = {"memif-dp": memif.pid}
            for i, n in enumerate(c.nodes):
                if n.dp is not None:
                    out["dp%d" % (i + 1)] = n.dp.pid
                if n.cp is not None:
                    out["cp%d" % (i + 1)] = n.cp.pid
            return out

        end = t0 + args.minutes * 60
        next_fault, next_report, kinds, k = t0 + args.fault_every, t0 + 60, list(faults), 0
        minute = 0
        while time.monotonic() < end:
            time.sleep(0.5)
            for i, n in enumerate(c.nodes):
                if n.dp is not None and n.dp.poll() is not None:
                    died.append("dp%d (status %s)" % (i + 1, n.dp.returncode))
                    n.dp = None
            if memif.poll() is not None:
                died.append("memif-dp (status %s)" % memif.returncode)
                break
            now = time.monotonic()
            if now >= next_fault:
                kind = kinds[k % len(kinds)]
                k += 1
                i = rng.randrange(len(c.nodes))
                if kind == "link flap":
                    n = c.node(i)
                    c.hub(["ip", "netns", "exec", n.ns, "ip", "link", "set", n.dp_if, "down"])
                    time.sleep(1.5)
                    c.hub(["ip", "netns", "exec", n.ns, "ip", "link", "set", n.dp_if, "up"])
                elif kind == "cp kill -9":
                    c.kill_cp(i)
                    time.sleep(3)
                    c.start_cp(i, state="existing")
                else:
                    try:
                        mcy.run(lg_bin, sock, "soak%d" % k, ["--duration-s", "5", "--rpd", "1",
                                                             "--window", "32"],
                                os.path.join(tmp, "lg.json"),
                                kill_after=mcy.KILL_AFTER_S if k % 2 else None)
                    except SystemExit:
                        memif_fail.append(k)
                faults[kind] += 1
                next_fault = now + args.fault_every
            if now >= next_report:
                minute += 1
                rss = {name: rss_kb(pid) for name, pid in procs().items()}
                mb = []
                for i in range(len(c.nodes)):
                    try:
                        st = c.dp_telemetry(i, "/shardplane/stats")
                        mb.append("dp%d %d/%d" % (i + 1, st["mbufs_in_use"], st["mbufs_total"]))
                    except (AssertionError, OSError, KeyError, ValueError):
                        mb.append("dp%d ?" % (i + 1))
                if minute == 2:
                    rss_base = dict(rss)
                rss_last = rss
                print("minute %d: rss KiB %s | mbufs in use %s | checker %d ops (%d ok, %d "
                      "unavailable, %d lost to moves, %d violations) | bench %d replies %d "
                      "errors | faults %s | died %s" %
                      (minute, " ".join("%s=%d" % kv for kv in sorted(rss.items())),
                       ", ".join(mb), chk.ops, chk.ok, chk.unavailable, chk.lost,
                       len(chk.violations), load.replies, load.errors, faults, died or "none"),
                      flush=True)
                next_report += 60
        chk.stop_ev.set()
        load.stop_ev.set()
        chk.join(60)
        load.join(BENCH_S + 90)
        for i, n in enumerate(c.nodes):
            if n.cp is None:
                c.start_cp(i, state="existing")
        outs = []
        for i, n in enumerate(c.nodes):
            if n.dp is not None:
                outs.append(c.stop_dp(i))
        lgi.stop(memif)
        lgi.remove_runtime_dirs()
        mout = open(os.path.join(tmp, "memif-dp.out")).read()
        grew = {p: rss_last.get(p, 0) - rss_base.get(p, 0) for p in rss_base}
        problems = list(chk.violations) + ["died: " + d for d in died]
        if memif.returncode != 0 or "mbufs: 0 in use" not in mout:
            problems.append("memif dp: exit %s, %s" % (memif.returncode, mout[-300:]))
        if memif_fail:
            problems.append("memif clients failed at faults %s" % memif_fail)
        problems += ["%s grew by %d KiB" % (p, g) for p, g in grew.items()
                     if g > RSS_GROWTH_MAX_KB]
        print("soak: %.1f minutes; checker %d ops (%d ok, %d unavailable during faults, %d "
              "keys lost to partition moves), %d violations; bench %d replies, %d errors; "
              "faults %s; resident memory growth from minute 2 to the end (KiB): %s; every "
              "dataplane stopped with no mbuf in use" %
              ((time.monotonic() - t0) / 60, chk.ops, chk.ok, chk.unavailable, chk.lost,
               len(chk.violations), load.replies, load.errors, faults,
               " ".join("%s=%+d" % kv for kv in sorted(grew.items())) or "-"), flush=True)
        for p in problems:
            print("PROBLEM: " + p, flush=True)
        ok = not problems
    print("soak: %d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
