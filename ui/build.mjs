// Builds the console into OUTDIR (default ui/dist): index.html, assets/app.js (one bundle) and assets/app.css.
// Output is deterministic (no hashes, no timestamps) so the embedded C++ source only changes with the sources.
//   node build.mjs [--outdir DIR]
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--outdir");
const outdir = resolve(i > 0 && process.argv[i + 1] ? process.argv[i + 1] : join(here, "dist"));

mkdirSync(join(outdir, "assets"), { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning", absWorkingDir: here };
try {
  await build({ ...common, entryPoints: ["src/main.ts"], outfile: join(outdir, "assets/app.js"), format: "esm", target: "es2020" });
  await build({ ...common, entryPoints: ["src/style.css"], outfile: join(outdir, "assets/app.css") });
} catch {
  process.exit(1); // esbuild has printed the errors
}
copyFileSync(join(here, "index.html"), join(outdir, "index.html"));
