// Bundles the page scripts and the style sheet into ../static/build/.
// `node build.mjs` builds once; `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));

const options = {
  absWorkingDir: here,
  entryPoints: {
    landing: "src/landing.ts",
    session: "src/session.ts",
    lab: "src/lab.ts",
    catalogue: "src/catalogue.ts",
    classroom: "src/classroom.ts",
    watch: "src/watch.ts",
    labs: "src/lab.css",
    playground: "src/playground.css",
  },
  outdir: path.join(here, "..", "static", "build"),
  bundle: true,
  format: "iife",
  // Browsers of the last few years; xterm.js needs no more.
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context({ ...options, logLevel: "info" });
  await context.watch();
} else {
  await esbuild.build(options);
}
