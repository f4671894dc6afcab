// Shared by the Chromium tests of the package and the web demo's e2e tests.
import net from "node:net";
import { chromium } from "playwright-core";

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `pred` (sync or async) until it is truthy; throws after `ms`. */
export async function waitFor(pred, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === "function" ? await what() : what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Headless Chromium from the system (nothing downloads its own browser here). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
