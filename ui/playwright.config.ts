// Playwright drives Debian's Chromium (/usr/bin/chromium), never a downloaded browser. The specs run in file order
// (01-… to 05-…) on one worker: they share one demo cluster and change it (an agent stopped, a namespace enrolled).
// tests/ui/run_console_ui.sh brings the cluster up and sets ZM_CONSOLE_URL / ZM_CONSOLE_TOKEN / ZM_CONSOLE_VIEWER_TOKEN.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "tests",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: true,
  timeout: 240_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  outputDir: process.env.ZM_UI_RESULTS ?? "test-results",
  use: {
    baseURL: process.env.ZM_CONSOLE_URL,
    viewport: { width: 1280, height: 800 },
    browserName: "chromium",
    // Root (as in ctest) cannot use Chromium's sandbox.
    launchOptions: { executablePath: process.env.ZM_CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] },
    screenshot: "only-on-failure",
    trace: "off",
  },
});
