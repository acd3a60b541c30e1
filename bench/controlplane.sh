#!/usr/bin/env bash
# Control-plane benchmark: mesh-controller on 127.0.0.1 with 10,000 workloads, 1,000 services and 200 policies in its
# manifest directory, and 100 simulated agents (bench/tools/agent_loadgen.cc) speaking the real agent protocol over
# gRPC+TLS with per-node join tokens. Measures the first full snapshot, policy change -> every agent's ACK (p50/p99),
# controller CPU (utime+stime) and peak RSS (VmHWM).
#   bench/controlplane.sh [--quick] [--json FILE] [--apply "none full"] [--agents 100] [--workloads 10000]
#                         [--services 1000] [--policies 200] [--changes 30] [--interval-ms 500] [--perf FILE]
#                         [--max-full-pushes N]
# --max-full-pushes N: the controller's --max-concurrent-full-pushes (default: the controller's, 16). The agents all
# join at once (a controller restart reconnects every agent together); the controller serves N snapshots at a time.
# --perf FILE: perf record on the controller during the policy changes of each mode; top symbols (self time) into
# FILE. Self time only: the Debian protobuf/gRPC libraries have no frame pointers, so -g call graphs are useless.
# --apply: which simulated-agent modes to run, each against a fresh controller (see agent_loadgen.cc):
#   none = decode + ACK (measures the controller and the transport), state = agent/control ConfigClient,
#   full = ConfigClient + ToMeshSnapshot + PolicySet::Compile (the agent's per-push work, 100x on this host).
# --quick: 10 changes, "none" only. No root needed; nothing leaves 127.0.0.1. ZM_KEEP=1 keeps the work directory
# (manifests, controller and load generator logs) in /tmp. ZM_BUILD_DIR=DIR takes the binaries from DIR (default
# build/default); ZM_NO_BUILD=1 uses them as they are instead of building them first.
# ZM_CONTROLLER_ENV="NAME=value ..." sets an environment for the controller only (e.g. MALLOC_ARENA_MAX=2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"
perf_out="" json="" full_pushes="" modes="none full"
agents=100 workloads=10000 services=1000 policies=200 changes=30 interval=500
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) changes=10 modes="none" ;;
    --json) json=$2; shift ;;
    --json=*) json=${1#--json=} ;;
    --apply) modes=$2; shift ;;
    --perf) perf_out=$2; shift ;;
    --agents) agents=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --services) services=$2; shift ;;
    --policies) policies=$2; shift ;;
    --changes) changes=$2; shift ;;
    --interval-ms) interval=$2; shift ;;
    --max-full-pushes) full_pushes=$2; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
build=${ZM_BUILD_DIR:-$here/build/default}
# ZM_NO_BUILD=1: use the binaries already in $build as they are (A/B runs of two builds, no rebuild mid-run).
if [ "${ZM_NO_BUILD:-0}" != 1 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    log "configuring $build (preset default)"
    (cd "$here" && cmake --preset default >/dev/null)
  fi
  log "building mesh-controller and zm-agent-loadgen in $build"
  buildlog=$(mktemp)
  cmake --build "$build" --target mesh-controller zm-agent-loadgen -j"$(nproc)" >"$buildlog" 2>&1 ||
    { tail -40 "$buildlog" >&2; rm -f "$buildlog"; die "build failed"; }
  rm -f "$buildlog"
fi
ctrl_bin=$build/controller/mesh-controller
gen_bin=$build/bench/zm-agent-loadgen

work=$(mktemp -d /tmp/zm-cpbench.XXXXXX)
ctrl_pid=""
cleanup() {
  if [ -n "$ctrl_pid" ] && kill -0 "$ctrl_pid" 2>/dev/null; then
    kill "$ctrl_pid" 2>/dev/null || true
    wait "$ctrl_pid" 2>/dev/null || true
  fi
  if [ "${ZM_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

log "generating $workloads workloads on $agents nodes, $services services, $policies policies in $work"
"$gen_bin" generate --dir "$work/manifests.tmpl" --tokens "$work/join-tokens.yaml" --workloads "$workloads" \
  --services "$services" --nodes "$agents" --policies "$policies" >&2

results=()
[ -z "$perf_out" ] || : >"$perf_out"
for mode in $modes; do
  run=$work/run-$mode
  mkdir -p "$run"
  cp -r "$work/manifests.tmpl" "$run/manifests"
  load_start=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  # ZM_CONTROLLER_ENV="NAME=value ...": environment for the controller only (e.g. glibc malloc tunables), not the load generator.
  env ${ZM_CONTROLLER_ENV:-} "$ctrl_bin" --manifests "$run/manifests" --join-tokens "$work/join-tokens.yaml" --ca-dir "$run/ca" \
    --listen 127.0.0.1:0 --admin-addr off --metrics-addr off ${full_pushes:+--max-concurrent-full-pushes "$full_pushes"} \
    >"$run/controller.log" 2>&1 &
  ctrl_pid=$!
  port=""
  for _ in $(seq 1 12000); do  # 10 min: 100,000 workloads in YAML take a while to decode (each file also parsed in the sandbox)
    port=$(grep -o '"msg":"mesh-controller listening".*"port":[0-9]*' "$run/controller.log" 2>/dev/null |
      grep -o '"port":[0-9]*' | cut -d: -f2 || true)
    [ -n "$port" ] && break
    kill -0 "$ctrl_pid" 2>/dev/null || die "controller exited: $(tail -c 2000 "$run/controller.log")"
    sleep 0.05
  done
  [ -n "$port" ] || die "controller not listening after 600 s: $(tail -c 2000 "$run/controller.log")"
  startup=$(awk "BEGIN{printf \"%.3f\", $(date +%s.%N) - $t0}")
  log "[$mode] controller pid $ctrl_pid on 127.0.0.1:$port (up after ${startup}s); running $agents agents"
  "$gen_bin" run --controller "127.0.0.1:$port" --ca "$run/ca/root-cert.pem" --tokens "$work/join-tokens.yaml" \
    --manifests "$run/manifests" --workdir "$run" --agents "$agents" --changes "$changes" --interval-ms "$interval" \
    --controller-pid "$ctrl_pid" --apply "$mode" --json "$run/result.json" --sync 1 2>"$run/loadgen.log" &
  gen_pid=$!
  for _ in $(seq 1 3600); do
    [ -e "$run/phase-changes" ] && break
    kill -0 "$gen_pid" 2>/dev/null || break
    sleep 0.1
  done
  perf_pid=""
  if [ -n "$perf_out" ] && [ -e "$run/phase-changes" ]; then
    perf record -F 499 -p "$ctrl_pid" -o "$run/perf.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 1
  fi
  touch "$run/phase-changes-go"
  wait "$gen_pid" || die "[$mode] load generator failed: $(tail -c 3000 "$run/loadgen.log")"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    { echo "=== apply mode $mode: mesh-controller during the policy changes (perf record -F 499, self time) ==="
      perf report -i "$run/perf.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | sed -E 's/ +- +- *$//; s/ +$//' | cut -c1-200 | head -30 || true; } >>"$run/perf.txt"
  fi
  grep -E '^(first|summary)' "$run/loadgen.log" >&2 || true
  kill "$ctrl_pid"
  wait "$ctrl_pid" 2>/dev/null || true
  ctrl_pid=""
  [ -z "$perf_out" ] || cat "$run/perf.txt" >>"$perf_out"
  echo "{\"controller_startup_s\": $startup, \"loadavg_1m_start\": $load_start, \"loadavg_1m_end\": $(cut -d' ' -f1 /proc/loadavg)}" >"$run/extra.json"
  results+=("$mode")
done

# One JSON: per mode the load generator's raw figures and summary, plus the machine and the goals.
out=${json:-/dev/stdout}
/usr/bin/python3 - "$work" "$out" "$agents" "$workloads" "$services" "$policies" "${full_pushes:-default}" \
  "${results[@]}" <<'EOF'
import datetime, json, os, platform, subprocess, sys
work, out, agents, workloads, services, policies, full_pushes, *modes = sys.argv[1:]
def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
                "loadavg": open("/proc/loadavg").read().split()[:3]},
    "config": {"agents": int(agents), "workloads": int(workloads), "services": int(services),
               "policies": int(policies), "max_concurrent_full_pushes": full_pushes},
    "runs": {}, "summary": {}, "goals": [],
}
for m in modes:
    r = json.load(open(f"{work}/run-{m}/result.json"))
    r.update(json.load(open(f"{work}/run-{m}/extra.json")))
    doc["runs"][m] = r
    s = dict(r["summary"])
    s["controller_startup_s"] = r["controller_startup_s"]
    s["controller_idle_cores"] = r["controller"]["idle_cores"]
    s["loadgen_cpu_s"] = r["loadgen"]["cpu_s"]
    doc["summary"][m] = s
    for g in r["goals"]:
        doc["goals"].append(dict(g, apply=m))
text = json.dumps(doc, indent=2) + "\n"
if out == "/dev/stdout":
    sys.stdout.write(text)
else:
    open(out, "w").write(text)
for m in modes:
    s = doc["summary"][m]
    a = s["change_to_all_agents_ack_ms"]
    print(f"[{m}] first snapshot alone {s['first_snapshot_single_ms']:.0f} ms, burst p50/p99 "
          f"{s['first_snapshot_burst_ms'].get('p50', 0):.0f}/{s['first_snapshot_burst_ms'].get('p99', 0):.0f} ms; "
          f"change -> all agents ACKed p50 {a['p50']:.1f} ms p99 {a['p99']:.1f} ms (n={a['n']}); "
          f"controller CPU {s['controller_cpu_s_total']:.1f} s, peak RSS {s['controller_peak_rss_mb']:.0f} MB",
          file=sys.stderr)
EOF
