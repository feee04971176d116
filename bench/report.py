#!/usr/bin/env python3
"""Summarise bench/run's per-round TSV: the median over rounds per proxy.

usage: report.py RESULTS.tsv [PROXY ...]   (PROXY order = table order)
"""
import csv
import statistics
import sys

NUMERIC = ["rps", "p50_ms", "p99_ms", "requests", "cpu_s", "req_per_cpu_s", "kb_per_conn"]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    path, order = sys.argv[1], sys.argv[2:]
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    proxies = order or sorted({r["proxy"] for r in rows})
    summary = {}
    for p in proxies:
        mine = [r for r in rows if r["proxy"] == p]
        s = {k: median(num(r[k]) for r in mine) for k in NUMERIC}
        eff = [num(r["req_per_cpu_s"]) for r in mine if num(r["req_per_cpu_s"]) is not None]
        kb = [num(r["kb_per_conn"]) for r in mine if num(r["kb_per_conn"]) is not None]
        s["eff_range"] = (min(eff), max(eff)) if eff else None
        s["kb_range"] = (min(kb), max(kb)) if kb else None
        s["rounds_ok"] = len(eff)
        s["rounds"] = len(mine)
        s["idle_ok"] = len(kb)
        s["problems"] = sorted({r["note"] for r in mine if r.get("note") not in (None, "", "ok")})
        summary[p] = s

    base = summary.get("haproxy")

    def ratio(p, key):
        v = summary[p][key]
        b = base[key] if base else None
        return None if v is None or not b else v / b

    head = ["proxy", "req/s", "p50 ms", "p99 ms", "proxy CPU s", "req/CPU-s", "(min-max)",
            "vs HAProxy", "KB/idle conn", "(min-max)", "vs HAProxy", "rounds ok"]
    table = []
    for p in proxies:
        s = summary[p]
        er, kr = s["eff_range"], s["kb_range"]
        table.append([
            p,
            fmt(s["rps"], ",.0f"),
            fmt(s["p50_ms"], ".2f"),
            fmt(s["p99_ms"], ".2f"),
            fmt(s["cpu_s"], ".2f"),
            fmt(s["req_per_cpu_s"], ",.0f"),
            "-" if not er else f"{er[0]:,.0f}-{er[1]:,.0f}",
            fmt(ratio(p, "req_per_cpu_s"), ".2f"),
            fmt(s["kb_per_conn"], ".2f"),
            "-" if not kr else f"{kr[0]:.2f}-{kr[1]:.2f}",
            fmt(ratio(p, "kb_per_conn"), ".2f"),
            f"{s['rounds_ok']}/{s['rounds']} tput, {s['idle_ok']}/{s['rounds']} idle",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(head))
    print(line(["-" * w for w in widths]))
    for row in table:
        print(line(row))
    for p in proxies:
        if summary[p]["problems"]:
            print(f"  {p}: " + "; ".join(summary[p]["problems"]))
    print("(medians over rounds; 'vs HAProxy' divides the medians; KB/idle conn = "
          "(RSS after - RSS before) / idle connections)")


if __name__ == "__main__":
    main()
