"""Which BPF programs are attached to an interface, run inside the interface's netns: tcx (BPF_PROG_QUERY) and
cls_bpf filters on clsact (the agent's tc mode, `tc filter show`).

    nsenter --net=/var/run/netns/X python3 bpfquery.py IFNAME
      ->  {"ingress": [tcx prog ids], "egress": [...], "tc_ingress": [filter prog ids], "tc_egress": [...]}
bpftool 7.1 (Debian 12) predates tcx, so this asks the kernel directly.
"""

import ctypes
import json
import re
import socket
import subprocess
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_QUERY = 16
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47


def query(ifindex: int, attach_type: int) -> list[int]:
    libc = ctypes.CDLL(None, use_errno=True)
    ids = (ctypes.c_uint32 * 64)()
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = ifindex
    ctypes.c_uint32.from_buffer(attr, 4).value = attach_type
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(ids)
    ctypes.c_uint32.from_buffer(attr, 24).value = 64
    rc = libc.syscall(SYS_BPF, BPF_PROG_QUERY, ctypes.byref(attr), ctypes.sizeof(attr))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_QUERY on ifindex {ifindex}: {err}")
    count = ctypes.c_uint32.from_buffer(attr, 24).value
    return list(ids[:count])


def tc_filters(ifname: str, direction: str) -> list[int]:
    """Program ids of the BPF filters at the clsact hook (none without a clsact qdisc)."""
    res = subprocess.run(["tc", "filter", "show", "dev", ifname, direction], capture_output=True, text=True)
    return [int(m) for m in re.findall(r" bpf .*? id (\d+)", res.stdout)] if res.returncode == 0 else []


if __name__ == "__main__":
    idx = socket.if_nametoindex(sys.argv[1])
    print(json.dumps({"ingress": query(idx, BPF_TCX_INGRESS), "egress": query(idx, BPF_TCX_EGRESS),
                      "tc_ingress": tc_filters(sys.argv[1], "ingress"), "tc_egress": tc_filters(sys.argv[1], "egress")}))
