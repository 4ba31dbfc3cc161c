#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A memif peer that comes and goes must never take shardplane-dp down.

  memif_cycles.py SHARDPLANE_DP SHARDPLANE_LOADGEN [--cycles N]

One shardplane-dp (memif server, --busy-poll) and N load-generator runs against it, one
after another, each a fresh memif client that connects, loads and disconnects: most end
their run and leave (no load at the moment of the disconnect), every fourth is killed
with SIGKILL in the middle of its load. A busy loop shares the worker's CPU throughout,
so the worker is preempted inside its bursts: that is what made DPDK 22.11's memif PMD
fault (it unmaps the peer's regions under a running rx burst; unmap_guard.h). Checks:
the dp never dies; every run that ends by itself has every answer right (all GETs of
preloaded keys hit, no loss, error or unknown answer); at the end the dp exits 0 with no
mbuf leaked and its unmap guard waited for each disconnect. Default 100 cycles.
Honours SP_NO_HUGE=1. Every process is bounded in time and ended by its pid.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lg_integration as lgi  # noqa: E402  (dp start-up, EAL memory flags, clean-up)

KEYS = 500
KILL_EVERY = 4
KILL_AFTER_S = 1.2  # EAL start-up, memif connect and ARP take well under a second
HOG_S_MAX = 600


def run(lg, sock, tag, extra, json_path, kill_after=None):
    cmd = lgi.loadgen_cmd(lg, sock, tag, ["--dst-ip", lgi.DP_IP, "--keys", str(KEYS),
                                          "--timeout-ms", "2000", "--no-progress",
                                          "--json", json_path] + extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if kill_after is not None:
            time.sleep(kill_after)
            proc.kill()
            proc.wait(timeout=lgi.RUN_TIMEOUT_S)
            return None
        out, _ = proc.communicate(timeout=lgi.RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lgi.fail("loadgen %s did not end within %d s" % (tag, lgi.RUN_TIMEOUT_S))
    if proc.returncode != 0:
        lgi.fail("loadgen %s exited %d:\n%s" % (tag, proc.returncode,
                                                out.decode(errors="replace")[-2000:]))
    with open(json_path) as f:
        return json.load(f)["benchmarks"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dp")
    ap.add_argument("lg")
    ap.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()
    if not 1 <= args.cycles <= 100000:
        ap.error("--cycles: 1 to 100000")
    tag = str(os.getpid())
    tmp = tempfile.mkdtemp(prefix="sp-memif-cycles-")
    sock = os.path.join(tmp, "memif.sock")
    dp_err, dp_out = os.path.join(tmp, "dp.err"), os.path.join(tmp, "dp.out")
    js = os.path.join(tmp, "run.json")
    ncpu = os.cpu_count() or 1
    print("hugepages: %s; %d cycles" % ("no (--no-huge)" if lgi.no_huge() else "yes",
                                        args.cycles), flush=True)
    proc = hog = None
    answered = killed = 0
    t0 = time.monotonic()
    try:
        proc = lgi.start_dp(args.dp, sock, tag, dp_err, dp_out, ["--busy-poll"])
        if ncpu >= 2:  # the worker's CPU (lg_integration pins worker lcore 1 to CPU 1)
            hog = subprocess.Popen(["taskset", "-c", "1", "timeout", str(HOG_S_MAX), "sh",
                                    "-c", "while :; do :; done"], start_new_session=True)
        first = run(args.lg, sock, tag + "-p", ["--preload", "--duration-s", "0",
                                                "--count", "200", "--rpd", "1"], js)
        for i in range(args.cycles):
            if proc.poll() is not None:
                lgi.fail("shardplane-dp died (status %d) before cycle %d:\n%s" %
                         (proc.returncode, i, open(dp_err).read()[-3000:]))
            if i % KILL_EVERY == KILL_EVERY - 1:
                run(args.lg, sock, "%s-%d" % (tag, i), ["--duration-s", "5", "--rpd", "1",
                                                        "--window", "32"], js,
                    kill_after=KILL_AFTER_S)
                killed += 1
                continue
            r = run(args.lg, sock, "%s-%d" % (tag, i), ["--duration-s", "0", "--count",
                                                        "1000", "--rpd", "1", "--window",
                                                        "32"], js)
            for zero in ("losses", "errors", "misses", "late", "unknown", "rx_bad"):
                if r.get(zero, 0) != 0:
                    lgi.fail("cycle %d: %s = %s after a reconnect" % (i, zero, r[zero]))
            if r["requests"] != 1000 or r["hits"] != r["requests"]:
                lgi.fail("cycle %d: %s requests, %s hits" % (i, r["requests"], r["hits"]))
            answered += r["requests"]
        if proc.poll() is not None:
            lgi.fail("shardplane-dp died (status %d) after the last cycle" % proc.returncode)
    finally:
        if hog is not None:
            os.killpg(hog.pid, signal.SIGKILL)  # timeout and the shell it started
            hog.wait()
        if proc is not None:
            lgi.stop(proc)
        lgi.remove_runtime_dirs()
    out = open(dp_out).read()
    if proc.returncode != 0:
        lgi.fail("shardplane-dp exited %d:\n%s" % (proc.returncode, open(dp_err).read()[-3000:]))
    if "mbufs: 0 in use" not in out:
        lgi.fail("shardplane-dp leaked mbufs:\n" + out[-3000:])
    waits = [int(w) for w in __import__("re").findall(r"unmap guard: (\d+) unmaps waited", out)]
    ended = args.cycles - killed + 1  # clients that surely connected (they were answered)
    if not waits or waits[0] < ended:
        lgi.fail("the unmap guard waited %s times for at least %d disconnects" % (waits, ended))
    for p in (sock, dp_err, dp_out, js):
        if os.path.exists(p):
            os.unlink(p)
    os.rmdir(tmp)
    print("memif cycles: %d clients connected and left (%d killed under load), dp alive "
          "throughout; %d answers after reconnects all right; no mbuf leaked; %d unmaps "
          "waited for the workers; %.0f s" % (args.cycles + 1, killed, answered + first["requests"],
                                             waits[0], time.monotonic() - t0))
    print("memif cycles: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
