// Stage the package's modules into dist/, which `exports` points at: the
// client's own modules, which pgbell serves at /static/ and so keeps in its
// package folder (client_demo/pgbell-client.js and client_demo/pgbell-client/), and
// the React bindings (src/react.js). npm runs this before `npm pack`; the
// React example's build runs it too. dist/ is never committed.
//
// Each file is written under a temporary name and renamed, so a build that
// runs meanwhile never reads half a file.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const served = join(here, "..", "client_demo");
const dist = join(here, "dist");

/** [source, path in dist/] for every module of the package. */
export function modules() {
  const lib = join(served, "pgbell-client");
  return [
    [join(served, "pgbell-client.js"), "pgbell-client.js"],
    ...readdirSync(lib)
      .filter((name) => name.endsWith(".js"))
      .sort()
      .map((name) => [join(lib, name), join("pgbell-client", name)]),
    [join(here, "src", "react.js"), "react.js"],
    [join(here, "..", "LICENSE"), "LICENSE"], // pgbell's, which the modules are part of
  ];
}

export function stage() {
  const wanted = modules();
  const keep = new Set(wanted.map(([, to]) => join(dist, to)));
  for (const [from, to] of wanted) {
    const target = join(dist, to);
    mkdirSync(dirname(target), { recursive: true });
    const temporary = `${target}.${process.pid}.tmp`;
    writeFileSync(temporary, readFileSync(from));
    renameSync(temporary, target);
  }
  // a module that was renamed or removed must not linger in the package
  for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath ?? entry.path, entry.name);
    if (entry.isFile() && !keep.has(path) && !path.endsWith(".tmp")) rmSync(path);
  }
  return wanted.map(([, to]) => relative(here, join(dist, to)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) stage();
