"""gcbench.py: CPython's cycle collector (the gc module) on the graph shapes
that bench/gc/gcbench.c builds with neap's objects.  bench/gc/run runs both
and compares them.

    python3 bench/gc/gcbench.py cycles [--objects N] [--cycle K]
    python3 bench/gc/gcbench.py young  [--objects N] [--iterations M] [--ring R] [--threshold T]

Every object is a small list, the counterpart of gcbench.c's `node` (a
tracked object with two reference slots): the node with slots a, b is the
list [a, b], an empty slot None there and NULL in C.

  cycles  N objects (default 10^6) as N/K garbage rings of K lists (default
          2: a = []; b = [a]; a.append(b)), built with gc.disable() and
          every outside reference dropped; then one timed gc.collect(),
          which must find all N.  RSS before the build, after it and after
          the collection.

  young   a complete binary tree of N lists (default 10^6), built with
          gc.disable() and moved to the oldest generation by gc.collect().
          Then, gc enabled with thresholds (T, 10, 10), M iterations (default
          4*10^6) of: a = []; b = [a]; every other iteration also
          a.append(b) (a garbage cycle once dropped); ring[i % R] = b, which
          keeps the last R pairs alive a little while.  gc.callbacks time
          every collection (time.perf_counter_ns, "start" to "stop"); the
          pauses are summarised per generation.  Self-check: the collections
          found exactly the objects of the cycles, and the tree is whole.

Output: one JSON line on stdout, exit 0.  A failed self-check prints
"gcbench: check failed: ..." on stderr and exits 1; a bad command line
exits 2.  Pause statistics (the same definitions as gcbench.c): median (mean
of the two middle values for an even count), p99 by nearest rank (the
ceil(0.99 n)-th smallest), max, mean, total.  RSS comes from /proc/self/statm.
"""
import argparse
import gc
import json
import math
import os
import platform
import sys
import sysconfig
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


def check_failed(msg):
    print("gcbench: check failed: " + msg, file=sys.stderr)
    sys.exit(1)


def python_info():
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        alloc = "mimalloc (free-threaded build)"
    elif os.environ.get("PYTHONMALLOC"):
        alloc = "PYTHONMALLOC=" + os.environ["PYTHONMALLOC"]
    else:
        alloc = "pymalloc (default)" if sysconfig.get_config_var("WITH_PYMALLOC") else "malloc"
    return {"implementation": platform.python_implementation(),
            "version": platform.python_version(), "allocator": alloc}


def report(bench, params, **fields):
    out = {"bench": bench, "side": "cpython", "params": params, "ok": True}
    out.update(fields)
    out["python"] = python_info()
    print(json.dumps(out, separators=(",", ":")), flush=True)


# ------------------------------------------------- cycles: one full collection

def make_rings(rings, k):
    """rings rings of k lists, each referring to the one made before it, the
    first to the last; nothing outside refers to them once this returns."""
    if k == 2:
        for _ in range(rings):
            a = []
            b = [a]
            a.append(b)
    else:
        for _ in range(rings):
            first = prev = []
            for _ in range(k - 1):
                prev = [prev]
            first.append(prev)


def ring_bytes(k):
    """Mean sys.getsizeof (GC header and item array included) of one ring's
    lists."""
    first = prev = []
    ring = [first]
    for _ in range(k - 1):
        prev = [prev]
        ring.append(prev)
    first.append(prev)
    size = sum(map(sys.getsizeof, ring)) / k
    first.clear()
    return size


def run_cycles(objects, k):
    if objects % k:
        check_failed(f"--objects {objects} is not a multiple of --cycle {k}")
    gc.disable()
    gc.collect()
    rss_base = rss_bytes()

    t0 = time.perf_counter()
    make_rings(objects // k, k)
    t_build = time.perf_counter() - t0
    rss_built = rss_bytes()

    t0 = time.perf_counter()
    found = gc.collect()
    t_collect = time.perf_counter() - t0
    rss_collected = rss_bytes()

    if found != objects:
        check_failed(f"gc.collect() found {found} objects, expected {objects}")
    report("cycles", {"objects": objects, "cycle": k}, found=found,
           times={"build": t_build, "collect": t_collect},
           rss={"base": rss_base, "built": rss_built, "collected": rss_collected},
           bytes_per_object=ring_bytes(k))


# ------------------------------------- young: pauses beside long-lived objects

def build_tree(n):
    """A complete-as-can-be binary tree of n lists (left subtree (n-1)//2)."""
    if n == 0:
        return None
    left = (n - 1) // 2
    return [build_tree(left), build_tree(n - 1 - left)]


def count_tree(t):
    return 0 if t is None else 1 + count_tree(t[0]) + count_tree(t[1])


def pause_stats(ns):
    """The pauses (nanoseconds) of one generation, in milliseconds."""
    n = len(ns)
    if not n:
        return {"count": 0}
    v = sorted(x / 1e6 for x in ns)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    total = sum(v)
    return {"count": n, "median_ms": med, "p99_ms": v[max(1, math.ceil(0.99 * n)) - 1],
            "max_ms": v[-1], "mean_ms": total / n, "total_ms": total}


def churn(iterations, ring):
    r = len(ring)
    for i in range(iterations):
        a = []
        b = [a]
        if not i & 1:
            a.append(b)
        ring[i % r] = b


def run_young(objects, iterations, ring_len, threshold):
    gc.disable()
    gc.set_threshold(threshold, 10, 10)
    gc.collect()

    t0 = time.perf_counter()
    root = build_tree(objects)
    t_build = time.perf_counter() - t0
    ring = [None] * ring_len        # goes to the oldest generation with the tree
    t0 = time.perf_counter()
    found = gc.collect()
    t_promote = time.perf_counter() - t0
    if found != 0:
        check_failed(f"the collection after the build found {found} objects, expected 0")

    pauses = ([], [], [])
    state = {"started": 0, "collected": 0, "uncollectable": 0}
    clock = time.perf_counter_ns

    def on_gc(phase, info):
        if phase == "start":
            state["started"] = clock()
            return
        t = clock() - state["started"]
        pauses[info["generation"]].append(t)
        state["collected"] += info["collected"]
        state["uncollectable"] += info["uncollectable"]

    gc.callbacks.append(on_gc)
    gc.enable()
    t0 = time.perf_counter()
    churn(iterations, ring)
    t_churn = time.perf_counter() - t0
    during = [len(p) for p in pauses]

    for i in range(ring_len):
        ring[i] = None
    t0 = time.perf_counter()
    gc.collect()
    t_final = time.perf_counter() - t0
    gc.disable()
    gc.callbacks.remove(on_gc)

    expected = 2 * ((iterations + 1) // 2)
    if state["collected"] != expected or state["uncollectable"]:
        check_failed("the collections found %d objects (%d uncollectable), expected %d"
                     % (state["collected"], state["uncollectable"], expected))
    intact = count_tree(root)
    if intact != objects:
        check_failed(f"the tree has {intact} nodes, expected {objects}")
    del root

    report("young", {"objects": objects, "iterations": iterations, "ring": ring_len,
                     "threshold": [threshold, 10, 10]},
           times={"build": t_build, "promote": t_promote, "churn": t_churn, "final": t_final},
           collections=during, collected=state["collected"],
           pauses={"gen%d" % g: pause_stats(pauses[g][:during[g]]) for g in range(3)})


# ------------------------------------------------------------- command line

def whole(min_value):
    def parse(s):
        try:
            v = float(s)            # 1e6 is accepted
        except ValueError:
            v = -1.0
        if v < min_value or v > 1e12 or v != math.floor(v):
            raise argparse.ArgumentTypeError(
                f"bad value {s} (a whole number, at least {min_value})")
        return int(v)
    return parse


def main(argv):
    ap = argparse.ArgumentParser(prog="gcbench.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="bench", required=True)
    c = sub.add_parser("cycles", help="one full collection of N objects in garbage rings")
    c.add_argument("--objects", type=whole(1), default=1_000_000)
    c.add_argument("--cycle", type=whole(1), default=2)
    y = sub.add_parser("young", help="the pauses of young collections beside N old objects")
    y.add_argument("--objects", type=whole(1), default=1_000_000)
    y.add_argument("--iterations", type=whole(1), default=4_000_000)
    y.add_argument("--ring", type=whole(1), default=100)
    y.add_argument("--threshold", type=whole(1), default=2000)
    a = ap.parse_args(argv)
    if a.bench == "cycles":
        run_cycles(a.objects, a.cycle)
    else:
        run_young(a.objects, a.iterations, a.ring, a.threshold)


if __name__ == "__main__":
    main(sys.argv[1:])
