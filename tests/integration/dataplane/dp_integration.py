#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of shardplane-dp: real processes on net_tap and on af_packet over a
veth pair in a network namespace, driven through the C client library (dp_driver), read
through DPDK telemetry, stopped with SIGTERM.

    dp_integration.py SCENARIO --dp PATH --driver PATH [--client PATH]

Scenarios: tap (1 worker), tap2 (2 workers: ring hand-off, bad input), afpacket (veth in
a netns), startup (flag and environment checks), region (routing from the shared region,
epoch switch under load). SP_NO_HUGE=1 forces --no-huge. Every
process, interface and namespace created here is removed on exit, by pid or by name.

Against a build with -Db_sanitize=address,undefined, any AddressSanitizer, LeakSanitizer or
UBSan report in the output of a process started here fails the test, also where the
process is expected to fail (the start-up checks); UBSan is told to stop at its first
report unless UBSAN_OPTIONS already says otherwise.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

READY_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 20
DRIVER_TIMEOUT_S = 90
PING_TRIES_MAX = 20
COUNT_WAIT_S = 10
FIXED_MAC = "02:53:50:00:00:01"
TELEMETRY_RECV_MAX = 1 << 20
BASE_PORT = 9400
MEMORY_MB = 16
NO_HUGE_MB = 512
TELEMETRY_STOP_ROUNDS = 4
TELEMETRY_CLIENTS = 3

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD

# What a sanitizer prints: ASan and LSan open with "==PID==ERROR: ...Sanitizer", every
# sanitizer ends with "SUMMARY: ...Sanitizer", UBSan reports "file:line:col: runtime error:".
SANITIZER_REPORT = re.compile(r"^==\d+==ERROR: \w*Sanitizer|^SUMMARY: \w*Sanitizer|"
                              r": runtime error: ", re.M)
SANITIZER_LINES_MAX = 60
# Defaults for sanitized children; an option already in the environment wins.
SANITIZER_DEFAULTS = {
    "ASAN_OPTIONS": ("detect_leaks=1", "print_summary=1"),
    "UBSAN_OPTIONS": ("halt_on_error=1", "print_stacktrace=1", "print_summary=1"),
}


def sanitizer_environment():
    """Adds SANITIZER_DEFAULTS to os.environ (inherited by every child) without overriding
    an option the caller set."""
    for var, opts in SANITIZER_DEFAULTS.items():
        have = [o for o in os.environ.get(var, "").split(":") if o]
        names = {o.split("=")[0] for o in have}
        have += [o for o in opts if o.split("=")[0] not in names]
        os.environ[var] = ":".join(have)


sanitizer_environment()


def log(msg):
    print("dp_integration: " + msg, flush=True)


def fail(msg):
    raise AssertionError(msg)


def check_sanitizer(what, text):
    """Fails when text holds a sanitizer report, quoting it from its first line."""
    m = SANITIZER_REPORT.search(text or "")
    if m is None:
        return
    start = text.rfind("\n", 0, m.start()) + 1
    lines = text[start:].splitlines()[:SANITIZER_LINES_MAX]
    fail("%s: sanitizer report:\n%s" % (what, "\n".join(lines)))


def run(cmd, check=True, timeout=30, **kw):
    """Runs a short command; returns its CompletedProcess. A sanitizer report in its
    output fails the test whatever the exit status."""
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout, **kw)
    check_sanitizer(" ".join(cmd), res.stdout)
    if check and res.returncode != 0:
        fail("%s: exit %d\n%s" % (" ".join(cmd), res.returncode, res.stdout))
    return res


def hugepages_usable():
    """True when hugepages are free and mounted, and SP_NO_HUGE is not set."""
    if os.environ.get("SP_NO_HUGE") == "1":
        return False
    return hugepages_present()


def hugepages_present():
    """True when hugepages are free and mounted on this machine."""
    try:
        with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
            free = int(f.read())
        with open("/proc/mounts") as f:
            mounted = " hugetlbfs " in f.read()
    except OSError:
        return False
    return free > 0 and mounted


def hugepage_dirs():
    dirs = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "hugetlbfs":
                dirs.append(parts[1])
    return dirs


def hugepage_files(prefix):
    files = []
    for d in hugepage_dirs():
        files += glob.glob(os.path.join(d, prefix + "*"))
    return files


def remove_runtime_dir(prefix):
    """Removes the EAL runtime directory of one file prefix this test chose (config,
    fbarrays, sockets; about 3 MB), which DPDK leaves behind at exit. Only once every
    process with that prefix has ended."""
    shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)


# ---- frames ---------------------------------------------------------------------------


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ipv4(src, dst, proto, payload, bad_csum=False, frag=0, ttl=64, ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto,
                      0, socket.inet_aton(src), socket.inet_aton(dst))
    c = csum(hdr)
    if bad_csum:
        c ^= 0x5A5A
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def udp(src, dst, sport, dport, payload, bad_csum=False):
    length = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    if bad_csum:
        c ^= 0x1234
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def bp_request(opcode, key, value=b"", count=None, magic=0x5053, version=2, flags=0,
               request_id=7, dgram_id=99):
    rec = struct.pack("<BBHIIIIIQ", opcode, 0, len(key), request_id, len(value), 0, 0, 0, 0)
    hdr = struct.pack("<HBBHHQ", magic, version, flags, 1 if count is None else count, 0,
                      dgram_id)
    return hdr + rec + key + value


def bp_reply_status(data):
    """Status of the first reply record of a reply datagram."""
    if len(data) < 16 + 24:
        fail("short reply datagram of %d bytes" % len(data))
    return data[16 + 4]


# ---- the node under test ----------------------------------------------------------------


class Node:
    """One shardplane-dp process with its own file prefix."""

    def __init__(self, dp, name, vdev, workers, extra_eal=(), extra=(), busy_poll=False):
        self.dp = dp
        self.prefix = "sptest%d%s" % (os.getpid(), name)
        self.workers = workers
        self.logf = tempfile.NamedTemporaryFile(prefix="dp-%s-" % name, suffix=".log",
                                                delete=False, mode="w+")
        # Lcores: one main and one per worker; they share the 2 cores (no busy-poll).
        cpus = os.cpu_count() or 1
        lcores = ",".join("%d@%d" % (i, i % cpus) for i in range(workers + 1))
        self.cmd = [dp, "--no-pci", "--file-prefix", self.prefix, "--lcores", lcores,
                    "--vdev", vdev]
        if hugepages_usable():
            self.huge = True
        else:
            self.huge = False
            self.cmd += ["--no-huge", "-m", str(NO_HUGE_MB)]
        self.cmd += list(extra_eal)
        self.cmd += ["--", "--ip", "10.77.%d.1/24" % (os.getpid() % 200), "--port",
                     str(BASE_PORT), "--memory-mb", str(MEMORY_MB), "--partitions", "64",
                     "--workers", str(workers)] + list(extra)
        if busy_poll:
            self.cmd.append("--busy-poll")
        self.ip = "10.77.%d.1" % (os.getpid() % 200)
        self.peer_ip = "10.77.%d.2" % (os.getpid() % 200)
        self.proc = None

    def start(self):
        log("start: " + " ".join(self.cmd))
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                check_sanitizer("shardplane-dp start-up", self.output())
                fail("shardplane-dp exited %d during start-up:\n%s" %
                     (self.proc.returncode, self.output()))
            if "ready:" in self.output():
                return
            time.sleep(0.1)
        fail("shardplane-dp not ready in %d s:\n%s" % (READY_TIMEOUT_S, self.output()))

    def output(self):
        with open(self.logf.name) as f:
            return f.read()

    def telemetry_reply(self, cmd):
        """Sends one telemetry command; returns the decoded JSON reply as it is."""
        path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % self.prefix
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        try:
            s.connect(path)
            s.recv(TELEMETRY_RECV_MAX)  # the greeting
            s.send(cmd.encode())
            return json.loads(s.recv(TELEMETRY_RECV_MAX).decode())
        finally:
            s.close()

    def telemetry(self, cmd):
        reply = self.telemetry_reply(cmd)
        key = cmd.split(",")[0]
        if key not in reply or reply[key] is None:
            fail("telemetry %s: %r" % (cmd, reply))
        return reply[key]

    def stats(self):
        return self.telemetry("/shardplane/stats")

    def stop(self):
        """SIGTERM, wait, check the exit report; returns the output."""
        if self.proc is None or self.proc.poll() is not None:
            fail("shardplane-dp is not running:\n" + self.output())
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("shardplane-dp did not stop within %d s of SIGTERM" % EXIT_TIMEOUT_S)
        out = self.output()
        check_sanitizer("shardplane-dp (exit %d)" % code, out)
        if code != 0:
            fail("shardplane-dp exited %d:\n%s" % (code, out))
        if "mbufs: 0 in use of" not in out:
            fail("mbuf leak or no exit report:\n" + out)
        if "stats total:" not in out:
            fail("no final counters:\n" + out)
        left = hugepage_files(self.prefix)
        if left:
            fail("hugepage files left behind: %s" % left)
        log("stopped cleanly; no mbuf in use, no hugepage file left (%s)" %
            ("hugepages" if self.huge else "--no-huge"))
        return out

    def kill(self):
        """Kills the process if it still runs, removes its hugepage files, its runtime
        directory and its log (every failure message quotes the log already)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in hugepage_files(self.prefix):
            os.unlink(f)
        remove_runtime_dir(self.prefix)
        self.logf.close()
        if os.path.exists(self.logf.name):
            os.unlink(self.logf.name)


def ping(ip, netns=None, count=3):
    cmd = ["ping", "-c", str(count), "-i", "0.2", "-W", "1", ip]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    for _ in range(PING_TRIES_MAX):
        if run(cmd, check=False, timeout=15).returncode == 0:
            return
        time.sleep(0.5)
    fail("no ping reply from %s" % ip)


def drive(driver, node, extra=(), netns=None, keys=2000):
    cmd = [driver, "--server", "%s:%d" % (node.ip, BASE_PORT), "--keys", str(keys)]
    cmd += list(extra)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    res = run(cmd, check=False, timeout=DRIVER_TIMEOUT_S)
    print(res.stdout, end="", flush=True)
    if res.returncode != 0:
        fail("dp_driver failed (exit %d); node output:\n%s" % (res.returncode, node.output()))


def setup_tap(node, iface):
    run(["ip", "addr", "add", node.peer_ip + "/24", "dev", iface])
    run(["ip", "link", "set", iface, "up"])


# ---- scenarios ----------------------------------------------------------------------------


def bad_input(node, iface):
    """Sends malformed and hostile frames; checks each is counted by reason and that the
    node keeps serving."""
    cfg = node.telemetry("/shardplane/config")
    dmac = mac_bytes(cfg["mac"])
    with open("/sys/class/net/%s/address" % iface) as f:
        smac = mac_bytes(f.read().strip())
    src, dst = node.peer_ip, node.ip
    good = bp_request(1, b"probe")
    frames = {
        "bad_net_arp_malformed": eth(dmac, smac, ETH_P_ARP, b"\0\1\x08\0"),
        "bad_net_ethertype": eth(dmac, smac, ETH_P_IPV6, b"\0" * 40),
        "bad_net_ip_truncated": eth(dmac, smac, ETH_P_IP, b"\x45\0\0"),
        "bad_net_ip_csum": eth(dmac, smac, ETH_P_IP,
                               ipv4(src, dst, 17, udp(src, dst, 5000, BASE_PORT, good),
                                    bad_csum=True)),
        "bad_net_udp_csum": eth(dmac, smac, ETH_P_IP,
                                ipv4(src, dst, 17, udp(src, dst, 5000, BASE_PORT, good,
                                                       bad_csum=True))),
        "bad_net_ip_proto": eth(dmac, smac, ETH_P_IP, ipv4(src, dst, 6, b"\0" * 20)),
        "bad_ip_fragment": eth(dmac, smac, ETH_P_IP,
                               ipv4(src, dst, 17, udp(src, dst, 5000, BASE_PORT, good),
                                    frag=0x2000)),
        "bad_udp_no_service": eth(dmac, smac, ETH_P_IP,
                                  ipv4(src, dst, 17, udp(src, dst, 5000, 7, good))),
        "bad_bp_bad_magic": eth(dmac, smac, ETH_P_IP,
                                ipv4(src, dst, 17,
                                     udp(src, dst, 5000, BASE_PORT,
                                         bp_request(1, b"k", magic=0x1234)))),
        "bad_bp_short_header": eth(dmac, smac, ETH_P_IP,
                                   ipv4(src, dst, 17, udp(src, dst, 5000, BASE_PORT, b"SP\1"))),
        "bad_bp_bad_version": eth(dmac, smac, ETH_P_IP,
                                  ipv4(src, dst, 17,
                                       udp(src, dst, 5000, BASE_PORT,
                                           bp_request(1, b"k", version=9)))),
        "bad_bp_count_over": eth(dmac, smac, ETH_P_IP,
                                 ipv4(src, dst, 17,
                                      udp(src, dst, 5000, BASE_PORT,
                                          bp_request(1, b"k", count=1000)))),
        "bad_bp_truncated_record": eth(dmac, smac, ETH_P_IP,
                                   ipv4(src, dst, 17,
                                        udp(src, dst, 5000, BASE_PORT,
                                            bp_request(1, b"k", count=2)))),
        "bad_bp_bad_flags": eth(dmac, smac, ETH_P_IP,
                                ipv4(src, dst, 17,
                                     udp(src, dst, 5000, BASE_PORT,
                                         bp_request(1, b"k", flags=1)))),
    }
    before = node.stats()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    try:
        for name, frame in frames.items():
            for _ in range(3):
                s.send(frame)
    finally:
        s.close()
    # Oversized: a 3000-byte datagram the kernel fragments (over the protocol's 1472 bytes).
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(bp_request(2, b"big", b"v" * 2900), (dst, BASE_PORT))
    # A request with a key over the limit is answered TOO_BIG, not dropped.
    u.settimeout(2)
    u.sendto(bp_request(1, b"K" * 300), (dst, BASE_PORT))
    status = None
    deadline = time.monotonic() + 5
    while status is None and time.monotonic() < deadline:
        try:
            data, _ = u.recvfrom(2048)
            status = bp_reply_status(data)
        except socket.timeout:
            u.sendto(bp_request(1, b"K" * 300), (dst, BASE_PORT))
    u.close()
    if status != 4:
        fail("a 300-byte key got status %r, expected TOO_BIG (4)" % status)
    # The node counts asynchronously: poll until every reason moved, bounded in time.
    deadline = time.monotonic() + COUNT_WAIT_S
    while True:
        after = node.stats()
        missing = [n for n in frames if after.get(n, 0) <= before.get(n, 0)]
        if after["bad_ip_fragment"] - before["bad_ip_fragment"] < 4:
            missing.append("bad_ip_fragment (oversized datagram)")
        if after["bad_bp_key_too_long"] <= before["bad_bp_key_too_long"]:
            missing.append("bad_bp_key_too_long")
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if missing:
        fail("not counted: %s\nbefore: %s\nafter: %s" %
             (missing, json.dumps(before), json.dumps(after)))
    if after["bad_pkts"] - before["bad_pkts"] < 3 * len(frames):
        fail("bad_pkts grew by %d for %d bad frames" %
             (after["bad_pkts"] - before["bad_pkts"], 3 * len(frames)))
    log("bad input: %d kinds of malformed frame counted by reason, oversized and over-long "
        "handled" % len(frames))
    bad_telemetry(node)


def bad_telemetry(node):
    """Telemetry parameters that name no worker are refused (a null reply), and the node
    keeps answering."""
    bad = ["", "abc", "-1", "1x", str(node.workers), "99999999999999999999999", "0,0"]
    for param in bad:
        cmd = "/shardplane/worker," + param if param else "/shardplane/worker"
        reply = node.telemetry_reply(cmd)
        if reply.get("/shardplane/worker", "missing") is not None:
            fail("telemetry %r: expected a null reply, got %r" % (cmd, reply))
    if node.telemetry("/shardplane/worker,%d" % (node.workers - 1))["worker"] != node.workers - 1:
        fail("telemetry /shardplane/worker,%d after bad parameters" % (node.workers - 1))
    log("telemetry: %d bad worker parameters refused" % len(bad))


def scenario_tap(args, workers):
    iface = "sptap%d" % (os.getpid() % 100000)
    # One worker also checks --mac and the periodic stats line.
    extra = ["--mac", FIXED_MAC, "--stats-interval", "1"] if workers == 1 else []
    node = Node(args.dp, "tap%d" % workers, "net_tap0,iface=%s" % iface, workers, extra=extra)
    try:
        node.start()
        if workers == 1:
            mac = node.telemetry("/shardplane/config")["mac"]
            if mac.lower() != FIXED_MAC:
                fail("--mac %s: the node uses %s" % (FIXED_MAC, mac))
        setup_tap(node, iface)
        ping(node.ip)
        drive(args.driver, node)
        st = node.stats()
        if st["requests"] == 0 or st["icmp_replies"] == 0 or st["arp_replies"] == 0:
            fail("counters did not move: %s" % st)
        if workers > 1:
            drive(args.driver, node, extra=["--no-route", "--quick"])
            st = node.stats()
            if st["handoff_out"] == 0 or st["handoff_in_mbufs"] == 0:
                fail("no ring hand-off with %d workers: %s" % (workers, st))
            # The driver's two-request datagrams: a lone SET for another worker goes
            # with the reply (docs/services.md), and every answer was checked.
            if st["handoff_folds"] == 0:
                fail("no write travelled with a reply with %d workers: %s" % (workers, st))
            per = node.telemetry("/shardplane/workers")
            if min(per["requests"]) == 0:
                fail("a worker executed nothing: %s" % per["requests"])
            log("hand-off: %d requests went over the rings; per worker requests %s" %
                (st["handoff_out"], per["requests"]))
            bad_input(node, iface)
            drive(args.driver, node, extra=["--quick"], keys=500)
        if args.client:
            res = run([args.client, "--server", "%s:%d" % (node.ip, BASE_PORT), "bench",
                       "--duration-s", "2", "--requests", "200000", "--keys", "1000"],
                      check=False, timeout=30)
            print(res.stdout, end="")
            if res.returncode != 0:
                fail("client bench failed:\n%s" % res.stdout)
        out = node.stop()
        if workers == 1 and "stats rx=" not in out:
            fail("--stats-interval 1 printed no periodic line:\n" + out)
        print("\n".join(l for l in out.splitlines() if l.startswith(("stats total", "mbufs"))))
    finally:
        node.kill()


def scenario_afpacket(args):
    tag = os.getpid() % 100000
    ns, host_if, ns_if = "spns%d" % tag, "spv%da" % tag, "spv%db" % tag
    workers = 2
    node = Node(args.dp, "afp", "net_af_packet0,iface=%s,qpairs=%d" % (host_if, workers),
                workers)
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if])
        run(["ip", "link", "set", ns_if, "netns", ns])
        run(["ip", "link", "set", host_if, "up"])
        run(["ip", "netns", "exec", ns, "ip", "addr", "add", node.peer_ip + "/24", "dev",
             ns_if])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        node.start()
        ping(node.ip, netns=ns)
        # veth keeps tx checksum offload on: the node must accept partial checksums.
        drive(args.driver, node, netns=ns)
        drive(args.driver, node, extra=["--no-route", "--quick"], netns=ns, keys=500)
        st = node.stats()
        if st["requests"] == 0:
            fail("no request served over af_packet: %s" % st)
        log("af_packet: %d requests, %d handed off, %d bad" %
            (st["requests"], st["handoff_out"], st["bad_pkts"]))
        node.stop()
    finally:
        node.kill()
        run(["ip", "link", "del", host_if], check=False)
        run(["ip", "netns", "del", ns], check=False)


def wait_epoch(node, epoch):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if node.telemetry("/shardplane/config")["epoch"] == epoch:
            return
        time.sleep(0.1)
    fail("epoch %d not installed:\n%s" % (epoch, node.output()))


def expect_refused(client, node, words):
    """A GET and a SET through the client are refused with an error containing words."""
    for op in (["get", "k1"], ["set", "k1", "v"]):
        res = run([client, "--server", "%s:%d" % (node.ip, BASE_PORT)] + op, check=False,
                  timeout=30)
        text = res.stdout + (res.stderr or "")
        if res.returncode == 0 or words not in text:
            fail("%s: expected a refusal saying '%s', got exit %d:\n%s\n%s" %
                 (" ".join(op), words, res.returncode, text, node.output()))


def wait_serving(tool, path, serving):
    """Waits until the dataplane's heartbeat in the region says serving=<serving>."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    shown = ""
    while time.monotonic() < deadline:
        shown = run([tool, "show", path]).stdout
        if "serving=%s " % serving in shown:
            return
        time.sleep(0.05)
    fail("dataplane never reported serving=%s:\n%s" % (serving, shown))


def scenario_region(args):
    """Routing from the shared region: the node installs the published map, and a new
    epoch that moves every partition to worker 1 is switched to while a driver runs, with
    no request lost or answered wrongly."""
    if not args.region_tool:
        fail("--region-tool is needed")
    iface = "sprg%d" % (os.getpid() % 100000)
    path = "/dev/shm/sptest%d.region" % os.getpid()
    tool = args.region_tool
    node = None
    try:
        run([tool, "create", path, "--partitions-max", "64"])
        node = Node(args.dp, "rg", "net_tap0,iface=%s" % iface, 2,
                    extra=["--state-region", path])
        node.start()
        setup_tap(node, iface)
        ping(node.ip)
        # No map yet: every key is answered NOT_READY (no epoch-0 fallback with a region).
        if args.client:
            expect_refused(args.client, node, "no cluster map yet")
        run([tool, "set-map", path, "--self", "1", "--partitions", "64", "--workers", "2",
             "--epoch", "5"])
        wait_epoch(node, 5)
        # A map but no lease: NOT_SERVING.
        if args.client:
            expect_refused(args.client, node, "not serving")
        run([tool, "lease", path, "--forever"])
        wait_serving(tool, path, "serving")
        drive(args.driver, node, keys=1000)
        before = node.telemetry("/shardplane/workers")["requests"]
        # Move every partition to worker 1 while a driver is running.
        cmd = [args.driver, "--server", "%s:%d" % (node.ip, BASE_PORT), "--keys", "20000"]
        bg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)
        assign = []
        for p in range(64):
            assign += ["--assign", "%d=1:1" % p]
        run([tool, "set-map", path, "--epoch", "6"] + assign)
        wait_epoch(node, 6)
        out, _ = bg.communicate(timeout=DRIVER_TIMEOUT_S)
        print(out, end="")
        check_sanitizer("driver across the epoch switch", out)
        if bg.returncode != 0:
            fail("driver across the epoch switch failed:\n%s" % node.output())
        mid = node.telemetry("/shardplane/workers")["requests"]
        w0 = node.telemetry("/shardplane/worker,0")
        drive(args.driver, node, keys=1000)
        after = node.telemetry("/shardplane/workers")["requests"]
        w0_after = node.telemetry("/shardplane/worker,0")
        # Worker 0 may still answer ROUTE requests (they need no partition), nothing else.
        keyed = (w0_after["requests"] - w0_after["op_route"]) - (w0["requests"] - w0["op_route"])
        if keyed != 0:
            fail("worker 0 executed %d key requests after its partitions moved: %s -> %s" %
                 (keyed, mid, after))
        if after[1] <= mid[1]:
            fail("worker 1 executed nothing after the switch: %s -> %s" % (mid, after))
        shown = run([tool, "show", path]).stdout
        if "running" not in shown:
            fail("no running heartbeat in the region:\n" + shown)
        log("region: epoch 5 installed, switched to 6 under load; requests per worker %s "
            "-> %s -> %s" % (before, mid, after))
        # The lease is revoked, then the node removed: every key NOT_SERVING; a lease
        # again serves again, but never after removal.
        if args.client:
            run([tool, "lease", path, "--revoke"])
            wait_serving(tool, path, "no lease")
            expect_refused(args.client, node, "not serving")
            run([tool, "lease", path, "--ms", "60000"])
            wait_serving(tool, path, "serving")
            drive(args.driver, node, extra=["--quick"], keys=200)
            run([tool, "lease", path, "--removed"])
            wait_serving(tool, path, "removed")
            expect_refused(args.client, node, "not serving")
            log("region: not ready before the map, not serving without a lease or once "
                "removed, serving with one")
        node.stop()
    finally:
        if node is not None:
            node.kill()
        if os.path.exists(path):
            os.unlink(path)


def scenario_telemetry_stop(args):
    """Telemetry commands keep arriving while the node shuts down (they read the runtime
    that teardown frees, under a lock that teardown takes): every round must end with
    exit 0, no mbuf in use, no hugepage file and no sanitizer report, i.e. no crash, hang
    or deadlock. It cannot prove the lock itself: the runtime lives in DPDK memory, which
    ASan does not watch (with the lock removed it still passed). net_null feeds the two
    workers junk frames all along."""
    cmds = ["/shardplane/workers", "/shardplane/stats", "/shardplane/config",
            "/shardplane/worker,1"]
    answered_total = 0
    for r in range(TELEMETRY_STOP_ROUNDS):
        node = Node(args.dp, "tstop%d" % r, "net_null0", 2)
        done = threading.Event()
        answered = [0] * TELEMETRY_CLIENTS
        threads = []

        def ask(slot):
            i = slot
            while not done.is_set():
                try:
                    node.telemetry_reply(cmds[i % len(cmds)])
                    answered[slot] += 1
                except (OSError, ValueError):
                    time.sleep(0.001)  # not up yet, or gone with the process
                i += 1

        try:
            node.start()
            threads = [threading.Thread(target=ask, args=(c,)) for c in range(TELEMETRY_CLIENTS)]
            for t in threads:
                t.start()
            # Stop at a different point of the clients' traffic each round.
            time.sleep(0.2 + 0.15 * r)
            node.stop()
        finally:
            done.set()
            for t in threads:
                t.join()
            node.kill()
        if sum(answered) == 0:
            fail("round %d: no telemetry command was answered before the stop" % r)
        answered_total += sum(answered)
    log("telemetry during shutdown: %d rounds, %d commands answered, every stop clean" %
        (TELEMETRY_STOP_ROUNDS, answered_total))


def scenario_startup(args):
    """Flags and environment are checked with clear messages, before anything runs."""
    dp = args.dp
    res = run([dp, "--", "--help"], check=False)
    if res.returncode != 0 or "--memory-mb" not in res.stdout or "--ip" not in res.stdout:
        fail("--help: exit %d\n%s" % (res.returncode, res.stdout))
    cases = [
        ([], "--ip"),
        (["--", "--port", "9000"], "--ip"),
        (["--", "--ip", "10.0.0.1/24", "--partitions", "3"], "power of two"),
        (["--", "--ip", "10.0.0.1/33"], "--ip"),
        (["--", "--ip", "10.0.0.1/24", "--workers", "0"], "--workers"),
        (["--", "--ip", "10.0.0.1/24", "--bogus"], "--bogus"),
    ]
    for argv, needle in cases:
        res = run([dp] + argv, check=False)
        if res.returncode != 2 or needle not in res.stdout:
            fail("%s: exit %d, expected 2 and '%s':\n%s" % (argv, res.returncode, needle,
                                                            res.stdout))
    prefix = "sptest%dst" % os.getpid()
    base = [dp, "--no-pci", "--no-huge", "-m", "256", "--file-prefix", prefix]
    checks = [
        (base + ["-l", "0", "--", "--ip", "10.0.0.1/24"], "lcores"),
        (base + ["-l", "0-1", "--", "--ip", "10.0.0.1/24"], "ports: none found"),
        (base + ["-l", "0-1", "--vdev", "net_null0", "--", "--ip", "10.0.0.1/24",
                 "--memory-mb", "1", "--partitions", "1024"], "--memory-mb"),
        (base + ["-l", "0-1", "--vdev", "net_null0", "--", "--ip", "10.0.0.1/24",
                 "--memory-mb", "1024"], "pass -m"),
        (base + ["--lcores", "0@0,1@1,2@1", "--vdev", "net_af_packet0,iface=lo,qpairs=1", "--", "--ip",
                 "10.0.0.1/24", "--workers", "2"], "queues available"),
        (base + ["-l", "0-1", "--no-such-eal-option", "--", "--ip", "10.0.0.1/24"],
         "EAL start-up failed"),
    ]
    # run() waits for each process (killing it on a timeout): none is left at the end.
    try:
        for argv, needle in checks:
            res = run(argv, check=False)
            if res.returncode == 0 or needle not in res.stdout:
                fail("%s: exit %d, expected failure naming '%s':\n%s" %
                     (" ".join(argv), res.returncode, needle, res.stdout))
        # This check is about the machine, not the run's choice: SP_NO_HUGE=1 does not
        # remove the hugepages a start without --no-huge would find.
        if not hugepages_present():
            res = run([dp, "--no-pci", "--file-prefix", prefix, "-l", "0-1", "--", "--ip",
                       "10.0.0.1/24"], check=False)
            if res.returncode == 0 or "hugepages:" not in res.stdout or \
                    "--no-huge" not in res.stdout:
                fail("no hugepages: expected a hugepages message:\n" + res.stdout)
    finally:
        remove_runtime_dir(prefix)
    log("start-up checks: %d flag errors and %d environment errors reported clearly" %
        (len(cases), len(checks)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["tap", "tap2", "afpacket", "startup", "region",
                                         "telemetry_stop"])
    ap.add_argument("--dp", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--client")
    ap.add_argument("--region-tool")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("SKIP: needs root (tap devices, namespaces, raw sockets)")
        return 77
    started = time.monotonic()
    if args.scenario == "tap":
        scenario_tap(args, 1)
    elif args.scenario == "tap2":
        scenario_tap(args, 2)
    elif args.scenario == "afpacket":
        scenario_afpacket(args)
    elif args.scenario == "region":
        scenario_region(args)
    elif args.scenario == "telemetry_stop":
        scenario_telemetry_stop(args)
    else:
        scenario_startup(args)
    log("PASS %s in %.1f s" % (args.scenario, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        log("FAIL: %s" % e)
        sys.exit(1)
