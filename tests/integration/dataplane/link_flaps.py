#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Link flaps under load: shardplane-dp keeps serving through them.

Usage: link_flaps.py tap|afpacket|recreate --dp DP --driver DRIVER --client CLIENT
                     [--flaps N]

tap: a node on net_tap; af_packet: a node on one end of a veth pair whose other end is in a
network namespace the test creates. While shardplane-client's bench loads the node from
the kernel side, the link is set down and up again N times (default 10; for af_packet
both ends in turn). Then: the node answers ping, dp_driver's checked workload (every
answer against its model) passes, the node stops with exit status 0 and no mbuf leaked.
recreate: the af_packet node's veth pair is destroyed (its peer namespace deleted) and made
again under the same names, N times (default 3) under load: the node attaches the device
again to the new interface (dp_node_watch_port) and serves as before.
Requests lost while the link is down are the client's to retry, not errors of the node.
Only the interfaces and namespace the test creates are touched; all is removed at the end.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import dp_integration as dpi  # noqa: E402  (Node, ping, drive, run)

DOWN_S = 0.3
UP_S = 0.5
LOAD_S_MAX = 120


def load(client, node, netns, seconds):
    cmd = [client, "--server", "%s:%d" % (node.ip, dpi.BASE_PORT), "--timeout-ms", "100",
           "bench", "--duration-s", str(seconds), "--requests", "100000000", "--keys", "500",
           "--batch", "8"]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def flap(ifaces, n):
    """ifaces: (netns or None, name) pairs, flapped in turn."""
    for i in range(n):
        ns, name = ifaces[i % len(ifaces)]
        pre = ["ip", "netns", "exec", ns] if ns else []
        dpi.run(pre + ["ip", "link", "set", name, "down"])
        time.sleep(DOWN_S)
        dpi.run(pre + ["ip", "link", "set", name, "up"])
        time.sleep(UP_S)


def finish(args, node, netns, bench):
    try:
        out, _ = bench.communicate(timeout=LOAD_S_MAX)
    except subprocess.TimeoutExpired:
        bench.kill()
        out, _ = bench.communicate()
    last = [l for l in out.splitlines() if l.strip()][-3:]
    dpi.log("load during the flaps: %s" % " | ".join(last))
    if node.proc.poll() is not None:
        dpi.fail("shardplane-dp died during the flaps:\n" + node.output())
    dpi.ping(node.ip, netns=netns)
    dpi.drive(args.driver, node, netns=netns, keys=500)
    st = node.stats()
    node.stop()
    dpi.log("%d link flaps under load: node up throughout, every answer after them right, "
            "no mbuf leaked (%d requests served)" % (args.flaps, st["requests"]))


def scenario_tap(args):
    iface = "spflap%d" % (os.getpid() % 100000)
    node = dpi.Node(args.dp, "flaptap", "net_tap0,iface=%s" % iface, 1)
    try:
        node.start()
        dpi.setup_tap(node, iface)
        dpi.ping(node.ip)
        bench = load(args.client, node, None, int(args.flaps * (DOWN_S + UP_S)) + 1)
        flap([(None, iface)], args.flaps)
        finish(args, node, None, bench)
    finally:
        node.kill()


def make_veth(node, ns, host_if, ns_if):
    dpi.run(["ip", "netns", "add", ns])
    dpi.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if])
    dpi.run(["ip", "link", "set", ns_if, "netns", ns])
    dpi.run(["ip", "link", "set", host_if, "up"])
    dpi.run(["ip", "netns", "exec", ns, "ip", "addr", "add", node.peer_ip + "/24", "dev",
             ns_if])
    dpi.run(["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"])
    dpi.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])


def scenario_afpacket(args, recreate=False):
    tag = os.getpid() % 100000
    ns, host_if, ns_if = "spfl%d" % tag, "spfl%da" % tag, "spfl%db" % tag
    node = dpi.Node(args.dp, "flapafp", "net_af_packet0,iface=%s,qpairs=1" % host_if, 1)
    try:
        make_veth(node, ns, host_if, ns_if)
        node.start()
        dpi.ping(node.ip, netns=ns)
        if not recreate:
            bench = load(args.client, node, ns, int(args.flaps * (DOWN_S + UP_S)) + 1)
            flap([(None, host_if), (ns, ns_if)], args.flaps)
            finish(args, node, ns, bench)
            return
        for i in range(args.flaps):
            bench = load(args.client, node, ns, 2)
            time.sleep(0.5)
            dpi.run(["ip", "netns", "del", ns])  # takes the veth pair with it
            bench.kill()  # its namespace is gone
            bench.communicate()
            time.sleep(0.5)
            make_veth(node, ns, host_if, ns_if)
            if node.proc.poll() is not None:
                dpi.fail("shardplane-dp died when its interface went away:\n" + node.output())
            dpi.ping(node.ip, netns=ns)  # the node attached to the new interface
            dpi.log("veth pair %d: deleted with its namespace and made again; served again"
                    % (i + 1))
        out = node.output()
        if out.count("attached again to") < args.flaps:
            dpi.fail("the node did not attach again after each recreation:\n" + out[-3000:])
        finish(args, node, ns, load(args.client, node, ns, 2))
    finally:
        node.kill()
        dpi.run(["ip", "link", "del", host_if], check=False)
        dpi.run(["ip", "netns", "del", ns], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenario", choices=["tap", "afpacket", "recreate"])
    ap.add_argument("--dp", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--flaps", type=int, default=None)
    args = ap.parse_args()
    if args.flaps is None:
        args.flaps = 3 if args.scenario == "recreate" else 10
    if not 1 <= args.flaps <= 10000:
        ap.error("--flaps: 1 to 10000")
    t0 = time.monotonic()
    if args.scenario == "tap":
        scenario_tap(args)
    else:
        scenario_afpacket(args, recreate=args.scenario == "recreate")
    print("link flaps (%s): 1 passed, 0 failed in %.0f s" % (args.scenario,
                                                             time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
