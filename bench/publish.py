#!/usr/bin/env python3
"""Turn one `bench/all` run into the README's table and chart.

usage: publish.py OUT_DIR [--readme README.md] [--chart docs/bench.svg]

OUT_DIR holds what `bench/all` collected: `http1.tsv` and `http1-logs.tsv`
(bench/run's per-round rows) and `h2c.json`, `tls.json`, `l4.json`, `h3.json`
(the other scripts' RESULTS_JSON). A mode that is missing is left out. The table
goes to OUT_DIR/table.md and, with --readme, between the README's
`<!-- bench:all -->` and `<!-- /bench:all -->` lines; the chart (matplotlib)
to --chart.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys

ANCHORS = ["nginx", "haproxy", "caddy"]
NAMES = {"fulcrum": "Fulcrum", "nginx": "nginx", "haproxy": "HAProxy", "caddy": "Caddy"}
COLOURS = {"fulcrum": "#d9480f", "nginx": "#2b8a3e", "haproxy": "#1c7ed6", "caddy": "#862e9c"}


def median(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def from_tsv(path, key):
    """Median of bench/run's column `key` per proxy."""
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = {}
    for r in rows:
        try:
            v = float(r[key])
        except (TypeError, ValueError):
            continue
        out.setdefault(r["proxy"], []).append(v)
    return {p: median(vs) for p, vs in out.items()}


def from_json(doc, key):
    """Median of a RESULTS_JSON figure per proxy; h3.json keeps lists per figure."""
    out = {}
    for p, rounds in doc["rounds"].items():
        if isinstance(rounds, dict):
            vals = rounds.get(key)
            out[p] = median(vals) if isinstance(vals, list) else vals
        else:
            out[p] = median(r.get(key) for r in rounds)
    return out


class Mode:
    """One row: a throughput (higher is better) and, when measured, a p99."""

    def __init__(self, name, unit, values, p99=None):
        self.name, self.unit, self.values, self.p99 = name, unit, values, p99 or {}

    def best_anchor(self):
        anchors = [(v, a) for a, v in self.values.items() if a in ANCHORS and v]
        return max(anchors) if anchors else (None, None)

    def lowest_p99(self):
        anchors = [(v, a) for a, v in self.p99.items() if a in ANCHORS and v]
        return min(anchors) if anchors else (None, None)


class Memory:
    """One row of KB per idle connection (lower is better)."""

    def __init__(self, name, values):
        self.name, self.values = name, values


def collect(out):
    modes, memory = [], []

    def load(name):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    for tsv, label in (("http1.tsv", "HTTP/1.1 keep-alive, 64 connections, access logs off"),
                       ("http1-logs.tsv", "HTTP/1.1 keep-alive, 64 connections, access logs on")):
        path = os.path.join(out, tsv)
        if os.path.exists(path):
            modes.append(Mode(label, "requests", from_tsv(path, "req_per_cpu_s"),
                              from_tsv(path, "p99_ms")))
            if tsv == "http1.tsv":
                memory.append(Memory("idle HTTP/1.1 keep-alive connection",
                                     from_tsv(path, "kb_per_conn")))
    h2c = load("h2c.json")
    if h2c:
        a = h2c["about"]
        modes.append(Mode(f"h2c, {a['conns']} connections x {a['streams']} streams", "requests",
                          from_json(h2c, "per_cpu_s"), from_json(h2c, "p99_ms")))
    tls = load("tls.json")
    if tls:
        a = tls["about"]
        for key, label in (("ka", f"HTTPS keep-alive (TLS 1.3), {a['conns']} connections"),
                           ("h2", f"HTTP/2 over TLS, {a['h2_conns']} x {a['h2_streams']} streams"),
                           ("full", f"new TLS connection per request, full handshake, "
                                    f"{a['hs_conns']} connections"),
                           ("resumed", f"new TLS connection per request, resumed, "
                                       f"{a['hs_conns']} connections")):
            modes.append(Mode(label, "requests", from_json(tls, f"{key}_per_cpu_s"),
                              from_json(tls, f"{key}_p99_ms")))
        memory.append(Memory("idle TLS connection", from_json(tls, "idle_kb")))
    l4 = load("l4.json")
    if l4:
        a = l4["about"]
        if "conns" in a["only"]:
            modes.append(Mode(f"short TCP connections, {a['concurrency']} at a time",
                              "connections", from_json(l4, "conns_per_cpu_s")))
        if "bulk" in a["only"]:
            modes.append(Mode("TCP bulk transfer, one connection", "MiB",
                              from_json(l4, "bulk_mib_per_cpu_s")))
        if "ws" in a["only"]:
            memory.append(Memory("idle WebSocket", from_json(l4, "ws_kb_per_socket")))
    h3 = load("h3.json")
    if h3:
        a = h3["about"]
        modes.append(Mode(f"HTTP/3, {a['conns']} connections x {a['streams']} streams",
                          "requests", from_json(h3, "rps"), from_json(h3, "p99")))
        modes.append(Mode("HTTP/3, 100 MiB download", "MiB", from_json(h3, "h3_mib")))
        memory.append(Memory("idle QUIC connection", from_json(h3, "idle")))
    return modes, memory


def num(v, digits=0):
    if v is None:
        return ""
    return f"{v:,.{digits}f}"


def table(modes, memory):
    lines = ["| mode (per proxy CPU-second) | Fulcrum | nginx | HAProxy | Caddy "
             "| Fulcrum ÷ best anchor (goal 1.2) | p99 ms, Fulcrum | lowest anchor p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for m in modes:
        best, who = m.best_anchor()
        f = m.values.get("fulcrum")
        ratio = f"**{f / best:.2f}** ({NAMES[who]})" if f and best else ""
        low, low_who = m.lowest_p99()
        fp = m.p99.get("fulcrum")
        lines.append(f"| {m.name}, {m.unit} | {num(f)} | {num(m.values.get('nginx'))} "
                     f"| {num(m.values.get('haproxy'))} | {num(m.values.get('caddy'))} "
                     f"| {ratio} | {num(fp, 2)} "
                     f"| {num(low, 2)}{f' ({NAMES[low_who]})' if low_who else ''} |")
    lines.append("")
    lines.append("| KB of proxy memory per ... (lower is better) | Fulcrum | nginx | HAProxy "
                 "| Caddy | Fulcrum ÷ lowest anchor |")
    lines.append("|---|---|---|---|---|---|")
    for m in memory:
        anchors = [(v, a) for a, v in m.values.items() if a in ANCHORS and v is not None]
        f = m.values.get("fulcrum")
        low = min(anchors) if anchors else (None, None)
        ratio = f"{f / low[0]:.2f} ({NAMES[low[1]]})" if f is not None and low[0] else ""
        lines.append(f"| {m.name} | {num(f, 2)} | {num(m.values.get('nginx'), 2)} "
                     f"| {num(m.values.get('haproxy'), 2)} | {num(m.values.get('caddy'), 2)} "
                     f"| {ratio} |")
    return "\n".join(lines)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def chart(modes, memory, path, subtitle):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: a small, diffable SVG
    matplotlib.rcParams["svg.hashsalt"] = "fulcrum"
    import matplotlib.pyplot as plt

    proxies = ["fulcrum", "nginx", "haproxy", "caddy"]
    rows = len(modes) + len(memory)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(15, 0.5 * rows + 2.5), sharey=True, layout="constrained",
        gridspec_kw={"width_ratios": [1.6, 1]})
    height = 0.8 / len(proxies)
    cap = 2.0  # HTTP/3 against Caddy is far off this scale: its bar ends here, labelled
    labels = [m.name for m in modes] + [f"KB per {m.name}" for m in memory]

    def y(j, i):
        return j + (i - 1.5) * height

    for i, p in enumerate(proxies):
        kw = {"color": COLOURS[p], "label": NAMES[p]}
        for j, m in enumerate(modes):
            best, _ = m.best_anchor()
            v = m.values.get(p)
            if v and best:
                ax1.barh(y(j, i), min(v / best, cap), height, **kw)
                if p == "fulcrum":
                    ax1.text(min(v / best, cap) + 0.02, y(j, i), f"{v / best:.2f}",
                             va="center", fontsize=7)
                kw.pop("label", None)
            if m.p99.get(p):
                ax2.barh(y(j, i), m.p99[p], height, color=COLOURS[p])
        for j, m in enumerate(memory, len(modes)):
            anchors = [v for a, v in m.values.items() if a in ANCHORS and v]
            v = m.values.get(p)
            if v is not None and anchors:
                ax1.barh(y(j, i), min(v / min(anchors), cap), height, color=COLOURS[p],
                         hatch="//", alpha=0.8)
                if p == "fulcrum":
                    ax1.text(min(v / min(anchors), cap) + 0.02, y(j, i),
                             f"{v / min(anchors):.2f}", va="center", fontsize=7)
    ax1.axvline(1.0, color="#555", lw=0.8)
    ax1.axvline(1.2, color=COLOURS["fulcrum"], lw=0.8, ls="--")
    ax1.axhline(len(modes) - 0.5, color="#999", lw=0.6)
    ax1.set_xlim(0, cap + 0.25)
    ax1.set_yticks(range(rows), labels, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("above the line: work per proxy CPU-second ÷ the best anchor's (dashed: "
                   "the goal, 1.2; cut at 2); below: memory ÷ the lowest anchor's", fontsize=8)
    ax1.legend(loc="lower right", fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("p99 latency, ms, log scale (lower is better)", fontsize=8)
    fig.suptitle(f"Fulcrum beside nginx, HAProxy and Caddy, one core each: {subtitle}",
                 fontsize=10)
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def replace_block(readme, block):
    with open(readme) as f:
        text = f.read()
    begin, end = "<!-- bench:all -->", "<!-- /bench:all -->"
    if begin not in text or end not in text:
        sys.exit(f"{readme}: no {begin} ... {end} block to replace")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{begin}\n{block}\n{end}{tail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--readme")
    ap.add_argument("--chart")
    args = ap.parse_args()
    modes, memory = collect(args.out)
    if not modes:
        sys.exit(f"{args.out}: no results")
    about = {}
    if os.path.exists(os.path.join(args.out, "about.json")):
        with open(os.path.join(args.out, "about.json")) as f:
            about = json.load(f)
    date = about.get("date", "")
    commit = about.get("commit") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = about.get("cpu") or cpu_model()
    subtitle = f"{date}, {cpu}, Fulcrum at {commit}"
    body = table(modes, memory)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(body + "\n")
    print(body)
    if args.chart:
        chart(modes, memory, args.chart, subtitle)
    if args.readme:
        versions = about.get("versions", "")
        block = (f"Measured {date} on {cpu} ({about.get('cpus', '?')} CPUs), Fulcrum at "
                 f"{commit}{'; ' + versions if versions else ''}. Remake it with "
                 f"`bash bench/all` (about 25 minutes; `bench/README.md` says how each "
                 f"figure is taken).\n\n"
                 f"![Fulcrum beside nginx, HAProxy and Caddy per mode]"
                 f"({os.path.relpath(args.chart, os.path.dirname(args.readme) or '.')})\n\n"
                 if args.chart else "") + body
        replace_block(args.readme, block)


if __name__ == "__main__":
    main()
