// The login screen: asks for a token, checks it with /api/session, keeps it in sessionStorage. The input is a
// password field and the token is never echoed anywhere else.
import { clearToken, errorText, get, setToken } from "../api";
import { clear, errorBox, h, loading } from "../dom";
import type { Session } from "../types";

export function renderLogin(root: HTMLElement, message: string, onSession: (s: Session) => void): void {
  const out = h("div", { "aria-live": "polite", "data-testid": "login-message" }, message ? errorBox(message) : null);
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "token",
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    { class: "login card", "data-testid": "login-form" },
    h("h1", { tabindex: -1, id: "page-title" }, "Sign in to the zeromesh console"),
    h("div", { class: "field" }, h("label", { for: "token" }, "Access token"), input),
    h(
      "small",
      { id: "token-help", class: "muted" },
      "Universal mode: a token from the controller's join-token file (its admin: entry may make changes, others are read-only). ",
      "Kubernetes: your own bearer token (kubectl create token …). It is kept in this browser tab only and sent as an Authorization header.",
    ),
    h("button", { type: "submit", "data-testid": "login" }, "Sign in"),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    setToken(t);
    input.value = "";
    clear(out, loading("your session"));
    try {
      onSession(await get<Session>("/api/session"));
    } catch (e) {
      clearToken();
      clear(out, errorBox(`Sign-in failed: ${errorText(e)}`));
      input.focus();
    }
  });
  clear(root, form);
  input.focus();
}
