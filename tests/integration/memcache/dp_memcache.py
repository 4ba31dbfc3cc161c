#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The memcached protocol on shardplane-dp itself: net_tap, 2 workers, --memcached-port.

Usage: dp_memcache.py --dp SHARDPLANE_DP --memcaslap MEMCASLAP

Starts shardplane-dp on a tap interface (the node class of the dataplane integration test:
own file prefix, hugepages or --no-huge as SP_NO_HUGE says), then runs the conformance
cases (conformance.py --target) and memcaslap with full verification against it, and stops
it checking that no mbuf leaked and that the node counted memcached datagrams.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
import dp_integration as dpi  # noqa: E402  (the dataplane test's node and tap helpers)

MC_PORT = 11311
WORKERS = 2
PARTITIONS = 64  # what dp_integration.Node passes
CHECK_TIMEOUT_S = 180


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
    for name in ("nombuf", "bad_message"):
        if report_field(out, "memcached placement:", name) != 0:
            dpi.fail("memcached placement %s is not 0:\n%s" % (name, out))


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
                dpi.fail("%s failed (exit %d); node output:\n%s" %
                         (os.path.basename(cmd[0]), res.returncode, node.output()))
        out = node.stop()
        print("\n".join(l for l in out.splitlines()
                        if l.startswith(("stats total", "mbufs", "memcached"))))
        check_report(out)
    finally:
        node.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
