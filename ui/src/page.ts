// What every page gets, and the polling page skeleton (title, "updated" line, loading then data or error).
import { errorText } from "./api";
import { clear, errorBox, h, loading, poll, updatedAt } from "./dom";
import type { Session } from "./types";

export interface PageCtx {
  root: HTMLElement;
  session: Session;
  signal: AbortSignal; // aborted when the user leaves the page: stops its polling
  params: string[]; // the hash route's parts after the page name (#/wizard/2 -> ["2"])
}

export function header(ctx: PageCtx, title: string, intro?: string): HTMLElement {
  const status = h("p", { class: "updated", "aria-live": "polite", "data-testid": "updated" });
  ctx.root.append(h("h1", { tabindex: -1, id: "page-title" }, title));
  if (intro) ctx.root.append(h("p", { class: "intro" }, intro));
  ctx.root.append(status);
  return status;
}

// Polls fetch() every `ms` and redraws `body` with draw(). Until the first answer the body shows a loading line; a
// first failure shows the error; a later failure keeps the last data and marks the status line stale.
export function livePage<T>(
  ctx: PageCtx,
  title: string,
  intro: string,
  ms: number,
  fetch: (signal: AbortSignal) => Promise<T>,
  draw: (body: HTMLElement, data: T) => void,
): void {
  const status = header(ctx, title, intro);
  const body = h("div", { class: "page-body", "aria-busy": "true" }, loading(title.toLowerCase()));
  ctx.root.append(body);
  let loaded = false;
  poll(ms, ctx.signal, async () => {
    try {
      const data = await fetch(ctx.signal);
      if (ctx.signal.aborted) return;
      // Keep the focus where the user had it: redraws replace elements, so remember a focused input by its id.
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement.id : "";
      clear(body);
      draw(body, data);
      body.setAttribute("aria-busy", "false");
      if (focused) document.getElementById(focused)?.focus();
      loaded = true;
      updatedAt(status, true);
    } catch (e) {
      if (ctx.signal.aborted) return;
      if (!loaded) {
        clear(body, errorBox(`Could not load: ${errorText(e)}`));
        body.setAttribute("aria-busy", "false");
      }
      updatedAt(status, false, errorText(e));
    }
  });
}
