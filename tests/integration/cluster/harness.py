# SPDX-License-Identifier: BSD-3-Clause
"""A Shardplane cluster on one machine, for integration tests: N nodes, each one
shardplane-cp and one shardplane-dp, the dataplanes in their own network namespaces.

Layout (every name carries the test's pid, so parallel tests never collide):

    hub namespace  sph<pid>:  lo (127.0.0.1: every control plane, shardctl, clients)
                              br0 10.99.0.254/24, bridging veth h0 .. h<N-1>
    node namespace spn<pid>x<i>:  veth d<i> (no kernel address), shardplane-dp on it over
                              af_packet with 10.99.0.<i+1>, MAC 02:53:50:00:00:<i+1>

Control plane i publishes the cluster state into /dev/shm/sp<pid>n<i>.region, which
dataplane i reads (--state-region). Each dataplane has its own EAL --file-prefix
sp<pid>n<i>, -l 0-1 (main + one worker; more workers share the two cores), --no-huge when
hugepages are not usable (SP_NO_HUGE=1 or none free).

API (import with sys.path.insert(0, <this directory>); import harness):

    bins = harness.Binaries.from_build(build_dir)      # or Binaries(cp=..., ctl=..., ...)
    with harness.Cluster(bins, nodes=3, partitions=64, workers=1, cp_args=(),
                         dp_args=()) as c:
        c.start()              # network, control planes, regions, dataplanes; then
                               # wait_map(): every dataplane serves one epoch, for
                               # STABLE_S, whose map gives every node partitions
        c.node(i)              # .ip .port .mc_port .ns .name .region .prefix .mac
        c.hub(cmd)             # subprocess.run in the hub namespace (text, capture)
        c.client(args)         # shardplane-client in the hub; args after --server
        c.hub_socket(family, type)               # a socket that lives in the hub namespace
        c.mc(i, b"get k\r\n")  # one memcached UDP request to node i; the joined reply
        c.ctl(args)            # shardctl against every running control plane
        c.dp_telemetry(i, "/shardplane/stats")   # DPDK telemetry of dataplane i
        c.kill_dp(i) / c.start_dp(i)             # SIGKILL (default) and start again
        c.kill_cp(i) / c.start_cp(i)
        c.pause_dp(i) / c.resume_dp(i)           # SIGSTOP / SIGCONT (a hung dataplane)
        c.stop_dp(i)           # SIGTERM; checks exit 0, "mbufs: 0 in use", no sanitizer
                               # report, no hugepage file left; returns its output
        c.stop()               # stop_dp for every running dataplane, SIGTERM the
                               # control planes, then cleanup()
    cleanup() (also on exit, on SIGTERM/SIGINT and when the with-block raises) kills
    what is still running, by pid, and removes the namespaces, regions, hugepage files,
    EAL runtime directories and the temporary directory. Failures raise AssertionError
    with the relevant log tail.

Every wait is bounded (WAIT_S). Nothing here sends outside the namespaces it creates.
"""

import atexit
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
import dp_integration as dpi  # noqa: E402  (sanitizer checks, hugepages, telemetry)

WAIT_S = 30          # any single wait
STABLE_S = 1.0       # wait_map: the epoch must not change for this long
STOP_WAIT_S = 20     # a process to exit after SIGTERM
SUBNET = "10.99.0"   # inside the hub namespace only
HUB_IP = SUBNET + ".254"
BASE_PORT = 9000
MC_PORT = 11211
MEMORY_MB = 16
EAL_MB_HUGE = 128
EAL_MB_NO_HUGE = 256
PORT_TRIES_MAX = 1000
TELEMETRY_RECV_MAX = 1 << 20

_LIVE = []  # clusters not cleaned up yet, for atexit and signals
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def log(msg):
    print("cluster: " + msg, flush=True)


class Binaries:
    """Paths of the programs a cluster runs."""

    def __init__(self, cp, ctl, dp, client, region):
        self.cp, self.ctl, self.dp, self.client, self.region = cp, ctl, dp, client, region

    @classmethod
    def from_build(cls, build):
        b = os.path.abspath(build)
        return cls(cp=os.path.join(b, "control/cp/shardplane-cp"),
                   ctl=os.path.join(b, "control/shardctl/shardctl"),
                   dp=os.path.join(b, "dataplane/runtime/shardplane-dp"),
                   client=os.path.join(b, "lib/client/shardplane-client"),
                   region=os.path.join(b, "lib/cluster/shardplane-region"))


class NodeInfo:
    def __init__(self, cluster, i):
        tag = cluster.tag
        self.index = i
        self.name = "n%d" % (i + 1)
        self.ns = "spn%sx%d" % (tag, i)
        self.hub_if = "h%d" % i
        self.dp_if = "d%d" % i
        self.ip = "%s.%d" % (SUBNET, i + 1)
        self.mac = "02:53:50:00:00:%02x" % (i + 1)
        self.port = BASE_PORT
        self.mc_port = MC_PORT
        self.region = "/dev/shm/sp%sn%d.region" % (tag, i)
        self.prefix = "sp%sn%d" % (tag, i)
        self.peer = None    # 127.0.0.1:PORT (hub namespace)
        self.client = None  # 127.0.0.1:PORT
        self.cp = None      # Popen
        self.dp = None      # Popen
        self.cp_log = os.path.join(cluster.dir, self.name + "-cp.log")
        self.dp_log = os.path.join(cluster.dir, self.name + "-dp.log")


def _tail(path, n=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return "(no log)"


class Cluster:
    def __init__(self, bins, nodes=3, partitions=64, workers=1, memcached=True, cp_args=(),
                 dp_args=()):
        self.bins = bins
        self.n = nodes
        self.partitions = partitions
        self.workers = workers
        self.memcached = memcached
        self.cp_args = list(cp_args)  # extra shardplane-cp flags, e.g. --failure-timeout-ms
        self.dp_args = list(dp_args)  # extra shardplane-dp flags (after --)
        self.tag = str(os.getpid())
        self.hub_ns = "sph" + self.tag
        self.dir = tempfile.mkdtemp(prefix="sp-cluster-")
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(self.secret, 0o600)
        self.huge = dpi.hugepages_usable()
        self.nodes = [NodeInfo(self, i) for i in range(nodes)]
        self.made_ns = []
        self.cleaned = False
        self._ports = set()
        _LIVE.append(self)

    # ---- context manager -----------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.cleanup()
        return False

    def node(self, i):
        return self.nodes[i]

    # ---- commands ------------------------------------------------------------------

    def hub(self, cmd, check=False, timeout=60, **kw):
        """Runs cmd in the hub namespace; returns the CompletedProcess (text)."""
        full = ["ip", "netns", "exec", self.hub_ns] + list(cmd)
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, **kw)
        dpi.check_sanitizer(" ".join(cmd), r.stdout + r.stderr)
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode,
                                                       r.stdout, r.stderr))
        return r

    def client(self, args, seeds=None, check=False, timeout=60):
        """shardplane-client in the hub namespace; seeds: node indexes (default: 0)."""
        seeds = [0] if seeds is None else seeds
        srv = ",".join("%s:%d" % (self.nodes[i].ip, self.nodes[i].port) for i in seeds)
        return self.hub([self.bins.client, "--server", srv] + list(args), check=check,
                        timeout=timeout)

    def hub_socket(self, family=socket.AF_INET, kind=socket.SOCK_DGRAM, proto=0):
        """A socket created in the hub namespace (this thread enters it and comes back)."""
        with open("/proc/self/ns/net") as orig, open("/var/run/netns/" + self.hub_ns) as hub:
            if _libc.setns(hub.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into " + self.hub_ns)
            try:
                return socket.socket(family, kind, proto)
            finally:
                if _libc.setns(orig.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")

    def mc(self, i, payload, timeout=5.0, sock=None):
        """Sends one memcached UDP request to node i from the hub; returns the reply's
        data (frame headers removed): every response, each put together by its sequence
        numbers, in arrival order, until a complete response ends the reply (for get-type
        commands: one ending with END or an error line). None when the reply is not
        complete within timeout."""
        own = sock is None
        s = sock or self.hub_socket()
        getlike = payload.split(b" ", 1)[0] in (b"get", b"gets", b"gat", b"gats")
        try:
            rid = random.randrange(1, 65535)
            s.sendto(rid.to_bytes(2, "big") + b"\0\0\0\1\0\0" + payload,
                     (self.nodes[i].ip, self.nodes[i].mc_port))
            text, parts, total = b"", {}, None
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                s.settimeout(left)
                try:
                    data, _ = s.recvfrom(2048)
                except socket.timeout:
                    return None
                if len(data) < 8 or int.from_bytes(data[0:2], "big") != rid:
                    continue
                seq = int.from_bytes(data[2:4], "big")
                if seq == 0:
                    parts, total = {}, int.from_bytes(data[4:6], "big")
                parts[seq] = data[8:]
                if total is None or len(parts) < total:
                    continue
                text += b"".join(parts[k] for k in sorted(parts))
                parts, total = {}, None
                if not getlike or text.endswith(b"END\r\n") or \
                        text.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")):
                    return text
        finally:
            if own:
                s.close()

    def ctl(self, args, check=True, timeout=30):
        eps = ",".join(n.client for n in self.nodes if n.cp is not None)
        return self.hub([self.bins.ctl, "--endpoints", eps, "--secret-file", self.secret] +
                        list(args), check=check, timeout=timeout)

    def _run(self, cmd):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode,
                                                       r.stdout, r.stderr))
        return r

    # ---- network -------------------------------------------------------------------

    def _free_port(self):
        """A port free on the hub's loopback, below the ephemeral range (a restarted
        control plane must be able to listen on it again)."""
        low = max(dpi_ephemeral_low(), 12000)
        rng = random.Random(os.getpid() ^ time.monotonic_ns())
        for _ in range(PORT_TRIES_MAX):
            p = rng.randrange(10000, low)
            if p not in self._ports:
                self._ports.add(p)
                return p
        raise AssertionError("no free port")

    def _net_up(self):
        self._run(["ip", "netns", "add", self.hub_ns])
        self.made_ns.append(self.hub_ns)
        h = ["ip", "-n", self.hub_ns]
        self._run(h + ["link", "set", "lo", "up"])
        self._run(h + ["link", "add", "br0", "type", "bridge"])
        self._run(h + ["addr", "add", HUB_IP + "/24", "dev", "br0"])
        self._run(h + ["link", "set", "br0", "up"])
        for n in self.nodes:
            self._run(["ip", "netns", "add", n.ns])
            self.made_ns.append(n.ns)
            self._run(h + ["link", "add", n.hub_if, "type", "veth", "peer", "name", n.dp_if])
            self._run(h + ["link", "set", n.dp_if, "netns", n.ns])
            self._run(h + ["link", "set", n.hub_if, "master", "br0"])
            self._run(h + ["link", "set", n.hub_if, "up"])
            self._run(["ip", "-n", n.ns, "link", "set", n.dp_if, "up"])
            self._run(["ip", "-n", n.ns, "link", "set", "lo", "up"])
            # Frames the kernel sends towards a dataplane carry full checksums.
            for ns, ifc in ((self.hub_ns, n.hub_if), (n.ns, n.dp_if)):
                subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", ifc, "tx", "off"],
                               capture_output=True, timeout=30)

    # ---- control planes ------------------------------------------------------------

    def start_cp(self, i, state="new"):
        n = self.nodes[i]
        if n.peer is None:
            n.peer = "127.0.0.1:%d" % self._free_port()
            n.client = "127.0.0.1:%d" % self._free_port()
        initial = ",".join("%s=%s" % (m.name, m.peer or "") for m in self.nodes)
        args = ["ip", "netns", "exec", self.hub_ns, self.bins.cp, "--name", n.name,
                "--data-dir", os.path.join(self.dir, n.name), "--listen-peer", n.peer,
                "--listen-client", n.client, "--initial-cluster", initial,
                "--initial-cluster-state", state, "--secret-file", self.secret,
                "--partitions", str(self.partitions), "--state-region", n.region,
                "--dp-ip", n.ip, "--dp-mac", n.mac, "--dp-port", str(n.port),
                "--dp-memcached-port", str(n.mc_port), "--dp-workers", str(self.workers)]
        args += self.cp_args
        logf = open(n.cp_log, "a")
        n.cp = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

    def kill_cp(self, i, sig=signal.SIGKILL):
        n = self.nodes[i]
        if n.cp is None:
            return
        n.cp.send_signal(sig)
        try:
            n.cp.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            n.cp.kill()
            n.cp.wait()
            raise AssertionError("%s: control plane did not exit after %s" % (n.name, sig))
        code = n.cp.returncode
        n.cp = None
        if sig == signal.SIGTERM:
            dpi.check_sanitizer(n.name + " control plane", _tail(n.cp_log, 1 << 20))
            if code != 0:
                raise AssertionError("%s: control plane exit %d:\n%s" % (n.name, code,
                                                                         _tail(n.cp_log)))

    # ---- dataplanes ----------------------------------------------------------------

    def _dp_cmd(self, n):
        cpus = os.cpu_count() or 1
        lcores = ",".join("%d@%d" % (k, k % min(cpus, 2)) for k in range(self.workers + 1))
        vdev = "net_af_packet0,iface=%s,qpairs=%d" % (n.dp_if, self.workers)
        eal = [self.bins.dp, "--no-pci", "--file-prefix", n.prefix, "--lcores", lcores,
               "--vdev", vdev]
        eal += ["-m", str(EAL_MB_HUGE)] if self.huge else ["--no-huge", "-m",
                                                          str(EAL_MB_NO_HUGE)]
        app = ["--ip", n.ip + "/24", "--port", str(n.port), "--partitions",
               str(self.partitions), "--workers", str(self.workers), "--memory-mb",
               str(MEMORY_MB), "--mac", n.mac, "--state-region", n.region]
        if self.memcached:
            app += ["--memcached-port", str(n.mc_port)]
        app += self.dp_args
        return ["ip", "netns", "exec", n.ns] + eal + ["--"] + app

    def start_dp(self, i):
        n = self.nodes[i]
        if not os.path.exists(n.region):
            self._run([self.bins.region, "create", n.region, "--partitions-max",
                       str(max(self.partitions, 64))])
        logf = open(n.dp_log, "w")
        n.dp = subprocess.Popen(self._dp_cmd(n), stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            out = _tail(n.dp_log, 1 << 20)
            if n.dp.poll() is not None:
                dpi.check_sanitizer(n.name + " dataplane start-up", out)
                raise AssertionError("%s: dataplane exited %d during start-up:\n%s" %
                                     (n.name, n.dp.returncode, out[-4000:]))
            if "ready:" in out:
                return
            time.sleep(0.1)
        raise AssertionError("%s: dataplane not ready in %d s:\n%s" %
                             (n.name, WAIT_S, _tail(n.dp_log)))

    def _dp_files_gone(self, n):
        for f in dpi.hugepage_files(n.prefix):
            try:
                os.unlink(f)
            except OSError:
                pass
        dpi.remove_runtime_dir(n.prefix)

    def kill_dp(self, i, sig=signal.SIGKILL):
        """Ends dataplane i without checks (kill -9 by default) and removes its EAL
        files."""
        n = self.nodes[i]
        if n.dp is None:
            return
        if n.dp.poll() is None:
            n.dp.send_signal(sig)
        try:
            n.dp.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            n.dp.kill()
            n.dp.wait()
        n.dp = None
        self._dp_files_gone(n)

    def pause_dp(self, i):
        """SIGSTOP dataplane i: alive but silent (its peers see it hang)."""
        self.nodes[i].dp.send_signal(signal.SIGSTOP)

    def resume_dp(self, i):
        self.nodes[i].dp.send_signal(signal.SIGCONT)

    def stop_dp(self, i):
        """SIGTERM; the dataplane must exit 0 with every mbuf back and no sanitizer
        report. Returns its output."""
        n = self.nodes[i]
        if n.dp is None or n.dp.poll() is not None:
            raise AssertionError("%s: dataplane is not running:\n%s" % (n.name,
                                                                      _tail(n.dp_log)))
        n.dp.send_signal(signal.SIGTERM)
        try:
            code = n.dp.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            n.dp.kill()
            n.dp.wait()
            n.dp = None
            raise AssertionError("%s: dataplane did not stop within %d s" % (n.name,
                                                                           STOP_WAIT_S))
        n.dp = None
        out = _tail(n.dp_log, 1 << 22)
        dpi.check_sanitizer(n.name + " dataplane", out)
        if code != 0:
            raise AssertionError("%s: dataplane exit %d:\n%s" % (n.name, code, out[-4000:]))
        if "mbufs: 0 in use of" not in out:
            raise AssertionError("%s: mbufs in use at exit (or no report):\n%s" %
                                 (n.name, out[-4000:]))
        left = dpi.hugepage_files(n.prefix)
        self._dp_files_gone(n)
        if left:
            raise AssertionError("%s: hugepage files left: %s" % (n.name, left))
        return out

    def dp_telemetry(self, i, cmd):
        """One DPDK telemetry command to dataplane i; the value under the command's key."""
        path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % self.nodes[i].prefix
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        try:
            s.connect(path)
            s.recv(TELEMETRY_RECV_MAX)
            s.send(cmd.encode())
            reply = json.loads(s.recv(TELEMETRY_RECV_MAX).decode())
        finally:
            s.close()
        key = cmd.split(",")[0]
        if reply.get(key) is None:
            raise AssertionError("telemetry %s on %s: %r" % (cmd, self.nodes[i].name, reply))
        return reply[key]

    def serving(self, i):
        """The dataplane's serving mode as its heartbeat in the region says."""
        r = subprocess.run([self.bins.region, "show", self.nodes[i].region],
                           capture_output=True, text=True, timeout=30)
        for word in r.stdout.replace("\n", " ").split(" "):
            if word.startswith("serving="):
                return word.split("=", 1)[1]
        return None

    # ---- the whole cluster -----------------------------------------------------------

    def start(self):
        t0 = time.monotonic()
        self._net_up()
        for i in range(self.n):
            n = self.nodes[i]
            n.peer = "127.0.0.1:%d" % self._free_port()
            n.client = "127.0.0.1:%d" % self._free_port()
        for i in range(self.n):
            self._run([self.bins.region, "create", self.nodes[i].region, "--partitions-max",
                       str(max(self.partitions, 64))])
            self.start_cp(i)
        for i in range(self.n):
            self.start_dp(i)
        epoch = self.wait_map()
        log("%d nodes up in %.1f s (%s), map epoch %d" %
            (self.n, time.monotonic() - t0, "hugepages" if self.huge else "--no-huge", epoch))
        return epoch

    def wait_map(self, nodes=None, min_epoch=1):
        """Waits until every running dataplane (or those listed) serves the same epoch
        >= min_epoch, unchanged for STABLE_S (the control plane settles the map as nodes
        join: several epochs), and a client's ROUTE through the first of them names every
        node of the cluster, each owning partitions. Returns the epoch."""
        idx = [i for i in (nodes if nodes is not None else range(self.n))
               if self.nodes[i].dp is not None]
        deadline = time.monotonic() + WAIT_S
        last = None
        stable_since, stable_epoch = None, None
        while time.monotonic() < deadline:
            try:
                epochs = {self.dp_telemetry(i, "/shardplane/config")["epoch"] for i in idx}
                modes = {self.serving(i) for i in idx}
                last = (epochs, modes)
                ok = len(epochs) == 1 and min(epochs) >= min_epoch and modes == {"serving"}
                if ok:
                    r = self.client(["--timeout-ms", "200", "route"], seeds=[idx[0]])
                    counts = [int(l.split()[-1]) for l in r.stdout.splitlines()
                              if l.startswith("node ")]
                    last = (epochs, modes, r.stdout + r.stderr)
                    ok = (r.returncode == 0 and len(counts) == self.n and
                          min(counts) > 0)
                if not ok:
                    stable_since = None
                else:
                    epoch = min(epochs)
                    if stable_epoch != epoch or stable_since is None:
                        stable_epoch, stable_since = epoch, time.monotonic()
                    elif time.monotonic() - stable_since >= STABLE_S:
                        return epoch
            except (OSError, ValueError, AssertionError) as e:
                last = e
                stable_since = None
            time.sleep(0.1)
        raise AssertionError("map not installed on every dataplane within %d s: %s\n%s" %
                             (WAIT_S, last, "\n".join(_tail(n.dp_log, 1500)
                                                      for n in self.nodes)))

    def stop(self):
        """Stops every dataplane (checked: exit 0, no mbuf in use) and control plane,
        then cleans up. The first problem is raised after everything is cleaned."""
        problems = []
        try:
            for i, n in enumerate(self.nodes):
                if n.dp is not None:
                    try:
                        self.stop_dp(i)
                    except AssertionError as e:
                        problems.append(e)
            for i, n in enumerate(self.nodes):
                if n.cp is not None:
                    try:
                        self.kill_cp(i, signal.SIGTERM)
                    except AssertionError as e:
                        problems.append(e)
        finally:
            self.cleanup()
        if problems:
            raise problems[0]

    def cleanup(self):
        """Kills by pid what still runs and removes everything this cluster made.
        Idempotent; never raises."""
        if self.cleaned:
            return
        self.cleaned = True
        for n in self.nodes:
            for p in (n.dp, n.cp):
                if p is not None and p.poll() is None:
                    try:
                        p.send_signal(signal.SIGCONT)
                        p.kill()
                        p.wait(STOP_WAIT_S)
                    except (OSError, subprocess.TimeoutExpired):
                        pass
            n.dp = n.cp = None
            try:
                self._dp_files_gone(n)
            except OSError:
                pass
            try:
                os.unlink(n.region)
            except OSError:
                pass
        for ns in reversed(self.made_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made_ns = []
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)


def dpi_ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _cleanup_all():
    for c in list(_LIVE):
        c.cleanup()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):
        pass  # not the main thread
