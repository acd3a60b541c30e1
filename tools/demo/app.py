"""The demo's applications, unmodified by the mesh: a tiny HTTP server that answers with its name, and a client.

  app.py serve NAME PORT                 HTTP server: every GET answers "NAME\\n"
  app.py loop URL LOGFILE [INTERVAL]     keeps calling URL, appends one line per call to LOGFILE: "<unix ts> <answer>"
  app.py sample URL N [NAME:VALUE]       calls URL N times (new connection each, optionally with that request
                                         header), prints JSON counts per answer
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


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    elif cmd == "sample":
        sample(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
