//! Matching and introductions over HTTP: suggestions honour approval, pause, capacity,
//! remote opt-in and prior declines with a stable order; introductions move through
//! decline, expiry, pause, close, block, report and re-match, each with its authorization
//! matrix (the parties and the clinic's HPs; everyone else 403/404).

use chrono::Duration;
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::introductions::{
    BoundaryReport, IntroductionDetail, IntroductionOutcome, IntroductionState, PartyIntroduction,
    PeerProfile, Response as Answer, Suggestion,
};
use peerbridge_tests::api::{Enrolled, Staff};
use peerbridge_tests::{TestApp, backends};
use serde_json::{Value, json};
use uuid::Uuid;

async fn clinic_in(app: &TestApp, op: &Staff, name: &str, network: &str) -> (Uuid, Staff) {
    let id = app
        .client()
        .post(
            "/v1/clinics",
            Some(op.token()),
            json!({ "name": name, "network": network }),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("clinic id");
    let hp = app.create_staff(op, id, "hp", "Hanne Sykepleier").await;
    (id, hp)
}

async fn enroll(app: &TestApp, hp: &Staff, clinic: Uuid, role: &str) -> Enrolled {
    app.redeem(&app.create_invite(hp, clinic, role).await.code)
        .await
}

/// An approved peer with a profile.
async fn approved_peer(
    app: &TestApp,
    hp: &Staff,
    clinic: Uuid,
    profile: Value,
) -> (Enrolled, PeerProfile) {
    let peer = enroll(app, hp, clinic, "peer").await;
    let c = app.client();
    let base = format!("/v1/clinics/{clinic}/peers/{}", peer.session.user_id);
    c.put(&format!("{base}/profile"), Some(hp.token()), profile)
        .await
        .expect(200);
    let p: PeerProfile = c
        .post(
            &format!("{base}/approval"),
            Some(hp.token()),
            json!({ "trained_on": "2026-09-01" }),
        )
        .await
        .expect(200)
        .parse();
    assert!(p.approved);
    assert_eq!(p.approved_by, Some(hp.session.user_id));
    (peer, p)
}

fn profile(langs: &[&str], topics: &[&str], remote: bool) -> Value {
    json!({
        "languages": langs, "gender": "woman", "age_band": "30-39", "region": "Vestland",
        "years_since_diagnosis": 12, "topics": topics, "remote_support": remote, "capacity": 2,
        "availability": "weekday evenings"
    })
}

async fn suggest(app: &TestApp, hp: &Staff, clinic: Uuid, su: Uuid) -> Vec<Suggestion> {
    app.client()
        .get(
            &format!("/v1/clinics/{clinic}/users/{su}/suggestions?limit=50"),
            Some(hp.token()),
        )
        .await
        .expect(200)
        .parse()
}

async fn propose(
    app: &TestApp,
    hp: &Staff,
    clinic: Uuid,
    su: Uuid,
    peer: Uuid,
) -> IntroductionDetail {
    app.client()
        .post(
            &format!("/v1/clinics/{clinic}/introductions"),
            Some(hp.token()),
            json!({
                "client_id": Uuid::new_v4(), "service_user_id": su, "peer_id": peer,
                "blurb_for_service_user": "Has lived well with HIV for twelve years; knows disclosure worries.",
                "blurb_for_peer": "Recently diagnosed, wants to talk about telling family.",
                "expires_in_hours": 24
            }),
        )
        .await
        .expect(201)
        .parse()
}

fn ids(s: &[Suggestion]) -> Vec<Uuid> {
    s.iter().map(|s| s.peer_id).collect()
}

#[tokio::test]
async fn suggestions_honour_approval_pause_capacity_remote_and_declines_in_a_stable_order() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (home, hp) = clinic_in(&app, &op, "Haukeland", "vest").await;
        let (remote_clinic, remote_hp) = clinic_in(&app, &op, "Stavanger", "vest").await;
        let (far_clinic, far_hp) = clinic_in(&app, &op, "Ullevål", "øst").await;
        let su = enroll(&app, &hp, home, "service_user").await;
        let other_su = enroll(&app, &hp, home, "service_user").await;
        let su_id = su.session.user_id;
        c.put(
            &format!("/v1/clinics/{home}/users/{su_id}/needs"),
            Some(hp.token()),
            json!({
                "languages": ["nb"], "preferred_gender": "woman", "preferred_age_bands": ["30-39"],
                "region": "vestland", "topics": ["disclosure", "newly_diagnosed"]
            }),
        )
        .await
        .expect(200);

        let (best, _) = approved_peer(
            &app,
            &hp,
            home,
            profile(&["nb", "en"], &["disclosure", "newly_diagnosed"], false),
        )
        .await;
        // Two equal peers: the one approved first ranks first, whatever their ids.
        let (tie_a, _) =
            approved_peer(&app, &hp, home, profile(&["nb"], &["disclosure"], false)).await;
        app.clock.advance(Duration::minutes(1));
        let (tie_b, _) =
            approved_peer(&app, &hp, home, profile(&["nb"], &["disclosure"], false)).await;
        let (paused, _) =
            approved_peer(&app, &hp, home, profile(&["nb"], &["disclosure"], false)).await;
        let (full, _) =
            approved_peer(&app, &hp, home, profile(&["nb"], &["disclosure"], false)).await;
        let (declined, _) =
            approved_peer(&app, &hp, home, profile(&["nb"], &["disclosure"], false)).await;
        let unapproved = enroll(&app, &hp, home, "peer").await;
        c.put(
            &format!(
                "/v1/clinics/{home}/peers/{}/profile",
                unapproved.session.user_id
            ),
            Some(hp.token()),
            profile(&["nb"], &["disclosure", "newly_diagnosed"], false),
        )
        .await
        .expect(200);
        let (remote_yes, _) = approved_peer(
            &app,
            &remote_hp,
            remote_clinic,
            profile(&["nb"], &["disclosure"], true),
        )
        .await;
        let (remote_no, _) = approved_peer(
            &app,
            &remote_hp,
            remote_clinic,
            profile(&["nb"], &["disclosure"], false),
        )
        .await;
        let (far, _) = approved_peer(
            &app,
            &far_hp,
            far_clinic,
            profile(&["nb"], &["disclosure"], true),
        )
        .await;

        // The peer pauses themselves, and one fills their capacity.
        let own: PeerProfile = c
            .request(
                reqwest::Method::PATCH,
                "/v1/me/peer-profile",
                Some(paused.token()),
                Some(&json!({ "paused": true })),
            )
            .await
            .expect(200)
            .parse();
        assert!(own.paused);
        c.request(
            reqwest::Method::PATCH,
            "/v1/me/peer-profile",
            Some(full.token()),
            Some(&json!({ "capacity": 1 })),
        )
        .await
        .expect(200);
        propose(
            &app,
            &hp,
            home,
            other_su.session.user_id,
            full.session.user_id,
        )
        .await;
        // The user declined this peer before.
        let old = propose(&app, &hp, home, su_id, declined.session.user_id).await;
        c.post(
            &format!("/v1/introductions/{}/decline", old.id),
            Some(su.token()),
            json!({}),
        )
        .await
        .expect(200);

        let s = suggest(&app, &hp, home, su_id).await;
        let got = ids(&s);
        assert_eq!(
            got,
            vec![
                best.session.user_id,
                tie_a.session.user_id,
                tie_b.session.user_id,
                remote_yes.session.user_id
            ],
            "{s:#?}"
        );
        assert_eq!(s[0].score, 100);
        assert_eq!(s[0].rank, 1);
        assert!(s[0].parts.iter().all(|p| !p.explanation.is_empty()));
        assert!(
            s[0].parts
                .iter()
                .any(|p| p.explanation.contains("speaks nb"))
        );
        assert_eq!(s[1].score, s[2].score, "the tie is a real tie");
        assert!(s[3].remote && s[3].clinic_id == remote_clinic);
        for excluded in [&paused, &full, &declined, &unapproved, &remote_no, &far] {
            assert!(!got.contains(&excluded.session.user_id));
        }
        // Stable: asking again gives the same order.
        assert_eq!(ids(&suggest(&app, &hp, home, su_id).await), got);

        // Without remote support accepted, remote peers disappear; un-pausing brings a peer
        // back; the decline keeps excluding.
        c.put(
            &format!("/v1/clinics/{home}/users/{su_id}/needs"),
            Some(hp.token()),
            json!({ "languages": ["nb"], "topics": ["disclosure"], "accepts_remote": false }),
        )
        .await
        .expect(200);
        c.request(
            reqwest::Method::PATCH,
            "/v1/me/peer-profile",
            Some(paused.token()),
            Some(&json!({ "paused": false })),
        )
        .await
        .expect(200);
        let again = ids(&suggest(&app, &hp, home, su_id).await);
        assert!(!again.contains(&remote_yes.session.user_id));
        assert!(again.contains(&paused.session.user_id));
        assert!(!again.contains(&declined.session.user_id));

        // Proposing a paused, unapproved or full peer is refused too.
        c.request(
            reqwest::Method::PATCH,
            "/v1/me/peer-profile",
            Some(paused.token()),
            Some(&json!({ "paused": true })),
        )
        .await
        .expect(200);
        for (peer, why) in [
            (&paused, "paused"),
            (&full, "capacity"),
            (&unapproved, "approved"),
        ] {
            let r = c
                .post(
                    &format!("/v1/clinics/{home}/introductions"),
                    Some(hp.token()),
                    json!({
                        "client_id": Uuid::new_v4(), "service_user_id": su_id,
                        "peer_id": peer.session.user_id,
                        "blurb_for_service_user": "A peer.", "blurb_for_peer": "A user."
                    }),
                )
                .await;
            r.expect_problem(409, "conflict");
            assert!(
                r.json()["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(why),
                "{}",
                r.text
            );
        }

        // Profiles and needs are for the clinic's HPs: other clinics, peers, users are refused.
        let url = format!("/v1/clinics/{home}/users/{su_id}/suggestions");
        for token in [remote_hp.token(), far_hp.token(), best.token(), su.token()] {
            assert_eq!(c.get(&url, Some(token)).await.status, 403);
        }
        let purl = format!("/v1/clinics/{home}/peers/{}/profile", best.session.user_id);
        for token in [remote_hp.token(), best.token(), su.token()] {
            assert_eq!(c.get(&purl, Some(token)).await.status, 403);
        }
        c.get("/v1/me/peer-profile", Some(su.token()))
            .await
            .expect(403);
        // A peer cannot approve themselves or edit their topics.
        let r = c
            .request(
                reqwest::Method::PATCH,
                "/v1/me/peer-profile",
                Some(best.token()),
                Some(&json!({ "topics": ["sexuality"] })),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
}

struct Cast {
    app: TestApp,
    clinic: Uuid,
    hp: Staff,
    other_hp: Staff,
    other_clinic_hp: Staff,
    su: Enrolled,
    peer: Enrolled,
    stranger_su: Enrolled,
    stranger_peer: Enrolled,
}

async fn cast(app: TestApp) -> Cast {
    let op = app.bootstrap_operator().await;
    let (clinic, hp) = clinic_in(&app, &op, "Haukeland", "vest").await;
    let other_hp = app.create_staff(&op, clinic, "hp", "Ola Lege").await;
    let (other_clinic, other_clinic_hp) = clinic_in(&app, &op, "Stavanger", "vest").await;
    let su = enroll(&app, &hp, clinic, "service_user").await;
    let (peer, _) =
        approved_peer(&app, &hp, clinic, profile(&["nb"], &["disclosure"], false)).await;
    let stranger_su = enroll(&app, &hp, clinic, "service_user").await;
    let stranger_peer = enroll(&app, &other_clinic_hp, other_clinic, "peer").await;
    Cast {
        app,
        clinic,
        hp,
        other_hp,
        other_clinic_hp,
        su,
        peer,
        stranger_su,
        stranger_peer,
    }
}

impl Cast {
    async fn propose(&self) -> IntroductionDetail {
        propose(
            &self.app,
            &self.hp,
            self.clinic,
            self.su.session.user_id,
            self.peer.session.user_id,
        )
        .await
    }

    async fn party(&self, who: &Enrolled, id: Uuid) -> PartyIntroduction {
        self.app
            .client()
            .get(&format!("/v1/introductions/{id}"), Some(who.token()))
            .await
            .expect(200)
            .parse()
    }

    async fn hp_view(&self, id: Uuid) -> IntroductionDetail {
        self.app
            .client()
            .get(
                &format!("/v1/clinics/{}/introductions/{id}", self.clinic),
                Some(self.hp.token()),
            )
            .await
            .expect(200)
            .parse()
    }

    async fn act(&self, who: &Enrolled, id: Uuid, action: &str) -> peerbridge_tests::api::Response {
        self.app
            .client()
            .post(
                &format!("/v1/introductions/{id}/{action}"),
                Some(who.token()),
                json!({}),
            )
            .await
    }

    /// Party-side `action` is refused for everyone but the parties: the clinic's HPs (role)
    /// and other clinics' HPs get 403, other users 404.
    async fn only_parties_may(&self, id: Uuid, action: &str) {
        let c = self.app.client();
        let url = format!("/v1/introductions/{id}/{action}");
        for s in [&self.stranger_su, &self.stranger_peer] {
            c.post(&url, Some(s.token()), json!({}))
                .await
                .expect_problem(404, "not_found");
        }
        for s in [&self.hp, &self.other_clinic_hp] {
            c.post(&url, Some(s.token()), json!({}))
                .await
                .expect_problem(403, "forbidden");
        }
    }

    /// Clinic-side `action` is refused for other clinics' HPs, and for the parties.
    async fn only_clinic_hps_may(&self, id: Uuid, action: &str) {
        let c = self.app.client();
        let url = format!("/v1/clinics/{}/introductions/{id}/{action}", self.clinic);
        for t in [
            self.other_clinic_hp.token(),
            self.su.token(),
            self.peer.token(),
            self.stranger_su.token(),
        ] {
            c.post(&url, Some(t), json!({}))
                .await
                .expect_problem(403, "forbidden");
        }
    }

    async fn relogin(&mut self) {
        async fn fresh(app: &TestApp, s: &Session, d: &peerbridge_mls::DeviceIdentity) -> Session {
            app.device_login(s.device_id, d).await.expect(200).parse()
        }
        for e in [
            &mut self.su,
            &mut self.peer,
            &mut self.stranger_su,
            &mut self.stranger_peer,
        ] {
            e.session = fresh(&self.app, &e.session, &e.device).await;
        }
        for s in [&mut self.hp, &mut self.other_hp, &mut self.other_clinic_hp] {
            s.session = fresh(&self.app, &s.session, &s.device).await;
        }
    }
}

#[tokio::test]
async fn a_decline_looks_like_an_expiry_to_the_other_side() {
    for backend in backends().await {
        let mut w = cast(TestApp::spawn(backend).await).await;
        let c = w.app.client();
        let declined = w.propose().await;
        w.only_parties_may(declined.id, "decline").await;
        w.only_parties_may(declined.id, "accept").await;
        w.act(&w.peer, declined.id, "decline").await.expect(200);
        // The peer proposes again later; this one just expires.
        let hp_side = w.hp_view(declined.id).await;
        assert_eq!(hp_side.outcome, Some(IntroductionOutcome::DeclinedByPeer));
        assert_eq!(hp_side.peer_response, Answer::Declined);
        w.act(&w.su, declined.id, "accept").await.expect(200);

        // A second introduction with another peer, left unanswered by that peer.
        let (peer2, _) = approved_peer(&w.app, &w.hp, w.clinic, profile(&["nb"], &[], false)).await;
        let expiring = propose(
            &w.app,
            &w.hp,
            w.clinic,
            w.su.session.user_id,
            peer2.session.user_id,
        )
        .await;
        w.act(&w.su, expiring.id, "accept").await.expect(200);

        // Before expiry, both look like waiting to the service user.
        let a = w.party(&w.su, declined.id).await;
        let b = w.party(&w.su, expiring.id).await;
        for v in [&a, &b] {
            assert_eq!(v.state, IntroductionState::Proposed);
            assert_eq!(v.my_response, Answer::Accepted);
            assert!(!v.counterpart_accepted);
        }
        // No user id, clinic or the other side's answer leaks into the party view.
        let raw = c
            .get(
                &format!("/v1/introductions/{}", declined.id),
                Some(w.su.token()),
            )
            .await
            .text;
        for secret in [
            w.peer.session.user_id.to_string(),
            w.clinic.to_string(),
            w.hp.session.user_id.to_string(),
            "declined".into(),
        ] {
            assert!(!raw.contains(&secret), "{raw}");
        }

        // After the expiry time both are simply ended, field for field alike.
        w.app.clock.advance(Duration::hours(25));
        w.relogin().await;
        let a = w.party(&w.su, declined.id).await;
        let b = w.party(&w.su, expiring.id).await;
        let strip = |v: &PartyIntroduction| {
            let mut j = serde_json::to_value(v).expect("json");
            for k in [
                "id",
                "my_alias",
                "counterpart_alias",
                "blurb",
                "expires_at",
                "created_at",
            ] {
                j.as_object_mut().expect("object").remove(k);
            }
            j
        };
        assert_eq!(a.state, IntroductionState::Ended);
        assert_eq!(strip(&a), strip(&b));
        assert_eq!(
            w.hp_view(expiring.id).await.outcome,
            Some(IntroductionOutcome::Expired)
        );
        // An expired proposal cannot be accepted any more.
        w.act(&peer2, expiring.id, "accept")
            .await
            .expect_problem(401, "unauthenticated");
        let fresh: Session = w
            .app
            .device_login(peer2.session.device_id, &peer2.device)
            .await
            .expect(200)
            .parse();
        c.post(
            &format!("/v1/introductions/{}/accept", expiring.id),
            Some(&fresh.access_token),
            json!({}),
        )
        .await
        .expect_problem(409, "conflict");
    }
}

#[tokio::test]
async fn pause_close_block_report_and_rematch_with_their_authorization() {
    for backend in backends().await {
        let w = cast(TestApp::spawn(backend).await).await;
        let c = w.app.client();
        let intro = w.propose().await;
        // Parties see aliases and their own blurb only.
        let su_view = w.party(&w.su, intro.id).await;
        let peer_view = w.party(&w.peer, intro.id).await;
        assert_eq!(su_view.my_alias, peer_view.counterpart_alias);
        assert_ne!(su_view.my_alias, su_view.counterpart_alias);
        assert!(su_view.blurb.contains("twelve years"));
        assert!(peer_view.blurb.contains("telling family"));
        // Strangers: 404 on the party view; the list shows only one's own.
        for s in [&w.stranger_su, &w.stranger_peer] {
            c.get(&format!("/v1/introductions/{}", intro.id), Some(s.token()))
                .await
                .expect_problem(404, "not_found");
            let list: Vec<PartyIntroduction> = c
                .get("/v1/introductions", Some(s.token()))
                .await
                .expect(200)
                .parse();
            assert!(list.is_empty());
        }
        w.act(&w.su, intro.id, "accept").await.expect(200);
        let v: PartyIntroduction = w.act(&w.peer, intro.id, "accept").await.expect(200).parse();
        assert_eq!(v.state, IntroductionState::Active);

        // Pause by a party: only they (or the clinic) resume.
        w.only_parties_may(intro.id, "pause").await;
        w.act(&w.su, intro.id, "pause").await.expect(200);
        let pv = w.party(&w.peer, intro.id).await;
        assert_eq!(pv.state, IntroductionState::Paused);
        assert_eq!(pv.paused_by_me, Some(false));
        w.act(&w.peer, intro.id, "resume")
            .await
            .expect_problem(403, "forbidden");
        w.only_parties_may(intro.id, "resume").await;
        w.act(&w.su, intro.id, "resume").await.expect(200);
        // Pause and resume by the clinic's HP; other clinics and the parties cannot.
        w.only_clinic_hps_may(intro.id, "pause").await;
        let base = format!("/v1/clinics/{}/introductions/{}", w.clinic, intro.id);
        c.post(
            &format!("{base}/pause"),
            Some(w.other_hp.token()),
            json!({}),
        )
        .await
        .expect(200);
        w.only_clinic_hps_may(intro.id, "resume").await;
        c.post(&format!("{base}/resume"), Some(w.hp.token()), json!({}))
            .await
            .expect(200);

        // A boundary report reaches the clinic's HPs (note readable only by them).
        let report_url = format!("/v1/introductions/{}/reports", intro.id);
        let body = json!({ "client_id": Uuid::new_v4(), "category": "dating_request", "note": "Asked me out twice" });
        let r: BoundaryReport = c
            .post(&report_url, Some(w.peer.token()), body.clone())
            .await
            .expect(201)
            .parse();
        c.post(&report_url, Some(w.peer.token()), body)
            .await
            .expect(200);
        for s in [&w.stranger_su, &w.stranger_peer] {
            c.post(
                &report_url,
                Some(s.token()),
                json!({ "client_id": Uuid::new_v4(), "category": "other" }),
            )
            .await
            .expect_problem(404, "not_found");
        }
        let attention: Vec<IntroductionDetail> = c
            .get(
                &format!("/v1/clinics/{}/introductions?attention=true", w.clinic),
                Some(w.hp.token()),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(attention.len(), 1);
        assert_eq!(attention[0].open_reports, 1);
        let reports: Vec<BoundaryReport> = c
            .get(&format!("{base}/reports"), Some(w.hp.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].note.as_deref(), Some("Asked me out twice"));
        for t in [w.other_clinic_hp.token(), w.peer.token(), w.su.token()] {
            c.get(&format!("{base}/reports"), Some(t))
                .await
                .expect_problem(403, "forbidden");
        }
        w.only_clinic_hps_may(intro.id, &format!("reports/{}/handled", r.id))
            .await;
        c.post(
            &format!("{base}/reports/{}/handled", r.id),
            Some(w.hp.token()),
            json!({}),
        )
        .await
        .expect(200);
        assert_eq!(w.hp_view(intro.id).await.open_reports, 0);

        // Block: ends it, the clinic sees it, the pair is never suggested again.
        w.only_parties_may(intro.id, "block").await;
        let b: PartyIntroduction = w.act(&w.su, intro.id, "block").await.expect(200).parse();
        assert!(b.blocked_by_me);
        assert_eq!(b.state, IntroductionState::Ended);
        assert!(!w.party(&w.peer, intro.id).await.blocked_by_me);
        let d = w.hp_view(intro.id).await;
        assert_eq!(d.outcome, Some(IntroductionOutcome::BlockedByServiceUser));
        let s = suggest(&w.app, &w.hp, w.clinic, w.su.session.user_id).await;
        assert!(!ids(&s).contains(&w.peer.session.user_id));
        // Nothing more happens to an ended introduction.
        w.act(&w.peer, intro.id, "pause")
            .await
            .expect_problem(409, "conflict");
        w.act(&w.peer, intro.id, "close")
            .await
            .expect_problem(409, "conflict");

        // Close by a party, then a re-match without blame.
        let (peer2, _) = approved_peer(&w.app, &w.hp, w.clinic, profile(&["nb"], &[], false)).await;
        let second = propose(
            &w.app,
            &w.hp,
            w.clinic,
            w.su.session.user_id,
            peer2.session.user_id,
        )
        .await;
        w.only_parties_may(second.id, "close").await;
        w.act(&peer2, second.id, "close").await.expect(200);
        assert_eq!(
            w.hp_view(second.id).await.outcome,
            Some(IntroductionOutcome::ClosedByPeer)
        );
        let (peer3, _) = approved_peer(&w.app, &w.hp, w.clinic, profile(&["nb"], &[], false)).await;
        let body = json!({
            "client_id": Uuid::new_v4(), "peer_id": peer3.session.user_id,
            "blurb_for_service_user": "Another peer.", "blurb_for_peer": "A user."
        });
        for t in [w.other_clinic_hp.token(), w.su.token()] {
            assert_eq!(
                c.post(
                    &format!(
                        "/v1/clinics/{}/introductions/{}/rematch",
                        w.clinic, second.id
                    ),
                    Some(t),
                    body.clone()
                )
                .await
                .status,
                403
            );
        }
        let new: IntroductionDetail = c
            .post(
                &format!(
                    "/v1/clinics/{}/introductions/{}/rematch",
                    w.clinic, second.id
                ),
                Some(w.hp.token()),
                body,
            )
            .await
            .expect(201)
            .parse();
        assert_eq!(new.state, IntroductionState::Proposed);
        assert_eq!(new.peer_id, peer3.session.user_id);
        assert_eq!(w.hp_view(second.id).await.rematched_to, Some(new.id));
        // The HP closes the new one; other clinics' HPs cannot see or close it.
        c.get(
            &format!("/v1/clinics/{}/introductions/{}", w.clinic, new.id),
            Some(w.other_clinic_hp.token()),
        )
        .await
        .expect_problem(403, "forbidden");
        w.only_clinic_hps_may(new.id, "close").await;
        c.post(
            &format!("/v1/clinics/{}/introductions/{}/close", w.clinic, new.id),
            Some(w.hp.token()),
            json!({}),
        )
        .await
        .expect(200);
        assert_eq!(
            w.hp_view(new.id).await.outcome,
            Some(IntroductionOutcome::ClosedByHp)
        );
        // An HP of another clinic cannot reach this clinic's introductions by its own path.
        let other_clinic = w.other_clinic_hp.session.clinic_id.expect("clinic");
        c.get(
            &format!("/v1/clinics/{other_clinic}/introductions/{}", new.id),
            Some(w.other_clinic_hp.token()),
        )
        .await
        .expect_problem(404, "not_found");

        let v = peerbridge_server::audit::verify(&w.app.state.db)
            .await
            .expect("verify");
        assert!(
            matches!(v, peerbridge_server::audit::Verification::Intact { .. }),
            "{v:?}"
        );
    }
}
