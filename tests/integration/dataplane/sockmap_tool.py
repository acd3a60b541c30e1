"""Pod-side traffic for test_sockmap.py: deterministic data both ways with checksums, request/response round trips,
and a receiver that stops reading for a while (to show the sender's memory stays bounded).

  serve PORT                         one thread per connection; the first line says what to do:
                                     "SOURCE n" send n bytes; "PINGPONG size" echo size-byte messages until EOF;
                                     "SINK delay" sleep delay seconds, then read to EOF and reply "<sha256> <bytes>"
  source HOST PORT N                 receive N bytes, check them
  pingpong HOST PORT COUNT SIZE      COUNT round trips of SIZE bytes, each checked
  slowsink HOST PORT TOTAL DELAY     send TOTAL bytes to a receiver that starts reading after DELAY seconds; report
                                     what the sender got rid of while nobody read, and the node's TCP memory
Prints one JSON object ("ok": the bytes arrived intact).
"""

import hashlib
import json
import socket
import sys
import threading
import time

BLOCK = 1 << 16


def block(i):
    """The i-th 64 KiB block of the stream: cheap, deterministic, different every block."""
    seed = hashlib.sha256(i.to_bytes(8, "little")).digest()
    return seed * (BLOCK // len(seed))


def stream(total):
    sent, i = 0, 0
    while sent < total:
        b = block(i)[: total - sent]
        yield b
        sent += len(b)
        i += 1


def expected_sha(total):
    h = hashlib.sha256()
    for b in stream(total):
        h.update(b)
    return h.hexdigest()


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            break
        buf += d
    return bytes(buf)


def read_line(c):
    line = b""
    while not line.endswith(b"\n"):
        d = c.recv(1)
        if not d:
            break
        line += d
    return line.decode().split()


def handle(c):
    try:
        cmd = read_line(c)
        if not cmd:  # a readiness probe: connected and left
            return
        if cmd[0] == "SOURCE":
            for b in stream(int(cmd[1])):
                c.sendall(b)
        elif cmd[0] == "PINGPONG":
            size = int(cmd[1])
            while True:
                m = recv_exact(c, size)
                if len(m) < size:
                    break
                c.sendall(m)
        elif cmd[0] == "SINK":
            time.sleep(float(cmd[1]))
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                n += len(d)
            c.sendall(f"{h.hexdigest()} {n}\n".encode())
    except OSError:
        pass
    finally:
        c.close()


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def source(host, port, total):
    c = socket.create_connection((host, port), timeout=30)
    c.sendall(f"SOURCE {total}\n".encode())
    h, n = hashlib.sha256(), 0
    while n < total:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.close()
    return {"bytes": n, "ok": n == total and h.hexdigest() == expected_sha(total)}


def pingpong(host, port, count, size):
    c = socket.create_connection((host, port), timeout=30)
    c.sendall(f"PINGPONG {size}\n".encode())
    bad = 0
    for i in range(count):
        m = block(i)[:size]
        c.sendall(m)
        if recv_exact(c, size) != m:
            bad += 1
    c.close()
    return {"round_trips": count, "bad": bad, "ok": bad == 0}


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return -1


def slowsink(host, port, total, delay):
    c = socket.create_connection((host, port), timeout=60)
    c.sendall(f"SINK {delay}\n".encode())
    progress = [0]

    def writer():
        for b in stream(total):
            c.sendall(b)
            progress[0] += len(b)
        c.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    mem_max = 0
    deadline = time.time() + delay * 0.9
    while time.time() < deadline:
        mem_max = max(mem_max, tcp_mem_pages())
        time.sleep(0.05)
    stalled_at = progress[0]
    t.join(60)
    reply = b""
    while not reply.endswith(b"\n"):
        d = c.recv(256)
        if not d:
            break
        reply += d
    c.close()
    sha, n = (reply.decode().split() + ["", "-1"])[:2]
    return {"bytes": total, "sent_before_reader_read": stalled_at, "tcp_mem_pages_max": mem_max,
            "ok": int(n) == total and sha == expected_sha(total)}


def main(argv):
    cmd = argv[1]
    if cmd == "serve":
        serve(int(argv[2]))
        return 0
    if cmd == "source":
        out = source(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "pingpong":
        out = pingpong(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif cmd == "slowsink":
        out = slowsink(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
