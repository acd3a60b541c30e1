// Traffic: a live graph of workload pairs from the agents' metrics. Nodes are workloads on a circle (sorted, so
// they stay put between updates); edges are curved so that A->B and B->A do not overlap. mTLS edges are solid
// green, plaintext dashed red.
import { get } from "../api";
import { badge, h, rate, row, s, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { Traffic, TrafficPair } from "../types";

const W = 1000;
const H = 420;

function edgeLabel(p: TrafficPair): string {
  const err = p.errors_per_second > 0 ? ` · ${rate(p.errors_per_second, "err/s")}` : "";
  const denied = p.denials_total > 0 ? ` · ${p.denials_total} denied` : "";
  return `${rate(p.connections_per_second, "conn/s")} · ${rate(p.bytes_per_second, "B/s")}${err}${denied}`;
}

export function trafficGraph(pairs: TrafficPair[]): SVGElement {
  const names = [...new Set(pairs.flatMap((p) => [p.source, p.destination]))].sort();
  // An ellipse as wide as the labels allow: the graph fits a 1280x800 screen under the page header.
  const rx = W / 2 - 200;
  const ry = H / 2 - 60;
  const pos = new Map<string, { x: number; y: number }>();
  names.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(names.length, 1) - Math.PI / 2;
    pos.set(n, names.length === 1 ? { x: W / 2, y: H / 2 } : { x: W / 2 + rx * Math.cos(a), y: H / 2 + ry * Math.sin(a) });
  });
  const marker = (id: string, cls: string) =>
    s("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: cls }));
  const edges = pairs.map((p) => {
    const a = pos.get(p.source)!;
    const b = pos.get(p.destination)!;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const len = Math.hypot(dx, dy) || 1;
    // Stop short of the node circles (radius 22) and bend to the right of the direction of travel.
    const ux = dx / len;
    const uy = dy / len;
    const sx = a.x + ux * 24;
    const sy = a.y + uy * 24;
    const ex = b.x - ux * 26;
    const ey = b.y - uy * 26;
    const cx = (sx + ex) / 2 - uy * 40;
    const cy = (sy + ey) / 2 + ux * 40;
    // The label sits on the curve a little before its middle (t = 0.4), so edges crossing at the centre of the
    // circle keep their labels apart.
    const t = 0.4;
    const lx = (1 - t) ** 2 * sx + 2 * (1 - t) * t * cx + t ** 2 * ex;
    const ly = (1 - t) ** 2 * sy + 2 * (1 - t) * t * cy + t ** 2 * ey - 6;
    const cls = p.mtls ? "edge edge-mtls" : "edge edge-plain";
    const label = edgeLabel(p);
    return s(
      "g",
      { class: cls, "data-testid": "traffic-edge", "data-source": p.source, "data-destination": p.destination, "data-mtls": String(p.mtls) },
      s("title", {}, `${p.source} → ${p.destination}: ${p.mtls ? "mutual TLS" : "PLAINTEXT"}, ${label}, ${p.connections_total} connections, ${p.denials_total} denied`),
      s("path", { d: `M ${sx} ${sy} Q ${cx} ${cy} ${ex} ${ey}`, "marker-end": p.mtls ? "url(#arrow-mtls)" : "url(#arrow-plain)" }),
      s("text", { x: lx, y: ly, "text-anchor": "middle", class: "edge-label" }, label),
    );
  });
  const nodes = names.map((n) => {
    const p = pos.get(n)!;
    const [ns, name] = n.includes("/") ? n.split("/", 2) : ["", n];
    // Labels sit outside the circle, away from the centre, where no edge runs.
    const ox = p.x - W / 2;
    const oy = p.y - H / 2;
    const ol = Math.hypot(ox, oy) || 1;
    const lx = names.length === 1 ? p.x : p.x + (ox / ol) * 32;
    const ly = names.length === 1 ? p.y + 40 : p.y + (oy / ol) * 32 + (oy > 0 ? 12 : -8);
    const anchor = Math.abs(ox / ol) < 0.3 || names.length === 1 ? "middle" : ox > 0 ? "start" : "end";
    return s(
      "g",
      { class: `gnode${n === "unknown" ? " gnode-unknown" : ""}`, "data-testid": "traffic-node", "data-workload": n },
      s("circle", { cx: p.x, cy: p.y, r: 22 }),
      s("text", { x: lx, y: ly, "text-anchor": anchor, class: "node-name" }, name, ns ? s("tspan", { class: "node-ns" }, ` ${ns}`) : null),
    );
  });
  return s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "graph", role: "img", "aria-label": `Traffic graph: ${pairs.length} workload pairs`, "data-testid": "traffic-graph" },
    s("defs", {}, marker("arrow-mtls", "arrow-mtls"), marker("arrow-plain", "arrow-plain")),
    edges,
    nodes,
  );
}

export function pairTable(pairs: TrafficPair[]): HTMLElement {
  return table(
    "Workload pairs",
    ["Source", "Destination", "Transport", "Conn/s", "Bytes/s", "Errors/s", "Connections", "Denied"],
    pairs.map((p) =>
      row(
        [p.source, p.destination, badge(p.mtls ? "mTLS" : "plaintext", p.mtls ? "ok" : "bad", "pair-transport"),
          rate(p.connections_per_second, ""), rate(p.bytes_per_second, "B"), rate(p.errors_per_second, ""),
          String(p.connections_total), String(p.denials_total)],
        { "data-testid": "traffic-pair", "data-source": p.source, "data-destination": p.destination, "data-mtls": String(p.mtls) },
      ),
    ),
    "traffic-pairs",
  );
}

export function renderTraffic(ctx: PageCtx): void {
  livePage<Traffic>(
    ctx,
    "Traffic",
    "Workload pairs seen by the agents in the last seconds. Solid green: mutual TLS; dashed red: plaintext. Updates every 2 seconds.",
    2000,
    (signal) => get<Traffic>("/api/traffic", signal),
    (body, t) => {
      body.append(
        h("p", { class: "legend" }, h("span", { class: "legend-mtls" }, "mTLS"), " ", h("span", { class: "legend-plain" }, "plaintext")),
        t.pairs.length ? h("div", { class: "graph-wrap" }, trafficGraph(t.pairs)) : h("p", { class: "muted", "data-testid": "traffic-empty" }, "No traffic seen yet."),
        h("h2", {}, "Pairs"),
        pairTable(t.pairs),
      );
    },
  );
}
