#!/usr/bin/env python3
"""Shaping at the edge beside nginx, with the method of bench/run: each proxy alone
on CPU 0 with one worker, the client (wrk) and the backend nginx on CPU 1, CPU time
read from /proc/PID/stat, requests per proxy CPU-second, medians of ROUNDS.

Workloads, each proxy configured the way its operators would (defaults on: Fulcrum
with its default access log, nginx with its access log):
- json-gzip: a 20 KB JSON response from the backend, compressed with gzip for
  clients sending `Accept-Encoding: gzip`. Fulcrum `compress = ["gzip"]` (level 5,
  Caddy's default) against nginx `gzip on` (level 1, its default); the bytes each
  sends per response are reported too, since the two levels differ.
- json-gzip1: the same with Fulcrum at `compress_level = { gzip = 1 }`, nginx's
  own default level, for a like-for-like figure.
- json-plain: the same response uncompressed, the baseline of both.
- static-1k and static-1m: a 1 KB and a 1 MiB file served from disk, Fulcrum
  `static = { root }` against nginx `root` with `sendfile on`.

    python3 bench/shape.py
    ROUNDS=5 DURATION=10s CONNS=64 SKIP_BUILD=1 WORKLOADS="json-gzip static-1k" python3 bench/shape.py
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from l4 import cpu_ticks, free_port, install, raise_nofile, wait_port  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "10s")
CONNS = int(os.environ.get("CONNS", "64"))
PROXIES = os.environ.get("PROXIES", "fulcrum nginx").split()
WORKLOADS = os.environ.get("WORKLOADS", "json-gzip json-gzip1 json-plain static-1k static-1m").split()
PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
SKIP_BUILD = os.environ.get("SKIP_BUILD") == "1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULCRUM = os.path.join(REPO, "target", "release", "fulcrum")
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[shape]", time.strftime("%T"), *a, file=sys.stderr, flush=True)


def json_doc():
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "price": i % 97 + 0.99}
             for i in range(345)]
    return json.dumps({"items": items}, separators=(",", ":")).encode()


def site(d):
    root = f"{d}/site"
    os.makedirs(root, exist_ok=True)
    with open(f"{root}/api.json", "wb") as f:
        f.write(json_doc())
    with open(f"{root}/1k.bin", "wb") as f:
        f.write(os.urandom(1024))
    with open(f"{root}/1m.bin", "wb") as f:
        f.write(os.urandom(1 << 20))
    return root


def backend(d, root):
    port = free_port()
    with open(f"{d}/backend.conf", "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/backend.pid;
error_log {d}/backend-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    types {{ application/json json; }}
    server {{ listen 127.0.0.1:{port} backlog=4096; root {root}; }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, "nginx", "-p", f"{d}/", "-c",
                          f"{d}/backend.conf", "-e", f"{d}/backend-error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "backend nginx")
    return p, port


def proxy_cmd(proxy, d, port, workload, root, backend_port):
    if proxy == "fulcrum":
        if workload.startswith("static"):
            route = f'static = {{ root = "{root}" }}'
        else:
            compress = {"json-gzip": 'compress = ["gzip"]\n',
                        "json-gzip1": 'compress = ["gzip"]\ncompress_level = { gzip = 1 }\n'}.get(workload, "")
            route = f'{compress}pool = "app"'
        with open(f"{d}/fulcrum.toml", "w") as f:
            f.write(f"""workers = 1
[listeners.public]
address = "127.0.0.1:{port}"

[[routes]]
{route}

[pools.app]
backends = ["127.0.0.1:{backend_port}"]
""")
        return [FULCRUM, "run", "--config", f"{d}/fulcrum.toml"]
    if workload.startswith("static"):
        location = f"root {root};"
    else:
        location = f"proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    gzip = "gzip on; gzip_types application/json;" if workload.startswith("json-gzip") else ""
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/nginx-access.log combined buffer=64k flush=1s;
    sendfile on;
    keepalive_requests 1000000;
    types {{ application/json json; application/octet-stream bin; }}
    {gzip}
    upstream app {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
    server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ {location} }} }}
}}
""")
    return ["nginx", "-p", f"{d}/", "-c", f"{d}/nginx.conf", "-e", f"{d}/nginx-error.log"]


def path_of(workload):
    return {"json-gzip": "/api.json", "json-gzip1": "/api.json", "json-plain": "/api.json",
            "static-1k": "/1k.bin", "static-1m": "/1m.bin"}[workload]


def wrk(port, workload):
    conns = 16 if workload == "static-1m" else CONNS
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{DURATION}",
           f"http://127.0.0.1:{port}{path_of(workload)}"]
    if workload.startswith("json-gzip"):
        cmd[5:5] = ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, errors + (int(non2xx.group(1)) if non2xx else 0)


def response_bytes(port, workload):
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
           f"http://127.0.0.1:{port}{path_of(workload)}"]
    if workload.startswith("json-gzip"):
        cmd[1:1] = ["-H", "Accept-Encoding: gzip"]
    return int(subprocess.run(cmd, capture_output=True, text=True).stdout or 0)


def measure(proxy, d, workload, root, backend_port):
    port = free_port()
    cmd = proxy_cmd(proxy, d, port, workload, root, backend_port)
    logf = open(f"{d}/{proxy}.log", "wb")
    p = subprocess.Popen(["taskset", "-c", PROXY_CPU, *cmd], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf)
    try:
        wait_port(port, p, proxy)
        size = response_bytes(port, workload)
        wrk_warm = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c4", "-d1s",
                    f"http://127.0.0.1:{port}{path_of(workload)}"]
        subprocess.run(wrk_warm, capture_output=True)
        t0 = cpu_ticks(p.pid)
        reqs, errors = wrk(port, workload)
        cpu = (cpu_ticks(p.pid) - t0) / TICK
        return {"per_cpu_s": reqs / max(cpu, 1 / TICK), "errors": errors, "bytes": size}
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        logf.close()
        # Access logs of a run are large; only the figures are kept.
        for f in (f"{d}/{proxy}.log", f"{d}/nginx-access.log"):
            if os.path.exists(f):
                os.remove(f)


def main():
    for tool, pkg in (("nginx", "nginx"), ("wrk", "wrk"), ("curl", "curl")):
        if not shutil.which(tool):
            install(pkg)
    raise_nofile()
    if not SKIP_BUILD:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "fulcrum"], cwd=REPO, check=True)
    d = tempfile.mkdtemp(prefix="fulcrum-shape-")
    root = site(d)
    bp, backend_port = backend(d, root)
    results = {}
    try:
        for r in range(ROUNDS):
            for w in WORKLOADS:
                for proxy in PROXIES:
                    m = measure(proxy, d, w, root, backend_port)
                    results.setdefault((w, proxy), []).append(m)
                    log(f"round {r + 1} {w} {proxy}: {m['per_cpu_s']:.0f} req/CPU-s, "
                        f"{m['bytes']} B/response, {m['errors']} errors")
    finally:
        bp.terminate()
        bp.wait()
        shutil.rmtree(d, ignore_errors=True)
    print(f"| workload | {' | '.join(PROXIES)} | Fulcrum / nginx | bytes per response |")
    print(f"|---|{'---|' * len(PROXIES)}---|---|")
    for w in WORKLOADS:
        med = {p: statistics.median(m["per_cpu_s"] for m in results[(w, p)]) for p in PROXIES}
        size = " / ".join(str(results[(w, p)][0]["bytes"]) for p in PROXIES)
        errs = sum(m["errors"] for p in PROXIES for m in results[(w, p)])
        ratio = f"{med['fulcrum'] / med['nginx']:.2f}" if "fulcrum" in med and "nginx" in med else "-"
        cells = " | ".join(f"{med[p]:,.0f}" for p in PROXIES)
        note = f" ({errs} errors)" if errs else ""
        print(f"| {w}{note} | {cells} | {ratio} | {size} |")


if __name__ == "__main__":
    main()
