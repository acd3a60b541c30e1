// Authentication and CSRF: every API route refuses a request without a (valid) token; writes need write rights and a
// matching Origin; the token is never rendered and a refused token sends the user back to the login screen.
import { expect, request, test } from "@playwright/test";
import { ADMIN, signIn, URL_, VIEWER } from "./helpers";

const GETS = [
  "/api/session",
  "/api/overview",
  "/api/workloads",
  "/api/namespaces",
  "/api/services",
  "/api/policies",
  "/api/policies/reach?from=shop/frontend&to=shop/backend-v1&port=8080",
  "/api/policies/who?to=shop/backend-v1&port=8080",
  "/api/traffic",
];
// Valid bodies (apply: true), so a refusal is about the caller and not the request. The policy step names its
// identity: without one it suggests the clients seen so far, and these tests may run before any traffic was seen.
const POSTS: [string, object][] = [
  ["/api/wizard/enroll", { namespace: "legacy", apply: true }],
  ["/api/wizard/mode", { namespace: "legacy", mode: "STRICT", apply: true }],
  ["/api/wizard/policy", { namespace: "shop", allow: ["spiffe://cluster.local/ns/shop/sa/frontend"], apply: true }],
  ["/api/wizard/canary", { namespace: "shop", service: "backend", backends: [{ name: "backend-v1", weight: 50 }, { name: "backend-v2", weight: 50 }], apply: true }],
];

test("every API route refuses a request without a token or with a bad one (401)", async () => {
  const api = await request.newContext({ baseURL: URL_() });
  for (const path of GETS) {
    for (const headers of [{}, { Authorization: "Bearer not-a-token" }, { Authorization: "Basic YWRtaW46YWRtaW4=" }] as Record<string, string>[]) {
      const r = await api.get(path, { headers });
      expect(r.status(), `GET ${path} ${JSON.stringify(headers)}`).toBe(401);
      expect(typeof (await r.json()).error, `GET ${path}: {"error": ...}`).toBe("string");
    }
  }
  for (const [path, body] of POSTS) {
    for (const headers of [{}, { Authorization: "Bearer not-a-token" }] as Record<string, string>[]) {
      const r = await api.post(path, { data: body, headers });
      expect(r.status(), `POST ${path} ${JSON.stringify(headers)}`).toBe(401);
    }
  }
  // The static page needs no token and holds no data.
  const index = await api.get("/");
  expect(index.status()).toBe(200);
  expect(await index.text()).toContain("/assets/app.js");
  await api.dispose();
});

test("a read-only token may preview but not apply (403); a foreign Origin and a non-JSON body are refused", async () => {
  const viewer = await request.newContext({ baseURL: URL_(), extraHTTPHeaders: { Authorization: `Bearer ${VIEWER()}` } });
  const session = await (await viewer.get("/api/session")).json();
  expect(session.can_write).toBe(false);
  for (const [path, body] of POSTS) {
    const r = await viewer.post(path, { data: body });
    expect(r.status(), `viewer POST ${path} apply`).toBe(403);
    expect(typeof (await r.json()).error).toBe("string");
    const preview = await viewer.post(path, { data: { ...body, apply: false } });
    expect(preview.status(), `viewer POST ${path} preview: ${await preview.text()}`).toBe(200);
    expect((await preview.json()).applied).toBe(false);
  }
  await viewer.dispose();

  const admin = await request.newContext({ baseURL: URL_(), extraHTTPHeaders: { Authorization: `Bearer ${ADMIN()}` } });
  expect((await (await admin.get("/api/session")).json()).can_write).toBe(true);
  // Previews (apply: false): the checks hold for every POST, and a missing check cannot change the cluster here.
  for (const [path, apply] of POSTS) {
    const body = { ...apply, apply: false };
    const foreign = await admin.post(path, { data: body, headers: { Origin: "http://evil.example" } });
    expect(foreign.status(), `POST ${path} with a foreign Origin`).toBe(403);
    const same = await admin.post(path, { data: body, headers: { Origin: URL_() } });
    expect(same.status(), `POST ${path} with the console's own Origin: ${await same.text()}`).toBe(200);
    const text = await admin.post(path, { data: JSON.stringify(body), headers: { "Content-Type": "text/plain" } });
    expect(text.status(), `POST ${path} as text/plain`).toBe(415);
  }
  await admin.dispose();
});

test("the viewer sees Apply disabled with the reason; the token is never rendered", async ({ page }) => {
  await signIn(page, VIEWER());
  await expect(page.getByTestId("session-rights")).toHaveText("read-only");
  await page.goto("/#/wizard/1");
  await page.getByTestId("preview").click();
  await expect(page.getByTestId("manifest")).toBeVisible();
  await expect(page.getByTestId("apply")).toBeDisabled();
  await expect(page.getByTestId("apply-reason")).toContainText("Read-only");
  const html = await page.content();
  expect(html).not.toContain(VIEWER());
  expect(await page.context().cookies()).toEqual([]);
});

test("a refused token sends the user back to the login screen", async ({ page }) => {
  await signIn(page, ADMIN());
  await page.evaluate(() => sessionStorage.setItem("zeromesh.console.token", "revoked-token"));
  await page.reload();
  await expect(page.getByTestId("login-form")).toBeVisible();
  await expect(page.getByTestId("login-message")).toContainText("Sign-in failed");
  await page.getByLabel("Access token").fill("still-wrong");
  await page.getByTestId("login").click();
  await expect(page.getByTestId("login-message")).toContainText("Sign-in failed");
  await expect(page.getByTestId("nav-overview")).toBeHidden();
});
