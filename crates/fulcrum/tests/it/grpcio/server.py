"""grpcio (C-core) test backend for Fulcrum's gRPC interop test.

Serves `test.Echo` (Unary, Sum, Count, Chat) and `grpc.health.v1.Health/Check`
in plaintext h2c on 127.0.0.1 with an OS-chosen port. Prints `PORT <n>` once
started and runs until stdin closes (the parent died or closed it) or it is killed.
Messages are protobuf `Msg { string text = 1; uint32 n = 2; }`, encoded by hand.
"""

import sys
import threading
import time
from concurrent import futures

import grpc

MAX = 8 * 1024 * 1024


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7


def fields(buf):
    """Yield (field number, value) pairs; skips fixed32/fixed64 fields."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i)
            v, i = bytes(buf[i:i + ln]), i + ln
        elif wt == 1:
            i, v = i + 8, None
        elif wt == 5:
            i, v = i + 4, None
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, v


def encode(msg):
    text, n = msg
    out = b""
    if text:
        t = text.encode()
        out += b"\x0a" + varint(len(t)) + t
    if n:
        out += b"\x10" + varint(n)
    return out


def decode(buf):
    text, n = "", 0
    for num, v in fields(buf):
        if num == 1 and isinstance(v, bytes):
            text = v.decode()
        elif num == 2 and isinstance(v, int):
            n = v & 0xFFFFFFFF
    return text, n


def unary(req, context):
    text, n = req
    if text == "fail":
        context.set_trailing_metadata((("detail-bin", b"\x01\x02"), ("why", "because")))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input")
    if text == "slow":
        end = time.monotonic() + 10
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.05)
        return req
    context.set_trailing_metadata((("echo-trailer", "yes"),))
    return req


def sum_(reqs, context):
    count = total = 0
    for _, n in reqs:
        count += 1
        total += n
    return str(count), total & 0xFFFFFFFF


def count(req, context):
    text, n = req
    for i in range(n):
        yield text, i


def chat(reqs, context):
    for text, n in reqs:
        yield text, (n + 1) & 0xFFFFFFFF


def health_check(req, context):
    service = ""
    for num, v in fields(req):
        if num == 1 and isinstance(v, bytes):
            service = v.decode()
    if service not in ("", "test.Echo"):
        context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
    return b"\x08\x01"  # status = SERVING


def main():
    io = dict(request_deserializer=decode, response_serializer=encode)
    echo = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **io),
        "Sum": grpc.stream_unary_rpc_method_handler(sum_, **io),
        "Count": grpc.unary_stream_rpc_method_handler(count, **io),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, **io),
    })
    health = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        # Raw bytes both ways: the identity (de)serializer.
        "Check": grpc.unary_unary_rpc_method_handler(health_check),
    })
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", MAX),
                 ("grpc.max_send_message_length", MAX)],
    )
    server.add_generic_rpc_handlers((echo, health))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)

    def watch_stdin():
        for _ in sys.stdin.buffer:
            pass
        server.stop(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
