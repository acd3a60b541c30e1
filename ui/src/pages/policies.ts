// Policies: the TrafficPermissions, the effective allow/deny per workload, and two questions answered by the
// controller with the agents' policy engine: "who can reach X?" and "can A reach B, and why?".
import { errorText, get } from "../api";
import { badge, clear, errorBox, h, loading, row, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { Policies, Reach, Who, Workload } from "../types";

function compact(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "string") return v;
  const text = JSON.stringify(v);
  return text === "{}" ? "any" : text;
}

function field(id: string, label: string, attrs: Record<string, string | boolean>, help?: string): HTMLElement {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name: id, autocomplete: "off", ...attrs, "aria-describedby": help ? `${id}-help` : undefined }),
    help ? h("small", { id: `${id}-help`, class: "muted" }, help) : null,
  );
}

function query(params: Record<string, string>): string {
  return Object.entries(params)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
}

// Runs `ask` on submit and shows loading, the answer or the error in `out`.
function askForm(form: HTMLFormElement, out: HTMLElement, ask: () => Promise<HTMLElement>): void {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button");
    button?.setAttribute("disabled", "");
    clear(out, loading("the answer"));
    try {
      clear(out, await ask());
    } catch (e) {
      clear(out, errorBox(errorText(e)));
    } finally {
      button?.removeAttribute("disabled");
    }
  });
}

function whoForm(): HTMLElement {
  const out = h("div", { "data-testid": "who-result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "ask", "data-testid": "who-form" },
    field("who-to", "Destination workload (namespace/name)", { list: "workload-options", required: true, "data-testid": "who-to" }),
    field("who-port", "Port", { type: "number", min: "1", max: "65535", "data-testid": "who-port" }, "optional: any port when empty"),
    h("button", { type: "submit", "data-testid": "who-submit" }, "Who can reach it?"),
  );
  askForm(form, out, async () => {
    const v = (id: string) => (form.querySelector(`#${id}`) as HTMLInputElement).value.trim();
    const w = await get<Who>(`/api/policies/who?${query({ to: v("who-to"), port: v("who-port") })}`);
    return h(
      "div",
      {},
      h("h4", {}, `Allowed to reach ${w.to}`),
      table("Allowed sources", ["Workload", "Identity", "Policy"],
        w.allowed.map((a) => row([a.workload, h("code", {}, a.identity), a.policy], { "data-testid": "who-allowed" }))),
      h("h4", {}, "Refused"),
      table("Refused sources", ["Workload", "Identity", "Policy", "Why"],
        w.denied.map((d) => row([d.workload, h("code", {}, d.identity), d.policy, d.reason], { "data-testid": "who-denied" }))),
      h("p", { "data-testid": "who-plaintext" }, "Plaintext (non-mesh) clients: ",
        badge(w.plaintext.allow ? "allowed" : "refused", w.plaintext.allow ? "warn" : "ok"), ` ${w.plaintext.reason}`),
    );
  });
  return h("section", { class: "card", "aria-labelledby": "who-title" }, h("h2", { id: "who-title" }, "Who can reach X?"), form, out);
}

function reachForm(): HTMLElement {
  const out = h("div", { "data-testid": "reach-result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "ask", "data-testid": "reach-form" },
    field("reach-from", "From (namespace/name, or an IPv4 address for a plaintext client)", { list: "workload-options", required: true, "data-testid": "reach-from" }),
    field("reach-to", "To (namespace/name)", { list: "workload-options", required: true, "data-testid": "reach-to" }),
    field("reach-port", "Port", { type: "number", min: "1", max: "65535", "data-testid": "reach-port" }, "optional"),
    h("button", { type: "submit", "data-testid": "reach-submit" }, "Can it, and why?"),
  );
  askForm(form, out, async () => {
    const v = (id: string) => (form.querySelector(`#${id}`) as HTMLInputElement).value.trim();
    const r = await get<Reach>(`/api/policies/reach?${query({ from: v("reach-from"), to: v("reach-to"), port: v("reach-port") })}`);
    return h(
      "div",
      {},
      h("p", { class: `verdict-line ${r.allow ? "ok" : "bad"}`, "data-testid": "reach-verdict", "data-allow": String(r.allow) },
        r.allow ? (r.http_rules ? "Allowed for some requests (HTTP rules)" : "Allowed") : "Refused", r.mtls ? " (mutual TLS)" : " (plaintext)"),
      h("dl", { class: "facts" },
        h("dt", {}, "Decided by"), h("dd", {}, r.policy || "-"),
        h("dt", {}, "Reason"), h("dd", {}, r.reason || "-"),
        h("dt", {}, "Source identity"), h("dd", {}, r.source_identity ? h("code", {}, r.source_identity) : "none (plaintext)")),
      h("h4", {}, "How the policy engine decided"),
      h("ol", { class: "explain", "data-testid": "reach-explain" }, r.explain.map((step) => h("li", {}, step))),
    );
  });
  return h("section", { class: "card", "aria-labelledby": "reach-title" }, h("h2", { id: "reach-title" }, "Can A reach B, and why?"), form, out);
}

export function drawEffective(p: Policies, filterNs?: string): HTMLElement {
  const rows = p.effective
    .filter((e) => !filterNs || e.workload.startsWith(`${filterNs}/`))
    .map((e) =>
      row(
        [
          h("strong", {}, e.workload),
          badge(e.mode, e.mode === "STRICT" ? "ok" : "warn"),
          e.allowed.length ? e.allowed.join(", ") : h("span", { class: "muted" }, "nobody"),
          e.denied.length
            ? h("ul", { class: "plain" }, e.denied.map((d) => h("li", { "data-testid": "effective-denied", "data-source": d.workload }, `${d.workload}: ${d.reason} (${d.policy})`)))
            : h("span", { class: "muted" }, "none"),
          badge(e.plaintext, e.plaintext === "refused" ? "ok" : "warn"),
        ],
        { "data-testid": "effective-row", "data-workload": e.workload },
      ),
    );
  return table("Effective policy per workload", ["Workload", "Mode", "Allowed sources", "Refused sources", "Plaintext"], rows, "effective");
}

export function renderPolicies(ctx: PageCtx): void {
  livePage<Policies>(
    ctx,
    "Policies",
    "TrafficPermissions and what they mean for each workload, computed by the same engine the agents run.",
    5000,
    (signal) => get<Policies>("/api/policies", signal),
    (body, p) => {
      body.append(
        h("dl", { class: "facts" },
          h("dt", {}, "Default policy"), h("dd", { "data-testid": "default-policy" }, p.default_policy),
          h("dt", {}, "Default mode"), h("dd", {}, p.default_mode)),
        h("h2", {}, "Effective policy"),
        drawEffective(p),
        h("h2", {}, "TrafficPermissions"),
        table("TrafficPermissions", ["Namespace/name", "Action", "Sources", "Destination"],
          p.permissions.map((t) => row([`${t.namespace}/${t.name}`, badge(t.action, t.action === "DENY" ? "bad" : "ok"),
            h("code", {}, compact(t.sources)), h("code", {}, compact(t.destination))], { "data-testid": "permission-row" })), "permissions"),
      );
    },
  );
  const options = h("datalist", { id: "workload-options" });
  const forms = h("div", { class: "cards two" }, whoForm(), reachForm());
  ctx.root.querySelector(".page-body")?.before(forms, options);
  get<{ workloads: Workload[] }>("/api/workloads", ctx.signal)
    .then((d) => d.workloads.forEach((w) => options.append(h("option", { value: `${w.namespace}/${w.name}` }))))
    .catch(() => {}); // suggestions only: the forms work without them
}
