"""grpcio (C-core) test client for Fulcrum's gRPC interop test.

Usage: client.py HOST:PORT

Runs every call kind against `test.Echo` (see server.py) over plaintext h2c,
normally through Fulcrum, and checks the answers, trailers, status codes and a
deadline. Prints `ok <name>` per check and `grpcio client: all passed` at the
end; any mismatch exits non-zero with a message.
"""

import sys
import time

import grpc

sys.dont_write_bytecode = True  # keep tests/it/grpcio free of __pycache__
from server import MAX, decode, encode  # noqa: E402


def check(cond, what):
    if not cond:
        sys.exit(f"grpcio client: FAILED: {what}")


def main():
    channel = grpc.insecure_channel(sys.argv[1], options=[
        ("grpc.max_receive_message_length", MAX),
        ("grpc.max_send_message_length", MAX),
    ])
    io = dict(request_serializer=encode, response_deserializer=decode)
    unary = channel.unary_unary("/test.Echo/Unary", **io)
    sum_ = channel.stream_unary("/test.Echo/Sum", **io)
    count = channel.unary_stream("/test.Echo/Count", **io)
    chat = channel.stream_stream("/test.Echo/Chat", **io)

    resp, call = unary.with_call(("hello", 7), timeout=10)
    check(resp == ("hello", 7), f"unary echo got {resp!r}")
    trailers = dict(call.trailing_metadata() or ())
    check(trailers.get("echo-trailer") == "yes", f"unary trailers {trailers!r}")
    print("ok unary", flush=True)

    try:
        unary(("fail", 0), timeout=10)
        check(False, "unary 'fail' succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"fail code {e.code()}")
        check(e.details() == "bad input", f"fail details {e.details()!r}")
        trailers = dict(e.trailing_metadata() or ())
        check(trailers.get("why") == "because", f"fail trailers {trailers!r}")
        check(trailers.get("detail-bin") == b"\x01\x02", f"fail trailers {trailers!r}")
    print("ok error-status", flush=True)

    resp = sum_(iter([("", n) for n in range(1, 11)]), timeout=10)
    check(resp == ("10", 55), f"sum got {resp!r}")
    print("ok client-streaming", flush=True)

    got = [n for _, n in count(("item", 100), timeout=10)]
    check(got == list(range(100)), f"count got {got!r}")
    print("ok server-streaming", flush=True)

    got = [n for _, n in chat(iter([("chat", i) for i in range(50)]), timeout=10)]
    check(got == [i + 1 for i in range(50)], f"chat got {got!r}")
    print("ok bidi-streaming", flush=True)

    start = time.monotonic()
    try:
        unary(("slow", 0), timeout=0.5)
        check(False, "unary 'slow' beat its 0.5 s deadline")
    except grpc.RpcError as e:
        took = time.monotonic() - start
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"slow code {e.code()}")
        check(took < 5, f"deadline took {took:.1f} s")
    print("ok deadline", flush=True)

    big = "x" * (1024 * 1024)
    resp = unary((big, 1), timeout=30)
    check(resp == (big, 1), f"large echo came back with {len(resp[0])} chars")
    print("ok large-message", flush=True)

    channel.close()
    print("grpcio client: all passed", flush=True)


if __name__ == "__main__":
    main()
