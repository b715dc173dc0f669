#!/usr/bin/env python3
"""Start-up of `codex sandbox linux --full-auto -- /bin/true` against bubblewrap, INTERLEAVED.

Each round starts bwrap and every codex binary given once, in a shuffled order, so that a
loaded (shared) machine hits them alike; hyperfine's blocks of one command at a time drifted by
2x between blocks on the shared build machine. Wall time from posix_spawn to wait4; CPU is the
children's user+system from wait4. Prints medians, the ratio to bwrap, and the median of the
per-round ratios. Not run by CI.

Usage: python3 sandbox-linux/bench/startup-interleaved.py ROUNDS CODEX_BINARY...
(`helper:PATH` runs the `codex-linux-sandbox` helper at PATH with the same policy instead)
"""
import os
import shutil
import statistics
import sys
import tempfile
import time

import startup_commands

rounds = int(sys.argv[1])
binaries = sys.argv[2:]
if not binaries or not shutil.which("bwrap"):
    sys.exit("usage: startup-interleaved.py ROUNDS CODEX_BINARY... (needs bwrap)")
work = tempfile.mkdtemp()
os.mkdir(os.path.join(work, ".git"))
commands = startup_commands.commands(binaries, work)
os.chdir(work)
os.environ["PWD"] = work
devnull = os.open(os.devnull, os.O_RDWR)


def run(argv):
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed: status {status:#x}")
    return wall, usage.ru_utime + usage.ru_stime


results = startup_commands.interleave(commands, rounds, run)
wall = {k: [w for w, _ in r] for k, r in results.items()}
cpu = {k: [c for _, c in r] for k, r in results.items()}
base = statistics.median(wall["bwrap"])
for k in commands:
    m = statistics.median(wall[k])
    paired = statistics.median(a / b for a, b in zip(wall[k], wall["bwrap"]))
    print(f"{k:40} median {m * 1000:6.2f} ms  x{m / base:.2f} of bwrap "
          f"(per-round x{paired:.2f})  CPU {statistics.median(cpu[k]) * 1000:.2f} ms")
shutil.rmtree(work)
