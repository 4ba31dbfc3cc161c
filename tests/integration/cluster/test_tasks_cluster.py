#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The registered operations (docs/tasks.md) on three Shardplane nodes with two workers
each (harness.py): RATELIMIT routed, handed off and forwarded like a built-in key
operation, and AGGREGATE scattered over every worker of every node and gathered.

        test_tasks_cluster.py BUILD_DIR [WORKERS]

WORKERS (default 2) dataplane workers per node.


Scenario, on one cluster (keys and values seeded: SP_TEST_SEED replays them):
  1. RATELIMIT through the partition-aware client: a burst of BURST allowed, the next
          denied with the wait until the next token; through every node with --no-route
     --forward (the node forwards it to the owner), the same bucket counts;
  2. counters under a prefix (INCR), values that are not counters, and keys outside the
     prefix, on every node: AGGREGATE through every node answers exactly the model's count,
     128-bit sum, skipped and top 5, over all 64 partitions;
  3. AGGREGATE --node through each node answers that node's share (the model restricted to
     the keys `where` places there, over the partitions `route` gives it); AGGREGATE_KEYS
     over 32 listed keys (counters, text, one absent) through every node answers exactly,
     and with --node only the keys that node owns (PARTIAL, their count);
  4. one dataplane hangs (SIGSTOP): AGGREGATE through another node answers PARTIAL within
     the forward timeout, with the partitions of the two live nodes and exactly their
     share, and AGGREGATE_KEYS with exactly the listed keys of the live nodes; resumed,
     it answers the whole again;
  5. every dataplane stops with exit 0 and no mbuf in use.
SP_NO_HUGE=1 runs the dataplanes with --no-huge.
"""
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402

PARTITIONS = 64
COUNTERS = 60        # counters under the prefix
NOT_COUNTERS = 6     # values under the prefix that are not numbers
OUTSIDE = 10         # counters outside the prefix
TOP = 5
FORWARD_TIMEOUT_MS = 2000  # a node descheduled for a second on a loaded 2-core machine is slow, not lost
CLIENT_TIMEOUT_MS = 5000  # longer than the gather's deadline: PARTIAL, not a timeout


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def cli(c, args, seeds=None, check_ok=False):
    if "--timeout-ms" not in args:
        args = ["--timeout-ms", str(CLIENT_TIMEOUT_MS)] + list(args)
    return c.client(args, seeds=seeds, check=check_ok, timeout=60)


def parse_aggregate(out):
    """(count, sum, skipped, partitions or keys, partial, [(value, key)]) from the CLI's
    output (aggregate or aggregate-keys)."""
    lines = out.splitlines()
    head = dict(f.split("=") for f in lines[0].split() if "=" in f)
    top = [(int(l.split(" ", 1)[0]), l.split(" ", 1)[1]) for l in lines[1:]]
    covered = int(head["partitions"] if "partitions" in head else head["keys"])
    return (int(head["count"]), int(head["sum"]), int(head["skipped"]), covered,
            lines[0].endswith(" PARTIAL"), top)


def model_answer(values, keys):
    """The aggregate of the counters among keys: (count, sum, top TOP as (value, key))."""
    nums = [(values[k], k) for k in keys if isinstance(values.get(k), int)]
    top = sorted(nums, key=lambda vk: (-vk[0], vk[1].encode()))[:TOP]
    return len(nums), sum(v for v, _ in nums), top


def main():
    build = sys.argv[1]
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    seed = int(os.environ.get("SP_TEST_SEED") or random.randrange(1 << 32))
    print("test_tasks_cluster: seed %d (replay: SP_TEST_SEED=%d)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    bins = harness.Binaries.from_build(build)
    with harness.Cluster(bins, nodes=3, partitions=PARTITIONS, workers=workers,
                         cp_args=["--failure-timeout-ms", "30000"],
                         dp_args=["--forward-timeout-ms", str(FORWARD_TIMEOUT_MS)]) as c:
        c.start()

        # 1. RATELIMIT: rate 1/s, burst 3.
        key = "rl:%d" % rng.randrange(1 << 30)
        for i in range(3):
            r = cli(c, ["ratelimit", key, "1", "3"], check_ok=True)
            check(r.stdout.startswith("ALLOWED remaining=%d " % (2 - i)),
                  "ratelimit %d: %r" % (i, r.stdout))
        r = cli(c, ["ratelimit", key, "1", "3"], check_ok=True)
        check(r.stdout.startswith("DENIED remaining=0 wait_ns="), "4th: %r" % r.stdout)
        wait_ns = int(r.stdout.split("wait_ns=")[1])
        check(0 < wait_ns <= 1000000000, "wait_ns %d" % wait_ns)
        # The same bucket through every node, forwarded by those that do not own it: a
        # new key with burst 3 allows exactly 3 of these 6 (the rate adds at most one
        # token during the run only when it lasts a second or more).
        key2 = key + ":fwd"
        t0 = time.monotonic()
        allowed = 0
        for via in (0, 1, 2, 0, 1, 2):
            r = cli(c, ["--no-route", "--forward", "ratelimit", key2, "1", "3"], seeds=[via],
                    check_ok=True)
            allowed += r.stdout.startswith("ALLOWED")
        took = time.monotonic() - t0
        check(3 <= allowed <= 3 + int(took) + 1,
              "forwarded ratelimit: %d allowed of 6 in %.1f s" % (allowed, took))
        harness.log("1. ratelimit: burst allowed, then denied (wait %d ns); through every "
                    "node forwarded: %d of 6 allowed in %.1f s" % (wait_ns, allowed, took))

        # 2. Counters on every node, through one client (each to its owner).
        values = {}
        prefix = "agg%d:" % rng.randrange(1 << 20)
        for i in range(COUNTERS):
            k = "%s%03d" % (prefix, i)
            v = rng.randrange(1 << 40) if rng.random() < 0.2 else rng.randrange(1000)
            cli(c, ["incr", k, "0", "--initial", str(v)], check_ok=True)
            values[k] = v
        for i in range(NOT_COUNTERS):
            k = "%sx%d" % (prefix, i)
            cli(c, ["set", k, "not-a-number"], check_ok=True)
            values[k] = "text"
        for i in range(OUTSIDE):
            k = "other%s%d" % (prefix, i)
            cli(c, ["incr", k, "0", "--initial", "99999999999"], check_ok=True)
        inside = list(values)
        want_count, want_sum, want_top = model_answer(values, inside)
        for via in range(3):
            r = cli(c, ["aggregate", prefix, str(TOP)], seeds=[via])
            check(r.returncode == 0, "aggregate via node %d: exit %d %r" %
                  (via, r.returncode, r.stdout + r.stderr))
            count, total, skipped, parts, partial, top = parse_aggregate(r.stdout)
            check((count, total, skipped, parts, partial) ==
                  (want_count, want_sum, NOT_COUNTERS, PARTITIONS, False),
                  "aggregate via node %d: %r, want count %d sum %d skipped %d" %
                  (via, r.stdout, want_count, want_sum, NOT_COUNTERS))
            check(top == want_top, "top via node %d: %r want %r" % (via, top, want_top))
        harness.log("2. aggregate through every node: count %d sum %d, top %d exact over "
                    "%d partitions" % (want_count, want_sum, TOP, PARTITIONS))

        # 3. --node: each node's share.
        r = cli(c, ["where"] + inside, check_ok=True)
        node_of = {}
        for line in r.stdout.splitlines():
            k, _part, _node, addr = line.split()
            node_of[k] = next(n.index for n in c.nodes if n.ip == addr.split(":")[0])
        r = cli(c, ["route"], check_ok=True)
        parts_of = {}
        for line in r.stdout.splitlines():
            if line.startswith("node "):
                f = line.split()
                parts_of[next(n.index for n in c.nodes if n.ip == f[5])] = int(f[-1])
        check(sum(parts_of.values()) == PARTITIONS, "route: %r" % r.stdout)
        for via in range(3):
            mine = [k for k in inside if node_of[k] == via]
            n_count, n_sum, n_top = model_answer(values, mine)
            r = cli(c, ["--node", "aggregate", prefix, str(TOP)], seeds=[via])
            count, total, skipped, parts, partial, top = parse_aggregate(r.stdout)
            check((count, total, parts, partial, top) ==
                  (n_count, n_sum, parts_of[via], False, n_top),
                  "aggregate --node via node %d: %r, want count %d sum %d over %d" %
                  (via, r.stdout, n_count, n_sum, parts_of[via]))
        harness.log("3. aggregate --node: each node's share, partitions %s" % parts_of)

        # 3b. AGGREGATE_KEYS over a list: 30 counters, a text value and an absent key.
        listed = rng.sample([k for k in inside if isinstance(values[k], int)], 30)
        listed += [next(k for k in inside if not isinstance(values[k], int)),
                   prefix + "absent"]
        values[prefix + "absent"] = None
        l_count, l_sum, l_top = model_answer(values, listed)
        for via in range(3):
            r = cli(c, ["aggregate-keys", str(TOP)] + listed, seeds=[via])
            count, total, skipped, keys, partial, top = parse_aggregate(r.stdout)
            check(r.returncode == 0 and (count, total, skipped, keys, partial, top) ==
                  (l_count, l_sum, 1, len(listed), False, l_top),
                  "aggregate-keys via node %d: %r, want count %d sum %d" %
                  (via, r.stdout + r.stderr, l_count, l_sum))
        node_of[prefix + "absent"] = next(
            n.index for n in c.nodes if n.ip == cli(c, ["where", prefix + "absent"],
                                                   check_ok=True).stdout.split()[3].split(":")[0])
        for via in range(3):
            mine = [k for k in listed if node_of[k] == via]
            m_count, m_sum, m_top = model_answer(values, mine)
            r = cli(c, ["--node", "aggregate-keys", str(TOP)] + listed, seeds=[via])
            count, total, skipped, keys, partial, top = parse_aggregate(r.stdout)
            check((count, total, keys, partial, top) ==
                  (m_count, m_sum, len(mine), len(mine) < len(listed), m_top),
                  "aggregate-keys --node via node %d: %r, want %d keys" %
                  (via, r.stdout, len(mine)))
        harness.log("3b. aggregate-keys over %d keys through every node exact; --node: "
                    "each node's keys" % len(listed))

        # 4. Node 2 hangs: PARTIAL from the two others, within the forward timeout.
        c.pause_dp(2)
        try:
            live = [k for k in inside if node_of[k] != 2]
            p_count, p_sum, p_top = model_answer(values, live)
            t = time.monotonic()
            r = cli(c, ["--retries", "0", "aggregate", prefix, str(TOP)], seeds=[0])
            took = time.monotonic() - t
            check(r.returncode == 1, "aggregate with node 2 hung: exit %d %r" %
                  (r.returncode, r.stdout + r.stderr))
            count, total, skipped, parts, partial, top = parse_aggregate(r.stdout)
            check(partial and parts == PARTITIONS - parts_of[2] and
                  (count, total, top) == (p_count, p_sum, p_top),
                  "PARTIAL with node 2 hung: %r, want count %d sum %d over %d" %
                  (r.stdout, p_count, p_sum, PARTITIONS - parts_of[2]))
            check(took < CLIENT_TIMEOUT_MS / 1000.0 + 1, "PARTIAL took %.2f s" % took)
            alive = [k for k in listed if node_of[k] != 2]
            a_count, a_sum, a_top = model_answer(values, alive)
            r = cli(c, ["--retries", "0", "aggregate-keys", str(TOP)] + listed, seeds=[1])
            count, total, skipped, keys, kpartial, top = parse_aggregate(r.stdout)
            check(r.returncode == 1 and kpartial and keys == len(alive) and
                  (count, total, top) == (a_count, a_sum, a_top),
                  "aggregate-keys with node 2 hung: %r, want %d keys" % (r.stdout, len(alive)))
        finally:
            c.resume_dp(2)
        harness.log("4. node 2 hung: PARTIAL over %d partitions in %.2f s, exact for them" %
                    (parts, took))
        deadline = time.monotonic() + 20
        while True:
            r = cli(c, ["aggregate", prefix, str(TOP)], seeds=[1])
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        count, total, skipped, parts, partial, top = parse_aggregate(r.stdout)
        check((count, total, parts, partial) == (want_count, want_sum, PARTITIONS, False),
              "aggregate after node 2 resumed: %r" % r.stdout)
        harness.log("4. node 2 resumed: whole again")

        # 5. Clean stops (the harness checks exit 0 and no mbuf in use).
        for i in range(3):
            out = c.stop_dp(i)
            check("tasks: gathers=" in out, "no tasks line in node %d's report:\n%s" %
                  (i, out[-2000:]))
    harness.log("test_tasks_cluster: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
