"""seed.py: the seed experiment in CPython.

Builds a list of 10^7 * scale small strings (str(i): 1-8 characters, str
objects of about 50-57 bytes), keeps every 1000th of them in a second list,
then deletes the big list and runs gc.collect().  Measures how much of the
peak RSS the interpreter and the allocator under it (pymalloc, or malloc
when the runner sets PYTHONMALLOC=malloc) still hold right after the frees
("after_free") and after one second of sleep ("after_idle"): the survivors
are scattered one per ~55 KB, so an allocator that can only return whole
arenas or segments returns almost nothing.

Self-check: each survivor must still equal str(i) for its index i; "check"
gives their count and the CRC-32 of the survivors joined by newlines, which
is the same under every allocator.

After the idle second it waits on until Pss settles (marks.settled: a
meshing allocator works on in the background; every 0.5 s, at most 8 s),
then reports the survivors' page floor ("floor"): the bytes of the distinct
4 KiB pages the survivors occupy, from id() (the object's address in
CPython) and sys.getsizeof() of each; not timed.

Phases: alloc (building the list), free (del + gc.collect()).
"""
import gc
import sys
import time
import zlib

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
from _common import Workload     # noqa: E402

KEEP = 1000
FLOOR_PAGE = 4096
CHUNK = 1 << 16


def main():
    w = Workload("seed", "CPython seed experiment: 10^7 small strings, keep every 1000th")
    n = w.scaled(10_000_000, 1000)

    with w.phase("alloc"):
        strings = []
        for start in range(0, n, CHUNK):
            strings.extend([str(i) for i in range(start, min(n, start + CHUNK))])
            w.sample()
        kept = strings[::KEEP]

    with w.phase("free"):
        del strings
        gc.collect()
    w.after_free()
    w.idle(1.0)
    w.settle()
    w.mark("settled")

    t = time.monotonic()
    pages = set()
    for s in kept:
        a = id(s)
        pages.update(range(a // FLOOR_PAGE, (a + sys.getsizeof(s) - 1) // FLOOR_PAGE + 1))
    w.extra["floor"] = len(pages) * FLOOR_PAGE
    del pages
    w.untimed += time.monotonic() - t

    for j, s in enumerate(kept):
        if s != str(j * KEEP):
            w.check_failed(f"survivor {j} is {s!r}, expected {str(j * KEEP)!r}")
    crc = zlib.crc32("\n".join(kept).encode())
    w.ops = n
    w.report(f"crc={crc:08x} n={n} live={len(kept)}")


if __name__ == "__main__":
    main()
