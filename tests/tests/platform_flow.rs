//! Acceptance 2, end to end over HTTP on SQLite and PostgreSQL: an operator creates a clinic
//! and an HP; the HP logs in with password + TOTP and creates an invite; a phone redeems it,
//! logs in by challenge–response, refreshes, and is revoked.

use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::Role;
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::users::{Device, Me, UserDetail};
use peerbridge_tests::api::device_json;
use peerbridge_tests::{TestApp, backends};
use serde_json::json;

#[tokio::test]
async fn an_hp_enrolls_a_service_user_whose_phone_logs_in_refreshes_and_is_revoked() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();

        // The operator (bootstrapped by the admin CLI) creates a clinic and an HP.
        let operator = app.bootstrap_operator().await;
        assert_eq!(operator.session.role, Role::Operator);
        let clinic = app
            .create_clinic(&operator, "Ullevål infeksjonspoliklinikk")
            .await;
        let hp = app
            .create_staff(&operator, clinic, "hp", "Hanne Sykepleier")
            .await;
        assert_eq!(hp.session.role, Role::Hp);
        assert_eq!(hp.session.clinic_id, Some(clinic));

        // The HP logs in again at a workstation with password + TOTP.
        let workstation = DeviceIdentity::generate();
        let r = c
            .post(
                "/v1/auth/password",
                None,
                json!({
                    "login": hp.login.to_uppercase(),
                    "password": hp.password,
                    "totp_code": app.fresh_totp(&hp.totp_secret),
                    "device": device_json(&workstation, "Clinic workstation"),
                }),
            )
            .await;
        r.expect(200);
        let hp_session: Session = r.parse();
        assert_eq!(hp_session.user_id, hp.session.user_id);
        assert_ne!(
            hp_session.device_id, hp.session.device_id,
            "a new device was registered"
        );

        // A wrong TOTP code is refused even with the right password.
        c.post(
            "/v1/auth/password",
            None,
            json!({
                "login": hp.login, "password": hp.password, "totp_code": "000000",
                "device": device_json(&workstation, "Clinic workstation"),
            }),
        )
        .await
        .expect_problem(401, "invalid_credentials");

        // The HP creates an invite for a service user.
        let invite = c
            .post(
                &format!("/v1/clinics/{clinic}/invites"),
                Some(&hp_session.access_token),
                json!({ "role": "service_user", "display_name": "Kari Nordmann", "phone": "+47 400 00 000" }),
            )
            .await;
        invite.expect(201);
        let invite: peerbridge_openapi::clinics::InviteCreated = invite.parse();
        assert_eq!(invite.code.len(), 19);
        assert!(
            invite
                .qr_payload
                .ends_with(&format!("/join#code={}", invite.code)),
            "{}",
            invite.qr_payload
        );
        assert!(invite.qr_payload.contains(&invite.code));

        // The phone redeems it (typed sloppily) and gets an account bound to the clinic.
        let phone = DeviceIdentity::generate();
        let typed = invite.code.to_lowercase().replace('-', " ");
        let r = c
            .post(
                "/v1/invites/redeem",
                None,
                json!({ "code": typed, "device": device_json(&phone, "Android") }),
            )
            .await;
        r.expect(201);
        let su: Session = r.parse();
        assert_eq!(su.role, Role::ServiceUser);
        assert_eq!(su.clinic_id, Some(clinic));
        let me: Me = c
            .get("/v1/me", Some(&su.access_token))
            .await
            .expect(200)
            .parse();
        assert_eq!(me.user_id, su.user_id);

        // The clinic sees the person's name (decrypted for staff, audited); it is not
        // stored in the clear.
        let detail: UserDetail = c
            .get(
                &format!("/v1/clinics/{clinic}/users/{}", su.user_id),
                Some(&hp_session.access_token),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(detail.display_name.as_deref(), Some("Kari Nordmann"));
        assert_eq!(detail.devices.len(), 1);

        // Challenge–response login with the device key.
        let r = app.device_login(su.device_id, &phone).await;
        r.expect(200);
        let su2: Session = r.parse();
        // A signature from another key does not log in.
        app.device_login(su.device_id, &DeviceIdentity::generate())
            .await
            .expect_problem(401, "invalid_challenge");

        // Refresh rotates the refresh token.
        let r = c
            .post(
                "/v1/auth/refresh",
                None,
                json!({ "refresh_token": su2.refresh_token }),
            )
            .await;
        r.expect(200);
        let su3: Session = r.parse();
        assert_ne!(su3.refresh_token, su2.refresh_token);
        c.get("/v1/me", Some(&su3.access_token)).await.expect(200);

        // The HP revokes the phone: access tokens stop working at once, refresh fails,
        // and the device can no longer log in.
        app.clock.advance(chrono::Duration::seconds(2));
        let r = c
            .delete(
                &format!(
                    "/v1/clinics/{clinic}/users/{}/devices/{}",
                    su.user_id, su.device_id
                ),
                Some(&hp_session.access_token),
            )
            .await;
        r.expect(200);
        assert!(r.parse::<Device>().revoked_at.is_some());
        c.get("/v1/me", Some(&su3.access_token))
            .await
            .expect_problem(401, "unauthenticated");
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": su3.refresh_token }),
        )
        .await
        .expect_problem(401, "refresh_token_invalid");
        app.device_login(su.device_id, &phone)
            .await
            .expect_problem(401, "invalid_challenge");

        // Everything above left an intact audit chain.
        let v = peerbridge_server::audit::verify(&app.state.db)
            .await
            .expect("verify");
        assert!(
            matches!(v, peerbridge_server::audit::Verification::Intact { entries } if entries >= 10),
            "{v:?} on {backend:?}"
        );
    }
}

#[tokio::test]
async fn a_user_adds_a_second_device_and_deactivation_ends_everything() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let operator = app.bootstrap_operator().await;
        let (clinic, hp) = app.clinic_with_hp(&operator, "Haukeland").await;
        let invite = app.create_invite(&hp, clinic, "peer").await;
        let peer = app.redeem(&invite.code).await;
        assert_eq!(peer.session.role, Role::Peer);

        // A second device, added from the first, logs in on its own key.
        let tablet = DeviceIdentity::generate();
        let r = c
            .post(
                "/v1/me/devices",
                Some(peer.token()),
                device_json(&tablet, "Tablet"),
            )
            .await;
        r.expect(201);
        let tablet_dev: Device = r.parse();
        let tablet_session: Session = app
            .device_login(tablet_dev.id, &tablet)
            .await
            .expect(200)
            .parse();
        let devices: Vec<Device> = c
            .get("/v1/me/devices", Some(peer.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(devices.len(), 2);

        // The same key cannot be registered twice.
        c.post(
            "/v1/me/devices",
            Some(peer.token()),
            device_json(&tablet, "Again"),
        )
        .await
        .expect_problem(409, "conflict");

        // The peer leaves the programme.
        app.clock.advance(chrono::Duration::seconds(2));
        let r = c
            .post(
                &format!(
                    "/v1/clinics/{clinic}/users/{}/deactivate",
                    peer.session.user_id
                ),
                Some(hp.token()),
                json!({}),
            )
            .await;
        r.expect(200);
        assert_eq!(r.json()["status"], "deactivated");
        for token in [peer.token(), tablet_session.access_token.as_str()] {
            c.get("/v1/me", Some(token))
                .await
                .expect_problem(401, "unauthenticated");
        }
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": tablet_session.refresh_token }),
        )
        .await
        .expect_problem(401, "refresh_token_invalid");
        // Identifying fields are erased; the account and its audit trail remain.
        let detail: UserDetail = c
            .get(
                &format!("/v1/clinics/{clinic}/users/{}", peer.session.user_id),
                Some(hp.token()),
            )
            .await
            .expect(200)
            .parse();
        assert_eq!(detail.display_name, None);
        assert_eq!(detail.phone, None);
        assert!(detail.devices.iter().all(|d| d.revoked_at.is_some()));
        let db = app.db.connect().await;
        use sea_orm::{ConnectionTrait, Statement};
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'account.deactivated'",
            ))
            .await
            .expect("query")
            .expect("row");
        let n: i64 = row.try_get("", "n").expect("count");
        assert_eq!(n, 1);
    }
}

#[tokio::test]
async fn a_clinic_admin_manages_staff_roles_but_not_service_users() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let operator = app.bootstrap_operator().await;
        let clinic = app.create_clinic(&operator, "St. Olavs").await;
        let admin = app
            .create_staff(&operator, clinic, "clinic_admin", "Anne Admin")
            .await;
        let hp = app.create_staff(&admin, clinic, "hp", "Per Lege").await;
        let r = c
            .put(
                &format!("/v1/clinics/{clinic}/users/{}/role", hp.session.user_id),
                Some(admin.token()),
                json!({ "role": "clinic_admin" }),
            )
            .await;
        r.expect(200);
        assert_eq!(r.json()["role"], "clinic_admin");
        // The promoted account now acts as a clinic admin on its next request.
        let me: Me = c.get("/v1/me", Some(hp.token())).await.expect(200).parse();
        assert_eq!(me.role, Role::ClinicAdmin);
        // HPs cannot change roles; clinic admins cannot create invites (an HP's job).
        let hp2 = app.create_staff(&admin, clinic, "hp", "Kim Lege").await;
        c.put(
            &format!("/v1/clinics/{clinic}/users/{}/role", admin.session.user_id),
            Some(hp2.token()),
            json!({ "role": "hp" }),
        )
        .await
        .expect_problem(403, "forbidden");
        c.post(
            &format!("/v1/clinics/{clinic}/invites"),
            Some(admin.token()),
            json!({ "role": "peer" }),
        )
        .await
        .expect_problem(403, "forbidden");
        // A login name is unique.
        c.post(
            &format!("/v1/clinics/{clinic}/staff"),
            Some(admin.token()),
            json!({ "role": "hp", "login": hp2.login, "display_name": "Dup" }),
        )
        .await
        .expect_problem(409, "conflict");
    }
}
