// The web app in headless Chromium (Debian's, via playwright-core) against a real
// `peerbridge serve` that serves it (web/dist) on the API's origin, under its strict CSP.
// A service user and a peer join from their invite links on phone-sized screens; the
// service user confirms the privacy screen; an HP (seeded over the API with the admin and
// dev CLIs, as the HP console is not built yet) approves the peer and proposes an
// introduction; the service user accepts and replies with the keyboard only; the peer
// accepts and writes; the service user locks the app with a passcode and opens it again.
// Every screen is checked with axe-core in bokmål, nynorsk and
// English; titles and the address never carry anything about the person; quick exit
// leaves. Screenshots go to web/test-results/.
// Usage: PEERBRIDGE_BIN=target/debug/peerbridge node web/test/app.mjs
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

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
const dir = mkdtempSync(join(tmpdir(), "pb-app-"));
const env = {
  PATH: process.env.PATH,
  PEERBRIDGE_BIND: `127.0.0.1:${port}`,
  PEERBRIDGE_PUBLIC_URL: base,
  PEERBRIDGE_WEB_DIR: join(root, "web", "dist"),
  PEERBRIDGE_LOG_FORMAT: "json",
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

// The HP, seeded: clinic, staff account, device session (dev CLI), then the API.
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
/** A device session for a staff account, set up by the dev CLI (ACCESS, USER_ID, …). */
const devSession = (setupCode, keyFile, password) =>
  Object.fromEntries(
    cli(
      ...["dev", "staff-setup", "--server", base, "--setup-code", setupCode],
      ...["--password", password, "--key-file", join(dir, keyFile), "--label", "Workstation"],
    )
      .split("\n")
      .map((l) => /^([A-Z_]+)='(.*)'$/.exec(l))
      .filter(Boolean)
      .map((m) => [m[1], m[2]]),
  );
const vars = devSession(
  staff("hp", "nurse@test.example", "Hanne Sykepleier").setup,
  "hp.key",
  "a long passphrase here",
);
const api = async (method, path, body) => {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${vars.ACCESS}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
};
const suInvite = await api("POST", `/v1/clinics/${clinic}/invites`, {
  role: "service_user",
  display_name: "Solveig Brukersen",
  phone: "+47 911 11 111",
});
const peerInvite = await api("POST", `/v1/clinics/${clinic}/invites`, {
  role: "peer",
  display_name: "Per Likemann",
  phone: "+47 922 22 222",
});
assert.equal(suInvite.qr_payload, `${base}/join#code=${suInvite.code}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const phone = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
const problems = [];
/** A person's browser: phone-sized, with every API response and stream frame it received
 * recorded (for the absence checks). */
async function person(name) {
  const context = await browser.newContext(phone);
  const page = await context.newPage();
  const seen = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${name}: ${e.message}`));
  page.on("response", async (r) => {
    if (new URL(r.url()).pathname.startsWith("/v1/")) seen.push(await r.text().catch(() => ""));
  });
  page.on("websocket", (ws) => ws.on("framereceived", (f) => seen.push(String(f.payload))));
  return { context, page, seen };
}

/** axe-core on the current screen, in each language: no serious or critical violation. */
async function accessible(page, screen) {
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
}

async function discreet(page) {
  assert.equal(await page.title(), "Kontakt");
  assert.equal(new URL(page.url()).pathname + new URL(page.url()).hash, "/");
}

let failed = false;
try {
  // The strict policy is on the document the app is served with.
  const doc = await fetch(`${base}/join`);
  assert.match(doc.headers.get("content-security-policy"), /default-src 'self'/);
  assert.match(await doc.text(), /<div id="root">/);

  // The service user opens the invite link on a phone: the code is filled in and gone from
  // the address bar and history.
  const su = await person("service user");
  const t0 = Date.now();
  await su.page.goto(suInvite.qr_payload);
  await su.page.getByLabel("Invitasjonskode").waitFor();
  const coldLoadMs = Date.now() - t0;
  assert.equal(await su.page.getByLabel("Invitasjonskode").inputValue(), suInvite.code);
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

  // The peer joins the same way (no privacy screen for peers).
  const peer = await person("peer");
  await peer.page.goto(peerInvite.qr_payload);
  await peer.page.getByRole("button", { name: "Fortsett" }).click();
  await peer.page.getByRole("heading", { name: "Samtaler" }).waitFor();

  // The HP approves the peer and proposes the introduction.
  const invites = await api("GET", `/v1/clinics/${clinic}/invites`);
  const userOf = (id) => invites.find((i) => i.id === id).redeemed_by;
  const suId = userOf(suInvite.id);
  const peerId = userOf(peerInvite.id);
  await api("PUT", `/v1/clinics/${clinic}/peers/${peerId}/profile`, {
    languages: ["nb"],
    topics: [],
    remote_support: false,
    capacity: 3,
  });
  await api("POST", `/v1/clinics/${clinic}/peers/${peerId}/approval`, {
    trained_on: new Date().toISOString().slice(0, 10),
  });
  await api("POST", `/v1/clinics/${clinic}/introductions`, {
    client_id: crypto.randomUUID(),
    service_user_id: suId,
    peer_id: peerId,
    blurb_for_service_user: "Har levd med hiv i femten år og er god til å lytte.",
    blurb_for_peer: "Nylig diagnostisert, vil snakke om å fortelle det til familien.",
  });

  // The proposal appears under an alias (the app reloads on the introduction notice).
  await su.page.getByText("god til å lytte").waitFor({ timeout: 15000 });
  const peerAlias = (await su.page.getByText(/^Klinikken foreslår en samtale med/).innerText())
    .replace(/^Klinikken foreslår en samtale med /, "")
    .replace(/\.$/, "");
  await accessible(su.page, "home with a proposal");
  await su.page.screenshot({ path: join(shots, "phone-proposal.png") });
  // Keyboard only: Tab to the accept button and press Enter.
  const accept = su.page.getByRole("button", { name: /^Ja, jeg vil snakke med/ });
  for (let i = 0; i < 20 && !(await accept.evaluate((b) => b === document.activeElement)); i++) {
    await su.page.keyboard.press("Tab");
  }
  await su.page.keyboard.press("Enter");
  await su.page.getByText("Venter på at den andre svarer.").waitFor();

  await peer.page.getByText("Nylig diagnostisert").waitFor({ timeout: 15000 });
  await peer.page.getByRole("button", { name: /^Ja, jeg vil snakke med/ }).click();
  await peer.page.getByRole("button", { name: /^Åpne samtalen med/ }).click();
  await peer.page.getByLabel("Melding").fill("Hei! Så fint at du ville snakke.");
  await peer.page.getByRole("button", { name: "Send" }).click();

  await su.page.getByRole("button", { name: /^Åpne samtalen med/ }).waitFor({ timeout: 15000 });
  // Keyboard only again: to the conversation, then type and send.
  const open = su.page.getByRole("button", { name: /^Åpne samtalen med/ });
  for (let i = 0; i < 20 && !(await open.evaluate((b) => b === document.activeElement)); i++) {
    await su.page.keyboard.press("Tab");
  }
  await su.page.keyboard.press("Enter");
  await su.page.getByText("Hei! Så fint at du ville snakke.").waitFor({ timeout: 15000 });
  const box = su.page.getByLabel("Melding");
  for (let i = 0; i < 20 && !(await box.evaluate((b) => b === document.activeElement)); i++) {
    await su.page.keyboard.press("Tab");
  }
  await su.page.keyboard.type("Takk, jeg er litt nervøs.");
  await su.page.keyboard.press("Tab");
  await su.page.keyboard.press("Enter");
  await peer.page.getByText("Takk, jeg er litt nervøs.").waitFor({ timeout: 15000 });
  await accessible(su.page, "chat");
  // Changing the language keeps the person where they were.
  await su.page.getByRole("heading", { name: /^Samtale med/ }).waitFor({ timeout: 2000 });
  await discreet(su.page);
  await su.page.screenshot({ path: join(shots, "phone-chat.png") });

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
  await su.page.getByRole("button", { name: /^Åpne samtalen med/ }).click();
  await su.page.getByText("Takk, jeg er litt nervøs.").waitFor();

  // Nothing the service user's device received names the peer (before any reveal): not
  // the name, the phone number or the user id. Positive control: the same capture holds
  // the service user's own id and the peer's alias.
  const suSeen = su.seen.join("\n");
  assert.ok(suSeen.includes(suId) && suSeen.includes(peerAlias), "the capture sees the API");
  for (const secret of ["Per Likemann", "Likemann", "922 22 222", peerId]) {
    assert.ok(!suSeen.includes(secret), `the service user's device received ${secret}`);
  }
  assert.ok(peer.seen.join("\n").includes(peerId), "the peer's capture sees its own id");
  for (const secret of ["Solveig", "Brukersen", "911 11 111", suId]) {
    assert.ok(!peer.seen.join("\n").includes(secret), `the peer's device received ${secret}`);
  }

  // A night-duty HP sets up sign-in in the console (setup code, password, authenticator
  // code) on a workstation, and the clinic admin puts her on duty.
  const night = staff("hp", "natt@test.example", "Nina Nattevakt");
  const admin = devSession(
    staff("clinic_admin", "leder@test.example", "Kari Leder").setup,
    "admin.key",
    "another long passphrase",
  );
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const hp = await desk.newPage();
  hp.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) problems.push(`hp: ${m.text()}`);
  });
  await hp.goto(base + "/");
  await hp.getByRole("button", { name: "Ansatt ved klinikken? Logg inn" }).click();
  await hp.getByRole("button", { name: "Første gang? Bruk oppsettkoden" }).click();
  await hp.getByLabel("Oppsettkode").fill(night.setup);
  await hp.getByLabel("Velg passord (minst 12 tegn)").fill("nattevakt med langt passord");
  await hp.getByRole("button", { name: "Neste" }).click();
  const secret = (await hp.locator("code.secret").innerText()).replace(/=+$/, "");
  const totp = execFileSync("oathtool", ["--totp", "-b", secret]).toString().trim();
  await hp.getByLabel("Kode fra autentiseringsappen").fill(totp);
  await hp.getByRole("button", { name: "Fullfør" }).click();
  await hp.getByRole("heading", { name: "Varsler" }).waitFor({ timeout: 15000 });
  await hp.getByText("Ingen varsler.").waitFor();
  await accessible(hp, "queue");
  const settings = await fetch(`${base}/v1/clinics/${clinic}/escalation-settings`, {
    method: "PUT",
    headers: { authorization: `Bearer ${admin.ACCESS}`, "content-type": "application/json" },
    body: JSON.stringify({
      on_duty: [night.id],
      next_responders: [],
      imminent_minutes: 5,
      urgent_minutes: 15,
      concerning_minutes: 240,
      routine_hour: 10,
      notice_nb: "En sykepleier fra klinikken tar kontakt med deg.",
      notice_nn: "Ein sjukepleiar frå klinikken tek kontakt med deg.",
      notice_en: "A nurse from the clinic will contact you.",
    }),
  });
  assert.equal(settings.status, 200, await settings.text());

  // The service user writes what a person at risk writes; the peer's app suggests (only
  // suggests) telling the clinic, and the peer flags two messages.
  await su.page.getByLabel("Melding").fill("Jeg orker ikke mer.");
  await su.page.getByRole("button", { name: "Send" }).click();
  await su.page.getByLabel("Melding").fill("Jeg har bestemt meg for å ta livet mitt i kveld");
  await su.page.getByRole("button", { name: "Send" }).click();
  await su.page.getByLabel("Melding").fill("Pillene ligger klare på badet");
  await su.page.getByRole("button", { name: "Send" }).click();
  await peer.page.getByText("Pillene ligger klare på badet").waitFor({ timeout: 15000 });
  await peer.page.getByText("Denne meldingen kan handle om selvmord").first().waitFor();
  await accessible(peer.page, "peer chat with a suggestion");
  await peer.page.screenshot({ path: join(shots, "phone-peer-suggestion.png") });
  await peer.page.getByRole("button", { name: "Si fra til klinikken" }).first().click();
  // Quote the first and the last, leaving the middle one out: the HP must see the gap.
  await peer.page.getByLabel("Jeg orker ikke mer.").check();
  await peer.page.getByLabel("Jeg har bestemt meg for å ta livet mitt i kveld").setChecked(false);
  await peer.page.getByLabel("Pillene ligger klare på badet").check();
  await peer.page.getByLabel("Hvor alvorlig?").selectOption("imminent");
  await peer.page.getByLabel("Notat til klinikken (valgfritt)").fill("Rolig og bestemt.");
  await accessible(peer.page, "flag panel");
  await peer.page.getByRole("button", { name: "Send varsel" }).click();
  await peer.page.getByText("Klinikken har fått varselet.").waitFor({ timeout: 15000 });

  // The HP's console shows it live, with the imminent alarm; she opens it verified, sees
  // the left-out message as a gap (and not its text), acknowledges and resolves.
  await hp.getByRole("alert").filter({ hasText: "Akutt varsel" }).waitFor({ timeout: 5000 });
  await hp.screenshot({ path: join(shots, "desktop-queue.png") });
  await hp.getByRole("button", { name: /^Åpne varsel: selvmordsfare, akutt/ }).click();
  await hp.getByText("Meldingene er bekreftet ekte").waitFor({ timeout: 15000 });
  await hp.getByText("Jeg orker ikke mer.").waitFor();
  await hp.getByText("Pillene ligger klare på badet").waitFor();
  await hp.getByText("1 melding(er) mellom disse er ikke tatt med.").waitFor();
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
  await hp.getByLabel("Utfall").selectOption("contacted_the_person");
  await hp.getByRole("button", { name: "Lukk varselet" }).click();
  await hp.getByText("Status: lukket").waitFor();

  // The service user is told, in the clinic's words.
  await su.page
    .getByText("En sykepleier fra klinikken tar kontakt med deg.")
    .waitFor({ timeout: 15000 });

  // Help is one tap away; the emergency number is there in every language.
  await su.page.getByRole("button", { name: "Trenger hjelp nå" }).click();
  await su.page.getByRole("link", { name: /ring 113/ }).waitFor();
  await accessible(su.page, "help");
  await su.page.screenshot({ path: join(shots, "phone-help.png") });

  // Before any reveal, nothing the service user's page shows names the peer.
  const shown = await su.page.evaluate(() => document.body.innerText);
  assert.ok(shown.includes("113"), "the page text is readable (positive control)");
  for (const secret of ["Per", "Likemann", "922", peerId]) {
    assert.ok(!shown.includes(secret), `the service user's page shows ${secret}`);
  }

  // Desktop width too.
  await su.page.setViewportSize({ width: 1280, height: 800 });
  await su.page.screenshot({ path: join(shots, "desktop-help.png") });

  // Quick exit leaves at once, replacing this page in the history (the harmless page is
  // answered here: this machine has no internet).
  await su.context.route("https://www.yr.no/**", (r) =>
    r.fulfill({ status: 200, contentType: "text/html", body: "<title>Yr</title>" }),
  );
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
      `cold load to the join screen ${coldLoadMs} ms`,
  );
  console.log(`web app: ok (screenshots in ${shots})`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
