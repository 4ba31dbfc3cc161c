#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Cluster membership reaches the data path: three nodes, each a shardplane-cp and a
shardplane-dp, with failures injected.

Usage: test_failover.py CP DP SHARDCTL REGION_TOOL
SP_FO_SCENARIO=TEXT runs only the scenarios whose name contains TEXT.

Topology (all created here, named with this process's pid, removed at the end even when a
check fails): a hub network namespace with a bridge and the test's own address
10.X.0.100/24; one namespace per dataplane, joined to the bridge by a veth pair, the
dataplane on af_packet over its end (10.X.0.i). The control planes run in the hub
namespace on its loopback, each publishing to its node's region in /dev/shm. The test
process itself moves into the hub namespace (setns) and talks memcached UDP to the
dataplanes, sending each key to the owner the partition map names (xxh3 of the key, low
bits, as lib/common/keyhash.h).

Short timeouts: --failure-timeout-ms 800, --lease-ms 400, --hold-down-ms 1000 (shorter
ones make leases lapse when the machine is loaded: the control planes' pings come late).
"""
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
import dp_integration as dpi  # noqa: E402  (hugepages, sanitizer reports)

CP, DP, CTL, REGION = sys.argv[1:5]
PID = os.getpid()
NET = 20 + PID % 200  # 10.NET.0.0/24
HUB = f"sphub{PID}"
MC_PORT = 11211
BIN_PORT = 9000
PARTITIONS = 64
FAIL_MS, LEASE_MS, HOLD_MS = 800, 400, 1000
DEADLINE_S = 30           # any single wait
OP_TIMEOUT_S = 0.5        # one memcached request
STOP_WAIT_S = 10
CLONE_NEWNET = 0x40000000

_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def partition_of(key):
    k = key.encode()
    return _xxh.XXH3_64bits(k, len(k)) & (PARTITIONS - 1)


def log(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, timeout=30):
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout}")
    return res


def wait(what, fn, timeout=DEADLINE_S, every=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last})")


class Mc:
    """memcached UDP requests from the hub namespace, one at a time."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.settimeout(OP_TIMEOUT_S)
        self.rid = random.Random(PID).randrange(1, 60000)

    def request(self, ip, text):
        """Returns the reply text, or None when nothing came back in time."""
        self.rid = (self.rid + 1) & 0xffff
        self.s.sendto(struct.pack("!HHHH", self.rid, 0, 1, 0) + text.encode(), (ip, MC_PORT))
        deadline = time.monotonic() + OP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                data, _ = self.s.recvfrom(65536)
            except socket.timeout:
                return None
            rid, seq, count, _ = struct.unpack("!HHHH", data[:8])
            if rid == self.rid:
                return data[8:].decode(errors="replace")
        return None

    def set(self, ip, key, value):
        return self.request(ip, f"set {key} 0 0 {len(value)}\r\n{value}\r\n")

    def get(self, ip, key):
        """('hit', value) / ('miss', None) / ('err', line) / ('timeout', None)."""
        r = self.request(ip, f"get {key}\r\n")
        if r is None:
            return ("timeout", None)
        if r.startswith("VALUE "):
            return ("hit", r.split("\r\n")[1])
        if r.startswith("END"):
            return ("miss", None)
        return ("err", r.strip())


class Cluster:
    def __init__(self, n=3):
        self.dir = tempfile.mkdtemp(prefix="sp-fo-")
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(self.secret, 0o600)
        self.names = [f"n{i}" for i in range(1, n + 1)]
        self.cps, self.dps, self.nets = {}, {}, []
        self.huge = dpi.hugepages_usable()
        self.mc = None
        self.hub_fd = None
        self.orig_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.base_port = 20000 + (PID % 400) * 20

    # --- topology -------------------------------------------------------------------
    def net_up(self):
        sh(["ip", "netns", "add", HUB])
        self.nets.append(HUB)
        sh(["ip", "-n", HUB, "link", "set", "lo", "up"])
        sh(["ip", "-n", HUB, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", HUB, "addr", "add", f"10.{NET}.0.100/24", "dev", "br0"])
        sh(["ip", "-n", HUB, "link", "set", "br0", "up"])
        for i, _ in enumerate(self.names, 1):
            self.add_node_net(i)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.hub_fd = os.open(f"/var/run/netns/{HUB}", os.O_RDONLY)
        if libc.setns(self.hub_fd, CLONE_NEWNET) != 0:
            raise AssertionError(f"setns into {HUB}: errno {ctypes.get_errno()}")
        self.mc = Mc()

    def add_node_net(self, i):
        ns, v, b = f"spn{PID}x{i}", f"spv{PID % 100000}x{i}", f"spb{PID % 100000}x{i}"
        sh(["ip", "netns", "add", ns])
        self.nets.append(ns)
        sh(["ip", "link", "add", v, "type", "veth", "peer", "name", b])
        sh(["ip", "link", "set", v, "netns", ns])
        sh(["ip", "link", "set", b, "netns", HUB])
        sh(["ip", "-n", HUB, "link", "set", b, "master", "br0"])
        sh(["ip", "-n", HUB, "link", "set", b, "up"])
        sh(["ip", "-n", ns, "link", "set", v, "up"])
        sh(["ip", "netns", "exec", ns, "ethtool", "-K", v, "tx", "off"], check=False)
        sh(["ip", "netns", "exec", HUB, "ethtool", "-K", b, "tx", "off"], check=False)

    def link(self, i, up):
        sh(["ip", "-n", f"spn{PID}x{i}", "link", "set", f"spv{PID % 100000}x{i}",
            "up" if up else "down"])

    # --- processes ------------------------------------------------------------------
    def peer(self, name):
        return f"127.0.0.1:{self.base_port + int(name[1:])}"

    def client(self, name):
        return f"127.0.0.1:{self.base_port + 10 + int(name[1:])}"

    def metrics_addr(self, name):
        return f"127.0.0.1:{self.base_port + 30 + int(name[1:])}"

    def metrics(self, name):
        """The member's Prometheus text as {name: value}."""
        host, port = self.metrics_addr(name).split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        out = {}
        for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1].splitlines():
            if line and not line.startswith("#") and " " in line:
                k, v = line.rsplit(" ", 1)
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def region(self, name):
        return f"/dev/shm/sp-fo-{PID}-{name}"

    def ip(self, name):
        return f"10.{NET}.0.{int(name[1:])}"

    def start_cp(self, name, state="new", names=None):
        names = names or self.names
        ic = ",".join(f"{n}={self.peer(n)}" for n in names)
        logf = open(os.path.join(self.dir, f"cp-{name}.log"), "a")
        args = [CP, "--name", name, "--data-dir", os.path.join(self.dir, f"data-{name}"),
                "--listen-peer", self.peer(name), "--listen-client", self.client(name),
                "--initial-cluster", ic, "--initial-cluster-state", state,
                "--secret-file", self.secret, "--partitions", str(PARTITIONS),
                "--state-region", self.region(name), "--failure-timeout-ms", str(FAIL_MS),
                "--lease-ms", str(LEASE_MS), "--hold-down-ms", str(HOLD_MS),
                "--metrics", self.metrics_addr(name)]
        self.cps[name] = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)

    def start_dp(self, name, partitions=PARTITIONS):
        i = int(name[1:])
        wait(f"{name}'s region", lambda: os.path.exists(self.region(name)))
        prefix = f"spfo{PID}{name}"
        self.dps[name] = prefix
        cmd = ["ip", "netns", "exec", f"spn{PID}x{i}", DP, "--no-pci", "--file-prefix", prefix,
               "-l", "0-1", "--vdev", f"net_af_packet0,iface=spv{PID % 100000}x{i}"]
        cmd += [] if self.huge else ["--no-huge", "-m", "256"]
        cmd += ["--", "--ip", f"{self.ip(name)}/24", "--port", str(BIN_PORT),
                "--memcached-port", str(MC_PORT), "--partitions", str(partitions),
                "--workers", "1", "--memory-mb", "16", "--state-region", self.region(name)]
        logf = open(os.path.join(self.dir, f"dp-{name}.log"), "a")
        self.dps[name] = (prefix, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT))

    def kill_dp(self, name, sig=signal.SIGKILL):
        prefix, p = self.dps.pop(name)
        p.send_signal(sig)
        try:
            p.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)

    def kill_cp(self, name, sig=signal.SIGKILL):
        p = self.cps.pop(name)
        p.send_signal(sig)
        try:
            p.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_processes(self):
        for n in list(self.dps):
            self.kill_dp(n, signal.SIGTERM)
        for n in list(self.cps):
            self.kill_cp(n, signal.SIGTERM)

    def stop(self):
        self.stop_processes()
        if self.orig_fd is not None:
            ctypes.CDLL("libc.so.6").setns(self.orig_fd, CLONE_NEWNET)
        for ns in reversed(self.nets):
            sh(["ip", "netns", "del", ns], check=False)
        for n in self.names + ["n4"]:
            for path in (self.region(n),):
                if os.path.exists(path):
                    os.unlink(path)
        if os.environ.get("SP_FO_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self):
        """Sanitizer reports in any process's log (a sanitizer build), or ''."""
        out = []
        for f in sorted(os.listdir(self.dir)):
            if not f.endswith(".log"):
                continue
            with open(os.path.join(self.dir, f), errors="replace") as fh:
                text = fh.read()
            m = dpi.SANITIZER_REPORT.search(text)
            if m:
                start = text.rfind("\n", 0, m.start()) + 1
                out.append(f"{f}:\n" + "\n".join(text[start:].splitlines()[:30]))
        return "\n".join(out)

    def logs(self, names=None):
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".log") and (names is None or any(n in f for n in names)):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    out.append(f"--- {f} (tail)\n" + "".join(fh.readlines()[-25:]))
        return "\n".join(out)

    # --- control-plane views --------------------------------------------------------
    def ctl(self, *args, endpoints=None, check=True, glob=()):
        eps = endpoints or ",".join(self.client(n) for n in self.cps)
        return sh([CTL, "--endpoints", eps, "--secret-file", self.secret] + list(glob) +
                  list(args), check=check)

    def ctl_json(self, *args, serializable=False, **kw):
        glob = ["-w", "json"] + (["--consistency", "s"] if serializable else [])
        r = self.ctl(*args, glob=glob, **kw)
        return json.loads(r.stdout)

    def map(self):
        """(epoch, [(node_id, worker, flags)]) from a member, or None."""
        try:
            j = self.ctl_json("partitions", "show", serializable=True)
        except (AssertionError, ValueError):
            return None
        return j.get("epoch", 0), j.get("map", [])

    def ids(self):
        try:
            j = self.ctl_json("member", "list", serializable=True)
        except (AssertionError, ValueError):
            return {}
        return {m["name"]: m["id"] for m in j["members"]}

    def show(self, name):
        return sh([REGION, "show", self.region(name)], check=False).stdout

    def serving(self, name):
        s = self.show(name)
        for tok in s.split():
            if tok.startswith("serving="):
                return tok.split("=", 1)[1]
        return None


def owners(c, ids_by_name):
    m = c.map()
    if not m or not m[1]:
        return None
    names = {v: k for k, v in ids_by_name.items()}
    return m[0], [(names.get(e[0], str(e[0])), e[2]) for e in m[1]]


def settled_map(c, ids, expect_names):
    """Waits until the map uses exactly expect_names, nothing fenced, and every one of
    those dataplanes serves it. Returns (epoch, owner name per partition)."""
    seen = ["no map"]

    def ok():
        o = owners(c, ids)
        if o is None:
            return None
        epoch, ent = o
        serving = {n: c.serving(n) for n in expect_names}
        seen[0] = (f"epoch {epoch}, nodes {sorted({n for n, _ in ent})}, "
                   f"{sum(1 for _, f in ent if f)} fenced, dataplanes {serving}")
        if any(f for _, f in ent) or {n for n, _ in ent} != set(expect_names):
            return None
        if any(s != "serving" for s in serving.values()):
            return None
        return epoch, [n for n, _ in ent]
    try:
        return wait(f"a settled map over {sorted(expect_names)}", ok)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {seen[0]}") from None


def write_all(c, own, keys, model, tag, timeout=DEADLINE_S):
    """Writes every key at its owner until acknowledged (STORED); records the model."""
    slow = []
    for k in keys:
        name = own[partition_of(k)]
        v = f"{tag}-{k}"
        t0 = time.monotonic()
        deadline = t0 + timeout
        answers = {}
        while True:
            r = c.mc.set(c.ip(name), k, v)
            if r is not None and r.startswith("STORED"):
                model[k] = v
                break
            answers[str(r).strip()] = answers.get(str(r).strip(), 0) + 1
            if time.monotonic() > deadline:
                raise AssertionError(f"set {k} at {name}: {r!r}\n{c.logs()}")
            time.sleep(0.02)
        if time.monotonic() - t0 > 1.0:
            slow.append(f"{k}@{name} {time.monotonic() - t0:.1f}s {answers}")
    if slow:
        log(f"slow writes ({len(slow)}): " + "; ".join(slow[:4]))


def check_reads(c, own, keys, model):
    """Every read of a key at its owner returns its last acknowledged value or a miss (a
    failed node's data is lost), never an older value."""
    for k in keys:
        name = own[partition_of(k)]
        # A healed link may need ARP again, and on a loaded machine a dataplane's worker
        # can be starved for seconds: only a wrong value fails at once.
        deadline = time.monotonic() + 15
        while True:
            kind, v = c.mc.get(c.ip(name), k)
            if kind == "hit" and v != model.get(k):
                raise AssertionError(f"{k} at {name}: read {v!r}, last acknowledged "
                                     f"{model.get(k)!r}")
            if kind in ("hit", "miss"):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{k} at {name}: {kind} {v!r}")
            time.sleep(0.05)


def keys_of(own, name, keys):
    return [k for k in keys if own[partition_of(k)] == name]


def scenario_failover(c):
    """Start-up (NOT_READY until the first map), then kill -9 of a dataplane, restart and
    rejoin; a network cut of a node (it stops within its lease, partitions move only
    after); kill -9 of the leader's whole node."""
    for n in c.names:
        c.start_cp(n)
    for n in c.names:
        c.start_dp(n)
    ids = wait("members with ids", lambda: (lambda d: d if len(d) == 3 else None)(c.ids()))
    epoch, own = settled_map(c, ids, c.names)
    keys = [f"k{i}" for i in range(90)]
    model = {}
    write_all(c, own, keys, model, "v1")
    check_reads(c, own, keys, model)
    log(f"3 nodes serving epoch {epoch}: 90 keys written and read at their owners")

    # kill -9 of n3's dataplane: its keys are served by the others within the failure
    # timeout plus a map switch.
    victim = "n3"
    vkeys = keys_of(own, victim, keys)
    t0 = time.monotonic()
    c.kill_dp(victim)
    epoch2, own2 = settled_map(c, ids, ["n1", "n2"])
    took = time.monotonic() - t0
    write_all(c, own2, vkeys[:10], model, "v2")
    took_w = time.monotonic() - t0
    log(f"kill -9 dp {victim}: map epoch {epoch2} without it after {took:.2f} s, its keys "
        f"written through the survivors after {took_w:.2f} s")
    if took_w > FAIL_MS / 1000 + 2.5:
        raise AssertionError(f"failover took {took_w:.2f} s (failure timeout {FAIL_MS} ms)")
    check_reads(c, own2, keys, model)
    # Restart: it rejoins after the hold-down, with partitions again.
    c.start_dp(victim)
    epoch3, own3 = settled_map(c, ids, c.names)
    write_all(c, own3, keys, model, "v3")
    check_reads(c, own3, keys, model)
    log(f"dp {victim} restarted: back in the map at epoch {epoch3}")

    # Network cut of n2 (its dataplane's link down, its control plane cut off): it stops
    # serving within its lease; its partitions move only after that.
    victim = "n2"
    c.link(2, False)
    c.cps[victim].send_signal(signal.SIGUSR1)
    t0 = time.monotonic()
    wait("the cut dataplane to stop serving", lambda: c.serving(victim) != "serving")
    t_stop = time.monotonic() - t0
    first_move = None
    def moved():
        nonlocal first_move
        o = owners(c, ids)
        if o is None:
            return None
        if first_move is None and any(n != victim and own3[p] == victim
                                      for p, (n, _) in enumerate(o[1])):
            first_move = time.monotonic() - t0
        return first_move
    wait("n2's partitions to move", moved)
    log(f"cut {victim}: stopped serving after {t_stop:.2f} s (lease {LEASE_MS} ms), first "
        f"partition moved after {first_move:.2f} s")
    if t_stop > LEASE_MS / 1000 + 1.0:
        raise AssertionError(f"the cut node served {t_stop:.2f} s into the cut")
    if first_move < t_stop:
        raise AssertionError(f"partitions moved ({first_move:.2f} s) before the cut node "
                             f"stopped serving ({t_stop:.2f} s)")
    epoch4, own4 = settled_map(c, ids, ["n1", "n3"])
    check_reads(c, own4, keys, model)
    write_all(c, own4, keys, model, "v4")
    check_reads(c, own4, keys, model)
    # Heal: it rejoins.
    c.cps[victim].send_signal(signal.SIGUSR1)
    c.link(2, True)
    epoch5, own5 = settled_map(c, ids, c.names)
    check_reads(c, own5, keys, model)
    log(f"cut healed: {victim} back at epoch {epoch5}; no read older than the last "
        f"acknowledged write")

    # kill -9 of a whole node that is not the leader (control plane and dataplane): the
    # others take its partitions; restarted with its data directory, it rejoins.
    st = c.ctl_json("endpoint", "status", "--cluster")
    names = {v: k for k, v in ids.items()}
    leader = names.get(st[0]["leader"], "n1")
    victim = [n for n in c.names if n != leader][0]
    t0 = time.monotonic()
    c.kill_cp(victim)
    c.kill_dp(victim)
    rest = [n for n in c.names if n != victim]
    epoch6, own6 = settled_map(c, ids, rest)
    write_all(c, own6, keys, model, "v5")
    log(f"kill -9 of node {victim} (cp and dp): map over {rest} at epoch {epoch6}, every "
        f"key written after {time.monotonic() - t0:.2f} s")
    c.start_cp(victim, state="existing")
    c.start_dp(victim)
    epoch7, own7 = settled_map(c, ids, c.names)
    check_reads(c, own7, keys, model)
    log(f"node {victim} restarted: back at epoch {epoch7}")

    # kill -9 of the leader's whole node.
    st = c.ctl_json("endpoint", "status", "--cluster")
    leader_id = st[0]["leader"] if isinstance(st, list) else None
    names = {v: k for k, v in ids.items()}
    leader = names.get(leader_id, "n1")
    t0 = time.monotonic()
    c.kill_cp(leader)
    c.kill_dp(leader)
    rest = [n for n in c.names if n != leader]
    epoch6, own6 = settled_map(c, ids, rest)
    write_all(c, own6, keys, model, "v6")
    log(f"kill -9 of the leader's node ({leader}): map over {rest} at epoch {epoch6} and "
        f"every key written after {time.monotonic() - t0:.2f} s")
    check_reads(c, own6, keys, model)


def scenario_membership(c):
    """member remove: the removed dataplane answers every key NOT_SERVING and its control
    plane stops; member add of the same name with a fresh data directory: partitions only
    once its dataplane is up; a dataplane with another partition count gets none, and
    member list says why."""
    for n in c.names:
        c.start_cp(n)
    for n in c.names:
        c.start_dp(n)
    ids = wait("members with ids", lambda: (lambda d: d if len(d) == 3 else None)(c.ids()))
    epoch, own = settled_map(c, ids, c.names)
    keys = [f"m{i}" for i in range(60)]
    model = {}
    write_all(c, own, keys, model, "v1")
    m = c.metrics("n1")
    if m.get("sp_cp_liveness_pings_sent_total", 0) <= 0 or \
            m.get("sp_cp_lease_remaining_seconds", 0) <= 0 or \
            m.get("sp_cp_liveness_bad_total", -1) != 0:
        raise AssertionError(f"liveness metrics of n1: "
                             f"{ {k: v for k, v in m.items() if 'liveness' in k or 'lease' in k} }")

    c.ctl("member", "remove", "n3")
    wait("the removed dataplane to say so", lambda: c.serving("n3") == "removed")
    for k in keys:
        for _ in range(5):  # an idle dataplane may be asleep: a timeout is retried
            r = c.mc.get(c.ip("n3"), k)
            if r[0] != "timeout":
                break
        if r != ("err", "SERVER_ERROR not serving"):
            raise AssertionError(f"removed n3 answered {k}: {r}")
    r = c.mc.request(c.ip("n3"), "get " + " ".join(keys[:8]) + "\r\n")
    if r is None or not r.startswith("SERVER_ERROR not serving"):
        raise AssertionError(f"removed n3 answered a multi-key get: {r!r}")
    wait("n3's control plane to stop", lambda: c.cps["n3"].poll() is not None, timeout=15)
    c.cps.pop("n3")
    epoch2, own2 = settled_map(c, ids, ["n1", "n2"])
    write_all(c, own2, keys, model, "v2")
    check_reads(c, own2, keys, model)
    log(f"member remove n3: its dataplane answers every key NOT_SERVING, its control "
        f"plane stopped, map epoch {epoch2} over n1 and n2")

    # Add it back with a fresh data directory; its old dataplane (removed) is restarted.
    shutil.rmtree(os.path.join(c.dir, "data-n3"))
    c.kill_dp("n3")
    os.unlink(c.region("n3"))
    c.ctl("member", "add", "n3", "--peer-urls", c.peer("n3"), "--client-urls", c.client("n3"))
    c.start_cp("n3", state="existing")
    time.sleep(1.0)  # the member is in; its dataplane is not up yet: no partitions
    o = owners(c, ids)
    if o and any(n == "n3" for n, _ in o[1]):
        raise AssertionError("n3 got partitions before its dataplane was up")
    c.start_dp("n3")
    epoch3, own3 = settled_map(c, ids, c.names)
    write_all(c, own3, keys, model, "v3")
    check_reads(c, own3, keys, model)
    log(f"member add n3 (fresh data dir): no partitions before its dataplane was up, "
        f"then back at epoch {epoch3}")

    # A fourth node whose dataplane runs --partitions 32: no partitions, status says why.
    c.names.append("n4")
    c.add_node_net(4)
    c.ctl("member", "add", "n4", "--peer-urls", c.peer("n4"), "--client-urls", c.client("n4"))
    c.start_cp("n4", state="existing")
    c.start_dp("n4", partitions=32)
    def why():
        try:
            j = c.ctl_json("member", "list")
        except (AssertionError, ValueError):
            return None
        for m in j["members"]:
            if m["name"] == "n4" and m.get("dp_state") == "mismatch":
                return m.get("dp_why")
        return None
    reason = wait("member list to show n4's mismatch", why)
    if "--partitions 64" not in reason:
        raise AssertionError(f"mismatch reason does not say what to change: {reason}")
    ids = c.ids()
    o = owners(c, ids)
    if any(n == "n4" for n, _ in o[1]):
        raise AssertionError("the mismatched n4 got partitions")
    st = c.ctl_json("endpoint", "status", endpoints=c.client("n4"))
    dp = (st[0] if isinstance(st, list) else st)["dataplane"]
    if dp.get("dp_state") != "mismatch" or "--partitions 64" not in dp.get("why", ""):
        raise AssertionError(f"n4's endpoint status: {dp}")
    log(f"n4 with --partitions 32: no partitions; member list says: {reason}")

    # shardctl: endpoint health --cluster fails while a dataplane is unhealthy and names
    # it; the table views show the dataplane states; global flags before or after the
    # command give the same output; check perf passes on this cluster.
    r = c.ctl("endpoint", "health", "--cluster", check=False)
    if r.returncode == 0 or "mismatch" not in r.stdout:
        raise AssertionError(f"endpoint health with a mismatched dataplane: {r.returncode}\n"
                             f"{r.stdout}")
    st = c.ctl("endpoint", "status", "--cluster", check=False).stdout
    if "mismatch" not in st or "up, hb" not in st:
        raise AssertionError(f"endpoint status --cluster does not show dataplane states:\n{st}")
    ml = c.ctl("member", "list").stdout
    if "DP STATE" not in ml or "mismatch: dataplane runs --partitions 32" not in ml:
        raise AssertionError(f"member list table:\n{ml}")
    ps = c.ctl("partitions", "show").stdout
    if "n4: 0 partitions" not in ps or "fenced (moving): 0" not in ps:
        raise AssertionError(f"partitions show:\n{ps}")
    c.kill_dp("n4")
    c.kill_cp("n4")
    c.ctl("member", "remove", "n4")
    wait("endpoint health --cluster to pass once n4 is gone",
         lambda: c.ctl("endpoint", "health", "--cluster", check=False).returncode == 0)
    for args in (["member", "list"], ["partitions", "show"], ["endpoint", "health"]):
        # The two calls are moments apart and the cluster may change between them (a
        # loaded machine makes dataplanes flap): a few tries, the same answer once.
        for attempt in range(5):
            before = c.ctl(*args, glob=["-w", "json", "--consistency", "s"], check=False)
            after = c.ctl(*(args + ["-w", "json", "--consistency", "s"]), check=False)
            same = before.returncode == after.returncode and \
                json.loads(before.stdout or "null", object_hook=strip_took) == \
                json.loads(after.stdout or "null", object_hook=strip_took)
            if same:
                break
            time.sleep(0.5)
        if not same:
            raise AssertionError(f"{args}: flags before and after differ:\n{before.stdout}\n"
                                 f"{after.stdout}")
    # Auto rebalance off: a failed node's partitions still move, but the node gets none
    # back when it recovers until 'partitions rebalance' asks for it.
    c.names.remove("n4")
    c.ctl("config", "set", "rebalance.auto", "off")
    c.kill_dp("n3")
    settled_map(c, ids, ["n1", "n2"])
    c.start_dp("n3")
    wait("n3's dataplane to run again", lambda: c.serving("n3") in ("serving", "no lease"))
    def n3_up():
        try:
            j = c.ctl_json("member", "list")
        except (AssertionError, ValueError):
            return None
        return any(m["name"] == "n3" and m.get("dp_state") == "up" for m in j["members"])
    wait("n3 up again after its hold-down", n3_up)
    time.sleep(1.0)
    o = owners(c, ids)
    if any(n == "n3" for n, _ in o[1]):
        raise AssertionError("n3 got partitions back with rebalance.auto off")
    rb = c.ctl("partitions", "rebalance").stdout.strip()
    try:
        settled_map(c, ids, ["n1", "n2", "n3"])
    except AssertionError as e:
        raise AssertionError(f"{e}\nrebalance said: {rb}\n"
                             f"{c.ctl('member', 'list', check=False).stdout}") from None
    c.ctl("config", "del", "rebalance.auto")
    log("rebalance.auto off: failover still moved n3's partitions; it got none back "
        "until 'partitions rebalance'")
    # check perf reports throughput and percentiles and judges them; its verdict depends
    # on the machine (a loaded one sees elections and errors), so only the report and the
    # agreement of verdict and exit status are checked here.
    perf = c.ctl("check", "perf", check=False)
    verdict = perf.stdout.strip().splitlines()[-1] if perf.stdout.strip() else ""
    if "throughput:" not in perf.stdout or "p99" not in perf.stdout or \
            (verdict, perf.returncode) not in (("PASS", 0), ("FAIL", 1)):
        raise AssertionError(f"check perf: exit {perf.returncode}\n{perf.stdout}")
    log("shardctl: health fails on a mismatched dataplane and passes without it; status, "
        "member list, partitions show show the dataplane states; flags before/after the "
        "command agree; check perf: " + " ".join(perf.stdout.split("\n")[1:3]))


def strip_took(o):
    o.pop("took_ms", None)
    return o


SCENARIOS = [("failover", scenario_failover), ("membership", scenario_membership)]


def main():
    want = os.environ.get("SP_FO_SCENARIO", "")
    t0 = time.time()
    failed = 0
    for name, fn in SCENARIOS:
        if want and want not in name:
            continue
        print(f"scenario: {name}", flush=True)
        c = Cluster()
        try:
            c.net_up()
            fn(c)
            print(f"  ok ({time.time() - t0:.1f} s)", flush=True)
        except Exception as e:  # one report per failure, with the logs
            failed += 1
            print(f"  FAILED: {e}\n{c.logs()}", flush=True)
        finally:
            c.stop_processes()
            reports = c.sanitizer_reports()
            if reports:
                failed += 1
                print(f"  FAILED: sanitizer reports:\n{reports}", flush=True)
            c.stop()
    print(f"{'FAILED' if failed else 'passed'} in {time.time() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
