"""Plots a bench/dataplane.py JSON report: throughput, latency and connection rate per path (PNG).

    /usr/bin/python3 bench/plot.py REPORT.json [--out docs/img] [--table]
--table also prints the Markdown results table used in docs/benchmarks.md.
Needs matplotlib (Debian: python3-matplotlib, so run it with /usr/bin/python3). Bars are medians of the rounds; the
error bars span min..max.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"direct": "#8c8c8c", "zeromesh": "#1f77b4", "haproxy": "#ff7f0e"}


def bars(ax, report, metrics, labels, ylabel, title):
    paths = report["paths"]
    width = 0.8 / len(paths)
    for i, p in enumerate(paths):
        med = [report["median"][p].get(m, 0) for m in metrics]  # no proxy figures for "direct"
        lo = [med[j] - report["min"][p].get(m, 0) for j, m in enumerate(metrics)]
        hi = [report["max"][p].get(m, 0) - med[j] for j, m in enumerate(metrics)]
        xs = [j + (i - (len(paths) - 1) / 2) * width for j in range(len(metrics))]
        rects = ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=p, color=COLORS.get(p))
        ax.bar_label(rects, fmt="%.3g", fontsize=7, padding=2)
    ax.set_xticks(range(len(metrics)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


ROWS = [("throughput_1_gbps", "throughput, 1 stream (Gbit/s)"), ("throughput_8_gbps", "throughput, 8 streams (Gbit/s)"),
        ("rr1_p50_us", "RR 1 B p50 (µs)"), ("rr1_p99_us", "RR 1 B p99 (µs)"), ("rr1_p999_us", "RR 1 B p99.9 (µs)"),
        ("rr1k_p50_us", "RR 1 KiB p50 (µs)"), ("rr1k_p99_us", "RR 1 KiB p99 (µs)"),
        ("rr1k_p999_us", "RR 1 KiB p99.9 (µs)"), ("conn_per_s", "new connections/s"),
        ("proxy_cpu_core_s_per_gb", "proxy CPU (core-s per GB)"),
        ("steady_rate", "steady load: requests/s answered"), ("steady_p50_us", "steady load: p50 (µs)"),
        ("steady_p99_us", "steady load: p99 (µs)"), ("steady_proxy_vcpu", "steady load: proxies' CPU (vCPU)")]


def table(report) -> str:
    paths = report["paths"]
    out = ["| metric: median (min–max) | " + " | ".join(paths) + " |", "|---|" + "---:|" * len(paths)]
    for key, label in ROWS:
        cells = []
        for p in paths:
            if key in report["median"][p]:
                v = report["median"][p][key]
                f = "%.3f" if v < 1 else "%.1f" if v < 100 else "%.0f"
                cells.append(f"{f % report['median'][p][key]} ({f % report['min'][p][key]}–{f % report['max'][p][key]})")
            else:
                cells.append("–")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    mem = report["memory"]
    row = lambda k: " / ".join(f"{v:.1f}" for v in mem["zeromesh"][k]), lambda k: " / ".join(
        f"{v:.1f}" for v in mem["haproxy"][k])
    for k, label in (("idle_rss_mb", "RSS idle, node1 / node2 (MB)"),
                     ("rss_1000_mb", f"RSS with {mem['zeromesh']['hold']['open']} open connections (MB)"),
                     ("peak_hwm_mb", "peak RSS over the run, VmHWM (MB)")):
        out.append(f"| {label} | – | {row[0](k)} | {row[1](k)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    args = ap.parse_args()
    report = json.loads(Path(args.report).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = report["machine"]
    cfg = report["config"]
    load = cfg.get("loadavg_start")
    foot = (f"{report['date'][:10]}, {m['nproc']} cores {m['cpu']}, kernel {m['kernel']}; "
            f"{cfg['rounds']} rounds x {cfg['seconds']:g} s, median (bars) and min..max"
            + (f"; load {load[0]:.2f} at start, {cfg.get('agent_workers', '?')} proxy threads" if load else ""))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    bars(ax, report, ["throughput_1_gbps", "throughput_8_gbps"], ["1 stream", "8 streams"], "Gbit/s",
         "Throughput podA(node1) -> podC(node2), iperf3")
    fig.text(0.01, 0.01, foot, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "bench-throughput.png", dpi=110)
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(10, 4.2))
    bars(axs[0], report, ["rr1_p50_us", "rr1_p99_us", "rr1_p999_us"], ["p50", "p99", "p99.9"], "round trip, µs",
         "Request/response, 1 byte")
    bars(axs[1], report, ["rr1k_p50_us", "rr1k_p99_us", "rr1k_p999_us"], ["p50", "p99", "p99.9"],
         "round trip, µs", "Request/response, 1 KiB")
    for a in axs:
        a.set_yscale("log")
    fig.text(0.01, 0.01, foot, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out / "bench-latency.png", dpi=110)
    plt.close(fig)

    def single(metric, label, ylabel, title, name):
        fig, ax = plt.subplots(figsize=(5, 4.2))
        bars(ax, report, [metric], [label], ylabel, title)
        fig.text(0.01, 0.01, foot, fontsize=5)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(out / name, dpi=110)
        plt.close(fig)

    single("conn_per_s", f"connect + 16 B echo + close, {cfg['connrate_parallel']} parallel", "connections/s",
           "New connections per second", "bench-connrate.png")
    if "steady_proxy_vcpu" in report["median"]["zeromesh"]:
        st = cfg["steady"]
        single("steady_proxy_vcpu", f"{st['rate']} req/s x {st['size']} B over {st['conns']} connections",
               "vCPU (both proxies)", "Proxy CPU at a steady request rate", "bench-steady-cpu.png")
    print(f"wrote {out}/bench-throughput.png, bench-latency.png, bench-connrate.png, bench-steady-cpu.png")
    if args.table:
        print(table(report))
        print()
        print("| goal | value | met |\n|---|---:|---|")
        for g in report["goals"].values():
            print(f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else '**no**'} |")


if __name__ == "__main__":
    main()
