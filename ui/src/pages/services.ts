// Services: VIP, ports, endpoints, and routes whose splits are drawn as weight bars (configured vs measured).
import { get } from "../api";
import { h, row, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { L7Route, Route, Service } from "../types";

function bar(percent: number, kind: "configured" | "measured"): HTMLElement {
  const p = Math.max(0, Math.min(100, percent));
  return h(
    "div",
    { class: `bar bar-${kind}`, role: "img", "aria-label": `${kind} ${p.toFixed(1)}%` },
    h("div", { class: "bar-fill", style: `width: ${p}%` }),
  );
}

export function routeSplit(r: Route): HTMLElement {
  const total = r.backends.reduce((n, b) => n + (b.measured_connections ?? 0), 0);
  return h(
    "div",
    { class: "route", "data-testid": "route", "data-route": `${r.namespace}/${r.name}` },
    h("h4", {}, `Route ${r.namespace}/${r.name}`, h("span", { class: "muted" }, ` port ${r.port} · ${total} connections measured`)),
    h(
      "div",
      { class: "split" },
      r.backends.map((b) =>
        h(
          "div",
          {
            class: "split-row",
            "data-testid": "route-backend",
            "data-backend": b.name,
            "data-configured": b.percent.toFixed(1),
            "data-measured": (b.measured_percent ?? 0).toFixed(1),
            "data-connections": b.measured_connections ?? 0,
          },
          h("div", { class: "split-name" }, h("strong", {}, b.name), h("span", { class: "muted" }, ` :${b.port} · weight ${b.weight}`)),
          h("div", { class: "split-bars" },
            h("div", { class: "split-line" }, h("span", { class: "split-label" }, "configured"), bar(b.percent, "configured"),
              h("span", { class: "split-num", "data-testid": "configured-percent" }, `${b.percent.toFixed(0)}%`)),
            h("div", { class: "split-line" }, h("span", { class: "split-label" }, "measured"), bar(b.measured_percent ?? 0, "measured"),
              h("span", { class: "split-num", "data-testid": "measured-percent" },
                total ? `${(b.measured_percent ?? 0).toFixed(1)}% (${b.measured_connections})` : "no traffic yet")),
          ),
        ),
      ),
    ),
  );
}

// Request-level routes: each rule's matches and its backends' configured shares (requests are not measured yet).
function l7Route(r: L7Route): HTMLElement {
  return h(
    "div",
    { class: "route", "data-testid": "l7-route", "data-route": `${r.namespace}/${r.name}` },
    h("h4", {}, `${r.kind} ${r.namespace}/${r.name}`),
    table(
      `Rules of ${r.kind} ${r.namespace}/${r.name}`,
      ["Match", "Filters", "Backends"],
      r.rules.map((rule) =>
        row([
          rule.matches.length ? rule.matches.join(" or ") : "every request",
          (rule.filters ?? []).map((f) => f.type).join(", ") || "-",
          rule.backends.map((b) => `${b.service}:${b.port} ${b.share_percent.toFixed(0)}%`).join(", ") || "none",
        ]),
      ),
    ),
  );
}

function serviceCard(svc: Service): HTMLElement {
  const id = `svc-${svc.namespace}-${svc.name}`;
  return h(
    "section",
    { class: "card", "data-testid": "service", "data-service": `${svc.namespace}/${svc.name}`, "aria-labelledby": id },
    h("h2", { id }, `${svc.namespace}/${svc.name}`, h("span", { class: "muted" }, ` VIP ${(svc.vips?.length ? svc.vips : [svc.vip]).join(", ") || "none"}`)),
    h("p", {}, "Ports: ", svc.ports.map((p) => `${p.name || "-"} ${p.port}→${p.target_port}${p.protocol && p.protocol !== "TCP" ? ` (${p.protocol})` : ""}`).join(", ") || "none"),
    h("h3", {}, "Endpoints"),
    table(`Endpoints of ${svc.namespace}/${svc.name}`, ["IP", "Workload", "Node"], svc.endpoints.map((e) => row([e.ip, e.workload, e.node]))),
    svc.routes.length ? [h("h3", {}, "Routes"), svc.routes.map(routeSplit)] : h("p", { class: "muted" }, "No route: connections go to the endpoints directly."),
    svc.l7_routes?.length ? [h("h3", {}, "HTTP and gRPC routes"), svc.l7_routes.map(l7Route)] : [],
  );
}

export function renderServices(ctx: PageCtx): void {
  livePage<{ services: Service[] }>(
    ctx,
    "Services",
    "Virtual IPs, their endpoints and routes. Splits show the configured weight and the share of connections the agents measured.",
    2000,
    (signal) => get<{ services: Service[] }>("/api/services", signal),
    (body, data) => {
      if (!data.services.length) body.append(h("p", { class: "muted" }, "No services."));
      body.append(h("div", { class: "cards" }, data.services.map(serviceCard)));
    },
  );
}
