// The services page draws the backend route's split: configured 90/10, and the share of connections the agents
// measured near 90/10 once enough connections went through.
import { expect, test } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ADMIN, BACKEND_URL, REPO, shot, signIn } from "./helpers";

test("the services page shows the measured 90/10 split of the backend route", async ({ page }) => {
  // The demo's frontend calls the backend once a second; 120 more calls make the measured share meaningful
  // (binomial, p = 0.1: one standard deviation is under 3 points at 120 connections).
  execFileSync("python3", [join(REPO, "tools", "demo", "demo.py"), "exec", "frontend", "--", "sh", "-c",
    `for i in $(seq 120); do curl -s -m2 -o /dev/null ${BACKEND_URL}; done`], { timeout: 120_000 });
  await signIn(page, ADMIN());
  await page.getByTestId("nav-services").click();
  const route = page.locator('[data-testid=route][data-route="shop/backend-split"]');
  const v1 = route.locator('[data-testid=route-backend][data-backend="backend-v1"]');
  const v2 = route.locator('[data-testid=route-backend][data-backend="backend-v2"]');
  await expect(v1).toHaveAttribute("data-configured", "90.0");
  await expect(v2).toHaveAttribute("data-configured", "10.0");
  // The agents report every few seconds: wait until the counts include the calls above.
  await expect
    .poll(async () => Number(await v1.getAttribute("data-connections")) + Number(await v2.getAttribute("data-connections")), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(100);
  const m1 = Number(await v1.getAttribute("data-measured"));
  const m2 = Number(await v2.getAttribute("data-measured"));
  const n1 = Number(await v1.getAttribute("data-connections"));
  const n2 = Number(await v2.getAttribute("data-connections"));
  console.log(`measured split: backend-v1 ${m1}% (${n1}), backend-v2 ${m2}% (${n2})`);
  expect(Math.abs(m1 - 90), `backend-v1 measured ${m1}%`).toBeLessThanOrEqual(10);
  expect(Math.abs(m2 - 10), `backend-v2 measured ${m2}%`).toBeLessThanOrEqual(10);
  expect(n2, "backend-v2 got some connections").toBeGreaterThan(0);
  expect(Math.abs(m1 + m2 - 100)).toBeLessThan(0.5);
  // What the page shows a person, not only the attributes.
  await expect(v1.getByTestId("measured-percent")).toContainText(`${m1.toFixed(1)}%`);
  await expect(v1.getByTestId("configured-percent")).toHaveText("90%");
  await route.scrollIntoViewIfNeeded();
  await shot(page, "services");
});
