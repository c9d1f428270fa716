// Build the React example page into pgbell's static folder, where `make
// run` serves it at /static/react/index.html: index.html as it is, and
// app.js, one ES module bundled by esbuild from examples/react/app.tsx with
// React and the package (as staged in dist/, the files `npm pack` ships).
//
// One bundle, loaded with <script type="module" src>, because pgbell's
// pages allow scripts from their own origin only (script-src 'self'): no
// inline script, no CDN. React itself ships only CommonJS on npm, so it
// cannot be loaded as an ES module without a bundler. The output is never
// committed; each file is written under a temporary name and renamed.

import { copyFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { stage } from "./stage.mjs";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const example = join(here, "examples", "react");
const out = join(here, "..", "client_demo", "react");

function replace(target, write) {
  const temporary = `${target}.${process.pid}.tmp`;
  write(temporary);
  renameSync(temporary, target);
}

stage();
const result = await build({
  entryPoints: [join(example, "app.tsx")],
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  jsx: "automatic",
  minify: true,
  legalComments: "none",
  define: { "process.env.NODE_ENV": '"production"' },
  outfile: join(out, "app.js"),
  write: false,
  logLevel: "warning",
});
mkdirSync(out, { recursive: true });
for (const file of result.outputFiles) replace(file.path, (t) => writeFileSync(t, file.contents));
replace(join(out, "index.html"), (t) => copyFileSync(join(example, "index.html"), t));
