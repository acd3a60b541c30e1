// Workloads: identity, enrollment and mode of every workload, with a filter box.
import { get } from "../api";
import { badge, clear, h, row, table } from "../dom";
import { livePage, type PageCtx } from "../page";
import type { Workload } from "../types";

// Every address of the pod (a dual-stack one has one per family).
function addresses(w: Workload): string {
  return (w.ips?.length ? w.ips : [w.ip]).join(", ");
}

export function workloadRow(w: Workload): HTMLTableRowElement {
  return row(
    [
      h("strong", {}, `${w.namespace}/${w.name}`),
      h("code", {}, w.identity),
      badge(w.enrolled ? "enrolled" : "not enrolled", w.enrolled ? "ok" : "neutral", "enrolled"),
      badge(w.mode, w.mode === "STRICT" ? "ok" : "warn", "mode"),
      w.node,
      addresses(w),
      Object.entries(w.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(", "),
    ],
    { "data-testid": "workload-row", "data-workload": `${w.namespace}/${w.name}`, "data-enrolled": String(w.enrolled) },
  );
}

export const WORKLOAD_HEAD = ["Workload", "Identity", "Enrolled", "Mode", "Node", "IP", "Labels"];

export function renderWorkloads(ctx: PageCtx): void {
  const input = h("input", {
    id: "workload-filter",
    type: "search",
    "data-testid": "workload-filter",
    placeholder: "namespace, name, node, identity, label…",
    autocomplete: "off",
  });
  let last: Workload[] | null = null;
  const list = h("div");
  const draw = () => {
    if (!last) return;
    const q = input.value.trim().toLowerCase();
    const shown = last.filter((w) =>
      [w.namespace, w.name, `${w.namespace}/${w.name}`, w.node, addresses(w), w.identity, w.mode, w.enrolled ? "enrolled" : "not enrolled",
        ...Object.entries(w.labels ?? {}).map(([k, v]) => `${k}=${v}`)]
        .some((f) => f.toLowerCase().includes(q)),
    );
    clear(
      list,
      h("p", { class: "muted", "data-testid": "workload-count" }, `${shown.length} of ${last.length} workloads`),
      table("Workloads", WORKLOAD_HEAD, shown.map(workloadRow), "workloads"),
    );
  };
  input.addEventListener("input", draw);
  livePage<{ workloads: Workload[] }>(
    ctx,
    "Workloads",
    "Every workload the controller knows, with its SPIFFE identity, whether it is enrolled and its mode.",
    3000,
    (signal) => get<{ workloads: Workload[] }>("/api/workloads", signal),
    (body, data) => {
      last = data.workloads;
      body.append(h("div", { class: "field" }, h("label", { for: "workload-filter" }, "Filter"), input), list);
      draw();
    },
  );
}
