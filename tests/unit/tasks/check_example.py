#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Checks that the example of docs/tasks.md is exactly the code example_hits.c compiles
(between its markers), so that the guide's example builds and passes test_tasks.

    check_example.py DOCS_TASKS_MD EXAMPLE_HITS_C
"""
import re
import sys


def main():
    doc = open(sys.argv[1]).read()
    src = open(sys.argv[2]).read()
    m = re.search(r"```c\n(.*?)```", doc, re.S)
    if m is None:
        print("no C example in %s" % sys.argv[1])
        return 1
    want = m.group(1).replace('#include "dataplane/tasks/task.h"\n\n', "")
    got = re.search(r"/\* ---- docs/tasks.md example begins ---- \*/\n(.*?)"
                    r"/\* ---- docs/tasks.md example ends ---- \*/", src, re.S)
    if got is None or got.group(1) != want:
        print("the example in %s differs from %s" % (sys.argv[1], sys.argv[2]))
        return 1
    print("docs/tasks.md example: matches %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
