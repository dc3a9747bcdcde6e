//! Key packages: concurrent claims never hand out the same one-time package twice and fall
//! back to the last-resort package; forged, foreign and expired packages are refused.

use futures_util::future::join_all;
use peerbridge_openapi::delivery::{ClaimedKeyPackage, KeyPackageStatus};
use peerbridge_tests::mls_device::{MlsDevice, b64};
use peerbridge_tests::{TestApp, backends};
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn fifty_concurrent_claims_get_ten_distinct_packages_then_the_last_resort_one() {
    for backend in backends().await {
        let app = TestApp::spawn(backend).await;
        let c = app.client();
        let (_, hp, peer) = app.peer_with_supervisor().await;
        let mut h = MlsDevice::new(c.clone(), hp.token(), hp.session.device_id, &hp.device);
        let status: KeyPackageStatus = h.upload_key_packages(10).await.expect(200).parse();
        assert_eq!((status.remaining, status.has_last_resort), (10, true));
        let conv = app.supervision_conversation(&peer).await;

        let url = format!("/v1/conversations/{}/key-packages/claim", conv.id);
        let body = json!({ "user_id": hp.session.user_id });
        let claims = (0..50).map(|_| c.post(&url, Some(peer.token()), body.clone()));
        let results = join_all(claims).await;
        let mut one_time = Vec::new();
        let mut last_resort = 0;
        for r in &results {
            r.expect(200);
            let got: Vec<ClaimedKeyPackage> = r.parse();
            assert_eq!(got.len(), 1, "one device, one package");
            if got[0].last_resort {
                last_resort += 1;
            } else {
                one_time.push(got[0].key_package_ref.clone());
            }
        }
        let distinct: HashSet<_> = one_time.iter().collect();
        assert_eq!(one_time.len(), 10, "{backend:?}");
        assert_eq!(
            distinct.len(),
            10,
            "no package handed out twice on {backend:?}"
        );
        assert_eq!(last_resort, 40);
        let status: KeyPackageStatus = c
            .get("/v1/key-packages/status", Some(hp.token()))
            .await
            .expect(200)
            .parse();
        assert_eq!(status.remaining, 0);
        assert!(
            status.remaining < status.replenish_below,
            "the client is told to replenish"
        );
    }
}

#[tokio::test]
async fn forged_foreign_and_expired_key_packages_are_refused() {
    let app = TestApp::spawn(peerbridge_tests::Backend::Sqlite).await;
    let c = app.client();
    let op = app.bootstrap_operator().await;
    let (clinic, hp) = app.clinic_with_hp(&op, "Forgery").await;
    let peer = app
        .redeem(&app.create_invite(&hp, clinic, "peer").await.code)
        .await;
    let mut h = MlsDevice::new(c.clone(), hp.token(), hp.session.device_id, &hp.device);
    let kp = h
        .mls
        .generate_key_packages(1)
        .expect("kp")
        .remove(0)
        .key_package;

    // A flipped bit anywhere in the signed content breaks a signature.
    let mut forged = kp.clone();
    let i = forged.len() - 10;
    forged[i] ^= 0x01;
    let r = c
        .post(
            "/v1/key-packages",
            Some(hp.token()),
            json!({ "key_packages": [b64(&forged)] }),
        )
        .await;
    r.expect_problem(422, "invalid_mls");
    // Someone else's (valid) key package cannot be uploaded as one's own.
    let r = c
        .post(
            "/v1/key-packages",
            Some(peer.token()),
            json!({ "key_packages": [b64(&kp)] }),
        )
        .await;
    r.expect_problem(422, "invalid_mls");
    // Garbage is refused the same way, never with a 5xx.
    c.post(
        "/v1/key-packages",
        Some(hp.token()),
        json!({ "key_packages": ["AAAA"] }),
    )
    .await
    .expect_problem(422, "invalid_mls");
    // Nothing of the above was stored.
    let status: KeyPackageStatus = c
        .get("/v1/key-packages/status", Some(hp.token()))
        .await
        .expect(200)
        .parse();
    assert_eq!(status.remaining, 0);
    // The real one is accepted; once its lifetime has passed, a package is refused.
    c.post(
        "/v1/key-packages",
        Some(hp.token()),
        json!({ "key_packages": [b64(&kp)] }),
    )
    .await
    .expect(200);
    let later = h
        .mls
        .generate_key_packages(1)
        .expect("kp")
        .remove(0)
        .key_package;
    app.clock.advance(chrono::Duration::days(400));
    let fresh: peerbridge_openapi::auth::Session = app
        .device_login(hp.session.device_id, &hp.device)
        .await
        .expect(200)
        .parse();
    let r = c
        .post(
            "/v1/key-packages",
            Some(&fresh.access_token),
            json!({ "key_packages": [b64(&later)] }),
        )
        .await;
    r.expect_problem(422, "invalid_mls");
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("lifetime")
    );
    let status: KeyPackageStatus = c
        .get("/v1/key-packages/status", Some(&fresh.access_token))
        .await
        .expect(200)
        .parse();
    assert_eq!(status.remaining, 0, "expired packages are not counted");
}

#[tokio::test]
async fn claims_are_rate_limited_per_device() {
    let app = TestApp::spawn(peerbridge_tests::Backend::Sqlite).await;
    let s = app.supervision_pair().await;
    let url = format!("/v1/conversations/{}/key-packages/claim", s.conv.id);
    let body = json!({ "user_id": s.hp.session.user_id });
    let c = app.client();
    let limit = peerbridge_server::delivery::service::CLAIMS_PER_WINDOW;
    // The HP is already in the group: its claims return no package (409), but still count;
    // the pair's own set-up already made one claim.
    for _ in 1..limit {
        let r = c.post(&url, Some(s.peer.token()), body.clone()).await;
        r.expect_problem(409, "no_key_package");
    }
    let r = c.post(&url, Some(s.peer.token()), body.clone()).await;
    r.expect_problem(429, "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    // Another device is not affected.
    c.post(
        &url,
        Some(s.hp.token()),
        json!({ "user_id": s.peer.session.user_id }),
    )
    .await
    .expect_problem(409, "no_key_package");
}
