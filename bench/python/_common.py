"""Shared helpers of the Python workloads (not a workload itself).

The command line (--scale F), the clock (time.monotonic, CLOCK_MONOTONIC),
RSS from /proc/self/statm, Pss from /proc/self/smaps_rollup at the forced
samples (a meshing allocator maps one physical page at several virtual
pages: RSS counts it at each, Pss once; its reading time is reported as
untimed_seconds), and the one-line JSON report with the same keys as the C
workloads: workload, params, ok, check, phases, ops, rss and pss (base,
peak, after_free, after_idle), marks, and series.  Check failures print
"neapwork NAME: check failed: ..." on stderr and exit 1.
"""
import argparse
import json
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
SERIES_INTERVAL = 0.050


def rss_bytes():
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


def pss_bytes():
    """Pss in bytes, or None where smaps_rollup is missing."""
    try:
        with open("/proc/self/smaps_rollup", "rb") as f:
            for line in f.read().split(b"\n"):
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def neap_mesh_stats():
    """Under neap (neap_stats_get in the process): its meshing counters, as
    the C workloads report them, else None.  neap_stats_t (include/neap.h)
    is 22 size_t fields, then the per-class table."""
    try:
        import ctypes
        lib = ctypes.CDLL(None)
        get, opt = lib.neap_stats_get, lib.neap_option_get
    except (OSError, AttributeError):
        return None
    opt.restype = ctypes.c_long
    mesh = opt(16)      # NEAP_OPTION_MESH
    if mesh not in (0, 1):
        return None     # a neap from before meshing: no such option, no such counters
    buf = (ctypes.c_size_t * 512)()
    get(buf)
    return {"mesh": mesh, "meshes": buf[19], "mesh_pages": buf[18], "unmeshes": buf[20],
            "mesh_ns": buf[21], "pages_used": buf[5]}


class Workload:
    """A run: parses the command line, samples RSS, prints the report."""

    def __init__(self, name, description):
        self.name = name
        parser = argparse.ArgumentParser(prog=f"{name}.py", description=description)
        parser.add_argument("--scale", type=float, default=1.0,
                            help="multiply object counts and iterations (default 1.0)")
        args = parser.parse_args()
        if not (1e-6 <= args.scale <= 1000):
            parser.error(f"--scale: bad value {args.scale} (expected a number in [1e-06, 1000])")
        self.scale = args.scale
        self.params = {"scale": self.scale}
        self.phases = {}
        self.ops = 0
        self.rss = {}
        self.pss = {}
        self.marks = {}
        self.untimed = 0.0
        self.series = []
        self.extra = {}
        self.t0 = time.monotonic()
        self.next_series = 0.0
        base = self.sample(force=True)
        self.rss["base"] = base
        self.rss["peak"] = max(base, self.rss.pop("peak", 0))
        self.pss["base"] = self.last_pss

    def scaled(self, base, minimum):
        return max(minimum, int(base * self.scale + 0.5))

    def read_pss(self):
        t = time.monotonic()
        p = pss_bytes()
        if p is not None and p > self.pss.get("peak", -1):
            self.pss["peak"] = p
        self.last_pss = p
        self.untimed += time.monotonic() - t
        return p

    def sample(self, force=False):
        """Read RSS now; update the peak; add to the series every 50 ms.
        A forced sample reads Pss too."""
        if force:
            self.read_pss()
        r = rss_bytes()
        if r > self.rss.get("peak", 0):
            self.rss["peak"] = r
        t = time.monotonic() - self.t0
        if force or t >= self.next_series:
            self.series.append([round(t, 3), r])
            self.next_series = t + SERIES_INTERVAL
        return r

    def phase(self, name):
        """with w.phase("build"): ... times the block into phases[name]."""
        workload = self

        class Timer:
            def __enter__(self):
                self.t = time.monotonic()

            def __exit__(self, *exc):
                workload.phases[name] = round(time.monotonic() - self.t, 6)
                workload.sample(force=True)
                return False

        return Timer()

    def after_free(self):
        self.rss["after_free"] = self.sample(force=True)
        self.pss["after_free"] = self.last_pss

    def idle(self, seconds):
        start = time.monotonic()
        end = start + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.010))
            self.sample()
        self.rss["after_idle"] = self.sample(force=True)
        self.pss["after_idle"] = self.last_pss
        self.idle_seconds = getattr(self, "idle_seconds", 0.0) + time.monotonic() - start

    def settle(self, max_seconds=8.0, interval=0.5):
        """Idle on, reading Pss every interval, until three reads in a row
        agree within 0.5% of the peak's growth (at least 256 KiB) or
        max_seconds have passed (as the C workloads' rss_settle)."""
        start = time.monotonic()
        end = start + max_seconds
        growth = self.pss.get("peak", 0) - (self.pss.get("base") or 0)
        tol = max(growth // 200, 256 << 10)
        prev = [self.read_pss()]
        while prev[-1] is not None:
            stop = min(time.monotonic() + interval, end)
            while True:
                left = stop - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.010))
                self.sample()
            prev.append(self.read_pss())
            if (len(prev) >= 3 and prev[-1] is not None and
                    abs(prev[-1] - prev[-3]) <= tol and abs(prev[-1] - prev[-2]) <= tol):
                break
            if time.monotonic() >= end - 1e-3:
                break
        took = time.monotonic() - start
        self.idle_seconds = getattr(self, "idle_seconds", 0.0) + took
        return took

    def mark(self, name):
        """An extra named sample, RSS and Pss, into "marks"."""
        r = self.sample(force=True)
        self.marks[name] = {"t": round(time.monotonic() - self.t0, 3), "rss": r,
                            "pss": self.last_pss}
        t = time.monotonic()
        st = neap_mesh_stats()
        if st:
            self.marks[name]["neap"] = st
        self.untimed += time.monotonic() - t

    def check_failed(self, what):
        sys.stderr.write(f"neapwork {self.name}: check failed: {what}\n")
        sys.stderr.flush()
        sys.exit(1)

    def report(self, check):
        out = {"workload": self.name, "params": self.params, "ok": True, "check": check,
               "phases": self.phases, "ops": self.ops, "rss": self.rss,
               "idle_seconds": getattr(self, "idle_seconds", 0.0),
               "untimed_seconds": round(self.untimed, 6),
               "series_interval": SERIES_INTERVAL, "series": self.series}
        if self.pss.get("base") is not None:
            out["pss"] = self.pss
            out["pss_peak_sampled"] = True     # the phases end with a forced sample
        if self.marks:
            out["marks"] = self.marks
        st = neap_mesh_stats()
        if st:
            out["neap"] = st
        out.update(self.extra)
        sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
        sys.stdout.flush()
