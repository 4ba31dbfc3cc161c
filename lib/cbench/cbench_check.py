#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Runs a libcbench program with --benchmark_format=json and checks its report.

  cbench_check.py PROGRAM [FLAGS...]

Fails when the program exits non-zero, stdout is not one JSON document, the report has
no benchmarks, or any benchmark reports error_occurred (a benchmark skipped with a
message, such as one needing more CPUs than the machine has, is allowed). Used by the
benchmarks' smoke tests in CI.
"""
import json
import subprocess
import sys

RUN_TIMEOUT_S = 300


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd = sys.argv[1:] + ["--benchmark_format=json"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT_S, check=False)
    sys.stderr.write(proc.stderr.decode(errors="replace"))
    if proc.returncode != 0:
        print("FAIL: %s exited %d" % (" ".join(cmd), proc.returncode))
        return 1
    try:
        doc = json.loads(proc.stdout.decode())
    except ValueError as exc:
        print("FAIL: stdout is not one JSON document: %s" % exc)
        return 1
    runs = doc.get("benchmarks", [])
    if not runs:
        print("FAIL: the report lists no benchmarks")
        return 1
    failed = [r for r in runs if r.get("error_occurred")]
    for r in failed:
        print("FAIL: %s: %s" % (r["name"], r.get("error_message", "")))
    skipped = [r["name"] for r in runs if r.get("skipped")]
    if skipped:
        print("skipped: %s" % ", ".join(skipped))
    for r in runs:
        if not r.get("error_occurred") and not r.get("skipped"):
            rate = r.get("items_per_second")
            print("%-50s %12.2f %s/iter%s" % (r["name"], r["real_time"], r["time_unit"],
                                              "  %.4g items/s" % rate if rate else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
