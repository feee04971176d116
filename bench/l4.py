#!/usr/bin/env python3
"""Layer-4 and WebSocket benchmark: Fulcrum beside HAProxy (`mode tcp`) and nginx
(`stream`), each alone on one core with one worker, the same method as bench/run.

Per round and proxy (a fresh process for each figure):
- bulk:  one TCP connection carries BULK_MIB MiB to a sink backend; MiB per proxy
         CPU-second (utime + stime from /proc/PID/stat over the transfer).
- conns: CONNS short TCP connections (CONCURRENCY at a time), each sends 16 bytes,
         reads them back from an echo backend and closes; connections per proxy
         CPU-second.
- ws:    WS_CONNS WebSockets opened through the proxy's HTTP side (upgrade to a
         WebSocket backend) and left idle; KB of proxy RSS per open socket.
Medians over ROUNDS rounds (the order of the proxies rotates), with ratios to
HAProxy. Backends and clients run on LOAD_CPU, the proxy on PROXY_CPU.

    python3 bench/l4.py                       # builds Fulcrum (release) first
    ROUNDS=3 BULK_MIB=1024 CONNS=20000 WS_CONNS=10000 python3 bench/l4.py
    SKIP_BUILD=1 PROXIES="fulcrum haproxy" python3 bench/l4.py
    ONLY=ws ROUNDS=1 python3 bench/l4.py      # one figure only
"""
import asyncio
import base64
import hashlib
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import results

ROUNDS = int(os.environ.get("ROUNDS", "3"))
BULK_MIB = int(os.environ.get("BULK_MIB", "1024"))
CONNS = int(os.environ.get("CONNS", "20000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "64"))
# A proxy holds two descriptors per WebSocket; 9,000 fits a 20,000 descriptor limit.
WS_CONNS = int(os.environ.get("WS_CONNS", "9000"))
PROXIES = os.environ.get("PROXIES", "fulcrum haproxy nginx").split()
PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
SKIP_BUILD = os.environ.get("SKIP_BUILD") == "1"
# Figures to take: any of bulk, conns, ws (the others are reported as 0).
ONLY = os.environ.get("ONLY", "bulk conns ws").split()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULCRUM = os.path.join(REPO, "target", "release", "fulcrum")
TICK = os.sysconf("SC_CLK_TCK")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(*a):
    print("[l4]", time.strftime("%T"), *a, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, p, what, deadline=None):
    """Waits until `port` accepts a connection; exits if process `p` ends first or
    nothing listens by `deadline` (15 s from now by default)."""
    deadline = deadline or time.time() + 15
    while True:
        if p.poll() is not None:
            sys.exit(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                sys.exit(f"{what} did not listen on {port}")
            time.sleep(0.05)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def install(*pkgs):
    if os.geteuid() != 0:
        sys.exit(f"not root: cannot install {pkgs}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], env=env).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], env=env, check=True)


# ------------------------------------------------------------ backends
def sink_server(port):
    """Reads everything of each connection, then answers b'done' and closes."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)

    def one(c):
        buf = bytearray(1 << 20)
        while c.recv_into(buf):
            pass
        c.sendall(b"done")
        c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def ws_backend(reader, writer):
    """Answers a WebSocket handshake with 101 and keeps the socket open."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await writer.drain()
        while await reader.read(4096):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    writer.close()


def backends_main(sink, echo_port, ws_port):
    raise_nofile()
    threading.Thread(target=sink_server, args=(sink,), daemon=True).start()

    async def run():
        await asyncio.start_server(echo, "127.0.0.1", echo_port, backlog=4096)
        await asyncio.start_server(ws_backend, "127.0.0.1", ws_port, backlog=4096)
        await asyncio.Event().wait()

    asyncio.run(run())


# ------------------------------------------------------------ proxies
def configs(proxy, d, tcp, http, target, ws_port, nofile):
    """Writes the proxy's config for a TCP listener on `tcp` to `target` and an HTTP
    listener on `http` to the WebSocket backend; returns the command line."""
    if proxy == "fulcrum":
        with open(f"{d}/fulcrum.toml", "w") as f:
            f.write(f"""workers = 1
[access_log]
enabled = false
[listeners.l4]
address = "127.0.0.1:{tcp}"
protocol = "tcp"
pool = "t"
[listeners.web]
address = "127.0.0.1:{http}"
[[routes]]
pool = "ws"
[pools.t]
backends = ["127.0.0.1:{target}"]
[pools.ws]
backends = ["127.0.0.1:{ws_port}"]
""")
        return [FULCRUM, "run", "--config", f"{d}/fulcrum.toml"]
    if proxy == "haproxy":
        maxconn = min(40000, (nofile - 200) // 2 - 1)
        with open(f"{d}/haproxy.cfg", "w") as f:
            f.write(f"""global
    nbthread 1
    maxconn {maxconn}
defaults
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
listen l4
    mode tcp
    bind 127.0.0.1:{tcp}
    server t 127.0.0.1:{target}
listen web
    mode http
    bind 127.0.0.1:{http}
    server w 127.0.0.1:{ws_port}
""")
        return ["haproxy", "-db", "-f", f"{d}/haproxy.cfg"]
    if proxy == "nginx":
        module = "/usr/lib/nginx/modules/ngx_stream_module.so"
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""load_module {module};
daemon off;
master_process off;
worker_processes 1;
user root;
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 40000; }}
stream {{
    server {{
        listen 127.0.0.1:{tcp} backlog=4096;
        proxy_pass 127.0.0.1:{target};
        proxy_half_close on;
        proxy_timeout 1h;
    }}
}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    server {{
        listen 127.0.0.1:{http} backlog=4096;
        location / {{
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
    }}
}}
""")
        return ["nginx", "-p", f"{d}/", "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"]
    raise ValueError(proxy)


class Proxy:
    def __init__(self, proxy, d, target, ws_port, nofile):
        self.tcp, self.http = free_port(), free_port()
        cmd = configs(proxy, d, self.tcp, self.http, target, ws_port, nofile)
        self.log = open(f"{d}/{proxy}.log", "ab")
        self.p = subprocess.Popen(["taskset", "-c", PROXY_CPU, *cmd], stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        for port in (self.tcp, self.http):
            wait_port(port, self.p, f"{proxy} (see {d}/{proxy}.log)", deadline)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


# ------------------------------------------------------------ clients
def bulk(port):
    """Sends BULK_MIB MiB on one connection; returns seconds."""
    chunk = b"x" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", port))
    start = time.time()
    for _ in range(BULK_MIB):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while len(got) < 4 and (more := s.recv(16)):
        got += more
    if got != b"done":
        raise RuntimeError(f"the sink did not confirm the transfer: {got!r}")
    s.close()
    return time.time() - start


async def short_conns(port):
    failed = 0
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one():
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"0123456789abcdef")
                await w.drain()
                if await r.readexactly(16) != b"0123456789abcdef":
                    failed += 1
                w.close()
                await w.wait_closed()
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                failed += 1

    await asyncio.gather(*(one() for _ in range(CONNS)))
    return failed


async def open_websockets(port, n):
    """Opens n WebSockets through the proxy; returns the open sockets."""
    socks, sem = [], asyncio.Semaphore(256)

    async def one(i):
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(i.to_bytes(16, "big")).decode()
            w.write((f"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"no 101: {head[:60]!r}")
            socks.append((r, w))

    await asyncio.gather(*(one(i) for i in range(n)))
    return socks


def measure(proxy, d, ports, nofile):
    sink, echo_port, ws_port = ports
    out = dict.fromkeys(["bulk_mib_per_cpu_s", "bulk_mib_s", "conns_per_cpu_s", "conns_s",
                         "conns_failed", "ws_kb_per_socket"], 0.0)
    if "bulk" in ONLY:
        bulk_figures(proxy, d, sink, ws_port, nofile, out)
    if "conns" in ONLY:
        conns_figures(proxy, d, echo_port, ws_port, nofile, out)
    if "ws" in ONLY:
        ws_figures(proxy, d, sink, ws_port, nofile, out)
    return out


def bulk_figures(proxy, d, sink, ws_port, nofile, out):
    p = Proxy(proxy, d, sink, ws_port, nofile)
    t0 = cpu_ticks(p.p.pid)
    secs = bulk(p.tcp)
    cpu = (cpu_ticks(p.p.pid) - t0) / TICK
    out["bulk_mib_per_cpu_s"] = BULK_MIB / max(cpu, 1 / TICK)
    out["bulk_mib_s"] = BULK_MIB / secs
    p.stop()


def conns_figures(proxy, d, echo_port, ws_port, nofile, out):
    p = Proxy(proxy, d, echo_port, ws_port, nofile)
    t0, start = cpu_ticks(p.p.pid), time.time()
    failed = asyncio.run(short_conns(p.tcp))
    cpu = (cpu_ticks(p.p.pid) - t0) / TICK
    out["conns_per_cpu_s"] = CONNS / max(cpu, 1 / TICK)
    out["conns_s"] = CONNS / (time.time() - start)
    out["conns_failed"] = failed
    p.stop()


def ws_figures(proxy, d, sink, ws_port, nofile, out):
    p = Proxy(proxy, d, sink, ws_port, nofile)
    before = rss_kb(p.p.pid)

    async def ws():
        socks = await open_websockets(p.http, WS_CONNS)
        await asyncio.sleep(2)
        after = rss_kb(p.p.pid)
        for _, w in socks:
            w.close()
        return after

    after = asyncio.run(ws())
    out["ws_kb_per_socket"] = (after - before) / WS_CONNS
    p.stop()


def main():
    nofile = raise_nofile()
    if nofile < 2 * WS_CONNS + 1000:
        sys.exit(f"open-file limit {nofile} too low for WS_CONNS={WS_CONNS}")
    if "haproxy" in PROXIES and not shutil.which("haproxy"):
        install("haproxy")
    if "nginx" in PROXIES and not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"):
        install("nginx-light", "libnginx-mod-stream")
    if "fulcrum" in PROXIES and not SKIP_BUILD:
        log("cargo build --release -p fulcrum")
        subprocess.run(["cargo", "build", "--release", "-p", "fulcrum"], cwd=REPO, check=True)
    d = tempfile.mkdtemp(prefix="fulcrum-l4-")
    ports = (free_port(), free_port(), free_port())
    backends = subprocess.Popen(["taskset", "-c", LOAD_CPU, sys.executable, __file__, "--backends",
                                 *map(str, ports)])
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    rounds = {p: [] for p in PROXIES}
    try:
        for r in range(ROUNDS):
            order = PROXIES[r % len(PROXIES):] + PROXIES[:r % len(PROXIES)]
            for proxy in order:
                m = measure(proxy, d, ports, nofile)
                log(f"round {r + 1} {proxy}: " + " ".join(f"{k}={v:.1f}" for k, v in m.items()))
                rounds[proxy].append(m)
    finally:
        backends.kill()
    med = {p: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for p, rs in rounds.items()}
    results.save("l4", rounds, med, bulk_mib=BULK_MIB, conns=CONNS, concurrency=CONCURRENCY,
                 ws_conns=WS_CONNS, only=ONLY)
    base = med.get("haproxy")
    print(f"\nbulk {BULK_MIB} MiB on one connection; {CONNS} short connections "
          f"({CONCURRENCY} at a time); {WS_CONNS} idle WebSockets; medians of {ROUNDS} rounds\n")
    print("| proxy | MiB per proxy CPU-s | vs HAProxy | MiB/s | conns per proxy CPU-s | vs HAProxy "
          "| conns/s | failed | KB per idle WebSocket | vs HAProxy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p, m in med.items():
        ratio = lambda k: f"{m[k] / base[k]:.2f}" if base and base[k] else "-"
        print(f"| {p} | {m['bulk_mib_per_cpu_s']:,.0f} | {ratio('bulk_mib_per_cpu_s')} | "
              f"{m['bulk_mib_s']:,.0f} | {m['conns_per_cpu_s']:,.0f} | {ratio('conns_per_cpu_s')} | "
              f"{m['conns_s']:,.0f} | {m['conns_failed']:.0f} | {m['ws_kb_per_socket']:.2f} | "
              f"{ratio('ws_kb_per_socket')} |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--backends":
        backends_main(*map(int, sys.argv[2:]))
    else:
        main()
