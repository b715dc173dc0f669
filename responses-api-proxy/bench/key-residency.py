#!/usr/bin/env python3
"""Where the key sits in a running proxy's memory: every occurrence in /proc/PID/mem, each mapped
to its mapping's VmFlags from /proc/PID/smaps (`lo` = locked). Run as root.

Usage: key-residency.py PID KEYFILE   (KEYFILE holds the key, so it is not in argv)
Prints one line per hit and a summary; exits 1 if any hit is outside locked pages.
Regions the kernel refuses to read (memfd_secret pages: EIO) are listed as unreadable."""
import re
import sys


def vmas(pid):
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = {"start": int(m[1], 16), "end": int(m[2], 16), "perms": m[3],
                       "name": m[4].strip(), "flags": []}
                out.append(cur)
            elif line.startswith("VmFlags:") and cur is not None:
                cur["flags"] = line.split()[1:]
    return out


def main():
    pid, keyfile = sys.argv[1], sys.argv[2]
    key = open(keyfile, "rb").read().strip()
    if len(key) < 8:
        sys.exit("key too short to search for")
    hits, unreadable = [], []
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for v in vmas(pid):
            if not v["perms"].startswith("r"):
                continue
            try:
                mem.seek(v["start"])
                data = mem.read(v["end"] - v["start"])
            except OSError as e:
                unreadable.append((v, e.errno))
                continue
            at = data.find(key)
            while at >= 0:
                hits.append((v["start"] + at, v))
                at = data.find(key, at + 1)
    outside = 0
    for addr, v in hits:
        locked = "lo" in v["flags"]
        outside += not locked
        print(f"{addr:#x} {'LOCKED' if locked else 'NOT-LOCKED'} {v['perms']} "
              f"{v['name'] or '[anon]'} flags={' '.join(v['flags'])}")
    for v, errno in unreadable:
        if "lo" in v["flags"] or v["perms"].endswith("s"):
            print(f"unreadable {v['start']:#x}-{v['end']:#x} {v['perms']} errno={errno} "
                  f"flags={' '.join(v['flags'])}")
    print(f"key copies: {len(hits)} readable, {outside} outside locked pages, "
          f"{len(unreadable)} unreadable regions")
    sys.exit(1 if outside else 0)


main()
