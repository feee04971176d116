#!/usr/bin/env python3
"""HTTP/3 beside Caddy (Debian's caddy; Debian's nginx 1.22 and HAProxy 2.6 have no
HTTP/3), with the method of bench/run: each proxy alone on CPU 0 (Fulcrum with one
worker, Caddy with GOMAXPROCS=1), the load generator and the nginx backend on CPU 1,
CPU time read from /proc/PID/stat, access logs off, medians of ROUNDS rounds.

- requests per proxy CPU-second over HTTP/3: the h3load example (quinn and h3, one
  thread), CONNS connections x STREAMS concurrent streams, a short body;
- a 100 MiB download in MiB per proxy CPU-second (DOWNLOADS of them, 5 unless told,
  measured together): over HTTP/3 for both, and over HTTPS (TCP, HTTP/1.1, curl,
  one keep-alive connection) for Fulcrum, the per-byte cost HTTP/3 is held to;
- memory per idle QUIC connection: IDLE connections held after one request each,
  the proxy's RSS before and after.

    python3 bench/h3.py
    ROUNDS=3 DURATION=10 CONNS=16 STREAMS=10 IDLE=2000 SKIP_BUILD=1 python3 bench/h3.py
    FULCRUM_BIN=/tmp/fulcrum-old SKIP_BUILD=1 python3 bench/h3.py
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from l4 import cpu_ticks, free_port, install, raise_nofile, rss_kb, wait_port  # noqa: E402
import results as results_json  # noqa: E402
from tls import backend as tls_backend, certificate  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "10")
CONNS = os.environ.get("CONNS", "16")
STREAMS = os.environ.get("STREAMS", "10")
IDLE = int(os.environ.get("IDLE", "2000"))
DOWNLOADS = int(os.environ.get("DOWNLOADS", "5"))
PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
SKIP_BUILD = os.environ.get("SKIP_BUILD") == "1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# FULCRUM_BIN=PATH measures another build (an A/B against an older commit).
FULCRUM = os.environ.get("FULCRUM_BIN") or os.path.join(REPO, "target", "release", "fulcrum")
H3LOAD = os.path.join(REPO, "target", "release", "examples", "h3load")
SNI = ["--sni", "bench.test"]
TICK = os.sysconf("SC_CLK_TCK")
BIG = 100 << 20


def log(*a):
    print("[h3]", time.strftime("%T"), *a, file=sys.stderr, flush=True)


def backend(d):
    with open(f"{d}/big", "wb") as f:
        f.write(os.urandom(1 << 20) * (BIG >> 20))
    return tls_backend(d, f"location = /big {{ alias {d}/big; }}")


def start(proxy, d, target):
    port = free_port()
    env = dict(os.environ)
    if proxy == "fulcrum":
        with open(f"{d}/fulcrum.toml", "w") as f:
            f.write(f"""workers = 1
[access_log]
enabled = false
[listeners.tls]
address = "127.0.0.1:{port}"
protocol = "https"
http3 = true
tls = {{ certificates = [{{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}] }}
[[routes]]
pool = "b"
[pools.b]
backends = ["127.0.0.1:{target}"]
""")
        cmd = [FULCRUM, "run", "--config", f"{d}/fulcrum.toml"]
    else:
        with open(f"{d}/Caddyfile", "w") as f:
            f.write(f"""{{
    admin off
    auto_https off
    servers {{
        protocols h1 h2 h3
    }}
}}
:{port} {{
    tls {d}/cert.pem {d}/key.pem
    reverse_proxy 127.0.0.1:{target}
}}
""")
        cmd = ["caddy", "run", "--config", f"{d}/Caddyfile", "--adapter", "caddyfile"]
        env.update(GOMAXPROCS="1", HOME=d, XDG_DATA_HOME=d, XDG_CONFIG_HOME=d)
    p = subprocess.Popen(["taskset", "-c", PROXY_CPU, *cmd], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(f"{d}/{proxy}.log", "w"))
    wait_port(port, p, proxy)
    # The UDP side is ready once an HTTP/3 request answers.
    deadline = time.time() + 15
    while True:
        r = subprocess.run([H3LOAD, f"https://127.0.0.1:{port}/", "--download", *SNI],
                           capture_output=True, text=True, timeout=30)
        if "status=200" in r.stdout:
            break
        if time.time() > deadline:
            sys.exit(f"{proxy}: no HTTP/3 answer: {r.stdout} {r.stderr}")
        time.sleep(0.2)
    return p, port


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def measured(pid, cmd):
    before = cpu_ticks(pid)
    out = subprocess.run(["taskset", "-c", LOAD_CPU, *cmd], capture_output=True,
                         text=True, timeout=600).stdout
    return out, (cpu_ticks(pid) - before) / TICK


def requests(pid, port):
    out, cpu = measured(pid, [H3LOAD, f"https://127.0.0.1:{port}/", "-c", CONNS,
                              "-m", STREAMS, "-d", DURATION, *SNI])
    m = dict(re.findall(r"(\w+)=([0-9.]+)", out))
    ok, errors = int(m.get("requests", 0)), int(m.get("errors", 0))
    return ok / cpu if cpu else 0.0, float(m.get("p99_ms", "nan")), errors


def download_h3(pid, port):
    # DOWNLOADS downloads in one measured window: one 100 MiB download costs the
    # proxy a few clock ticks (10 ms each), too few to compare.
    script = " && ".join([f"{H3LOAD} https://127.0.0.1:{port}/big --download "
                          + " ".join(SNI)] * DOWNLOADS)
    out, cpu = measured(pid, ["sh", "-c", script])
    got = [int(b) for b in re.findall(r"bytes=([0-9]+)", out)]
    if got != [BIG] * DOWNLOADS:
        log(f"short download: {out}")
        return 0.0
    return (DOWNLOADS * BIG / (1 << 20)) / cpu if cpu else 0.0


def download_tcp(pid, port):
    # The same number of downloads, on one keep-alive connection.
    url = f"https://bench.test:{port}/big"
    _, cpu = measured(pid, ["curl", "-sk", "--http1.1", "--resolve",
                            f"bench.test:{port}:127.0.0.1",
                            *[a for _ in range(DOWNLOADS) for a in ("-o", "/dev/null", url)]])
    return (DOWNLOADS * BIG / (1 << 20)) / cpu if cpu else 0.0


def idle(pid, port):
    before = rss_kb(pid)
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, H3LOAD, f"https://127.0.0.1:{port}/",
                          "--hold", str(IDLE), *SNI], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("holding"):
        log(f"idle: {line}")
        p.kill()
        return float("nan")
    time.sleep(1)
    after = rss_kb(pid)
    p.stdin.close()
    p.wait(timeout=60)
    return (after - before) / IDLE


def main():
    raise_nofile()
    for tool, pkg in (("caddy", "caddy"), ("nginx", "nginx"), ("curl", "curl")):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            install(pkg)
    if not SKIP_BUILD:
        subprocess.run(["cargo", "build", "--release", "-p", "fulcrum", "--bin", "fulcrum",
                        "--example", "h3load"], cwd=REPO, check=True)
    d = tempfile.mkdtemp(prefix="fulcrum-h3-")
    certificate(d)
    back, target = backend(d)
    results = {p: {"rps": [], "p99": [], "errors": 0, "h3_mib": [], "tcp_mib": [], "idle": []}
               for p in ("fulcrum", "caddy")}
    try:
        for r in range(ROUNDS):
            for proxy in ("fulcrum", "caddy"):
                p, port = start(proxy, d, target)
                rps, p99, errors = requests(p.pid, port)
                res = results[proxy]
                res["rps"].append(rps)
                res["p99"].append(p99)
                res["errors"] += errors
                res["h3_mib"].append(download_h3(p.pid, port))
                if proxy == "fulcrum":
                    res["tcp_mib"].append(download_tcp(p.pid, port))
                stop(p)
                p, port = start(proxy, d, target)
                res["idle"].append(idle(p.pid, port))
                stop(p)
                log(f"round {r + 1} {proxy}: {rps:,.0f} req/CPU-s, p99 {p99} ms, "
                    f"h3 {res['h3_mib'][-1]:.0f} MiB/CPU-s, idle {res['idle'][-1]:.1f} KB")
    finally:
        stop(back)
    med = {p: {k: (statistics.median(v) if isinstance(v, list) and v else v)
               for k, v in res.items()} for p, res in results.items()}
    results_json.save("h3", results, med, conns=CONNS, streams=STREAMS, duration=DURATION,
                      idle=IDLE)
    f, c = med["fulcrum"], med["caddy"]
    print(f"| figure (median of {ROUNDS}) | Fulcrum | Caddy | ratio |")
    print("|---|---|---|---|")
    print(f"| HTTP/3 requests per CPU-second, {CONNS} connections x {STREAMS} streams | "
          f"{f['rps']:,.0f} | {c['rps']:,.0f} | {f['rps'] / c['rps']:.2f} |")
    print(f"| p99 latency, ms | {f['p99']:.2f} | {c['p99']:.2f} | {f['p99'] / c['p99']:.2f} |")
    print(f"| 100 MiB download over HTTP/3, MiB per CPU-second | {f['h3_mib']:,.0f} | "
          f"{c['h3_mib']:,.0f} | {f['h3_mib'] / c['h3_mib']:.2f} |")
    print(f"| Fulcrum's HTTPS over TCP (HTTP/1.1), MiB per CPU-second | {f['tcp_mib']:,.0f} | | "
          f"HTTP/3 costs {f['tcp_mib'] / f['h3_mib']:.2f}x per byte |")
    print(f"| KB per idle QUIC connection ({IDLE}) | {f['idle']:.1f} | {c['idle']:.1f} | "
          f"{f['idle'] / c['idle']:.2f} |")
    print(f"| failed requests | {f['errors']} | {c['errors']} | |")


if __name__ == "__main__":
    main()
