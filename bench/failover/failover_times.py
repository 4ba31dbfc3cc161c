#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Failover time of the data path: from the failure of one node's dataplane to the first
write of one of its keys acknowledged by a survivor.

Usage (as root, from the repository root, after a build):
  /usr/bin/python3 bench/failover/failover_times.py BUILD_DIR [--trials N]
      [--failure-timeout-ms MS] [--lease-ms MS] [--hold-down-ms MS] [--mode kill|stop]

Three nodes (shardplane-cp + shardplane-dp each), built by the cluster_failover test's
harness (network namespaces, af_packet over veth). Each trial picks a node that is not the
leader and a key it owns, then kills its dataplane (--mode kill: kill -9; --mode stop:
SIGSTOP, a stuck process, found by its heartbeat's age) and sends that key's SET to every
survivor in turn, every 5 ms, until one answers STORED. Prints each trial and
min/median/max. The node is then restarted (or continued) and the cluster settles before
the next trial. Every wait is bounded; everything created is removed.
"""
import argparse
import os
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "..", "tests", "integration", "failover")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--failure-timeout-ms", type=int, default=1000)
    ap.add_argument("--lease-ms", type=int, default=500)
    ap.add_argument("--hold-down-ms", type=int, default=2000)
    ap.add_argument("--mode", choices=["kill", "stop"], default="kill")
    a = ap.parse_args()
    if not 1 <= a.trials <= 100:
        ap.error("--trials: 1..100")
    b = os.path.abspath(a.build)
    sys.argv = [sys.argv[0], f"{b}/control/cp/shardplane-cp",
                f"{b}/dataplane/runtime/shardplane-dp", f"{b}/control/shardctl/shardctl",
                f"{b}/lib/cluster/shardplane-region"]
    sys.path.insert(0, TESTS)
    sys.dont_write_bytecode = True
    import test_failover as fo
    fo.FAIL_MS, fo.LEASE_MS, fo.HOLD_MS = a.failure_timeout_ms, a.lease_ms, a.hold_down_ms
    c = fo.Cluster()
    times = []
    try:
        c.net_up()
        for n in c.names:
            c.start_cp(n)
        for n in c.names:
            c.start_dp(n)
        ids = fo.wait("members", lambda: (lambda d: d if len(d) == 3 else None)(c.ids()))
        names = {v: k for k, v in ids.items()}
        for trial in range(a.trials):
            epoch, own = fo.settled_map(c, ids, c.names)
            st = c.ctl_json("endpoint", "status", "--cluster")
            leader = names.get(st[0]["leader"])
            victim = [n for n in c.names if n != leader][trial % 2]
            key = next(k for k in (f"f{trial}-{i}" for i in range(10000))
                       if own[fo.partition_of(k)] == victim)
            survivors = [n for n in c.names if n != victim]
            t0 = time.monotonic()
            if a.mode == "kill":
                c.kill_dp(victim)
            else:
                c.dps[victim][1].send_signal(signal.SIGSTOP)
            took = None
            deadline = t0 + 30
            while time.monotonic() < deadline and took is None:
                for s in survivors:
                    r = c.mc.set(c.ip(s), key, "x")
                    if r is not None and r.startswith("STORED"):
                        took = time.monotonic() - t0
                        break
                time.sleep(0.005)
            if took is None:
                raise AssertionError(f"trial {trial}: no survivor stored {key} in 30 s")
            times.append(took)
            print(f"trial {trial + 1}: {a.mode} dp {victim} (epoch {epoch}): first write "
                  f"of its key {key} through a survivor after {took * 1000:.0f} ms",
                  flush=True)
            if a.mode == "kill":
                c.start_dp(victim)
            else:
                c.dps[victim][1].send_signal(signal.SIGCONT)
        print(f"{a.mode}, --failure-timeout-ms {a.failure_timeout_ms} --lease-ms "
              f"{a.lease_ms}: {len(times)} trials, min {min(times) * 1000:.0f} ms, median "
              f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    finally:
        c.stop()


if __name__ == "__main__":
    main()
