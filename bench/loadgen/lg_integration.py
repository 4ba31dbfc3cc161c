#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""shardplane-dp and shardplane-loadgen over memif: a short closed-loop run.

  lg_integration.py SHARDPLANE_DP SHARDPLANE_LOADGEN

Starts shardplane-dp as the memif server, runs the load generator as the client twice
(single-request GETs over uniform keys; batched mixed GET/SET over zipf keys), each for
about a second after preloading every key, and checks: exit status 0, zero losses, no
errors or misses, a JSON report with libcbench's (Google Benchmark's) fields, and that the
dp counted at least the requests the generator saw answered and leaked no mbuf. Also checks
that a bad flag and a wrong target address give clear errors. Honours SP_NO_HUGE=1 (and
falls back to --no-huge when hugepages are not free). Every process is bounded in time and
killed by its pid.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

READY_TIMEOUT_S = 30
RUN_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
DP_IP = "10.77.0.1"
HUGEPAGES_NEEDED = 300  # 2 MiB pages for both processes
DPDK_RUN_DIR = "/var/run/dpdk"
prefixes = []  # every EAL file prefix handed out; main() removes their runtime directories

CONTEXT_FIELDS = ["date", "host_name", "executable", "num_cpus", "mhz_per_cpu",
                  "cpu_scaling_enabled", "caches", "load_avg", "library_build_type",
                  "json_schema_version"]
RUN_FIELDS = ["name", "family_index", "per_family_instance_index", "run_name", "run_type",
              "repetitions", "repetition_index", "threads", "iterations", "real_time",
              "cpu_time", "time_unit", "items_per_second", "datagrams_per_second",
              "p50_ns", "p99_ns", "p999_ns", "losses", "errors", "hits", "misses"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def free_hugepages():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("HugePages_Free:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def no_huge():
    return os.environ.get("SP_NO_HUGE") == "1" or free_hugepages() < HUGEPAGES_NEEDED


def eal_mem(prefix, mb):
    """EAL memory flags under a file prefix of this test's own: --in-memory creates a
    runtime directory too (under the shared default prefix "rte" without one)."""
    prefixes.append(prefix)
    if no_huge():
        return ["--file-prefix", prefix, "--no-huge", "-m", str(mb)]
    return ["--file-prefix", prefix, "--in-memory"]


def remove_runtime_dirs():
    """Removes the runtime directory (config, fbarrays, sockets) that DPDK leaves behind
    for each prefix handed out. Only once every process has ended."""
    for prefix in prefixes:
        shutil.rmtree(os.path.join(DPDK_RUN_DIR, prefix), ignore_errors=True)


def start_dp(dp, sock, tag, errpath, outpath, extra=()):
    lcores = "0@0,1@1" if (os.cpu_count() or 1) >= 2 else "0@0,1@0"
    cmd = [dp, "--no-pci", "--lcores", lcores,
           "--vdev", "net_memif0,role=server,socket=" + sock] + \
        eal_mem("sp-lgt-dp-" + tag, 256) + \
        ["--", "--ip", DP_IP + "/24", "--port", "9000", "--partitions", "16",
         "--memory-mb", "16"] + list(extra)
    print("+ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=open(outpath, "w"), stderr=open(errpath, "w"))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail("shardplane-dp exited %d at start:\n%s" % (proc.returncode,
                                                              open(errpath).read()))
        if "ready:" in open(errpath).read():
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    fail("shardplane-dp not ready after %d s" % READY_TIMEOUT_S)
    return None


def loadgen_cmd(lg, sock, tag, extra):
    return [lg, "--no-pci", "-l", "0",
            "--vdev", "net_memif0,role=client,socket=" + sock] + \
        eal_mem("sp-lgt-lg-" + tag, 128) + ["--"] + extra


def run_loadgen(lg, sock, tag, extra, json_path):
    cmd = loadgen_cmd(lg, sock, tag, extra + ["--json", json_path, "--no-progress"])
    print("+ " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT_S, check=False)
    sys.stdout.write(proc.stdout.decode(errors="replace"))
    sys.stdout.write(proc.stderr.decode(errors="replace"))
    if proc.returncode != 0:
        fail("shardplane-loadgen exited %d" % proc.returncode)
    try:
        with open(json_path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        fail("JSON report %s unreadable: %s" % (json_path, exc))
    return doc


def check_report(doc, batched):
    for field in CONTEXT_FIELDS:
        if field not in doc.get("context", {}):
            fail("context lacks %s" % field)
    if doc["context"]["json_schema_version"] != 1:
        fail("json_schema_version is not 1")
    runs = doc.get("benchmarks", [])
    if len(runs) != 1:
        fail("expected one benchmark entry, got %d" % len(runs))
    run = runs[0]
    for field in RUN_FIELDS:
        if field not in run:
            fail("benchmark entry lacks %s" % field)
    if run.get("error_occurred"):
        fail("run reported an error: %s" % run.get("error_message"))
    for zero in ["losses", "preload_losses", "errors", "misses", "late", "unknown", "rx_bad"]:
        if run.get(zero, 0) != 0:
            fail("%s = %s, expected 0" % (zero, run.get(zero)))
    if run["requests"] <= 0 or run["items_per_second"] <= 0:
        fail("no requests were answered")
    if not 0 < run["p50_ns"] <= run["p99_ns"] <= run["p999_ns"] <= run["max_ns"]:
        fail("percentiles out of order: %s" % run)
    if batched and run["datagrams_per_second"] >= run["items_per_second"]:
        fail("batched run: datagrams/s should be below requests/s")
    if not batched and run["hits"] != run["requests"]:
        fail("GET-only run: hits %s != requests %s" % (run["hits"], run["requests"]))
    return run


def expect_failure(cmd, status, pattern):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT_S, check=False)
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != status or not re.search(pattern, err):
        fail("%s: expected status %d and /%s/, got %d:\n%s" %
             (" ".join(cmd), status, pattern, proc.returncode, err))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    dp, lg = sys.argv[1], sys.argv[2]
    tag = str(os.getpid())
    tmp = tempfile.mkdtemp(prefix="sp-lgt-")
    sock = os.path.join(tmp, "memif.sock")
    dp_err, dp_out = os.path.join(tmp, "dp.err"), os.path.join(tmp, "dp.out")
    print("hugepages: %s" % ("no (--no-huge)" if no_huge() else "yes"))

    # Bad input never starts DPDK.
    expect_failure([lg, "--", "--dst-ip", DP_IP, "--rpd", "33"], 2, r"--rpd")
    expect_failure([lg, "--", "--keys", "5"], 2, r"--dst-ip is required")

    proc = None
    try:
        proc = start_dp(dp, sock, tag, dp_err, dp_out)
        seed = os.environ.get("SP_TEST_SEED", str(int(time.time())))
        print("seed %s (replay with SP_TEST_SEED=%s)" % (seed, seed))
        common = ["--dst-ip", DP_IP, "--keys", "2000", "--preload", "--duration-s", "1", "--timeout-ms",
                  "3000", "--seed", seed]
        doc = run_loadgen(lg, sock, tag + "a", common + ["--rpd", "1", "--window", "16"],
                          os.path.join(tmp, "single.json"))
        single = check_report(doc, batched=False)
        doc = run_loadgen(lg, sock, tag + "b", common + ["--rpd", "8", "--window", "64",
                                                         "--get-pct", "80", "--dist", "zipf"],
                          os.path.join(tmp, "batched.json"))
        batched = check_report(doc, batched=True)
        # A target that does not answer ARP: a clear error, exit 1, bounded.
        expect_failure(loadgen_cmd(lg, sock, tag + "c", ["--dst-ip", "10.77.0.99",
                                                         "--duration-s", "1"]),
                       1, r"no ARP reply from 10\.77\.0\.99")
    finally:
        if proc is not None:
            stop(proc)
        # The generators ran to their end (subprocess.run waits, and kills on a timeout),
        # start_dp killed a dp that was not ready, stop() waited for this one.
        remove_runtime_dirs()
    out = open(dp_out).read()
    if proc.returncode != 0:
        fail("shardplane-dp exited %d:\n%s" % (proc.returncode, open(dp_err).read()))
    m = re.search(r"stats total: .*?\brequests=(\d+)", out)
    if not m:
        fail("no totals in shardplane-dp's output:\n" + out)
    answered = single["requests"] + batched["requests"]
    if int(m.group(1)) < answered:
        fail("dp counted %s requests, the generator had %d answered" % (m.group(1), answered))
    if not re.search(r"mbufs: 0 in use", out):
        fail("shardplane-dp leaked mbufs:\n" + out)
    for path in (sock, dp_err, dp_out, os.path.join(tmp, "single.json"),
                 os.path.join(tmp, "batched.json")):
        if os.path.exists(path):
            os.unlink(path)
    os.rmdir(tmp)
    print("PASS: %.0f req/s single, %.0f req/s batched (%s)" %
          (single["items_per_second"], batched["items_per_second"], single.get("label", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
