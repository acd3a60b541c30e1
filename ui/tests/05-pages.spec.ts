// Every page renders the demo's data (and is photographed for docs/ui.md), the forms answer, the traffic graph
// updates without reload, and the layout holds at phone width.
import { expect, test } from "@playwright/test";
import { ADMIN, shot, signIn } from "./helpers";

test.beforeEach(async ({ page }) => {
  await signIn(page, ADMIN());
});

test("nodes: agents, config sync, eBPF attachments with their hook, certificates", async ({ page }) => {
  await page.getByTestId("nav-nodes").click();
  for (const node of ["node1", "node2"]) {
    const card = page.locator(`[data-testid=node-card][data-node="${node}"]`);
    await expect(card.getByTestId("node-connected")).toHaveText("connected", { timeout: 30_000 });
    await expect(card.getByTestId("node-sync")).toContainText("synced");
    await expect(card.getByTestId("attachment").first()).toContainText(/tcx|tc/);
    await expect(card).toContainText("spiffe://");
  }
  await shot(page, "nodes");
});

test("workloads: identity, enrollment, mode; the filter box narrows the list", async ({ page }) => {
  await page.getByTestId("nav-workloads").click();
  const rows = page.getByTestId("workload-row");
  await expect(rows).toHaveCount(6); // frontend, backend-v1/v2, inventory-v1/v2 (gRPC), legacy-client
  await expect(page.locator('[data-testid=workload-row][data-workload="shop/frontend"]')).toContainText("spiffe://cluster.local/ns/shop/sa/frontend");
  await page.getByLabel("Filter").fill("backend");
  await expect(rows).toHaveCount(2);
  await page.getByLabel("Filter").fill("");
  await expect(rows).toHaveCount(6);
  await shot(page, "workloads");
});

test("policies: effective table, who can reach X, can A reach B and why", async ({ page }) => {
  await page.getByTestId("nav-policies").click();
  await expect(page.locator('[data-testid=effective-row][data-workload="shop/backend-v1"]')).toBeVisible();
  await page.getByLabel("Destination workload (namespace/name)").fill("shop/backend-v1");
  await page.getByTestId("who-port").fill("8080");
  await page.getByTestId("who-submit").click();
  await expect(page.getByTestId("who-allowed").filter({ hasText: "shop/frontend" })).toBeVisible();
  await page.getByTestId("reach-from").fill("shop/frontend");
  await page.getByTestId("reach-to").fill("shop/backend-v1");
  await page.getByTestId("reach-port").fill("8080");
  await page.getByTestId("reach-submit").click();
  await expect(page.getByTestId("reach-verdict")).toHaveAttribute("data-allow", "true");
  await expect(page.getByTestId("reach-explain").locator("li").first()).toBeVisible();
  await shot(page, "policies");
});

test("traffic: the graph shows mTLS pairs and updates without a reload", async ({ page }) => {
  await page.getByTestId("nav-traffic").click();
  const edge = page.locator('[data-testid=traffic-edge][data-source="shop/frontend"]').first();
  await expect(edge).toHaveAttribute("data-mtls", "true", { timeout: 30_000 });
  const first = await page.getByTestId("updated").textContent();
  await page.evaluate(() => ((window as unknown as { zmMarker: number }).zmMarker = 1));
  await expect(page.getByTestId("updated")).not.toHaveText(first ?? "", { timeout: 10_000 });
  expect(await page.evaluate(() => (window as unknown as { zmMarker?: number }).zmMarker)).toBe(1); // same document
  await shot(page, "traffic");
});

test("phone width: the nav collapses behind Menu and tables scroll", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(page.getByTestId("nav-overview")).toBeHidden();
  await page.getByTestId("nav-toggle").click();
  await expect(page.getByTestId("nav-toggle")).toHaveAttribute("aria-expanded", "true");
  await shot(page, "phone-menu");
  await page.getByTestId("nav-overview").click();
  await expect(page.getByTestId("verdict")).toBeVisible();
  await expect(page.getByTestId("nav-overview")).toBeHidden();
  // Nothing makes the page itself wider than the screen (wide tables scroll inside their own box).
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(390);
  await shot(page, "phone-overview");
});

test("keyboard: the skip link goes to the content; nav links work with Enter and focus the new page", async ({ page }) => {
  await page.reload(); // the token is kept in sessionStorage: still signed in, focus at the start of the document
  await expect(page.getByTestId("verdict")).toBeVisible();
  await page.keyboard.press("Tab");
  await expect(page.getByText("Skip to content")).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page.locator("#content")).toBeFocused();
  await page.getByTestId("nav-workloads").focus();
  await page.keyboard.press("Enter");
  await expect(page.locator("#page-title")).toBeFocused();
  await expect(page.locator("#page-title")).toHaveText("Workloads");
  await expect(page.getByLabel("Filter")).toBeVisible();
  await page.keyboard.press("Tab");
  await expect(page.getByLabel("Filter")).toBeFocused();
  // Typing filters, and the 3 s refresh keeps the focus in the box.
  await page.keyboard.type("frontend");
  await expect(page.getByTestId("workload-row")).toHaveCount(1);
  await page.waitForTimeout(3500);
  await expect(page.getByLabel("Filter")).toBeFocused();
});

test("loading and error states: a slow answer shows Loading, a failed one the controller's error", async ({ page }) => {
  // Hold the first /api/services answer back, then fail it: the page must say so instead of staying blank.
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  await page.route("**/api/services", async (route) => {
    await held;
    await route.fulfill({ status: 500, contentType: "application/json", body: JSON.stringify({ error: "store unavailable" }) });
  });
  await page.getByTestId("nav-services").click();
  await expect(page.getByTestId("loading")).toBeVisible();
  release();
  await expect(page.getByTestId("error")).toContainText("store unavailable");
  await expect(page.getByTestId("error")).toContainText("500");
  // When the controller answers again, the next refresh replaces the error with the data.
  await page.unroute("**/api/services");
  await expect(page.locator('[data-testid=service][data-service="shop/backend"]')).toBeVisible({ timeout: 10_000 });
  // A refresh that fails after data was shown keeps the data and marks the page stale.
  await page.route("**/api/services", (route) => route.abort());
  await expect(page.getByTestId("updated")).toContainText("Update failed", { timeout: 10_000 });
  await expect(page.locator('[data-testid=service][data-service="shop/backend"]')).toBeVisible();
});
