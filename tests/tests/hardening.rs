//! Findings of a hostile black-box run, each pinned by the test that failed before its fix:
//! request-controlled metric labels, lockout blast radius, stalled request bodies, access
//! tokens outliving their session or their configured lifetime, concurrent refreshes, and
//! push endpoints off the operator's allow-list.

use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::signed::login_challenge_message;
use peerbridge_tests::{Backend, TestApp, backends};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sign_with_server_key(app: &TestApp, claims: &Value) -> String {
    let key = EncodingKey::from_ed_der(&app.state.keys.jwt_signing_der);
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(app.state.keys.jwt_signing_kid.clone());
    jsonwebtoken::encode(&h, claims, &key).expect("sign")
}

async fn metrics(app: &TestApp) -> String {
    let r = app.client().get("/metrics", None).await;
    assert_eq!(r.status, 200);
    r.text
}

#[tokio::test]
async fn unknown_http_methods_fold_into_one_metrics_label() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    // Control: a known method is labelled as itself.
    http.get(format!("{}/livez", app.base))
        .send()
        .await
        .expect("get");
    let before = metrics(&app).await;
    assert!(
        before.contains("method=\"GET\""),
        "the scrape labels methods (control):\n{before}"
    );
    for i in 0..40 {
        let m = reqwest::Method::from_bytes(format!("XYZ{i}").as_bytes()).expect("method");
        let _ = http.request(m, format!("{}/livez", app.base)).send().await;
    }
    let once = metrics(&app).await;
    assert!(
        !once.contains("XYZ"),
        "a request-chosen method became a label"
    );
    assert!(once.contains("method=\"other\""), "{once}");
    for i in 40..80 {
        let m = reqwest::Method::from_bytes(format!("XYZ{i}").as_bytes()).expect("method");
        let _ = http.request(m, format!("{}/livez", app.base)).send().await;
    }
    let twice = metrics(&app).await;
    let series = |s: &str| s.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        series(&once),
        series(&twice),
        "forty more unknown methods added series"
    );
}

#[tokio::test]
async fn another_callers_failures_do_not_lock_out_a_valid_credential_holder() {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| {
            c.auth_max_failures_per_account = 3;
            c.auth_max_failures_per_address = 4;
        })
        .await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (_, hp) = app.clinic_with_hp(&op, "Bodø").await;

        // Junk refresh tokens from the shared address (a clinic NAT) reach the limit …
        for i in 0..4 {
            c.post(
                "/v1/auth/refresh",
                None,
                json!({ "refresh_token": format!("pbr_junk{i}") }),
            )
            .await
            .expect_problem(401, "refresh_token_invalid");
        }
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": "pbr_more" }),
        )
        .await
        .expect_problem(429, "rate_limited");
        // … and a real holder behind the same address still refreshes.
        let refreshed: Session = c
            .post(
                "/v1/auth/refresh",
                None,
                json!({ "refresh_token": op.session.refresh_token }),
            )
            .await
            .expect(200)
            .parse();

        // Someone who knows the HP's device id signs garbage until both counters are full.
        let ch: peerbridge_openapi::auth::Challenge = c
            .post(
                "/v1/auth/challenge",
                None,
                json!({ "device_id": hp.session.device_id }),
            )
            .await
            .expect(200)
            .parse();
        let junk = URL_SAFE_NO_PAD.encode([7u8; 64]);
        for _ in 0..3 {
            c.post(
                "/v1/auth/device",
                None,
                json!({ "challenge_id": ch.challenge_id, "device_id": hp.session.device_id, "signature": junk }),
            )
            .await
            .expect_problem(401, "invalid_challenge");
        }
        c.post(
            "/v1/auth/device",
            None,
            json!({ "challenge_id": ch.challenge_id, "device_id": hp.session.device_id, "signature": junk }),
        )
        .await
        .expect_problem(429, "rate_limited");
        // The device that holds the key still logs in.
        let ch: peerbridge_openapi::auth::Challenge = c
            .post(
                "/v1/auth/challenge",
                None,
                json!({ "device_id": hp.session.device_id }),
            )
            .await
            .expect(200)
            .parse();
        let sig = hp
            .device
            .sign_b64(&login_challenge_message(ch.challenge_id, &ch.nonce));
        c.post(
            "/v1/auth/device",
            None,
            json!({ "challenge_id": ch.challenge_id, "device_id": hp.session.device_id, "signature": sig }),
        )
        .await
        .expect(200);

        // Password guesses against the HP's login lock out unknown devices, not the HP's own.
        let stranger = peerbridge_mls::DeviceIdentity::generate();
        for _ in 0..3 {
            c.post(
                "/v1/auth/password",
                None,
                json!({ "login": hp.login, "password": "guess-guess-guess", "totp_code": "123456",
                        "device": peerbridge_tests::api::device_json(&stranger, "Laptop") }),
            )
            .await
            .expect_problem(401, "invalid_credentials");
        }
        c.post(
            "/v1/auth/password",
            None,
            json!({ "login": hp.login, "password": hp.password, "totp_code": app.fresh_totp(&hp.totp_secret),
                    "device": peerbridge_tests::api::device_json(&stranger, "Laptop") }),
        )
        .await
        .expect_problem(429, "rate_limited");
        app.clock.advance(Duration::seconds(31));
        c.post(
            "/v1/auth/password",
            None,
            json!({ "login": hp.login, "password": hp.password, "totp_code": app.fresh_totp(&hp.totp_secret),
                    "device": peerbridge_tests::api::device_json(&hp.device, "Workstation") }),
        )
        .await
        .expect(200);
        // Wrong credentials from the known device are still wrong.
        c.post(
            "/v1/auth/password",
            None,
            json!({ "login": hp.login, "password": "guess-guess-guess", "totp_code": "123456",
                    "device": peerbridge_tests::api::device_json(&hp.device, "Workstation") }),
        )
        .await
        .expect_problem(401, "invalid_credentials");
        drop(refreshed);
    }
}

/// Sends the head of a request announcing more body than it sends, then waits.
async fn stalled_body(base: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(
        b"POST /v1/auth/refresh HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1010\r\n\r\n{\"refresh_",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    // Bounded so a regression fails instead of hanging; the server's limit is 1 s here.
    let _ = tokio::time::timeout(StdDuration::from_secs(20), sock.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_off_with_a_problem() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.request_body_timeout_secs = 1;
    })
    .await;
    // Control: the same request sent whole is answered normally.
    app.client()
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": "pbr_x" }),
        )
        .await
        .expect_problem(401, "refresh_token_invalid");
    let answer = stalled_body(&app.base).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body gets 408: {answer:?}"
    );
    assert!(answer.contains("application/problem+json"), "{answer}");
}

#[tokio::test]
async fn access_tokens_end_with_their_session_and_never_outlive_the_configured_lifetime() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let now = app.now_unix();
        let claims = |iat: i64, exp: i64| {
            json!({
                "iss": "peerbridge", "aud": "peerbridge-api",
                "sub": op.session.user_id, "did": op.session.device_id,
                "iat": iat, "exp": exp, "jti": uuid::Uuid::new_v4(),
            })
        };
        // Control: a token shaped like the server's own works.
        c.get(
            "/v1/me",
            Some(&sign_with_server_key(&app, &claims(now, now + 300))),
        )
        .await
        .expect(200);
        // Signed with the real key, valid until 2500: longer than any session may live.
        c.get(
            "/v1/me",
            Some(&sign_with_server_key(&app, &claims(now, 16_725_225_600))),
        )
        .await
        .expect_problem(401, "unauthenticated");
        // Not valid before an hour from now.
        let mut early = claims(now, now + 300);
        early["nbf"] = json!(now + 3600);
        c.get("/v1/me", Some(&sign_with_server_key(&app, &early)))
            .await
            .expect_problem(401, "unauthenticated");

        // Logout ends the access token too, not only the refresh token.
        let s: Session = app
            .device_login(op.session.device_id, &op.device)
            .await
            .expect(200)
            .parse();
        c.get("/v1/me", Some(&s.access_token)).await.expect(200);
        c.post(
            "/v1/auth/logout",
            Some(&s.access_token),
            json!({ "refresh_token": s.refresh_token }),
        )
        .await
        .expect(204);
        c.get("/v1/me", Some(&s.access_token))
            .await
            .expect_problem(401, "unauthenticated");

        // A family revoked for reuse takes its access tokens with it.
        app.clock.advance(Duration::seconds(2));
        let s: Session = app
            .device_login(op.session.device_id, &op.device)
            .await
            .expect(200)
            .parse();
        let next: Session = c
            .post(
                "/v1/auth/refresh",
                None,
                json!({ "refresh_token": s.refresh_token }),
            )
            .await
            .expect(200)
            .parse();
        c.get("/v1/me", Some(&next.access_token)).await.expect(200);
        app.clock.advance(Duration::minutes(2));
        c.post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": s.refresh_token }),
        )
        .await
        .expect_problem(401, "refresh_token_reused");
        c.get("/v1/me", Some(&next.access_token))
            .await
            .expect_problem(401, "unauthenticated");
        // A new login right afterwards works, even in the same instant of the test clock:
        // a session issued after a revocation outranks it.
        let again: Session = app
            .device_login(op.session.device_id, &op.device)
            .await
            .expect(200)
            .parse();
        c.get("/v1/me", Some(&again.access_token)).await.expect(200);
    }
}

#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_both_succeed() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        for round in 0..4 {
            let s: Session = app
                .device_login(op.session.device_id, &op.device)
                .await
                .expect(200)
                .parse();
            let body = json!({ "refresh_token": s.refresh_token });
            let (a, b) = tokio::join!(
                c.post("/v1/auth/refresh", None, body.clone()),
                c.post("/v1/auth/refresh", None, body.clone()),
            );
            a.expect(200);
            b.expect(200);
            // Both new sessions keep working: neither was taken for a thief.
            for r in [a, b] {
                let next: Session = r.parse();
                c.get("/v1/me", Some(&next.access_token)).await.expect(200);
                c.post(
                    "/v1/auth/refresh",
                    None,
                    json!({ "refresh_token": next.refresh_token }),
                )
                .await
                .expect(200);
            }
            // Past the grace window the same token is a replay again.
            app.clock.advance(Duration::minutes(1));
            c.post("/v1/auth/refresh", None, body)
                .await
                .expect_problem(401, "refresh_token_reused");
            app.clock.advance(Duration::seconds(2 + round));
        }
    }
}

#[tokio::test]
async fn push_endpoints_must_be_https_on_the_allowed_port() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.push_allowed_hosts = Some("push.example.org, gw.example.net:8443".into());
    })
    .await;
    let op = app.bootstrap_operator().await;
    let c = app.client();
    let put = |url: &str| {
        let c = c.clone();
        let token = op.token().to_owned();
        let url = url.to_owned();
        async move {
            c.put("/v1/me/push-endpoint", Some(&token), json!({ "url": url }))
                .await
        }
    };
    put("https://push.example.org/up/1").await.expect(204);
    put("https://gw.example.net:8443/up/1").await.expect(204);
    for bad in [
        "http://push.example.org/up/1",
        "https://push.example.org:8443/up/1",
        "https://push.example.org:444/up/1",
        "http://gw.example.net:8443/up/1",
        "https://gw.example.net/up/1",
        "https://user@push.example.org/up/1",
    ] {
        put(bad).await.expect_problem(422, "validation_failed");
    }
}

#[tokio::test]
async fn docs_cannot_be_framed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // `/docs` without the slash leads to the docs (it was a 404).
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/docs/")
    );
    for path in ["/docs/", "/openapi.json", "/livez"] {
        let r = app.client().get(path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.headers
                .get("x-frame-options")
                .and_then(|v| v.to_str().ok()),
            Some("DENY"),
            "{path}"
        );
        let csp = r
            .headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

#[tokio::test]
async fn a_whole_number_written_as_a_float_is_an_integer_and_type_errors_name_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let c = app.client();
    let op = app.bootstrap_operator().await;
    let (clinic, hp) = app.clinic_with_hp(&op, "Tromsø").await;
    let path = format!("/v1/clinics/{clinic}/invites");
    // JSON Schema's integer includes 35.0; serde alone refused it.
    let invite = c
        .post(
            &path,
            Some(hp.token()),
            json!({ "role": "peer", "expires_in_hours": 35.0 }),
        )
        .await
        .expect(201)
        .json();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(invite["expires_at"].clone()).expect("expires_at");
    let hours = (expires.timestamp() - app.now_unix()) as f64 / 3600.0;
    assert!((34.9..=35.1).contains(&hours), "{hours}");
    // A fraction is still not an integer; the error names the field and not the value.
    let r = c
        .post(
            &path,
            Some(hp.token()),
            json!({ "role": "peer", "expires_in_hours": 35.5 }),
        )
        .await;
    r.expect_problem(400, "malformed_body");
    let p = r.json();
    assert_eq!(p["field"], "expires_in_hours");
    assert!(
        !p["detail"].as_str().unwrap_or_default().contains("35.5"),
        "{p}"
    );
}

#[tokio::test]
async fn an_operator_clears_a_lockout_and_the_holder_signs_in_again() {
    for backend in backends().await {
        let app = TestApp::spawn_with(backend, |c| {
            c.auth_max_failures_per_account = 3;
        })
        .await;
        let c = app.client();
        let op = app.bootstrap_operator().await;
        let (_, hp) = app.clinic_with_hp(&op, "Hamar").await;
        let attempt = |password: String, totp: String| {
            let c = c.clone();
            let body = json!({
                "login": hp.login,
                "password": password,
                "totp_code": totp,
                "device": peerbridge_tests::api::device_json(
                    &peerbridge_mls::DeviceIdentity::generate(),
                    "Spare PC"
                ),
            });
            async move { c.post("/v1/auth/password", None, body).await }
        };
        for _ in 0..3 {
            attempt("wrong password, long".into(), "000000".into())
                .await
                .expect_problem(401, "invalid_credentials");
        }
        // Locked: even the right password on a new device waits.
        attempt(hp.password.clone(), app.fresh_totp(&hp.totp_secret))
            .await
            .expect_problem(429, "rate_limited");
        // The operator's unlock (what `peerbridge admin unlock --login` runs) clears it.
        let cleared =
            peerbridge_server::auth::limits::unlock(&app.state, &[hp.login.to_lowercase()], None)
                .await
                .expect("unlock");
        assert!(cleared >= 1, "{cleared}");
        attempt(hp.password.clone(), app.fresh_totp(&hp.totp_secret))
            .await
            .expect(200);
    }
}
