"""The demo's applications, unmodified by the mesh: a tiny HTTP server that answers with its name, and a client;
a gRPC inventory service (unary calls of shop.Inventory) and its client.

  app.py serve NAME PORT                 HTTP server: every GET answers "NAME\\n"
  app.py loop URL LOGFILE [INTERVAL]     keeps calling URL, appends one line per call to LOGFILE: "<unix ts> <answer>"
  app.py sample URL N [NAME:VALUE]       calls URL N times (new connection each, optionally with that request
                                         header), prints JSON counts per answer
  app.py grpc-serve NAME PORT [METHOD...]  gRPC server of shop.Inventory: each listed method (default: Get) answers
                                         "NAME" as its response message; others are UNIMPLEMENTED
  app.py grpc-loop HOST:PORT LOGFILE [INTERVAL]  calls shop.Inventory/Get on one channel (one HTTP/2 connection),
                                         appends "<unix ts> <answer>" per call to LOGFILE
  app.py grpc-sample HOST:PORT METHOD N  N calls of shop.Inventory/METHOD on ONE channel (one HTTP/2 connection),
                                         prints JSON counts per answer ("error:<code>" for a failed call)
The gRPC commands need grpcio (Debian's python3-grpcio: run them with /usr/bin/python3). Messages are raw bytes
through generic handlers, so there are no .proto files to compile.
"""

import collections
import http.server
import json
import socketserver
import sys
import time
import urllib.request


def serve(name: str, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = f"{name}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server(("0.0.0.0", port), Handler).serve_forever()


def call(url: str, timeout: float = 2.0, headers: dict | None = None) -> str:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.read().decode().strip()
    except Exception as e:  # the demo shows failures as they are
        return f"error:{type(e).__name__}"


def loop(url: str, logfile: str, interval: float) -> None:
    with open(logfile, "a", buffering=1) as log:
        while True:
            log.write(f"{time.time():.3f} {call(url)}\n")
            time.sleep(interval)


def sample(url: str, n: int, header: str | None = None) -> None:
    headers = dict([header.split(":", 1)]) if header else {}
    counts = collections.Counter(call(url, headers=headers) for _ in range(n))
    print(json.dumps(dict(counts)))


GRPC_SERVICE = "shop.Inventory"


def grpc_serve(name: str, port: int, methods: list[str]) -> None:
    import concurrent.futures
    import grpc

    answer = name.encode()
    handlers = {m: grpc.unary_unary_rpc_method_handler(lambda request, context: answer) for m in methods}
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_SERVICE, handlers),))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    server.wait_for_termination()


def grpc_call(stub, timeout: float = 2.0) -> str:
    import grpc

    try:
        return stub(b"", timeout=timeout).decode()
    except grpc.RpcError as e:  # the demo shows failures as they are
        return f"error:{e.code().name}"


def grpc_loop(target: str, logfile: str, interval: float) -> None:
    import grpc

    with grpc.insecure_channel(target) as channel, open(logfile, "a", buffering=1) as log:
        stub = channel.unary_unary(f"/{GRPC_SERVICE}/Get")
        while True:
            log.write(f"{time.time():.3f} {grpc_call(stub)}\n")
            time.sleep(interval)


def grpc_sample(target: str, method: str, n: int) -> None:
    import grpc

    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(f"/{GRPC_SERVICE}/{method}")
        counts = collections.Counter(grpc_call(stub) for _ in range(n))
    print(json.dumps(dict(counts)))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    elif cmd == "sample":
        sample(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "grpc-serve":
        grpc_serve(sys.argv[2], int(sys.argv[3]), sys.argv[4:] or ["Get"])
    elif cmd == "grpc-loop":
        grpc_loop(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    elif cmd == "grpc-sample":
        grpc_sample(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
