//! Escalation on the server: flags raised from a conversation are stored once per client
//! id, routed to the on-duty HPs and the peer's supervisors, climb the ladder on a test
//! clock (exactly once per step, also with two replicas), stop when acknowledged; every view
//! is audited; crisis resources, debriefs and the consultation report work end to end.

use std::time::Duration as StdDuration;

use chrono::Duration;
use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::escalation::{
    ConsultationReport, CrisisResourceList, Debrief, EventKind, Flag, FlagDetail, FlagReceipt,
    FlagStatus,
};
use peerbridge_openapi::signed::escalation_key_message;
use peerbridge_tests::api::{Enrolled, Staff};
use peerbridge_tests::mls_device::b64;
use peerbridge_tests::{Backend, TestApp, backends};
use serde_json::{Value, json};
use uuid::Uuid;

struct Ward {
    app: TestApp,
    clinic: Uuid,
    admin: Staff,
    on_duty: Staff,
    next: Staff,
    other: Staff,
    supervisor: Staff,
    outsider: Staff,
    peer: Enrolled,
    su: Enrolled,
    conv: Uuid,
}

async fn ward(app: TestApp) -> Ward {
    let c = app.client();
    let op = app.bootstrap_operator().await;
    let (clinic, supervisor) = app.clinic_with_hp(&op, "Haukeland").await;
    let on_duty = app.create_staff(&op, clinic, "hp", "Vakt Sykepleier").await;
    let next = app.create_staff(&op, clinic, "hp", "Neste Lege").await;
    let other = app.create_staff(&op, clinic, "hp", "Annen Lege").await;
    let admin = app
        .create_staff(&op, clinic, "clinic_admin", "Klinikk Admin")
        .await;
    let (_, outsider) = app.clinic_with_hp(&op, "Elsewhere").await;
    let peer = app
        .redeem(&app.create_invite(&supervisor, clinic, "peer").await.code)
        .await;
    let su = app
        .redeem(
            &app.create_invite(&supervisor, clinic, "service_user")
                .await
                .code,
        )
        .await;
    c.post(
        &format!(
            "/v1/clinics/{clinic}/peers/{}/supervisors",
            peer.session.user_id
        ),
        Some(supervisor.token()),
        json!({ "hp_id": supervisor.session.user_id }),
    )
    .await
    .expect(201);
    c.put(
        &format!("/v1/clinics/{clinic}/escalation-settings"),
        Some(admin.token()),
        json!({
            "on_duty": [on_duty.session.user_id], "next_responders": [next.session.user_id],
            "imminent_minutes": 5, "urgent_minutes": 15, "concerning_minutes": 240,
            "routine_hour": 10,
            "notice_nb": "En sykepleier er bedt om å ringe deg.",
            "notice_nn": "Ein sjukepleiar er beden om å ringja deg.",
            "notice_en": "A nurse has been asked to call you."
        }),
    )
    .await
    .expect(200);
    // The peer's supervision conversation, opened by the peer alone.
    let conv_id = app.supervision_opened_alone(&peer).await;
    Ward {
        app,
        clinic,
        admin,
        on_duty,
        next,
        other,
        supervisor,
        outsider,
        peer,
        su,
        conv: conv_id,
    }
}

/// A ward whose level-0 responders (on duty, supervisor) have published escalation keys,
/// so a flag can be raised at once.
async fn keyed_ward(backend: peerbridge_tests::Backend) -> Ward {
    let w = ward(TestApp::spawn(backend).await).await;
    for s in [&w.on_duty, &w.supervisor] {
        publish_key(&w.app, s).await;
    }
    w
}

fn excerpt_for(recipient: &Value) -> Value {
    // The server never opens excerpts: any sealed bytes addressed to a current key do here.
    json!({ "public_key": recipient["public_key"], "enc": b64(&[7u8; 32]), "ciphertext": b64(b"sealed excerpt bytes") })
}

async fn publish_key(app: &TestApp, staff: &Staff) -> [u8; 32] {
    let hpke_public: [u8; 32] = rand_bytes();
    let sig = staff.device.sign(&escalation_key_message(&hpke_public));
    app.client()
        .put(
            "/v1/me/escalation-key",
            Some(staff.token()),
            json!({ "public_key": b64(&hpke_public), "signature": b64(&sig) }),
        )
        .await
        .expect(204);
    hpke_public
}

fn rand_bytes() -> [u8; 32] {
    *Uuid::new_v4()
        .as_bytes()
        .repeat(2)
        .first_chunk::<32>()
        .expect("32")
}

async fn fresh(app: &TestApp, s: &Session, d: &DeviceIdentity) -> Session {
    app.device_login(s.device_id, d).await.expect(200).parse()
}

impl Ward {
    async fn relogin(&mut self) {
        for s in [
            &mut self.admin,
            &mut self.on_duty,
            &mut self.next,
            &mut self.other,
            &mut self.supervisor,
            &mut self.outsider,
        ] {
            s.session = fresh(&self.app, &s.session, &s.device).await;
        }
        for e in [&mut self.peer, &mut self.su] {
            e.session = fresh(&self.app, &e.session, &e.device).await;
        }
    }

    async fn sees(&self, who: &Staff, flag: Uuid) -> bool {
        let r = self
            .app
            .client()
            .get(&format!("/v1/flags/{flag}"), Some(who.token()))
            .await;
        assert!(r.status == 200 || r.status == 404, "{}", r.text);
        let listed: Vec<Flag> = self
            .app
            .client()
            .get("/v1/flags", Some(who.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(listed.iter().any(|f| f.id == flag), r.status == 200);
        r.status == 200
    }

    async fn raise(&self, client_id: Uuid, severity: &str) -> peerbridge_tests::api::Response {
        let recipients: Vec<Value> = self
            .app
            .client()
            .get(
                &format!("/v1/conversations/{}/escalation-recipients", self.conv),
                Some(self.peer.token()),
            )
            .await
            .expect(200)
            .parse();
        self.app
            .client()
            .post(
                &format!("/v1/conversations/{}/flags", self.conv),
                Some(self.peer.token()),
                json!({
                    "client_id": client_id, "kind": "flag", "category": "suicide_risk",
                    "severity": severity, "locale": "nn",
                    "excerpts": recipients.iter().map(excerpt_for).collect::<Vec<_>>()
                }),
            )
            .await
    }

    /// Advances the test clock past the current deadline and waits for the ladder.
    async fn pass_deadline(&mut self, flag: Uuid, expect_level: u8) {
        self.app
            .clock
            .advance(Duration::minutes(5) + Duration::seconds(1));
        self.relogin().await;
        for _ in 0..100 {
            let d: FlagDetail = self
                .app
                .client()
                .get(&format!("/v1/flags/{flag}"), Some(self.supervisor.token()))
                .await
                .expect(200)
                .parse();
            if d.flag.level >= expect_level {
                assert_eq!(d.flag.level, expect_level);
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("the ladder did not reach level {expect_level}");
    }
}

fn escalations(d: &FlagDetail) -> Vec<u8> {
    d.events
        .iter()
        .filter(|e| e.kind == EventKind::Escalated)
        .filter_map(|e| e.level)
        .collect()
}

#[tokio::test]
async fn an_unacknowledged_imminent_flag_climbs_the_ladder_until_acknowledged() {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| c.ladder_interval_ms = 50).await;
        // On PostgreSQL a second replica on the same database and clock runs the ladder
        // too (SQLite is the embedded, single-replica mode).
        let sibling = match backend {
            Backend::Postgres => Some(app.spawn_sibling(|c| c.ladder_interval_ms = 50).await),
            Backend::Sqlite => None,
        };
        let mut w = ward(app).await;
        let c = w.app.client();
        for s in [&w.on_duty, &w.next, &w.other, &w.supervisor, &w.admin] {
            publish_key(&w.app, s).await;
        }
        // Every possible responder's device is a recipient; outsiders are not.
        let recipients: Vec<Value> = c
            .get(
                &format!("/v1/conversations/{}/escalation-recipients", w.conv),
                Some(w.peer.token()),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(recipients.len(), 5);
        c.get(
            &format!("/v1/conversations/{}/escalation-recipients", w.conv),
            Some(w.su.token()),
        )
        .await
        .expect_problem(404, "not_found");

        let client_id = Uuid::new_v4();
        let first: FlagReceipt = w.raise(client_id, "imminent").await.expect(201).parse();
        assert_eq!(first.notice, "Ein sjukepleiar er beden om å ringja deg.");
        // Raising again with the same client id stores one flag.
        let again: FlagReceipt = w.raise(client_id, "imminent").await.expect(200).parse();
        assert_eq!(again.id, first.id);
        let id = first.id;

        // Level 0: the on-duty HP and the peer's supervisor; nobody else.
        assert!(w.sees(&w.on_duty, id).await);
        assert!(w.sees(&w.supervisor, id).await);
        for s in [&w.next, &w.other, &w.admin, &w.outsider] {
            assert!(!w.sees(s, id).await);
        }
        for t in [w.peer.token(), w.su.token()] {
            c.get(&format!("/v1/flags/{id}"), Some(t))
                .await
                .expect_problem(403, "forbidden");
        }
        let d: FlagDetail = c
            .get(&format!("/v1/flags/{id}"), Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert!(
            d.excerpt.is_some(),
            "each responder device gets its own sealed copy"
        );
        assert_eq!(d.flag.subject_id, w.peer.session.user_id);

        // At the deadline: the next responders.
        w.pass_deadline(id, 1).await;
        assert!(w.sees(&w.next, id).await);
        assert!(!w.sees(&w.other, id).await);
        // At the next: the whole clinic.
        w.pass_deadline(id, 2).await;
        assert!(w.sees(&w.other, id).await);
        assert!(!w.sees(&w.admin, id).await);
        assert!(!w.sees(&w.outsider, id).await);

        // Acknowledging stops the ladder.
        let acked: FlagDetail = c
            .post(
                &format!("/v1/flags/{id}/acknowledge"),
                Some(w.other.token()),
                json!({}),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(acked.flag.status, FlagStatus::Acknowledged);
        w.app.clock.advance(Duration::hours(1));
        // Wait until a ladder pass has run after the jump (a replica renewed its lease past
        // the new time); it must not have climbed.
        let after_jump = w.app.state.now();
        let lease = || async {
            use peerbridge_server::escalation::entities::lease;
            use sea_orm::EntityTrait;
            lease::Entity::find_by_id("escalation-ladder".to_string())
                .one(&w.app.state.db)
                .await
                .expect("lease row")
                .is_some_and(|l| l.expires_at > after_jump)
        };
        let mut ran = false;
        for _ in 0..100 {
            if lease().await {
                ran = true;
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        assert!(ran, "a ladder pass ran after the clock moved");
        w.relogin().await;
        let d: FlagDetail = c
            .get(&format!("/v1/flags/{id}"), Some(w.other.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(d.flag.level, 2);
        // Each step happened exactly once though two replicas ran the ladder.
        assert_eq!(escalations(&d), vec![1, 2]);
        if let Some(sibling) = &sibling {
            let (a, b) = tokio::join!(
                peerbridge_server::escalation::ladder::tick(&w.app.state, "a"),
                peerbridge_server::escalation::ladder::tick(&sibling.state, "b"),
            );
            assert_eq!(a.expect("tick") + b.expect("tick"), 0);
        }

        // Notes, reassignment and resolution; the person's identity is an audited read.
        c.post(
            &format!("/v1/flags/{id}/notes"),
            Some(w.other.token()),
            json!({ "note": "Called, no answer; trying again at 14." }),
        )
        .await
        .expect(200);
        c.post(
            &format!("/v1/flags/{id}/reassign"),
            Some(w.other.token()),
            json!({ "hp_id": w.outsider.session.user_id }),
        )
        .await
        .expect_problem(422, "validation_failed");
        c.post(
            &format!("/v1/flags/{id}/reassign"),
            Some(w.other.token()),
            json!({ "hp_id": w.on_duty.session.user_id }),
        )
        .await
        .expect(200);
        // The identity only for a stated reason: no GET, no blank or oversized reason, and
        // nothing is read or audited for a refused request.
        c.get(&format!("/v1/flags/{id}/subject"), Some(w.on_duty.token()))
            .await
            .expect_problem(405, "method_not_allowed");
        c.post(
            &format!("/v1/flags/{id}/subject"),
            Some(w.on_duty.token()),
            json!({}),
        )
        .await
        .expect_problem(400, "malformed_body");
        for bad in [
            json!({ "reason": "  \n " }),
            json!({ "reason": "x".repeat(501) }),
        ] {
            c.post(
                &format!("/v1/flags/{id}/subject"),
                Some(w.on_duty.token()),
                bad,
            )
            .await
            .expect_problem(422, "validation_failed");
        }
        let reason = "Calling Kari back: the excerpt says tonight.";
        let who: Value = c
            .post(
                &format!("/v1/flags/{id}/subject"),
                Some(w.on_duty.token()),
                json!({ "reason": reason }),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(who["display_name"], "Kari Nordmann");
        c.post(
            &format!("/v1/flags/{id}/subject"),
            Some(w.outsider.token()),
            json!({ "reason": "curious" }),
        )
        .await
        .expect_problem(404, "not_found");
        let done: FlagDetail = c
            .post(
                &format!("/v1/flags/{id}/resolve"),
                Some(w.on_duty.token()),
                json!({ "outcome": "follow_up_booked" }),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(done.flag.status, FlagStatus::Resolved);
        let kinds: Vec<EventKind> = done.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Raised,
                EventKind::Escalated,
                EventKind::Escalated,
                EventKind::Acknowledged,
                EventKind::Note,
                EventKind::Reassigned,
                EventKind::Resolved
            ]
        );
        assert_eq!(
            done.events[4].note.as_deref(),
            Some("Called, no answer; trying again at 14.")
        );
        let active: Vec<Flag> = c
            .get("/v1/flags", Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert!(active.is_empty(), "resolved flags leave the active queue");
        let resolved: Vec<Flag> = c
            .get("/v1/flags?status=resolved", Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(resolved.len(), 1);

        // Every view was audited, and the chain holds.
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let views = peerbridge_server::audit::entities::audit_log::Entity::find()
            .filter(
                peerbridge_server::audit::entities::audit_log::Column::Action.is_in([
                    "flag.viewed",
                    "flag.subject_identity_viewed",
                    "flags.listed",
                ]),
            )
            .all(&w.app.state.db)
            .await
            .expect("audit rows");
        assert!(views.len() >= 10, "{}", views.len());
        // Exactly one identity read, by the on-duty HP, carrying the reason (sealed: the
        // audit log holds no names in the clear).
        let reads: Vec<_> = views
            .iter()
            .filter(|r| r.action == "flag.subject_identity_viewed")
            .collect();
        assert_eq!(reads.len(), 1, "refused requests read and audit nothing");
        assert_eq!(reads[0].actor_user_id, Some(w.on_duty.session.user_id));
        let detail: Value = serde_json::from_str(&reads[0].detail).expect("detail");
        assert!(!reads[0].detail.contains("Kari"), "{}", reads[0].detail);
        let sealed = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            detail["reason_sealed"].as_str().expect("reason_sealed"),
        )
        .expect("base64url");
        let opened = w
            .app
            .state
            .keys
            .fields
            .open(
                peerbridge_server::escalation::service::SUBJECT_REASON_PLACE,
                &id.to_string(),
                &sealed,
            )
            .expect("the reason opens");
        assert_eq!(opened, reason);
        let v = peerbridge_server::audit::verify(&w.app.state.db)
            .await
            .expect("verify");
        assert!(
            matches!(v, peerbridge_server::audit::Verification::Intact { .. }),
            "{v:?}"
        );
        if let Some(sibling) = sibling {
            sibling.shutdown.shutdown().await;
        }
    }
}

#[tokio::test]
async fn queue_orders_by_severity_then_age_and_filters() {
    for backend in backends().await {
        let w = ward(TestApp::spawn(backend).await).await;
        let c = w.app.client();
        let routine = w
            .raise(Uuid::new_v4(), "routine")
            .await
            .expect(201)
            .parse::<FlagReceipt>()
            .id;
        w.app.clock.advance(Duration::seconds(10));
        let urgent = w
            .raise(Uuid::new_v4(), "urgent")
            .await
            .expect(201)
            .parse::<FlagReceipt>()
            .id;
        w.app.clock.advance(Duration::seconds(10));
        let imminent = w
            .raise(Uuid::new_v4(), "imminent")
            .await
            .expect(201)
            .parse::<FlagReceipt>()
            .id;
        let urgent2 = w
            .raise(Uuid::new_v4(), "urgent")
            .await
            .expect(201)
            .parse::<FlagReceipt>()
            .id;
        let q: Vec<Flag> = c
            .get("/v1/flags", Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(
            q.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![imminent, urgent, urgent2, routine]
        );
        assert!(q.iter().all(|f| f.mine));
        c.post(
            &format!("/v1/flags/{urgent}/acknowledge"),
            Some(w.on_duty.token()),
            json!({}),
        )
        .await
        .expect(200);
        let open: Vec<Flag> = c
            .get("/v1/flags?status=open", Some(w.supervisor.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(open.len(), 3);
        let acked: Vec<Flag> = c
            .get(
                "/v1/flags?status=acknowledged&scope=mine",
                Some(w.on_duty.token()),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(acked.iter().map(|f| f.id).collect::<Vec<_>>(), vec![urgent]);
        // A routine flag is due on the next working day.
        let d: FlagDetail = c
            .get(&format!("/v1/flags/{routine}"), Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert!(d.flag.deadline_at > d.flag.created_at + Duration::hours(1));
        // Bad input: a help-now from a peer, a flag without severity, unknown keys.
        c.post(
            &format!("/v1/conversations/{}/flags", w.conv),
            Some(w.peer.token()),
            json!({ "client_id": Uuid::new_v4(), "kind": "help_now", "excerpts": [] }),
        )
        .await
        .expect_problem(403, "forbidden");
        c.post(&format!("/v1/conversations/{}/flags", w.conv), Some(w.peer.token()),
            json!({ "client_id": Uuid::new_v4(), "kind": "flag", "category": "self_harm", "excerpts": [] }))
            .await
            .expect_problem(422, "validation_failed");
        c.post(&format!("/v1/conversations/{}/flags", w.conv), Some(w.peer.token()),
            json!({ "client_id": Uuid::new_v4(), "kind": "flag", "category": "self_harm", "severity": "urgent",
                    "excerpts": [{ "public_key": b64(&[1u8; 32]), "enc": b64(&[1u8; 32]), "ciphertext": b64(b"x") }] }))
            .await
            .expect_problem(422, "validation_failed");
        let still: Vec<Flag> = c
            .get("/v1/flags?status=all", Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(still.len(), 4, "refused input stored nothing");
    }
}

#[tokio::test]
async fn crisis_resources_debriefs_and_the_consultation_report() {
    for backend in backends().await {
        let w = ward(TestApp::spawn(backend).await).await;
        let c = w.app.client();
        // National defaults until the clinic edits its list.
        let nb: CrisisResourceList = c
            .get("/v1/crisis-resources", Some(w.su.token()))
            .await
            .expect(200)
            .parse();
        let phones: Vec<&str> = nb.resources.iter().map(|r| r.phone.as_str()).collect();
        assert_eq!(phones, vec!["113", "116 117", "116 123"]);
        let en: CrisisResourceList = c
            .get("/v1/crisis-resources?locale=en", Some(w.peer.token()))
            .await
            .expect(200)
            .parse();
        assert!(en.resources[0].label.starts_with("Emergency"));
        c.put(&format!("/v1/clinics/{}/crisis-resources", w.clinic), Some(w.supervisor.token()),
            json!({ "locale": "nn", "resources": [{ "label": "Naudnummer", "phone": "113" }, { "label": "Klinikken på dagtid", "phone": "+47 55 97 50 00" }] }))
            .await
            .expect(200);
        let nn: CrisisResourceList = c
            .get("/v1/crisis-resources?locale=nn", Some(w.su.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(nn.resources.len(), 2);
        c.put(
            &format!("/v1/clinics/{}/crisis-resources", w.clinic),
            Some(w.outsider.token()),
            json!({ "locale": "nn", "resources": [{ "label": "x", "phone": "1" }] }),
        )
        .await
        .expect_problem(403, "forbidden");

        // A debrief lands with the peer's supervisors only.
        let body = json!({ "client_id": Uuid::new_v4(), "severity": "urgent" });
        let d: Debrief = c
            .post("/v1/me/debriefs", Some(w.peer.token()), body.clone())
            .await
            .expect(201)
            .parse();
        c.post("/v1/me/debriefs", Some(w.peer.token()), body)
            .await
            .expect(200);
        let q: Vec<Debrief> = c
            .get("/v1/debriefs", Some(w.supervisor.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(q.len(), 1);
        let none: Vec<Debrief> = c
            .get("/v1/debriefs", Some(w.on_duty.token()))
            .await
            .expect(200)
            .parse();
        assert!(none.is_empty());
        c.post(
            &format!("/v1/debriefs/{}/acknowledge", d.id),
            Some(w.on_duty.token()),
            json!({}),
        )
        .await
        .expect_problem(404, "not_found");
        let acked: Debrief = c
            .post(
                &format!("/v1/debriefs/{}/acknowledge", d.id),
                Some(w.supervisor.token()),
                json!({}),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(acked.status, FlagStatus::Acknowledged);
        c.post(
            "/v1/me/debriefs",
            Some(w.su.token()),
            json!({ "client_id": Uuid::new_v4() }),
        )
        .await
        .expect_problem(403, "forbidden");

        // Consultations: date, duration, kind; the report has numbers only.
        let today = w.app.state.now().date_naive();
        for (minutes, kind) in [(45, "chat"), (30, "call"), (60, "chat")] {
            c.post("/v1/me/consultations", Some(w.peer.token()),
                json!({ "client_id": Uuid::new_v4(), "date": today, "duration_minutes": minutes, "kind": kind }))
                .await
                .expect(201);
        }
        c.post("/v1/me/consultations", Some(w.peer.token()),
            json!({ "client_id": Uuid::new_v4(), "date": today, "duration_minutes": 45, "kind": "chat", "note": "she said…" }))
            .await
            .expect_problem(400, "malformed_body");
        let url = format!(
            "/v1/clinics/{}/consultation-report?from={}&to={}",
            w.clinic,
            today - Duration::days(30),
            today
        );
        let r: ConsultationReport = c.get(&url, Some(w.admin.token())).await.expect(200).parse();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(
            (
                r.rows[0].consultations,
                r.rows[0].total_minutes,
                r.rows[0].chat,
                r.rows[0].call
            ),
            (3, 135, 2, 1)
        );
        let csv = c
            .get(&format!("{url}&format=csv"), Some(w.admin.token()))
            .await
            .expect(200)
            .text
            .clone();
        assert_eq!(
            csv,
            format!(
                "peer_id,consultations,total_minutes,chat,call,video,meeting\n{},3,135,2,1,0,0\n",
                w.peer.session.user_id
            )
        );
        for t in [w.supervisor.token(), w.peer.token(), w.outsider.token()] {
            assert_eq!(c.get(&url, Some(t)).await.status, 403);
        }
    }
}

/// Fifty concurrent retries of one flag (a phone retrying after lost answers) store one
/// flag and each gets a 2xx naming it — never a 500 from the unique client id.
#[tokio::test]
async fn fifty_concurrent_retries_of_one_flag_store_it_once_and_all_succeed() {
    use peerbridge_server::escalation::entities::flag;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    for backend in backends().await {
        let w = keyed_ward(backend).await;
        let client_id = Uuid::new_v4();
        let answers =
            futures_util::future::join_all((0..50).map(|_| w.raise(client_id, "urgent"))).await;
        let mut ids = std::collections::HashSet::new();
        let mut created = 0;
        for r in &answers {
            assert!(
                r.status == 201 || r.status == 200,
                "{}: {}",
                r.status,
                r.text
            );
            created += usize::from(r.status == 201);
            ids.insert(r.parse::<FlagReceipt>().id);
        }
        assert_eq!(created, 1, "exactly one answer created the flag");
        assert_eq!(ids.len(), 1, "every answer names the same flag");
        let stored = flag::Entity::find()
            .filter(flag::Column::ClientId.eq(client_id))
            .count(&w.app.state.db)
            .await
            .expect("count");
        assert_eq!(stored, 1);
    }
}

/// A stored flag whose status no variant names is a corrupt row: reading it is an internal
/// error (problem+json, no value echoed), not a flag silently shown as open; the row is left
/// as it was.
#[tokio::test]
async fn a_corrupt_stored_status_is_an_internal_error_not_a_guess() {
    use peerbridge_server::escalation::entities::flag;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    for backend in backends().await {
        let w = keyed_ward(backend).await;
        let id = w
            .raise(Uuid::new_v4(), "urgent")
            .await
            .expect(201)
            .parse::<FlagReceipt>()
            .id;
        let path = format!("/v1/flags/{id}");
        // Positive control: readable while the row is sound.
        w.app
            .client()
            .get(&path, Some(w.on_duty.token()))
            .await
            .expect(200);
        flag::Entity::update_many()
            .col_expr(flag::Column::Status, Expr::value("misplaced"))
            .filter(flag::Column::Id.eq(id))
            .exec(&w.app.state.db)
            .await
            .expect("corrupt the row");
        let r = w.app.client().get(&path, Some(w.on_duty.token())).await;
        r.expect_problem(500, "internal");
        assert!(!r.text.contains("misplaced"), "{}", r.text);
        let row = flag::Entity::find_by_id(id)
            .one(&w.app.state.db)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, "misplaced", "stored data left intact");
    }
}
