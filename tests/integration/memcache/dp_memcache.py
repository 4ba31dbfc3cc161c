#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The memcached protocol on shardplane-dp itself: net_tap, 2 workers, --memcached-port.

Usage: dp_memcache.py --dp SHARDPLANE_DP --memcaslap MEMCASLAP

Starts shardplane-dp on a tap interface (the node class of the dataplane integration test:
own file prefix, hugepages or --no-huge as SP_NO_HUGE says), then runs the conformance
cases (conformance.py --target, one sentinel per worker) and memcaslap with full
verification against it, then checks mcport's bounds over the wire (a value that fills the
reply array comes back whole, a larger one is refused; a gat forwards at most
DP_MC_TOUCH_FORWARD_MAX touches), and stops it checking that no mbuf leaked and that the
exit report shows hand-offs, owner and multi-key runs and a remote flush.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree from the import below
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
import dp_integration as dpi  # noqa: E402  (the dataplane test's node and tap helpers)
import conformance  # noqa: E402  (key owners under the default routing table)

MC_PORT = 11311
WORKERS = 2
PARTITIONS = 64  # what dp_integration.Node passes
CHECK_TIMEOUT_S = 180
REPLY_WAIT_S = 3.0
# A get of REPLY_DGRAMS_MAX datagrams arrives in one burst: about 128 x 2.3 KiB of socket
# buffer (truesize), more than the kernel's default 208 KiB, so the client asks for more.
CLIENT_RCVBUF_BYTES = 4 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; not every Python names it
REPLY_DGRAMS_MAX = 128      # DP_MC_REPLY_DGRAMS_MAX (mcport.h)
TOUCH_FORWARD_MAX = 32      # DP_MC_TOUCH_FORWARD_MAX (mcport.h)
DGRAM_DATA_MAX = 1392       # reply bytes per datagram after the frame header
CAS_KEYS = 200              # keys whose cas uniques must all differ
APPEND_CHUNK = 1300         # value bytes per append: one request stays in one frame
OOM_GET = b"SERVER_ERROR out of memory writing get response\r\n"


class Client:
    """A memcached UDP client: one request datagram, its whole response back."""

    def __init__(self, host, port):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        # SO_RCVBUFFORCE passes net.core.rmem_max (the test runs as root); SO_RCVBUF is
        # capped by it.
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, CLIENT_RCVBUF_BYTES)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF_BYTES)
        self.sock.settimeout(REPLY_WAIT_S)
        self.rid = 0

    def call(self, payload):
        """Returns the reply datagrams (headers checked) and the joined reply bytes."""
        self.rid = (self.rid + 1) & 0xFFFF
        self.sock.sendto(struct.pack(">HHHH", self.rid, 0, 1, 0) + payload, self.addr)
        dgrams = {}
        total = None
        deadline = time.monotonic() + REPLY_WAIT_S
        while time.monotonic() < deadline and (total is None or len(dgrams) < total):
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            rid, seq, count, _ = struct.unpack(">HHHH", d[:8])
            if rid != self.rid:
                continue
            if len(d) > 1400 or (total is not None and count != total) or seq >= count:
                dpi.fail("bad reply datagram header rid %d seq %d count %d len %d" %
                         (rid, seq, count, len(d)))
            total = count
            dgrams[seq] = d[8:]
        if total is None or len(dgrams) != total:
            dpi.fail("reply to %r: %d of %s datagrams" % (payload[:40], len(dgrams), total))
        return total, b"".join(dgrams[i] for i in range(total))

    def call_get(self, payload):
        """A multi-key get: one response per key; returns the reply bytes up to END."""
        self.rid = (self.rid + 1) & 0xFFFF
        self.sock.sendto(struct.pack(">HHHH", self.rid, 0, 1, 0) + payload, self.addr)
        got = b""
        deadline = time.monotonic() + REPLY_WAIT_S
        while time.monotonic() < deadline and not got.endswith((b"END\r\n", b"\r\n\r\n")):
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            if struct.unpack(">H", d[:2])[0] == self.rid:
                got += d[8:]
        return got


def build_value(cl, key, size):
    """Sets key to `size` bytes of a known pattern with set + appends; returns the value."""
    value = bytes((i * 7 + 3) % 26 + 97 for i in range(size))
    first = value[:APPEND_CHUNK]
    _, r = cl.call(b"set %s 5 0 %d\r\n%s\r\n" % (key, len(first), first))
    if r != b"STORED\r\n":
        dpi.fail("set %s: %r" % (key, r))
    for at in range(APPEND_CHUNK, size, APPEND_CHUNK):
        chunk = value[at:at + APPEND_CHUNK]
        _, r = cl.call(b"append %s 0 0 %d\r\n%s\r\n" % (key, len(chunk), chunk))
        if r != b"STORED\r\n":
            dpi.fail("append to %s at %d: %r" % (key, at, r))
    return value


def check_bounds(host):
    """The reply array bound (a large get splits, a larger one is refused as memcached
    refuses when out of memory) and the bound on forwarded gat touches."""
    cl = Client(host, MC_PORT)
    fits = (REPLY_DGRAMS_MAX - 1) * DGRAM_DATA_MAX - 200
    value = build_value(cl, b"bound_fits", fits)
    n, r = cl.call(b"get bound_fits\r\n")
    want = b"VALUE bound_fits 5 %d\r\n%s\r\nEND\r\n" % (fits, value)
    if r != want or n != (len(want) + DGRAM_DATA_MAX - 1) // DGRAM_DATA_MAX:
        dpi.fail("get of %d bytes: %d datagrams, %d bytes, equal %s" %
                 (fits, n, len(r), r == want))
    print("bound: a %d-byte value comes back in %d datagrams" % (fits, n))
    over = REPLY_DGRAMS_MAX * DGRAM_DATA_MAX + 100
    build_value(cl, b"bound_over", over)
    n, r = cl.call(b"get bound_over\r\n")
    if r != OOM_GET:
        dpi.fail("get of %d bytes over the reply bound: %r" % (over, r[:80]))
    print("bound: a %d-byte value is refused: %r" % (over, r))
    owners = conformance.Owners(WORKERS, PARTITIONS)
    keys = {w: [] for w in range(WORKERS)}
    for i in range(10000):
        k = b"touch_%d" % i
        w = owners.owner(k)
        if len(keys[w]) < TOUCH_FORWARD_MAX + 8:
            keys[w].append(k)
    every = [k for w in range(WORKERS) for k in keys[w]]
    for k in every:
        _, r = cl.call(b"set %s 0 0 1\r\nx\r\n" % k)
        if r != b"STORED\r\n":
            dpi.fail("set %s: %r" % (k, r))
    # Whichever worker receives it, TOUCH_FORWARD_MAX + 8 keys are owned by the other.
    r = cl.call_get(b"gat 1000 " + b" ".join(every) + b"\r\n")
    if r.count(b"VALUE ") != len(every) or not r.endswith(b"END\r\n"):
        dpi.fail("gat of %d keys: %d values" % (len(every), r.count(b"VALUE ")))
    print("bound: gat of %d keys answered, %d owned by each worker" %
          (len(every), TOUCH_FORWARD_MAX + 8))


def check_cas_unique(host):
    """CAS uniques are unique across the whole node, as memcached's are: keys set once
    each, spread over every partition and worker, never show the same unique; an update
    gives a key a unique no other key shows."""
    cl = Client(host, MC_PORT)
    keys = [b"casu_%d" % i for i in range(CAS_KEYS)]
    for k in keys:
        _, r = cl.call(b"set %s 0 0 1\r\nx\r\n" % k)
        if r != b"STORED\r\n":
            dpi.fail("set %s: %r" % (k, r))

    def uniques():
        seen = {}
        for k in keys:
            _, r = cl.call(b"gets %s\r\n" % k)
            head = r.split(b"\r\n", 1)[0].split()
            if len(head) != 5 or head[0] != b"VALUE" or head[1] != k:
                dpi.fail("gets %s: %r" % (k, r))
            seen[k] = int(head[4])
        return seen

    seen = uniques()
    if len(set(seen.values())) != len(keys):
        dups = sorted(v for v in seen.values() if list(seen.values()).count(v) > 1)
        dpi.fail("cas uniques repeat across keys: %r" % dups[:10])
    for k in keys[:CAS_KEYS // 4]:
        _, r = cl.call(b"append %s 0 0 1\r\ny\r\n" % k)
        if r != b"STORED\r\n":
            dpi.fail("append %s: %r" % (k, r))
    after = uniques()
    if len(set(after.values())) != len(keys):
        dpi.fail("cas uniques repeat across keys after updates")
    print("cas: %d keys over %d partitions show %d distinct uniques, also after %d updates" %
          (len(keys), PARTITIONS, len(set(after.values())), CAS_KEYS // 4))


def report_field(out, line_prefix, name):
    """The number after `name` on the exit report line starting with line_prefix."""
    for line in out.splitlines():
        if line.startswith(line_prefix):
            words = line.split()
            if name in words[:-1]:
                return int(words[words.index(name) + 1])
    dpi.fail("exit report has no %s %s:\n%s" % (line_prefix, name, out))
    return 0


def check_report(out):
    """The node served memcached datagrams on both workers' paths and lost nothing."""
    if report_field(out, "memcached:", "datagrams") < 1000:
        dpi.fail("fewer than 1000 memcached datagrams counted:\n" + out)
    for name in ("handoff_out", "owner", "multi", "flush_applied"):
        if report_field(out, "memcached placement:", name) == 0:
            dpi.fail("memcached placement %s is 0 (expected hand-offs, owner, multi-key "
                     "and remote flush runs):\n%s" % (name, out))
    if report_field(out, "memcached placement:", "touch_dropped") < 8:
        dpi.fail("gat touches over DP_MC_TOUCH_FORWARD_MAX were not counted:\n" + out)
    if report_field(out, "memcached placement:", "touch_out") < TOUCH_FORWARD_MAX:
        dpi.fail("fewer gat touches forwarded than the bound allows:\n" + out)
    for name in ("nombuf", "bad_message"):
        if report_field(out, "memcached placement:", name) != 0:
            dpi.fail("memcached placement %s is not 0:\n%s" % (name, out))


def counters_now(node):
    """The node's counters and memcached counters, for a failure message: whether it
    dropped (and why) or never saw what the client says went missing."""
    try:
        return "stats %s; memcached %s" % (node.stats(), node.telemetry("/shardplane/memcached"))
    except (OSError, ValueError, AssertionError) as e:
        return "unreadable (%r)" % e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dp", required=True)
    ap.add_argument("--memcaslap", required=True)
    args = ap.parse_args()
    iface = "spmc%d" % (os.getpid() % 100000)
    node = dpi.Node(args.dp, "mc", "net_tap0,iface=%s" % iface, WORKERS,
                    extra=["--memcached-port", str(MC_PORT)])
    try:
        node.start()
        dpi.setup_tap(node, iface)
        dpi.ping(node.ip)
        target = "%s:%d" % (node.ip, MC_PORT)
        for cmd in ([os.path.join(HERE, "conformance.py"), "--target", target, str(WORKERS),
                     str(PARTITIONS)],
                    [os.path.join(HERE, "memcaslap_test.sh"), "--target", target,
                     args.memcaslap]):
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=CHECK_TIMEOUT_S)
            print(res.stdout, end="", flush=True)
            if res.returncode != 0:
                dpi.fail("%s failed (exit %d); node counters now: %s\nnode output:\n%s" %
                         (os.path.basename(cmd[0]), res.returncode, counters_now(node),
                          node.output()))
        check_bounds(node.ip)
        check_cas_unique(node.ip)
        tel = node.telemetry("/shardplane/memcached")
        if tel.get("port") != MC_PORT or tel.get("datagrams_in", 0) < 1000 or \
                tel.get("commands", 0) < 1000:
            dpi.fail("telemetry /shardplane/memcached: %r" % tel)
        print("telemetry: datagrams_in %d commands %d handoff_out %d errors %d" %
              (tel["datagrams_in"], tel["commands"], tel["handoff_out"], tel["error_replies"]))
        out = node.stop()
        print("\n".join(l for l in out.splitlines()
                        if l.startswith(("stats total", "mbufs", "memcached"))))
        check_report(out)
    finally:
        node.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
