"""A small, unmodified-application stand-in run inside pods: plain TCP servers and clients, stdlib only.

Server:  podtool.py serve PORT [BIND]   (BIND "0.0.0.0" by default; "::" serves IPv6 and IPv4 on one socket)
  Each connection starts with one command line:
    PEER\\n   -> replies "peer=<ip>:<port> local=<ip>:<port>\\n" and closes
    ECHO\\n   -> echoes every byte until the client half-closes, then closes
    SINK [DELAY]\\n -> (sleeps DELAY seconds first: a receiver that stops reading), reads until EOF, replies
                "<sha256 hex> <byte count>\\n" (and the client may still be reading)
    SOURCE N\\n     -> sends the first N bytes of stream() (deterministic, checkable by the client)
    PINGPONG SIZE\\n -> echoes SIZE-byte messages one at a time until EOF
    READ API\\n    -> reads until EOF the way an application using API would (READ_APIS: recv, splice, peek, fionread,
                poll, epoll, rcvlowat), replies "<sha256 hex> <byte count> <error or ->\\n"
Clients (print one JSON object):
  podtool.py peer HOST PORT
  podtool.py echo HOST PORT TEXT                 (half-closes after sending, then reads the echo)
  podtool.py bulk HOST PORT BYTES                (streams BYTES, half-closes, compares the server's sha256)
  podtool.py concurrent HOST PORT N              (N connections open at the same time, each echoes a unique payload)
  podtool.py try HOST PORT [TIMEOUT]             (one connect attempt: {"ok": bool, "error": ...})
  podtool.py connrate HOST PORT SECONDS          (connect, one small request, close, as fast as possible)
  podtool.py hold HOST PORT SECONDS              (one long-lived ECHO connection, a line every 100 ms; prints
                                                  "result <ok> <bad>" as plain text, "error ..." on failure)
  podtool.py source HOST PORT N                  (SOURCE: receives N bytes of stream(), checks them)
  podtool.py pingpong HOST PORT COUNT SIZE       (PINGPONG: COUNT round trips of SIZE bytes, each checked)
  podtool.py slowsink HOST PORT TOTAL DELAY      (SINK DELAY: sends TOTAL bytes to a receiver that starts reading after
                                                  DELAY seconds; reports what the sender got rid of while nobody read,
                                                  and the most TCP memory of the sender's network namespace)
  podtool.py readcheck HOST PORT API TOTAL       (READ API: sends TOTAL bytes of stream(), small writes first, then
                                                  bulk; checks the server read every byte, in order, with API)
HOST may be an IPv6 literal (fd00::1). Addresses are printed as "ip:port" for IPv4 (also an IPv4 peer of a "::"
server: the v4-mapped form is unwrapped) and "[ip]:port" for IPv6.
"""

import fcntl
import hashlib
import json
import os
import resource
import select
import selectors
import socket
import struct
import sys
import termios
import threading
import time

CHUNK = 1 << 16


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def addr_text(sockaddr):
    """"1.2.3.4:80" or "[fd00::1]:80" (a v4-mapped ::ffff:1.2.3.4 is shown as the IPv4 address it is)."""
    ip, port = sockaddr[0], sockaddr[1]
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[len("::ffff:"):]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def block(i):
    """The i-th 64 KiB block of stream(): cheap, deterministic, different every block."""
    seed = hashlib.sha256(i.to_bytes(8, "little")).digest()
    return seed * (CHUNK // len(seed))


def stream(total):
    """|total| bytes of deterministic data, in blocks (SOURCE sends it; a client can recompute and check it)."""
    sent, i = 0, 0
    while sent < total:
        b = block(i)[: total - sent]
        yield b
        sent += len(b)
        i += 1


def recv_exact(conn, n):
    """n bytes, or fewer when the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        d = conn.recv(n - len(buf))
        if not d:
            break
        buf += d
    return bytes(buf)


def read_line(conn):
    buf = b""
    while not buf.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        buf += b
    return buf.strip().decode(errors="replace")


READ_WAIT = 3.0  # seconds a reader waits for bytes that were sent: longer means they were lost (never arrive)


def _read_recv(conn, out):
    while d := conn.recv(CHUNK):
        out(d)


def _read_splice(conn, out):
    """splice(2) socket -> pipe, then read the pipe (how a zero-copy relay or sendfile-style server reads)."""
    r, w = os.pipe()
    try:
        while n := os.splice(conn.fileno(), w, CHUNK):
            while n:
                d = os.read(r, n)
                out(d)
                n -= len(d)
    finally:
        os.close(r)
        os.close(w)


def _read_peek(conn, out):
    """recv(MSG_PEEK) then recv: the consumed bytes must be the peeked ones."""
    while p := conn.recv(CHUNK, socket.MSG_PEEK):
        d = conn.recv(len(p))
        if d != p:
            raise OSError(f"MSG_PEEK showed {len(p)} bytes, recv then returned {len(d)} different ones")
        out(d)
    if conn.recv(1):
        raise OSError("MSG_PEEK returned EOF, recv then returned data")


def _poll_in(conn, what):
    p = select.poll()
    p.register(conn.fileno(), select.POLLIN)
    if not p.poll(READ_WAIT * 1000):
        raise OSError(f"{what}: not readable for {READ_WAIT} s")


def _read_fionread(conn, out):
    """poll, then ioctl(FIONREAD) says how much to read: a reader that sizes its buffer by it."""
    conn.setblocking(False)
    while True:
        _poll_in(conn, "poll before FIONREAD")
        n = struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        d = conn.recv(max(n, 1))
        if n == 0 and d:
            raise OSError(f"FIONREAD said 0 bytes while recv returned {len(d)}")
        if not d:
            return
        if len(d) != n:
            raise OSError(f"FIONREAD said {n} bytes, recv returned {len(d)}")
        out(d)


def _drain(conn, out):
    """Non-blocking reads until EAGAIN; False at EOF."""
    while True:
        try:
            d = conn.recv(CHUNK)
        except BlockingIOError:
            return True
        if not d:
            return False
        out(d)


def _read_poll(conn, out):
    conn.setblocking(False)
    while True:
        _poll_in(conn, "poll")
        if not _drain(conn, out):
            return


def _read_epoll(conn, out):
    conn.setblocking(False)
    with select.epoll() as ep:
        ep.register(conn.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        while True:
            if not ep.poll(READ_WAIT):
                raise OSError(f"epoll: not readable for {READ_WAIT} s")
            if not _drain(conn, out):
                return


def _read_rcvlowat(conn, out):
    """SO_RCVLOWAT 16 KiB: readiness only from 16 KiB (or EOF) on; bytes below it must still arrive at EOF."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 16 << 10)
    _read_poll(conn, out)


READ_APIS = {"recv": _read_recv, "splice": _read_splice, "peek": _read_peek, "fionread": _read_fionread,
             "poll": _read_poll, "epoll": _read_epoll, "rcvlowat": _read_rcvlowat}


def read_with(conn, api):
    """Reads conn until EOF with |api|; returns "<sha256> <count> <error or ->". Blocking reads time out after
    READ_WAIT (SO_RCVTIMEO) so bytes that never reach the reader give an error, not a hang."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(READ_WAIT), 0))
    h, n = hashlib.sha256(), [0]

    def out(d):
        h.update(d)
        n[0] += len(d)

    err = "-"
    try:
        READ_APIS[api](conn, out)
        # The API saw EOF: recv must agree. Bytes it still finds were invisible to the API (and closing with them
        # unread would reset the connection, losing the reply).
        conn.setblocking(True)
        left = 0
        while d := conn.recv(CHUNK):
            left += len(d)
        if left:
            err = f"{api}: EOF after {n[0]} bytes, then recv returned {left} more"
    except (OSError, KeyError) as e:
        if isinstance(e, BlockingIOError) or isinstance(e, TimeoutError):
            e = f"no byte for {READ_WAIT} s after {n[0]} ({e})"
        err = f"{api}: {e}".replace("\n", " ")
        # Let the client finish sending (the reply would be lost to a reset otherwise); these bytes are not counted.
        conn.setblocking(True)
        try:
            while conn.recv(CHUNK):
                pass
        except OSError:
            pass
    conn.setblocking(True)
    return f"{h.hexdigest()} {n[0]} {err}\n"


def handle(conn, peer):
    try:
        cmd, *args = read_line(conn).split() or [""]  # an empty line: a readiness probe, nothing to do
        if cmd == "PEER":
            conn.sendall(f"peer={addr_text(peer)} local={addr_text(conn.getsockname())}\n".encode())
        elif cmd == "ECHO":
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                conn.sendall(data)
        elif cmd == "SINK":
            if args:
                time.sleep(float(args[0]))
            h, n = hashlib.sha256(), 0
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                h.update(data)
                n += len(data)
            conn.sendall(f"{h.hexdigest()} {n}\n".encode())
        elif cmd == "SOURCE":
            for b in stream(int(args[0])):
                conn.sendall(b)
        elif cmd == "PINGPONG":
            size = int(args[0])
            while len(m := recv_exact(conn, size)) == size:
                conn.sendall(m)
        elif cmd == "READ":
            conn.sendall(read_with(conn, args[0]).encode())
    except (OSError, ValueError, IndexError):  # a dropped peer or a malformed command: close this connection
        pass
    finally:
        conn.close()


def serve(port, bind="0.0.0.0"):
    raise_fd_limit()
    if ":" in bind:
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # "::" takes IPv4 too (v4-mapped)
    else:
        s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(4096)
    print(f"listening on {port}", flush=True)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=handle, args=(conn, peer), daemon=True).start()


def connect(host, port, timeout=10):
    return socket.create_connection((host, port), timeout=timeout)


def recv_all(c):
    out = b""
    while True:
        d = c.recv(CHUNK)
        if not d:
            return out
        out += d


def peer(host, port):
    c = connect(host, port)
    c.sendall(b"PEER\n")
    reply = recv_all(c).decode().split()
    local = c.getsockname()
    remote = c.getpeername()
    c.close()
    server = dict(kv.split("=") for kv in reply)
    return {"client_sees_peer": addr_text(remote), "client_local": addr_text(local),
            "server_sees_peer": server["peer"], "server_local": server["local"]}


def echo(host, port, text):
    c = connect(host, port)
    c.sendall(b"ECHO\n" + text.encode())
    c.shutdown(socket.SHUT_WR)  # half-close: we still read the reply
    got = recv_all(c).decode(errors="replace")
    c.close()
    return {"sent": text, "received": got, "ok": got == text}


def bulk(host, port, total):
    c = connect(host, port, timeout=60)
    c.sendall(b"SINK\n")
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    sent = 0
    t0 = time.time()
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        # Vary the data so a stuck or repeated buffer would change the digest.
        piece = sent.to_bytes(8, "little") + piece[8:] if len(piece) >= 8 else piece
        c.sendall(piece)
        h.update(piece)
        sent += len(piece)
    c.shutdown(socket.SHUT_WR)
    reply = recv_all(c).decode().split()
    secs = time.time() - t0
    c.close()
    return {"bytes": sent, "client_sha256": h.hexdigest(), "server_sha256": reply[0] if reply else "",
            "server_bytes": int(reply[1]) if len(reply) > 1 else -1, "seconds": round(secs, 3),
            "ok": bool(reply) and reply[0] == h.hexdigest() and int(reply[1]) == sent}


def concurrent(host, port, n):
    raise_fd_limit()
    socks, errors = [], []
    for i in range(n):
        try:
            socks.append((i, connect(host, port, timeout=20)))
        except OSError as e:
            errors.append(f"connect {i}: {e}")
    # Every connection is open now; exchange a unique payload on each.
    for i, c in socks:
        c.sendall(f"ECHO\nconn-{i}-payload".encode())
        c.shutdown(socket.SHUT_WR)
    ok = 0
    for i, c in socks:
        try:
            got = recv_all(c).decode()
            if got == f"conn-{i}-payload":
                ok += 1
            else:
                errors.append(f"conn {i}: got {got!r}")
        except OSError as e:
            errors.append(f"recv {i}: {e}")
        c.close()
    return {"requested": n, "ok": ok, "errors": errors[:10], "error_count": len(errors)}


def try_connect(host, port, timeout=2.0):
    t0 = time.time()
    try:
        c = connect(host, port, timeout=timeout)
        c.sendall(b"PEER\n")
        reply = recv_all(c).decode()
        c.close()
        return {"ok": bool(reply), "reply": reply, "seconds": round(time.time() - t0, 3)}
    except OSError as e:
        return {"ok": False, "error": str(e), "seconds": round(time.time() - t0, 3)}


def connrate(host, port, seconds):
    done, failed = 0, 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            c = connect(host, port, timeout=5)
            c.sendall(b"PEER\n")
            if recv_all(c):
                done += 1
            else:
                failed += 1
            c.close()
        except OSError:
            failed += 1
    secs = time.time() - t0
    return {"connections": done, "failed": failed, "seconds": round(secs, 3), "per_second": round(done / secs, 1)}


def hold(host, port, seconds):
    c = connect(host, port, timeout=5)
    c.sendall(b"ECHO\n")
    ok = bad = 0
    end = time.time() + seconds
    while time.time() < end:
        msg = b"ping %d\n" % ok
        try:
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = c.recv(len(msg) - len(got))
                if not d:
                    raise OSError("closed")
                got += d
            ok += got == msg
            bad += got != msg
        except OSError as e:
            bad += 1
            print("error", e, flush=True)
            break
        time.sleep(0.1)
    print("result", ok, bad, flush=True)


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


def readcheck(host, port, api, total):
    """The server reads with |api|. 300 small writes 2 ms apart first (each its own message: some cross by TCP before
    the proxies enrol their sockets, the rest by redirect), then the rest in 64 KiB writes."""
    c = socket.create_connection((host, port), timeout=30)
    c.sendall(f"READ {api}\n".encode())
    data = b"".join(stream(total))
    off = 0
    try:
        for _ in range(300):
            if off >= total:
                break
            c.sendall(data[off:off + 1024])
            off += 1024
            time.sleep(0.002)
        while off < total:
            c.sendall(data[off:off + CHUNK])
            off += CHUNK
        c.shutdown(socket.SHUT_WR)
        reply = read_line(c)
    except OSError as e:
        reply = f"- -1 client: {e} after sending {off} bytes"
    c.close()
    sha, n, err = (reply.split(" ", 2) + ["", "-1", "no reply"])[:3]
    return {"api": api, "bytes": total, "server_bytes": int(n), "error": err,
            "ok": err == "-" and int(n) == total and sha == expected_sha(total)}


def main(argv):
    cmd = argv[0]
    if cmd == "serve":
        serve(int(argv[1]), *argv[2:3])
        return 0
    if cmd == "hold":
        hold(argv[1], int(argv[2]), float(argv[3]))
        return 0
    host, port = argv[1], int(argv[2])
    if cmd == "peer":
        out = peer(host, port)
    elif cmd == "echo":
        out = echo(host, port, argv[3])
    elif cmd == "bulk":
        out = bulk(host, port, int(argv[3]))
    elif cmd == "concurrent":
        out = concurrent(host, port, int(argv[3]))
    elif cmd == "connrate":
        out = connrate(host, port, float(argv[3]))
    elif cmd == "try":
        out = try_connect(host, port, float(argv[3]) if len(argv) > 3 else 2.0)
    elif cmd == "source":
        out = source(host, port, int(argv[3]))
    elif cmd == "pingpong":
        out = pingpong(host, port, int(argv[3]), int(argv[4]))
    elif cmd == "slowsink":
        out = slowsink(host, port, int(argv[3]), float(argv[4]))
    elif cmd == "readcheck":
        out = readcheck(host, port, argv[3], int(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
