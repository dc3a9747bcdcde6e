//! Offline devices get a content-free wake-up at their registered push endpoint (a local
//! HTTP receiver here); only operator-allowed gateways can be registered. A browser's Web
//! Push subscription gets RFC 8291-encrypted, VAPID-signed wake-ups, checked here with a
//! receiver written from the RFCs (not the server's module).

use std::sync::{Arc, Mutex};

use peerbridge_tests::mls_device::Stream;
use peerbridge_tests::{Backend, TestApp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A minimal push gateway: records (path, body) of every POST and answers 201.
async fn gateway() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    peerbridge_tests::gateway::start(0).await
}

#[tokio::test]
async fn an_offline_device_is_woken_without_content_and_only_allowed_gateways_are_used() {
    let (port, seen) = gateway().await;
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.push_allowed_hosts = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let mut s = app.supervision_pair().await;
    let c = app.client();
    c.put(
        "/v1/me/push-endpoint",
        Some(s.hp.token()),
        json!({ "url": "https://push.evil.example/x" }),
    )
    .await
    .expect_problem(422, "validation_failed");
    c.put(
        "/v1/me/push-endpoint",
        Some(s.hp.token()),
        json!({ "url": format!("http://127.0.0.1:{}/x", port + 1) }),
    )
    .await
    .expect_problem(422, "validation_failed");
    c.put(
        "/v1/me/push-endpoint",
        Some(s.hp.token()),
        json!({ "url": format!("http://127.0.0.1:{port}/up/hp-device") }),
    )
    .await
    .expect(204);

    // The HP has no stream open: the peer's message wakes it.
    s.p.send_text(
        s.conv.id,
        &s.conv.group_id,
        "kan vi snakkes i kveld?",
        Uuid::new_v4(),
    )
    .await
    .expect(201);
    let mut wake = None;
    for _ in 0..100 {
        if let Some(w) = seen.lock().expect("lock").first().cloned() {
            wake = Some(w);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (path, body) = wake.expect("a wake-up reached the gateway");
    assert_eq!(path, "/up/hp-device");
    assert_eq!(body, peerbridge_server::notify::push::WAKE_BODY);
    for leak in [
        s.conv.id.to_string(),
        s.conv.group_id.clone(),
        s.peer.session.user_id.to_string(),
        "snakkes".into(),
    ] {
        assert!(
            !body.contains(&leak),
            "the wake-up carries nothing identifying"
        );
    }
    // Woken, the device connects and reads everything from its cursor.
    let mut ws = Stream::connect(&app.base, s.hp.token()).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");
    assert_eq!(
        ws.until("message").await["conversation_id"],
        s.conv.id.to_string()
    );
    let (texts, _) = s.h.read(s.conv.id, s.h_start).await;
    assert_eq!(texts, vec!["kan vi snakkes i kveld?".to_string()]);

    // Clearing the endpoint stops wake-ups.
    c.delete("/v1/me/push-endpoint", Some(s.hp.token()))
        .await
        .expect(204);
}

/// One request a push service received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

/// A minimal Web Push service: records every POST with its headers and raw body, answers
/// 201.
async fn push_service() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..split]).to_string();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or_default()
                        .to_owned();
                    let headers: std::collections::HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() < split + 4 + len {
                        continue;
                    }
                    let body = buf[split + 4..split + 4 + len].to_vec();
                    store.lock().expect("lock").push(Received {
                        path,
                        headers,
                        body,
                    });
                    let _ = sock
                        .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (port, seen)
}

/// The browser's side of a subscription: its ECDH key and auth secret.
struct UserAgent {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

impl UserAgent {
    fn new() -> UserAgent {
        let mut auth = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut auth);
        UserAgent {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth,
        }
    }

    fn public(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        self.secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// RFC 8291 §3.4 + RFC 8188 §2, as a user agent decrypts: header, key derivation, one
    /// record whose padding ends in the last-record delimiter 0x02.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit};
        use hkdf::Hkdf;
        use sha2::Sha256;
        assert!(body.len() > 21, "a header");
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().expect("rs"));
        let idlen = body[20] as usize;
        assert_eq!(
            idlen, 65,
            "the key id is the sender's uncompressed public key"
        );
        let as_public = &body[21..21 + idlen];
        let record = &body[21 + idlen..];
        assert!(record.len() <= rs as usize, "one record");
        let as_key = p256::PublicKey::from_sec1_bytes(as_public).expect("sender key");
        let ecdh = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), as_key.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth[..]), ecdh.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .expect("ikm");
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("cek");
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("nonce");
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .expect("key")
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), record)
            .expect("the record decrypts");
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "the last record ends with 0x02");
        plain
    }
}

/// Checks the `Authorization: vapid t=…, k=…` header: `k` is the server's published key and
/// the ES256 JWT verifies with it, for the push service's origin, expiring within 24 hours.
fn check_vapid(header: &str, server_key: &str, origin: &str, now: i64) {
    use p256::ecdsa::signature::Verifier;
    let rest = header.strip_prefix("vapid t=").expect("vapid scheme");
    let (jwt, k) = rest.split_once(", k=").expect("t and k");
    assert_eq!(k, server_key, "k is the published VAPID key");
    let (input, sig) = jwt.rsplit_once('.').expect("signed");
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&unb64(k)).expect("P-256 key");
    let sig = p256::ecdsa::Signature::from_slice(&unb64(sig)).expect("r‖s");
    key.verify(input.as_bytes(), &sig)
        .expect("the JWT verifies with the VAPID key");
    let (head, claims) = input.split_once('.').expect("header.claims");
    let head: serde_json::Value = serde_json::from_slice(&unb64(head)).expect("header");
    assert_eq!(head["alg"], "ES256");
    let claims: serde_json::Value = serde_json::from_slice(&unb64(claims)).expect("claims");
    assert_eq!(claims["aud"], origin);
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp} now {now}");
    let sub = claims["sub"].as_str().expect("sub");
    assert!(
        sub.starts_with("mailto:") || sub.starts_with("https:"),
        "{sub}"
    );
}

async fn wait_for(seen: &Arc<Mutex<Vec<Received>>>, n: usize) -> Vec<Received> {
    for _ in 0..200 {
        let got = seen.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "expected {n} push requests, got {:?}",
        seen.lock().expect("lock").len()
    );
}

/// The HP publishes an escalation key and the peer raises an imminent flag in the
/// supervision conversation (the HP, the peer's supervisor, is a level-0 responder).
async fn raise_flag(app: &TestApp, s: &peerbridge_tests::mls_device::SupervisionPair) {
    use peerbridge_openapi::signed::escalation_key_message;
    use peerbridge_tests::mls_device::b64;
    let c = app.client();
    let hpke_public = [9u8; 32];
    c.put(
        "/v1/me/escalation-key",
        Some(s.hp.token()),
        json!({
            "public_key": b64(&hpke_public),
            "signature": b64(&s.hp.device.sign(&escalation_key_message(&hpke_public))),
        }),
    )
    .await
    .expect(204);
    let recipients: Vec<Value> = c
        .get(
            &format!("/v1/conversations/{}/escalation-recipients", s.conv.id),
            Some(s.peer.token()),
        )
        .await
        .expect(200)
        .parse();
    c.post(
        &format!("/v1/conversations/{}/flags", s.conv.id),
        Some(s.peer.token()),
        json!({
            "client_id": Uuid::new_v4(), "kind": "flag", "category": "suicide_risk",
            "severity": "imminent", "locale": "nb",
            "excerpts": recipients.iter().map(|r| json!({
                "public_key": r["public_key"], "enc": b64(&[7u8; 32]),
                "ciphertext": b64(b"sealed excerpt bytes"),
            })).collect::<Vec<_>>(),
        }),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_web_push_subscription_gets_encrypted_signed_content_free_wakes_and_a_flag_is_never_swallowed()
 {
    use peerbridge_tests::backends;
    use peerbridge_tests::mls_device::b64;
    for backend in backends().await {
        let (port, seen) = push_service().await;
        let app = TestApp::spawn_with(backend, move |c| {
            c.push_allowed_hosts = Some(format!("http://127.0.0.1:{port}"));
        })
        .await;
        let mut s = app.supervision_pair().await;
        let c = app.client();
        let server_key = c
            .get("/v1/push/vapid-key", Some(s.hp.token()))
            .await
            .expect(200)
            .json()["public_key"]
            .as_str()
            .expect("public_key")
            .to_owned();
        assert_eq!(unb64(&server_key).len(), 65);
        assert_eq!(unb64(&server_key)[0], 4, "uncompressed point");
        c.get("/v1/push/vapid-key", None)
            .await
            .expect_problem(401, "unauthenticated");

        // Bad subscriptions are refused with a problem naming the field; nothing is stored.
        let ua = UserAgent::new();
        let endpoint = format!("http://127.0.0.1:{port}/wpush/hp-device");
        let good_p256dh = b64(&ua.public());
        let mut off_curve = ua.public();
        off_curve[64] ^= 1;
        let mut compressed = ua.public();
        compressed[0] = 2;
        for (keys, field) in [
            (
                json!({ "p256dh": b64(&ua.public()[..64]), "auth": b64(&ua.auth) }),
                "keys.p256dh",
            ),
            (
                json!({ "p256dh": b64(&off_curve), "auth": b64(&ua.auth) }),
                "keys.p256dh",
            ),
            (
                json!({ "p256dh": b64(&compressed), "auth": b64(&ua.auth) }),
                "keys.p256dh",
            ),
            (
                json!({ "p256dh": good_p256dh, "auth": b64(&ua.auth[..15]) }),
                "keys.auth",
            ),
            (
                json!({ "p256dh": format!("{good_p256dh}="), "auth": b64(&ua.auth) }),
                "keys.p256dh",
            ),
        ] {
            let r = c
                .put(
                    "/v1/me/push-endpoint",
                    Some(s.hp.token()),
                    json!({ "url": endpoint, "keys": keys }),
                )
                .await;
            r.expect_problem(422, "validation_failed");
            assert_eq!(r.json()["field"], field, "{}", r.text);
        }
        c.put(
            "/v1/me/push-endpoint",
            Some(s.hp.token()),
            json!({ "url": "https://push.evil.example/x", "keys": { "p256dh": good_p256dh, "auth": b64(&ua.auth) } }),
        )
        .await
        .expect_problem(422, "validation_failed");
        {
            use sea_orm::EntityTrait;
            let d = peerbridge_server::accounts::entities::device::Entity::find_by_id(
                s.hp.session.device_id,
            )
            .one(&app.state.db)
            .await
            .expect("db")
            .expect("device");
            assert!(d.push_url.is_none() && d.push_p256dh.is_none() && d.push_auth.is_none());
        }
        c.put(
            "/v1/me/push-endpoint",
            Some(s.hp.token()),
            json!({ "url": endpoint, "keys": { "p256dh": good_p256dh, "auth": b64(&ua.auth) } }),
        )
        .await
        .expect(204);

        // A message wakes the offline HP: normal urgency, the message topic, a wake that
        // says "message" and nothing else.
        s.p.send_text(s.conv.id, &s.conv.group_id, "er du der?", Uuid::new_v4())
            .await
            .expect(201);
        let got = wait_for(&seen, 1).await;
        let origin = format!("http://127.0.0.1:{port}");
        let now = app.now_unix();
        let message = &got[0];
        assert_eq!(message.path, "/wpush/hp-device");
        assert_eq!(message.headers["content-encoding"], "aes128gcm");
        assert_eq!(message.headers["urgency"], "normal");
        assert!(message.headers["ttl"].parse::<u32>().expect("ttl") > 0);
        check_vapid(&message.headers["authorization"], &server_key, &origin, now);
        let plain = ua.decrypt(&message.body);
        assert_eq!(
            serde_json::from_slice::<Value>(&plain).expect("json"),
            json!({ "type": "wake", "kind": "message" })
        );

        // Within the debounce window, another message does not wake again, but a flag does:
        // high urgency, its own topic, so it neither replaces nor is replaced by a message.
        s.p.send_text(s.conv.id, &s.conv.group_id, "hallo?", Uuid::new_v4())
            .await
            .expect(201);
        raise_flag(&app, &s).await;
        let got = wait_for(&seen, 2).await;
        let flag = &got[1];
        assert_eq!(flag.headers["urgency"], "high");
        assert_ne!(flag.headers["topic"], message.headers["topic"]);
        check_vapid(&flag.headers["authorization"], &server_key, &origin, now);
        assert_eq!(
            serde_json::from_slice::<Value>(&ua.decrypt(&flag.body)).expect("json"),
            json!({ "type": "wake", "kind": "flag" })
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let all = seen.lock().expect("lock").clone();
        assert_eq!(all.len(), 2, "the second message was debounced");
        for r in &all {
            for leak in [
                s.conv.id.to_string(),
                s.peer.session.user_id.to_string(),
                "hallo".into(),
            ] {
                assert!(!String::from_utf8_lossy(&r.body).contains(&leak));
                assert!(!r.headers.values().any(|v| v.contains(&leak)));
            }
        }

        // A plain URL still registers for UnifiedPush wake-ups (no keys kept).
        c.put(
            "/v1/me/push-endpoint",
            Some(s.hp.token()),
            json!({ "url": endpoint }),
        )
        .await
        .expect(204);
        {
            use sea_orm::EntityTrait;
            let d = peerbridge_server::accounts::entities::device::Entity::find_by_id(
                s.hp.session.device_id,
            )
            .one(&app.state.db)
            .await
            .expect("db")
            .expect("device");
            assert!(d.push_url.is_some() && d.push_p256dh.is_none());
        }
    }
}

#[tokio::test]
async fn a_device_with_a_live_stream_gets_no_message_wake_but_still_gets_a_flag_wake() {
    use peerbridge_tests::backends;
    use peerbridge_tests::mls_device::b64;
    for backend in backends().await {
        let (port, seen) = push_service().await;
        let app = TestApp::spawn_with(backend, move |c| {
            c.push_allowed_hosts = Some(format!("http://127.0.0.1:{port}"));
        })
        .await;
        let mut s = app.supervision_pair().await;
        let ua = UserAgent::new();
        app.client()
            .put(
                "/v1/me/push-endpoint",
                Some(s.hp.token()),
                json!({
                    "url": format!("http://127.0.0.1:{port}/wpush/online"),
                    "keys": { "p256dh": b64(&ua.public()), "auth": b64(&ua.auth) },
                }),
            )
            .await
            .expect(204);
        // The HP's stream is up: a message reaches it there, not by push.
        let mut ws = Stream::connect(&app.base, s.hp.token()).await;
        assert_eq!(ws.next().await.expect("hello")["type"], "hello");
        s.p.send_text(s.conv.id, &s.conv.group_id, "er du der?", Uuid::new_v4())
            .await
            .expect(201);
        assert_eq!(
            ws.until("message").await["conversation_id"],
            s.conv.id.to_string()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            seen.lock().expect("lock").is_empty(),
            "no push for an online device"
        );

        // A flag is pushed anyway: a half-dead socket must not hide it.
        raise_flag(&app, &s).await;
        let got = wait_for(&seen, 1).await;
        assert_eq!(got[0].headers["urgency"], "high");
        assert_eq!(
            serde_json::from_slice::<Value>(&ua.decrypt(&got[0].body)).expect("json"),
            json!({ "type": "wake", "kind": "flag" })
        );
    }
}
