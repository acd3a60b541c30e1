// Shared by the specs: the demo cluster's console address and tokens, the demo's commands, signing in, screenshots.
import { expect, type Page } from "@playwright/test";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SHOTS = join(REPO, "docs", "ui");
// From tools/demo/demo.py: the backend Service's VIP and port.
export const BACKEND_URL = "http://10.96.0.10/";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the specs through tests/ui/run_console_ui.sh (it starts the demo cluster)`);
  return v;
}

export const URL_ = () => env("ZM_CONSOLE_URL");
export const ADMIN = () => env("ZM_CONSOLE_TOKEN");
export const VIEWER = () => env("ZM_CONSOLE_VIEWER_TOKEN");

// python3 tools/demo/demo.py ARGS (ZM_DEMO_PREFIX comes from the environment). Throws on a non-zero exit.
export function demo(...args: string[]): string {
  return execFileSync("python3", [join(REPO, "tools", "demo", "demo.py"), ...args], { encoding: "utf8", timeout: 120_000 });
}

// The HTTP status legacy-client (or another pod) gets from the backend Service: "200", or "000" when refused.
export function curlFrom(pod: string, url = BACKEND_URL): string {
  const r = spawnSync("python3", [join(REPO, "tools", "demo", "demo.py"), "exec", pod, "--", "curl", "-sm2", "-o", "/dev/null", "-w", "%{http_code}", url],
    { encoding: "utf8", timeout: 30_000 });
  return (r.stdout ?? "").trim() || "000";
}

export function curlMany(pod: string, n: number): string[] {
  return Array.from({ length: n }, () => curlFrom(pod));
}

export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Access token").fill(token);
  await page.getByTestId("login").click();
  await expect(page.getByTestId("session-rights")).toBeVisible();
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}
