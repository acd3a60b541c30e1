// Overview: the health verdict and the problems with their hints, as `meshctl status` prints them.
import { get } from "../api";
import { badge, duration, h, row, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { Overview, Problem } from "../types";

function problemList(items: Problem[], kind: "problem" | "warning"): HTMLElement {
  return h(
    "ul",
    { class: `problems ${kind}s`, "data-testid": `${kind}s` },
    items.map((p) =>
      h(
        "li",
        { "data-testid": kind, "data-node": p.node ?? "" },
        h("p", { class: "message", "data-testid": `${kind}-message` }, p.message),
        h("p", { class: "hint", "data-testid": `${kind}-hint` }, h("strong", {}, kind === "problem" ? "Fix: " : "See: "), p.hint),
      ),
    ),
  );
}

export function renderOverview(ctx: PageCtx): void {
  livePage<Overview>(
    ctx,
    "Overview",
    "The mesh's health, as meshctl status reports it. Refreshed every 2 seconds.",
    2000,
    (signal) => get<Overview>("/api/overview", signal),
    (body, o) => {
      const n = o.problems.length;
      body.append(
        h(
          "section",
          { class: `verdict ${o.healthy ? "verdict-ok" : "verdict-bad"}`, "aria-labelledby": "verdict" },
          h(
            "p",
            { id: "verdict", "data-testid": "verdict", "data-healthy": String(o.healthy) },
            o.healthy ? "Healthy" : `${n} problem${n === 1 ? "" : "s"}`,
          ),
          h("p", { class: "muted" }, o.healthy ? "Every agent is connected, synced and attached." : "Each problem says how to fix it."),
        ),
      );
      if (n) body.append(h("h2", {}, "Problems"), problemList(o.problems, "problem"));
      if (o.warnings?.length) body.append(h("h2", {}, "Warnings"), problemList(o.warnings, "warning"));

      const c = o.controller;
      const m = o.mesh ?? {};
      const facts: [string, string][] = [
        ["Controller", `${c.address ?? "-"}${c.reachable === false ? " (unreachable)" : ""}`],
        ["Version", c.version || "-"],
        ["Config version", c.config_version !== undefined ? String(c.config_version) : "-"],
        ["Trust domain", m.trust_domain ?? c.trust_domain ?? ctx.session.trust_domain],
        ["Default mode", m.default_mode ? `${m.default_mode} (fail ${m.fail_mode ?? "-"})` : "-"],
      ];
      const soon = o.soonest_cert_expiry;
      if (soon) facts.push(["Soonest certificate expiry", `in ${duration(soon.seconds_left)}: ${soon.spiffe_id} on ${soon.node}`]);
      body.append(
        h("h2", {}, "Mesh"),
        h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      );

      const agents = o.agents ?? [];
      body.append(
        h("h2", {}, "Agents"),
        table(
          "Agents",
          ["Node", "Connected", "Config", "eBPF attachments"],
          agents.map((a) =>
            row([
              h("a", { href: "#/nodes" }, a.node),
              badge(a.connected ? "connected" : "disconnected", a.connected ? "ok" : "bad"),
              a.synced ? badge("synced", "ok") : badge(`v${a.config_version_applied ?? 0}/${a.config_version_latest ?? 0}`, "warn"),
              `${a.attachments_ok ?? 0}/${a.attachments_total ?? 0}`,
            ]),
          ),
        ),
      );
      const byNs = Object.entries(o.enrolled_pods_by_namespace ?? {});
      body.append(
        h("h2", {}, "Enrolled pods by namespace"),
        table("Enrolled pods by namespace", ["Namespace", "Pods"], byNs.map(([ns, k]) => row([ns, String(k)]))),
      );
    },
  );
}
