//! The HP console and the peer's own screens through the SDK, on SQLite and PostgreSQL: an
//! operator lists clinics; a clinic admin creates staff, changes a role, edits escalation
//! settings and crisis resources and reads the consultation report (JSON and CSV); an HP
//! lists and reads users, records and reads needs, reads a peer's profile, lists and revokes
//! invites and deactivates an account; a peer reads their supervision and their debriefs.
//! Each refusal the console can meet arrives as the SDK's typed error and changes nothing.

use peerbridge_mobile::SdkError;
use peerbridge_mobile::api::clinics::{InviteStatus, StaffCreate};
use peerbridge_mobile::api::escalation::{
    ConsultationKind, CrisisResource, CrisisResourceList, Locale,
};
use peerbridge_mobile::api::introductions::Needs;
use peerbridge_mobile::api::users::UserStatus;
use peerbridge_mobile::api::{EnrolleeRole, Role, StaffRole};
use peerbridge_tests::{TestApp, backends};

mod common;

use common::*;

#[tokio::test]
async fn the_hp_console_reads_and_manages_its_clinic_and_a_peer_sees_their_own_supervision() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let op = app.bootstrap_operator().await;
        let (clinic_id, hp_staff) = clinic(&app, &op, "Haukeland", "vest").await;
        let (other_clinic, _) = clinic(&app, &op, "Stavanger", "vest").await;
        let admin_staff = app
            .create_staff(&op, clinic_id, "clinic_admin", "Anne Administrator")
            .await;
        let operator = staff_sdk(&app, &op).await;
        let admin = staff_sdk(&app, &admin_staff).await;
        let hp = staff_sdk(&app, &hp_staff).await;

        // Clinics: the operator sees both; the HP reads its own and not the other.
        let all = operator.client.clinics().await.expect("clinics");
        for id in [clinic_id, other_clinic] {
            assert!(all.iter().any(|c| c.id == id));
        }
        assert_eq!(
            hp.client.clinic(clinic_id).await.expect("clinic").name,
            "Haukeland"
        );
        assert!(matches!(
            hp.client.clinics().await,
            Err(SdkError::Forbidden(_))
        ));
        assert!(matches!(
            hp.client.clinic(other_clinic).await,
            Err(SdkError::Forbidden(_) | SdkError::NotFound(_))
        ));

        // Staff: a clinic admin creates an HP and makes them an admin; a blank name is a
        // typed validation error and creates nobody.
        let before = admin.client.clinic_users(clinic_id).await.expect("users");
        let blank = admin
            .client
            .create_staff(
                clinic_id,
                &StaffCreate {
                    role: StaffRole::Hp,
                    login: "blank@clinic.example".into(),
                    display_name: "   ".into(),
                    phone: None,
                },
            )
            .await;
        assert!(matches!(blank, Err(SdkError::InvalidInput(_))), "{blank:?}");
        assert_eq!(
            admin
                .client
                .clinic_users(clinic_id)
                .await
                .expect("users")
                .len(),
            before.len()
        );
        let created = admin
            .client
            .create_staff(
                clinic_id,
                &StaffCreate {
                    role: StaffRole::Hp,
                    login: format!("nina-{}@clinic.example", uuid::Uuid::new_v4().simple()),
                    display_name: "Nina Ny".into(),
                    phone: None,
                },
            )
            .await
            .expect("staff");
        assert!(!created.setup_code.is_empty());
        let promoted = admin
            .client
            .change_role(clinic_id, created.user_id, StaffRole::ClinicAdmin)
            .await
            .expect("role");
        assert_eq!(promoted.role, Role::ClinicAdmin);
        assert!(matches!(
            hp.client
                .change_role(clinic_id, created.user_id, StaffRole::Hp)
                .await,
            Err(SdkError::Forbidden(_))
        ));

        // Users: the listing has no names; the audited detail has them.
        let su = enroll(
            &app,
            &hp_staff,
            clinic_id,
            "service_user",
            "Solveig Brukersen",
            "+47 911 11 111",
        )
        .await;
        let peer = enroll(
            &app,
            &hp_staff,
            clinic_id,
            "peer",
            "Per Likemann",
            "+47 922 22 222",
        )
        .await;
        let users = hp.client.clinic_users(clinic_id).await.expect("users");
        for u in [su.user_id, peer.user_id, created.user_id] {
            assert!(users.iter().any(|s| s.id == u));
        }
        let detail = hp
            .client
            .clinic_user(clinic_id, su.user_id)
            .await
            .expect("detail");
        assert_eq!(detail.display_name.as_deref(), Some("Solveig Brukersen"));
        assert_eq!(detail.devices.len(), 1);

        // Needs and a peer's profile.
        let needs = Needs {
            languages: vec!["nb".into()],
            region: Some("Vestland".into()),
            accepts_remote: false,
            ..Needs::default()
        };
        hp.client
            .set_needs(clinic_id, su.user_id, &needs)
            .await
            .expect("set needs");
        let read = hp.client.needs(clinic_id, su.user_id).await.expect("needs");
        assert_eq!(read.needs.languages, vec!["nb".to_string()]);
        assert_eq!(read.needs.region.as_deref(), Some("Vestland"));
        assert!(!read.needs.accepts_remote);
        approved(&hp, clinic_id, &peer, profile(&["nb"], &[], false)).await;
        let p = hp
            .client
            .peer_profile(clinic_id, peer.user_id)
            .await
            .expect("profile");
        assert!(p.approved);
        assert_eq!(p.languages, vec!["nb".to_string()]);

        // Invites: listed without codes, revoked, and the revoked code enrolls nobody.
        let invite = hp
            .client
            .create_invite(clinic_id, EnrolleeRole::ServiceUser, None, None)
            .await
            .expect("invite");
        let listed = hp.client.invites(clinic_id).await.expect("invites");
        let row = listed.iter().find(|i| i.id == invite.id).expect("listed");
        assert_eq!(row.status, InviteStatus::Pending);
        let revoked = hp
            .client
            .revoke_invite(clinic_id, invite.id)
            .await
            .expect("revoke");
        assert_eq!(revoked.status, InviteStatus::Revoked);
        let dir = tempfile::tempdir().expect("tempdir");
        let phone = peerbridge_mobile::PeerbridgeClient::open(&app.base, dir.path(), &[9; 32])
            .expect("open");
        assert!(phone.enroll(&invite.code, "Phone").await.is_err());
        assert!(phone.session().expect("session").is_none());

        // Escalation settings and crisis resources.
        let mut settings = hp
            .client
            .escalation_settings(clinic_id)
            .await
            .expect("settings");
        settings.on_duty = vec![hp.user_id];
        settings.urgent_minutes = 20;
        assert!(matches!(
            hp.client
                .set_escalation_settings(clinic_id, &settings)
                .await,
            Err(SdkError::Forbidden(_))
        ));
        let saved = admin
            .client
            .set_escalation_settings(clinic_id, &settings)
            .await
            .expect("put settings");
        assert_eq!(saved.urgent_minutes, 20);
        assert_eq!(
            hp.client
                .escalation_settings(clinic_id)
                .await
                .expect("settings")
                .on_duty,
            vec![hp.user_id]
        );
        let resources = CrisisResourceList {
            locale: Locale::En,
            resources: vec![CrisisResource {
                label: "Emergency (ambulance)".into(),
                phone: "113".into(),
                description: None,
            }],
            check_in_notice: None,
        };
        hp.client
            .set_crisis_resources(clinic_id, &resources)
            .await
            .expect("crisis resources");
        let seen = su
            .client
            .crisis_resources(Locale::En)
            .await
            .expect("crisis resources");
        assert_eq!(seen.resources, resources.resources);
        // With them, the clinic's check-in notice in the reader's language.
        let settings = hp
            .client
            .escalation_settings(clinic_id)
            .await
            .expect("settings");
        assert_eq!(seen.check_in_notice, Some(settings.notice_en));
        let nn = su
            .client
            .crisis_resources(Locale::Nn)
            .await
            .expect("crisis resources");
        assert_eq!(nn.check_in_notice, Some(settings.notice_nn));

        // Supervision and debriefs, as the peer sees them.
        hp.client
            .assign_supervisor(clinic_id, peer.user_id, hp.user_id)
            .await
            .expect("assign");
        let mine = peer.client.my_supervision().await.expect("supervision");
        assert!(mine.iter().any(|a| a.hp_id == hp.user_id));
        let supervised = hp.client.my_supervision().await.expect("supervision");
        assert!(supervised.iter().any(|a| a.peer_id == peer.user_id));
        let d = peer
            .client
            .request_debrief(None, false)
            .await
            .expect("debrief");
        let debriefs = peer.client.my_debriefs().await.expect("debriefs");
        assert_eq!(
            debriefs.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![d.id]
        );

        // The consultation report, as JSON and as CSV.
        let today = chrono::Utc::now().date_naive();
        peer.client
            .log_consultation(today, 45, ConsultationKind::Call)
            .await
            .expect("consultation");
        let report = admin
            .client
            .consultation_report(clinic_id, today, today)
            .await
            .expect("report");
        let row = report
            .rows
            .iter()
            .find(|r| r.peer_id == peer.user_id)
            .expect("peer's row");
        assert_eq!((row.consultations, row.total_minutes, row.call), (1, 45, 1));
        let csv = admin
            .client
            .consultation_report_csv(clinic_id, today, today)
            .await
            .expect("csv");
        assert!(csv.lines().count() >= 2, "{csv}");
        assert!(csv.contains(&peer.user_id.to_string()), "{csv}");
        assert!(matches!(
            admin
                .client
                .consultation_report(clinic_id, today, today - chrono::Days::new(1))
                .await,
            Err(SdkError::InvalidInput(_))
        ));

        // Deactivation ends the service user's access.
        let gone = hp
            .client
            .deactivate_user(clinic_id, su.user_id)
            .await
            .expect("deactivate");
        assert_eq!(gone.status, UserStatus::Deactivated);
        assert!(su.client.me().await.is_err());
    }
}

#[tokio::test]
async fn a_browser_registers_a_web_push_subscription_and_bad_keys_are_refused() {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| {
            c.push_allowed_hosts = Some("push.example.net".into());
        })
        .await;
        let op = app.bootstrap_operator().await;
        let (_, hp_staff) = clinic(&app, &op, "Haukeland", "vest").await;
        let hp = staff_sdk(&app, &hp_staff).await;

        let key = hp.client.vapid_public_key().await.expect("vapid key");
        assert_eq!(key.len(), 87, "base64url of a 65-byte point: {key}");
        assert!(
            key.starts_with('B'),
            "an uncompressed point starts with 0x04"
        );

        // Any valid P-256 point serves as the browser's key here: the server's own.
        let endpoint = "https://push.example.net/wpush/v2/abc";
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        for (url, p256dh, auth) in [
            (endpoint, &key[..86], auth),
            (endpoint, key.as_str(), "BTBZMqHH6r4Tts7J_aSI"),
            ("https://push.evil.example/x", key.as_str(), auth),
        ] {
            let r = hp.client.register_web_push(url, p256dh, auth).await;
            assert!(matches!(r, Err(SdkError::InvalidInput(_))), "{r:?}");
        }
        hp.client
            .register_web_push(endpoint, &key, auth)
            .await
            .expect("subscription");
        // The plain URL form keeps working and replaces it.
        hp.client
            .register_push_endpoint("https://push.example.net/up/x")
            .await
            .expect("unified push");
        hp.client.clear_push_endpoint().await.expect("clear");
    }
}
