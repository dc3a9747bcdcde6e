// The wasm SDK in headless Chromium against a real `peerbridge serve` (issue 14):
// enrolment through the browser client, state restored from IndexedDB after a reload (same
// device key, same session), the wrong storage key refused with the SDK's typed code, and a
// second tab of the same account deferred by the Web Lock. The page is served same-origin
// with the API by a small static server that proxies /v1 (HTTP and WebSocket) to the
// server. Usage: PEERBRIDGE_BIN=target/debug/peerbridge node persistence.mjs
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, extname, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import httpProxy from "http-proxy";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bin = process.env.PEERBRIDGE_BIN ?? join(root, "target", "debug", "peerbridge");
const pkg = join(root, "web-sdk", "pkg");
assert.ok(existsSync(join(pkg, "peerbridge_web.js")), "run web-sdk/build first");

const dir = mkdtempSync(join(tmpdir(), "pb-web-"));
const env = { PATH: process.env.PATH, PEERBRIDGE_BIND: "127.0.0.1:0", PEERBRIDGE_LOG_FORMAT: "json" };
const cli = (...args) =>
  execFileSync(bin, args, { cwd: dir, env, stdio: ["ignore", "pipe", "ignore"] }).toString();

// The server, on a free port (read from its "listening" log line).
const server = spawn(bin, ["serve"], { cwd: dir, env, stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise((resolve, reject) => {
  let buf = "";
  server.stdout.on("data", (d) => {
    buf += d;
    for (const line of buf.split("\n")) {
      try {
        const v = JSON.parse(line);
        if (v.message === "listening") resolve(v.port);
      } catch {}
    }
  });
  server.on("exit", (c) => reject(new Error(`server exited ${c}`)));
});
const api = `http://127.0.0.1:${port}`;

// Day one: a clinic and a peer's invite.
const clinic = cli("admin", "create-clinic", "--name", "Web test clinic").trim();
const code = cli("admin", "create-invite", "--clinic", clinic, "--role", "peer")
  .split("\n").find((l) => l.startsWith("code: ")).slice(6);

// Same origin for the page and the API.
const proxy = httpProxy.createProxyServer({ target: api, ws: true });
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const web = createServer((req, res) => {
  if (req.url.startsWith("/v1/")) return proxy.web(req, res);
  const file = req.url === "/" ? join(here, "page.html")
    : req.url.startsWith("/pkg/") ? join(pkg, req.url.slice(5)) : null;
  if (!file || !existsSync(file)) { res.writeHead(404); return res.end(); }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
web.on("upgrade", (req, socket, head) => proxy.ws(req, socket, head));
await new Promise((r) => web.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${web.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
let failed = false;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("page:", m.text()));
  await page.goto(origin + "/");
  const key = Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff);

  const first = await page.evaluate(async ({ origin, key, code }) => {
    await window.sdkReady;
    const t0 = performance.now();
    const c = await PeerbridgeWeb.open(origin, "acct", new Uint8Array(key));
    const coldStartMs = performance.now() - t0;
    const session = await c.enroll(code, "Browser");
    const status = await c.ensureKeyPackages();
    window.client = c;
    return { deviceKey: c.devicePublicKey(), session, status, coldStartMs, initMs: window.initMs };
  }, { origin, key, code });
  assert.equal(first.session.role, "peer");
  assert.ok(first.status.remaining > 0, JSON.stringify(first.status));

  // A second tab of the same account defers while the first holds it.
  const tab2 = await context.newPage();
  await tab2.goto(origin + "/");
  const second = await tab2.evaluate(async ({ origin, key }) => {
    await window.sdkReady;
    try { await PeerbridgeWeb.open(origin, "acct", new Uint8Array(key)); return "opened"; }
    catch (e) { return e.code; }
  }, { origin, key });
  assert.equal(second, "account_in_use");
  await tab2.close();

  // Reload: everything comes back from IndexedDB.
  await page.reload();
  const again = await page.evaluate(async ({ origin, key }) => {
    await window.sdkReady;
    const c = await PeerbridgeWeb.open(origin, "acct", new Uint8Array(key));
    const session = await c.session();
    const relogin = await c.login();
    return { deviceKey: c.devicePublicKey(), session, relogin };
  }, { origin, key });
  assert.equal(again.deviceKey, first.deviceKey, "the device identity survived the reload");
  assert.equal(again.session.user_id, first.session.user_id);
  assert.equal(again.relogin.user_id, first.session.user_id, "the stored key still logs in");

  // The wrong key: the same typed error as on the phones, and the store is untouched.
  await page.reload();
  const wrong = await page.evaluate(async ({ origin, key }) => {
    await window.sdkReady;
    const bad = new Uint8Array(32).fill(9);
    let code = "opened";
    try { await PeerbridgeWeb.open(origin, "acct", bad); } catch (e) { code = e.code; }
    const c = await PeerbridgeWeb.open(origin, "acct", new Uint8Array(key));
    return { code, deviceKey: c.devicePublicKey() };
  }, { origin, key });
  assert.equal(wrong.code, "wrong_storage_key");
  assert.equal(wrong.deviceKey, first.deviceKey);
  console.log(
    `web-sdk persistence: ok (wasm fetch + instantiate ${first.initMs.toFixed(0)} ms, ` +
      `open of a new store ${first.coldStartMs.toFixed(0)} ms)`,
  );
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  web.close();
  proxy.close();
  server.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
