"""A capture of the wire between the machines (tcpdump on the fabric bridge) and what the tests ask of it: which
TCP segments of given pods carried payload outside HBONE (port 15008), and whether every HBONE connection started
with a TLS handshake."""

from __future__ import annotations

import ipaddress
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HBONE_PORT = 15008


@dataclass
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    payload: bytes  # the captured part (snaplen)
    payload_len: int
    ts: float = 0.0  # capture time (unix seconds)


class Capture:
    def __init__(self, fabric_netns: str, workdir: Path, snaplen: int = 128):
        self.path = workdir / f"wire-{int(time.time() * 1000)}.pcap"
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{fabric_netns}", "--", "tcpdump", "-i", "br0", "-U", "-n", "-s",
             str(snaplen), "-w", str(self.path), "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline and not (self.path.exists() and self.path.stat().st_size >= 24):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited: {self.proc.stderr.read().decode(errors='replace')}")
            time.sleep(0.05)
        time.sleep(0.3)  # tcpdump writes the file header before the socket is attached

    def so_far(self) -> list[Segment]:
        """What was captured until now (tcpdump -U writes each packet as it comes); the capture keeps running."""
        return read_pcap(self.path)

    def stop(self) -> list[Segment]:
        if self.proc.poll() is None:
            time.sleep(0.5)  # let in-flight packets land
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        return read_pcap(self.path)


def read_pcap(path: Path) -> list[Segment]:
    """Ethernet/IPv4/TCP segments of a classic pcap file (what tcpdump -w writes)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise RuntimeError(f"{path}: link type {linktype}, expected Ethernet")
    out: list[Segment] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        ts = sec + frac / (1e9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e6)
        pkt = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if len(pkt) < 14 + 20 or struct.unpack("!H", pkt[12:14])[0] != 0x0800:
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6 or len(ip) < ihl + 20:
            continue
        tcp = ip[ihl:]
        doff = (tcp[12] >> 4) * 4
        sport, dport = struct.unpack("!HH", tcp[:4])
        out.append(Segment(src=str(ipaddress.IPv4Address(ip[12:16])), dst=str(ipaddress.IPv4Address(ip[16:20])),
                           sport=sport, dport=dport, flags=tcp[13], payload=bytes(tcp[doff:]),
                           payload_len=max(0, total - ihl - doff), ts=ts))
    return out


def plaintext_of(segments: list[Segment], ips: set[str]) -> list[Segment]:
    """Segments to or from `ips` that carry payload on any port but HBONE's: plaintext the mesh let out."""
    return [s for s in segments if s.payload_len > 0 and (s.src in ips or s.dst in ips)
            and HBONE_PORT not in (s.sport, s.dport)]


def hbone_not_tls(segments: list[Segment]) -> list[Segment]:
    """The first payload segment of each HBONE connection (client to port 15008) opened during the capture (its SYN
    is in it) that is not a TLS handshake record."""
    opened: set[tuple] = set()
    seen: set[tuple] = set()
    bad = []
    for s in segments:
        if s.dport != HBONE_PORT:
            continue
        key = (s.src, s.sport, s.dst)
        if s.flags & 0x02:  # SYN
            opened.add(key)
        if s.payload_len == 0 or key not in opened or key in seen:
            continue
        seen.add(key)
        if not s.payload or s.payload[0] != 0x16:
            bad.append(s)
    return bad


def hbone_flows(segments: list[Segment], ips: set[str]) -> int:
    """How many HBONE connections with payload ran to or from `ips`."""
    return len({(s.src, s.sport, s.dst) for s in segments
                if s.dport == HBONE_PORT and s.payload_len > 0 and (s.src in ips or s.dst in ips)})
