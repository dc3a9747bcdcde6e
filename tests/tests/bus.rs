//! Fan-out across replicas through real Redis: a publish on one replica reaches subscribers
//! on another; with Redis unreachable the bus degrades (readiness stays up, local delivery
//! continues) instead of failing.

use std::time::Duration;

use peerbridge_server::bus::Bus;
use peerbridge_tests::backends::redis_available;
use peerbridge_tests::{Backend, TestApp, redis_url};
use secrecy::SecretString;

async fn until_healthy(bus: &Bus) {
    for _ in 0..100 {
        if bus.is_healthy() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bus never became healthy");
}

#[tokio::test]
async fn a_message_published_on_one_replica_reaches_subscribers_on_another() {
    if !redis_available().await {
        return;
    }
    let prefix = format!("pbtest{}", uuid::Uuid::new_v4().simple());
    let url = SecretString::from(redis_url());
    let a = Bus::redis(&url, &prefix).expect("bus a");
    let b = Bus::redis(&url, &prefix).expect("bus b");
    until_healthy(&a).await;
    until_healthy(&b).await;
    let mut on_b = b.subscribe();
    let mut on_a = a.subscribe();
    a.publish("device.revoked", b"device-42");
    for rx in [&mut on_b, &mut on_a] {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivered in time")
            .expect("message");
        assert_eq!(msg.topic, "device.revoked");
        assert_eq!(msg.payload, b"device-42");
    }
    // Another deployment's prefix is not heard.
    let other = Bus::redis(&url, &format!("{prefix}x")).expect("bus other");
    until_healthy(&other).await;
    let mut on_other = other.subscribe();
    a.publish("device.revoked", b"device-43");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_other.recv())
            .await
            .is_err()
    );
    a.shutdown();
    b.shutdown();
    other.shutdown();
}

#[tokio::test]
async fn with_redis_unreachable_the_replica_stays_ready_and_reports_a_degraded_bus() {
    // Nothing listens on port 1: the bus can never connect.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let c = app.client();
    let r = c.get("/readyz", None).await;
    r.expect(200);
    assert_eq!(r.json()["bus"]["kind"], "redis");
    assert_eq!(r.json()["bus"]["state"], "degraded");
    let m = c.get("/metrics", None).await;
    assert!(m.text.contains("peerbridge_bus_degraded 1"), "{}", m.text);
    // Local subscribers still hear this replica's publishes.
    let mut rx = app.state.bus.subscribe();
    app.state.bus.publish("device.revoked", b"x");
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(msg.payload, b"x");
    // Counted as reaching this replica only (none before the publish).
    assert!(
        m.text.contains("peerbridge_bus_publishes_local_only 0"),
        "{}",
        m.text
    );
    let m = c.get("/metrics", None).await;
    assert!(
        m.text.contains("peerbridge_bus_publishes_local_only 1"),
        "{}",
        m.text
    );
    // And writes still commit.
    let op = app.bootstrap_operator().await;
    app.create_clinic(&op, "Bodø").await;
}

#[tokio::test]
async fn the_replica_on_real_redis_reports_a_healthy_bus() {
    if !redis_available().await {
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(redis_url());
        c.redis_channel_prefix = format!("pbtest{}", uuid::Uuid::new_v4().simple());
    })
    .await;
    until_healthy(&app.state.bus).await;
    let r = app.client().get("/readyz", None).await;
    assert_eq!(r.json()["bus"]["state"], "ok");
}

#[tokio::test]
async fn with_a_metrics_listener_metrics_leave_the_public_port() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    app.client()
        .get("/metrics", None)
        .await
        .expect_problem(404, "not_found");
    let metrics = peerbridge_tests::Client::new(app.metrics_base.as_deref().expect("metrics port"))
        .get("/metrics", None)
        .await;
    metrics.expect(200);
    assert!(metrics.text.contains("peerbridge_database_up"));
}

/// Issue 12: during a Redis outage a publish neither waits nor fails (it is not even
/// async) and still reaches this replica's subscribers; when Redis returns, the bus tells
/// its subscribers to resync and a connected device is sent a `resync` notice with no later
/// message needed, so what other replicas accepted meanwhile is read at once.
#[tokio::test]
async fn after_a_redis_outage_connected_devices_are_told_to_resync() {
    use peerbridge_server::bus::topics::BUS_RESUMED;
    if !redis_available().await {
        return;
    }
    let relay = peerbridge_tests::relay::Relay::start().await;
    let prefix = format!("pbtest{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(relay.url.clone());
        c.redis_channel_prefix = prefix.clone();
    })
    .await;
    until_healthy(&app.state.bus).await;
    let s = app.supervision_pair().await;
    let mut stream = peerbridge_tests::mls_device::Stream::connect(&app.base, s.hp.token()).await;
    stream.until("hello").await;
    let mut local = app.state.bus.subscribe();

    relay.set_up(false);
    for _ in 0..400 {
        if !app.state.bus.is_healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!app.state.bus.is_healthy(), "the outage is seen");
    // Degraded: a publish still reaches this replica's subscribers.
    app.state.bus.publish("device.revoked", b"during-outage");
    let got = tokio::time::timeout(Duration::from_secs(5), local.recv())
        .await
        .expect("local delivery while degraded")
        .expect("message");
    assert_eq!(got.payload, b"during-outage");

    relay.set_up(true);
    let resumed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match local.recv().await {
                Ok(m) if m.topic == BUS_RESUMED => return,
                Ok(_) => {}
                Err(e) => panic!("bus closed: {e}"),
            }
        }
    })
    .await;
    assert!(resumed.is_ok(), "the bus announces its return");
    let n = stream.until("resync").await;
    assert_eq!(n["type"], "resync");
    assert!(app.state.bus.is_healthy());
}
