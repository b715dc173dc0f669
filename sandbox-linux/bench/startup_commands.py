"""The commands the start-up benchmarks compare (imported by startup-interleaved.py and
startup-phases.py): bwrap and each binary given, all running /bin/true with the same policy
(writable workspace `work`, which holds a `.git`, network off)."""
import os
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
