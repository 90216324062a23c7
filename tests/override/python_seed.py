"""python_seed.py -- the "seed" experiment: how much memory a Python process
gives back after freeing most of a big heap of small objects, with scattered
survivors pinning the pages.

    l = [str(i) for i in range(10**7)]    # ~10^7 small str objects
    keep = l[::1000]                      # 1 in 1000 survives, spread over all
    del l; gc.collect()                   # of the heap

RSS (from /proc/self/statm) is read before, at the peak, right after the
frees and once more 0.2 s later ("settled": pages whose purge delay was still
running when the frees ended have gone back by then); the figures are the
share of the peak's growth still resident:

    kept % = (after - base) / (peak - base) * 100
    settled % = (settled - base) / (peak - base) * 100

Run it on an allocator (`neap run -- python3 python_seed.py`, or LD_PRELOAD=
with PYTHONMALLOC=malloc), or as is for pymalloc.  It prints one line,

    base_kb=... peak_kb=... after_kb=... kept_pct=... settled_kb=... settled_pct=...
    objects=... malloc=...

where objects says whether Python's objects came from pymalloc or malloc and
malloc names the malloc in the process (neap, jemalloc, mimalloc, tcmalloc or
libc, by the symbols each exports), both looked at after the measurement.
Used by python_release.sh; an optional argument replaces 10**7.
"""
import gc
import os
import sys
import time

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_KB


def which_malloc():
    import ctypes
    process = ctypes.CDLL(None)
    for name, symbol in (("neap", "neap_owns"), ("jemalloc", "mallctl"),
                         ("mimalloc", "mi_version"), ("tcmalloc", "tc_version")):
        if hasattr(process, symbol):
            return name
    return "libc"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10 ** 7
    gc.collect()
    base = rss_kb()
    l = [str(i) for i in range(n)]
    peak = rss_kb()
    keep = l[::1000]
    del l
    gc.collect()
    after = rss_kb()
    time.sleep(0.2)
    settled = rss_kb()
    kept = (after - base) * 100.0 / (peak - base)
    kept_settled = (settled - base) * 100.0 / (peak - base)
    # pymalloc counts its blocks; with PYTHONMALLOC=malloc the count is 0
    objects = "pymalloc" if sys.getallocatedblocks() > 0 else "malloc"
    print("base_kb=%d peak_kb=%d after_kb=%d kept_pct=%.2f settled_kb=%d settled_pct=%.2f "
          "objects=%s malloc=%s"
          % (base, peak, after, kept, settled, kept_settled, objects, which_malloc()))
    assert len(keep) == (n + 999) // 1000


if __name__ == "__main__":
    main()
