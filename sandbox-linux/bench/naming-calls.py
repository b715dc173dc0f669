#!/usr/bin/env python3
"""Cost of the name guard's mediated naming calls (run inside the sandbox, by hand; not by CI):
in DIR, N=2000 times each: create a new file (`open` with `O_CREAT|O_EXCL`), rename it, make a
symbolic link, remove both, and create a file named like a pack index (`iN.idx`, a name a store
directory would make a history file: since session 21 such a call also holds its directory with
`flock`, outside review r93), and rename an empty directory to a loose-object directory name
(`ab`: since session 21 in two steps through a staging name, outside review r94); prints the mean time per call of each kind, in µs. Since session
20 each of these holds the guard's lock and is checked again after the call (outside reviews
r91, r92); compare builds in one sitting, alternating them (see sandbox-linux/README.md).

Usage: codex sandbox linux --full-auto -- python3 sandbox-linux/bench/naming-calls.py DIR
"""
import os, sys, time
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
n = 2000
t = {"create": 0.0, "rename": 0.0, "symlink": 0.0, "unlink": 0.0, "create-idx": 0.0, "rename-dir-to-ab": 0.0}
for i in range(n):
    a, b, s = (os.path.join(d, "%s%d" % (p, i)) for p in ("a", "b", "s"))
    t0 = time.perf_counter()
    fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    t1 = time.perf_counter()
    os.close(fd)
    t2 = time.perf_counter()
    os.rename(a, b)
    t3 = time.perf_counter()
    os.symlink("target", s)
    t4 = time.perf_counter()
    os.unlink(b)
    os.unlink(s)
    t5 = time.perf_counter()
    fd = os.open(os.path.join(d, "i%d.idx" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    t6 = time.perf_counter()
    os.close(fd)
    os.unlink(os.path.join(d, "i%d.idx" % i))
    t["create-idx"] += t6 - t5
    sd = os.path.join(d, "sd%d" % i)
    os.mkdir(sd)
    t7 = time.perf_counter()
    os.rename(sd, os.path.join(d, "ab"))
    t8 = time.perf_counter()
    os.rmdir(os.path.join(d, "ab"))
    t["rename-dir-to-ab"] += t8 - t7
    t["create"] += t1 - t0
    t["rename"] += t3 - t2
    t["symlink"] += t4 - t3
    t["unlink"] += (t5 - t4) / 2
print(" ".join("%s %.1f" % (k, v / n * 1e6) for k, v in t.items()), "us/call")
