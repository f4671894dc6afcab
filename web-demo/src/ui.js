// Small DOM helpers shared by the panels.

export const $ = (id) => document.getElementById(id);

/** `el("li", {className: "x"}, child, "text")`. */
export function el(tag, props = {}, ...children) {
  const { dataset, ...rest } = props;
  const e = Object.assign(document.createElement(tag), rest);
  if (dataset) Object.assign(e.dataset, dataset);
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

/** A stable colour for a replica id: a hue from its hash, as `#rrggbb`. */
export function colorOf(id) {
  let h = 2166136261;
  for (const c of String(id)) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const hue = h % 360, s = 0.65, l = 0.45;
  const f = (n) => {
    const k = (n + hue / 30) % 12;
    const v = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(v * 255).toString(16).padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

/** Any value a peer stored, as display text: never throws, whatever its
 * shape (a map with a `toString` field, a BigInt, bytes). */
export function str(v) {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint" || v === null) return String(v);
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x instanceof Uint8Array ? `<${x.length} bytes>` : x)) ?? "?";
  } catch {
    return "?";
  }
}

export function short(id) {
  return `${String(id).slice(0, 6)}…`;
}

export function clockText(time) {
  if (typeof time !== "number") return "";
  return new Date(time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

/** Runs `f` once shortly after it is asked, however often it is asked
 * meanwhile (a catch-up delivers thousands of changes in one task). A
 * timer, not requestAnimationFrame, so background tabs keep up too. */
export function coalesce(f, ms = 30) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    setTimeout(() => {
      queued = false;
      f();
    }, ms);
  };
}
