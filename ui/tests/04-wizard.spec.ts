// The wizard end to end against the demo cluster: enroll namespace legacy (its client then reaches the STRICT
// backend over mTLS), make it STRICT, then protect shop with a policy that keeps frontend and denies legacy-client,
// and measure that legacy-client is refused afterwards while frontend is not.
import { expect, test, type Page } from "@playwright/test";
import { ADMIN, curlFrom, curlMany, shot, signIn } from "./helpers";

const LEGACY_ID = "spiffe://cluster.local/ns/legacy/sa/legacy-client";

async function preview(page: Page, namespace: string): Promise<void> {
  await page.getByLabel(/^Namespace/).selectOption(namespace);
  await page.getByTestId("preview").click();
  await expect(page.getByTestId("manifest")).toBeVisible();
}

async function apply(page: Page): Promise<string> {
  await expect(page.getByTestId("apply")).toBeEnabled();
  await page.getByTestId("apply").click();
  await expect(page.getByTestId("applied")).toContainText("Applied", { timeout: 20_000 });
  return (await page.getByTestId("applied-manifest").textContent()) ?? "";
}

test("enroll legacy, make it STRICT, deny legacy-client in shop: traffic is refused afterwards", async ({ page }) => {
  // Before: legacy-client is outside the mesh and shop is STRICT, so its plaintext is refused.
  const before = curlMany("legacy-client", 3);
  console.log(`legacy-client -> backend before enrollment: ${before.join(" ")}`);
  expect(before.every((c) => c !== "200"), `refused before enrollment: ${before}`).toBe(true);

  await signIn(page, ADMIN());
  await page.getByTestId("nav-wizard").click();

  // Step 1: enroll legacy. The preview says what changes and that no pod restarts.
  await preview(page, "legacy");
  await expect(page.getByTestId("restarts")).toHaveText("0 pod restarts");
  await expect(page.locator('[data-testid=enroll-workload]', { hasText: "legacy-client" })).toHaveAttribute("data-joins", "true");
  await expect(page.getByTestId("kubectl")).toContainText("kubectl");
  await shot(page, "wizard-1-enroll");
  await apply(page);
  const live = page.locator('[data-testid=live-workloads] [data-testid=workload-row][data-workload="legacy/legacy-client"]');
  await expect(live).toHaveAttribute("data-enrolled", "true", { timeout: 20_000 });
  await expect(live.getByTestId("enrolled")).toHaveText("enrolled");
  await page.getByTestId("live").scrollIntoViewIfNeeded();
  await shot(page, "wizard-1-applied");
  // legacy-client now reaches the STRICT backend (mTLS with its own identity) once its agent has the config.
  await expect.poll(() => curlFrom("legacy-client"), { timeout: 30_000, intervals: [1000] }).toBe("200");
  const after1 = curlMany("legacy-client", 3);
  console.log(`legacy-client -> backend after enrollment: ${after1.join(" ")}`);
  expect(after1).toEqual(["200", "200", "200"]);

  // Step 2: STRICT for legacy.
  await page.getByTestId("wizard-step-2").click();
  await page.getByTestId("mode-STRICT").check();
  await preview(page, "legacy");
  expect(await apply(page)).toContain("STRICT");
  // Live: legacy-client's connections (made after step 1) show as mutual TLS.
  await expect(page.locator('[data-testid=live] [data-testid=traffic-pair][data-source="legacy/legacy-client"][data-mtls="true"]').first())
    .toBeVisible({ timeout: 20_000 });
  await page.getByTestId("live").scrollIntoViewIfNeeded();
  await shot(page, "wizard-2-mode");
  // STRICT changes what legacy's pods accept, not their membership: legacy-client still reaches shop over mTLS (so
  // the refusal after step 3 is the DENY's doing).
  await expect.poll(() => curlMany("legacy-client", 3).join(" "), { timeout: 20_000, intervals: [1000] }).toBe("200 200 200");

  // Step 3: a first policy for shop from the observed sources: keep frontend, deny legacy-client.
  await page.getByTestId("wizard-step-3").click();
  const legacyRow = page.locator(`[data-testid=observed-source][data-identity="${LEGACY_ID}"]`);
  // The agents report legacy-client's connections within seconds; preview until it is listed.
  await expect(async () => {
    await preview(page, "shop");
    await expect(legacyRow).toBeVisible({ timeout: 2_000 });
  }).toPass({ timeout: 45_000 });
  const frontendRow = page.locator('[data-testid=observed-source][data-workload="shop/frontend"]');
  await expect(frontendRow).toBeVisible();
  await expect(frontendRow.getByTestId("decide-allow")).toBeChecked();
  await legacyRow.getByTestId("decide-deny").check();
  await expect(page.getByTestId("manifest")).toContainText("DENY");
  await expect(page.getByTestId("manifest")).toContainText(LEGACY_ID);
  await shot(page, "wizard-3-policy");
  const written = await apply(page);
  expect(written).toContain("DENY");
  expect(written).toContain(LEGACY_ID);
  const effective = page.locator('[data-testid=live] [data-testid=effective-denied][data-source="legacy/legacy-client"]').first();
  await expect(effective).toBeVisible({ timeout: 20_000 });
  await page.getByTestId("live").scrollIntoViewIfNeeded();
  await shot(page, "wizard-3-applied");

  // Measurably refused now, while frontend still gets through.
  await expect.poll(() => curlFrom("legacy-client"), { timeout: 30_000, intervals: [1000] }).not.toBe("200");
  const after3 = curlMany("legacy-client", 5);
  console.log(`legacy-client -> backend after the DENY: ${after3.join(" ")}`);
  expect(after3.every((c) => c !== "200"), `refused after the DENY: ${after3}`).toBe(true);
  const frontend = curlMany("frontend", 3);
  console.log(`frontend -> backend after the DENY: ${frontend.join(" ")}`);
  expect(frontend).toEqual(["200", "200", "200"]);

  // The policy engine names the console's DENY as the reason.
  await page.getByTestId("nav-policies").click();
  await page.getByTestId("reach-from").fill("legacy/legacy-client");
  await page.getByTestId("reach-to").fill("shop/backend-v1");
  await page.getByTestId("reach-port").fill("8080");
  await page.getByTestId("reach-submit").click();
  await expect(page.getByTestId("reach-verdict")).toHaveAttribute("data-allow", "false");
  await expect(page.getByTestId("reach-result")).toContainText(/deny/i);
  console.log(`reach legacy-client -> backend-v1: ${await page.getByTestId("reach-result").innerText()}`);
  await shot(page, "policies-deny");

  // Step 4 (optional in the wizard): preview a canary split without applying it.
  await page.getByTestId("nav-wizard").click();
  await page.getByTestId("wizard-step-4").click();
  await page.getByLabel(/^Namespace/).selectOption("shop");
  await page.getByLabel("Service", { exact: true }).selectOption("backend");
  await page.getByTestId("preview").click();
  await expect(page.getByTestId("manifest")).toContainText("backend-v2");
  await shot(page, "wizard-4-canary");
});
