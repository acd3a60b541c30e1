"""HTTP/1.1 stand-ins for the L7 routing test, stdlib only.

  http_tool.py serve PORT NAME    keep-alive server; every response body is "NAME <path> <x-routed header>", with
                                  Content-Length, except paths ending in /chunked (chunked, two chunks) and POSTs
                                  (the body's length is echoed: "NAME <path> len=<n>"); a path ending in /status/NNN
                                  is answered with status NNN
                                  A GET with "Upgrade: zm-echo" gets a 101, the server's name on a line, then an echo
  http_tool.py run HOST PORT      reads a JSON list of requests [{"path", "headers", "count", "method", "body"}]
                                  on stdin, sends them all on ONE keep-alive connection (it fails rather than
                                  reconnect), prints {"bodies": [...], "marks": ["<x-mesh-route header> <has a server header>"...],
                                  "sockets": distinct sockets used}
"""

import http.client
import http.server
import json
import sys


def serve(port: int, name: str):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are separate writes: no Nagle wait for the second one

        def log_message(self, *args):
            pass

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
            self.reply(f"{name} {self.path} {self.headers.get('x-routed', '-')}")

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self.reply(f"{name} {self.path} len={len(body)}")

    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


def run(host: str, port: int):
    plan = json.load(sys.stdin)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.auto_open = 0  # one connection: a close by the proxy must fail the run, not open another
    conn.connect()
    sockets = {id(conn.sock)}
    bodies, marks = [], []
    for req in plan:
        for _ in range(req.get("count", 1)):
            body = req.get("body")
            conn.request(req.get("method", "GET"), req["path"], body=body.encode() if body else None,
                         headers=req.get("headers", {}))
            resp = conn.getresponse()
            bodies.append(f"{resp.status} {resp.read().decode()}")
            marks.append(f"{resp.getheader('x-mesh-route', '-')} {resp.getheader('server', '-') != '-'}")
            sockets.add(id(conn.sock))
    conn.close()
    print(json.dumps({"bodies": bodies, "marks": marks, "sockets": len(sockets)}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        run(sys.argv[2], int(sys.argv[3]))
