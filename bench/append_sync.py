#!/usr/bin/env python3
"""Time of one append plus `fdatasync`, into a file that grows and into one zeroed beforehand.

usage: bench/append_sync.py [DIR] [N] [ROUNDS]

Appends N records of 1,050 bytes (a segment-file frame of a 1 KB message), each followed by
`fdatasync`, in a temporary file under DIR (default: the current directory, so the disk the data
directory is on), alternating the two layouts ROUNDS times. The zeroed file is written a page per
write, as the segment files are. Prints wall time, CPU time and bytes written per append.
"""
import os, sys, tempfile, time

FRAME, PAGE = 1050, 4096


def written():
    with open("/proc/self/io") as io:
        return next(int(l.split()[1]) for l in io if l.startswith("write_bytes"))


def run(directory, n, zeroed):
    fd, path = tempfile.mkstemp(dir=directory, prefix="append-sync-")
    try:
        if zeroed:
            for i in range(n * FRAME // PAGE + 2):
                os.pwrite(fd, bytes(PAGE), i * PAGE)
            os.fdatasync(fd)
        frame = b"x" * FRAME
        w0, t0, c0 = written(), time.perf_counter(), time.process_time()
        for i in range(n):
            os.pwrite(fd, frame, i * FRAME)
            os.fdatasync(fd)
        wall, cpu, w = time.perf_counter() - t0, time.process_time() - c0, written() - w0
        return wall / n * 1e6, cpu / n * 1e6, w / n / 1024
    finally:
        os.close(fd)
        os.remove(path)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    for _ in range(rounds):
        for zeroed in (False, True):
            wall, cpu, kb = run(directory, n, zeroed)
            layout = "zeroed " if zeroed else "growing"
            print(f"{layout}: {wall:.0f} us wall, {cpu:.0f} us CPU, {kb:.1f} KB written per append")


if __name__ == "__main__":
    main()
