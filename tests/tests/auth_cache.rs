//! Issue 18: authorisation is answered from memory for a few seconds, and every change that
//! takes access away ends it at once — even for a device whose authorisation was cached a
//! moment before: a revoked device's next send, a changed role, a deactivated account, an
//! ended session; on another replica as soon as the bus brings the notice. The same holds
//! for what is remembered about conversations: a device removed from a group, a supervisor
//! unassigned, an introduction paused or blocked (the last in
//! `mobile-bindings/tests/introductions.rs`).

use peerbridge_mls::GroupId;
use peerbridge_tests::api::Client;
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::deployment::Deployment;
use peerbridge_tests::mls_device::{allow_all, unb64};
use peerbridge_tests::{Backend, TestApp, backends, redis_url};
use serde_json::json;
use uuid::Uuid;

/// (hits, misses) of the in-process server's authorisation cache.
fn counts(app: &TestApp) -> (u64, u64) {
    app.state.bus.auth_cache().counts()
}

/// (hits, misses) of its conversation visibility and membership cache.
fn access(app: &TestApp) -> (u64, u64) {
    app.state.bus.auth_cache().access_counts()
}

/// Makes `request` twice and shows the second was answered from the cache `of` counts (the
/// positive control for every refusal below: the access refused was a cached one).
async fn cached<F, Fut>(app: &TestApp, of: fn(&TestApp) -> (u64, u64), what: &str, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let first = request().await;
    assert!((200..300).contains(&first), "{what}: {first}");
    let (hits, _) = of(app);
    let second = request().await;
    assert!((200..300).contains(&second), "{what}: {second}");
    assert!(
        of(app).0 > hits,
        "{what}: the second request was not answered from the cache"
    );
}

#[tokio::test]
async fn a_cached_authorisation_ends_at_once_on_revocation_role_change_deactivation_and_logout() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let mut s = app.supervision_pair().await;
        let (conv, gid) = (s.conv.id, s.conv.group_id.clone());

        // A revoked device's next send is refused although its authorisation was cached.
        s.p.send_text(conv, &gid, "melding 1", Uuid::new_v4())
            .await
            .expect(201);
        let (hits, _) = counts(&app);
        s.p.send_text(conv, &gid, "melding 2", Uuid::new_v4())
            .await
            .expect(201);
        assert!(
            counts(&app).0 > hits,
            "the second send was not authorised from the cache"
        );
        c.delete(
            &format!(
                "/v1/clinics/{}/users/{}/devices/{}",
                s.clinic, s.peer.session.user_id, s.peer.session.device_id
            ),
            Some(s.hp.token()),
        )
        .await
        .expect(200);
        s.p.send_text(conv, &gid, "etter tilbakekalling", Uuid::new_v4())
            .await
            .expect_problem(401, "unauthenticated");
        // The HP's own sends go on: only the revoked device lost access.
        s.h.send_text(conv, &gid, "HP er her", Uuid::new_v4())
            .await
            .expect(201);

        // A role change: an HP made clinic admin loses the HP-only list at once.
        let op = app.bootstrap_operator().await;
        let admin = app
            .create_staff(&op, s.clinic, "clinic_admin", "Anne Admin")
            .await;
        let peers = format!("/v1/clinics/{}/peers", s.clinic);
        cached(&app, counts, "HP list", || async {
            c.get(&peers, Some(s.hp.token())).await.status
        })
        .await;
        c.put(
            &format!(
                "/v1/clinics/{}/users/{}/role",
                s.clinic, s.hp.session.user_id
            ),
            Some(admin.token()),
            json!({ "role": "clinic_admin" }),
        )
        .await
        .expect(200);
        c.get(&peers, Some(s.hp.token()))
            .await
            .expect_problem(403, "forbidden");

        // Deactivation: the account's every device stops at once.
        let hp2 = app
            .create_staff(&op, s.clinic, "hp", "Hilde Sykepleier")
            .await;
        let other = app.supervised_peer(&hp2, s.clinic).await;
        cached(&app, counts, "me", || async {
            c.get("/v1/me", Some(other.token())).await.status
        })
        .await;
        c.post(
            &format!(
                "/v1/clinics/{}/users/{}/deactivate",
                s.clinic, other.session.user_id
            ),
            Some(hp2.token()),
            json!({}),
        )
        .await
        .expect(200);
        let r = c.get("/v1/me", Some(other.token())).await;
        assert_eq!(r.status, 401, "{backend:?}: {}", r.text);

        // Logout: the session's access token ends with it.
        cached(&app, counts, "me", || async {
            c.get("/v1/me", Some(op.token())).await.status
        })
        .await;
        c.post(
            "/v1/auth/logout",
            None,
            json!({ "refresh_token": op.session.refresh_token }),
        )
        .await;
        c.get("/v1/me", Some(op.token()))
            .await
            .expect_problem(401, "unauthenticated");
        // The admin, untouched by all of it, still gets in.
        c.get("/v1/me", Some(admin.token())).await.expect(200);
    }
}

#[tokio::test]
async fn cached_conversation_access_ends_at_once_when_a_device_is_removed_or_a_supervisor_unassigned()
 {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();

        // Removed from the group by a commit: the device's next read and send are refused
        // although its membership was cached.
        let mut s = app.supervision_pair().await;
        let conv = s.conv.id;
        let read = format!("/v1/conversations/{conv}/messages?after=0");
        cached(&app, access, "HP reads", || async {
            c.get(&read, Some(s.hp.token())).await.status
        })
        .await;
        let gid = GroupId::new(unb64(&s.conv.group_id)).expect("gid");
        let hp_leaf =
            s.p.mls
                .members(&gid)
                .expect("members")
                .into_iter()
                .map(|m| m.leaf_index)
                .find(|&l| l != 0)
                .expect("the HP's leaf");
        let pc = s.p.mls.remove_members(&gid, &[hp_leaf]).expect("remove");
        s.p.submit(conv, &pc).await.expect(201);
        s.p.mls.commit_accepted(&gid, &allow_all).expect("merge");
        c.get(&read, Some(s.hp.token()))
            .await
            .expect_problem(403, "forbidden");
        s.h.send_text(conv, &s.conv.group_id, "fortsatt her?", Uuid::new_v4())
            .await
            .expect_problem(403, "forbidden");
        // The peer, still a member, reads on.
        c.get(&read, Some(s.peer.token())).await.expect(200);

        // Unassigned: the HP no longer sees the peer's supervision conversation.
        let s = app.supervision_pair().await;
        let conv = s.conv.id;
        let read = format!("/v1/conversations/{conv}/messages?after=0");
        cached(&app, access, "HP reads", || async {
            c.get(&read, Some(s.hp.token())).await.status
        })
        .await;
        c.delete(
            &format!(
                "/v1/clinics/{}/peers/{}/supervisors/{}",
                s.clinic, s.peer.session.user_id, s.hp.session.user_id
            ),
            Some(s.hp.token()),
        )
        .await
        .expect(204);
        c.get(&read, Some(s.hp.token()))
            .await
            .expect_problem(404, "not_found");
        c.post(
            &format!("/v1/conversations/{conv}/ack"),
            Some(s.hp.token()),
            json!({ "seq": 0 }),
        )
        .await
        .expect_problem(404, "not_found");
        c.get(&read, Some(s.peer.token())).await.expect(200);
    }
}

#[tokio::test]
async fn a_revocation_on_one_replica_ends_the_cached_authorisation_on_another() {
    if !postgres_available().await || !redis_available().await {
        return;
    }
    let dep = Deployment::new(redis_url());
    let app = TestApp::spawn_with(Backend::Postgres, |c| dep.configure(c)).await;
    let replica = dep.replica(&app).await;
    let b = Client::new(&replica.base());
    let op = app.bootstrap_operator().await;
    let (clinic, hp) = app.clinic_with_hp(&op, "Bodø").await;
    let peer = app.supervised_peer(&hp, clinic).await;

    // The peer's device is known to replica B from a moment ago. (A fresh replica's first
    // read may be slow enough, or its bus come up while it runs, that the next request is
    // the one sent to read again: a few requests, until one is answered from memory.)
    b.get("/v1/me", Some(peer.token())).await.expect(200);
    let mut cached = false;
    for _ in 0..5 {
        let hits = b.metric("peerbridge_auth_cache_hits").await;
        b.get("/v1/me", Some(peer.token())).await.expect(200);
        if b.metric("peerbridge_auth_cache_hits").await > hits {
            cached = true;
            break;
        }
    }
    assert!(cached, "replica B never answered the device from memory");
    let forgets = b.metric("peerbridge_auth_cache_forgets").await;

    // Revoked through replica A (this process).
    app.client()
        .delete(
            &format!(
                "/v1/clinics/{clinic}/users/{}/devices/{}",
                peer.session.user_id, peer.session.device_id
            ),
            Some(hp.token()),
        )
        .await
        .expect(200);
    // B forgets when the bus brings the notice (not when its entry ages out: that is not a
    // forget), and then refuses the device.
    let mut waited = 0;
    while b.metric("peerbridge_auth_cache_forgets").await == forgets {
        waited += 1;
        assert!(waited < 300, "replica B never heard of the revocation");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.get("/v1/me", Some(peer.token()))
        .await
        .expect_problem(401, "unauthenticated");
    // B still answers others.
    b.get("/v1/me", Some(hp.token())).await.expect(200);
}
