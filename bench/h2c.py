#!/usr/bin/env python3
"""Fulcrum's h2c benchmark (HTTP/2 with prior knowledge, cleartext) beside HAProxy and
nginx, with the method of bench/run and bench/tls.py: each proxy alone on PROXY_CPU with
one worker, the client (h2load) and the backends (one nginx, three server blocks) on
LOAD_CPU, CPU time (user + system, every process of the proxy) read from /proc/PID/stat.

Each proxy takes h2c on a cleartext port (Fulcrum's `protocol = "http"` listener, which
accepts the HTTP/2 preface by itself; HAProxy `bind ... proto h2`; nginx `listen PORT
http2`) and goes round robin to the backends over kept-alive HTTP/1.1 upstream
connections, access logs off. Per round and proxy: a fresh proxy, a check that h2c
requests answer 200 and reach more than one backend, an h2load warm-up of WARMUP, then
`h2load -t1 -cCONNS -mSTREAMS -D DURATION http://...` with the proxy's CPU read just
before and after. The figure is requests done per proxy CPU-second. Medians of ROUNDS
rounds (the order of the proxies rotates), with ratios to HAProxy.

    python3 bench/h2c.py
    ROUNDS=3 DURATION=10s CONNS=64 STREAMS=8 PROXIES="fulcrum haproxy nginx" SKIP_BUILD=1 python3 bench/h2c.py
    FULCRUM_BASE_BIN=/path/to/old/fulcrum PROXIES="fulcrum fulcrum-base haproxy nginx" python3 bench/h2c.py  # A/B

Other knobs: WARMUP=2s PROXY_CPU=0 LOAD_CPU=1 (also read by bench/tls.py, whose
settings and Fulcrum binaries this script shares).
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402
from l4 import cpu_ticks, free_port, install, raise_nofile, wait_port  # noqa: E402
from tls import (DURATION, FULCRUM, FULCRUM_BASE_BIN, LOAD_CPU, PROXY_CPU, REPO,  # noqa: E402
                 ROUNDS, SKIP_BUILD, TICK)

CONNS = int(os.environ.get("CONNS", "64"))
STREAMS = int(os.environ.get("STREAMS", "8"))
WARMUP = os.environ.get("WARMUP", "2s")
PROXIES = os.environ.get("PROXIES", "fulcrum haproxy nginx").split()


def log(*a):
    print("[h2c]", time.strftime("%T"), *a, file=sys.stderr, flush=True)


def backends(d):
    """One nginx process (no master) with three server blocks, as in bench/run."""
    ports = [free_port() for _ in range(3)]
    servers = "\n".join(f'    server {{ listen 127.0.0.1:{p} backlog=4096; '
                        f'location / {{ return 200 "hello from backend {n}\\n"; }} }}'
                        for n, p in enumerate(ports, 1))
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
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    default_type text/plain;
{servers}
}}
""")
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, "nginx", "-p", f"{d}/", "-c",
                          f"{d}/backend.conf", "-e", f"{d}/backend-error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for port in ports:
        wait_port(port, p, "backend nginx")
    return p, ports


def proxy_cmd(proxy, d, port, targets):
    if proxy in ("fulcrum", "fulcrum-base"):
        backends_list = ", ".join(f'"127.0.0.1:{t}"' for t in targets)
        with open(f"{d}/{proxy}.toml", "w") as f:
            f.write(f"""workers = 1
[access_log]
enabled = false
[listeners.h2c]
address = "127.0.0.1:{port}"
protocol = "http"
[[routes]]
pool = "b"
[pools.b]
balance = "round_robin"
backends = [{backends_list}]
""")
        binary = FULCRUM if proxy == "fulcrum" else FULCRUM_BASE_BIN
        return [binary, "run", "--config", f"{d}/{proxy}.toml"]
    if proxy == "haproxy":
        servers = "\n".join(f"    server b{n} 127.0.0.1:{t}" for n, t in enumerate(targets, 1))
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(f"""global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:{port} proto h2
    default_backend be
backend be
    balance roundrobin
{servers}
""")
        return ["haproxy", "-db", "-f", f"{d}/haproxy.cfg"]
    if proxy == "nginx":
        servers = "\n".join(f"        server 127.0.0.1:{t};" for t in targets)
        # No master: one process serves, as in bench/tls.py.
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 9000; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream be {{
{servers}
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        return ["nginx", "-p", f"{d}/", "-c", f"{d}/nginx.conf", "-e", f"{d}/nginx-error.log"]
    raise ValueError(proxy)


def proc_tree(pid):
    pids, i = [pid], 0
    while i < len(pids):
        for task in os.listdir(f"/proc/{pids[i]}/task"):
            try:
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
            except FileNotFoundError:
                pass
        i += 1
    return pids


def h2c_bodies(port, n):
    """Bodies of n GET / over h2c (curl, prior knowledge); None for a non-200."""
    bodies = []
    for _ in range(n):
        r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "2",
                            "-w", "\n%{http_code} %{http_version}", f"http://127.0.0.1:{port}/"],
                           capture_output=True, text=True)
        body, _, status = r.stdout.rpartition("\n")
        bodies.append(body if status == "200 2" else None)
    return bodies


def h2load(port, duration, log_file=None):
    """-> (requests done, errors, req/s, h2load's output)"""
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{CONNS}", f"-m{STREAMS}",
           f"-D{duration.rstrip('s')}", f"http://127.0.0.1:{port}/"]
    if log_file:
        cmd[4:4] = [f"--log-file={log_file}"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    rps = re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", out)
    if not m or not rps:
        log(f"h2load printed no summary: {out[-500:]}")
        return 0, 1, 0.0, out
    done, failed, errored, timeout = (int(x) for x in m.groups())
    non2xx = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    bad = sum(int(x) for x in non2xx.groups()) if non2xx else 0
    if "h2c" not in out.split("Application protocol:")[-1][:20]:
        log("h2load did not use h2c")
        return 0, 1, 0.0, out
    return done, failed + errored + timeout + bad, float(rps.group(1)), out


def measure(proxy, d, targets, r):
    port = free_port()
    cmd = proxy_cmd(proxy, d, port, targets)
    logf = open(f"{d}/{proxy}.log", "ab")
    p = subprocess.Popen(["taskset", "-c", PROXY_CPU, *cmd], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf)
    try:
        wait_port(port, p, proxy)
        bodies = h2c_bodies(port, 6)
        if None in bodies:
            log(f"{proxy}: GET / over h2c did not answer 200: {bodies}")
        elif len(set(bodies)) < 2:
            log(f"{proxy}: requests did not spread over the backends")
        h2load(port, WARMUP)  # warm up: upstream connections, caches
        pids = proc_tree(p.pid)
        t0 = sum(cpu_ticks(x) for x in pids)
        done, errors, rps, out = h2load(port, DURATION, f"{d}/h2load-r{r}-{proxy}.log")
        cpu = (sum(cpu_ticks(x) for x in pids) - t0) / TICK
        p99 = results.h2load_p99(f"{d}/h2load-r{r}-{proxy}.log")
        with open(f"{d}/h2load-r{r}-{proxy}.txt", "w") as f:
            f.write(out)
        if p.poll() is not None:
            log(f"{proxy} died during the run")
            errors += 1
        return {"per_cpu_s": done / max(cpu, 1 / TICK), "rps": rps, "cpu_s": cpu,
                "p99_ms": p99 if p99 is not None else float("nan"), "errors": errors}
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        logf.close()


def busy():
    """Share of all CPUs busy over one second (as bench/run's background_busy)."""
    def sample():
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    a = sample()
    time.sleep(1)
    d = [y - x for x, y in zip(a, sample())]
    return round(100 * (sum(d) - d[3] - d[4]) / sum(d)) if sum(d) else 0


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    raise_nofile()
    if not shutil.which("h2load"):
        install("nghttp2-client")
    if "haproxy" in PROXIES and not shutil.which("haproxy"):
        install("haproxy")
    if not shutil.which("nginx"):
        install("nginx-light")
    if "fulcrum-base" in PROXIES and not os.access(FULCRUM_BASE_BIN, os.X_OK):
        sys.exit("fulcrum-base needs FULCRUM_BASE_BIN=PATH of an executable fulcrum")
    if "fulcrum" in PROXIES and not SKIP_BUILD:
        log("cargo build --release -p fulcrum")
        subprocess.run(["cargo", "build", "--release", "-p", "fulcrum"], cwd=REPO, check=True)
    busy_before = busy()
    d = tempfile.mkdtemp(prefix="fulcrum-h2c-")
    b, targets = backends(d)
    rounds = {p: [] for p in PROXIES}
    try:
        for r in range(ROUNDS):
            order = PROXIES[r % len(PROXIES):] + PROXIES[:r % len(PROXIES)]
            for proxy in order:
                m = measure(proxy, d, targets, r + 1)
                log(f"round {r + 1} {proxy}: " + " ".join(f"{k}={v:.1f}" for k, v in m.items()))
                rounds[proxy].append(m)
    finally:
        b.terminate()
        b.wait()
    busy_after = busy()
    med = {p: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for p, rs in rounds.items()}
    results.save("h2c", rounds, med, conns=CONNS, streams=STREAMS, duration=DURATION)
    base = med.get("haproxy")
    print(f"\nh2c (HTTP/2 prior knowledge, cleartext): h2load -t1 -c{CONNS} -m{STREAMS} "
          f"-D {DURATION} after {WARMUP} warm-up; proxies on CPU {PROXY_CPU} with one worker, "
          f"round robin to 3 nginx backends (HTTP/1.1 keep-alive) on CPU {LOAD_CPU}; "
          f"medians of {ROUNDS} rounds; files in {d}")
    print(f"other processes kept {busy_before}% of all CPUs busy just before, "
          f"{busy_after}% just after")
    if busy_before > 10 or busy_after > 10:
        print("WARNING: the machine was busy with other work; ratios are noisier")
    print()
    print("| proxy | h2c requests per proxy CPU-s | (min-max) | vs HAProxy | req/s | p99 ms "
          "| proxy CPU s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for p, m in med.items():
        eff = [x["per_cpu_s"] for x in rounds[p]]
        ratio = f"{m['per_cpu_s'] / base['per_cpu_s']:.2f}" if base and base["per_cpu_s"] else "-"
        print(f"| {p} | {m['per_cpu_s']:,.0f} | {min(eff):,.0f}-{max(eff):,.0f} | {ratio} | "
              f"{m['rps']:,.0f} | {m['p99_ms']:.2f} | {m['cpu_s']:.2f} | {m['errors']:.0f} |")


if __name__ == "__main__":
    main()
