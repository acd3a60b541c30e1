"""Speaks HBONE (HTTP/2 CONNECT over mutual TLS 1.3) by hand, to impersonate a rogue peer in identity tests.

  hbone_probe.py client HOST PORT CERT KEY AUTHORITY      -> {"handshake": bool, "status": "200"|"other"|null, ...}
  hbone_probe.py server PORT CERT KEY OUTFILE              (a rogue HBONE server: records what it received)
Stdlib only (Python's ssl = OpenSSL), a minimal HTTP/2 framing with an HPACK literal encoder.
"""

import json
import socket
import ssl
import struct
import sys
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (lengths < 127)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def read_frames(s, want_headers_for=1, limit=64):
    buf = b""
    for _ in range(limit):
        while len(buf) < 9:
            d = s.recv(65536)
            if not d:
                return None
            buf += d
        length = int.from_bytes(buf[:3], "big")
        while len(buf) < 9 + length:
            d = s.recv(65536)
            if not d:
                return None
            buf += d
        ftype, stream, payload = buf[3], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + length]
        buf = buf[9 + length:]
        if ftype == 0x1 and stream == want_headers_for:
            return payload
        if ftype == 0x7:  # GOAWAY
            return None
    return None


def client(host, port, cert, key, authority):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we are the rogue: we do not care who the server is
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    out = {"handshake": False, "status": None}
    try:
        raw = socket.create_connection((host, port), timeout=5)
        s = ctx.wrap_socket(raw)
        out["handshake"] = True
        out["alpn"] = s.selected_alpn_protocol()
        headers = literal(":method", "CONNECT") + literal(":authority", authority)
        s.sendall(PREFACE + frame(0x4, 0, 0, b"") + frame(0x1, 0x4, 1, headers))
        block = read_frames(s)
        if block is None:
            out["error"] = "closed without a response"
        else:
            # nghttp2 encodes ":status: 200" as the static-table index 8 (0x88).
            out["status"] = "200" if block[:1] == b"\x88" else "other"
        s.close()
    except (OSError, ssl.SSLError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


def server(port, cert, key, outfile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    ctx.verify_mode = ssl.CERT_NONE
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(16)
    print("listening", flush=True)
    received = {"connections": 0, "handshakes": 0, "bytes": 0, "data": ""}
    lock = threading.Lock()

    def handle(conn):
        with lock:
            received["connections"] += 1
        try:
            s = ctx.wrap_socket(conn, server_side=True)
            with lock:
                received["handshakes"] += 1
            s.settimeout(5)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                with lock:
                    received["bytes"] += len(d)
                    received["data"] += d.decode("latin-1")[:2000]
        except (OSError, ssl.SSLError):
            pass
        with lock:
            with open(outfile, "w") as f:
                json.dump(received, f)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
