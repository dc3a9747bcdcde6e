// The web app in headless Chromium (Debian's, via playwright-core) against a real
// `peerbridge serve` that serves it (web/dist) on the API's origin, under its strict CSP.
// The whole story through the UI (only the clinic and two staff accounts are seeded, with
// the admin CLI): an HP sets up sign-in (password + authenticator code) and invites a
// service user and a peer (the QR code on the screen is decoded and opened); both enroll on
// phone-sized screens; the HP approves the peer and proposes an introduction from the
// ranked suggestions; both accept and chat (the service user with the keyboard only); the
// clinic admin puts the HP on duty; the peer flags two messages the detector suggested; the
// HP opens the excerpt verified and resolves it; the service user reads the clinic's notice.
// Web Push: both devices subscribe (the browser's push service is replaced by a local
// receiver, as this machine has no internet), the apps are closed, and a message and a flag
// each produce a push whose VAPID signature and RFC 8291 encryption are checked here with
// an independent implementation (node crypto + http_ece), carrying no content; the flag's
// push is delivered to the service worker, which shows the neutral notification. Reload,
// browser restart on the same profile, a second tab, the app lock, the identity cards after
// both consent — and before that, nothing naming the other party in either party's pages or
// network traffic. Every screen is checked with axe-core in bokmål, nynorsk and English.
// Screenshots go to web/test-results/.
// Usage: PEERBRIDGE_BIN=target/debug/peerbridge node web/test/app.mjs
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createECDH, createPublicKey, randomBytes, verify as verifySignature } from "node:crypto";
import { gzipSync } from "node:zlib";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import jsQR from "jsqr";
import { PNG } from "pngjs";
import ece from "http_ece";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bin = process.env.PEERBRIDGE_BIN ?? join(root, "target", "debug", "peerbridge");
const shots = join(root, "web", "test-results");
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);

// The server on a free port, its public URL the same (invite links point at it).
const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const base = `http://127.0.0.1:${port}`;

// The push service, played by this test: every POST is kept for inspection.
const pushes = [];
const receiver = createHttpServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    pushes.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(201).end();
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const pushBase = `http://127.0.0.1:${receiver.address().port}`;
const dir = mkdtempSync(join(tmpdir(), "pb-app-"));
const env = {
  PATH: process.env.PATH,
  PEERBRIDGE_BIND: `127.0.0.1:${port}`,
  PEERBRIDGE_PUBLIC_URL: base,
  PEERBRIDGE_WEB_DIR: join(root, "web", "dist"),
  PEERBRIDGE_LOG_FORMAT: "json",
  PEERBRIDGE_PUSH_ALLOWED_HOSTS: pushBase,
};
const cli = (...args) =>
  execFileSync(bin, args, { cwd: dir, env, stdio: ["ignore", "pipe", "ignore"] }).toString();
const server = spawn(bin, ["serve"], { cwd: dir, env, stdio: ["ignore", "ignore", "inherit"] });
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/readyz`)).ok) break;
  } catch {
    // not listening yet
  }
  if (i > 200) throw new Error("the server did not start");
  await new Promise((r) => setTimeout(r, 100));
}

// Seeded with the admin CLI: the clinic and two staff accounts (their setup codes).
const clinic = cli("admin", "create-clinic", "--name", "Ullevål testklinikk").trim();
/** A staff account: its user id and setup code. */
const staff = (role, login, name) => {
  const out = cli(
    ...["admin", "create-staff", "--clinic", clinic, "--role", role, "--login", login],
    ...["--name", name],
  ).split("\n");
  const field = (k) => out.find((l) => l.startsWith(`${k}: `)).slice(k.length + 2);
  return { id: field("user_id"), setup: field("setup_code") };
};
const nurse = staff("hp", "nurse@test.example", "Hanne Sykepleier");
const leader = staff("clinic_admin", "leder@test.example", "Kari Leder");

const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: chromiumArgs });
const phone = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
const desktop = { viewport: { width: 1280, height: 800 } };
const problems = [];
const contexts = [];

/** Watches a page: CSP refusals and page errors are failures; every API response and stream
 * frame it received is recorded (for the absence checks). */
function watch(name, page, seen) {
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${name}: ${e.message}`));
  page.on("response", async (r) => {
    if (new URL(r.url()).pathname.startsWith("/v1/")) seen.push(await r.text().catch(() => ""));
  });
  page.on("websocket", (ws) => ws.on("framereceived", (f) => seen.push(String(f.payload))));
}

/** The browser's push service stands in for this machine's missing internet: a subscription
 * whose endpoint is the local receiver and whose keys this test holds. Everything else
 * (permission, the app's subscribe call with the server's VAPID key, registering it with
 * the server) is the app's own code. */
async function fakePushService(context, name) {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const sub = {
    name,
    ecdh,
    auth: randomBytes(16).toString("base64url"),
    endpoint: `${pushBase}/push/${name}`,
  };
  await context.grantPermissions(["notifications"], { origin: base });
  await context.addInitScript(
    ({ endpoint, p256dh, auth }) => {
      let current = null;
      PushManager.prototype.subscribe = async function (options) {
        const key = options.applicationServerKey;
        window.__pbServerKey =
          typeof key === "string" ? key : btoa(String.fromCharCode(...new Uint8Array(key)));
        current = {
          endpoint,
          expirationTime: null,
          toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
          unsubscribe: async () => {
            current = null;
            return true;
          },
        };
        return current;
      };
      PushManager.prototype.getSubscription = async () => current;
    },
    { endpoint: sub.endpoint, p256dh: ecdh.getPublicKey("base64url"), auth: sub.auth },
  );
  return sub;
}

/** A person's browser: its own profile on disk (so it can be restarted). */
async function person(name, options, profile = mkdtempSync(join(tmpdir(), `pb-${name}-`))) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: chromiumArgs,
    ...options,
  });
  contexts.push(context);
  const page = context.pages()[0] ?? (await context.newPage());
  const seen = [];
  watch(name, page, seen);
  return { name, context, page, seen, profile, options };
}

/** Closes a person's browser and starts it again on the same profile. */
async function restart(p) {
  await p.context.close();
  const again = await person(p.name, p.options, p.profile);
  return Object.assign(p, {
    context: again.context,
    page: again.page,
    seen: [...p.seen, ...again.seen],
  });
}

/** axe-core on the current screen, in each language: no serious or critical violation. The
 * person's own language is chosen again at the end. */
async function accessible(page, screen) {
  const own = await page.locator("#language").inputValue();
  for (const lang of ["nn", "en", "nb"]) {
    await page.locator("#language").selectOption(lang);
    await page.evaluate(axeSource);
    const result = await page.evaluate(async () =>
      // eslint-disable-next-line no-undef -- injected by the evaluate above
      axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }),
    );
    const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
    assert.deepEqual(
      bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(" ")}`),
      [],
      `${screen} (${lang})`,
    );
    assert.ok(result.passes.length > 5, `axe ran on ${screen} (${lang})`);
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
  }
  await page.locator("#language").selectOption(own);
}

async function discreet(page) {
  assert.equal(await page.title(), "Kontakt");
  assert.equal(new URL(page.url()).pathname + new URL(page.url()).hash, "/");
}

/** Tab until `locator` has the focus (keyboard-only use), then press Enter. */
async function keyboardTo(page, locator, key = "Enter") {
  for (let i = 0; i < 40 && !(await locator.evaluate((b) => b === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  assert.ok(await locator.evaluate((b) => b === document.activeElement), "reached by Tab");
  if (key) await page.keyboard.press(key);
}

/** A staff member sets up sign-in in the console: setup code, password, authenticator code. */
async function staffSetup(page, setupCode, password, check = false) {
  await page.goto(base + "/");
  await page.getByRole("button", { name: "Ansatt ved klinikken? Logg inn" }).click();
  if (check) await accessible(page, "staff sign-in");
  await page.getByRole("button", { name: "Første gang? Bruk oppsettkoden" }).click();
  if (check) await accessible(page, "staff set-up");
  await page.getByLabel("Oppsettkode").fill(setupCode);
  await page.getByLabel("Velg passord (minst 12 tegn)").fill(password);
  await page.getByRole("button", { name: "Neste" }).click();
  await page.locator("code.secret").waitFor();
  if (check) await accessible(page, "staff authenticator key");
  const secret = (await page.locator("code.secret").innerText()).replace(/=+$/, "");
  const totp = execFileSync("oathtool", ["--totp", "-b", secret]).toString().trim();
  await page.getByLabel("Kode fra autentiseringsappen").fill(totp);
  await page.getByRole("button", { name: "Fullfør" }).click();
  await page.getByRole("heading", { name: "Varsler", exact: true }).waitFor({ timeout: 15000 });
}

/** The HP invites someone and reads the QR code off the screen; returns the decoded link. */
async function invite(hp, role, name, phoneNumber) {
  await hp.getByRole("button", { name: "Invitasjoner", exact: true }).click();
  await hp.getByLabel(role === "peer" ? "Likeperson" : "Bruker", { exact: true }).check();
  await hp.getByLabel("Navn (valgfritt, bare for klinikken)").fill(name);
  await hp.getByLabel("Telefonnummer (valgfritt, bare for klinikken)").fill(phoneNumber);
  await hp.getByRole("button", { name: "Lag invitasjon" }).click();
  const code = await hp.locator("code.invite-code").innerText();
  const png = PNG.sync.read(await hp.locator("svg.qr").screenshot());
  const qr = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  assert.ok(qr, "the QR code on the screen decodes");
  assert.equal(qr.data, `${base}/join#code=${code}`);
  return qr.data;
}

/** The pushes the receiver got for one subscription since `from`. */
const pushesFor = (sub, from = 0) =>
  pushes.slice(from).filter((p) => p.path === new URL(sub.endpoint).pathname);

/** Checks one Web Push request as a push service and a browser would, independently of the
 * server's code: the VAPID JWT (RFC 8292) verifies with the key in the header, which is the
 * key the app subscribed with; the body decrypts (RFC 8291, http_ece); returns the plaintext. */
function openPush(push, sub, serverKey) {
  const auth = push.headers.authorization ?? "";
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(auth);
  assert.ok(m, `a VAPID authorization header: ${auth.slice(0, 12)}…`);
  const [jwt, k] = [m[1], m[2]];
  assert.equal(
    Buffer.from(k, "base64url").toString("base64"),
    Buffer.from(serverKey, "base64").toString("base64"),
    "k is the key the app subscribed with",
  );
  const [h, p, s] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  const claims = JSON.parse(Buffer.from(p, "base64url"));
  assert.equal(header.alg, "ES256");
  assert.equal(claims.aud, new URL(sub.endpoint).origin);
  const now = Date.now() / 1000;
  assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600 + 60, "exp within 24 h");
  assert.match(claims.sub, /^(mailto:|https:)/);
  const raw = Buffer.from(k, "base64url");
  const jwk = {
    kty: "EC",
    crv: "P-256",
    x: raw.subarray(1, 33).toString("base64url"),
    y: raw.subarray(33, 65).toString("base64url"),
  };
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const ok = verifySignature(
    "sha256",
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: "ieee-p1363" },
    Buffer.from(s, "base64url"),
  );
  assert.ok(ok, "the VAPID signature verifies");
  // A tampered token must not (the check can fail).
  assert.ok(
    !verifySignature(
      "sha256",
      Buffer.from(`${h}.${p}x`),
      { key, dsaEncoding: "ieee-p1363" },
      Buffer.from(s, "base64url"),
    ),
  );
  assert.equal(push.headers["content-encoding"], "aes128gcm");
  assert.ok(Number(push.headers.ttl) > 0, "a TTL");
  const plain = ece.decrypt(push.body, {
    version: "aes128gcm",
    privateKey: sub.ecdh,
    authSecret: sub.auth,
  });
  return { text: plain.toString("utf8"), urgency: push.headers.urgency, topic: push.headers.topic };
}

/** Delivers a push payload to the page's service worker through the DevTools protocol, as the
 * browser's push service would, and returns the notifications it then shows. */
async function deliverToWorker(page, payload) {
  const cdp = await page.context().newCDPSession(page);
  const registrations = [];
  const versions = new Map();
  const errors = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
  cdp.on("ServiceWorker.workerVersionUpdated", (e) => {
    for (const v of e.versions) versions.set(v.versionId, v);
  });
  cdp.on("ServiceWorker.workerErrorReported", (e) => errors.push(e.errorMessage.errorMessage));
  await cdp.send("ServiceWorker.enable");
  const reg = () => registrations.find((r) => r.scopeURL === `${base}/` && !r.isDeleted);
  const active = () =>
    [...versions.values()].find(
      (v) => v.registrationId === reg()?.registrationId && v.status === "activated",
    );
  // The worker must be active before a push reaches it (a page that has just loaded may
  // still be checking for an update); on a loaded machine that can take a few seconds.
  for (let i = 0; i < 150 && !active(); i++) await page.waitForTimeout(100);
  assert.ok(reg(), "the app registered its service worker");
  assert.ok(active(), `the service worker is active: ${JSON.stringify([...versions.values()])}`);
  const shown = async () =>
    page.evaluate(async () =>
      (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({
        title: n.title,
        body: n.body,
        tag: n.tag,
      })),
    );
  // A push service delivers again when a wake-up was not handled, so this does too, once;
  // a notification's tag means a second delivery replaces the first, never adds to it.
  for (let attempt = 0; attempt < 2; attempt++) {
    await cdp.send("ServiceWorker.deliverPushMessage", {
      origin: base,
      registrationId: reg().registrationId,
      data: payload,
    });
    for (let i = 0; i < 100; i++) {
      const notes = await shown();
      if (notes.length > 0) return notes;
      await page.waitForTimeout(100);
    }
    console.log(`push not shown after 10 s (worker errors: ${JSON.stringify(errors)})`);
  }
  return [];
}

let failed = false;
try {
  // The strict policy is on the document the app is served with.
  const doc = await fetch(`${base}/join`);
  assert.match(doc.headers.get("content-security-policy"), /default-src 'self'/);
  assert.match(await doc.text(), /<div id="root">/);

  // The nurse sets up sign-in on a clinic workstation.
  const desk = await browser.newContext(desktop);
  const hp = await desk.newPage();
  const hpSeen = [];
  watch("hp", hp, hpSeen);
  const hpPush = await fakePushService(desk, "hp");
  await staffSetup(hp, nurse.setup, "sykepleier med langt passord", true);
  await hp.getByText("Ingen varsler.").waitFor();
  await accessible(hp, "queue");

  // She invites a service user and a peer supporter; the QR codes open the app.
  const suLink = await invite(hp, "service_user", "Solveig Brukersen", "+47 911 11 111");
  await accessible(hp, "invite handover");
  await hp.screenshot({ path: join(shots, "desktop-invite.png") });
  await hp.getByRole("button", { name: "Ferdig" }).click();
  const peerLink = await invite(hp, "peer", "Per Likemann", "+47 922 22 222");
  await hp.getByRole("button", { name: "Ferdig" }).click();
  await accessible(hp, "invites");

  // The service user opens the link on a phone: the code is filled in and gone from the
  // address bar and history.
  let su = await person("service-user", phone);
  const t0 = Date.now();
  await su.page.goto(suLink);
  await su.page.getByLabel("Invitasjonskode").waitFor();
  const coldLoadMs = Date.now() - t0;
  assert.equal(
    await su.page.getByLabel("Invitasjonskode").inputValue(),
    new URL(suLink).hash.slice(6),
  );
  await discreet(su.page);
  await accessible(su.page, "join");
  await su.page.screenshot({ path: join(shots, "phone-join.png") });
  await su.page.getByRole("button", { name: "Fortsett" }).click();
  await su.page.getByRole("heading", { name: "Hva som er privat" }).waitFor();
  await accessible(su.page, "privacy");
  await su.page.screenshot({ path: join(shots, "phone-privacy.png") });
  await su.page.getByRole("button", { name: "Jeg har lest dette" }).click();
  await su.page.getByRole("heading", { name: "Samtaler" }).waitFor();
  await discreet(su.page);
  await accessible(su.page, "home");

  // The peer joins the same way (no privacy screen for peers).
  let peer = await person("peer", phone);
  const peerPush = await fakePushService(peer.context, "peer");
  await peer.page.goto(peerLink);
  await peer.page.getByRole("button", { name: "Fortsett" }).click();
  await peer.page.getByRole("heading", { name: "Samtaler" }).waitFor();
  await accessible(peer.page, "peer home");

  // The HP approves the peer (from the used invite) ...
  await hp.reload();
  await hp.getByRole("button", { name: "Invitasjoner", exact: true }).click();
  await hp.getByRole("button", { name: "Godkjenn likepersonen" }).click();
  await hp.getByRole("heading", { name: "Personer", exact: true }).waitFor();
  await hp.getByLabel("Hvor mange samtaler samtidig").fill("2");
  await hp.getByLabel(/^Når er du vanligvis tilgjengelig/).fill("Hverdagskvelder");
  await accessible(hp, "peer approval");
  await hp.getByRole("button", { name: "Lagre og godkjenn" }).click();
  await hp.getByText("(godkjent)").waitFor();
  await hp.getByRole("button", { name: "Bli veileder for denne likepersonen" }).click();
  await hp.getByText(/^Du er veileder for denne likepersonen/).waitFor();
  // ... and matches the service user: needs, ranked suggestions with reasons, a proposal.
  await hp.getByRole("button", { name: "Invitasjoner", exact: true }).click();
  await hp.getByRole("button", { name: "Finn en likeperson" }).click();
  await hp.getByRole("button", { name: "Lagre og finn likepersoner" }).click();
  await hp.getByText(/^Forslag 1 \(/).waitFor();
  await hp
    .getByText(/^Språk: /)
    .first()
    .waitFor();
  await accessible(hp, "suggestions");
  await hp.getByRole("button", { name: "Velg forslag 1" }).click();
  await hp
    .getByLabel("Om likepersonen, til brukeren")
    .fill("Har levd med hiv i femten år og er god til å lytte.");
  await hp
    .getByLabel("Om brukeren, til likepersonen")
    .fill("Nylig diagnostisert, vil snakke om å fortelle det til familien.");
  await hp.screenshot({ path: join(shots, "desktop-matching.png") });
  await hp.getByRole("button", { name: "Foreslå samtalen" }).click();
  await hp.getByText("Forslaget er sendt.").waitFor();
  await accessible(hp, "proposed");

  // The proposal appears under an alias (the app reloads on the introduction notice).
  await su.page.getByText("god til å lytte").waitFor({ timeout: 15000 });
  const peerAlias = (await su.page.getByText(/^Klinikken foreslår en samtale med/).innerText())
    .replace(/^Klinikken foreslår en samtale med /, "")
    .replace(/\.$/, "");
  await accessible(su.page, "home with a proposal");
  await su.page.screenshot({ path: join(shots, "phone-proposal.png") });
  // Keyboard only: Tab to the accept button and press Enter.
  await keyboardTo(su.page, su.page.getByRole("button", { name: /^Ja, jeg vil snakke med/ }));
  await su.page.getByText("Venter på at den andre svarer.").waitFor();

  await peer.page.getByText("Nylig diagnostisert").waitFor({ timeout: 15000 });
  const suAlias = (await peer.page.getByText(/^Klinikken foreslår en samtale med/).innerText())
    .replace(/^Klinikken foreslår en samtale med /, "")
    .replace(/\.$/, "");
  await peer.page.getByRole("button", { name: /^Ja, jeg vil snakke med/ }).click();
  await peer.page.getByRole("button", { name: /^Åpne samtalen med/ }).click();
  await peer.page.getByLabel("Melding").fill("Hei! Så fint at du ville snakke.");
  await peer.page.getByRole("button", { name: "Send" }).click();

  // Keyboard only again: to the conversation, then type and send.
  await su.page.getByRole("button", { name: /^Åpne samtalen med/ }).waitFor({ timeout: 15000 });
  await keyboardTo(su.page, su.page.getByRole("button", { name: /^Åpne samtalen med/ }));
  await su.page.getByText("Hei! Så fint at du ville snakke.").waitFor({ timeout: 15000 });
  await keyboardTo(su.page, su.page.getByLabel("Melding"), null);
  await su.page.keyboard.type("Takk, jeg er litt nervøs.");
  await su.page.keyboard.press("Tab");
  await su.page.keyboard.press("Enter");
  await peer.page.getByText("Takk, jeg er litt nervøs.").waitFor({ timeout: 15000 });
  // Read receipts: the peer's message is marked read once the service user has it open.
  await peer.page.getByText("Lest").first().waitFor({ timeout: 15000 });
  await accessible(su.page, "chat");
  await su.page.getByRole("heading", { name: /^Samtale med/ }).waitFor({ timeout: 2000 });
  await discreet(su.page);
  await su.page.screenshot({ path: join(shots, "phone-chat.png"), fullPage: true });

  // A second tab of the same account waits instead of opening the store.
  const tab2 = await su.context.newPage();
  await tab2.goto(base + "/");
  await tab2.getByRole("heading", { name: "Appen er åpen et annet sted" }).waitFor();
  await accessible(tab2, "open elsewhere");
  await tab2.close();
  await su.page.getByText("Takk, jeg er litt nervøs.").waitFor();

  // The app lock: a passcode, then locked; a wrong code opens nothing, the right one brings
  // everything back.
  await su.page.getByRole("button", { name: "Tilbake" }).click();
  await su.page.getByLabel("Ny kode (minst 6 tegn)").fill("fjord-4711");
  await su.page.getByLabel("Skriv koden en gang til").fill("fjord-4711");
  await su.page.getByRole("button", { name: "Lagre koden" }).click();
  await su.page.getByText("Appen er låst med kode.").waitFor();
  await su.page.getByRole("button", { name: "Lås nå" }).click();
  await su.page.getByRole("heading", { name: "Appen er låst" }).waitFor();
  await accessible(su.page, "lock");
  await su.page.screenshot({ path: join(shots, "phone-lock.png") });
  await su.page.getByLabel("Kode", { exact: true }).fill("feil-kode-1");
  await su.page.getByRole("button", { name: "Lås opp" }).click();
  await su.page.getByText("Feil kode for denne enheten.").waitFor();
  await su.page.getByLabel("Kode", { exact: true }).fill("fjord-4711");
  await su.page.getByRole("button", { name: "Lås opp" }).click();

  // A browser restart on the same profile: locked, then everything is still there.
  su = await restart(su);
  await su.page.goto(base + "/");
  await su.page.getByRole("heading", { name: "Appen er låst" }).waitFor();
  await su.page.getByLabel("Kode", { exact: true }).fill("fjord-4711");
  await su.page.getByRole("button", { name: "Lås opp" }).click();
  await su.page.getByRole("button", { name: /^Åpne samtalen med/ }).click();
  await su.page.getByText("Hei! Så fint at du ville snakke.").waitFor();
  await su.page.getByText("Takk, jeg er litt nervøs.").waitFor();
  // The service user reads the app in nynorsk from now on.
  await su.page.locator("#language").selectOption("nn");

  // The clinic admin sets up sign-in and puts the nurse on duty, with the clinic's notice.
  const adminDesk = await browser.newContext(desktop);
  const admin = await adminDesk.newPage();
  watch("admin", admin, []);
  await staffSetup(admin, leader.setup, "klinikkleder med langt passord");
  await admin.getByRole("button", { name: "Klinikken", exact: true }).click();
  await admin.getByRole("button", { name: "Vis navn" }).click();
  await admin
    .getByRole("group", { name: "På vakt (får varsler først)" })
    .getByLabel("Hanne Sykepleier")
    .check();
  await admin
    .getByLabel("Beskjed til personen når klinikken er varslet (Bokmål)")
    .fill("En sykepleier fra klinikken tar kontakt med deg.");
  await admin
    .getByLabel("Beskjed til personen når klinikken er varslet (Nynorsk)")
    .fill("Ein sjukepleiar frå klinikken tek kontakt med deg.");
  await admin
    .getByLabel("Beskjed til personen når klinikken er varslet (English)")
    .fill("A nurse from the clinic will contact you.");
  // A weekday day shift, the on-call nurse and the legevakt for nights and weekends.
  await admin.getByRole("button", { name: "Legg til vakt" }).click();
  const shift = admin.getByRole("group", { name: "Vakt 1" });
  await shift.getByLabel("Hvem").selectOption({ label: "Hanne Sykepleier" });
  await shift.getByLabel("Fra").fill("08:00");
  await shift.getByLabel("Til").fill("15:30");
  await admin
    .getByRole("group", { name: /^Bakvakt når ingen er på vakt/ })
    .getByLabel("Hanne Sykepleier")
    .check();
  await admin.getByLabel("Telefon til legevakt eller tilsvarende").fill("116 117");
  await admin.getByLabel("Navn (bokmål)").fill("Legevakten");
  await admin.getByLabel("Navn (nynorsk)").fill("Legevakta");
  await admin.getByLabel("Navn (engelsk)").fill("Out-of-hours doctor");
  await accessible(admin, "clinic settings");
  await admin.screenshot({ path: join(shots, "desktop-clinic.png"), fullPage: true });
  await admin.getByRole("button", { name: "Lagre" }).first().click();
  await admin.getByText("Lagret.").waitFor();
  // What was saved is what the server keeps (read back after leaving the page).
  await admin.getByRole("button", { name: "Varsler", exact: true }).click();
  await admin.getByRole("button", { name: "Klinikken", exact: true }).click();
  const kept = admin.getByRole("group", { name: "Vakt 1" });
  assert.equal(await kept.getByLabel("Til").inputValue(), "15:30");
  assert.equal(await kept.getByLabel("Fredag").isChecked(), true);
  assert.equal(await kept.getByLabel("Lørdag").isChecked(), false);
  assert.equal(
    await admin.getByLabel("Telefon til legevakt eller tilsvarende").inputValue(),
    "116 117",
  );

  // The clinic's key is made on the admin's device; the nurse's workstation is approved by
  // typing the code its own screen shows (a wrong code is refused). Only approved
  // workstations get the quoted messages of a flag.
  await admin.getByRole("button", { name: "Lag klinikkens nøkkel på denne enheten" }).click();
  await admin.getByText("Klinikkens nøkkel:").waitFor();
  await hp.getByRole("button", { name: "Varsler", exact: true }).click();
  const nurseCode = (await hp.locator("#my-escalation-key").textContent()).trim();
  assert.match(nurseCode, /^[0-9A-F]{4}( [0-9A-F]{4}){4}$/);
  const approve = admin.getByLabel(
    "Skriv koden som vises på arbeidsstasjonen til Hanne Sykepleier",
  );
  await approve.fill("0000 0000 0000 0000 0000");
  await admin.getByRole("button", { name: "Godkjenn", exact: true }).click();
  await admin.getByText("Noe av det du skrev, ble ikke godtatt. Sjekk og prøv igjen.").waitFor();
  assert.equal(await admin.getByText("Godkjent.", { exact: true }).count(), 0);
  await approve.fill(nurseCode.toLowerCase());
  await admin.getByRole("button", { name: "Godkjenn", exact: true }).click();
  await admin.getByText("Godkjent.", { exact: true }).waitFor();
  await accessible(admin, "escalation keys");

  // The service user writes what a person at risk writes; the peer's app suggests (only
  // suggests) telling the clinic, and the peer flags two messages.
  await su.page.getByLabel("Melding").fill("Jeg orker ikke mer.");
  await su.page.getByRole("button", { name: "Send" }).click();
  // The writer's own draft: a risky one offers help next to the compose box (nothing is
  // sent or flagged by it); a safe one offers nothing.
  await su.page.getByLabel("Melding").fill("Jeg har bestemt meg for å ta livet mitt i kveld");
  await su.page.getByText("Det du skriv, høyrest tungt ut.", { exact: false }).waitFor();
  // The clinic's numbers, in the writer's language, one tap away.
  await su.page
    .getByRole("link", { name: /116 123/ })
    .first()
    .waitFor();
  await accessible(su.page, "draft offer");
  await su.page.screenshot({ path: join(shots, "phone-draft-offer.png") });
  await su.page.getByRole("button", { name: "Send" }).click();
  await su.page.getByLabel("Melding").fill("Jeg gleder meg til timen på torsdag");
  await su.page.waitForTimeout(1000);
  assert.equal(await su.page.getByText("høyrest tungt ut", { exact: false }).count(), 0);
  await su.page.getByLabel("Melding").fill("Pillene ligger klare på badet");
  await su.page.getByRole("button", { name: "Send" }).click();
  await peer.page.getByText("Pillene ligger klare på badet").waitFor({ timeout: 15000 });
  await peer.page.getByText("Denne meldingen kan handle om selvmord").first().waitFor();
  await accessible(peer.page, "peer chat with a suggestion");
  await peer.page.screenshot({ path: join(shots, "phone-peer-suggestion.png") });
  // A peer whose own draft sounds heavy is offered an urgent talk with their supervisor
  // (nothing is sent by it; the draft is theirs to delete).
  await peer.page.getByLabel("Melding").fill("Jeg vil ikke leve lenger");
  await peer.page.getByRole("button", { name: "Be om en prat nå" }).waitFor();
  await peer.page.getByLabel("Melding").fill("");
  await peer.page.getByRole("button", { name: "Si fra til klinikken" }).first().click();
  // Quote the first and the last, leaving the middle one out: the HP must see the gap.
  await peer.page.getByLabel("Jeg orker ikke mer.").check();
  await peer.page.getByLabel("Jeg har bestemt meg for å ta livet mitt i kveld").setChecked(false);
  await peer.page.getByLabel("Pillene ligger klare på badet").check();
  await peer.page.getByLabel("Hvor alvorlig?").selectOption("imminent");
  await peer.page.getByLabel("Notat til klinikken (valgfritt)").fill("Rolig og bestemt.");
  await accessible(peer.page, "flag panel");
  const raised = Date.now();
  await peer.page.getByRole("button", { name: "Send varsel" }).click();
  // The raiser hears where it stands, honestly: received and not yet confirmed.
  await peer.page
    .getByText("Klinikken har mottatt det. En behandler er varslet, men har ikke bekreftet ennå.")
    .waitFor({ timeout: 15000 });

  // The HP's console shows it live, with the imminent alarm; she opens it verified, sees
  // the left-out message as a gap (and not its text), acknowledges and resolves.
  await hp.getByRole("button", { name: "Varsler", exact: true }).click();
  await hp.getByRole("alert").filter({ hasText: "Akutt varsel" }).waitFor({ timeout: 15000 });
  const flagShownMs = Date.now() - raised;
  await hp.screenshot({ path: join(shots, "desktop-queue.png") });
  await hp.getByRole("button", { name: /^Åpne varsel: selvmordsfare, akutt/ }).click();
  await hp.getByText("Meldingene er bekreftet ekte").waitFor({ timeout: 15000 });
  await hp.getByText("Jeg orker ikke mer.").waitFor();
  await hp.getByText("Pillene ligger klare på badet").waitFor();
  // The left-out message is a gap (its count also holds the read receipts in between).
  await hp.getByText(/^Utelatt her: [1-9]\d* oppføring\(er\) i samtalen/).waitFor();
  await hp.getByText("Rolig og bestemt.").waitFor();
  assert.equal(
    await hp.getByText("Jeg har bestemt meg for å ta livet mitt i kveld").count(),
    0,
    "not quoted, not shown",
  );
  await accessible(hp, "flag");
  await hp.screenshot({ path: join(shots, "desktop-flag.png") });
  await hp.getByRole("button", { name: "Kvitter – jeg tar dette" }).click();
  await hp.getByText("Status: kvittert").waitFor();
  // The peer's screen follows without a reload: a clinician has taken it on.
  await peer.page.getByText("En behandler har tatt saken.").waitFor({ timeout: 15000 });
  // The queue survives a reload of the console: the flag is there, and opens verified again.
  await hp.reload();
  await hp
    .getByRole("button", { name: /^Åpne varsel: selvmordsfare, akutt/ })
    .click({ timeout: 15000 });
  await hp.getByText("Meldingene er bekreftet ekte").waitFor({ timeout: 15000 });
  await hp.getByLabel("Utfall").selectOption("contacted_the_person");
  await hp.getByRole("button", { name: "Lukk varselet" }).click();
  await hp.getByText("Status: lukket").waitFor();
  await peer.page.getByText("Klinikken har fulgt det opp.").waitFor({ timeout: 15000 });

  // The service user is told, in the clinic's words and in the language they chose.
  await su.page
    .getByText("Ein sjukepleiar frå klinikken tek kontakt med deg.")
    .waitFor({ timeout: 15000 });

  // Help is one tap away; the emergency number is there in every language.
  await su.page.getByRole("button", { name: "Treng hjelp no" }).click();
  await su.page.getByRole("link", { name: /ring 113/ }).waitFor();
  await accessible(su.page, "help");
  await su.page.screenshot({ path: join(shots, "phone-help.png") });
  await su.page.locator("#language").selectOption("nb");
  await su.page.getByRole("button", { name: "Lukk", exact: true }).click();

  // Nothing either party's device received names the other (before any reveal): not the
  // name, the phone number or the user id. Positive controls: the same capture holds the
  // party's own user id and the counterpart's alias.
  // The people's ids, from what the console itself was sent (its clinic's user list).
  const listed = hpSeen.flatMap((text) => {
    try {
      const v = JSON.parse(text);
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  });
  const users = Object.fromEntries(
    listed.filter((u) => u?.id && u.status === "active" && u.role).map((u) => [u.role, u.id]),
  );
  assert.ok(users.service_user && users.peer, "the console listed both people");
  const suSeen = su.seen.join("\n");
  assert.ok(
    suSeen.includes(users.service_user) && suSeen.includes(peerAlias),
    "the capture sees the API",
  );
  // (The clinic id is not on this list: both parties belong to the same clinic, so it is
  // the service user's own.)
  for (const secret of ["Per Likemann", "Likemann", "922 22 222", users.peer]) {
    assert.ok(!suSeen.includes(secret), `the service user's device received ${secret}`);
  }
  const peerSeen = peer.seen.join("\n");
  assert.ok(
    peerSeen.includes(users.peer) && peerSeen.includes(suAlias),
    "the peer's capture sees the API",
  );
  for (const secret of ["Solveig", "Brukersen", "911 11 111", users.service_user]) {
    assert.ok(!peerSeen.includes(secret), `the peer's device received ${secret}`);
  }
  // Nor does any page they were shown.
  for (const [p, secrets] of [
    [su.page, ["Per", "Likemann", "922", users.peer]],
    [peer.page, ["Solveig", "Brukersen", "911", users.service_user]],
  ]) {
    const shown = await p.evaluate(() => document.body.innerText);
    assert.ok(shown.includes("Samtale"), "the page text is readable (positive control)");
    for (const secret of secrets) assert.ok(!shown.includes(secret), `a page shows ${secret}`);
  }

  // Web Push: both turn notifications on; the server's VAPID key is what the app subscribes
  // with; then both apps are closed.
  await peer.page.getByRole("button", { name: "Tilbake" }).click();
  await peer.page.getByRole("button", { name: "Slå på varsler" }).click();
  await peer.page.getByText("Varsler er på.").waitFor();
  await accessible(peer.page, "notifications on");
  const peerKey = await peer.page.evaluate(() => window.__pbServerKey);
  await hp.getByRole("button", { name: "Varsler", exact: true }).click();
  await hp.getByRole("button", { name: "Slå på varsler" }).click();
  await hp.getByText("Varsler er på.").waitFor();
  const hpKey = await hp.evaluate(() => window.__pbServerKey);
  assert.ok(peerKey && peerKey === hpKey, "the app subscribed with the server's VAPID key");
  const before = pushes.length;
  await peer.page.close();
  await hp.close();

  // A message to the closed peer app and a flag to the closed console each arrive as a
  // push; neither says anything about who or what.
  await su.page.getByLabel("Melding").fill("Er du der? Jeg heter egentlig Solveig.");
  await su.page.getByRole("button", { name: "Send" }).click();
  for (let i = 0; i < 150 && pushesFor(peerPush, before).length === 0; i++)
    await su.page.waitForTimeout(100);
  const [messagePush] = pushesFor(peerPush, before);
  assert.ok(messagePush, "the closed peer app got a push for the message");
  const opened = openPush(messagePush, peerPush, peerKey);
  assert.deepEqual(JSON.parse(opened.text), { type: "wake", kind: "message" });

  await su.page.getByRole("button", { name: "Trenger hjelp nå" }).click();
  await su.page.getByRole("button", { name: "Be klinikken kontakte meg nå" }).click();
  await su.page
    .getByText("Klinikken har mottatt det. En behandler er varslet, men har ikke bekreftet ennå.")
    .waitFor({ timeout: 15000 });
  await su.page.getByRole("button", { name: "Lukk", exact: true }).click();
  for (let i = 0; i < 150 && pushesFor(hpPush, before).length === 0; i++)
    await su.page.waitForTimeout(100);
  const [flagPush] = pushesFor(hpPush, before);
  assert.ok(flagPush, "the closed console got a push for the flag");
  const flagOpened = openPush(flagPush, hpPush, hpKey);
  assert.deepEqual(JSON.parse(flagOpened.text), { type: "wake", kind: "flag" });
  assert.equal(flagOpened.urgency, "high");
  assert.notEqual(flagOpened.topic, opened.topic, "a flag never collapses into a message wake-up");
  for (const p of [messagePush, flagPush]) {
    const everything = JSON.stringify(p.headers) + p.body.toString("latin1");
    for (const secret of [
      "Solveig",
      "Er du der",
      "Per",
      suAlias,
      peerAlias,
      users.service_user,
      users.peer,
      clinic,
    ]) {
      assert.ok(!everything.includes(secret), `a push carried ${secret}`);
    }
  }
  // Positive control: what was decrypted is what the receiver got.
  assert.ok(flagPush.body.length > 16 + 4 + 1 + 65, "an aes128gcm body with its header");

  // The console's service worker gets that push and shows only the neutral notification.
  const hp2 = await desk.newPage();
  await hp2.goto(base + "/");
  await hp2.getByRole("heading", { name: "Varsler", exact: true }).waitFor({ timeout: 15000 });
  const shownNotes = await deliverToWorker(hp2, flagOpened.text);
  assert.deepEqual(
    shownNotes.map((n) => [n.title, n.body]),
    [["Kontakt", "Ny aktivitet – haster"]],
  );
  // And the queue shows the help request, which opens although it quotes nothing.
  await hp2.getByLabel("Vis").selectOption("open");
  await hp2
    .getByRole("button", { name: /^Åpne varsel:/ })
    .first()
    .click({ timeout: 15000 });
  await hp2.getByText("Personen trykket «Trenger hjelp nå».").waitFor();
  await hp2.getByText("Ingen notat.").waitFor({ timeout: 15000 });
  assert.equal(await hp2.locator(".error").count(), 0, "no error opening a help request");
  await hp2.getByRole("button", { name: "Kvitter – jeg tar dette" }).click();
  await hp2.getByText("Status: kvittert").waitFor();

  // Both consent to reveal: only then each sees the other's card.
  peer.page = await peer.context.newPage();
  watch("peer", peer.page, peer.seen);
  await peer.page.goto(base + "/");
  await peer.page.getByRole("button", { name: /^Åpne samtalen med/ }).click();
  await peer.page.getByText("Er du der? Jeg heter egentlig Solveig.").waitFor({ timeout: 15000 });
  for (const [p, name, number] of [
    [su.page, "Solveig", "911 11 111"],
    [peer.page, "Per", "922 22 222"],
  ]) {
    await p.getByLabel("Fornavnet mitt (valgfritt)").fill(name);
    await p.getByLabel("Telefonnummeret mitt (valgfritt)").fill(number);
    await p.getByRole("button", { name: "Lagre det jeg vil vise" }).click();
    await p.getByText("Lagret på denne enheten.").waitFor();
    await accessible(p, "reveal");
    await p.getByRole("button", { name: /^Ja, jeg vil vise .* hvem jeg er$/ }).click();
  }
  await su.page.getByText("Fornavn: Per").waitFor({ timeout: 20000 });
  await su.page.getByText("Telefon: 922 22 222").waitFor();
  await peer.page.getByText("Fornavn: Solveig").waitFor({ timeout: 20000 });
  await su.page.screenshot({ path: join(shots, "phone-revealed.png"), fullPage: true });

  // The peer's own page: a debrief request after a hard evening, a consultation logged.
  await peer.page.getByRole("button", { name: "Tilbake" }).click();
  await peer.page.getByRole("button", { name: "Meg som likeperson" }).click();
  await peer.page.getByRole("heading", { name: "Meg som likeperson" }).waitFor();
  await accessible(peer.page, "peer's own page");
  await peer.page.getByLabel("Det haster").check();
  await peer.page.getByRole("button", { name: "Be om en prat" }).click();
  await peer.page.getByText("Veilederen din har fått beskjed.").waitFor();
  await peer.page.getByLabel("Varighet (minutter)").fill("45");
  await peer.page.getByRole("button", { name: "Logg", exact: true }).click();
  await peer.page.getByText(/: 45 min, chat$/).waitFor();
  await peer.page.screenshot({ path: join(shots, "phone-peer-self.png"), fullPage: true });

  // The supervisor sees the request, acknowledges it and starts a supervision conversation.
  await hp2.getByRole("button", { name: "Veiledning", exact: true }).click();
  await hp2.getByText(/^Samtale ønsket \(haster\)/).waitFor({ timeout: 15000 });
  await accessible(hp2, "supervision");
  await hp2.getByRole("button", { name: "Kvitter – jeg tar kontakt" }).click();
  await hp2.getByText("kvittert", { exact: true }).waitFor();
  await hp2.getByLabel("Start veiledning med").selectOption({ index: 1 });
  await hp2.getByRole("button", { name: "Start samtalen" }).click();
  await hp2.getByRole("heading", { name: "Veiledningssamtale" }).waitFor({ timeout: 15000 });
  await hp2.getByLabel("Melding").fill("Hvordan har du det etter i dag?");
  await hp2.getByRole("button", { name: "Send" }).click();
  await accessible(hp2, "supervision chat");
  await peer.page.getByRole("button", { name: "Tilbake" }).click();
  await peer.page.getByRole("button", { name: /^Veiledning \(/ }).click({ timeout: 20000 });
  await peer.page.getByText("Hvordan har du det etter i dag?").waitFor({ timeout: 15000 });
  await accessible(peer.page, "peer's supervision chat");

  // The clinic admin downloads the consultation report as CSV.
  await admin.getByRole("button", { name: "Rapport", exact: true }).click();
  await accessible(admin, "report");
  const [download] = await Promise.all([
    admin.waitForEvent("download"),
    admin.getByRole("button", { name: "Last ned CSV" }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv.split("\n")[0], /,/, "a CSV header");
  assert.ok(csv.includes("45"), "the logged consultation is in the report");
  await admin.getByText(/^1 rad i rapporten\.$/).waitFor();

  // The service user pauses and resumes, tells the clinic about a boundary problem (the HP
  // sees and handles it), and finally blocks the peer: the conversation ends.
  await su.page.getByRole("button", { name: "Ta en pause" }).click();
  await su.page.getByRole("button", { name: "Fortsett samtalen" }).click({ timeout: 15000 });
  await su.page.getByRole("button", { name: "Ta en pause" }).waitFor({ timeout: 15000 });
  await su.page.getByRole("button", { name: "Si fra til klinikken" }).click();
  await su.page.getByLabel("Hva skjedde?").selectOption("contact_outside_app");
  await su.page.getByLabel("Vil du fortelle mer? (valgfritt)").fill("Ville ha Snapchat.");
  await accessible(su.page, "boundary report");
  await su.page.getByRole("button", { name: "Send", exact: true }).last().click();
  await su.page.getByText("Takk. Klinikken har fått beskjed.").waitFor();
  await hp2.getByRole("button", { name: "Personer", exact: true }).click();
  await hp2.getByRole("button", { name: "1 melding om grenser" }).click({ timeout: 15000 });
  await hp2.getByText("Ville ha Snapchat.").waitFor();
  await hp2.getByRole("button", { name: "Merk som behandlet" }).click();
  await hp2.getByRole("button", { name: "1 melding om grenser" }).waitFor({ state: "detached" });
  await su.page.getByRole("button", { name: /^Blokker / }).click();
  await su.page
    .getByRole("alertdialog")
    .getByRole("button", { name: /^Blokker / })
    .click();
  await su.page.getByText("Samtalen er avsluttet.").waitFor({ timeout: 15000 });

  // Quick exit leaves at once, replacing this page in the history (the harmless page is
  // answered here: this machine has no internet).
  await su.context.route("https://www.yr.no/**", (r) =>
    r.fulfill({ status: 200, contentType: "text/html", body: "<title>Yr</title>" }),
  );
  await su.page.setViewportSize({ width: 1280, height: 800 });
  await su.page.screenshot({ path: join(shots, "desktop-chat.png") });
  await su.page.getByRole("button", { name: "Lukk raskt" }).click();
  await su.page.waitForURL(/yr\.no/);
  assert.equal(await su.page.title(), "Yr");
  assert.deepEqual(problems, [], "no CSP violation or page error");
  // What a phone downloads (every asset of the app, gzipped) and the cold load measured
  // above (a new profile: fetch, compile the wasm, open a new store, first screen).
  const assets = join(root, "web", "dist", "assets");
  const sizes = { js: 0, wasm: 0, css: 0 };
  for (const f of readdirSync(assets)) {
    const kind = f.split(".").pop();
    if (kind in sizes) sizes[kind] += gzipSync(readFileSync(join(assets, f)), { level: 9 }).length;
  }
  console.log(
    `web app bundle (gzip -9): js ${sizes.js} B, wasm ${sizes.wasm} B, css ${sizes.css} B; ` +
      `cold load to the join screen ${coldLoadMs} ms; flag raised → console alarm ${flagShownMs} ms`,
  );
  console.log(`web app: ok (screenshots in ${shots})`);
} catch (e) {
  failed = true;
  console.error(e);
  // What each open page showed when it failed, for the log reader.
  for (const c of [...contexts, ...browser.contexts()]) {
    for (const p of c.pages()) {
      const name = `failure-${Math.random().toString(36).slice(2, 8)}.png`;
      await p.screenshot({ path: join(shots, name), fullPage: true }).catch(() => {});
      // Errors the page showed (already plain words, no content of anyone's messages).
      const alerts = await p
        .locator("[role=alert]")
        .allInnerTexts()
        .catch(() => []);
      console.error(`page ${p.url()} → ${name}; alerts: ${JSON.stringify(alerts)}`);
    }
  }
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  await browser.close();
  receiver.close();
  server.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
