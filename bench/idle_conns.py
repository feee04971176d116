#!/usr/bin/env python3
"""Memory per idle keep-alive connection.

Reads the proxy's RSS (sum of VmRSS over the given PIDs), opens N keep-alive
connections through it, sends one `GET / HTTP/1.1` on each and reads the whole
response, keeps every connection open, lets the proxy settle, reads RSS again
and checks that the proxy closed none of them.

With --tls the connections are TLS (certificate not verified, no SNI for an IP
address): the figure then includes each proxy's TLS state per connection.

Prints one line of key=value pairs; exits 1 unless every one of the N
connections got a complete 200 response and was still open at the end.
"""
import argparse
import asyncio
import resource
import ssl
import sys
import time


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def established_to(ports):
    """Established TCP sockets (IPv4 and IPv6) whose remote port is in ports:
    the proxy's upstream connections, since the backends only talk to it."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) in ports:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise RuntimeError(f"status line {lines[0]!r}")
    length, chunked, close = None, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # chunk data + CRLF
            if size == 0:  # (no trailers expected from the backends)
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        raise RuntimeError("response without Content-Length or chunked")
    if close:
        raise RuntimeError("proxy answered Connection: close")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--pids", required=True, help="comma-separated PIDs whose RSS is summed")
    ap.add_argument("--parallel", type=int, default=200, help="connections being set up at once")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait before the second RSS reading")
    ap.add_argument("--backend-ports", default="", help="comma-separated; count upstream connections")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--tls", action="store_true", help="connect over TLS")
    args = ap.parse_args()

    nofile = raise_nofile()
    if nofile < args.conns + 100:
        print(f"error=nofile_too_low nofile={nofile} conns={args.conns}")
        return 1
    pids = [int(p) for p in args.pids.split(",") if p]

    before = rss_kb(pids)
    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(args.parallel)
    held, errors = [], []
    req = f"GET / HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUser-Agent: fulcrum-bench-idle\r\n\r\n".encode()

    async def one():
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(args.host, args.port, ssl=tls), args.timeout)
                writer.write(req)
                await writer.drain()
                await asyncio.wait_for(read_response(reader), args.timeout)
                held.append((reader, writer))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors.append(f"{type(e).__name__}: {e}")

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.conns)))
    setup_s = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    after = rss_kb(pids)
    upstream = established_to({int(p) for p in args.backend_ports.split(",") if p})
    # A connection the proxy closed would make the figure meaningless (the
    # settle sleep let the loop see any FIN that arrived).
    closed = sum(1 for r, w in held if r.at_eof() or w.is_closing())
    ok = len(held)
    per_conn = (after - before) / args.conns
    print(f"ok={ok} errors={len(errors)} closed={closed} rss_before_kb={before} "
          f"rss_after_kb={after} kb_per_conn={per_conn:.2f} upstream_conns={upstream} "
          f"setup_s={setup_s:.2f}")
    if errors:
        for e in sorted(set(errors))[:5]:
            print(f"  error: {e} (x{errors.count(e)})", file=sys.stderr)
    for _, w in held:
        w.close()
    return 0 if ok == args.conns and closed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
