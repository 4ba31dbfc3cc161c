#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of shardplane-cp and shardctl with real processes on loopback.

Usage: test_cluster.py CP_BINARY SHARDCTL_BINARY REGION_TOOL
SP_CP_SCENARIO=TEXT runs only the scenarios whose name contains TEXT.
Each scenario starts its own members on free ports in a fresh temporary directory and
kills exactly the processes it started. A member stopped with SIGTERM (every one still
running when a scenario ends) must exit 0 with no sanitizer report in its log, so a
sanitizer build checks the members' leaks and undefined behaviour at exit too.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree from the import below
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
import dp_integration as dpi  # noqa: E402  (check_sanitizer: what a sanitizer report looks like)

CP = CTL = REGION = None  # the binaries; main() or use_binaries() sets them


def use_binaries(cp, ctl, region):
    """For scripts that import this module (nemesis.py, hostile.py): the programs the
    Cluster runs."""
    global CP, CTL, REGION
    CP, CTL, REGION = cp, ctl, region
DEADLINE_S = 30  # any single wait
STOP_WAIT_S = 10  # for a member to exit after SIGTERM


def ephemeral_low():
    """The lowest port the kernel hands out as a connection's local port."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


PORTS_GIVEN = set()
PORT_TRIES_MAX = 1000


def free_port():
    """A free port below the ephemeral range. A port the kernel picked (bind to 0) can be
    taken by any outgoing connection's local end while its member is down, and the member
    then cannot listen on it again when it restarts."""
    low = max(ephemeral_low(), 12000)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(PORT_TRIES_MAX):
        port = rng.randrange(10000, low)
        if port in PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class Cluster:
    def __init__(self, n, partitions=64):
        self.dir = tempfile.mkdtemp(prefix="sp-cp-it-")
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(self.secret, 0o600)
        self.partitions = partitions
        self.members = {}
        for i in range(1, n + 1):
            self.define(f"n{i}")
        self.procs = {}

    def define(self, name):
        self.members[name] = {"peer": f"127.0.0.1:{free_port()}",
                              "client": f"127.0.0.1:{free_port()}"}

    def initial(self, names):
        return ",".join(f"{n}={self.members[n]['peer']}" for n in names)

    def start(self, name, state="new", names=None, extra=()):
        m = self.members[name]
        names = names or [n for n in self.members]
        log = open(self.log_path(name), "a")
        args = [CP, "--name", name, "--data-dir", os.path.join(self.dir, name),
                "--listen-peer", m["peer"], "--listen-client", m["client"],
                "--initial-cluster", self.initial(names), "--initial-cluster-state", state,
                "--secret-file", self.secret, "--partitions", str(self.partitions),
                "--dp-ip", f"10.1.0.{len(self.procs) + 1}", "--dp-workers", "2"] + list(extra)
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self):
        for n in self.members:
            self.start(n)

    def log_path(self, name):
        return os.path.join(self.dir, f"{name}.log")

    def kill(self, name, sig=signal.SIGKILL):
        """Ends a member. After SIGTERM it must exit 0 and its log hold no sanitizer
        report; raises AssertionError (with the log's tail) when not."""
        p = self.procs.pop(name)
        p.send_signal(sig)
        try:
            p.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{name} did not exit within {STOP_WAIT_S} s of {sig.name}")
        if sig != signal.SIGTERM:
            return
        with open(self.log_path(name), errors="replace") as f:
            log = f.read()
        dpi.check_sanitizer(f"{name} after SIGTERM", log)
        if p.returncode != 0:
            raise AssertionError(f"{name} after SIGTERM: exit status {p.returncode}; "
                                 f"log ends:\n{log[-3000:]}")

    def ctl(self, *args, endpoints=None, check=True, secret=None, timeout=20):
        eps = endpoints or ",".join(self.members[n]["client"] for n in self.procs)
        cmd = [CTL, "--endpoints", eps, "--secret-file", secret or self.secret] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
        return r

    def ctl_json(self, *args, **kw):
        return json.loads(self.ctl("-w", "json", *args, **kw).stdout)

    def status(self, name):
        r = self.ctl("-w", "json", "endpoint", "status",
                     endpoints=self.members[name]["client"], check=False)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)[0]

    def leader(self):
        """Waits until every running member agrees on one leader; returns its name."""
        end = time.time() + DEADLINE_S
        while time.time() < end:
            st = {n: self.status(n) for n in self.procs}
            leaders = {s["leader"] for s in st.values() if s}
            if len(leaders) == 1 and 0 not in leaders and all(st.values()):
                lid = leaders.pop()
                for n, s in st.items():
                    if s["id"] == lid:
                        return n
            time.sleep(0.1)
        raise AssertionError("no agreed leader within %d s" % DEADLINE_S)

    def wait(self, what, fn):
        end = time.time() + DEADLINE_S
        last = None
        while time.time() < end:
            try:
                last = fn()
                if last:
                    return last
            except (AssertionError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {last}")

    def local_get(self, name, key):
        r = self.ctl("--consistency", "s", "-w", "simple", "config", "get", key,
                     endpoints=self.members[name]["client"], check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def stop(self):
        """Stops every member still running with SIGTERM (each one, whatever the others
        did) and removes the directory. The first member that did not stop cleanly fails
        the scenario, unless it is already failing."""
        problems = []
        for n in list(self.procs):
            try:
                self.kill(n, signal.SIGTERM)
            except AssertionError as e:
                problems.append(e)
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems and sys.exc_info()[0] is None:
            raise problems[0]


def scenario_bootstrap_config_and_move_leader(n):
    c = Cluster(n)
    try:
        c.start_all()
        lead = c.leader()
        members = c.ctl_json("member", "list")["members"]
        assert len(members) == n and all(m["role"] == "voter" for m in members) or \
            c.wait("all voters", lambda: all(m["role"] == "voter" for m in
                                            c.ctl_json("member", "list")["members"]))
        for i in range(20):
            c.ctl("config", "set", f"k{i}", f"v{i}")
        for name in c.members:
            c.wait(f"config on {name}", lambda name=name: c.local_get(name, "k19") == "v19")
        c.ctl("config", "del", "k0")
        r = c.ctl("config", "get", "k0", check=False)
        assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr
        target = next(x for x in c.members if x != lead)
        c.ctl("move-leader", target)
        assert c.leader() == target
        # Partitions are placed over every member's dataplane, balanced.
        pm = c.wait("map over all members", lambda: (lambda m: m if len(
            {e[0] for e in m["map"]}) == n else None)(c.ctl_json("partitions", "show")))
        counts = {}
        for node, worker, *_ in pm["map"]:
            counts[(node, worker)] = counts.get((node, worker), 0) + 1
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        print(f"  {n} members: bootstrap, config on all, move-leader to {target}, map ok")
    finally:
        c.stop()


def scenario_add_promote_remove():
    c = Cluster(3)
    try:
        c.start_all()
        c.leader()
        c.ctl("config", "set", "before", "join")
        c.define("n4")
        c.ctl("member", "add", "n4", "--peer-urls", c.members["n4"]["peer"],
              "--client-urls", c.members["n4"]["client"])
        c.start("n4", state="existing", names=["n1", "n2", "n3", "n4"])
        c.wait("n4 promoted", lambda: any(m["name"] == "n4" and m["role"] == "voter"
                                          for m in c.ctl_json("member", "list")["members"]))
        c.wait("n4 caught up", lambda: c.local_get("n4", "before") == "join")
        c.ctl("member", "remove", "n4")
        c.wait("n4 removed", lambda: all(m["name"] != "n4" for m in
                                         c.ctl_json("member", "list")["members"]))
        c.procs.pop("n4").wait(timeout=10)  # a removed member stops by itself
        c.ctl("config", "set", "after", "remove")
        print("  add learner, auto-promote, catch up, remove: ok")
    finally:
        c.stop()


def scenario_kill_leader_no_loss(n):
    c = Cluster(n)
    try:
        c.start_all()
        lead = c.leader()
        acked = []
        for i in range(30):
            c.ctl("config", "set", f"acked{i}", str(i))
            acked.append(i)
        c.kill(lead)
        t0 = time.time()
        c.wait("a new leader accepting writes",
               lambda: c.ctl("--command-timeout", "500", "config", "set", "post", "1",
                             check=False).returncode == 0)
        failover = time.time() - t0
        for i in acked:
            assert c.ctl("-w", "simple", "config", "get", f"acked{i}").stdout.strip() == str(i)
        # Every member restarts and recovers its state from disk.
        for name in list(c.procs):
            c.kill(name, signal.SIGTERM)
        for name in c.members:
            c.start(name)
        c.leader()
        for name in c.members:
            c.wait(f"{name} recovered", lambda name=name: c.local_get(name, "acked29") == "29")
        print(f"  {n} members: kill -9 leader, failover {failover * 1000:.0f} ms "
              f"(incl. client retries), 30 acknowledged writes kept, full restart recovered")
    finally:
        c.stop()


def scenario_kill_leader_dead_endpoint_first():
    """kill -9 of the leader, then writes at once through shardctl with every endpoint
    listed, the dead one first: each write tries the others, follows the leader they name
    and waits out the election, and succeeds within --command-timeout."""
    c = Cluster(3)
    writes, timeout_ms = 20, 10000
    try:
        c.start_all()
        lead = c.leader()
        c.ctl("config", "set", "before", "kill")
        others = [n for n in c.members if n != lead]
        eps = ",".join([c.members[lead]["client"]] + [c.members[n]["client"] for n in others])
        c.kill(lead)
        t0 = time.time()
        took = []
        for i in range(writes):
            t = time.time()
            r = c.ctl("--command-timeout", str(timeout_ms), "config", "set", f"dead{i}",
                      str(i), endpoints=eps, check=False, timeout=timeout_ms / 1000 + 10)
            took.append(time.time() - t)
            assert r.returncode == 0, f"write {i} after kill -9 failed: {r.stderr}"
            assert took[-1] < timeout_ms / 1000 + 1, f"write {i} took {took[-1]:.1f} s"
        # Reads too, through the same list, and every write is there.
        for i in range(writes):
            r = c.ctl("-w", "simple", "config", "get", f"dead{i}", endpoints=eps)
            assert r.stdout.strip() == str(i), r.stdout
        print(f"  kill -9 leader, {writes} writes with the dead endpoint first: all ok, first "
              f"{took[0] * 1000:.0f} ms (election), slowest after it "
              f"{max(took[1:]) * 1000:.0f} ms, {(time.time() - t0):.1f} s in all")
    finally:
        c.stop()


def scenario_flags_before_and_after():
    """Every command gives the same output (and exit status) with the global flags before
    the command and after it; unknown flags and another command's flags are usage errors
    (exit status 2) with a message naming them."""
    c = Cluster(3)
    try:
        c.start_all()
        lead = c.leader()
        c.ctl("config", "set", "fk", "fv")
        c.wait("fk on every member", lambda: all(c.local_get(n, "fk") == "fv" for n in c.members))
        other = next(n for n in c.members if n != lead)
        # The placement and promotions that follow a bootstrap are committed before the
        # comparisons start, so that status shows the same indexes twice: every member a
        # voter with its dataplane known, every one owning partitions, nothing fenced, and
        # the indexes still the same half a second later.
        def settled(prev=[None]):
            st = [(s["commit"], s["applied"], s["log_bytes"])
                  for s in c.ctl_json("endpoint", "status", "--cluster")]
            members = c.ctl_json("member", "list")["members"]
            parts = c.ctl_json("partitions", "show")
            placed = (len(members) == len(c.members) and parts["fenced"] == 0 and
                      all(m["role"] == "voter" and m["dp_state"] == "up" and
                          parts["counts"].get(m["name"], 0) > 0 for m in members))
            same = placed and st == prev[0] and all(x[0] == x[1] for x in st)
            prev[0] = st
            time.sleep(0.5)
            return same
        c.wait("the cluster settled", settled)
        snap = [os.path.join(c.dir, "snap-before"), os.path.join(c.dir, "snap-after")]

        def masked(out):
            # What may differ between two runs of a command: timing and Raft indexes.
            try:
                return json.dumps(mask(json.loads(out)), sort_keys=True)
            except json.JSONDecodeError:
                out = re.sub(r"took = [0-9.]+ms", "took = Xms", out)
                out = re.sub(r"\(index [0-9]+,", "(index X,", out)
                return out.replace(snap[0], "FILE").replace(snap[1], "FILE")

        def mask(o):
            if isinstance(o, dict):
                return {k: ("X" if k in ("took_ms", "index", "memory") else mask(v))
                        for k, v in o.items()}
            if isinstance(o, list):
                return [mask(v) for v in o]
            return o

        g = ["--command-timeout", "5000", "--dial-timeout=2000"]
        # (words, global flags) for every command; writes leave the state as it was.
        cases = [
            (["member", "list"], ["-w", "json"] + g),
            (["member", "list"], ["-w", "simple"]),
            (["member", "list"], ["--write-out=table", "--consistency=s"]),
            (["endpoint", "status", "--cluster"], ["-w", "json"] + g),
            (["endpoint", "status"], ["-w", "table"]),
            (["endpoint", "health", "--cluster"], ["-w", "json"]),
            (["endpoint", "health"], g),
            (["config", "get", "fk"], ["--consistency=s", "-w", "simple"]),
            (["config", "get", "fk"], ["-w", "json"] + g),
            (["config", "get", "missing"], ["-w", "json"]),
            (["config", "set", "fk", "fv"], ["-w", "json"] + g),
            (["config", "set", "fk", "fv"], []),
            (["config", "list"], ["-w", "json", "--consistency", "s"]),
            (["config", "list", "f"], ["-w", "simple"]),
            (["config", "del", "nokey"], ["-w", "json"]),
            (["partitions", "show"], ["-w", "json"] + g),
            (["partitions", "show"], ["-w", "table", "--consistency=s"]),
            (["partitions", "rebalance"], ["-w", "json"]),
            (["move-leader", lead], g),
            (["member", "promote", other], ["-w", "json"]),
        ]
        for words, flags in cases:
            before = c.ctl(*flags, *words, check=False)
            after = c.ctl(*words, *flags, check=False)
            what = f"{' '.join(words)} with {' '.join(flags) or 'no flags'}"
            assert before.returncode == after.returncode, \
                f"{what}: exit {before.returncode} before, {after.returncode} after"
            assert masked(before.stdout) == masked(after.stdout), \
                f"{what}: before:\n{before.stdout}\nafter:\n{after.stdout}"
            assert masked(before.stderr) == masked(after.stderr), \
                f"{what}: before:\n{before.stderr}\nafter:\n{after.stderr}"
            assert before.stdout or before.stderr, f"{what}: no output at all"
        # Flags between the words too, and the json is really json (not a silent table).
        out = json.loads(c.ctl("member", "-w", "json", "list").stdout)
        assert len(out["members"]) == 3, out
        # snapshot save, member add and remove: the same output both ways.
        a = c.ctl("-w", "table", "snapshot", "save", snap[0])
        b = c.ctl("snapshot", "save", snap[1], "-w", "table")
        assert masked(a.stdout) == masked(b.stdout), (a.stdout, b.stdout)
        c.define("n4")
        add = ["member", "add", "n4", "--peer-urls", c.members["n4"]["peer"],
               "--client-urls", c.members["n4"]["client"]]
        outs = []
        for before in (True, False):
            flags = ["-w", "json", "--command-timeout", "5000"]
            r = c.ctl(*(flags + add if before else add + flags))
            outs.append(masked(r.stdout))
            rm = ["member", "remove", "n4"]
            r2 = c.ctl(*(g + rm if before else rm + g))
            outs.append(r2.stdout)
            c.wait("n4 gone", lambda: all(m["name"] != "n4" for m in
                                          c.ctl_json("member", "list")["members"]))
        assert outs[0] == outs[2] and outs[1] == outs[3], outs
        # Unknown flags, flags of another command, missing values: exit status 2.
        for args, msg in [(["member", "list", "--bogus"], "unknown flag '--bogus'"),
                          (["--bogus", "member", "list"], "unknown flag '--bogus'"),
                          (["member", "list", "--cluster"], "--cluster is not a flag"),
                          (["config", "get", "fk", "--peer-urls", "x"], "--peer-urls"),
                          (["member", "list", "-w"], "--write-out needs a value"),
                          (["member", "list", "-w", "yaml"], "--write-out 'yaml'"),
                          (["config", "get", "fk", "--consistency=x"], "--consistency 'x'")]:
            r = c.ctl(*args, check=False)
            assert r.returncode == 2 and msg in r.stderr, (args, r.returncode, r.stderr)
            assert r.stdout == "", (args, r.stdout)
        print(f"  {len(cases) + 3} commands: same output with global flags before and after; "
              "unknown and misplaced flags refused with exit status 2: ok")
    finally:
        c.stop()


def scenario_cut_member_catches_up():
    c = Cluster(3)
    try:
        c.start_all()
        lead = c.leader()
        victim = next(x for x in c.members if x != lead)
        c.procs[victim].send_signal(signal.SIGUSR1)  # fault switch: traffic cut
        time.sleep(0.3)
        for i in range(50):
            c.ctl("config", "set", f"cut{i}", str(i), endpoints=c.members[lead]["client"])
        assert c.local_get(victim, "cut49") is None
        c.procs[victim].send_signal(signal.SIGUSR1)  # restored
        c.wait("cut member caught up", lambda: c.local_get(victim, "cut49") == "49")
        print("  member cut off, 50 writes, reconnected and caught up: ok")
    finally:
        c.stop()


def scenario_corrupt_tail_truncated():
    c = Cluster(3)
    try:
        c.start_all()
        c.leader()
        for i in range(10):
            c.ctl("config", "set", f"t{i}", str(i))
        victim = "n2"
        c.wait("n2 has t9", lambda: c.local_get(victim, "t9") == "9")
        c.kill(victim, signal.SIGKILL)
        segdir = os.path.join(c.dir, victim)
        seg = sorted(f for f in os.listdir(segdir) if f.startswith("seg-"))[-1]
        with open(os.path.join(segdir, seg), "ab") as f:
            f.write(b"\x11\x22\x33\x44\x40\x00\x00\x00torn-write-garbage")
        c.start(victim)
        c.wait("n2 restarted and caught up", lambda: c.local_get(victim, "t9") == "9")
        log = open(c.log_path(victim)).read()
        assert "torn tail" in log, "restart did not report the truncated tail"
        c.ctl("config", "set", "after-torn", "ok")
        c.wait("n2 follows", lambda: c.local_get(victim, "after-torn") == "ok")
        print("  corrupted log tail truncated on restart, member rejoined: ok")
    finally:
        c.stop()


def scenario_no_leader_and_busy_port():
    """Bounds at their limits: shardctl gives up at --command-timeout (3 s here) when
    members answer but none knows a leader; a member whose peer port stays taken gives up
    after CP_LISTEN_RETRIES_MAX x CP_LISTEN_RETRY_MS (3 s) with a clear error."""
    c = Cluster(3)
    holder = socket.socket()
    try:
        c.start("n1")  # one of three: never a quorum, never a leader
        c.wait("n1 serving", lambda: c.status("n1"))
        t0 = time.time()
        r = c.ctl("config", "set", "k", "v", "--command-timeout", "3000",
                  endpoints=c.members["n1"]["client"], check=False)
        took = time.time() - t0
        assert r.returncode == 1 and "not the leader" in r.stderr, r.stderr
        assert "--command-timeout 3000" in r.stderr, r.stderr
        assert 2.9 <= took < 6, f"shardctl gave up after {took:.1f} s, not ~3 s"
        host, port = c.members["n2"]["peer"].split(":")
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, int(port)))
        holder.listen(1)
        t0 = time.time()
        c.start("n2")
        rc = c.procs["n2"].wait(timeout=20)
        took = time.time() - t0
        c.procs.pop("n2")
        log = open(c.log_path("n2")).read()
        assert rc != 0, "a member that cannot listen must not run"
        assert "still in use" in log and "cannot listen on" in log, log[-500:]
        assert 2.9 <= took < 15, f"the member gave up after {took:.1f} s, not ~3 s"
        print("  no leader: shardctl gave up after ~3 s (--command-timeout); busy peer port: "
              "member refused after ~3 s: ok")
    finally:
        holder.close()
        c.stop()


def scenario_wrong_secret_refused():
    c = Cluster(3)
    try:
        c.start_all()
        c.leader()
        wrong = os.path.join(c.dir, "wrong")
        with open(wrong, "w") as f:
            f.write("not-the-cluster-secret-at-all\n")
        os.chmod(wrong, 0o600)
        r = c.ctl("member", "list", secret=wrong, check=False)
        assert r.returncode == 1 and "authentication" in r.stderr, r.stderr
        # A raw client that skips authentication is disconnected.
        host, port = c.members["n1"]["client"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.recv(64)  # the challenge
            s.sendall(b"\x10\x00\x00\x00\x05" + b"x" * 15)  # a REQUEST before AUTH
            s.settimeout(5)
            rest = s.recv(64)
            assert rest == b"", "server kept talking to an unauthenticated client"
        print("  client without the secret refused: ok")
    finally:
        c.stop()


def scenario_region_published_and_heartbeat_read():
    c = Cluster(3)
    region = f"/dev/shm/sp-cp-it-region-{os.getpid()}"
    try:
        c.start("n1", extra=["--state-region", region])
        c.start("n2")
        c.start("n3")
        c.leader()

        def shown():
            r = subprocess.run([REGION, "show", region], capture_output=True, text=True)
            return r.stdout if "partitions 64 self" in r.stdout and "members 3" in r.stdout \
                else None
        out = c.wait("the map of 3 members in n1's region", shown)
        assert "workers=2" in out, out
        # The dataplane's heartbeat (written here by the tool, as shardplane-dp does) is
        # read back and reported in status.
        subprocess.run([REGION, "heartbeat", region, "--state", "running"], check=True,
                       capture_output=True)
        st = c.wait("dataplane state in status",
                    lambda: (lambda s: s if s and s["dataplane"].get("state") == "running"
                             else None)(c.status("n1")))
        assert st["dataplane"]["heartbeat_age_ms"] >= 0, st
        print("  region published (3 members, 64 partitions), dataplane heartbeat read back: ok")
    finally:
        c.stop()
        if os.path.exists(region):
            os.unlink(region)


def snapshots_in(c, name):
    return [f for f in os.listdir(os.path.join(c.dir, name)) if f.endswith(".snap")]


def scenario_restarts_keep_a_leader(snapshot_entries):
    """Every member killed (-9) and restarted in turn with --initial-cluster-state
    existing, again with new, then all at once, twice over; each time a leader must be
    elected and accept a write, and every acknowledged write must be on every member.
    snapshot_entries > 0 starts the members with that snapshot threshold and checks that
    every member took a snapshot before the restarts; 0 keeps the default (no snapshot in
    this short run), where the bootstrap membership comes from the data directory only."""
    c = Cluster(3)
    extra = ["--snapshot-entries", str(snapshot_entries)] if snapshot_entries else []
    acked = {}
    seq = [0]

    def write():
        key = f"r{seq[0]}"
        c.wait(f"a leader accepting {key}",
               lambda: c.ctl("--command-timeout", "1000", "config", "set", key, str(seq[0]),
                             check=False).returncode == 0)
        acked[key] = str(seq[0])
        seq[0] += 1

    try:
        for n in c.members:
            c.start(n, extra=extra)
        c.leader()
        for _ in range(max(snapshot_entries * 2, 5)):
            write()
        if snapshot_entries:
            for n in c.members:
                c.wait(f"a snapshot on {n}", lambda n=n: snapshots_in(c, n))
        else:
            assert not any(snapshots_in(c, n) for n in c.members), "unexpected snapshot"
        restarts = 0
        for state in ["existing", "new", "existing"]:
            for n in c.members:
                c.kill(n, signal.SIGKILL)
                c.start(n, state=state, extra=extra)
                restarts += 1
                write()
        for state in ["existing", "existing"]:
            for n in list(c.procs):
                c.kill(n, signal.SIGKILL)
            for n in c.members:
                c.start(n, state=state, extra=extra)
            restarts += 3
            c.leader()
            write()
        last = f"r{seq[0] - 1}"
        for n in c.members:
            c.wait(f"{n} has {last}", lambda n=n: c.local_get(n, last) == acked[last])
            for k, v in acked.items():
                got = c.local_get(n, k)
                assert got == v, f"{n}: {k} = {got!r}, acknowledged {v!r}"
        print(f"  snapshot threshold {snapshot_entries or 'default'}: {restarts} restarts "
              f"(kill -9, existing/new, one by one and all at once), {len(acked)} "
              f"acknowledged writes on every member")
    finally:
        c.stop()


def scenario_data_dir_mismatch_refused():
    """A data directory remembers whose it is and the cluster it formed: starting it under
    another name, or with 'new' and another --initial-cluster, is a clear error."""
    c = Cluster(3)
    try:
        c.start_all()
        c.leader()
        c.ctl("config", "set", "k", "v")
        c.kill("n1", signal.SIGKILL)
        c.define("n9")
        c.start("n1", state="new", names=["n1", "n2", "n9"])
        rc = c.procs.pop("n1").wait(timeout=20)
        log = open(c.log_path("n1")).read()
        assert rc != 0 and "--initial-cluster-state existing" in log, log[-800:]
        data = os.path.join(c.dir, "n1")
        p = subprocess.run([CP, "--name", "n2", "--data-dir", data, "--initial-cluster",
                            c.initial(["n1", "n2", "n3"]), "--initial-cluster-state",
                            "existing", "--secret-file", c.secret, "--listen-peer",
                            f"127.0.0.1:{free_port()}", "--listen-client",
                            f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and "belongs to member 'n1'" in p.stderr + p.stdout, \
            p.stderr + p.stdout
        c.start("n1", state="existing")
        c.wait("n1 back", lambda: c.local_get("n1", "k") == "v")
        print("  data dir of another member, and 'new' with another cluster: refused "
              "with a clear error; the right flags restart it: ok")
    finally:
        c.stop()


def scenario_config_limits():
    """The configuration store's limits are flags, refused at the limit with the flag's
    name; an overwrite or a delete at the limit still works."""
    c = Cluster(3)
    lim = ["--config-max-keys", "5", "--config-max-value", "10", "--config-max-bytes", "120"]
    try:
        for n in c.members:
            c.start(n, extra=lim)
        c.leader()
        for i in range(5):  # each key counts 2 + 1 + 16 bytes: 95 in all
            c.ctl("config", "set", f"k{i}", "v")
        r = c.ctl("config", "set", "k5", "v", check=False)
        assert r.returncode != 0 and "--config-max-keys" in r.stderr, r.stderr
        c.ctl("config", "set", "k0", "0123456789")  # overwrite at the key limit: 104
        r = c.ctl("config", "set", "k1", "0123456789a", check=False)
        assert r.returncode != 0 and "--config-max-value" in r.stderr, r.stderr
        c.ctl("config", "set", "k1", "0123456789")  # 113
        r = c.ctl("config", "set", "k2", "0123456789", check=False)  # would be 122
        assert r.returncode != 0 and "--config-max-bytes" in r.stderr, r.stderr
        c.ctl("config", "del", "k4")  # 94
        c.ctl("config", "set", "k2", "0123456789")  # 103
        assert c.ctl("-w", "simple", "config", "get", "k2").stdout.strip() == "0123456789"
        print("  key, value and byte limits refused with the flag named; overwrite and "
              "delete at the limit: ok")
    finally:
        c.stop()


def scenario_flag_limits_refused():
    """The limit flags are refused just past their ranges, naming the flag, before any
    member starts (and accepted at their ends by the scenarios above and the defaults)."""
    d = tempfile.mkdtemp(prefix="sp-cp-flags-")
    try:
        base = [CP, "--name", "n1", "--data-dir", os.path.join(d, "n1"), "--initial-cluster",
                "n1=127.0.0.1:%d" % free_port(), "--secret-file", os.path.join(d, "none")]
        for flag, value in [("--auth-timeout-ms", "49"), ("--auth-timeout-ms", "60001"),
                            ("--snapshot-entries", "0"), ("--config-max-keys", "0"),
                            ("--config-max-keys", "1000001"),
                            ("--config-max-value", "262145"), ("--config-max-bytes", "0"),
                            ("--config-max-bytes", "50331649")]:
            r = subprocess.run(base + [flag, value], capture_output=True, text=True, timeout=10)
            assert r.returncode != 0 and flag in r.stderr, (flag, value, r.stderr)
        print("  limit flags just past their ranges: refused, naming the flag: ok")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    use_binaries(*sys.argv[1:4])
    t0 = time.time()
    passed = failed = 0
    only = os.environ.get("SP_CP_SCENARIO")  # run only the scenarios whose name has this
    for name, fn in [("bootstrap/config/move-leader (3)", lambda: scenario_bootstrap_config_and_move_leader(3)),
                     ("bootstrap/config/move-leader (5)", lambda: scenario_bootstrap_config_and_move_leader(5)),
                     ("add/promote/remove", scenario_add_promote_remove),
                     ("kill leader (3)", lambda: scenario_kill_leader_no_loss(3)),
                     ("kill leader (5)", lambda: scenario_kill_leader_no_loss(5)),
                     ("kill leader, dead endpoint first", scenario_kill_leader_dead_endpoint_first),
                     ("flags before and after the command", scenario_flags_before_and_after),
                     ("cut member", scenario_cut_member_catches_up),
                     ("corrupt tail", scenario_corrupt_tail_truncated),
                     ("wrong secret", scenario_wrong_secret_refused),
                     ("no leader, busy port", scenario_no_leader_and_busy_port),
                     ("shared region", scenario_region_published_and_heartbeat_read),
                     ("restarts before a snapshot", lambda: scenario_restarts_keep_a_leader(0)),
                     ("restarts after snapshots", lambda: scenario_restarts_keep_a_leader(8)),
                     ("data dir mismatch", scenario_data_dir_mismatch_refused),
                     ("config limits", scenario_config_limits),
                     ("flag limits", scenario_flag_limits_refused)]:
        if only and only not in name:
            continue
        print(f"scenario: {name}", flush=True)
        try:
            fn()
            passed += 1
        except Exception as e:  # report and go on: one line per failure
            print(f"  FAILED: {e!r}", flush=True)
            failed += 1
    print(f"control-plane integration: {passed} passed, {failed} failed "
          f"in {time.time() - t0:.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
