// Drives the wasm SDK in headless Chromium for the Rust browser suites (web-sdk/tests):
// one JSON command per line on stdin, one JSON answer per line on stdout. The page and the
// package are served same-origin with the API under test (`/v1` HTTP and WebSocket are
// proxied to PEERBRIDGE_API), as `peerbridge serve` will serve the app.
//
// Commands ({id, op, ...}):
//   context                      a fresh browser profile (empty IndexedDB), all tabs closed
//   restart                      closes the browser and starts it again on the same profile
//   open_tab {tab}               a new tab on the test page, the package loaded
//   reload {tab} / close_tab {tab}
//   eval {tab, js, arg}          runs `js` as an async function body with `arg` in the page
//   call {tab, method, args}     `await client[method](...args)` on the tab's open client
//   kill {tab, method, args, url, when}
//                                starts the call, and kills the tab when a request whose
//                                URL matches `url` (a regex) is about to leave
//                                (when: "before_request") or after the server answered it
//                                but before the page hears the answer ("after_response")
// Answers: {id, ok: value} or {id, err: {code, message}}.
import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import httpProxy from "http-proxy";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = normalize(join(here, "..", "pkg"));
const api = process.env.PEERBRIDGE_API;
if (!api) throw new Error("PEERBRIDGE_API is not set");
if (!existsSync(join(pkg, "peerbridge_web.js"))) throw new Error("run web-sdk/build first");

const proxy = httpProxy.createProxyServer({ target: api, ws: true });
proxy.on("error", (_e, _req, res) => {
  // A tab killed mid-request closes its socket; nothing to answer.
  if (res && res.writeHead && !res.headersSent) {
    res.writeHead(502);
    res.end();
  }
});
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const web = createServer((req, res) => {
  if (req.url.startsWith("/v1/")) return proxy.web(req, res);
  const path = req.url.split("?")[0];
  const file = path === "/" ? join(here, "page.html")
    : path.startsWith("/pkg/") ? normalize(join(pkg, path.slice(5))) : null;
  const inside = file && (file === join(here, "page.html") || file.startsWith(pkg + "/"));
  if (!inside || !existsSync(file)) {
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
web.on("upgrade", (req, socket, head) => {
  socket.on("error", () => {});
  proxy.ws(req, socket, head);
});
await new Promise((r) => web.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${web.address().port}`;

// A profile on disk, so a restarted browser finds its IndexedDB as a person's browser would.
const launch = (dir) => chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
let profile = mkdtempSync(join(tmpdir(), "pb-profile-"));
let context = await launch(profile);
const tabs = new Map();
for (const p of context.pages()) await p.close();

async function openTab(name) {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") process.stderr.write(`[${name}] ${m.text()}\n`);
  });
  page.on("pageerror", (e) => process.stderr.write(`[${name}] page error: ${e.message}\n`));
  await page.goto(origin + "/");
  await page.evaluate(() => window.sdkReady);
  tabs.set(name, page);
  return page;
}

function tab(name) {
  const page = tabs.get(name);
  if (!page) throw new Error(`no tab ${name}`);
  return page;
}

// Runs in the page: an async function body, errors returned as {code, message}.
const runInPage = async ({ js, arg }) => {
  try {
    const f = new Function("arg", `return (async () => { ${js} })();`);
    return { ok: (await f(arg)) ?? null };
  } catch (e) {
    return { err: { code: e && e.code ? e.code : "js_error", message: String(e && e.message ? e.message : e) } };
  }
};

const callJs = "return await window.client[arg.method](...arg.args);";

async function handle(cmd) {
  switch (cmd.op) {
    case "origin":
      return { ok: origin };
    case "context":
      tabs.clear();
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      profile = mkdtempSync(join(tmpdir(), "pb-profile-"));
      context = await launch(profile);
      return { ok: null };
    case "restart":
      tabs.clear();
      await context.close();
      context = await launch(profile);
      return { ok: null };
    case "open_tab":
      await openTab(cmd.tab);
      return { ok: null };
    case "reload": {
      const page = tab(cmd.tab);
      await page.reload();
      await page.evaluate(() => window.sdkReady);
      return { ok: null };
    }
    case "close_tab":
      await tab(cmd.tab).close();
      tabs.delete(cmd.tab);
      return { ok: null };
    case "eval":
      return tab(cmd.tab).evaluate(runInPage, { js: cmd.js, arg: cmd.arg ?? null });
    case "call":
      return tab(cmd.tab).evaluate(runInPage, { js: callJs, arg: { method: cmd.method, args: cmd.args ?? [] } });
    case "kill": {
      const page = tab(cmd.tab);
      const pattern = new RegExp(cmd.url);
      let seen;
      const matched = new Promise((resolve) => { seen = resolve; });
      await page.route(pattern, async (route) => {
        if (cmd.when === "after_response") {
          // The server receives and answers; the page never hears it.
          const resp = await route.fetch().catch(() => null);
          seen(resp ? resp.status() : 0);
        } else {
          seen(0);
        }
        // Never continued or fulfilled: the tab dies with the request open.
      });
      page.evaluate(runInPage, { js: callJs, arg: { method: cmd.method, args: cmd.args ?? [] } })
        .catch(() => {});
      const status = await Promise.race([
        matched,
        new Promise((r) => setTimeout(() => r(-1), 20000)),
      ]);
      await page.close({ runBeforeUnload: false }).catch(() => {});
      tabs.delete(cmd.tab);
      if (status === -1) return { err: { code: "driver", message: `no request matched ${cmd.url}` } };
      return { ok: status };
    }
    default:
      return { err: { code: "driver", message: `unknown op ${cmd.op}` } };
  }
}

const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
out({ ready: origin });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  let answer;
  try {
    answer = await handle(cmd);
  } catch (e) {
    answer = { err: { code: "driver", message: String(e && e.stack ? e.stack : e) } };
  }
  out({ id: cmd.id, ...answer });
}
await context.close();
rmSync(profile, { recursive: true, force: true });
web.close();
proxy.close();
process.exit(0);
