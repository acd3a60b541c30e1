// The overview: healthy; a stopped agent turns it into a problem with its hint within 10 s (the page polls every
// 2 s, without reload); the restarted agent brings it back to healthy.
import { expect, test } from "@playwright/test";
import { ADMIN, demo, shot, signIn } from "./helpers";

test("the overview is healthy, shows a stopped agent's problem and hint within 10 s, and recovers", async ({ page }) => {
  await signIn(page, ADMIN());
  const verdict = page.getByTestId("verdict");
  await expect(verdict).toHaveText("Healthy", { timeout: 30_000 });
  await expect(verdict).toHaveAttribute("data-healthy", "true");
  await shot(page, "overview");

  let started = false;
  try {
    demo("agent", "stop", "node2");
    const stopped = Date.now();
    await expect(verdict).toHaveAttribute("data-healthy", "false", { timeout: 10_000 });
    const problem = page.locator('[data-testid=problem][data-node="node2"]').first();
    await expect(problem).toBeVisible({ timeout: 10_000 - (Date.now() - stopped) });
    console.log(`problem shown ${Date.now() - stopped} ms after the agent stopped`);
    await expect(problem.getByTestId("problem-message")).toContainText("node2");
    await expect(problem.getByTestId("problem-hint")).toContainText("mesh-agent");
    await shot(page, "overview-problem");
    // The nodes page says the same.
    await page.getByTestId("nav-nodes").click();
    await expect(page.locator('[data-testid=node-card][data-node="node2"] [data-testid=node-connected]')).toHaveText("disconnected");
    await page.getByTestId("nav-overview").click();
    demo("agent", "start", "node2");
    started = true;
    await expect(page.getByTestId("verdict")).toHaveText("Healthy", { timeout: 60_000 });
  } finally {
    if (!started) demo("agent", "start", "node2");
  }
});
