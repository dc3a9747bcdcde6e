//! Key rotation as an operator does it: a new JWT signing key (the old `kid` stays a
//! verification key until its tokens expire) and a new field-encryption key (old values stay
//! readable, `reencrypt_fields` moves them, then the old key can go).

use peerbridge_openapi::auth::Session;
use peerbridge_openapi::users::UserDetail;
use peerbridge_server::crypto::keys::{generate_key_b64, public_of_seed};
use peerbridge_tests::{TestApp, backends};

#[tokio::test]
async fn jwt_and_field_keys_rotate_without_logging_anyone_out_or_losing_names() {
    for backend in backends().await {
        let (k1, k2) = (generate_key_b64(), generate_key_b64());
        let (f1, f2, index) = (generate_key_b64(), generate_key_b64(), generate_key_b64());
        let (k1c, f1c, ic) = (k1.clone(), f1.clone(), index.clone());
        let a = TestApp::spawn_with(backend, move |c| {
            c.jwt_signing_kid = Some("k1".into());
            c.jwt_signing_key = Some(k1c);
            c.field_keys = Some(format!("f1:{f1c}"));
            c.index_key = Some(ic);
        })
        .await;
        let op = a.bootstrap_operator().await;
        let (clinic, hp) = a.clinic_with_hp(&op, "Kristiansand").await;
        let su = a
            .redeem(&a.create_invite(&hp, clinic, "service_user").await.code)
            .await;
        let old_token = su.token().to_owned();
        a.shutdown.shutdown().await;

        // Rotation: sign with k2, still accept k1; encrypt with f2, still read f1.
        let (k2c, f1c, f2c, ic) = (k2.clone(), f1.clone(), f2.clone(), index.clone());
        let k1_pub = public_of_seed(&k1).expect("pub");
        let b = a
            .spawn_sibling(move |c| {
                c.jwt_signing_kid = Some("k2".into());
                c.jwt_signing_key = Some(k2c);
                c.jwt_verify_keys = Some(format!("k1:{k1_pub}"));
                c.field_keys = Some(format!("f2:{f2c},f1:{f1c}"));
                c.field_key_active = Some("f2".into());
                c.index_key = Some(ic);
            })
            .await;
        let c = b.client();
        c.get("/v1/me", Some(&old_token)).await.expect(200);
        let fresh: Session = b
            .device_login(su.session.device_id, &su.device)
            .await
            .expect(200)
            .parse();
        let header = jsonwebtoken::decode_header(&fresh.access_token).expect("header");
        assert_eq!(header.kid.as_deref(), Some("k2"));
        let hp_b: Session = b
            .device_login(hp.session.device_id, &hp.device)
            .await
            .expect(200)
            .parse();
        let url = format!("/v1/clinics/{clinic}/users/{}", su.session.user_id);
        let detail: UserDetail = c
            .get(&url, Some(&hp_b.access_token))
            .await
            .expect(200)
            .parse();
        assert_eq!(detail.display_name.as_deref(), Some("Kari Nordmann"));

        let moved = peerbridge_server::accounts::service::reencrypt_fields(&b.state)
            .await
            .expect("reencrypt");
        assert!(
            moved >= 6,
            "names, phones, logins and TOTP secrets moved: {moved}"
        );
        assert_eq!(
            peerbridge_server::accounts::service::reencrypt_fields(&b.state)
                .await
                .expect("again"),
            0,
            "idempotent"
        );
        b.shutdown.shutdown().await;

        // The old keys are gone: old tokens stop, data and logins still work.
        let (k2c, f2c, ic) = (k2.clone(), f2.clone(), index.clone());
        let d = a
            .spawn_sibling(move |c| {
                c.jwt_signing_kid = Some("k2".into());
                c.jwt_signing_key = Some(k2c);
                c.field_keys = Some(format!("f2:{f2c}"));
                c.index_key = Some(ic);
            })
            .await;
        let c = d.client();
        c.get("/v1/me", Some(&old_token))
            .await
            .expect_problem(401, "unauthenticated");
        let detail: UserDetail = c
            .get(&url, Some(&hp_b.access_token))
            .await
            .expect(200)
            .parse();
        assert_eq!(detail.display_name.as_deref(), Some("Kari Nordmann"));
        assert_eq!(detail.phone.as_deref(), Some("+47 400 00 000"));
        let r = c
            .post(
                "/v1/auth/password",
                None,
                serde_json::json!({
                    "login": hp.login, "password": hp.password,
                    "totp_code": d.fresh_totp(&hp.totp_secret),
                    "device": peerbridge_tests::api::device_json(&hp.device, "Workstation"),
                }),
            )
            .await;
        r.expect(200);
    }
}
