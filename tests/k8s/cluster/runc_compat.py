#!/usr/bin/env python3
"""runc, as the test nodes' containerd calls it, adapted to this machine's sandbox: the processes of this machine
have no CAP_SYS_RESOURCE (not even root: it is missing from the bounding set), which a real node has. Without it runc
cannot lower a container's oom_score_adj below 0 (the kubelet asks -998 for every pod sandbox) or grant
CAP_SYS_RESOURCE (the agent's chart asks for it), and every such container fails to start. For `create` and `run`,
this clamps process.oomScoreAdj to >= 0 and removes CAP_SYS_RESOURCE from the capability sets of the bundle's
config.json, then execs runc; every other call goes to runc unchanged. On a machine that has the capability it
changes nothing. Logged to <bundle>/zeromesh-runc-compat.log.
"""

import json
import os
import sys

RUNC = "/usr/sbin/runc"
CAP_SYS_RESOURCE = 24


def has_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return True


def adapt(bundle: str) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    proc = spec.get("process") or {}
    changes = []
    if proc.get("oomScoreAdj", 0) < 0:
        changes.append(f"oomScoreAdj {proc['oomScoreAdj']} -> 0")
        proc["oomScoreAdj"] = 0
    for kind, caps in (proc.get("capabilities") or {}).items():
        if caps and "CAP_SYS_RESOURCE" in caps:
            caps.remove("CAP_SYS_RESOURCE")
            changes.append(f"-CAP_SYS_RESOURCE ({kind})")
    if changes:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, path)
        with open(os.path.join(bundle, "zeromesh-runc-compat.log"), "a") as f:
            f.write(", ".join(changes) + "\n")


def main() -> None:
    args = sys.argv[1:]
    if not has_sys_resource() and any(a in ("create", "run") for a in args):
        bundle = "."
        for i, a in enumerate(args):
            if a in ("--bundle", "-b") and i + 1 < len(args):
                bundle = args[i + 1]
            elif a.startswith("--bundle="):
                bundle = a.split("=", 1)[1]
        adapt(bundle)
    os.execv(RUNC, [RUNC] + args)


if __name__ == "__main__":
    main()
