#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Compatibility checks between libcbench and Google Benchmark.

  bench_compat.py compare CBENCH_BIN COMPARE_PY
      Runs the libcbench program twice with --benchmark_format=json --benchmark_out,
      then Google Benchmark's compare.py on the two files; checks its exit status and
      that its table names every benchmark.
  bench_compat.py schema CBENCH_BIN GBENCH_BIN
      Runs the libcbench program and the same benchmarks built with Google Benchmark
      and checks that both JSON documents have the same fields with the same types:
      context keys, entry keys per benchmark name, aggregate entries.
"""
import json
import os
import subprocess
import sys
import tempfile

# Both programs run the same short, bounded workload.
RUN_FLAGS = ["--benchmark_min_time=0.01", "--benchmark_repetitions=2",
             "--benchmark_context=suite=compat"]
RUN_TIMEOUT_S = 120
# Google Benchmark 1.8 added json_schema_version to the context; libcbench writes it,
# the Debian 1.7 library does not. It is the one key allowed to differ.
CONTEXT_EXTRA_OK = {"json_schema_version"}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run_json(binary, out_path):
    cmd = [binary] + RUN_FLAGS + ["--benchmark_format=json", "--benchmark_out=" + out_path]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        fail("%s exited %d: %s" % (" ".join(cmd), proc.returncode,
                                   proc.stderr.decode(errors="replace")))
    stdout_doc = json.loads(proc.stdout.decode())
    with open(out_path, encoding="utf-8") as fp:
        file_doc = json.load(fp)
    # The display (stdout) and the file carry the same benchmarks.
    if [b["name"] for b in stdout_doc["benchmarks"]] != [b["name"] for b in file_doc["benchmarks"]]:
        fail("%s: stdout JSON and --benchmark_out JSON list different benchmarks" % binary)
    return file_doc


def kind(value):
    """The JSON type of a value, with integers and reals apart as GB writes them."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape(obj):
    return {k: kind(v) for k, v in obj.items()}


def compare(cbench, compare_py):
    with tempfile.TemporaryDirectory(prefix="cbench-compat-") as tmp:
        a = os.path.join(tmp, "a.json")
        b = os.path.join(tmp, "b.json")
        doc = run_json(cbench, a)
        run_json(cbench, b)
        proc = subprocess.run(["/usr/bin/python3", compare_py, "--no-color", "benchmarks", a, b],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=RUN_TIMEOUT_S, check=False)
        table = proc.stdout.decode(errors="replace")
        print(table)
        if proc.returncode != 0:
            fail("compare.py exited %d" % proc.returncode)
        lines = table.splitlines()
        if not any(line.startswith("Benchmark") and "Time Old" in line for line in lines):
            fail("compare.py printed no table header")
        names = {e["run_name"] for e in doc["benchmarks"]}
        for name in sorted(names):
            rows = [line for line in lines if line.split() and line.split()[0] == name]
            if not rows:
                fail("compare.py's table has no row for %s" % name)
        # With two repetitions compare.py runs its U test on every benchmark.
        if not any("_pvalue" in line for line in lines):
            fail("compare.py's table has no U-test (_pvalue) rows")
    print("compare: OK (%d benchmarks)" % len(names))


def schema(cbench, gbench):
    with tempfile.TemporaryDirectory(prefix="cbench-schema-") as tmp:
        c = run_json(cbench, os.path.join(tmp, "c.json"))
        g = run_json(gbench, os.path.join(tmp, "g.json"))
    problems = []
    if set(c) != set(g):
        problems.append("top-level keys: libcbench %s, GB %s" % (sorted(c), sorted(g)))
    cctx, gctx = shape(c["context"]), shape(g["context"])
    for key in sorted(set(cctx) | set(gctx)):
        if key in CONTEXT_EXTRA_OK and key not in gctx:
            continue
        if cctx.get(key) != gctx.get(key):
            problems.append("context.%s: libcbench %s, GB %s" % (key, cctx.get(key), gctx.get(key)))
    for key in ("caches", "load_avg"):
        ci, gi = c["context"].get(key) or [], g["context"].get(key) or []
        if ci and gi and kind(ci[0]) != kind(gi[0]):
            problems.append("context.%s[]: element types differ" % key)
        if ci and gi and isinstance(ci[0], dict) and shape(ci[0]) != shape(gi[0]):
            problems.append("context.caches[]: %s vs %s" % (shape(ci[0]), shape(gi[0])))
    cnames = [e["name"] for e in c["benchmarks"]]
    gnames = [e["name"] for e in g["benchmarks"]]
    if cnames != gnames:
        problems.append("benchmark entries differ:\n  libcbench %s\n  GB        %s" % (cnames, gnames))
    gby = {e["name"]: e for e in g["benchmarks"]}
    for entry in c["benchmarks"]:
        other = gby.get(entry["name"])
        if other is None:
            continue
        cs, gs = shape(entry), shape(other)
        if list(cs) != list(gs) or cs != gs:
            problems.append("%s:\n  libcbench %s\n  GB        %s" % (entry["name"], cs, gs))
        for key in ("run_name", "run_type", "repetitions", "family_index",
                    "per_family_instance_index", "aggregate_name", "aggregate_unit",
                    "time_unit", "threads"):
            if entry.get(key) != other.get(key):
                problems.append("%s.%s: libcbench %r, GB %r" % (entry["name"], key,
                                                               entry.get(key), other.get(key)))
    aggregates = sum(1 for e in c["benchmarks"] if e["run_type"] == "aggregate")
    if aggregates == 0:
        problems.append("no aggregate entries were written")
    if problems:
        fail("JSON documents differ:\n" + "\n".join(problems))
    print("schema: OK (%d entries, %d aggregates, %d context keys)" %
          (len(cnames), aggregates, len(cctx)))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("compare", "schema"):
        print(__doc__)
        return 2
    if sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        schema(sys.argv[2], sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
