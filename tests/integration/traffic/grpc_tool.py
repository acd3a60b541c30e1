"""gRPC stand-ins for the L7 routing test: Debian's python3-grpcio, generic handlers and raw bytes (no codegen).

  grpc_tool.py serve PORT NAME [DELAY_MS]
                                   server of zm.Echo/Who, zm.Echo/Canary and zm.Echo/Mirrored (unary: answers
                                   "NAME <method>", after DELAY_MS when given: a slow endpoint),
                                   zm.Echo/Stream (server streaming: the request's decimal count of "NAME <i>"),
                                   zm.Echo/Size (answers "NAME <request length>") and zm.Echo/Blob (answers as many
                                   bytes as the request's decimal number); zm.Echo/Slow answers after 2 s;
                                   zm.Echo/Flaky answers "NAME Flaky", or UNAVAILABLE (trailers-only) on a server
                                   started with GRPC_TOOL_FLAKY=1 in its environment (a failing endpoint)
  grpc_tool.py run TARGET          reads a JSON plan [{"method", "count", "n", "bytes"}] on stdin and makes every call on ONE
                                   channel (one HTTP/2 connection); prints {"replies": [...], "codes": [...],
                                   "details": [...]} (details: the status message of a unary call that failed)
"""

import json
import os
import sys
import time
from concurrent import futures

import grpc


def ident(b):
    return b


def serve(port: int, name: str, delay_ms: int = 0):
    def unary(method):
        return grpc.unary_unary_rpc_method_handler(
            lambda req, ctx: (time.sleep(delay_ms / 1000) if delay_ms else None) or f"{name} {method}".encode(),
            request_deserializer=ident, response_serializer=ident)

    def stream(req, ctx):
        for i in range(int(req.decode() or "0")):
            yield f"{name} {i}".encode()

    def flaky(req, ctx):
        if os.environ.get("GRPC_TOOL_FLAKY") == "1":
            ctx.abort(grpc.StatusCode.UNAVAILABLE, f"{name} is failing")
        return f"{name} Flaky".encode()

    handler = grpc.method_handlers_generic_handler("zm.Echo", {
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky, request_deserializer=ident, response_serializer=ident),
        "Who": unary("Who"),
        "Canary": unary("Canary"),
        "Mirrored": unary("Mirrored"),
        "Slow": grpc.unary_unary_rpc_method_handler(lambda req, ctx: time.sleep(2) or b"slow",
                                                    request_deserializer=ident, response_serializer=ident),
        "Size": grpc.unary_unary_rpc_method_handler(lambda req, ctx: f"{name} {len(req)}".encode(),
                                                    request_deserializer=ident, response_serializer=ident),
        "Blob": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"z" * int(req.decode()),
                                                    request_deserializer=ident, response_serializer=ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, request_deserializer=ident, response_serializer=ident),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    server.wait_for_termination()


def run(target: str):
    plan = json.load(sys.stdin)
    # One subchannel, one connection: no load balancing in the client (pick_first is the default).
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        replies, codes, details = [], [], []
        for step in plan:
            method = step["method"]
            if method == "Stream":
                call = ch.unary_stream(f"/zm.Echo/{method}", request_serializer=ident, response_deserializer=ident)
                try:
                    replies.append([r.decode() for r in call(str(step.get("n", 3)).encode(), timeout=10)])
                    codes.append("OK")
                except grpc.RpcError as e:
                    replies.append(None)
                    codes.append(e.code().name)
                continue
            call = ch.unary_unary(f"/zm.Echo/{method}", request_serializer=ident, response_deserializer=ident)
            # Size sends "bytes" bytes; Blob asks for "bytes" bytes back (the reply is then its length).
            req = b"y" * step.get("bytes", 0) if method == "Size" else str(step.get("bytes", 0)).encode()
            for _ in range(step.get("count", 1)):
                try:
                    rep = call(req if method in ("Size", "Blob") else b"", timeout=step.get("timeout", 20))
                    replies.append(f"len={len(rep)}" if method == "Blob" else rep.decode())
                    codes.append("OK")
                    details.append(None)
                except grpc.RpcError as e:
                    replies.append(None)
                    codes.append(e.code().name)
                    details.append(e.details())
    print(json.dumps({"replies": replies, "codes": codes, "details": details}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        run(sys.argv[2])
