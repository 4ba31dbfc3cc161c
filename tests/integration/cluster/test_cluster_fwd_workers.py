#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Forwarding between nodes of two workers each (tests/integration/cluster/harness.py):
af_packet spreads frames over a node's queues by flow, not by port, so node-to-node
datagrams often reach a worker other than the one whose port they were sent to and must
be handed to it whole (a batch mixes requests for that worker's partitions and answers for
its slots).

    test_cluster_fwd_workers.py BUILD_DIR

1. Six rounds of 80 memcached set/get/delete for keys of nodes 1 and 2 sent to node 0 at
   once (seeded, SP_TEST_SEED), every answer checked against a model; no forward timeout
   and no answer dropped as for no slot on any node.
2. shardplane-client --no-route --forward set/get through every node for keys of every
   node.
"""
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402
import test_cluster_dp as cdp  # noqa: E402  (key_owners, mc_pipelined, cli, check)


def main():
    build = sys.argv[1]
    bins = harness.Binaries.from_build(build)
    seed = int(os.environ.get("SP_TEST_SEED", str(time.time_ns())))
    rng = random.Random(seed)
    harness.log("seed %d (replay with SP_TEST_SEED=%d)" % (seed, seed))
    with harness.Cluster(bins, nodes=3, workers=2) as c:
        c.start()
        many = cdp.key_owners(c, 40)
        keys = [k.encode() for n in (1, 2) for k in many[n]]
        before = [c.dp_telemetry(i, "/shardplane/stats") for i in range(3)]
        cdp.mc_pipelined_rounds(c, keys, rng, seed, 6)
        after = [c.dp_telemetry(i, "/shardplane/stats") for i in range(3)]
        for i in range(3):
            for f in ("fwd_timeouts", "fwd_rej_slot", "fwd_rej_malformed"):
                cdp.check(after[i][f] == before[i][f], "node %d %s went from %d to %d" %
                          (i, f, before[i][f], after[i][f]))
        harness.log("1. %d pipelined memcached requests through node 0 (2 workers per node) "
                    "checked against the model; node 0 sent %d forward messages in %d "
                    "datagrams" % (6 * len(keys),
                                   after[0]["fwd_msgs_out"] - before[0]["fwd_msgs_out"],
                                   after[0]["fwd_frames_out"] - before[0]["fwd_frames_out"]))
        for via in range(3):
            for n in range(3):
                key = many[n][1]
                cdp.cli(c, ["--no-route", "--forward", "set", key, "w%d%d" % (via, n)],
                        seeds=[via], check=True)
                r = cdp.cli(c, ["--no-route", "--forward", "get", key], seeds=[via],
                            check=True)
                cdp.check(r.stdout == "w%d%d\n" % (via, n), "forwarded get %s via node %d: %r"
                          % (key, via, r.stdout))
        harness.log("2. binary --no-route --forward through every node for keys of every "
                    "node")
        harness.log("done")


if __name__ == "__main__":
    main()
