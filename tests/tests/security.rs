//! Acceptance 3: forged and stale tokens are refused, refresh-token reuse revokes the family,
//! invites are single-use and expire, brute force gets 429, and clinic A's staff cannot
//! touch clinic B (a matrix over every clinic-scoped endpoint of the API document).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use peerbridge_openapi::auth::Session;
use peerbridge_tests::api::device_json;
use peerbridge_tests::{Backend, TestApp, backends};
use serde_json::{Value, json};

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs arbitrary claims with the server's real signing key.
fn sign_with_server_key(app: &TestApp, kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ed_der(&app.state.keys.jwt_signing_der);
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &key).expect("sign")
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let c = app.client();
    let op = app.bootstrap_operator().await;
    let kid = app.state.keys.jwt_signing_kid.clone();
    let now = app.now_unix();
    let good = json!({
        "iss": "peerbridge", "aud": "peerbridge-api",
        "sub": op.session.user_id, "did": op.session.device_id,
        "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4(),
    });
    // Control: a correctly built token works, so the refusals below are about the defect.
    c.get("/v1/me", Some(&sign_with_server_key(&app, &kid, &good)))
        .await
        .expect(200);

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("someone-else");
    cases.push(("wrong issuer", sign_with_server_key(&app, &kid, &wrong_iss)));
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-api");
    cases.push((
        "wrong audience",
        sign_with_server_key(&app, &kid, &wrong_aud),
    ));
    let mut no_aud = good.clone();
    no_aud.as_object_mut().expect("obj").remove("aud");
    cases.push((
        "missing audience",
        sign_with_server_key(&app, &kid, &no_aud),
    ));
    let mut expired = good.clone();
    expired["exp"] = json!(now - 1);
    cases.push(("expired", sign_with_server_key(&app, &kid, &expired)));
    cases.push((
        "unknown kid",
        sign_with_server_key(&app, "not-a-key", &good),
    ));
    // alg: none, unsigned.
    let none_header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(none_header.to_string().as_bytes()),
            b64(good.to_string().as_bytes())
        ),
    ));
    // HS256 keyed with the server's public key (the classic algorithm confusion).
    let public = app.state.keys.jwt_verifying[&kid].to_bytes();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    cases.push((
        "HS256 with the public key",
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(&public)).expect("hs256"),
    ));
    // Right kid, signed by some other Ed25519 key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let der = other.to_pkcs8_der().expect("der");
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.clone());
    cases.push((
        "foreign key",
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign"),
    ));
    cases.push(("garbage", "not.a.jwt".into()));

    for (what, token) in cases {
        let r = c.get("/v1/me", Some(&token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.code(), "unauthenticated", "{what}");
    }

    // A real session's access token expires with the clock (≤ 15 minutes).
    let token = op.token().to_owned();
    c.get("/v1/me", Some(&token)).await.expect(200);
    assert!(op.session.access_token_expires_at - app.state.now() <= Duration::minutes(15));
    app.clock.advance(Duration::minutes(16));
    c.get("/v1/me", Some(&token))
        .await
        .expect_problem(401, "unauthenticated");
    c.get("/v1/me", None)
        .await
        .expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let first = op.session.refresh_token.clone();
        let second: Session = c
            .post("/v1/auth/refresh", None, json!({ "refresh_token": first }))
            .await
            .expect(200)
            .parse();
        // The stolen, already-spent token is presented again (after the few seconds in
        // which a racing refresh of the same app would still be honoured).
        app.clock.advance(Duration::seconds(30));
        c.post("/v1/auth/refresh", None, json!({ "refresh_token": first }))
            .await
            .expect_problem(401, "refresh_token_reused");
        // The legitimate newer token is now dead too: the family is revoked.
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": second.refresh_token }),
        )
        .await
        .expect_problem(401, "refresh_token_invalid");
        // A different session (another login) of the same device is unaffected.
        let other: Session = app
            .device_login(op.session.device_id, &op.device)
            .await
            .expect(200)
            .parse();
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": other.refresh_token }),
        )
        .await
        .expect(200);
        // Refresh tokens expire.
        let fresh: Session = app
            .device_login(op.session.device_id, &op.device)
            .await
            .expect(200)
            .parse();
        app.clock.advance(Duration::days(31));
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": fresh.refresh_token }),
        )
        .await
        .expect_problem(401, "refresh_token_invalid");
    }
}

#[tokio::test]
async fn an_invite_works_once_and_not_after_it_expires() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (clinic, mut hp) = app.clinic_with_hp(&op, "Sørlandet").await;

        let inv = app.create_invite(&hp, clinic, "service_user").await;
        app.redeem(&inv.code).await;
        let again = peerbridge_mls::DeviceIdentity::generate();
        c.post(
            "/v1/invites/redeem",
            None,
            json!({ "code": inv.code, "device": device_json(&again, "Phone") }),
        )
        .await
        .expect_problem(404, "invite_invalid");

        // Default lifetime 72 h: still good at 71 h, gone after 72 h.
        let a = app.create_invite(&hp, clinic, "peer").await;
        let b = app.create_invite(&hp, clinic, "peer").await;
        app.clock.advance(Duration::hours(71));
        app.redeem(&a.code).await;
        app.clock.advance(Duration::hours(2));
        c.post(
            "/v1/invites/redeem",
            None,
            json!({ "code": b.code, "device": device_json(&again, "Phone") }),
        )
        .await
        .expect_problem(404, "invite_invalid");

        // A revoked invite does not work either, and the listing tells the states apart.
        // (The HP's access token expired during the time travel: log in again.)
        hp.session = app
            .device_login(hp.session.device_id, &hp.device)
            .await
            .expect(200)
            .parse();
        let r = app.create_invite(&hp, clinic, "peer").await;
        c.delete(
            &format!("/v1/clinics/{clinic}/invites/{}", r.id),
            Some(hp.token()),
        )
        .await
        .expect(200);
        c.post(
            "/v1/invites/redeem",
            None,
            json!({ "code": r.code, "device": device_json(&again, "Phone") }),
        )
        .await
        .expect_problem(404, "invite_invalid");
        let list = c
            .get(&format!("/v1/clinics/{clinic}/invites"), Some(hp.token()))
            .await
            .expect(200)
            .json();
        let statuses: Vec<&str> = list
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["status"].as_str().unwrap_or_default())
            .collect();
        for s in ["redeemed", "expired", "revoked"] {
            assert!(statuses.contains(&s), "{statuses:?}");
        }
        assert!(
            !list.to_string().contains(&inv.code),
            "codes are never listed"
        );
    }
}

#[tokio::test]
async fn brute_force_on_password_login_and_code_redemption_gets_429() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth_max_failures_per_account = 5;
        c.auth_max_failures_per_address = 8;
        c.auth_failure_window_secs = 900;
    })
    .await;
    let c = app.client();
    let op = app.bootstrap_operator().await;
    let (_, hp) = app.clinic_with_hp(&op, "Tromsø").await;
    let dev = peerbridge_mls::DeviceIdentity::generate();
    let attempt = |password: String, totp: String| {
        let c = c.clone();
        let login = hp.login.clone();
        let body = json!({
            "login": login, "password": password, "totp_code": totp,
            "device": device_json(&dev, "Laptop"),
        });
        async move { c.post("/v1/auth/password", None, body).await }
    };
    for _ in 0..5 {
        attempt("wrong-password-guess".into(), "123456".into())
            .await
            .expect_problem(401, "invalid_credentials");
    }
    let r = attempt(hp.password.clone(), app.fresh_totp(&hp.totp_secret)).await;
    r.expect_problem(429, "rate_limited");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!(retry > 0 && retry <= 900);
    // After the window the right credentials work again.
    app.clock.advance(Duration::seconds(retry as i64 + 1));
    attempt(hp.password.clone(), app.fresh_totp(&hp.totp_secret))
        .await
        .expect(200);

    // Guessing invite codes from one address.
    for i in 0..8 {
        let r = c
            .post(
                "/v1/invites/redeem",
                None,
                json!({ "code": format!("AAAA-BBBB-CCCC-{i:04}"), "device": device_json(&dev, "x") }),
            )
            .await;
        r.expect_problem(404, "invite_invalid");
    }
    c.post(
        "/v1/invites/redeem",
        None,
        json!({ "code": "AAAA-BBBB-CCCC-DDDD", "device": device_json(&dev, "x") }),
    )
    .await
    .expect_problem(429, "rate_limited");
    // Setup codes from the same address are limited separately but just the same.
    for _ in 0..8 {
        c.post(
            "/v1/staff/setup",
            None,
            json!({ "setup_code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ", "password": "long enough password" }),
        )
        .await
        .expect_problem(404, "setup_code_invalid");
    }
    c.post(
        "/v1/staff/setup",
        None,
        json!({ "setup_code": "ZZZZ-ZZZZ-ZZZZ-ZZZY", "password": "long enough password" }),
    )
    .await
    .expect_problem(429, "rate_limited");
}

/// Every clinic-scoped path in the API document, with clinic A's staff aiming at clinic B.
#[tokio::test]
async fn staff_of_clinic_a_cannot_reach_any_clinic_b_resource() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (a, hp_a) = app.clinic_with_hp(&op, "Clinic A").await;
        let admin_a = app.create_staff(&op, a, "clinic_admin", "Admin A").await;
        let su_a = app
            .redeem(&app.create_invite(&hp_a, a, "service_user").await.code)
            .await;
        let (b, hp_b) = app.clinic_with_hp(&op, "Clinic B").await;
        let su_b = app
            .redeem(&app.create_invite(&hp_b, b, "service_user").await.code)
            .await;
        let inv_b = app.create_invite(&hp_b, b, "peer").await;
        let peer_b = app
            .redeem(&app.create_invite(&hp_b, b, "peer").await.code)
            .await;
        let pb = peer_b.session.user_id;
        c.post(
            &format!("/v1/clinics/{b}/peers/{pb}/supervisors"),
            Some(hp_b.token()),
            json!({ "hp_id": hp_b.session.user_id }),
        )
        .await
        .expect(201);
        let (ub, db_, hpb, ib) = (
            su_b.session.user_id,
            su_b.session.device_id,
            hp_b.session.user_id,
            inv_b.id,
        );
        // An approved peer, an introduction and a boundary report in clinic B.
        c.put(
            &format!("/v1/clinics/{b}/peers/{pb}/profile"),
            Some(hp_b.token()),
            json!({ "languages": ["nb"] }),
        )
        .await
        .expect(200);
        c.post(
            &format!("/v1/clinics/{b}/peers/{pb}/approval"),
            Some(hp_b.token()),
            json!({ "trained_on": "2026-01-05" }),
        )
        .await
        .expect(200);
        let intro_b: Value = c
            .post(
                &format!("/v1/clinics/{b}/introductions"),
                Some(hp_b.token()),
                json!({ "client_id": uuid::Uuid::new_v4(), "service_user_id": ub, "peer_id": pb,
                        "blurb_for_service_user": "A peer.", "blurb_for_peer": "A user." }),
            )
            .await
            .expect(201)
            .json();
        let xb = intro_b["id"].as_str().expect("id").to_owned();
        let rb = c
            .post(
                &format!("/v1/introductions/{xb}/reports"),
                Some(peer_b.token()),
                json!({ "client_id": uuid::Uuid::new_v4(), "category": "other" }),
            )
            .await
            .expect(201)
            .json()["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let intro_body = json!({ "client_id": uuid::Uuid::new_v4(), "service_user_id": ub,
            "peer_id": pb, "blurb_for_service_user": "x", "blurb_for_peer": "y" });
        let rematch_body = json!({ "client_id": uuid::Uuid::new_v4(), "peer_id": pb,
            "blurb_for_service_user": "x", "blurb_for_peer": "y" });

        // (method, path, body): each aimed at B, either through B's clinic id or through
        // A's clinic id with B's resource ids.
        let matrix: Vec<(&str, String, Value)> = vec![
            (
                "GET",
                format!("/v1/clinics/{b}/escalation-settings"),
                Value::Null,
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/escalation-settings"),
                json!({"on_duty": [], "next_responders": [], "imminent_minutes": 1,
                       "urgent_minutes": 1, "concerning_minutes": 1, "routine_hour": 1,
                       "notice_nb": "x", "notice_nn": "x", "notice_en": "x"}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/crisis-resources"),
                json!({"locale": "nb", "resources": [{"label": "x", "phone": "1"}]}),
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/consultation-report?from=2026-01-01&to=2026-02-01"),
                Value::Null,
            ),
            ("GET", format!("/v1/clinics/{b}/topics"), Value::Null),
            (
                "PUT",
                format!("/v1/clinics/{b}/topics"),
                json!({"topics":[{"key":"x","label":"X"}]}),
            ),
            ("GET", format!("/v1/clinics/{b}/peers"), Value::Null),
            (
                "GET",
                format!("/v1/clinics/{b}/peers/{pb}/profile"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/peers/{pb}/profile"),
                Value::Null,
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/peers/{pb}/profile"),
                json!({"languages":["en"]}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{a}/peers/{pb}/profile"),
                json!({"languages":["en"]}),
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/peers/{pb}/approval"),
                json!({"trained_on":"2026-01-01"}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/peers/{pb}/approval"),
                json!({"trained_on":"2026-01-01"}),
            ),
            (
                "DELETE",
                format!("/v1/clinics/{b}/peers/{pb}/approval"),
                Value::Null,
            ),
            (
                "DELETE",
                format!("/v1/clinics/{a}/peers/{pb}/approval"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/users/{ub}/needs"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/users/{ub}/needs"),
                Value::Null,
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/users/{ub}/needs"),
                json!({"languages":["en"]}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{a}/users/{ub}/needs"),
                json!({"languages":["en"]}),
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/users/{ub}/suggestions"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/users/{ub}/suggestions"),
                Value::Null,
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions"),
                intro_body.clone(),
            ),
            ("GET", format!("/v1/clinics/{b}/introductions"), Value::Null),
            (
                "GET",
                format!("/v1/clinics/{b}/introductions/{xb}"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/introductions/{xb}"),
                Value::Null,
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions/{xb}/pause"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/introductions/{xb}/pause"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions/{xb}/resume"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/introductions/{xb}/resume"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions/{xb}/close"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/introductions/{xb}/close"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions/{xb}/rematch"),
                rematch_body.clone(),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/introductions/{xb}/rematch"),
                rematch_body.clone(),
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/introductions/{xb}/reports"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/introductions/{xb}/reports"),
                Value::Null,
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/introductions/{xb}/reports/{rb}/handled"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/introductions/{xb}/reports/{rb}/handled"),
                json!({}),
            ),
            ("GET", format!("/v1/clinics/{b}"), Value::Null),
            (
                "POST",
                format!("/v1/clinics/{b}/staff"),
                json!({"role":"hp","login":"x@y.z","display_name":"X"}),
            ),
            ("GET", format!("/v1/clinics/{b}/users"), Value::Null),
            ("GET", format!("/v1/clinics/{b}/users/{ub}"), Value::Null),
            ("GET", format!("/v1/clinics/{a}/users/{ub}"), Value::Null),
            (
                "POST",
                format!("/v1/clinics/{b}/users/{ub}/deactivate"),
                json!({}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/users/{ub}/deactivate"),
                json!({}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/users/{hpb}/role"),
                json!({"role":"clinic_admin"}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{a}/users/{hpb}/role"),
                json!({"role":"clinic_admin"}),
            ),
            (
                "DELETE",
                format!("/v1/clinics/{b}/users/{ub}/devices/{db_}"),
                Value::Null,
            ),
            (
                "DELETE",
                format!("/v1/clinics/{a}/users/{ub}/devices/{db_}"),
                Value::Null,
            ),
            (
                "POST",
                format!("/v1/clinics/{b}/invites"),
                json!({"role":"peer"}),
            ),
            ("GET", format!("/v1/clinics/{b}/invites"), Value::Null),
            (
                "DELETE",
                format!("/v1/clinics/{b}/invites/{ib}"),
                Value::Null,
            ),
            (
                "DELETE",
                format!("/v1/clinics/{a}/invites/{ib}"),
                Value::Null,
            ),
            ("DELETE", format!("/v1/me/devices/{db_}"), Value::Null),
            (
                "POST",
                format!("/v1/clinics/{b}/peers/{pb}/supervisors"),
                json!({"hp_id": hpb}),
            ),
            (
                "POST",
                format!("/v1/clinics/{a}/peers/{pb}/supervisors"),
                json!({"hp_id": hpb}),
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/peers/{pb}/supervisors"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{a}/peers/{pb}/supervisors"),
                Value::Null,
            ),
            (
                "DELETE",
                format!("/v1/clinics/{b}/peers/{pb}/supervisors/{hpb}"),
                Value::Null,
            ),
            (
                "DELETE",
                format!("/v1/clinics/{a}/peers/{pb}/supervisors/{hpb}"),
                Value::Null,
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/escalation-authority"),
                Value::Null,
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/escalation-authority"),
                json!({"public_key": "A".repeat(43)}),
            ),
            (
                "GET",
                format!("/v1/clinics/{b}/escalation-keys"),
                Value::Null,
            ),
            (
                "PUT",
                format!("/v1/clinics/{b}/escalation-keys/{db_}/certificate"),
                json!({"public_key": "A".repeat(43), "signature": "A".repeat(86)}),
            ),
            (
                "PUT",
                format!("/v1/clinics/{a}/escalation-keys/{db_}/certificate"),
                json!({"public_key": "A".repeat(43), "signature": "A".repeat(86)}),
            ),
        ];

        // The matrix must cover every clinic-scoped operation the API documents.
        let spec: Value =
            serde_json::from_str(&peerbridge_server::docs::openapi_json()).expect("spec");
        for (path, item) in spec["paths"].as_object().expect("paths") {
            if !path.contains("{clinic_id}") {
                continue;
            }
            for method in item.as_object().expect("item").keys() {
                let m = method.to_uppercase();
                let covered = matrix
                    .iter()
                    .any(|(mm, p, _)| *mm == m && shape(p) == shape(path));
                assert!(
                    covered,
                    "{m} {path} is missing from the cross-clinic matrix"
                );
            }
        }

        for actor in [&hp_a.session, &admin_a.session, &su_a.session] {
            for (method, path, body) in &matrix {
                let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let body = (!body.is_null()).then_some(body);
                let r = c.request(m, path, Some(&actor.access_token), body).await;
                assert!(
                    r.status == 403 || r.status == 404,
                    "{:?} {method} {path} gave {}: {}",
                    actor.role,
                    r.status,
                    r.text
                );
                let code = r.code();
                assert!(code == "forbidden" || code == "not_found", "{code}");
            }
        }

        // Clinic B is untouched.
        c.get("/v1/me", Some(su_b.token())).await.expect(200);
        let hp_b_me = c.get("/v1/me", Some(hp_b.token())).await.expect(200).json();
        assert_eq!(hp_b_me["role"], "hp");
        let invites = c
            .get(&format!("/v1/clinics/{b}/invites"), Some(hp_b.token()))
            .await
            .expect(200)
            .json();
        assert!(invites.to_string().contains("pending"));
        let users = c
            .get(&format!("/v1/clinics/{b}/users"), Some(hp_b.token()))
            .await
            .expect(200)
            .json();
        assert_eq!(
            users.as_array().map(|a| a.len()),
            Some(3),
            "HP B, SU B and peer B only"
        );
        let sup = c
            .get(
                &format!("/v1/clinics/{b}/peers/{pb}/supervisors"),
                Some(hp_b.token()),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(
            sup.as_array().map(|a| a.len()),
            Some(1),
            "assignment untouched"
        );
        let intro = c
            .get(
                &format!("/v1/clinics/{b}/introductions/{xb}"),
                Some(hp_b.token()),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(intro["state"], "proposed", "introduction untouched");
        assert_eq!(intro["open_reports"], 1, "report untouched");
        let profile = c
            .get(
                &format!("/v1/clinics/{b}/peers/{pb}/profile"),
                Some(hp_b.token()),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(profile["approved"], true);
        let settings = c
            .get(
                &format!("/v1/clinics/{b}/escalation-settings"),
                Some(hp_b.token()),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(
            settings["imminent_minutes"], 5,
            "escalation settings untouched"
        );
        let resources = c
            .get("/v1/crisis-resources", Some(su_b.token()))
            .await
            .expect(200)
            .json();
        assert_eq!(
            resources["resources"][0]["phone"], "113",
            "crisis resources untouched"
        );
        assert_eq!(profile["languages"], json!(["nb"]));
    }
}

/// `/v1/clinics/{x}/users/{y}` → `/v1/clinics/*/users/*`.
fn shape(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') || uuid::Uuid::parse_str(seg).is_ok() {
                "*"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
