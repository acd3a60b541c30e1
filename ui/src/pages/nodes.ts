// Nodes: each agent's connection, config sync, eBPF attachments and certificates.
import { get } from "../api";
import { badge, duration, h, row, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { Agent, Overview } from "../types";

function syncCell(a: Agent): HTMLElement {
  const applied = a.config_version_applied ?? 0;
  const latest = a.config_version_latest ?? 0;
  const nacked = a.nack_error ? ` · rejected v${a.nacked_version ?? 0}` : "";
  return h(
    "span",
    {},
    badge(a.synced ? "synced" : "behind", a.synced ? "ok" : "warn"),
    ` acked v${applied} of v${latest}${nacked}`,
  );
}

function agentCard(a: Agent): HTMLElement {
  const certs = a.certs ?? [];
  const atts = a.attachments ?? [];
  return h(
    "section",
    { class: "card", "data-testid": "node-card", "data-node": a.node, "aria-labelledby": `node-${a.node}` },
    h(
      "h2",
      { id: `node-${a.node}` },
      a.node,
      " ",
      badge(a.connected ? "connected" : "disconnected", a.connected ? "ok" : "bad", "node-connected"),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Agent version"),
      h("dd", {}, a.version || "-"),
      h("dt", {}, "Health"),
      h("dd", {}, a.health ?? "-"),
      h("dt", {}, "Config sync"),
      h("dd", { "data-testid": "node-sync" }, syncCell(a)),
      a.nack_error ? [h("dt", {}, "Rejected because"), h("dd", { class: "error-text" }, a.nack_error)] : null,
      h("dt", {}, "Last report"),
      h("dd", {}, a.last_report_age_seconds !== undefined && a.last_report_age_seconds >= 0 ? `${duration(a.last_report_age_seconds)} ago` : "never"),
      h("dt", {}, "Fail mode"),
      h("dd", {}, a.fail_mode || "-"),
      h("dt", {}, "Enrolled pods"),
      h("dd", {}, (a.enrolled_pods ?? []).join(", ") || "none"),
    ),
    (a.errors ?? []).length ? h("ul", { class: "problems" }, (a.errors ?? []).map((e) => h("li", { class: "error-text" }, e))) : null,
    h("h3", {}, "eBPF attachments"),
    table(
      `eBPF attachments on ${a.node}`,
      ["Interface", "Hook", "Attached", "Chain position", "Repairs", "Error"],
      atts.map((t) =>
        row(
          [
            t.ifname,
            t.hook || "-",
            badge(t.attached ? "attached" : "detached", t.attached ? "ok" : "bad"),
            t.position === undefined ? "-" : t.position === 0 ? "first" : `behind ${t.position}`,
            String(t.repairs ?? 0) + (t.last_repair ? ` (${t.last_repair})` : ""),
            t.error || "-",
          ],
          { "data-testid": "attachment" },
        ),
      ),
    ),
    h("h3", {}, "Certificates"),
    table(
      `Certificates on ${a.node}`,
      ["SPIFFE ID", "Expires in"],
      certs.map((c) => row([h("code", {}, c.spiffe_id), badge(duration(c.seconds_left), c.seconds_left < 3600 ? "warn" : "neutral")])),
    ),
  );
}

export function renderNodes(ctx: PageCtx): void {
  livePage<Overview>(
    ctx,
    "Nodes",
    "Agents: connection, config versions acknowledged or rejected, eBPF hooks and certificate expiry.",
    3000,
    (signal) => get<Overview>("/api/overview", signal),
    (body, o) => {
      const agents = o.agents ?? [];
      if (!agents.length) body.append(h("p", { class: "muted" }, "No agent has connected to the controller yet."));
      body.append(h("div", { class: "cards" }, agents.map(agentCard)));
    },
  );
}
