//! Escalation on the server: flags raised from a conversation are stored once per client
//! id, routed to the on-duty HPs and the peer's supervisors, climb the ladder on a test
//! clock (exactly once per step, also with two replicas), stop when acknowledged; every view
//! is audited; crisis resources, debriefs and the consultation report work end to end.

use std::time::Duration as StdDuration;

use chrono::Duration;
use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::escalation::{
    ConsultationReport, CrisisResourceList, Debrief, EventKind, Flag, FlagDetail, FlagProgress,
    FlagReceipt, FlagStatus,
};
use peerbridge_openapi::signed::escalation_key_message;
use peerbridge_tests::api::{Enrolled, Staff, metric_value as metric};
use peerbridge_tests::mls_device::{Stream, b64};
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

impl Ward {
    /// Waits until a ladder pass has run at the current test time (a replica renewed its
    /// lease past it).
    async fn wait_for_ladder_pass(&self) {
        use peerbridge_server::escalation::entities::lease;
        use sea_orm::EntityTrait;
        let now = self.app.state.now();
        for _ in 0..200 {
            let renewed = lease::Entity::find_by_id("escalation-ladder".to_string())
                .one(&self.app.state.db)
                .await
                .expect("lease row")
                .is_some_and(|l| l.expires_at > now);
            if renewed {
                // The pass that renewed it may still be stepping: give it a moment.
                tokio::time::sleep(StdDuration::from_millis(200)).await;
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("no ladder pass ran after the clock moved");
    }

    async fn detail_as(&self, who: &Staff, flag: Uuid) -> FlagDetail {
        self.app
            .client()
            .get(&format!("/v1/flags/{flag}"), Some(who.token()))
            .await
            .expect(200)
            .parse()
    }

    /// Waits until the flag shows `count` events of `kind` (read as the clinic admin).
    async fn until_events(&mut self, flag: Uuid, kind: EventKind, count: usize) -> FlagDetail {
        self.relogin().await;
        for _ in 0..200 {
            let d = self.detail_as(&self.admin, flag).await;
            let n = d.events.iter().filter(|e| e.kind == kind).count();
            if n >= count {
                assert_eq!(n, count, "{kind:?} happened once per deadline");
                return d;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("no {count} {kind:?} events");
    }

    async fn progress(&self, who: &Enrolled, flag: Uuid) -> FlagProgress {
        self.app
            .client()
            .get(
                &format!("/v1/flags/{flag}/progress?locale=nn"),
                Some(who.token()),
            )
            .await
            .expect(200)
            .parse()
    }

    async fn metrics(&self) -> String {
        let base = self
            .app
            .metrics_base
            .clone()
            .unwrap_or(self.app.base.clone());
        let r = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("text")
    }
}

/// Waits for the stream's next notice about `flag` with `event` (skipping other flag
/// events, e.g. the reader's own acknowledgement).
async fn until_flag_event(stream: &mut Stream, flag: Uuid, event: &str) {
    loop {
        let n = stream.until("flag").await;
        if n["flag_id"] == flag.to_string() && n["event"] == event {
            return;
        }
    }
}

/// The coming Sunday, 02:00 on Oslo's clock.
fn next_sunday_night(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, TimeZone};
    let tz = chrono_tz::Europe::Oslo;
    let mut day = now.with_timezone(&tz).date_naive() + Duration::days(1);
    while day.weekday() != chrono::Weekday::Sun {
        day = day.succ_opt().expect("a next day");
    }
    tz.from_local_datetime(&day.and_hms_opt(2, 0, 0).expect("02:00"))
        .single()
        .expect("02:00 exists on a Sunday")
        .with_timezone(&chrono::Utc)
}

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

#[tokio::test]
async fn at_two_on_a_sunday_night_the_on_call_hp_is_alerted_and_the_top_keeps_ringing_until_someone_answers()
 {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| c.ladder_interval_ms = 50).await;
        let mut w = ward(app).await;
        for s in [&w.on_duty, &w.next, &w.other, &w.supervisor, &w.admin] {
            publish_key(&w.app, s).await;
        }
        let c = w.app.client();
        // A day clinic: a nurse on duty and a doctor next, weekdays 08-16; at night and at
        // weekends `other` is on call, and people are pointed to the legevakt.
        c.put(
            &format!("/v1/clinics/{}/escalation-settings", w.clinic),
            Some(w.admin.token()),
            json!({
                "on_duty": [], "next_responders": [],
                "shifts": [
                    { "hp_id": w.on_duty.session.user_id, "level": "on_duty",
                      "days": WEEKDAYS, "start": "08:00", "end": "16:00" },
                    { "hp_id": w.next.session.user_id, "level": "next_responder",
                      "days": WEEKDAYS, "start": "08:00", "end": "16:00" }
                ],
                "out_of_hours": {
                    "on_call": [w.other.session.user_id],
                    "contact": { "phone": "116 117", "label_nb": "Legevakten",
                                 "label_nn": "Legevakta", "label_en": "Out-of-hours doctor" }
                },
                "time_zone": "Europe/Oslo", "followup_minutes": 60,
                "imminent_minutes": 5, "urgent_minutes": 15, "concerning_minutes": 240,
                "routine_hour": 10,
                "notice_nb": "En sykepleier er bedt om å ringe deg.",
                "notice_nn": "Ein sjukepleiar er beden om å ringja deg.",
                "notice_en": "A nurse has been asked to call you."
            }),
        )
        .await
        .expect(200);
        let now = w.app.state.now();
        w.app.clock.advance(next_sunday_night(now) - now);
        w.relogin().await;

        let receipt: FlagReceipt = w
            .raise(Uuid::new_v4(), "imminent")
            .await
            .expect(201)
            .parse();
        let id = receipt.id;
        assert!(receipt.asked);
        let legevakt = receipt.out_of_hours.clone().expect("out of hours");
        assert_eq!(
            (legevakt.label.as_str(), legevakt.phone.as_str()),
            ("Legevakta", "116 117")
        );
        // Out of hours: the on-call HP and the peer's supervisor; not the day shift.
        assert!(w.sees(&w.other, id).await);
        assert!(w.sees(&w.supervisor, id).await);
        for s in [&w.on_duty, &w.next, &w.admin, &w.outsider] {
            assert!(!w.sees(s, id).await);
        }
        assert!(w.detail_as(&w.other, id).await.flag.out_of_hours);
        // The raiser sees "received, not yet acknowledged", and nobody else can ask.
        let seen = w.progress(&w.peer, id).await;
        assert_eq!(seen.status, FlagStatus::Open);
        assert!(seen.acknowledged_at.is_none());
        assert_eq!(seen.out_of_hours, Some(legevakt));
        for t in [w.su.token(), w.on_duty.token(), w.other.token()] {
            c.get(&format!("/v1/flags/{id}/progress"), Some(t))
                .await
                .expect_problem(404, "not_found");
        }
        let mine: Vec<FlagProgress> = c
            .get("/v1/me/flags", Some(w.peer.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(mine.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id]);
        let mut raiser = Stream::connect(&w.app.base, w.peer.token()).await;

        // No next responders at night: the ladder goes straight to the whole clinic, then
        // the admins.
        w.pass_deadline(id, 2).await;
        assert!(w.sees(&w.on_duty, id).await);
        assert!(!w.sees(&w.admin, id).await);
        w.pass_deadline(id, 3).await;
        assert!(w.sees(&w.admin, id).await);
        assert_eq!(escalations(&w.detail_as(&w.admin, id).await), vec![2, 3]);

        // At the top it keeps alerting at the imminent interval until somebody answers.
        let mut admin = Stream::connect(&w.app.base, w.admin.token()).await;
        for round in 1..=3 {
            w.app
                .clock
                .advance(Duration::minutes(5) + Duration::seconds(1));
            let d = w.until_events(id, EventKind::Realerted, round).await;
            assert_eq!(d.flag.level, 3);
            let n = admin.until("flag").await;
            assert_eq!(
                (n["flag_id"].as_str(), n["event"].as_str()),
                (Some(id.to_string().as_str()), Some("realerted"))
            );
        }
        let text = w.metrics().await;
        assert_eq!(
            metric(
                &text,
                r#"peerbridge_escalation_deadline_breaches_total{step="realerted",severity="imminent"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            metric(
                &text,
                r#"peerbridge_escalation_flags{status="open",level="3",severity="imminent"}"#
            ),
            Some(1.0)
        );
        assert!(
            metric(
                &text,
                r#"peerbridge_escalation_oldest_unacknowledged_seconds{severity="imminent"}"#
            )
            .is_some_and(|s| s >= 20.0 * 60.0),
            "{text}"
        );
        assert!(
            metric(
                &text,
                "peerbridge_escalation_ladder_last_pass_timestamp_seconds"
            )
            .is_some_and(|t| t >= w.app.state.now().timestamp() as f64 - 60.0)
        );

        // The admin answers: the ringing stops and the raiser hears that it was taken on.
        c.post(
            &format!("/v1/flags/{id}/acknowledge"),
            Some(w.admin.token()),
            json!({}),
        )
        .await
        .expect(200);
        until_flag_event(&mut raiser, id, "acknowledged").await;
        let seen = w.progress(&w.peer, id).await;
        assert_eq!(seen.status, FlagStatus::Acknowledged);
        assert!(seen.acknowledged_at.is_some());
        w.app
            .clock
            .advance(Duration::minutes(5) + Duration::seconds(1));
        w.wait_for_ladder_pass().await;
        w.relogin().await;
        let d = w.detail_as(&w.admin, id).await;
        assert_eq!(
            d.events
                .iter()
                .filter(|e| e.kind == EventKind::Realerted)
                .count(),
            3
        );
        // Acknowledged but not resolved within the follow-up hour: a reminder.
        w.app.clock.advance(Duration::minutes(55));
        w.until_events(id, EventKind::Overdue, 1).await;
        until_flag_event(&mut admin, id, "overdue").await;
        c.post(
            &format!("/v1/flags/{id}/resolve"),
            Some(w.admin.token()),
            json!({ "outcome": "contacted_the_person" }),
        )
        .await
        .expect(200);
        until_flag_event(&mut raiser, id, "resolved").await;
        assert_eq!(w.progress(&w.peer, id).await.status, FlagStatus::Resolved);
        let text = w.metrics().await;
        assert_eq!(
            metric(
                &text,
                r#"peerbridge_escalation_time_to_acknowledge_seconds_count{severity="imminent"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            metric(
                &text,
                r#"peerbridge_escalation_deadline_breaches_total{step="overdue",severity="imminent"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            metric(
                &text,
                r#"peerbridge_escalation_flags{status="open",level="3",severity="imminent"}"#
            ),
            None,
            "a resolved flag is no longer counted"
        );
    }
}

#[tokio::test]
async fn on_a_weekday_the_day_shift_is_alerted_and_nobody_is_said_to_be_asked_when_nobody_can_be() {
    for backend in backends().await {
        let mut w = ward(TestApp::spawn(backend).await).await;
        for s in [&w.on_duty, &w.supervisor] {
            publish_key(&w.app, s).await;
        }
        let c = w.app.client();
        c.put(
            &format!("/v1/clinics/{}/escalation-settings", w.clinic),
            Some(w.admin.token()),
            json!({
                "on_duty": [], "next_responders": [],
                "shifts": [{ "hp_id": w.on_duty.session.user_id, "level": "on_duty",
                             "days": WEEKDAYS, "start": "08:00", "end": "16:00" }],
                "out_of_hours": { "on_call": [w.other.session.user_id] },
                "imminent_minutes": 5, "urgent_minutes": 15, "concerning_minutes": 240,
                "routine_hour": 10, "notice_nb": "Ringer deg.", "notice_nn": "Ringjer deg.",
                "notice_en": "We will call you."
            }),
        )
        .await
        .expect(200);
        // Monday 10:00 after the coming Sunday night.
        let now = w.app.state.now();
        w.app
            .clock
            .advance(next_sunday_night(now) - now + Duration::hours(32));
        w.relogin().await;
        let receipt: FlagReceipt = w.raise(Uuid::new_v4(), "urgent").await.expect(201).parse();
        assert!(receipt.asked && receipt.out_of_hours.is_none());
        assert_eq!(receipt.notice, "Ringjer deg.");
        assert!(w.sees(&w.on_duty, receipt.id).await);
        assert!(
            !w.sees(&w.other, receipt.id).await,
            "the on-call HP is off in the day"
        );
        assert!(!w.detail_as(&w.on_duty, receipt.id).await.flag.out_of_hours);

        // A clinic with nobody left to alert: the flag is stored and waits, and the notice
        // says so instead of promising a call.
        {
            use peerbridge_server::accounts::entities::user;
            use sea_orm::prelude::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            user::Entity::update_many()
                .col_expr(user::Column::Status, Expr::value("deactivated"))
                .filter(user::Column::ClinicId.eq(w.clinic))
                .filter(user::Column::Role.is_in(["hp", "clinic_admin"]))
                .exec(&w.app.state.db)
                .await
                .expect("deactivate");
        }
        let lonely: FlagReceipt = w
            .raise(Uuid::new_v4(), "imminent")
            .await
            .expect(201)
            .parse();
        assert!(!lonely.asked);
        assert_ne!(lonely.notice, "Ringjer deg.");
        assert!(
            lonely.notice.contains("ingen har stadfesta"),
            "{}",
            lonely.notice
        );
        let seen = w.progress(&w.peer, lonely.id).await;
        assert!(!seen.asked);
        assert_eq!(seen.status, FlagStatus::Open);
        let text = w.metrics().await;
        assert_eq!(
            metric(&text, "peerbridge_escalation_unalertable_flags_total"),
            Some(1.0)
        );
    }
}

/// Two passes that read the same due flag (two replicas overlapping after a lease expiry)
/// step it once: the step is a compare-and-set on what was read. Removing the filters of
/// that update makes the second step succeed and this test fail (checked by hand).
#[tokio::test]
async fn a_ladder_step_taken_from_a_stale_read_happens_once() {
    use peerbridge_server::escalation::ladder;
    for backend in backends().await {
        // This test drives the steps itself.
        let app = TestApp::spawn(backend).await;
        let sibling = app.spawn_sibling(|_| {}).await;
        let w = ward(app).await;
        for s in [&w.on_duty, &w.supervisor] {
            publish_key(&w.app, s).await;
        }
        let open: FlagReceipt = w
            .raise(Uuid::new_v4(), "imminent")
            .await
            .expect(201)
            .parse();
        let acked: FlagReceipt = w
            .raise(Uuid::new_v4(), "imminent")
            .await
            .expect(201)
            .parse();
        w.app
            .clock
            .advance(Duration::minutes(5) + Duration::seconds(1));
        let now = w.app.state.now();
        // This test holds the lease (the clock stands still, so it never expires): the
        // replicas' own passes step nothing meanwhile.
        assert!(
            ladder::acquire(&w.app.state, "the test")
                .await
                .expect("lease")
        );
        let seen_a = ladder::due(&w.app.state, now).await.expect("due");
        let seen_b = ladder::due(&sibling.state, now).await.expect("due");
        assert_eq!(seen_a.len(), 2);
        assert_eq!(seen_a, seen_b);
        let pick = |seen: &[peerbridge_server::escalation::entities::flag::Model], id: Uuid| {
            seen.iter().find(|f| f.id == id).cloned().expect("due")
        };
        assert!(
            ladder::step(&w.app.state, pick(&seen_a, open.id), now)
                .await
                .expect("step")
        );
        assert!(
            !ladder::step(&sibling.state, pick(&seen_b, open.id), now)
                .await
                .expect("step"),
            "a step from a stale read must not happen twice"
        );
        // Acknowledged after the pass read it: the stale step must not climb it either.
        let mut w = w;
        w.relogin().await;
        w.app
            .client()
            .post(
                &format!("/v1/flags/{}/acknowledge", acked.id),
                Some(w.on_duty.token()),
                json!({}),
            )
            .await
            .expect(200);
        assert!(
            !ladder::step(&sibling.state, pick(&seen_b, acked.id), now)
                .await
                .expect("step")
        );
        let d = w.detail_as(&w.supervisor, open.id).await;
        assert_eq!((d.flag.level, escalations(&d)), (1, vec![1]));
        let d = w.detail_as(&w.on_duty, acked.id).await;
        assert_eq!((d.flag.level, escalations(&d)), (0, vec![]));
        assert_eq!(d.flag.status, FlagStatus::Acknowledged);
        sibling.shutdown.shutdown().await;
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
        // A ladder pass ran after the jump; it must not have climbed.
        w.wait_for_ladder_pass().await;
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
