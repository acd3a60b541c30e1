"""Pod-side clients for test_sockmap.py, against podtool.py's server (its SOURCE, PINGPONG and SINK DELAY commands):
deterministic data both ways with checksums, request/response round trips, and a receiver that stops reading for a
while (to show the sender's memory stays bounded).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from podtool import block, read_line, recv_exact, stream  # noqa: E402


def expected_sha(total):
    h = hashlib.sha256()
    for b in stream(total):
        h.update(b)
    return h.hexdigest()


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
    reply = read_line(c)
    c.close()
    sha, n = (reply.split() + ["", "-1"])[:2]
    return {"bytes": total, "sent_before_reader_read": stalled_at, "tcp_mem_pages_max": mem_max,
            "ok": int(n) == total and sha == expected_sha(total)}


def main(argv):
    cmd = argv[1]
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
