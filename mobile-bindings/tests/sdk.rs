//! The SDK against the real server (started in-process on port 0 by the test harness): each
//! test is a scenario an app lives through, driven only through `PeerbridgeClient`.

use std::sync::Arc;
use std::time::Duration;

use peerbridge_mobile::{Event, PeerbridgeClient, Role, SdkError, SdkOptions};
use peerbridge_server::auth::entities::refresh_token;
use peerbridge_tests::{Backend, Staff, TestApp, backends};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

mod common;

use common::{listen, texts};

const PEER_KEY: [u8; 32] = [11; 32];
const HP_KEY: [u8; 32] = [22; 32];

fn options() -> SdkOptions {
    SdkOptions {
        retry_base_delay: Duration::from_millis(20),
        poll_interval: Duration::from_millis(500),
        max_reconnect_backoff: Duration::from_secs(1),
        ..SdkOptions::default()
    }
}

fn open(app: &TestApp, dir: &std::path::Path, key: &[u8]) -> Result<PeerbridgeClient, SdkError> {
    PeerbridgeClient::open_with_options(&app.base, dir, key, options())
}

/// A clinic with an HP, a peer enrolled on an SDK device, and the HP signed in on an SDK
/// device and assigned to supervise the peer.
struct Clinic {
    app: TestApp,
    clinic: Uuid,
    operator: Staff,
    hp: Staff,
    peer: Arc<PeerbridgeClient>,
    peer_id: Uuid,
    peer_dir: tempfile::TempDir,
    sdk_hp: Arc<PeerbridgeClient>,
    _hp_dir: tempfile::TempDir,
}

impl Clinic {
    async fn new(backend: Backend) -> Clinic {
        let app = TestApp::spawn(backend).await;
        let operator = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&operator, "Oslo OPC").await;
        let invite = app.create_invite(&hp, clinic, "peer").await;

        let peer_dir = tempfile::tempdir().expect("tempdir");
        let peer = open(&app, peer_dir.path(), &PEER_KEY).expect("open peer storage");
        let s = peer
            .enroll(&invite.code, "Peer phone")
            .await
            .expect("enroll");
        assert_eq!(s.role, Role::Peer);

        let hp_dir = tempfile::tempdir().expect("tempdir");
        let sdk_hp = staff_device(&app, &hp, hp_dir.path()).await;
        app.client()
            .post(
                &format!("/v1/clinics/{clinic}/peers/{}/supervisors", s.user_id),
                Some(hp.token()),
                json!({ "hp_id": hp.session.user_id }),
            )
            .await
            .expect(201);
        peer.ensure_key_packages().await.expect("peer key packages");
        Clinic {
            app,
            clinic,
            operator,
            hp,
            peer: Arc::new(peer),
            peer_id: s.user_id,
            peer_dir,
            sdk_hp: Arc::new(sdk_hp),
            _hp_dir: hp_dir,
        }
    }

    /// The peer opens their supervision conversation with the HP's SDK device in it.
    async fn conversation(&self) -> Uuid {
        let conv = self
            .peer
            .create_supervision_conversation(self.peer_id)
            .await
            .expect("conversation opens");
        assert!(conv.joined);
        conv.id
    }
}

/// A staff member signed in on a fresh SDK device, with key packages uploaded.
async fn staff_device(app: &TestApp, staff: &Staff, dir: &std::path::Path) -> PeerbridgeClient {
    let c = open(app, dir, &HP_KEY).expect("open staff storage");
    c.staff_login(
        &staff.login,
        &staff.password,
        &app.fresh_totp(&staff.totp_secret),
        "Workstation",
    )
    .await
    .expect("staff login");
    c.ensure_key_packages().await.expect("staff key packages");
    c
}

/// Log pages the server has answered so far (`GET /v1/conversations/{id}/messages`).
async fn log_reads(app: &TestApp) -> f64 {
    let text = app.client().get("/metrics", None).await.text;
    peerbridge_tests::api::metric_value(
        &text,
        r#"peerbridge_http_requests_total{method="GET",route="/v1/conversations/{conversation_id}/messages",status="200"}"#,
    )
    .unwrap_or(0.0)
}

/// Waits (bounded) until the stream has delivered an event matching `want`.
async fn until(
    rx: &mut mpsc::UnboundedReceiver<Vec<Event>>,
    want: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the event arrives within 20 s")
            .expect("receive loop alive");
        if let Some(e) = batch.into_iter().find(|e| want(e)) {
            return e;
        }
    }
}

#[tokio::test]
async fn a_device_enrolls_by_invite_and_its_session_outlives_the_access_token() {
    let c = Clinic::new(Backend::Sqlite).await;
    let first = c.peer.session().expect("state").expect("enrolled");
    assert!(first.signed_in);
    assert_eq!(first.clinic_id, Some(c.clinic));
    let kp = c.peer.ensure_key_packages().await.expect("status");
    assert!(kp.remaining >= kp.replenish_below && kp.has_last_resort);

    // The access token expires on the server's clock; the next call gets 401, refreshes
    // once and succeeds. Many calls at once still refresh only once (a second refresh with
    // the spent token would revoke the session).
    c.app.clock.advance(chrono::Duration::minutes(16));
    let calls = (0..6).map(|_| {
        let p = c.peer.clone();
        tokio::spawn(async move { p.conversations().await })
    });
    for call in calls {
        call.await
            .expect("task")
            .expect("the call succeeds after a refresh");
    }
    let refreshed = c.peer.session().expect("state").expect("enrolled");
    assert_ne!(
        refreshed.access_token_expires_at, first.access_token_expires_at,
        "a new access token"
    );
    let db = c.app.db.connect().await;
    let revoked = refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(c.peer_id))
        .filter(refresh_token::Column::RevokedAt.is_not_null())
        .count(&db)
        .await
        .expect("count");
    assert_eq!(revoked, 0, "no refresh token was presented twice");

    // A fresh login with the device key (challenge–response) also works.
    let again = c.peer.login().await.expect("device login");
    assert_eq!(again.device_id, first.device_id);

    // After logout nothing signs in behind the user's back; login() does.
    c.peer.logout().await.expect("logout");
    assert!(
        !c.peer
            .session()
            .expect("state")
            .expect("enrolled")
            .signed_in
    );
    let e = c.peer.conversations().await.expect_err("signed out");
    assert_eq!(e.code(), "unauthenticated");
    c.peer.login().await.expect("login again");
    c.peer.conversations().await.expect("signed in again");

    // No token is on disk in plaintext (JWTs share their header prefix).
    let jwt_prefix = &c.hp.token()[..12];
    assert!(jwt_prefix.starts_with("eyJ"));
    for f in std::fs::read_dir(c.peer_dir.path()).expect("dir") {
        let bytes = std::fs::read(f.expect("entry").path()).expect("read");
        assert!(
            !bytes.windows(12).any(|w| w == jwt_prefix.as_bytes()),
            "a token is stored in plaintext"
        );
    }

    // A second enrollment on the same storage is refused; a bad invite maps to not_found.
    let e = c
        .peer
        .enroll("ABCD-EFGH-JKLM-NPQR", "x")
        .await
        .expect_err("enrolled");
    assert_eq!(e.code(), "invalid_input");
    let dir = tempfile::tempdir().expect("tempdir");
    let other = open(&c.app, dir.path(), &PEER_KEY).expect("open");
    let e = other
        .enroll("ABCD-EFGH-JKLM-NPQR-STUV", "Phone")
        .await
        .expect_err("unknown invite");
    assert_eq!(e.code(), "not_found");
    assert_eq!(
        other.conversations().await.expect_err("no session").code(),
        "unauthenticated"
    );
}

#[tokio::test]
async fn a_peer_and_their_supervising_hp_talk_through_the_stream_and_replays_are_deduplicated() {
    for backend in backends().await {
        let c = Clinic::new(backend).await;
        let conv = c.conversation().await;
        let mut hp_events = listen(&c.sdk_hp);
        // On connect the HP's device accepts its welcome.
        until(
            &mut hp_events,
            |e| matches!(e, Event::Joined { conversation, .. } if *conversation == conv),
        )
        .await;

        let id = c
            .peer
            .send_text(conv, "Kan vi ta en prat etter møtet?")
            .await
            .expect("sent");
        let got = until(&mut hp_events, |e| matches!(e, Event::Text { .. })).await;
        let Event::Text {
            id: got_id,
            body,
            sender,
            seq,
            conversation,
            ..
        } = got
        else {
            unreachable!()
        };
        assert_eq!((got_id, conversation), (id, conv));
        assert_eq!(body, "Kan vi ta en prat etter møtet?");
        assert!(!sender.is_me && sender.verified);
        assert_eq!(sender.device_key, c.peer.device_public_key());

        c.sdk_hp
            .send_text(conv, "Ja, ring meg klokka tre.")
            .await
            .expect("reply");
        let at_peer = c.peer.sync(conv).await.expect("peer sync");
        assert_eq!(
            texts(&at_peer),
            vec!["Ja, ring meg klokka tre.".to_string()]
        );
        assert_eq!(
            c.peer.safety_code(conv).expect("code"),
            c.sdk_hp.safety_code(conv).expect("code")
        );

        // Ten more, in order, each exactly once; each small enough to travel in its
        // notice, so the HP's device need not read the log for them.
        let reads_before = log_reads(&c.app).await;
        for i in 0..10 {
            c.peer
                .send_text(conv, &format!("melding {i}"))
                .await
                .expect("sent");
        }
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let batch = tokio::time::timeout(Duration::from_secs(20), hp_events.recv())
                .await
                .expect("events within 20 s")
                .expect("loop alive");
            seen.extend(texts(&batch));
        }
        let want: Vec<String> = (0..10).map(|i| format!("melding {i}")).collect();
        assert_eq!(seen, want);
        assert!(seq > 0);
        // The first follows the HP's own reply, which its cursor has not passed (a device
        // is not told of its own sends): that one read of the log; the other nine come in
        // their notices.
        assert_eq!(
            log_reads(&c.app).await,
            reads_before + 1.0,
            "{backend:?}: a message in its notice is not read again"
        );
        // Positive control: a large message is only announced, and read from the log.
        let long = "lang ".repeat(1000);
        c.peer.send_text(conv, &long).await.expect("sent");
        let got = until(&mut hp_events, |e| matches!(e, Event::Text { .. })).await;
        assert!(matches!(got, Event::Text { body, .. } if body == long));
        assert!(log_reads(&c.app).await > reads_before, "{backend:?}");

        // A sync with nothing new yields nothing twice.
        drop(hp_events);
        let again = c.sdk_hp.sync(conv).await.expect("sync again");
        assert!(texts(&again).is_empty(), "again: {again:?}");
        // Nothing new for the peer either (its own messages are not echoed back).
        assert!(texts(&c.peer.sync(conv).await.expect("sync")).is_empty());
    }
}

#[tokio::test]
async fn a_device_killed_between_the_ratchet_step_and_its_own_rows_still_receives_the_message_once()
{
    for backend in backends().await {
        let Clinic {
            app,
            peer,
            peer_id,
            sdk_hp,
            _hp_dir: hp_dir,
            ..
        } = Clinic::new(backend).await;
        let conv = peer
            .create_supervision_conversation(peer_id)
            .await
            .expect("conversation")
            .id;
        sdk_hp.accept_welcomes().await.expect("HP joins");
        peer.send_text(conv, "Er du der?").await.expect("first");
        peer.send_text(conv, "Jeg trenger å snakke.")
            .await
            .expect("second");
        drop(sdk_hp);

        // The HP's app dies inside the first received message: after the client core's
        // ratchet step, before the SDK's cursor, dedup ids, inbox and history.
        let crashing = PeerbridgeClient::open_with_options(
            &app.base,
            hp_dir.path(),
            &HP_KEY,
            SdkOptions {
                crash_after_mls_step: true,
                ..options()
            },
        )
        .expect("open");
        let died = tokio::spawn(async move { crashing.sync(conv).await })
            .await
            .expect_err("the app died mid-receive");
        assert!(died.is_panic());

        // Restarted, the device reads the same entries again and both messages arrive,
        // each once, none undecryptable.
        let hp = open(&app, hp_dir.path(), &HP_KEY).expect("reopen");
        let events = hp.sync(conv).await.expect("sync after the restart");
        assert_eq!(
            texts(&events),
            vec![
                "Er du der?".to_string(),
                "Jeg trenger å snakke.".to_string()
            ],
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Undecryptable { .. })),
            "{events:?}"
        );
        assert!(texts(&hp.sync(conv).await.expect("sync again")).is_empty());
        let history = hp.history(conv, None, 10).expect("history");
        assert_eq!(
            texts(&history.events)
                .iter()
                .filter(|t| t.as_str() == "Er du der?")
                .count(),
            1,
            "kept once: {history:?}"
        );
    }
}

#[tokio::test]
async fn a_client_reopened_from_its_directory_and_key_continues_and_a_wrong_key_changes_nothing() {
    let c = Clinic::new(Backend::Sqlite).await;
    let conv = c.conversation().await;
    let Clinic {
        app,
        peer,
        peer_dir,
        sdk_hp,
        _hp_dir,
        ..
    } = c;
    sdk_hp.accept_welcomes().await.expect("hp joins");
    peer.send_text(conv, "før omstart").await.expect("sent");
    assert_eq!(
        texts(&sdk_hp.sync(conv).await.expect("sync")),
        vec!["før omstart"]
    );
    let session = peer.session().expect("state").expect("enrolled");

    // The app is killed: the client object goes away.
    drop(peer);
    let dir = peer_dir.path().to_path_buf();

    // A wrong key fails clearly and leaves every file as it was.
    let snapshot = |d: &std::path::Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .expect("dir")
            .map(|f| {
                let f = f.expect("entry");
                (
                    f.file_name().to_string_lossy().into_owned(),
                    std::fs::read(f.path()).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&dir);
    let e = open(&app, &dir, &[99u8; 32]).expect_err("wrong key");
    assert_eq!(e, SdkError::WrongStorageKey);
    assert_eq!(e.code(), "wrong_storage_key");
    assert_eq!(snapshot(&dir), before, "a wrong key changes nothing");
    assert_eq!(
        open(&app, &dir, &[1u8; 31]).expect_err("short key").code(),
        "invalid_input"
    );

    // The right key reopens the same device, session and conversation.
    let peer = open(&app, &dir, &PEER_KEY).expect("reopen");
    assert_eq!(peer.session().expect("state"), Some(session));
    sdk_hp.send_text(conv, "etter omstart").await.expect("sent");
    let got = peer.sync(conv).await.expect("sync after reopen");
    assert_eq!(texts(&got), vec!["etter omstart"], "only what is new");
    peer.send_text(conv, "fortsatt her")
        .await
        .expect("send after reopen");
    assert_eq!(
        texts(&sdk_hp.sync(conv).await.expect("sync")),
        vec!["fortsatt her"]
    );
}

#[tokio::test]
async fn a_commit_that_loses_its_epoch_is_discarded_caught_up_and_retried() {
    let c = Clinic::new(Backend::Sqlite).await;
    let conv = c.conversation().await;
    c.sdk_hp.accept_welcomes().await.expect("hp joins");

    // A second supervisor, on their own SDK device.
    let hp2 = c
        .app
        .create_staff(&c.operator, c.clinic, "hp", "Henrik Lege")
        .await;
    c.app
        .client()
        .post(
            &format!("/v1/clinics/{}/peers/{}/supervisors", c.clinic, c.peer_id),
            Some(c.hp.token()),
            json!({ "hp_id": hp2.session.user_id }),
        )
        .await
        .expect(201);
    let hp2_dir = tempfile::tempdir().expect("tempdir");
    let sdk_hp2 = staff_device(&c.app, &hp2, hp2_dir.path()).await;

    // The HP commits first (a key update); the peer has not read it and commits for the
    // same epoch: the server answers 409, the SDK discards, catches up and retries.
    c.sdk_hp.self_update(conv).await.expect("hp commit");
    let events = c
        .peer
        .add_user(conv, hp2.session.user_id)
        .await
        .expect("add recovers");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::EpochChanged { epoch: 2, .. })),
        "the peer caught up with the HP's commit: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::MemberAdded { member, .. } if member.device_key == sdk_hp2.device_public_key())),
        "{events:?}"
    );
    let info = c.peer.conversations().await.expect("list");
    assert_eq!(info[0].epoch, 3);

    // Everyone is in the same state and nothing was lost.
    let joined = sdk_hp2.accept_welcomes().await.expect("hp2 joins");
    assert!(joined.iter().any(|e| matches!(e, Event::Joined { .. })));
    c.sdk_hp.sync(conv).await.expect("hp catches up");
    c.peer
        .send_text(conv, "velkommen, Henrik")
        .await
        .expect("sent");
    assert_eq!(
        texts(&sdk_hp2.sync(conv).await.expect("sync")),
        vec!["velkommen, Henrik"]
    );
    assert_eq!(
        texts(&c.sdk_hp.sync(conv).await.expect("sync")),
        vec!["velkommen, Henrik"]
    );
    let code = c.peer.safety_code(conv).expect("code");
    assert_eq!(c.sdk_hp.safety_code(conv).expect("code"), code);
    assert_eq!(sdk_hp2.safety_code(conv).expect("code"), code);
    assert_eq!(c.peer.members(conv).expect("members").len(), 3);
}

#[tokio::test]
async fn after_a_server_restart_the_stream_reconnects_and_a_queued_send_goes_out() {
    let c = Clinic::new(Backend::Sqlite).await;
    let conv = c.conversation().await;
    let mut hp_events = listen(&c.sdk_hp);
    until(&mut hp_events, |e| matches!(e, Event::Joined { .. })).await;

    // The server goes away: sockets close with 1001, a send fails after its retries and
    // stays queued on the device.
    c.app.shutdown.shutdown().await;
    let e = c
        .peer
        .send_text(conv, "mens serveren var nede")
        .await
        .expect_err("the server is down");
    assert_eq!(e.code(), "network");

    // It comes back on the same address; the queued message goes out with the next sync.
    let addr = c.app.base.trim_start_matches("http://").to_owned();
    let _back = c.app.spawn_sibling(|raw| raw.bind = addr.clone()).await;
    let flushed = c.peer.sync_all().await.expect("sync after the restart");
    assert!(
        flushed.iter().any(|e| matches!(e, Event::Sent { .. })),
        "{flushed:?}"
    );

    // The HP's receive loop reconnects by itself and reads what it missed.
    let got = until(&mut hp_events, |e| matches!(e, Event::Text { .. })).await;
    let Event::Text { body, .. } = got else {
        unreachable!()
    };
    assert_eq!(body, "mens serveren var nede");
}

/// A user's second phone: the first device registers its key, the new phone links to the
/// account, both are listed; revoking the old phone ends its session for good. A push
/// endpoint outside the allowed gateways is refused, an allowed one is kept and cleared.
#[tokio::test]
async fn a_second_phone_is_linked_listed_and_the_lost_one_revoked() {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| {
            c.push_allowed_hosts = Some("push.example.org".into());
        })
        .await;
        let operator = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&operator, "Oslo OPC").await;
        let invite = app.create_invite(&hp, clinic, "service_user").await;
        let old_dir = tempfile::tempdir().expect("tempdir");
        let old = open(&app, old_dir.path(), &PEER_KEY).expect("open");
        let me = old.enroll(&invite.code, "Old phone").await.expect("enroll");

        let new_dir = tempfile::tempdir().expect("tempdir");
        let new = open(&app, new_dir.path(), &HP_KEY).expect("open");
        let added = old
            .add_device(&new.device_public_key(), "New phone")
            .await
            .expect("register the new phone");
        let linked = new.link_device(added.id).await.expect("link");
        assert_eq!(linked.user_id, me.user_id);
        assert_eq!(linked.device_id, added.id);
        let listed = new.devices().await.expect("devices");
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|d| d.revoked_at.is_none()));
        // Linking again, or to someone else's device id, is refused.
        assert!(matches!(
            new.link_device(me.device_id).await,
            Err(SdkError::InvalidInput(_))
        ));

        new.revoke_device(me.device_id)
            .await
            .expect("revoke the lost phone");
        let listed = new.devices().await.expect("devices");
        assert!(
            listed
                .iter()
                .any(|d| d.id == me.device_id && d.revoked_at.is_some())
        );
        let e = old.devices().await.expect_err("the revoked phone is out");
        assert_eq!(e.code(), "unauthenticated");
        assert_eq!(
            old.session().expect("session").map(|s| s.signed_in),
            Some(false)
        );

        let e = new
            .register_push_endpoint("https://push.evil.example/x")
            .await
            .expect_err("not an allowed gateway");
        assert_eq!(e.code(), "invalid_input");
        new.register_push_endpoint("https://push.example.org/up/abc")
            .await
            .expect("allowed gateway");
        new.clear_push_endpoint().await.expect("cleared");
    }
}

/// The device's history: own and received lines in order, paged from the newest; read
/// receipts reach the sender; an empty receipt is refused before anything is sent.
#[tokio::test]
async fn history_pages_from_the_newest_and_receipts_reach_the_sender() {
    for backend in backends().await {
        let c = Clinic::new(backend).await;
        let conv = c.conversation().await;
        c.sdk_hp.accept_welcomes().await.expect("welcome");
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(
                c.peer
                    .send_text(conv, &format!("line {i}"))
                    .await
                    .expect("send"),
            );
        }
        let got = c.sdk_hp.sync(conv).await.expect("sync");
        assert_eq!(texts(&got).len(), 5);
        c.sdk_hp
            .send_read_receipt(conv, sent[..2].to_vec())
            .await
            .expect("receipt");
        c.sdk_hp.send_text(conv, "answer").await.expect("answer");
        let back = c.peer.sync(conv).await.expect("sync");
        assert!(
            back.iter()
                .any(|e| matches!(e, Event::Receipt { ids, .. } if ids.as_slice() == &sent[..2]))
        );
        assert_eq!(texts(&back), ["answer"]);

        // The counterpart's receipt is kept in the history (the app shows "read" marks from
        // it after a restart), in its place between the lines.
        let newest = c.peer.history(conv, None, 5).expect("history");
        assert_eq!(
            texts(&newest.events),
            ["line 2", "line 3", "line 4", "answer"]
        );
        assert!(matches!(
            &newest.events[3],
            Event::Receipt { ids, sender, .. } if ids.as_slice() == &sent[..2] && !sender.is_me
        ));
        let before = newest.before.expect("older lines exist");
        let older = c.peer.history(conv, Some(before), 4).expect("history");
        assert_eq!(texts(&older.events), ["line 0", "line 1"]);
        assert_eq!(older.before, None);
        // Own lines are marked as ours and carry their log position.
        match &older.events[0] {
            Event::Text { sender, seq, .. } => assert!(sender.is_me && *seq > 0),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            texts(&c.sdk_hp.history(conv, None, 100).expect("history").events),
            ["line 0", "line 1", "line 2", "line 3", "line 4", "answer"]
        );
        let e = c
            .sdk_hp
            .send_read_receipt(conv, Vec::new())
            .await
            .expect_err("empty");
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(
            c.peer
                .history(Uuid::new_v4(), None, 10)
                .expect_err("unknown")
                .code(),
            "not_found"
        );
    }
}

/// D1 through the SDK: a phone away past the retention period in a busy conversation
/// receives everything still stored and is told (an event, kept in history) what was purged.
#[tokio::test]
async fn a_device_back_after_retention_receives_what_is_left_and_is_told_what_was_purged() {
    use peerbridge_server::delivery::entities::log_entry;
    use sea_orm::sea_query::Expr;

    for backend in backends().await {
        let c = Clinic::new(backend).await;
        let conv = c.conversation().await;
        let joined = c.sdk_hp.sync_all().await.expect("hp joins");
        assert!(
            joined
                .iter()
                .any(|e| matches!(e, Event::Joined { conversation, .. } if *conversation == conv))
        );
        let purge = 210u64; // more than the SDK's page of 200
        for i in 0..purge {
            c.peer
                .send_text(conv, &format!("gammel {i}"))
                .await
                .expect("sent");
        }
        let past = c.app.state.now() - chrono::Duration::seconds(1);
        log_entry::Entity::update_many()
            .col_expr(log_entry::Column::ExpiresAt, Expr::value(past))
            .filter(log_entry::Column::ConversationId.eq(conv))
            .exec(&c.app.state.db)
            .await
            .expect("expire");
        let deleted = peerbridge_server::delivery::service::purge_expired(&c.app.state)
            .await
            .expect("purge");
        assert_eq!(deleted, purge);
        for i in 0..3 {
            c.peer
                .send_text(conv, &format!("ny {i}"))
                .await
                .expect("sent");
        }

        let got = c.sdk_hp.sync(conv).await.expect("hp sync");
        assert_eq!(texts(&got), vec!["ny 0", "ny 1", "ny 2"], "{got:?}");
        let gaps: Vec<u64> = got
            .iter()
            .filter_map(|e| match e {
                Event::MessagesPurged {
                    conversation,
                    count,
                    commits,
                    ..
                } if *conversation == conv => {
                    assert_eq!(*commits, 0);
                    Some(*count)
                }
                _ => None,
            })
            .collect();
        assert_eq!(gaps.iter().sum::<u64>(), purge, "{gaps:?}");
        // The gap is part of the history the app shows.
        let page = c.sdk_hp.history(conv, None, 50).expect("history");
        assert!(
            page.events
                .iter()
                .any(|e| matches!(e, Event::MessagesPurged { .. })),
            "{page:?}"
        );
        // Nothing more to read, and the cursor stays put.
        assert!(c.sdk_hp.sync(conv).await.expect("sync").is_empty());
    }
}

/// D3: a debrief request reaches the supervising HP's SDK as an event through the stream
/// (polling never reports debriefs), and the acknowledgement reaches the peer the same way.
#[tokio::test]
async fn a_debrief_request_and_its_acknowledgement_arrive_as_events_without_polling() {
    use peerbridge_mobile::ConnectionState;
    for backend in backends().await {
        let c = Clinic::new(backend).await;
        let mut hp_events = listen(&c.sdk_hp);
        let mut peer_events = listen(&c.peer);
        for rx in [&mut hp_events, &mut peer_events] {
            until(rx, |e| {
                *e == Event::ConnectionChanged {
                    state: ConnectionState::Connected,
                }
            })
            .await;
        }
        let d = c.peer.request_debrief(None, true).await.expect("debrief");
        let got = until(&mut hp_events, |e| {
            matches!(e, Event::DebriefChanged { .. })
        })
        .await;
        assert_eq!(got, Event::DebriefChanged { debrief: d.id });
        assert_eq!(c.sdk_hp.debrief_queue().await.expect("queue")[0].id, d.id);

        c.sdk_hp.acknowledge_debrief(d.id).await.expect("ack");
        let got = until(&mut peer_events, |e| {
            matches!(e, Event::DebriefChanged { .. })
        })
        .await;
        assert_eq!(got, Event::DebriefChanged { debrief: d.id });
    }
}
