"""Shared helpers of the Python workloads (not a workload itself).

The command line (--scale F), the clock (time.monotonic, CLOCK_MONOTONIC),
RSS from /proc/self/statm, and the one-line JSON report with the same keys
as the C workloads: workload, params, ok, check, phases, ops, rss (base,
peak, after_free, after_idle) and series.  Check failures print
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
        self.series = []
        self.extra = {}
        self.t0 = time.monotonic()
        self.next_series = 0.0
        base = self.sample(force=True)
        self.rss["base"] = base
        self.rss["peak"] = max(base, self.rss.pop("peak", 0))

    def scaled(self, base, minimum):
        return max(minimum, int(base * self.scale + 0.5))

    def sample(self, force=False):
        """Read RSS now; update the peak; add to the series every 50 ms."""
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
        self.idle_seconds = getattr(self, "idle_seconds", 0.0) + time.monotonic() - start

    def check_failed(self, what):
        sys.stderr.write(f"neapwork {self.name}: check failed: {what}\n")
        sys.stderr.flush()
        sys.exit(1)

    def report(self, check):
        out = {"workload": self.name, "params": self.params, "ok": True, "check": check,
               "phases": self.phases, "ops": self.ops, "rss": self.rss,
               "idle_seconds": getattr(self, "idle_seconds", 0.0),
               "series_interval": SERIES_INTERVAL, "series": self.series}
        out.update(self.extra)
        sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
        sys.stdout.flush()
