// The console's entry point: login, the nav bar and hash routing (#/overview, #/wizard/2, ...). Each page renders
// into <main> and gets an AbortSignal that stops its polling when the user navigates away.
import { clearToken, errorText, get, setUnauthorizedHandler, token } from "./api";
import { clear, errorBox, h, loading } from "./dom";
import type { PageCtx } from "./page";
import { renderLogin } from "./pages/login";
import { renderNodes } from "./pages/nodes";
import { renderOverview } from "./pages/overview";
import { renderPolicies } from "./pages/policies";
import { renderServices } from "./pages/services";
import { renderTraffic } from "./pages/traffic";
import { renderWizard } from "./pages/wizard";
import { renderWorkloads } from "./pages/workloads";
import type { Session } from "./types";

const PAGES: Record<string, { title: string; render: (ctx: PageCtx) => void }> = {
  overview: { title: "Overview", render: renderOverview },
  nodes: { title: "Nodes", render: renderNodes },
  workloads: { title: "Workloads", render: renderWorkloads },
  services: { title: "Services", render: renderServices },
  policies: { title: "Policies", render: renderPolicies },
  traffic: { title: "Traffic", render: renderTraffic },
  wizard: { title: "Wizard", render: renderWizard },
};

const main = document.getElementById("content") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const navList = document.getElementById("nav-list") as HTMLElement;
const navToggle = document.getElementById("nav-toggle") as HTMLButtonElement;
const sessionBox = document.getElementById("session") as HTMLElement;

let session: Session | null = null;
let current: AbortController | null = null;

function route(): { page: string; params: string[] } {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const page = parts[0] && PAGES[parts[0]] ? parts[0] : "overview";
  return { page, params: parts.slice(1) };
}

function show(focusTitle: boolean): void {
  if (!session) return;
  current?.abort();
  current = new AbortController();
  const { page, params } = route();
  for (const a of navList.querySelectorAll("a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  setNavOpen(false);
  document.title = `${PAGES[page].title} · zeromesh console`;
  main.replaceChildren();
  main.dataset.page = page;
  PAGES[page].render({ root: main, session, signal: current.signal, params });
  // After a navigation, move the focus to the new page's title so keyboard and screen-reader users land on it.
  if (focusTitle) document.getElementById("page-title")?.focus();
}

function setNavOpen(open: boolean): void {
  navToggle.setAttribute("aria-expanded", String(open));
  nav.classList.toggle("open", open);
}

function signedIn(s: Session): void {
  session = s;
  document.body.classList.remove("signed-out");
  clear(
    sessionBox,
    h("span", { "data-testid": "session-user" }, s.user),
    h("span", { class: `badge ${s.can_write ? "badge-ok" : "badge-neutral"}`, "data-testid": "session-rights" }, s.can_write ? "can write" : "read-only"),
    h("span", { class: "muted" }, s.mode),
    h("button", { type: "button", class: "secondary", "data-testid": "sign-out", onclick: () => signOut("") }, "Sign out"),
  );
  show(false);
}

function signOut(message: string): void {
  current?.abort();
  current = null;
  session = null;
  clearToken();
  document.body.classList.add("signed-out");
  sessionBox.replaceChildren();
  document.title = "Sign in · zeromesh console";
  renderLogin(main, message, signedIn);
}

function start(): void {
  navList.replaceChildren(
    ...Object.entries(PAGES).map(([id, p]) => h("li", {}, h("a", { href: `#/${id}`, "data-page": id, "data-testid": `nav-${id}` }, p.title))),
  );
  navToggle.addEventListener("click", () => setNavOpen(navToggle.getAttribute("aria-expanded") !== "true"));
  // "#content" would be taken for a route: the skip link moves the focus itself.
  document.querySelector(".skip-link")?.addEventListener("click", (ev) => {
    ev.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => show(true));
  // A 401 on any call means the token expired, was revoked or never worked: back to the login screen.
  setUnauthorizedHandler((reason) => {
    if (session) signOut(`Your token was refused (${reason}). Sign in again.`);
  });
  if (!token()) {
    signOut("");
    return;
  }
  clear(main, loading("your session"));
  get<Session>("/api/session")
    .then(signedIn)
    .catch((e) => {
      if (!session) {
        if (token()) clear(main, errorBox(`Could not reach the controller: ${errorText(e)}`), h("p", {}, h("a", { href: "" }, "Retry")));
        else signOut(`Sign-in failed: ${errorText(e)}`);
      }
    });
}

start();
