// Benchmark (prints figures, asserts nothing about time): what a phone downloads and how
// long a first visit takes to become usable, against a real `peerbridge serve` serving
// web/dist. Cold load = navigation in a new browser profile (empty cache and storage) to
// the join screen's code field being editable: fetch, wasm compile, a new encrypted store
// opened. Warm load = a reload of the same page (HTTP cache, store exists). Seven of each;
// median and worst. Recorded in docs/benchmarks.md.
// Usage: PEERBRIDGE_BIN=target/debug/peerbridge node web/test/bench.mjs
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.PEERBRIDGE_BIN ?? join(root, "target", "debug", "peerbridge");
const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const base = `http://127.0.0.1:${port}`;
const server = spawn(bin, ["serve"], {
  cwd: mkdtempSync(join(tmpdir(), "pb-bench-")),
  env: {
    PATH: process.env.PATH,
    PEERBRIDGE_BIND: `127.0.0.1:${port}`,
    PEERBRIDGE_PUBLIC_URL: base,
    PEERBRIDGE_WEB_DIR: join(root, "web", "dist"),
    PEERBRIDGE_LOG_FORMAT: "json",
  },
  stdio: ["ignore", "ignore", "inherit"],
});
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/readyz`)).ok) break;
  } catch {
    // not listening yet
  }
  if (i > 200) throw new Error("the server did not start");
  await new Promise((r) => setTimeout(r, 100));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const phone = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
const usable = (page) => page.getByLabel("Invitasjonskode").waitFor({ state: "visible" });
const cold = [];
const warm = [];
try {
  for (let i = 0; i < 7; i++) {
    const context = await browser.newContext(phone);
    const page = await context.newPage();
    let t = performance.now();
    await page.goto(`${base}/join#code=AAAA-BBBB-CCCC-DDDD`);
    await usable(page);
    cold.push(performance.now() - t);
    t = performance.now();
    await page.reload();
    await usable(page);
    warm.push(performance.now() - t);
    await context.close();
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${Math.round(s[s.length >> 1])} ms, worst ${Math.round(s[s.length - 1])} ms`;
};
const assets = join(root, "web", "dist", "assets");
const sizes = { js: [0, 0], wasm: [0, 0], css: [0, 0] };
for (const f of readdirSync(assets)) {
  const kind = f.split(".").pop();
  if (!(kind in sizes)) continue;
  const raw = readFileSync(join(assets, f));
  sizes[kind][0] += raw.length;
  sizes[kind][1] += gzipSync(raw, { level: 9 }).length;
}
const total = Object.values(sizes).reduce((a, [, gz]) => a + gz, 0);
console.log(
  `web app bundle: js ${sizes.js[0]} B (${sizes.js[1]} B gzip -9), wasm ${sizes.wasm[0]} B ` +
    `(${sizes.wasm[1]} B), css ${sizes.css[0]} B (${sizes.css[1]} B); total gzip ${total} B`,
);
console.log(`cold load to usable (new profile, ${cold.length} runs): ${stat(cold)}`);
console.log(`warm reload to usable (${warm.length} runs): ${stat(warm)}`);
