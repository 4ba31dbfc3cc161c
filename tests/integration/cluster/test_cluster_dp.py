#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Three Shardplane nodes (shardplane-cp + shardplane-dp each, dataplanes in network
namespaces on af_packet over veth, joined by a bridge; harness.py) used as one service.

    test_cluster_dp.py BUILD_DIR DP_DRIVER

Scenario, on one cluster:
  1. the partition-aware client through ONE seed: dp_driver's checked run of
     set/get/del/incr/decr/add/replace/cas/expiry over 2000 keys (seeded, SP_TEST_SEED)
     reaches every node, each request straight to its owner (no WRONG_PARTITION);
  2. shardplane-client get/set/incr/del of keys of every node through every node, `route`
     names the 3 nodes and their partitions (summing to P), `bench` through one node
     reports every node and passes;
  3. a request for another node's key sent to the wrong node (the client's --no-route
     mode sends everything to its seed) is refused WRONG_PARTITION naming the owner,
     counted there, and the client's one redirect makes the write land on the owner;
  4. owner kill -9: requests for the dead node's keys fail within the client's timeout
     (never a hang) while every other node's keys keep being served;
  5. every surviving dataplane stops with exit 0 and no mbuf in use.
SP_NO_HUGE=1 runs the dataplanes with --no-huge.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402

PARTITIONS = 64
KEY_TRIES_MAX = 100000
FAIL_WAIT_S = 5  # a request to a dead node: timeout 200 ms x (1 + 2 retries), and margin


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def key_owners(c, count_per_node):
    """count_per_node keys per node: {node index in c.nodes: [keys]}, from the client's
    `where` (key partition node ip:port)."""
    want = {i: [] for i in range(c.n)}
    r = c.client(["where"] + ["k%d" % i for i in range(200)], check=True)
    for line in r.stdout.splitlines():
        key, _part, _node, addr = line.split()
        ip = addr.split(":")[0]
        idx = next(n.index for n in c.nodes if n.ip == ip)
        if len(want[idx]) < count_per_node:
            want[idx].append(key)
    for i in range(c.n):
        check(len(want[i]) == count_per_node, "not enough keys on node %d:\n%s" %
              (i, r.stdout))
    return want


def main():
    build, driver = sys.argv[1], sys.argv[2]
    bins = harness.Binaries.from_build(build)
    t0 = time.monotonic()
    with harness.Cluster(bins, nodes=3, partitions=PARTITIONS) as c:
        c.start()

        # 1. The checked driver through one seed.
        r = c.hub([driver, "--server", "%s:%d" % (c.node(1).ip, c.node(1).port), "--keys",
                   "2000"], timeout=120)
        print(r.stdout[-1500:], end="")
        check(r.returncode == 0, "dp_driver through node 1 failed:\n%s%s" % (r.stdout,
                                                                           r.stderr))
        st = [c.dp_telemetry(i, "/shardplane/stats") for i in range(3)]
        for i in range(3):
            check(st[i]["requests"] > 500, "node %d executed %d requests" %
                  (i, st[i]["requests"]))
            check(st[i]["wrong_node"] == 0, "node %d answered WRONG_PARTITION %d times" %
                  (i, st[i]["wrong_node"]))
        harness.log("1. dp_driver through one seed: requests per node %s, no redirect" %
                    [s["requests"] for s in st])

        # 2. The CLI: every node's keys through every node.
        owners = key_owners(c, 2)
        for via in range(3):
            for n in range(3):
                key = owners[n][0]
                c.client(["set", key, "v%d%d" % (via, n)], seeds=[via], check=True)
                r = c.client(["get", key], seeds=[(via + 1) % 3], check=True)
                check(r.stdout == "v%d%d\n" % (via, n), "get %s: %r" % (key, r.stdout))
                r = c.client(["incr", key + ":n", "2", "--initial", "5"], seeds=[via],
                             check=True)
                check(r.stdout == "5\n", "incr: %r" % r.stdout)
                r = c.client(["incr", key + ":n", "2"], seeds=[(via + 2) % 3], check=True)
                check(r.stdout == "7\n", "incr: %r" % r.stdout)
                c.client(["del", key + ":n"], seeds=[via], check=True)
                c.client(["del", key], seeds=[(via + 1) % 3], check=True)
                r = c.client(["get", key], seeds=[via])
                check(r.returncode == 1 and "not found" in r.stderr, "get after del: %r" %
                      (r.stdout + r.stderr))
        r = c.client(["route"], seeds=[2], check=True)
        counts = [int(l.split()[-1]) for l in r.stdout.splitlines() if l.startswith("node ")]
        check(len(counts) == 3 and sum(counts) == PARTITIONS and min(counts) > 0,
              "route: %s" % r.stdout)
        r = c.client(["bench", "--requests", "6000", "--keys", "500", "--duration-s", "20",
                      "--batch", "16"], seeds=[0], timeout=120)
        print(r.stdout, end="")
        check(r.returncode == 0, "bench through node 0 failed:\n%s%s" % (r.stdout, r.stderr))
        check(r.stdout.count("bench: node ") == 3 and "redirects=0" in r.stdout,
              "bench did not drive every node directly:\n" + r.stdout)
        harness.log("2. CLI: keys of every node through every node; route %s; bench ok" %
                    counts)

        # 3. A request at the wrong node: WRONG_PARTITION naming the owner, counted there;
        # the client follows the redirect once and the write lands on the owner.
        key = owners[2][1]
        before = [c.dp_telemetry(i, "/shardplane/stats") for i in range(3)]
        r = c.client(["--no-route", "set", key, "redirected"], seeds=[0])
        check(r.returncode == 0, "--no-route set of node 2's key via node 0: %r" %
              (r.stdout + r.stderr))
        after = [c.dp_telemetry(i, "/shardplane/stats") for i in range(3)]
        check(after[0]["wrong_node"] == before[0]["wrong_node"] + 1,
              "node 0 did not count one wrong-node request")
        check(after[2]["requests"] > before[2]["requests"], "node 2 did not execute it")
        r = c.client(["get", key], seeds=[1], check=True)
        check(r.stdout == "redirected\n", "get after the redirect: %r" % r.stdout)
        harness.log("3. wrong node: WRONG_PARTITION naming the owner, followed once")

        # 4. The owner of node 2's partitions is killed: its keys fail fast, others work.
        c.kill_dp(2)
        t = time.monotonic()
        r = c.client(["--timeout-ms", "200", "get", owners[2][0]], seeds=[0], timeout=30)
        took = time.monotonic() - t
        check(r.returncode == 1 and took < FAIL_WAIT_S,
              "a dead owner's key: exit %d after %.1f s: %s" % (r.returncode, took,
                                                              r.stdout + r.stderr))
        for n in (0, 1):
            key = owners[n][1]
            c.client(["set", key, "alive"], seeds=[n ^ 1], check=True)
            r = c.client(["get", key], seeds=[0], check=True)
            check(r.stdout == "alive\n", "get %s after the kill: %r" % (key, r.stdout))
        harness.log("4. owner killed: its keys fail in %.2f s, the others are served" % took)
        # 5. c.stop() (end of the with-block) checks the survivors' clean exit.
    harness.log("done in %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
