#!/usr/bin/env python3
"""Fulcrum's TLS benchmark beside HAProxy and nginx, with the method of bench/run:
each proxy alone on CPU 0 with one worker, the client (wrk) and the backend (one
nginx answering a short body) on CPU 1, CPU time read from /proc/PID/stat.

Two figures per proxy, both terminating TLS (ECDSA P-256 certificate, TLS 1.3,
whatever suite the client and proxy agree on) and proxying to the plain-HTTP
backend over kept-alive upstream connections:
- handshakes per proxy CPU-second: wrk with `Connection: close`, so every request is a
  new connection. wrk offers the session it had on that connection slot, so this is
  measured twice: with resumption turned off at each proxy (full handshakes), and with
  each proxy's defaults, tickets on (resumed handshakes);
- HTTPS keep-alive requests per proxy CPU-second: wrk over CONNS kept-alive
  connections;
- HTTP/2 requests per proxy CPU-second: h2load over H2_CONNS TLS connections (ALPN
  h2), H2_STREAMS concurrent streams on each;
- memory per idle TLS connection: bench/idle_conns.py --tls against a fresh proxy
  (defaults), IDLE_CONNS connections each after one request, RSS before and after.

    python3 bench/tls.py
    ROUNDS=3 DURATION=10s CONNS=64 HS_CONNS=16 IDLE_CONNS=5000 PROXIES="fulcrum haproxy nginx" SKIP_BUILD=1 python3 bench/tls.py
    FULCRUM_BASE_BIN=/path/to/old/fulcrum PROXIES="fulcrum fulcrum-base haproxy" python3 bench/tls.py  # A/B, as bench/run
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402
from l4 import cpu_ticks, free_port, install, raise_nofile, wait_port  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "10s")
CONNS = int(os.environ.get("CONNS", "64"))
HS_CONNS = int(os.environ.get("HS_CONNS", "16"))
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "5000"))
H2_CONNS = int(os.environ.get("H2_CONNS", "16"))
H2_STREAMS = int(os.environ.get("H2_STREAMS", "10"))
PROXIES = os.environ.get("PROXIES", "fulcrum haproxy nginx").split()
PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
SKIP_BUILD = os.environ.get("SKIP_BUILD") == "1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULCRUM = os.path.join(REPO, "target", "release", "fulcrum")
# "fulcrum-base" in PROXIES: this older build with fulcrum's config (an A/B of a change).
FULCRUM_BASE_BIN = os.environ.get("FULCRUM_BASE_BIN", "")
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[tls]", time.strftime("%T"), *a, file=sys.stderr, flush=True)


def certificate(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/key.pem",
                    "-out", f"{d}/cert.pem", "-days", "30", "-subj", "/CN=bench.test",
                    "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                   check=True, capture_output=True)
    with open(f"{d}/both.pem", "w") as f:
        f.write(open(f"{d}/cert.pem").read() + open(f"{d}/key.pem").read())


def backend(d, locations=""):
    """An nginx answering `hello` on a free port, pinned to LOAD_CPU; `locations`
    adds nginx `location` blocks before the catch-all."""
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
    server {{ listen 127.0.0.1:{port} backlog=4096; {locations} location / {{ return 200 "hello\\n"; }} }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, "nginx", "-p", f"{d}/", "-c",
                          f"{d}/backend.conf", "-e", f"{d}/backend-error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "backend nginx")
    return p, port


def proxy_cmd(proxy, d, port, target, resume):
    if proxy in ("fulcrum", "fulcrum-base"):
        with open(f"{d}/{proxy}.toml", "w") as f:
            f.write(f"""workers = 1
[access_log]
enabled = false
[listeners.tls]
address = "127.0.0.1:{port}"
protocol = "https"
tls = {{ certificates = [{{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}], resumption = {str(resume).lower()} }}
[[routes]]
pool = "b"
[pools.b]
backends = ["127.0.0.1:{target}"]
""")
        binary = FULCRUM if proxy == "fulcrum" else FULCRUM_BASE_BIN
        return [binary, "run", "--config", f"{d}/{proxy}.toml"]
    if proxy == "haproxy":
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(f"""global
    nbthread 1
    maxconn 9000
    {"" if resume else "tune.ssl.cachesize 0"}
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:{port} ssl crt {d}/both.pem alpn h2,http/1.1{"" if resume else " no-tls-tickets"}
    default_backend be
backend be
    server b 127.0.0.1:{target}
""")
        return ["haproxy", "-db", "-f", f"{d}/haproxy.cfg"]
    if proxy == "nginx":
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
    upstream be {{ server 127.0.0.1:{target}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        ssl_session_tickets {"on" if resume else "off"};
        ssl_session_cache {"none" if resume else "off"};
        keepalive_requests 1000000;
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


def wrk(port, conns, close):
    """-> (requests, errors, p99 in ms or None)"""
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{DURATION}", "--latency",
           f"https://127.0.0.1:{port}/"]
    if close:
        cmd[5:5] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, errors + (int(non2xx.group(1)) if non2xx else 0), results.wrk_p99(out)


def h2load(port, log_file):
    """-> (requests, errors, p99 in ms or None)"""
    seconds = DURATION.rstrip("s")
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{H2_CONNS}", f"-m{H2_STREAMS}",
           f"-D{seconds}", f"--log-file={log_file}", f"https://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if not m:
        log(f"h2load printed no summary: {out[-500:]}")
        return 0, 1, None
    ok, failed, errored, timeout = (int(x) for x in m.groups())
    non2xx = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    bad = sum(int(x) for x in non2xx.groups()) if non2xx else 0
    if "h2" not in out.split("Application protocol:")[-1][:20]:
        log("h2load did not negotiate h2")
        return 0, 1, None
    return ok - bad, failed + errored + timeout + bad, results.h2load_p99(log_file)


def idle(port, pid):
    cmd = ["taskset", "-c", LOAD_CPU, sys.executable,
           os.path.join(REPO, "bench", "idle_conns.py"), "--tls", "--port", str(port),
           "--conns", str(IDLE_CONNS), "--pids", str(pid), "--timeout", "60"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        log(f"idle failed: {r.stdout.strip()} {r.stderr.strip()[:300]}")
        return float("nan")
    return float(re.search(r"kb_per_conn=([0-9.-]+)", r.stdout).group(1))


def measure(proxy, d, target, resume, runs):
    port = free_port()
    cmd = proxy_cmd(proxy, d, port, target, resume)
    logf = open(f"{d}/{proxy}.log", "ab")
    p = subprocess.Popen(["taskset", "-c", PROXY_CPU, *cmd], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf)
    try:
        wait_port(port, p, proxy)
        if runs == "idle":
            return {"idle_kb": idle(port, p.pid)}
        wrk(port, 4, False)  # warm up: upstream connections, caches
        out = {}
        for name, conns, close in runs:
            t0 = cpu_ticks(p.pid)
            if name == "h2":
                reqs, errors, p99 = h2load(port, f"{d}/h2load-{proxy}.log")
            else:
                reqs, errors, p99 = wrk(port, conns, close)
            cpu = (cpu_ticks(p.pid) - t0) / TICK
            out[f"{name}_per_cpu_s"] = reqs / max(cpu, 1 / TICK)
            out[f"{name}_errors"] = errors
            out[f"{name}_p99_ms"] = p99 if p99 is not None else float("nan")
        return out
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        logf.close()


def main():
    raise_nofile()
    if not shutil.which("wrk"):
        install("wrk")
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
    d = tempfile.mkdtemp(prefix="fulcrum-tls-")
    certificate(d)
    b, target = backend(d)
    rounds = {p: [] for p in PROXIES}
    try:
        for r in range(ROUNDS):
            order = PROXIES[r % len(PROXIES):] + PROXIES[:r % len(PROXIES)]
            for proxy in order:
                # Resumption off at every proxy: each new connection is a full
                # handshake. Then the defaults (tickets on): wrk resumes.
                m = measure(proxy, d, target, False, [("full", HS_CONNS, True)])
                m.update(measure(proxy, d, target, True,
                                 [("resumed", HS_CONNS, True), ("ka", CONNS, False),
                                  ("h2", H2_CONNS, False)]))
                m.update(measure(proxy, d, target, True, "idle"))
                log(f"round {r + 1} {proxy}: " + " ".join(f"{k}={v:.1f}" for k, v in m.items()))
                rounds[proxy].append(m)
    finally:
        b.terminate()
    med = {p: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for p, rs in rounds.items()}
    results.save("tls", rounds, med, conns=CONNS, hs_conns=HS_CONNS, h2_conns=H2_CONNS,
                 h2_streams=H2_STREAMS, idle_conns=IDLE_CONNS, duration=DURATION)
    base = med.get("haproxy")
    print(f"\nTLS 1.3, ECDSA P-256; handshakes: {HS_CONNS} wrk connections with Connection: close "
          f"(full: resumption off at the proxy; resumed: its defaults, tickets on); "
          f"keep-alive: {CONNS} connections; HTTP/2: h2load, {H2_CONNS} connections x "
          f"{H2_STREAMS} streams; {DURATION} each; idle: {IDLE_CONNS} TLS connections "
          f"after one request each; medians of {ROUNDS} rounds\n")
    print("| proxy | full handshakes per proxy CPU-s | vs HAProxy | resumed handshakes per proxy CPU-s "
          "| vs HAProxy | HTTPS keep-alive requests per proxy CPU-s | vs HAProxy "
          "| HTTP/2 requests per proxy CPU-s | vs HAProxy "
          "| KB per idle TLS connection | vs HAProxy | p99 ms keep-alive / HTTP/2 | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p, m in med.items():
        ratio = lambda k: f"{m[k] / base[k]:.2f}" if base and base[k] else "-"
        errors = m["full_errors"] + m["resumed_errors"] + m["ka_errors"] + m["h2_errors"]
        print(f"| {p} | {m['full_per_cpu_s']:,.0f} | {ratio('full_per_cpu_s')} | "
              f"{m['resumed_per_cpu_s']:,.0f} | {ratio('resumed_per_cpu_s')} | "
              f"{m['ka_per_cpu_s']:,.0f} | {ratio('ka_per_cpu_s')} | "
              f"{m['h2_per_cpu_s']:,.0f} | {ratio('h2_per_cpu_s')} | "
              f"{m['idle_kb']:.2f} | {ratio('idle_kb')} | "
              f"{m['ka_p99_ms']:.2f} / {m['h2_p99_ms']:.2f} | {errors:.0f} |")


if __name__ == "__main__":
    main()
