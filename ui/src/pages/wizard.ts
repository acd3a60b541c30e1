// The onboarding wizard: (1) enroll a namespace, (2) STRICT or PERMISSIVE with the clients that would break,
// (3) a first policy suggested from observed traffic, (4) an optional canary split. Each step previews (anyone may),
// shows the manifest it writes and the kubectl equivalent, applies where the session may write, then shows the
// result live.
import { errorText, get, post } from "../api";
import { badge, clear, copyable, errorBox, h, loading, poll, row, table } from "../dom";
import { header, type PageCtx } from "../page";
import type {
  CanaryResult, EnrollResult, ModeResult, Namespace, Policies, PolicyResult, Service, Traffic, WizardResult, Workload,
} from "../types";
import { drawEffective } from "./policies";
import { routeSplit } from "./services";
import { pairTable, trafficGraph } from "./traffic";
import { WORKLOAD_HEAD, workloadRow } from "./workloads";

const STEPS = ["Enroll a namespace", "Choose the mode", "A first policy", "Canary split"];

// Choices carried from step to step (the namespace picked in step 1 is the default of the next ones).
const chosen = { namespace: "", mode: "STRICT" as "STRICT" | "PERMISSIVE", policyNamespace: "", service: "" };

interface StepDef<R extends WizardResult> {
  route: string; // /api/wizard/<route>
  inputs: HTMLElement[];
  body: () => Record<string, unknown> | string; // a string is a validation error
  details: (r: R, rerun: () => Promise<void>) => HTMLElement | HTMLElement[];
  live: (r: R, out: HTMLElement, signal: AbortSignal) => void;
  // Step 3 changes the request from its own preview (allow/deny choices): those are merged into the body.
  extra?: () => Record<string, unknown>;
}

function applyBlock(ctx: PageCtx, onApply: () => void): HTMLElement {
  const can = ctx.session.can_write;
  const reason = h(
    "p",
    { id: "apply-reason", class: "muted", "data-testid": "apply-reason" },
    can
      ? ctx.session.mode === "kubernetes"
        ? `Applying makes a server-side apply of the manifest above with your own Kubernetes credentials (${ctx.session.user}); the API server's RBAC decides.`
        : "Applying writes the manifest above into the controller's manifest directory; the controller re-reads it at once and the change is rolled back if it refuses it."
      : `Read-only session (${ctx.session.user}): your token may not write${ctx.session.mode === "universal" ? " (use the join-token file's admin: entry)" : " (your Kubernetes user lacks create on trafficpermissions.zeromesh.io)"}. Copy the kubectl command instead.`,
  );
  const button = h("button", { type: "button", "data-testid": "apply", disabled: !can, "aria-describedby": "apply-reason", onclick: onApply }, "Apply");
  return h("div", { class: "apply" }, button, reason);
}

function stepShell<R extends WizardResult>(ctx: PageCtx, def: StepDef<R>): HTMLElement {
  const out = h("div", { class: "step-result", "aria-live": "polite", "data-testid": "step-result" });
  let live: AbortController | null = null;
  const stopLive = () => {
    live?.abort();
    live = null;
  };
  ctx.signal.addEventListener("abort", stopLive);

  const send = async (apply: boolean): Promise<R> => {
    const body = def.body();
    if (typeof body === "string") throw new Error(body);
    return post<R>(`/api/wizard/${def.route}`, { ...body, ...(def.extra?.() ?? {}), apply });
  };

  const preview = async () => {
    stopLive();
    clear(out, loading("the preview"));
    try {
      const r = await send(false);
      show(r);
    } catch (e) {
      clear(out, errorBox(errorText(e)));
    }
  };

  const show = (r: R) => {
    const applyResult = h("div", { "data-testid": "apply-result", "aria-live": "polite" });
    const liveOut = h("div", { class: "live", "data-testid": "live" });
    clear(
      out,
      def.details(r, preview),
      copyable("Manifest", r.manifest, "manifest"),
      copyable("kubectl command", r.kubectl, "kubectl"),
      applyBlock(ctx, async () => {
        clear(applyResult, loading("the change"));
        try {
          const done = await send(true);
          clear(
            applyResult,
            h("p", { class: "ok-text", "data-testid": "applied", role: "status" },
              done.applied ? `Applied: wrote ${done.written.join(", ") || "nothing new"}.` : "Nothing was applied."),
            h("details", {}, h("summary", {}, "The manifest written"), copyable("Manifest written", done.manifest, "applied-manifest")),
          );
          stopLive();
          live = new AbortController();
          clear(liveOut, h("h3", {}, "Live result"));
          def.live(done, liveOut, live.signal);
        } catch (e) {
          clear(applyResult, errorBox(`Apply failed: ${errorText(e)}`));
        }
      }),
      applyResult,
      liveOut,
    );
  };

  const form = h(
    "form",
    { class: "step-form", "data-testid": "step-form", onsubmit: (ev: Event) => { ev.preventDefault(); void preview(); } },
    def.inputs,
    h("button", { type: "submit", "data-testid": "preview" }, "Preview"),
  );
  return h("div", {}, form, out);
}

// A live table redrawn every 2 s into `out` (below its heading).
function liveInto<T>(out: HTMLElement, signal: AbortSignal, path: string, draw: (d: T) => HTMLElement | HTMLElement[]): void {
  const area = h("div", {}, loading("the live result"));
  out.append(area);
  poll(2000, signal, async () => {
    try {
      const d = await get<T>(path, signal);
      if (!signal.aborted) clear(area, draw(d), h("p", { class: "updated" }, `Updated ${new Date().toLocaleTimeString()}`));
    } catch (e) {
      if (!signal.aborted) clear(area, errorBox(errorText(e)));
    }
  });
}

function select(id: string, label: string, options: [string, string][], value: string, onchange: (v: string) => void): HTMLElement {
  const sel = h("select", { id, "data-testid": id, onchange: (ev: Event) => onchange((ev.target as HTMLSelectElement).value) },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return h("div", { class: "field" }, h("label", { for: id }, label), sel);
}

function nsOptions(nss: Namespace[]): [string, string][] {
  return nss.map((n) => [n.name, `${n.name} — ${n.enrolled}/${n.workloads} enrolled${n.mode ? `, ${n.mode}` : ""}`]);
}

function inNamespace(ns: string, workload: string): boolean {
  return workload.startsWith(`${ns}/`);
}

function step1(ctx: PageCtx, nss: Namespace[]): HTMLElement {
  if (!chosen.namespace) chosen.namespace = nss.find((n) => !n.namespace_enrolled)?.name ?? nss[0]?.name ?? "";
  return stepShell<EnrollResult>(ctx, {
    route: "enroll",
    inputs: [select("wizard-namespace", "Namespace", nsOptions(nss), chosen.namespace, (v) => (chosen.namespace = v))],
    body: () => (chosen.namespace ? { namespace: chosen.namespace } : "pick a namespace"),
    details: (r) => [
      h("p", { "data-testid": "enroll-summary" },
        r.already_enrolled ? `Namespace ${r.namespace} is already enrolled.` : `Enrolling ${r.namespace}: `,
        badge(`${r.restarts} pod restarts`, r.restarts === 0 ? "ok" : "warn", "restarts"),
        r.restarts === 0 ? " — running pods join the mesh in place." : ""),
      h("h3", {}, "What changes"),
      h("ul", { "data-testid": "changes" }, r.changes.map((c) => h("li", {}, c))),
      // enrolled_now is the workload's state today: those not enrolled yet are the ones that join.
      table("Workloads in the namespace", ["Workload", "Node", "IP", "Today", "After applying"],
        r.workloads.map((w) => row([w.name, w.node, w.ip, badge(w.enrolled_now ? "enrolled" : "not enrolled", w.enrolled_now ? "ok" : "neutral"),
          w.enrolled_now ? "stays enrolled" : badge("joins the mesh (no restart)", "ok")], { "data-testid": "enroll-workload", "data-joins": String(!w.enrolled_now) }))),
    ],
    live: (r, out, signal) => {
      out.append(h("p", { class: "muted" }, `Workloads of ${r.namespace} as the controller sees them now:`));
      liveInto<{ workloads: Workload[] }>(out, signal, "/api/workloads", (d) =>
        table("Workloads", WORKLOAD_HEAD, d.workloads.filter((w) => w.namespace === r.namespace).map(workloadRow), "live-workloads"));
    },
  });
}

function step2(ctx: PageCtx, nss: Namespace[]): HTMLElement {
  if (!chosen.namespace) chosen.namespace = nss[0]?.name ?? "";
  const radios = h("fieldset", { class: "radios" }, h("legend", {}, "Mode"),
    (["STRICT", "PERMISSIVE"] as const).map((m) =>
      h("label", {}, h("input", { type: "radio", name: "wizard-mode", value: m, "data-testid": `mode-${m}`, checked: chosen.mode === m,
        onchange: () => (chosen.mode = m) }),
        m === "STRICT" ? " STRICT — only mutual TLS from mesh identities" : " PERMISSIVE — mesh clients use mTLS, plaintext still accepted")));
  return stepShell<ModeResult>(ctx, {
    route: "mode",
    inputs: [select("wizard-namespace", "Namespace", nsOptions(nss), chosen.namespace, (v) => (chosen.namespace = v)), radios],
    body: () => (chosen.namespace ? { namespace: chosen.namespace, mode: chosen.mode } : "pick a namespace"),
    details: (r) => [
      h("h3", {}, "Preflight: clients that would break"),
      r.breaking_clients.length
        ? table("Clients that would break", ["Source", "Destination", "Connections seen"],
            r.breaking_clients.map((c) => row([c.source, c.destination, String(c.connections)], { "data-testid": "breaking-client" })))
        : h("p", { class: "ok-text", "data-testid": "no-breaking" }, "No plaintext client was seen talking to these pods."),
    ],
    live: (_r, out, signal) => {
      const ns = chosen.namespace;
      out.append(h("p", { class: "muted" }, `Traffic to and from ${ns}: pairs turn solid green once they use mutual TLS.`));
      liveInto<Traffic>(out, signal, "/api/traffic", (t) => {
        const pairs = t.pairs.filter((p) => inNamespace(ns, p.source) || inNamespace(ns, p.destination));
        return [pairs.length ? h("div", { class: "graph-wrap" }, trafficGraph(pairs)) : h("p", { class: "muted" }, "No traffic seen yet."), pairTable(pairs)];
      });
    },
  });
}

function step3(ctx: PageCtx, nss: Namespace[]): HTMLElement {
  if (!chosen.policyNamespace) chosen.policyNamespace = chosen.namespace || nss[0]?.name || "";
  // identity -> "allow" | "deny"; empty until the user changes a choice (then the preview follows the choices).
  const choice = new Map<string, "allow" | "deny">();
  return stepShell<PolicyResult>(ctx, {
    route: "policy",
    inputs: [select("wizard-namespace", "Namespace to protect", nsOptions(nss), chosen.policyNamespace, (v) => {
      chosen.policyNamespace = v;
      choice.clear();
    })],
    body: () => (chosen.policyNamespace ? { namespace: chosen.policyNamespace } : "pick a namespace"),
    extra: () => choice.size
      ? { allow: [...choice].filter(([, c]) => c === "allow").map(([i]) => i), deny: [...choice].filter(([, c]) => c === "deny").map(([i]) => i) }
      : {},
    details: (r, rerun) => {
      for (const s of r.observed_sources) if (!choice.has(s.identity)) choice.set(s.identity, "allow");
      return [
        h("h3", {}, "Sources seen talking to this namespace"),
        h("p", { class: "muted" }, "The suggestion allows every observed source; anything else is refused once an ALLOW policy exists. Move a source to Deny to refuse it explicitly."),
        table("Observed sources", ["Source", "Identity", "Connections", "Destinations", "Decision"],
          r.observed_sources.map((s) => {
            const name = `decide-${s.identity}`;
            const radio = (v: "allow" | "deny") => h("label", { class: "inline" },
              h("input", { type: "radio", name, value: v, "data-testid": `decide-${v}`, checked: choice.get(s.identity) === v,
                onchange: () => {
                  choice.set(s.identity, v);
                  // The preview is redrawn with the new choice: give the keyboard focus back to the same radio.
                  void rerun().then(() => document.querySelector<HTMLInputElement>(`input[name="${CSS.escape(name)}"][value="${v}"]`)?.focus());
                } }), v === "allow" ? " Allow" : " Deny");
            return row([s.workload || "-", h("code", {}, s.identity || "(plaintext)"), String(s.connections), s.destinations.join(", "),
              h("fieldset", { class: "decision" }, h("legend", { class: "sr-only" }, `Decision for ${s.workload || s.identity}`), radio("allow"), radio("deny"))],
              { "data-testid": "observed-source", "data-workload": s.workload, "data-identity": s.identity });
          })),
      ];
    },
    live: (_r, out, signal) => {
      const ns = chosen.policyNamespace;
      out.append(h("p", { class: "muted" }, `Effective policy of ${ns}'s workloads:`));
      liveInto<Policies>(out, signal, "/api/policies", (p) => drawEffective(p, ns));
    },
  });
}

function step4(ctx: PageCtx, nss: Namespace[], services: Service[]): HTMLElement {
  if (!chosen.namespace) chosen.namespace = nss[0]?.name ?? "";
  const rows = h("div", { class: "backends", "data-testid": "canary-backends" });
  const svcSelect = h("div");
  let nextRow = 0; // ids stay unique when rows are removed and added again
  const addRow = (name = "", weight = 0) => {
    const i = nextRow++;
    rows.append(h("div", { class: "backend-row", "data-testid": "canary-backend" },
      h("div", { class: "field" }, h("label", { for: `backend-name-${i}` }, "Backend service"),
        h("input", { id: `backend-name-${i}`, class: "backend-name", value: name, list: "canary-candidates", required: true })),
      h("div", { class: "field" }, h("label", { for: `backend-weight-${i}` }, "Weight"),
        h("input", { id: `backend-weight-${i}`, class: "backend-weight", type: "number", min: "0", value: String(weight), required: true })),
      h("button", { type: "button", class: "secondary", onclick: (ev: Event) => (ev.target as HTMLElement).closest(".backend-row")?.remove() }, "Remove")));
  };
  const candidates = h("datalist", { id: "canary-candidates" });
  const fill = () => {
    const inNs = services.filter((s) => s.namespace === chosen.namespace);
    if (!inNs.some((s) => s.name === chosen.service)) chosen.service = inNs.find((s) => s.routes.length)?.name ?? inNs[0]?.name ?? "";
    clear(svcSelect, inNs.length
      ? select("wizard-service", "Service", inNs.map((s) => [s.name, `${s.name} (${s.vip})`]), chosen.service, (v) => { chosen.service = v; fillBackends(); })
      : h("p", { class: "muted" }, "No service in this namespace."));
    clear(candidates, inNs.map((s) => h("option", { value: s.name })));
    fillBackends();
  };
  const fillBackends = () => {
    clear(rows);
    const svc = services.find((s) => s.namespace === chosen.namespace && s.name === chosen.service);
    const existing = svc?.routes[0]?.backends ?? [];
    if (existing.length) existing.forEach((b) => addRow(b.name, b.weight));
    else addRow(chosen.service, 100);
  };
  fill();
  return stepShell<CanaryResult>(ctx, {
    route: "canary",
    inputs: [
      select("wizard-namespace", "Namespace", nsOptions(nss), chosen.namespace, (v) => { chosen.namespace = v; fill(); }),
      svcSelect, candidates, rows,
      h("button", { type: "button", class: "secondary", onclick: () => addRow() }, "Add backend"),
    ],
    body: () => {
      if (!chosen.service) return "pick a service";
      const backends = [...rows.querySelectorAll(".backend-row")].map((r) => ({
        name: (r.querySelector(".backend-name") as HTMLInputElement).value.trim(),
        weight: Number((r.querySelector(".backend-weight") as HTMLInputElement).value),
      }));
      if (!backends.length || backends.some((b) => !b.name || !Number.isInteger(b.weight) || b.weight < 0))
        return "every backend needs a service name and a whole, non-negative weight";
      return { namespace: chosen.namespace, service: chosen.service, backends };
    },
    details: (r) => [
      h("h3", {}, "Services that can take a share"),
      table("Candidate backends", ["Service", "VIP"], r.candidates.map((c) => row([c.name, c.vip]))),
    ],
    live: (_r, out, signal) => {
      const ns = chosen.namespace;
      const name = chosen.service;
      out.append(h("p", { class: "muted" }, `Measured split of ${ns}/${name}:`));
      liveInto<{ services: Service[] }>(out, signal, "/api/services", (d) => {
        const svc = d.services.find((s) => s.namespace === ns && s.name === name);
        return svc?.routes.length ? h("div", {}, svc.routes.map(routeSplit)) : h("p", { class: "muted" }, "No route yet.");
      });
    },
  });
}

export function renderWizard(ctx: PageCtx): void {
  const n = Math.min(Math.max(Number(ctx.params[0]) || 1, 1), 4);
  header(ctx, "Wizard", "Bring a namespace into the mesh in four steps. Every step previews first; nothing changes until you press Apply.");
  ctx.root.append(
    h("nav", { class: "stepper", "aria-label": "Wizard steps" },
      h("ol", {}, STEPS.map((t, i) => h("li", {},
        h("a", { href: `#/wizard/${i + 1}`, "aria-current": i + 1 === n ? "step" : undefined, "data-testid": `wizard-step-${i + 1}` }, `${i + 1}. ${t}`))))),
  );
  const section = h("section", { class: "card", "data-testid": `wizard-panel-${n}`, "aria-labelledby": "step-title" },
    h("h2", { id: "step-title" }, `Step ${n}: ${STEPS[n - 1]}`), loading("namespaces"));
  ctx.root.append(section);
  const next = n < 4 ? h("a", { href: `#/wizard/${n + 1}`, class: "button-link", "data-testid": "next-step" }, `Next: ${STEPS[n]}`) : null;
  Promise.all([
    get<{ namespaces: Namespace[] }>("/api/namespaces", ctx.signal),
    n === 4 ? get<{ services: Service[] }>("/api/services", ctx.signal) : Promise.resolve({ services: [] as Service[] }),
  ])
    .then(([{ namespaces }, { services }]) => {
      section.lastElementChild?.remove();
      const body = n === 1 ? step1(ctx, namespaces) : n === 2 ? step2(ctx, namespaces) : n === 3 ? step3(ctx, namespaces) : step4(ctx, namespaces, services);
      section.append(body);
      if (next) ctx.root.append(h("p", {}, next));
    })
    .catch((e) => {
      if (!ctx.signal.aborted) section.lastElementChild?.replaceWith(errorBox(`Could not load the namespaces: ${errorText(e)}`));
    });
}
