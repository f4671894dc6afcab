// Bundles the demo app with CodeMirror and the editor binding into
// dist/app.js (esbuild). The npm package under ./pkg/ stays a module of its
// own (its .wasm is found next to it), so it is marked external.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? path.join(HERE, "dist");

await build({
  entryPoints: [path.join(HERE, "src", "app.js")],
  outfile: path.join(out, "app.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  external: ["./pkg/*"],
  // The binding as the npm package ships it; CodeMirror from here only
  // (one copy of @codemirror/state, or its instanceof checks fail).
  alias: {
    "minidote/codemirror": path.join(HERE, "..", "bindings-wasm", "js", "codemirror.js"),
    "@codemirror/state": path.join(HERE, "node_modules", "@codemirror", "state"),
    "@codemirror/view": path.join(HERE, "node_modules", "@codemirror", "view"),
  },
  nodePaths: [path.join(HERE, "node_modules")],
  logLevel: "warning",
});
