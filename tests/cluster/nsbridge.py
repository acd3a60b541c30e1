"""A TCP forwarder across network namespaces, for tests: listens inside one namespace (say a simulated control-plane
host) and connects out from the namespace it was started in (say the root namespace's loopback, where a test
kube-apiserver listens). Nothing is routed between the namespaces; the process simply holds a socket in each.

    nsbridge.py --listen-netns /var/run/netns/zmab-cp --listen 127.0.0.1:6443 --connect 127.0.0.1:41234

Prints "ready" once listening. SIGUSR1 drops every open connection (a cut watch); SIGUSR2 toggles refusing new ones
(an unreachable server); SIGTERM exits.
"""

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


def addr(s: str) -> tuple[str, int]:
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-netns", default="")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--connect", required=True)
    args = ap.parse_args()

    # Single-threaded here, so switching this thread's namespace switches the process's.
    if args.listen_netns:
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns(args.listen_netns)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(addr(args.listen))
    srv.listen(128)
    if args.listen_netns:
        if libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns(home)")
        os.close(home)

    lock = threading.Lock()
    conns: set[socket.socket] = set()
    refusing = threading.Event()

    def drop_all(*_):
        with lock:
            for c in list(conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def toggle(*_):
        if refusing.is_set():
            refusing.clear()
        else:
            refusing.set()
            drop_all()

    signal.signal(signal.SIGUSR1, drop_all)
    signal.signal(signal.SIGUSR2, toggle)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(addr(args.connect), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with lock:
            conns.update((client, upstream))
        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join()
        with lock:
            conns.discard(client)
            conns.discard(upstream)
        client.close()
        upstream.close()

    print("ready", flush=True)
    while True:
        client, _ = srv.accept()
        if refusing.is_set():
            client.close()
            continue
        threading.Thread(target=serve, args=(client,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
