#!/usr/bin/env python3
"""Start-up split without tracing: how long until the command runs, and how long after it ends
until the launcher returns, for bwrap and each codex binary given (same policy as
startup-interleaved.py: writable workspace holding a `.git`, network off).

The command is a tiny static program (built here with `cc`) that prints CLOCK_MONOTONIC when it
starts; this process reads the clock before posix_spawn and after wait4. Medians over ROUNDS,
the binaries interleaved in a shuffled order per round. Run as root, by hand (not by CI); needs
bwrap and a C compiler.

Usage: python3 sandbox-linux/bench/startup-split.py ROUNDS CODEX_BINARY...
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import startup_commands

rounds = int(sys.argv[1])
binaries = sys.argv[2:]
if not binaries or not shutil.which("bwrap") or not shutil.which("cc"):
    sys.exit("usage: startup-split.py ROUNDS CODEX_BINARY... (needs bwrap and cc)")
tools = tempfile.mkdtemp()
os.chmod(tools, 0o755)
stamp = os.path.join(tools, "stamp")
src = os.path.join(tools, "stamp.c")
with open(src, "w") as f:
    f.write('#include <stdio.h>\n#include <time.h>\nint main(void){struct timespec t;'
            'clock_gettime(CLOCK_MONOTONIC,&t);printf("%ld\\n",(long)t.tv_sec*1000000000L+t.tv_nsec);'
            'return 0;}\n')
subprocess.run(["cc", "-O2", "-static", "-o", stamp, src], check=True)
work = tempfile.mkdtemp()
os.mkdir(os.path.join(work, ".git"))
commands = {k: [stamp if a == "/bin/true" else a for a in argv]
            for k, argv in startup_commands.commands(binaries, work).items()}
os.chdir(work)
os.environ["PWD"] = work


def run(argv):
    r, w = os.pipe()
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    _, status, _ = os.wait4(pid, 0)
    t2 = time.monotonic_ns()
    out = os.read(r, 100)
    os.close(r)
    if os.waitstatus_to_exitcode(status) != 0 or not out.strip():
        sys.exit(f"{argv[0]} failed: status {status:#x}")
    t1 = int(out.decode().strip())
    return (t1 - t0) / 1e6, (t2 - t1) / 1e6


results = startup_commands.interleave(commands, rounds, run)
before = {k: [b for b, _ in r] for k, r in results.items()}
after = {k: [a for _, a in r] for k, r in results.items()}
for k in commands:
    print(f"{k:40} to the command {statistics.median(before[k]):6.2f} ms   "
          f"after it {statistics.median(after[k]):6.2f} ms")
shutil.rmtree(work)
shutil.rmtree(tools)
