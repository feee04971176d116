"""What the bench scripts share for `bench/all`: their figures as JSON, and p99s.

Each script keeps printing its own table; when `RESULTS_JSON=PATH` is set it also
writes every round's figures and the medians there, which `bench/publish.py` turns
into the README's table and chart.
"""
import json
import os
import platform
import re
import time


def save(script, results, medians, **about):
    """Write the rounds and medians to $RESULTS_JSON, if set."""
    path = os.environ.get("RESULTS_JSON")
    if not path:
        return
    with open(path, "w") as f:
        json.dump({"script": script, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                   "host": platform.node(), "about": about, "rounds": results,
                   "medians": medians}, f, indent=1, default=float)


def wrk_p99(out):
    """wrk --latency's 99th percentile in ms, or None."""
    m = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s)\b", out, re.M)
    if not m:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def h2load_p99(log_file):
    """The 99th percentile in ms of h2load's --log-file (third column: µs per request)."""
    try:
        with open(log_file) as f:
            times = sorted(int(line.split("\t")[2]) for line in f if line.count("\t") >= 2)
    except (OSError, ValueError):
        return None
    finally:
        try:
            os.unlink(log_file)  # hundreds of thousands of lines per run
        except OSError:
            pass
    if not times:
        return None
    return times[min(len(times) - 1, int(len(times) * 0.99))] / 1000.0
