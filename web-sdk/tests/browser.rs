//! The browser client against a real server, with native SDK devices on the other side
//! (issue 14): one party runs the wasm SDK in headless Chromium (Debian's, driven through
//! `test/driver.mjs`), the other the native SDK in this process, on SQLite and PostgreSQL.
//! Messages both ways across page reloads and a browser restart; the introduction story with the service user in
//! the browser (a forged consent refused, identity cards only after both reveal); flags
//! raised in the browser and opened natively and the reverse; a page killed in the middle
//! of a send and of a commit; the storage key kept wrapped.
//!
//! Needs `web-sdk/pkg` (`web-sdk/build`), Chromium and the driver's npm packages, so the
//! tests are ignored in `cargo test --workspace`; `web-sdk/test/run` (called by `.ci/run`)
//! runs them with `--ignored`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use peerbridge_mobile::Event;
use peerbridge_mobile::api::escalation::{RiskCategory, Severity};
use peerbridge_mobile::api::introductions::{ConsentScope, IntroductionState};
use peerbridge_tests::{TestApp, backends};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use uuid::Uuid;

#[path = "../../mobile-bindings/tests/common/mod.rs"]
mod common;

use common::*;

/// The headless browser, one command at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next: u64,
}

/// An error the page's SDK raised: its flat code and message.
#[derive(Debug)]
struct JsError {
    code: String,
    message: String,
}

impl std::fmt::Display for JsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Browser {
    async fn launch(api: &str) -> Browser {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test");
        assert!(
            dir.join("node_modules/playwright-core").exists(),
            "npm ci in web-sdk/test first (web-sdk/test/run does)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("driver.mjs"))
            .env("PEERBRIDGE_API", api)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the browser driver");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("the driver starts within 60 s")
            .expect("read")
            .expect("a first line");
        let ready: Value = serde_json::from_str(&first).expect("json");
        assert!(ready["ready"].is_string(), "{first}");
        Browser {
            child,
            stdin,
            stdout,
            next: 0,
        }
    }

    async fn send(&mut self, mut cmd: Value) -> Result<Value, JsError> {
        self.next += 1;
        cmd["id"] = json!(self.next);
        let line = format!("{cmd}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        let answer = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser answers {cmd} within 120 s"))
            .expect("read")
            .expect("the driver is alive");
        let v: Value = serde_json::from_str(&answer).expect("json");
        assert_eq!(v["id"], json!(self.next));
        match v.get("err") {
            Some(e) => Err(JsError {
                code: e["code"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            }),
            None => Ok(v["ok"].clone()),
        }
    }

    async fn op(&mut self, cmd: Value) {
        self.send(cmd.clone())
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }

    /// A fresh browser profile (empty IndexedDB) with one tab `t`.
    async fn fresh(&mut self) {
        self.op(json!({"op": "context"})).await;
        self.op(json!({"op": "open_tab", "tab": "t"})).await;
    }

    async fn eval(&mut self, js: &str, arg: Value) -> Result<Value, JsError> {
        self.send(json!({"op": "eval", "tab": "t", "js": js, "arg": arg}))
            .await
    }

    /// Opens the account's store in tab `t` as `window.client` (key kept by the browser,
    /// optionally behind a passcode).
    async fn open(&mut self, passcode: Option<&str>) -> Result<Value, JsError> {
        self.eval(
            "window.client = await PeerbridgeWeb.openOnThisBrowser(location.origin, 'acct', arg); \
             return window.client.devicePublicKey();",
            json!(passcode),
        )
        .await
    }

    async fn try_call(&mut self, method: &str, args: Value) -> Result<Value, JsError> {
        self.send(json!({"op": "call", "tab": "t", "method": method, "args": args}))
            .await
    }

    async fn call(&mut self, method: &str, args: Value) -> Value {
        self.try_call(method, args)
            .await
            .unwrap_or_else(|e| panic!("browser {method}: {e}"))
    }

    async fn reload(&mut self) {
        self.op(json!({"op": "reload", "tab": "t"})).await;
    }

    /// Starts `method` and kills the tab when a request matching `url` is about to leave or
    /// was answered by the server; reopens tab `t` (a new page of the same profile).
    async fn kill(&mut self, method: &str, args: Value, url: &str, when: &str) -> i64 {
        let status = self
            .send(
                json!({"op": "kill", "tab": "t", "method": method, "args": args,
                         "url": url, "when": when}),
            )
            .await
            .unwrap_or_else(|e| panic!("kill during {method}: {e}"))
            .as_i64()
            .expect("status");
        self.op(json!({"op": "open_tab", "tab": "t"})).await;
        status
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn texts_of(events: &Value) -> Vec<String> {
    events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "text")
        .map(|e| e["body"].as_str().expect("body").to_owned())
        .collect()
}

fn uuid_of(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).expect("a uuid")
}

/// A fresh invite code for `role`, made by the HP's native SDK.
async fn invite(hp: &Device, clinic: Uuid, role: &str) -> String {
    let role = serde_json::from_value(json!(role)).expect("role");
    hp.client
        .create_invite(clinic, role, None, None)
        .await
        .expect("invite")
        .code
}

/// Enrols the browser's account with `code` and uploads key packages; its user id.
async fn enroll_browser(b: &mut Browser, code: &str) -> Uuid {
    b.open(None).await.expect("open");
    let s = b.call("enroll", json!([code, "Browser"])).await;
    b.call("ensureKeyPackages", json!([])).await;
    uuid_of(&s["user_id"])
}

/// Syncs the browser until `want` texts arrived in `conv` (events are delivered once).
async fn browser_texts(b: &mut Browser, conv: Uuid, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..50 {
        let events = b.call("sync", json!([conv])).await;
        got.extend(texts_of(&events));
        if got.len() >= want {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

async fn native_texts(d: &Device, conv: Uuid, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(texts(&d.client.sync(conv).await.expect("sync")));
        if got.len() >= want {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

fn history_texts(page: &Value) -> Vec<String> {
    texts_of(&page["events"])
}

/// A clinic whose HP (native) supervises a peer enrolled in the browser, and their
/// supervision conversation (opened by the HP; the browser has not joined yet).
async fn supervised_in_the_browser(app: &TestApp, b: &mut Browser) -> (Device, Uuid) {
    let op = app.bootstrap_operator().await;
    let (home, hp_home) = clinic(app, &op, "Haukeland", "vest").await;
    let hp = staff_sdk(app, &hp_home).await;
    let code = invite(&hp, home, "peer").await;
    let peer_id = enroll_browser(b, &code).await;
    hp.client
        .assign_supervisor(home, peer_id, hp.user_id)
        .await
        .expect("supervisor");
    let conv = hp
        .client
        .create_supervision_conversation(peer_id)
        .await
        .expect("supervision conversation")
        .id;
    (hp, conv)
}

/// The JS names `src/ops.rs` exports.
fn exported_names() -> BTreeSet<String> {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops.rs"))
        .expect("ops.rs");
    src.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('"')?;
            let (name, after) = rest.split_once('"')?;
            after
                .trim_start()
                .starts_with("fn ")
                .then(|| name.to_owned())
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn a_browser_peer_and_a_native_hp_talk_both_ways_across_reloads() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut b = Browser::launch(&app.base).await;
        b.fresh().await;

        // Every operation ops.rs lists is a method of the built package.
        let methods: BTreeSet<String> = serde_json::from_value(
            b.eval(
                "return Object.getOwnPropertyNames(PeerbridgeWeb.prototype);",
                Value::Null,
            )
            .await
            .expect("prototype"),
        )
        .expect("names");
        let exported = exported_names();
        assert!(exported.len() > 80, "{exported:?}");
        let missing: Vec<_> = exported.difference(&methods).collect();
        assert!(missing.is_empty(), "not in the package: {missing:?}");

        let (hp, conv) = supervised_in_the_browser(&app, &mut b).await;

        // HP → browser, browser → HP.
        hp.client
            .send_text(conv, "Hei, hvordan gikk kvelden?")
            .await
            .expect("send");
        b.call("acceptWelcomes", json!([])).await;
        assert_eq!(
            browser_texts(&mut b, conv, 1).await,
            vec!["Hei, hvordan gikk kvelden?"]
        );
        b.call("sendText", json!([conv, "Det gikk fint, takk"]))
            .await;
        assert_eq!(
            native_texts(&hp, conv, 1).await,
            vec!["Det gikk fint, takk"]
        );

        // The page reloads: identity, session, group and history come back from IndexedDB.
        b.reload().await;
        b.open(None).await.expect("reopen");
        let page = b.call("history", json!([conv, null, 50])).await;
        assert_eq!(
            history_texts(&page),
            vec!["Hei, hvordan gikk kvelden?", "Det gikk fint, takk"]
        );

        // After the reload, events arrive through the JS callback: the new message once,
        // nothing old again.
        b.eval(
            "window.seen = []; window.stopped = null; \
             await window.client.start((evs) => window.seen.push(...evs), \
                                       (e) => { window.stopped = e.code; });",
            Value::Null,
        )
        .await
        .expect("start");
        hp.client
            .send_text(conv, "Fint å høre")
            .await
            .expect("send");
        let mut live = Vec::new();
        for _ in 0..100 {
            let seen = b
                .eval("return window.seen;", Value::Null)
                .await
                .expect("seen");
            live = texts_of(&seen);
            if !live.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(live, vec!["Fint å høre"]);
        b.eval("await window.client.suspend();", Value::Null)
            .await
            .expect("suspend");
        let seen = b
            .eval("return window.seen;", Value::Null)
            .await
            .expect("seen");
        assert!(
            seen.as_array()
                .expect("events")
                .iter()
                .any(|e| e["type"] == "connection_changed" && e["state"] == "suspended"),
            "{seen}"
        );

        b.call("sendText", json!([conv, "Snakkes i morgen"])).await;
        assert_eq!(native_texts(&hp, conv, 1).await, vec!["Snakkes i morgen"]);
        // The browser is closed and started again on the same profile.
        b.op(json!({"op": "restart"})).await;
        b.op(json!({"op": "open_tab", "tab": "t"})).await;
        b.open(None).await.expect("reopen after a browser restart");
        let page = b.call("history", json!([conv, null, 50])).await;
        assert_eq!(
            history_texts(&page),
            vec![
                "Hei, hvordan gikk kvelden?",
                "Det gikk fint, takk",
                "Fint å høre",
                "Snakkes i morgen"
            ],
            "nothing lost, nothing twice"
        );
        let hp_history = hp.client.history(conv, None, 50).expect("history");
        assert_eq!(
            texts(&hp_history.events),
            vec![
                "Hei, hvordan gikk kvelden?",
                "Det gikk fint, takk",
                "Fint å høre",
                "Snakkes i morgen"
            ]
        );
    }
}

#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn the_introduction_story_with_the_service_user_in_the_browser() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut b = Browser::launch(&app.base).await;
        b.fresh().await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let hp = staff_sdk(&app, &hp_home).await;
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let code = invite(&hp, home, "service_user").await;
        let su_id = enroll_browser(&mut b, &code).await;

        // The HP records needs, gets suggestions and proposes.
        let needs =
            serde_json::from_value(json!({"languages": ["nb"], "topics": []})).expect("needs");
        hp.client
            .set_needs(home, su_id, &needs)
            .await
            .expect("needs");
        let suggestions = hp.client.suggestions(home, su_id).await.expect("suggest");
        assert!(
            suggestions.iter().any(|s| s.peer_id == peer.user_id),
            "{suggestions:?}"
        );
        let intro = hp
            .client
            .propose_introduction(home, &proposal(su_id, peer.user_id))
            .await
            .expect("propose")
            .id;

        // The browser sees the proposal under aliases, accepts; the peer accepts natively.
        let listed = b.call("introductions", json!([])).await;
        let mine = &listed.as_array().expect("list")[0];
        assert_eq!(uuid_of(&mine["id"]), intro);
        let text = mine.to_string();
        for secret in ["Per", "Likemann", "922", &peer.user_id.to_string()] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("good listener"),
            "the blurb is shown (positive control)"
        );
        b.call("acceptIntroduction", json!([intro])).await;
        let v = peer
            .client
            .accept_introduction(intro)
            .await
            .expect("peer accepts");
        assert_eq!(v.state, IntroductionState::Active);
        let conv = v.conversation_id.expect("conversation");
        peer.client.sync_all().await.expect("sync");
        b.call("syncAll", json!([])).await;

        peer.client
            .send_text(conv, "Hei! Så fint at du ville snakke")
            .await
            .expect("send");
        assert_eq!(
            browser_texts(&mut b, conv, 1).await,
            vec!["Hei! Så fint at du ville snakke"]
        );
        b.call("sendText", json!([conv, "Takk, jeg er litt nervøs"]))
            .await;
        assert_eq!(
            native_texts(&peer, conv, 1).await,
            vec!["Takk, jeg er litt nervøs"]
        );

        // Cards are set; nothing is revealed before both consent.
        b.call(
            "setIdentityCard",
            json!([{"first_name": "Solveig", "phone": "+47 911 11 111", "photo": null}]),
        )
        .await;
        peer.client
            .set_identity_card(&peerbridge_mobile::IdentityCard {
                first_name: Some("Per".into()),
                phone: Some("+47 922 22 222".into()),
                photo: None,
            })
            .expect("card");
        // The peer grants and withdraws; then the server forges a grant in its database.
        peer.client
            .consent(intro, ConsentScope::Reveal)
            .await
            .expect("consent");
        peer.client
            .withdraw_consent(intro, ConsentScope::Reveal)
            .await
            .expect("withdraw");
        forge_grant(&app, intro).await;
        let state = b.call("consent", json!([intro, "reveal"])).await;
        assert_eq!(state["my_reveal"], true, "{state}");
        assert_eq!(
            state["their_reveal"], false,
            "the forged grant is refused: {state}"
        );
        assert!(
            state["rejected"].as_u64().expect("rejected") >= 1,
            "{state}"
        );
        assert_eq!(state["card_sent"], false, "{state}");
        let got = peer.client.sync(conv).await.expect("sync");
        assert!(cards(&got).is_empty(), "no card reached the peer: {got:?}");
        assert_eq!(b.call("counterpartCard", json!([intro])).await, Value::Null);

        // Both consent: each receives the other's card.
        peer.client
            .consent(intro, ConsentScope::Reveal)
            .await
            .expect("consent");
        let mut card = Value::Null;
        for _ in 0..50 {
            b.call("syncAll", json!([])).await;
            b.call("consentState", json!([intro])).await;
            peer.client.sync(conv).await.expect("sync");
            card = b.call("counterpartCard", json!([intro])).await;
            if !card.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(card["first_name"], "Per", "{card}");
        assert_eq!(card["phone"], "+47 922 22 222");
        let mut theirs = None;
        for _ in 0..50 {
            peer.client.sync(conv).await.expect("sync");
            theirs = peer.client.counterpart_card(intro).expect("card");
            if theirs.is_some() {
                break;
            }
            b.call("syncAll", json!([])).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let theirs = theirs.expect("the peer received the browser's card");
        assert_eq!(theirs.first_name.as_deref(), Some("Solveig"));
    }
}

/// A clinic whose on-duty HP receives flags.
async fn on_duty(app: &TestApp, op: &peerbridge_tests::Staff, home: Uuid, hp: Uuid) {
    let admin = app
        .create_staff(op, home, "clinic_admin", "Arne Admin")
        .await;
    app.client()
        .put(
            &format!("/v1/clinics/{home}/escalation-settings"),
            Some(admin.token()),
            json!({ "on_duty": [hp], "next_responders": [], "imminent_minutes": 5,
                    "urgent_minutes": 15, "concerning_minutes": 240, "routine_hour": 10,
                    "notice_nb": "En sykepleier fra klinikken tar kontakt med deg.",
                    "notice_nn": "Ein sjukepleiar tek kontakt.",
                    "notice_en": "A nurse will contact you." }),
        )
        .await
        .expect(200);
}

#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn flags_cross_between_the_browser_and_native_clients_both_ways() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut b = Browser::launch(&app.base).await;
        let op = app.bootstrap_operator().await;
        let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
        let hp = staff_sdk(&app, &hp_home).await;
        hp.client.ensure_escalation_key().await.expect("key");
        on_duty(&app, &op, home, hp.user_id).await;
        let su = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;

        // 1. The peer in the browser flags what the service user wrote; the HP's native
        // client opens and verifies the franked excerpt.
        b.fresh().await;
        let code = invite(&hp, home, "peer").await;
        let peer_id = enroll_browser(&mut b, &code).await;
        let update = serde_json::to_value(profile(&["nb"], &[], false)).expect("profile");
        hp.client
            .set_peer_profile(home, peer_id, &serde_json::from_value(update).expect("p"))
            .await
            .expect("profile");
        hp.client
            .approve_peer(home, peer_id, chrono::Utc::now().date_naive())
            .await
            .expect("approve");
        let intro = hp
            .client
            .propose_introduction(home, &proposal(su.user_id, peer_id))
            .await
            .expect("propose")
            .id;
        su.client.accept_introduction(intro).await.expect("accept");
        let v = b.call("acceptIntroduction", json!([intro])).await;
        let conv = uuid_of(&v["conversation_id"]);
        su.client.sync_all().await.expect("sync");
        let said = [
            "Jeg har bestemt meg for å ta livet mitt i kveld",
            "Jeg har samlet pillene og tar dem i kveld",
        ];
        su.client.send_text(conv, "Hei igjen").await.expect("send");
        for s in said {
            su.client.send_text(conv, s).await.expect("send");
        }
        let mut events = Vec::new();
        for _ in 0..50 {
            let got = b.call("sync", json!([conv])).await;
            events.extend(got.as_array().expect("events").iter().cloned());
            if texts_of(&Value::Array(events.clone())).len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seqs: Vec<u64> = events
            .iter()
            .filter(|e| e["type"] == "text")
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs.len(), 3, "{events:?}");
        // The browser's detector suggests (only suggests) a flag for the risk messages.
        let suggested: Vec<u64> = events
            .iter()
            .filter(|e| e["type"] == "risk_suggested")
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(suggested, seqs[1..].to_vec());
        let receipt = b
            .call(
                "raiseFlag",
                json!([
                    conv,
                    "suicide_risk",
                    "imminent",
                    "Sounded calm and decided.",
                    &seqs[1..]
                ]),
            )
            .await;
        let flag = uuid_of(&receipt["id"]);
        let opened = hp.client.open_flag(flag).await.expect("opens and verifies");
        assert_eq!(opened.note, "Sounded calm and decided.");
        assert_eq!(
            opened
                .lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>(),
            said.to_vec()
        );

        // 2. The reverse: the HP signs in in the browser (password + TOTP), publishes the
        // browser's escalation key and opens a flag the native peer raised.
        b.fresh().await;
        let hp2 = app.create_staff(&op, home, "hp", "Nils Natt").await;
        b.open(None).await.expect("open");
        let totp = app.fresh_totp(&hp2.totp_secret);
        b.call(
            "staffLogin",
            json!([hp2.login, hp2.password, totp, "Clinic PC"]),
        )
        .await;
        b.call("ensureEscalationKey", json!([])).await;
        let hp2_id = uuid_of(&b.call("session", json!([])).await["user_id"]);
        on_duty(&app, &op, home, hp2_id).await;
        let peer = enroll(
            &app,
            &hp_home,
            home,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        approved(&hp, home, &peer, profile(&["nb"], &[], false)).await;
        let su2 = enroll(
            &app,
            &hp_home,
            home,
            "service_user",
            "Ola Annensen",
            "+47 933 33 333",
        )
        .await;
        let (_, conv2) = introduced(&hp, home, &su2, &peer).await;
        su2.client
            .send_text(conv2, "Jeg har kuttet meg igjen i natt")
            .await
            .expect("send");
        let got = peer.client.sync(conv2).await.expect("sync");
        let seq = got
            .iter()
            .find_map(|e| match e {
                Event::Text { seq, .. } => Some(*seq),
                _ => None,
            })
            .expect("the message");
        let receipt = peer
            .client
            .raise_flag(
                conv2,
                RiskCategory::SelfHarm,
                Severity::Urgent,
                "Fresh cuts, wants help.",
                &[seq],
            )
            .await
            .expect("flag");
        let queue = b.call("flags", json!([])).await;
        assert!(
            queue
                .as_array()
                .expect("queue")
                .iter()
                .any(|f| uuid_of(&f["id"]) == receipt.id),
            "{queue}"
        );
        let opened = b.call("openFlag", json!([receipt.id])).await;
        assert_eq!(opened["note"], "Fresh cuts, wants help.");
        let lines: Vec<&str> = opened["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["text"].as_str().expect("text"))
            .collect();
        assert_eq!(lines, vec!["Jeg har kuttet meg igjen i natt"]);
    }
}

#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn a_page_killed_mid_send_or_mid_commit_still_syncs_and_decrypts() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let mut b = Browser::launch(&app.base).await;
        b.fresh().await;
        let (hp, conv) = supervised_in_the_browser(&app, &mut b).await;
        b.call("acceptWelcomes", json!([])).await;
        let messages = format!("/v1/conversations/{conv}/messages$");
        let commits = format!("/v1/conversations/{conv}/commits$");

        // Killed after the server stored the message, before the page heard the 201.
        let status = b
            .kill(
                "sendText",
                json!([conv, "først"]),
                &messages,
                "after_response",
            )
            .await;
        assert_eq!(status, 201);
        b.open(None).await.expect("reopen");
        // Killed before the request left: the message is only in the outbox.
        b.kill(
            "sendText",
            json!([conv, "andre"]),
            &messages,
            "before_request",
        )
        .await;
        b.open(None).await.expect("reopen");
        // Killed after the server accepted a commit, before the page merged it.
        let status = b
            .kill("selfUpdate", json!([conv]), &commits, "after_response")
            .await;
        assert_eq!(status, 201);
        b.open(None).await.expect("reopen");
        // Killed with a commit on its way out.
        b.kill("selfUpdate", json!([conv]), &commits, "before_request")
            .await;
        b.open(None).await.expect("reopen");

        // The client still syncs, sends and decrypts; every message arrives exactly once.
        b.call("syncAll", json!([])).await;
        b.call("sendText", json!([conv, "tredje"])).await;
        hp.client.send_text(conv, "Mottatt").await.expect("send");
        assert_eq!(browser_texts(&mut b, conv, 1).await, vec!["Mottatt"]);
        let got = native_texts(&hp, conv, 3).await;
        assert_eq!(got.iter().filter(|t| *t == "først").count(), 1, "{got:?}");
        let mut all = got.clone();
        all.extend(native_texts(&hp, conv, 0).await);
        all.sort();
        assert_eq!(
            all,
            vec!["andre", "først", "tredje"],
            "nothing lost, nothing twice"
        );
        let page = b.call("history", json!([conv, null, 50])).await;
        let mut mine = history_texts(&page);
        mine.sort();
        assert_eq!(mine, vec!["Mottatt", "andre", "først", "tredje"]);
    }
}

#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn the_storage_key_is_kept_wrapped_and_a_wrong_key_or_passcode_is_refused() {
    let backend = backends().await[0];
    let app = TestApp::spawn(backend).await;
    let mut b = Browser::launch(&app.base).await;
    let op = app.bootstrap_operator().await;
    let (home, hp_home) = clinic(&app, &op, "Haukeland", "vest").await;
    let hp = staff_sdk(&app, &hp_home).await;

    // Kept by a non-extractable browser key: the stored record holds only the wrapped key,
    // and the wrapping key cannot be exported.
    b.fresh().await;
    let code = invite(&hp, home, "peer").await;
    let user = enroll_browser(&mut b, &code).await;
    let record = b
        .eval(
            "const db = await new Promise((ok, no) => { const r = indexedDB.open('peerbridge-keys'); \
               r.onsuccess = () => ok(r.result); r.onerror = no; }); \
             const rec = await new Promise((ok, no) => { \
               const r = db.transaction('keys').objectStore('keys').get('acct'); \
               r.onsuccess = () => ok(r.result); r.onerror = no; }); \
             let exported = 'refused'; \
             try { await crypto.subtle.exportKey('raw', rec.wrappingKey); exported = 'exported'; } catch {} \
             return { kind: rec.kind, extractable: rec.wrappingKey.extractable, \
                      wrapped: rec.wrapped.length, fields: Object.keys(rec).sort(), exported };",
            Value::Null,
        )
        .await
        .expect("record");
    assert_eq!(record["kind"], "device");
    assert_eq!(record["extractable"], false);
    assert_eq!(record["exported"], "refused");
    assert_eq!(
        record["wrapped"], 48,
        "32 key bytes + the GCM tag: {record}"
    );
    assert_eq!(
        record["fields"],
        json!(["iv", "kind", "wrapped", "wrappingKey"])
    );
    // A raw key that is not the account's: the same typed error as on native, store intact.
    b.reload().await;
    let wrong = b
        .eval(
            "try { await PeerbridgeWeb.open(location.origin, 'acct', new Uint8Array(32).fill(9)); \
                   return 'opened'; } catch (e) { return e.code; }",
            Value::Null,
        )
        .await
        .expect("eval");
    assert_eq!(wrong, "wrong_storage_key");
    b.open(None).await.expect("the kept key still opens");
    assert_eq!(
        uuid_of(&b.call("session", json!([])).await["user_id"]),
        user
    );

    // A passcode: set on the existing key, then required; a wrong one is wrong_storage_key.
    b.eval(
        "await PeerbridgeWeb.changePasscode('acct', null, '4711-fjord');",
        Value::Null,
    )
    .await
    .expect("passcode set");
    b.reload().await;
    assert_eq!(
        b.open(None).await.expect_err("locked").code,
        "passcode_required"
    );
    b.reload().await;
    assert_eq!(
        b.open(Some("1234-feil")).await.expect_err("wrong").code,
        "wrong_storage_key"
    );
    b.reload().await;
    b.open(Some("4711-fjord"))
        .await
        .expect("the passcode opens");
    assert_eq!(
        uuid_of(&b.call("session", json!([])).await["user_id"]),
        user
    );
    assert_eq!(
        b.eval(
            "return await PeerbridgeWeb.protection('acct');",
            Value::Null
        )
        .await
        .expect("protection"),
        "passcode"
    );
}

/// Acceptance 3 of the detector: the browser build scores every held-out message exactly as
/// the native build does (the integer head scores the native test checks against
/// `heldout_scores.jsonl`, and the suggestion made from them).
#[tokio::test]
#[ignore = "needs web-sdk/pkg and Chromium: run by web-sdk/test/run"]
async fn the_browser_detector_scores_the_held_out_split_exactly_as_the_native_build() {
    use peerbridge_mls::detector;
    let backend = backends().await[0];
    let app = TestApp::spawn(backend).await;
    let mut b = Browser::launch(&app.base).await;
    b.fresh().await;
    let corpus: std::collections::HashMap<String, String> =
        include_str!("../../mls/detector/corpus.jsonl")
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("corpus line");
                (
                    v["id"].as_str().expect("id").to_owned(),
                    v["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
    let mut ids = Vec::new();
    let mut expected = Vec::new();
    for line in include_str!("../../mls/detector/heldout_scores.jsonl").lines() {
        let v: Value = serde_json::from_str(line).expect("score line");
        let id = v["id"].as_str().expect("id").to_owned();
        expected.push(v["logits"].clone());
        ids.push(id);
    }
    assert!(ids.len() >= 600, "only {} held-out messages", ids.len());
    let texts: Vec<&str> = ids.iter().map(|id| corpus[id].as_str()).collect();
    let got = b
        .eval(
            "return arg.map((t) => ({ scores: Array.from(PeerbridgeWeb.detectorScores(t)), \
                                      suggestion: PeerbridgeWeb.detectRisk(t) }));",
            json!(texts),
        )
        .await
        .expect("scores in the browser");
    let got = got.as_array().expect("array");
    assert_eq!(got.len(), ids.len());
    let mut risky = 0;
    for (i, (id, text)) in ids.iter().zip(&texts).enumerate() {
        assert_eq!(
            got[i]["scores"], expected[i],
            "browser scores of {id} {text:?}"
        );
        let native = peerbridge_mobile::suggest_risk(text);
        // Compared field by field: JSON from JS writes 1.0 as 1.
        let shape = |v: &Value| {
            (!v.is_null()).then(|| {
                (
                    v["category"].clone(),
                    v["severity"].clone(),
                    v["score"].as_f64().expect("score"),
                )
            })
        };
        assert_eq!(
            shape(&got[i]["suggestion"]),
            shape(&serde_json::to_value(&native).expect("json")),
            "browser suggestion for {id} {text:?}"
        );
        let native_scores: Vec<i32> = detector::scores(text).to_array().to_vec();
        assert_eq!(
            got[i]["scores"],
            json!(native_scores),
            "native scores of {id}"
        );
        risky += usize::from(native.is_some());
    }
    // Both kinds of decision were compared, not only "no risk".
    assert!(
        risky > 100 && risky < ids.len() - 100,
        "{risky} of {}",
        ids.len()
    );
}
