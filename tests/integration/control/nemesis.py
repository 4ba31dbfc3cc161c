#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A nemesis against three real shardplane-cp members under a writer.

Usage: nemesis.py CP SHARDCTL REGION_TOOL [--events N] [--seconds S] [--seed N]
                  [--snapshot-entries N]

A writer thread sets unique keys through shardctl (every endpoint listed) one after
another and records what was acknowledged. The nemesis, from a seeded random sequence,
kill -9s a member and restarts it with --initial-cluster-state existing after a pause, or
freezes one with SIGSTOP and thaws it (SIGCONT), one fault at a time. The members run
with a small snapshot threshold, so snapshots are taken (and interrupted) throughout and
restarts come from a snapshot plus a log tail. At the end every member runs, a leader must
accept a write, and on every member (read locally) every acknowledged write holds the value
written, every write whose outcome was unknown holds its value or is absent, and no other
key exists.

--events N (default 30) ends after N faults; --seconds S (default: none) ends after S
seconds instead, for long runs (hours), printing the checks every 100 events. The seed is
printed; --seed replays the sequence of faults (the timing of a real cluster still
varies). Exit status 0 when every check passed.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("cp")
ap.add_argument("ctl")
ap.add_argument("region")
ap.add_argument("--events", type=int, default=30)
ap.add_argument("--seconds", type=float, default=0)
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--snapshot-entries", type=int, default=40)
ARGS = ap.parse_args()
if ARGS.events < 1 or ARGS.seconds < 0 or ARGS.snapshot_entries < 1:
    ap.error("--events and --snapshot-entries must be >= 1, --seconds >= 0")
sys.path.insert(0, HERE)
import test_cluster as tc  # noqa: E402  (the Cluster of real members)

tc.use_binaries(ARGS.cp, ARGS.ctl, ARGS.region)

WRITE_TIMEOUT_MS = 2000
SETTLE_S = 60  # at the end: for the restarted members to catch up


class Writer(threading.Thread):
    """Sets k<seq> = <seq>.<random> one at a time; acked / unknown outcomes recorded."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.acked = {}
        self.unknown = {}
        self.failed = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seq = 0

    def run(self):
        eps = ",".join(m["client"] for m in self.c.members.values())
        while not self.stop.is_set():
            key, val = f"w{self.seq}", f"{self.seq}.{random.getrandbits(32):08x}"
            self.seq += 1
            try:
                r = self.c.ctl("--command-timeout", str(WRITE_TIMEOUT_MS), "config", "set",
                               key, val, endpoints=eps, check=False, timeout=15)
                ok = r.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            with self.lock:
                if ok:
                    self.acked[key] = val
                else:
                    self.unknown[key] = val  # may or may not have been committed
                    self.failed += 1
            if not ok:
                time.sleep(0.05)


def member_items(c, name):
    r = c.ctl("--consistency", "s", "-w", "json", "config", "list",
              endpoints=c.members[name]["client"], check=False)
    if r.returncode != 0:
        return None
    return {i["key"]: i["value"] for i in json.loads(r.stdout)["items"]}


def check(c, w, label):
    """Every member holds every acknowledged write, nothing unwritten, and an unknown
    write only with its own value. Returns the number of keys checked."""
    with w.lock:
        acked, unknown = dict(w.acked), dict(w.unknown)
    # The writer records its writes in order, so w0 .. w<recorded - 1> have an outcome;
    # later keys were written while this check runs (a long run's checks do not stop
    # the writer) and are checked the next time.
    recorded = len(acked) + len(unknown)
    last = max(acked, key=lambda k: int(k[1:]), default=None)
    for name in c.members:
        if last:
            c.wait(f"{name} has {last}", lambda name=name: (member_items(c, name) or {})
                   .get(last) == acked[last])
        items = member_items(c, name)
        assert items is not None, f"{name} does not answer"
        for k, v in acked.items():
            assert items.get(k) == v, f"{label}: {name} lost acknowledged {k}={v} " \
                                      f"(has {items.get(k)!r})"
        for k, v in items.items():
            if k.startswith("w") and k[1:].isdigit() and int(k[1:]) >= recorded:
                continue
            assert acked.get(k) == v or unknown.get(k) == v, \
                f"{label}: {name} holds {k}={v}, never written so"
    return len(acked)


def main():
    seed = ARGS.seed if ARGS.seed is not None else random.randrange(1 << 32)
    print(f"nemesis: seed {seed} (replay: --seed {seed}), events {ARGS.events}, seconds "
          f"{ARGS.seconds or '-'}, snapshot every {ARGS.snapshot_entries} entries", flush=True)
    rng = random.Random(seed)
    c = tc.Cluster(3)
    extra = ["--snapshot-entries", str(ARGS.snapshot_entries)]
    w = Writer(c)
    kills = stops = 0
    t0 = time.time()
    ok = False
    try:
        for n in c.members:
            c.start(n, extra=extra)
        c.leader()
        w.start()
        events = 0
        while True:
            if ARGS.seconds:
                if time.time() - t0 >= ARGS.seconds:
                    break
            elif events >= ARGS.events:
                break
            time.sleep(rng.uniform(0.2, 1.0))
            victim = rng.choice(sorted(c.members))
            pause = rng.uniform(0.1, 1.5)
            if rng.random() < 0.6:
                c.kill(victim, signal.SIGKILL)
                time.sleep(pause)
                c.start(victim, state="existing", extra=extra)
                kills += 1
            else:
                p = c.procs[victim]
                p.send_signal(signal.SIGSTOP)
                time.sleep(pause)
                p.send_signal(signal.SIGCONT)
                stops += 1
            events += 1
            if ARGS.seconds and events % 100 == 0:
                n = check(c, w, f"after {events} events")
                print(f"  {events} events ({kills} kill -9, {stops} SIGSTOP), {n} acked "
                      f"writes on every member, {time.time() - t0:.0f} s", flush=True)
        w.stop.set()
        w.join(timeout=20)
        c.wait("a leader accepting a write after the faults",
               lambda: c.ctl("--command-timeout", "1000", "config", "set", f"w{w.seq}", "final",
                             check=False).returncode == 0)
        with w.lock:
            w.acked[f"w{w.seq}"] = "final"
        n = check(c, w, "at the end")
        snaps = sum(len(tc.snapshots_in(c, m)) for m in c.members)
        assert snaps > 0, "no member took a snapshot: the run did not exercise them"
        print(f"nemesis: {events} events ({kills} kill -9 + restart with existing, {stops} "
              f"SIGSTOP), {n} acknowledged writes on all 3 members, {len(w.unknown)} "
              f"unknown outcomes, {snaps} snapshots kept, {time.time() - t0:.0f} s", flush=True)
        ok = True
    finally:
        w.stop.set()
        for p in c.procs.values():
            try:
                p.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
        try:
            c.stop()
        except AssertionError as e:
            print(f"nemesis: a member did not stop cleanly: {e}", flush=True)
            ok = False
    print(f"nemesis: {1 if ok else 0} passed, {0 if ok else 1} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
