"""The commands the start-up benchmarks compare (imported by startup-interleaved.py and
startup-phases.py): bwrap and each binary given, all running /bin/true with the same policy
(writable workspace `work`, which holds a `.git`, network off)."""
import os
import random
import shutil


def commands(binaries, work):
    out = {
        "bwrap": [shutil.which("bwrap"), "--ro-bind", "/", "/", "--dev", "/dev", "--bind", work,
                  work, "--unshare-all", "--die-with-parent", "--new-session", "--", "/bin/true"],
    }
    for b in binaries:
        if b.startswith("helper:"):
            # the small `codex-linux-sandbox` helper with the same policy (no multitool to load)
            out[b] = [os.path.abspath(b[len("helper:"):]), "--sandbox-policy-cwd", work, "--sandbox-policy",
                      '{"mode":"workspace-write","network_access":false}', "--", "/bin/true"]
        else:
            out[b] = [os.path.abspath(b), "sandbox", "linux", "--full-auto", "--", "/bin/true"]
    return out


def interleave(commands, rounds, run):
    """Each command run 10 times to warm up, then `rounds` rounds running every command once in a
    shuffled order: the results of `run(argv)` per command name, in round order."""
    results = {k: [] for k in commands}
    for k in commands:
        for _ in range(10):
            run(commands[k])
    for _ in range(rounds):
        order = list(commands)
        random.shuffle(order)
        for k in order:
            results[k].append(run(commands[k]))
    return results
