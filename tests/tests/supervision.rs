//! Supervision assignments: clinic staff assign HPs of the clinic to supervise a peer; the
//! peer and the HP each see the assignment; wrong roles and other clinics are refused.

use peerbridge_openapi::supervision::SupervisorAssignment;
use peerbridge_tests::{TestApp, backends};
use serde_json::json;

#[tokio::test]
async fn staff_assign_supervisors_who_then_see_their_peers() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&op, "Fredrikstad").await;
        let hp2 = app.create_staff(&op, clinic, "hp", "Siri Sykepleier").await;
        let admin = app
            .create_staff(&op, clinic, "clinic_admin", "Arne Admin")
            .await;
        let peer = app
            .redeem(&app.create_invite(&hp, clinic, "peer").await.code)
            .await;
        let su = app
            .redeem(&app.create_invite(&hp, clinic, "service_user").await.code)
            .await;
        let url = format!(
            "/v1/clinics/{clinic}/peers/{}/supervisors",
            peer.session.user_id
        );

        let a: SupervisorAssignment = c
            .post(
                &url,
                Some(hp.token()),
                json!({ "hp_id": hp.session.user_id }),
            )
            .await
            .expect(201)
            .parse();
        assert_eq!(a.assigned_by, hp.session.user_id);
        c.post(
            &url,
            Some(admin.token()),
            json!({ "hp_id": hp2.session.user_id }),
        )
        .await
        .expect(201);
        c.post(
            &url,
            Some(admin.token()),
            json!({ "hp_id": hp2.session.user_id }),
        )
        .await
        .expect_problem(409, "conflict");
        // Only HPs supervise, and only peers are supervised.
        c.post(
            &url,
            Some(hp.token()),
            json!({ "hp_id": admin.session.user_id }),
        )
        .await
        .expect_problem(404, "not_found");
        c.post(
            &format!(
                "/v1/clinics/{clinic}/peers/{}/supervisors",
                su.session.user_id
            ),
            Some(hp.token()),
            json!({ "hp_id": hp.session.user_id }),
        )
        .await
        .expect_problem(404, "not_found");
        // A peer cannot assign their own supervisors.
        c.post(
            &url,
            Some(peer.token()),
            json!({ "hp_id": hp.session.user_id }),
        )
        .await
        .expect_problem(403, "forbidden");

        let list: Vec<SupervisorAssignment> =
            c.get(&url, Some(hp.token())).await.expect(200).parse();
        assert_eq!(list.len(), 2);
        let peers_view: Vec<SupervisorAssignment> = c
            .get("/v1/me/supervision", Some(peer.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(peers_view.len(), 2);
        let hp2_view: Vec<SupervisorAssignment> = c
            .get("/v1/me/supervision", Some(hp2.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(hp2_view.len(), 1);
        assert_eq!(hp2_view[0].peer_id, peer.session.user_id);

        c.delete(
            &format!("{url}/{}", hp2.session.user_id),
            Some(admin.token()),
        )
        .await
        .expect(204);
        c.delete(
            &format!("{url}/{}", hp2.session.user_id),
            Some(admin.token()),
        )
        .await
        .expect_problem(404, "not_found");
        let hp2_view: Vec<SupervisorAssignment> = c
            .get("/v1/me/supervision", Some(hp2.token()))
            .await
            .expect(200)
            .parse();
        assert!(hp2_view.is_empty());
    }
}
