#!/usr/bin/env python3
"""Cost of the name guard's mediated open for writing of existing files (run inside the sandbox,
by hand; not by CI): makes N=2000 files of SIZE bytes in DIR, then opens each O_WRONLY three
times and prints the mean time per open. Files of whole 512-byte pages have their header read
(the Fossil check, outside review r79); other sizes are not read.

Usage: codex sandbox linux --full-auto -- python3 sandbox-linux/bench/open-for-write.py DIR SIZE
"""
import os,time,sys
d=sys.argv[1]; os.makedirs(d,exist_ok=True)
n=2000
for i in range(n):
    p=os.path.join(d,"f%d"%i)
    if not os.path.exists(p):
        with open(p,"wb") as f: f.write(b"x"*int(sys.argv[2]))
t=time.perf_counter()
for r in range(3):
    for i in range(n):
        fd=os.open(os.path.join(d,"f%d"%i), os.O_WRONLY); os.close(fd)
print("%.1f us/open" % ((time.perf_counter()-t)/(3*n)*1e6))
