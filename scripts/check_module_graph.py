#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Checks that the modules of a C directory depend on each other without a circle.

A module is a pair NAME.c / NAME.h. Module A depends on module B when A.c or A.h includes
"B.h" (a header of the same directory). Two rules, so that no umbrella header can hide a
circle:
  1. the dependency graph has no cycle (A -> B -> ... -> A);
  2. every function NAME.c defines without 'static' is declared in NAME.h: a module's
     interface is its own header, not one shared by everyone.
Prints the modules in layers (each depends only on layers above it) and exits 0, or
prints each cycle / stray definition and exits 1.

Usage: check_module_graph.py DIR [--allow-main NAME]   (NAME.c, the program, needs no header)
       check_module_graph.py --self-test   (the checker against made-up trees: a circle, an
                                            umbrella header, a clean layering)
"""
import argparse
import os
import re
import shutil
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition at the start of a line, its return type on the line before (the
# style's layout): "name(...)\n{" with no 'static' on the type line.
DEFN = re.compile(r'^([A-Za-z_][A-Za-z0-9_ \t\*]*)\n([A-Za-z_][A-Za-z0-9_]*)\(([^;{]*?)\)\s*\n\{',
                  re.M)


def strip_comments(text):
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    return re.sub(r'//[^\n]*', '', text)


def read(path):
    with open(path, encoding='utf-8') as f:
        return strip_comments(f.read())


def modules_of(d):
    names = set()
    for f in os.listdir(d):
        stem, ext = os.path.splitext(f)
        if ext in ('.c', '.h'):
            names.add(stem)
    return sorted(names)


def deps_of(d, name, names):
    out = set()
    for ext in ('.c', '.h'):
        p = os.path.join(d, name + ext)
        if not os.path.exists(p):
            continue
        for inc in INCLUDE.findall(read(p)):
            stem, ext2 = os.path.splitext(os.path.basename(inc))
            if ext2 == '.h' and '/' not in inc and stem in names and stem != name:
                out.add(stem)
    return out


def find_cycles(graph):
    """Every elementary cycle found by a depth-first search (one per back edge)."""
    cycles, color, stack = [], {}, []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if color.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif color.get(m) is None:
                visit(m)
        stack.pop()
        color[n] = 2

    for n in sorted(graph):
        if color.get(n) is None:
            visit(n)
    return cycles


def stray_definitions(d, name, allow_main):
    c, h = os.path.join(d, name + '.c'), os.path.join(d, name + '.h')
    if not os.path.exists(c):
        return []
    header = read(h) if os.path.exists(h) else ''
    stray = []
    for ret, fn, _args in DEFN.findall(read(c)):
        if 'static' in ret.split():
            continue
        if name == allow_main and fn == 'main':
            continue
        if not re.search(r'\b%s\s*\(' % re.escape(fn), header):
            stray.append(fn)
    return stray


def layers(graph):
    level = {}

    def depth(n):
        if n not in level:
            level[n] = 1 + max((depth(m) for m in graph[n]), default=-1)
        return level[n]

    for n in graph:
        depth(n)
    out = {}
    for n, lv in level.items():
        out.setdefault(lv, []).append(n)
    return [sorted(out[k]) for k in sorted(out)]


def check(d, allow_main='main', quiet=False):
    """Returns the list of problems found in directory d (empty when it passes)."""
    names = modules_of(d)
    graph = {n: deps_of(d, n, set(names)) for n in names}
    problems = ['cycle: ' + ' -> '.join(cyc) for cyc in find_cycles(graph)]
    for n in names:
        for fn in stray_definitions(d, n, allow_main):
            problems.append('%s.c defines %s(), which %s.h does not declare' % (n, fn, n))
    if not problems and not quiet:
        for i, layer in enumerate(layers(graph)):
            print('layer %d: %s' % (i, ', '.join(
                '%s (-> %s)' % (n, ', '.join(sorted(graph[n])) or 'none') for n in layer)))
        print('%s: %d modules, no cycle' % (d, len(names)))
    return problems


def self_test():
    import tempfile

    def tree(files):
        d = tempfile.mkdtemp(prefix='modgraph.')
        for name, text in files.items():
            with open(os.path.join(d, name), 'w', encoding='utf-8') as f:
                f.write(text)
        return d

    fn = lambda name: 'int\n%s(void)\n{\n\treturn 0;\n}\n' % name
    cases = [
        ('a circle through three modules', {
            'a.h': 'int a_f(void);\n', 'a.c': '#include "a.h"\n#include "b.h"\n' + fn('a_f'),
            'b.h': 'int b_f(void);\n', 'b.c': '#include "b.h"\n#include "c.h"\n' + fn('b_f'),
            'c.h': '#include "a.h"\nint c_f(void);\n', 'c.c': '#include "c.h"\n' + fn('c_f'),
        }, ['cycle: a -> b -> c -> a']),
        ('an umbrella header that hides a circle', {
            'all.h': 'int x_f(void);\nint y_f(void);\n',
            'x.c': '#include "all.h"\n' + fn('x_f'), 'y.c': '#include "all.h"\n' + fn('y_f'),
        }, ['x.c defines x_f(), which x.h does not declare',
            'y.c defines y_f(), which y.h does not declare']),
        ('a clean layering, statics and main', {
            'low.h': 'int low_f(void);\n', 'low.c': '#include "low.h"\n' + fn('low_f') +
            'static int\nhelper(void)\n{\n\treturn 1;\n}\n',
            'high.h': '#include "low.h"\nint high_f(void);\n',
            'high.c': '#include "high.h"\n/* #include "main.h" in a comment */\n' + fn('high_f'),
            'main.c': '#include "high.h"\n' + fn('main'),
        }, []),
    ]
    failed = 0
    for what, files, want in cases:
        d = tree(files)
        got = check(d, quiet=True)
        shutil.rmtree(d)
        ok = sorted(got) == sorted(want)
        failed += not ok
        print('%s: %s%s' % ('ok' if ok else 'FAILED', what, '' if ok else ' (got %s)' % got))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('dir', nargs='?')
    ap.add_argument('--allow-main', default='main')
    ap.add_argument('--self-test', action='store_true')
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if a.dir is None:
        ap.error('a directory, or --self-test')
    problems = check(a.dir, a.allow_main)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
