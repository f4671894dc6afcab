// Builds an import map for the peers' npm packages, so the Chromium
// benchmark can load them unbundled from node_modules (served by the
// relay's --static). Follows bare imports transitively from the entry
// points, resolving each through its package.json "exports" with browser
// conditions.
import fs from "node:fs";
import path from "node:path";

const CONDITIONS = ["browser", "import", "module", "default"];

function pick(target) {
  if (typeof target === "string") return target;
  if (Array.isArray(target)) return pick(target[0]);
  if (target && typeof target === "object") {
    for (const c of CONDITIONS) if (c in target) return pick(target[c]);
  }
  return null;
}

function resolveBare(root, spec) {
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const sub = spec.slice(name.length) || "";
  const dir = path.join(root, "node_modules", name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  let rel = null;
  if (pkg.exports) {
    const key = `.${sub}`;
    const exp = typeof pkg.exports === "string" || Array.isArray(pkg.exports) || !Object.keys(pkg.exports).some((k) => k.startsWith("."))
      ? (key === "." ? pkg.exports : null)
      : pkg.exports[key] ?? pkg.exports[`${key}.js`];
    rel = pick(exp);
  }
  if (!rel) rel = sub ? `.${sub}${sub.endsWith(".js") ? "" : ".js"}` : (pkg.module ?? pkg.main ?? "index.js");
  return path.join(dir, rel);
}

const IMPORT = /(?:import|export)\s*(?:[^'"]*?\sfrom\s*)?['"]([^'"]+)['"]/g;

/** `entries`: bare specifiers; `overrides`: {specifier: path under root}
 * for packages whose browser entry needs a bundler. */
export function importMap(root, entries, overrides = {}) {
  const imports = {};
  const seen = new Set();
  const queue = [];
  for (const [spec, rel] of Object.entries(overrides)) {
    imports[spec] = "/" + rel;
    queue.push(path.join(root, rel));
  }
  for (const spec of entries) {
    if (spec in imports) continue;
    const file = resolveBare(root, spec);
    imports[spec] = "/" + path.relative(root, file).split(path.sep).join("/");
    queue.push(file);
  }
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file) || !fs.existsSync(file)) continue;
    seen.add(file);
    const src = fs.readFileSync(file, "utf8");
    for (const m of src.matchAll(IMPORT)) {
      const spec = m[1];
      if (spec.startsWith(".") || spec.startsWith("/")) {
        queue.push(path.resolve(path.dirname(file), spec));
      } else if (!spec.startsWith("node:") && !(spec in imports)) {
        try {
          const target = resolveBare(root, spec);
          imports[spec] = "/" + path.relative(root, target).split(path.sep).join("/");
          queue.push(target);
        } catch {
          // A bare import in a comment or a Node-only branch: not needed.
        }
      }
    }
  }
  return { imports };
}
