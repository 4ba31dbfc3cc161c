#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""shardplane-loadgen --cluster against a real N-node cluster (tests/integration/cluster/
harness.py): the load generator runs in the hub namespace on af_packet over a veth of its
own on the bridge, fetches the map from node 0 (lib/client, over the hub's kernel stack),
learns every node's MAC with ARP and sends each datagram to the owner of its keys.

    bench/cluster/lg_cluster.py BUILD_DIR [--nodes N] [--duration-s S] [--window W]
                                [--rpd R] [--keys K]

Checks (and exits 1 otherwise): every node got requests and answered them, no errors, at
most 1 % lost, and no node forwarded or answered WRONG_PARTITION during the run (every
request went straight to its owner). Prints the loadgen's per-node lines and the nodes'
own counters. In CI as the integration test loadgen_cluster (3 nodes, 2 s).
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "cluster"))
import harness  # noqa: E402

LG_IP = harness.SUBNET + ".200"


def arg(args, name, default):
    if name in args:
        k = args.index(name)
        v = args[k + 1]
        del args[k:k + 2]
        return int(v)
    return default


def check(cond, msg):
    if not cond:
        print("lg_cluster: FAIL: " + msg, flush=True)
        sys.exit(1)


def main():
    args = sys.argv[1:]
    nodes = arg(args, "--nodes", 3)
    duration = arg(args, "--duration-s", 2)
    window = arg(args, "--window", 64)
    rpd = arg(args, "--rpd", 8)
    keys = arg(args, "--keys", 3000)
    build = os.path.abspath(args[0])
    lg = os.path.join(build, "bench", "loadgen", "shardplane-loadgen")
    bins = harness.Binaries.from_build(build)
    with harness.Cluster(bins, nodes=nodes) as c:
        c.start()
        # The generator's own veth on the bridge (removed with the hub namespace).
        h = ["ip", "-n", c.hub_ns]
        c._run(h + ["link", "add", "lgh", "type", "veth", "peer", "name", "lgp"])
        c._run(h + ["link", "set", "lgh", "master", "br0"])
        c._run(h + ["link", "set", "lgh", "up"])
        c._run(h + ["link", "set", "lgp", "up"])
        before = [c.dp_telemetry(i, "/shardplane/stats") for i in range(nodes)]
        prefix = "sp%slg" % c.tag
        mem = ["--in-memory"] if c.huge else ["--no-huge", "-m", "256"]
        cmd = [lg, "--no-pci", "-l", "0", "--file-prefix", prefix,
               "--vdev", "net_af_packet0,iface=lgp"] + mem + \
            ["--", "--cluster", "--dst-ip", c.node(0).ip, "--dst-port", str(c.node(0).port),
             "--src-ip", LG_IP, "--keys", str(keys), "--preload", "--duration-s",
             str(duration), "--window", str(window), "--rpd", str(rpd), "--timeout-ms",
             "500", "--no-progress"]
        try:
            r = c.hub(cmd, timeout=120 + duration)
        finally:
            subprocess.run(["rm", "-rf", "/var/run/dpdk/" + prefix], capture_output=True)
        out = r.stdout + r.stderr
        for line in out.splitlines():
            if line.startswith("loadgen:"):
                print(line, flush=True)
        check(r.returncode == 0, "shardplane-loadgen exited %d:\n%s" % (r.returncode, out))
        after = [c.dp_telemetry(i, "/shardplane/stats") for i in range(nodes)]
        per = re.findall(r"loadgen: node (\d+) (\S+): (\d+) requests sent, (\d+) replies "
                         r"\(([\d.]+) Mreq/s\), (\d+) errors", out)
        check(len(per) == nodes, "want %d per-node lines, got %d" % (nodes, len(per)))
        done = re.search(r"loadgen: done: (\d+) requests .* losses=(\d+) late=\d+ "
                         r"errors=(\d+)", out)
        check(done is not None, "no summary line")
        total, losses, errors = (int(done.group(k)) for k in (1, 2, 3))
        check(errors == 0, "%d errors" % errors)
        check(losses * 100 <= total, "%d of %d lost" % (losses, total))
        for idx, ip, sent, replies, _rate, errs in per:
            check(int(replies) > 0 and int(errs) == 0,
                  "node %s (%s): %s replies, %s errors" % (idx, ip, replies, errs))
        for i in range(nodes):
            fwd = after[i]["fwd_out"] - before[i]["fwd_out"]
            wrong = after[i]["wrong_node"] - before[i]["wrong_node"]
            check(fwd == 0 and wrong == 0,
                  "node %d forwarded %d and answered WRONG_PARTITION %d: the generator "
                  "sent requests past their owner" % (i, fwd, wrong))
            print("lg_cluster: node %d executed %d requests" %
                  (i, after[i]["requests"] - before[i]["requests"]), flush=True)
        print("lg_cluster: PASS", flush=True)


if __name__ == "__main__":
    main()
