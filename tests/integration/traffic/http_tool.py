"""HTTP/1.1 stand-ins for the L7 routing test, stdlib only.

  http_tool.py serve PORT NAME [DELAY_MS]
                                  keep-alive server (DELAY_MS: every answer waits that long, a slow endpoint);
                                  every response body is "NAME <path> <x-routed header>", with
                                  Content-Length, except paths ending in /chunked (chunked, two chunks) and POSTs
                                  (the body's length is echoed: "NAME <path> len=<n>"); a path ending in /status/NNN
                                  is answered with status NNN
                                  Resilience modes (traffic_http_resilience), by path:
                                    .../flaky/...        every other request (1st, 3rd, ...) of this server is a 503
                                    .../delay/MS         answered after MS milliseconds
                                    .../flakydelay/MS    every other request (1st, 3rd, ...) is answered after MS ms
                                    /__stats             JSON counters of this server: requests, by status, requests
                                                         whose Host ends in "-shadow" (mirrored), hosts seen,
                                                         connections accepted
                                  A GET with "Upgrade: zm-echo" gets a 101, the server's name on a line, then an echo
  http_tool.py run HOST PORT      reads a JSON list of requests [{"path", "headers", "count", "method", "body",
                                  "chunked", "pace"}] (chunked: the body goes in two chunks; pace: at least this many
                                  seconds from one request's start to the next's)
                                  on stdin, sends them all on ONE keep-alive connection (it fails rather than
                                  reconnect), prints {"bodies": [...], "marks": ["<x-mesh-route header> <has a server header>"...],
                                  "sockets": distinct sockets used, "seconds": [time of each request],
                                  "starts": [start of each request, seconds after the first], "retry_after": [header or "-"]}
"""

import http.client
import http.server
import json
import sys
import threading
import time


def serve(port: int, name: str, delay_ms: int = 0):
    lock = threading.Lock()
    stats = {"requests": 0, "status": {}, "shadow": 0, "hosts": {}, "connections": 0}
    alternate = {"flaky": 0, "flakydelay": 0}  # requests seen per alternating mode

    def count(host: str, code: int):
        with lock:
            stats["requests"] += 1
            stats["status"][str(code)] = stats["status"].get(str(code), 0) + 1
            stats["shadow"] += host.endswith("-shadow") or "-shadow:" in host
            if len(stats["hosts"]) < 20 or host in stats["hosts"]:
                stats["hosts"][host] = stats["hosts"].get(host, 0) + 1

    def odd(mode: str) -> bool:
        """This request is the 1st, 3rd, ... of its mode on this server."""
        with lock:
            alternate[mode] += 1
            return alternate[mode] % 2 == 1

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are separate writes: no Nagle wait for the second one

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            with lock:
                stats["connections"] += 1

        def reply(self, text: str):
            path = self.path
            if path.endswith("/chunked"):
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(text) // 2
                for part in (text[:half], text[half:]):
                    data = part.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")
                return
            data = text.encode()
            # ".../status/NNN" answers with that status (the request metrics' response codes).
            code = int(path.rsplit("/", 1)[1]) if "/status/" in path and path.rsplit("/", 1)[1].isdigit() else 200
            last = path.rsplit("/", 1)[-1]
            if "/flaky/" in path and odd("flaky"):
                code = 503
            elif "/delay/" in path and last.isdigit():
                time.sleep(int(last) / 1000)
            elif "/flakydelay/" in path and last.isdigit() and odd("flakydelay"):
                time.sleep(int(last) / 1000)
            if path != "/__stats":
                count(self.headers.get("Host", ""), code)
                if delay_ms:
                    time.sleep(delay_ms / 1000)
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.headers.get("Upgrade") == "zm-echo":
                # An upgraded connection: our name, then every byte echoed until the client closes.
                self.send_response(101)
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "zm-echo")
                self.end_headers()
                self.wfile.write(f"{name}\n".encode())
                while True:
                    data = self.connection.recv(65536)
                    if not data:
                        break
                    self.connection.sendall(data)
                self.close_connection = True
                return
            if self.path == "/__stats":
                with lock:
                    self.reply(json.dumps(stats))
                return
            self.reply(f"{name} {self.path} {self.headers.get('x-routed', '-')}")

        def do_POST(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.reply(f"{name} {self.path} len={len(body)}")

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            # A proxy that gave up on a slow answer (a timeout) closes that stream: not worth a traceback.
            if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                super().handle_error(request, client_address)

    srv = Server(("0.0.0.0", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


def run(host: str, port: int):
    plan = json.load(sys.stdin)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.auto_open = 0  # one connection: a close by the proxy must fail the run, not open another
    conn.connect()
    sockets = {id(conn.sock)}
    bodies, marks, seconds, starts, retry_after = [], [], [], [], []
    first = time.monotonic()
    for req in plan:
        for _ in range(req.get("count", 1)):
            if starts and req.get("pace"):
                time.sleep(max(0.0, first + starts[-1] + req["pace"] - time.monotonic()))
            start = time.monotonic()
            starts.append(round(start - first, 4))
            body = req.get("body")
            if body and req.get("chunked"):  # sent in two chunks
                half = len(body) // 2
                conn.request(req.get("method", "GET"), req["path"], body=iter([body[:half].encode(),
                                                                                 body[half:].encode()]),
                             headers=req.get("headers", {}), encode_chunked=True)
            else:
                conn.request(req.get("method", "GET"), req["path"], body=body.encode() if body else None,
                             headers=req.get("headers", {}))
            resp = conn.getresponse()
            bodies.append(f"{resp.status} {resp.read().decode()}")
            marks.append(f"{resp.getheader('x-mesh-route', '-')} {resp.getheader('server', '-') != '-'}")
            retry_after.append(resp.getheader("retry-after", "-"))
            seconds.append(round(time.monotonic() - start, 4))
            sockets.add(id(conn.sock))
    conn.close()
    print(json.dumps({"bodies": bodies, "marks": marks, "sockets": len(sockets), "seconds": seconds, "starts": starts,
                      "retry_after": retry_after}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        run(sys.argv[2], int(sys.argv[3]))
