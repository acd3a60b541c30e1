// Small DOM helpers: every text goes through textContent (never innerHTML), so nothing the API returns can inject
// markup.

type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;
type Child = Node | string | number | null | undefined | false;
export type Children = Child | Children[];

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Children[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag: string, attrs: Attrs = {}, ...children: Children[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
}

function append(el: Element, children: Children[]): void {
  for (const c of (children as unknown[]).flat(Infinity) as Child[]) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el: Element, ...children: Children[]): void {
  el.replaceChildren();
  append(el, children);
}

export function loading(what: string): HTMLElement {
  return h("p", { class: "loading", role: "status", "data-testid": "loading" }, `Loading ${what}…`);
}

export function errorBox(message: string): HTMLElement {
  return h("p", { class: "error", role: "alert", "data-testid": "error" }, message);
}

// A table inside a horizontally scrolling wrapper (phones), with a caption for screen readers.
export function table(caption: string, head: string[], rows: HTMLTableRowElement[], testid?: string): HTMLElement {
  return h(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption },
    h(
      "table",
      { "data-testid": testid },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "none"))),
    ),
  );
}

export function row(cells: Children[], attrs: Attrs = {}): HTMLTableRowElement {
  return h("tr", attrs, cells.map((c) => h("td", {}, c)));
}

export function badge(text: string, kind: "ok" | "bad" | "warn" | "neutral", testid?: string): HTMLElement {
  return h("span", { class: `badge badge-${kind}`, "data-testid": testid }, text);
}

// A <pre> with a Copy button (clipboard API where allowed, else a selection + execCommand fallback).
export function copyable(label: string, text: string, testid: string): HTMLElement {
  const pre = h("pre", { "data-testid": testid, tabindex: 0, "aria-label": label }, text);
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary",
      "data-testid": `${testid}-copy`,
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          const range = document.createRange();
          range.selectNodeContents(pre);
          const sel = window.getSelection();
          sel?.removeAllRanges();
          sel?.addRange(range);
          document.execCommand("copy");
        }
        status.textContent = "Copied";
        setTimeout(() => (status.textContent = ""), 2000);
      },
    },
    `Copy ${label.toLowerCase()}`,
  );
  return h("div", { class: "copyable" }, h("div", { class: "copy-head" }, h("h4", {}, label), button, status), pre);
}

export function duration(seconds: number): string {
  const neg = seconds < 0;
  let s = Math.abs(Math.round(seconds));
  let out: string;
  if (s < 90) out = `${s}s`;
  else if ((s = Math.round(s / 60)) < 90) out = `${s}m`;
  else if ((s = Math.round(s / 60)) < 48) out = `${s}h`;
  else out = `${Math.round(s / 24)}d`;
  return neg ? `-${out}` : out;
}

export function rate(n: number, unit: string): string {
  if (!Number.isFinite(n)) return "-";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} G${unit}`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M${unit}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k${unit}`;
  return `${n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1)} ${unit}`;
}

// Calls f now and then every `ms` until the signal aborts; a slow answer never overlaps the next tick.
export function poll(ms: number, signal: AbortSignal, f: () => Promise<void>): void {
  let timer: number | undefined;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await f();
    } finally {
      if (!signal.aborted) timer = window.setTimeout(tick, ms);
    }
  };
  signal.addEventListener("abort", () => window.clearTimeout(timer));
  void tick();
}

export function updatedAt(el: HTMLElement, ok: boolean, msg?: string): void {
  el.textContent = ok ? `Updated ${new Date().toLocaleTimeString()}` : `Update failed: ${msg ?? ""} — retrying`;
  el.className = ok ? "updated" : "updated stale";
}
