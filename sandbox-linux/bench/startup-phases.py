#!/usr/bin/env python3
"""Where the start-up of `codex sandbox linux --full-auto -- /bin/true` goes, against bubblewrap.

Each run is traced with `perf trace --no-syscalls` on the scheduler's process events only
(exec, fork, exit), and cut into four phases, in ms:
  clone  from the launcher's execve to its first fork or clone (load, parse, policy, plan)
  setup  from that clone to the command's execve (namespaces, Landlock, seccomp, helpers)
  run    the command itself (/bin/true), execve to exit
  tail   from the command's exit to the launcher's exit (ending the sandbox, the launcher's exit)
Medians over ROUNDS runs, bwrap and every binary interleaved in a shuffled order per round.
Tracing inflates every phase a little (compare within a run). Needs perf and bwrap; run as
root. Not run by CI. For wall time without tracing use startup-interleaved.py.

Usage: python3 sandbox-linux/bench/startup-phases.py ROUNDS CODEX_BINARY...
(`helper:PATH` runs the `codex-linux-sandbox` helper at PATH with the same policy instead)
"""
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import startup_commands

rounds = int(sys.argv[1])
binaries = sys.argv[2:]
if not binaries or not shutil.which("bwrap") or not shutil.which("perf"):
    sys.exit("usage: startup-phases.py ROUNDS CODEX_BINARY... (needs bwrap and perf)")
work = tempfile.mkdtemp()
os.mkdir(os.path.join(work, ".git"))
env = dict(os.environ, PWD=work)
commands = startup_commands.commands(binaries, work)
EVENT = re.compile(r"\s*([\d.]+)\s+(\S+)/(\d+) sched:(\w+)\((.*)")
PHASES = ["clone", "setup", "run", "tail", "total"]


def phases(argv):
    out = subprocess.run(
        ["perf", "trace", "--no-syscalls", "-e",
         "sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork", "--"] + argv,
        cwd=work, env=env, capture_output=True, text=True).stderr
    ev = [m.groups() for m in map(EVENT.match, out.splitlines()) if m]
    if not ev:
        sys.exit(f"{argv[0]}: no events traced:\n{out}")
    t = lambda e: float(e[0])
    launcher = ev[0][2]
    fork = next(e for e in ev if e[3] == "sched_process_fork")
    command = next(e for e in ev if e[3] == "sched_process_exec" and "/bin/true" in e[4])
    done = next(e for e in ev if e[3] == "sched_process_exit" and e[2] == command[2])
    gone = [e for e in ev if e[3] == "sched_process_exit" and e[2] == launcher][-1]
    return {"clone": t(fork) - t(ev[0]), "setup": t(command) - t(fork),
            "run": t(done) - t(command), "tail": t(gone) - t(done), "total": t(gone) - t(ev[0])}


got = {k: {p: [] for p in PHASES} for k in commands}
for _ in range(rounds):
    order = list(commands)
    random.shuffle(order)
    for k in order:
        for p, v in phases(commands[k]).items():
            got[k][p].append(v)
width = max(len(k) for k in commands)
print(f"{'ms (median of ' + str(rounds) + ')':{width}}  " + "  ".join(f"{p:>6}" for p in PHASES))
for k, r in got.items():
    print(f"{k:{width}}  " + "  ".join(f"{statistics.median(r[p]):6.2f}" for p in PHASES))
