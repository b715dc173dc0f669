#!/usr/bin/env python3
"""Cost of the name guard's look below a directory being renamed (outside review r82: a
directory with a repository at any depth below it is not renamed), run inside the sandbox by
hand, not by CI. Makes trees of N entries in DIR (directories of 50 files, half of them 4096
bytes, whose header the Fossil check reads, half 100 bytes), renames each tree back and forth
ROUNDS times and prints the median time per rename; compare with the same run under
`--allow-git-writes` (no name guard).

Usage: codex sandbox linux --full-auto [--allow-git-writes] -- \\
         python3 sandbox-linux/bench/rename-dir.py DIR [N...]
"""
import os, statistics, sys, time

base = sys.argv[1]
sizes = [int(a) for a in sys.argv[2:]] or [10, 1000, 10000, 19000]
rounds = 9
for n in sizes:
    tree = os.path.join(base, "t%d" % n)
    if not os.path.isdir(tree):
        made = 0
        d = 0
        while made < n:
            sub = os.path.join(tree, "d%d" % d)
            os.makedirs(sub)
            made += 1
            for i in range(min(50, n - made)):
                with open(os.path.join(sub, "f%d" % i), "wb") as f:
                    f.write(b"x" * (4096 if i % 2 else 100))
                made += 1
            d += 1
    times = []
    for r in range(rounds):
        t = time.perf_counter()
        os.rename(tree, tree + ".moved")
        times.append(time.perf_counter() - t)
        os.rename(tree + ".moved", tree)
    print("%6d entries: %.3f ms per rename (median of %d)" % (n, statistics.median(times) * 1e3, rounds))
