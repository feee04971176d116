"""aioquic test client for Fulcrum's HTTP/3 interop test: an HTTP/3 and QUIC stack
written apart from quinn and h3.

Usage: client.py HOST:PORT CA_FILE SERVER_NAME

Through Fulcrum: a GET, a 1 MiB POST whose length and SHA-256 the backend echoes,
and a WebSocket over HTTP/3 (RFC 9220: extended CONNECT with :protocol websocket)
that sends a text message, reads its echo and closes. Prints `ok <name>` per check
and `aioquic client: all passed` at the end; any mismatch exits non-zero.
"""

import asyncio
import hashlib
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

TIMEOUT = 30


def check(cond, what):
    if not cond:
        sys.exit(f"aioquic client: FAILED: {what}")


class Stream:
    def __init__(self):
        self.headers = None
        self.data = bytearray()
        self.ended = False
        self.changed = asyncio.Event()


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.streams = {}

    def quic_event_received(self, event):
        for e in self.h3.handle_event(event):
            s = self.streams.get(getattr(e, "stream_id", None))
            if s is None:
                continue
            if isinstance(e, HeadersReceived):
                s.headers = dict(e.headers)
            elif isinstance(e, DataReceived):
                s.data += e.data
            if getattr(e, "stream_ended", False):
                s.ended = True
            s.changed.set()

    def open(self, headers, body=None, end=True):
        sid = self._quic.get_next_available_stream_id()
        s = Stream()
        self.streams[sid] = s
        self.h3.send_headers(sid, headers, end_stream=end and not body)
        if body:
            self.h3.send_data(sid, body, end_stream=end)
        self.transmit()
        return sid, s

    def send(self, sid, data, end=False):
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    async def until(self, s, cond):
        while not cond():
            s.changed.clear()
            await asyncio.wait_for(s.changed.wait(), TIMEOUT)


def head(method, authority, path, extra=()):
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", authority),
        (b":path", path),
        *extra,
    ]


def masked(opcode, payload):
    mask = b"\x37\xfa\x21\x3d"
    check(len(payload) < 126, "short payloads only")
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload)
    )


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(sys.argv[2])
    config.server_name = sys.argv[3]
    authority = sys.argv[3].encode()
    async with connect(host, int(port), configuration=config, create_protocol=Client) as c:
        sid, s = c.open(head(b"GET", authority, b"/hello"))
        await c.until(s, lambda: s.ended)
        check(s.headers.get(b":status") == b"200", f"GET status {s.headers}")
        print("ok get", flush=True)

        body = bytes(i % 251 for i in range(1 << 20))
        sid, s = c.open(head(b"POST", authority, b"/upload"), body)
        await c.until(s, lambda: s.ended)
        check(s.headers.get(b":status") == b"200", f"POST status {s.headers}")
        want = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        check(bytes(s.data) == want, f"POST echo {bytes(s.data)!r}")
        print("ok post", flush=True)

        extra = [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")]
        sid, s = c.open(head(b"CONNECT", authority, b"/ws/chat", extra), end=False)
        await c.until(s, lambda: s.headers is not None)
        check(s.headers.get(b":status") == b"200", f"CONNECT status {s.headers}")
        hello = b"hello from aioquic"
        c.send(sid, masked(0x1, hello))
        await c.until(s, lambda: len(s.data) >= 2 + len(hello))
        check(bytes(s.data[:2]) == bytes([0x81, len(hello)]), f"frame {bytes(s.data)!r}")
        check(bytes(s.data[2 : 2 + len(hello)]) == hello, "echo")
        del s.data[: 2 + len(hello)]
        c.send(sid, masked(0x8, (1000).to_bytes(2, "big")), end=True)
        await c.until(s, lambda: s.ended)
        check(bytes(s.data[:4]) == b"\x88\x02\x03\xe8", f"close {bytes(s.data)!r}")
        print("ok websocket", flush=True)
    print("aioquic client: all passed", flush=True)


asyncio.run(main())
