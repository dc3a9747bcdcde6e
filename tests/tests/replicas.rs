//! Several server processes on one PostgreSQL and Redis, as in production: a thousand
//! messages between four devices on two replicas arrive once each, in order; a replica
//! killed with SIGKILL loses no acknowledged send; with Redis down sends still commit and
//! polling delivers, and fan-out resumes when Redis returns.

use std::process::Stdio;
use std::time::Duration;

use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::delivery::{ClaimedKeyPackage, Conversation};
use peerbridge_tests::api::{device_json, device_login_at};
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::deployment::Deployment;
use peerbridge_tests::mls_device::{MlsDevice, Stream, b64, unb64};
use peerbridge_tests::{Backend, Client, TestApp, redis_url};
use serde_json::json;
use uuid::Uuid;

/// A device logged in at one replica.
async fn device_at(base: &str, device_id: Uuid, identity: &DeviceIdentity) -> MlsDevice {
    let http = Client::new(base);
    let s: Session = device_login_at(&http, device_id, identity)
        .await
        .expect(200)
        .parse();
    let mut d = MlsDevice::new(http, &s.access_token, device_id, identity);
    d.upload_key_packages(3).await.expect(200);
    d
}

struct People {
    peer: (Uuid, Vec<(Uuid, DeviceIdentity)>),
    hp: (Uuid, Vec<(Uuid, DeviceIdentity)>),
}

/// A peer and their supervising HP, each with `devices` registered devices.
async fn people(app: &TestApp, devices: usize) -> People {
    let c = app.client();
    let (_, hp, peer) = app.peer_with_supervisor().await;
    let copy = |d: &DeviceIdentity| DeviceIdentity::from_secret(d.secret().as_ref()).expect("id");
    let mut peer_devs = vec![(peer.session.device_id, copy(&peer.device))];
    let mut hp_devs = vec![(hp.session.device_id, copy(&hp.device))];
    for _ in 1..devices {
        let extra = DeviceIdentity::generate();
        let d: peerbridge_openapi::users::Device = c
            .post(
                "/v1/me/devices",
                Some(peer.token()),
                device_json(&extra, "Tablet"),
            )
            .await
            .expect(201)
            .parse();
        peer_devs.push((d.id, extra));
        let extra = DeviceIdentity::generate();
        let s: Session = c
            .post(
                "/v1/auth/password",
                None,
                json!({ "login": hp.login, "password": hp.password,
                        "totp_code": app.fresh_totp(&hp.totp_secret),
                        "device": device_json(&extra, "Workstation") }),
            )
            .await
            .expect(200)
            .parse();
        hp_devs.push((s.device_id, extra));
    }
    People {
        peer: (peer.session.user_id, peer_devs),
        hp: (hp.session.user_id, hp_devs),
    }
}

/// The first device opens the supervision conversation with every other device in it.
async fn open(devs: &mut [MlsDevice], peer: Uuid, hp: Uuid) -> Conversation {
    let c = devs[0].http.clone();
    let conv: Conversation = c
        .post(
            "/v1/conversations",
            Some(&devs[0].token),
            json!({ "kind": "supervision", "peer_id": peer }),
        )
        .await
        .expect(201)
        .parse();
    let mut claimed: Vec<ClaimedKeyPackage> = Vec::new();
    for user in [peer, hp] {
        let r = devs[0].claim(conv.id, user).await;
        if r.status == 200 {
            claimed.extend(r.parse::<Vec<ClaimedKeyPackage>>());
        }
    }
    devs[0]
        .open_group(conv.id, &conv.group_id, &claimed)
        .await
        .expect(201);
    for d in devs.iter_mut().skip(1) {
        assert_eq!(d.accept_welcomes().await.len(), 1);
    }
    conv
}

#[tokio::test]
async fn four_devices_on_two_replicas_exchange_a_thousand_messages_exactly_once_in_order() {
    if !postgres_available().await || !redis_available().await {
        return;
    }
    let dep = Deployment::new(redis_url());
    let app = TestApp::spawn_with(Backend::Postgres, |c| dep.configure(c)).await;
    let people = people(&app, 2).await;
    let (b, c) = (dep.replica(&app).await, dep.replica(&app).await);
    let bases = [b.base(), c.base()];
    // Each person has one device on each replica.
    let mut devs = Vec::new();
    for (i, (id, key)) in people.peer.1.iter().chain(people.hp.1.iter()).enumerate() {
        devs.push(device_at(&bases[i % 2], *id, key).await);
    }
    let conv = open(&mut devs, people.peer.0, people.hp.0).await;
    // The HP's first device listens on replica B while messages also arrive through C.
    let mut ws = Stream::connect(&bases[0], &devs[2].token).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");

    let mut sent: Vec<(usize, String)> = Vec::new();
    for i in 0..1000 {
        let from = i % devs.len();
        let text = format!("melding {i:04}");
        devs[from]
            .send_text(conv.id, &conv.group_id, &text, Uuid::new_v4())
            .await
            .expect(201);
        sent.push((from, text));
    }
    let notices = async {
        let mut n = 0;
        while let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            if v["type"] == "message" {
                n += 1;
            }
        }
        n
    }
    .await;
    assert!(notices > 0, "fan-out reached replica B's socket");

    for (k, d) in devs.iter_mut().enumerate() {
        // Reading twice (a replayed page) must not produce duplicates after dedup.
        let (texts, cursor) = d.read(conv.id, 0).await;
        let (again, _) = d.read(conv.id, cursor).await;
        assert!(again.is_empty());
        let expected: Vec<String> = sent
            .iter()
            .filter(|(from, _)| *from != k)
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(texts.len(), 750, "device {k}");
        assert_eq!(texts, expected, "device {k}: exactly once, in group order");
    }
    // The database holds only ciphertext.
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db.connect().await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT payload FROM log_entries WHERE payload IS NOT NULL",
        ))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1000);
    for r in rows {
        let p: Vec<u8> = r.try_get("", "payload").expect("payload");
        assert!(!p.windows(7).any(|w| w == b"melding"));
    }
}

#[tokio::test]
async fn a_replica_killed_mid_send_loses_no_acknowledged_message() {
    if !postgres_available().await || !redis_available().await {
        return;
    }
    let dep = Deployment::new(redis_url());
    let app = TestApp::spawn_with(Backend::Postgres, |c| dep.configure(c)).await;
    let people = people(&app, 1).await;
    let mut b = dep.replica(&app).await;
    let c = dep.replica(&app).await;
    let mut peer = device_at(&b.base(), people.peer.1[0].0, &people.peer.1[0].1).await;
    let mut hp = device_at(&c.base(), people.hp.1[0].0, &people.hp.1[0].1).await;
    let conv = {
        let mut two = [peer, hp];
        let conv = open(&mut two, people.peer.0, people.hp.0).await;
        [peer, hp] = two;
        conv
    };
    let gid = peerbridge_mls::GroupId::new(unb64(&conv.group_id)).expect("gid");
    let fallback = Client::new(&c.base());
    let mut acknowledged = Vec::new();
    let mut killed = false;
    for i in 0..120 {
        if i == 40 {
            // SIGKILL: no graceful shutdown, in-flight requests die with the process.
            b.child.start_kill().expect("kill");
            let _ = b.child.wait().await;
            killed = true;
        }
        let ct = peer
            .mls
            .encrypt(
                &gid,
                &peerbridge_mls::Envelope::Text {
                    id: peerbridge_mls::MessageId::random(),
                    body: format!("send {i}"),
                    sent_at: 0,
                },
            )
            .expect("encrypt");
        let body = json!({ "client_id": Uuid::new_v4(), "ciphertext": b64(&ct) });
        let path = format!("/v1/conversations/{}/messages", conv.id);
        let mut reply = peer.http.try_post(&path, Some(&peer.token), &body).await;
        if reply.is_err() || reply.as_ref().is_ok_and(|r| r.status >= 500) {
            // The client retries the same message (same client id) through the other replica.
            reply = fallback.try_post(&path, Some(&peer.token), &body).await;
            reply = match reply {
                Ok(r) if r.status == 401 => {
                    let s: Session =
                        device_login_at(&fallback, peer.device_id, &people.peer.1[0].1)
                            .await
                            .expect(200)
                            .parse();
                    peer.token = s.access_token;
                    fallback.try_post(&path, Some(&peer.token), &body).await
                }
                other => other,
            };
        }
        let r = reply.expect("the other replica answers");
        assert!(r.status == 201 || r.status == 200, "{}", r.text);
        acknowledged.push(format!("send {i}"));
    }
    assert!(killed);
    // Restarted, the killed replica serves the same data.
    let b2 = dep.replica(&app).await;
    hp.http = Client::new(&b2.base());
    let (texts, _) = hp.read(conv.id, 0).await;
    assert_eq!(
        texts, acknowledged,
        "every acknowledged send, once, in order"
    );
}

#[tokio::test]
async fn with_redis_stopped_sends_commit_and_polling_delivers_and_fan_out_comes_back() {
    if !postgres_available().await {
        return;
    }
    // A private Redis this test may stop and start.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs")
    };
    let mut redis = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dep = Deployment::new(url);
    let app = TestApp::spawn_with(Backend::Postgres, |c| dep.configure(c)).await;
    let people = people(&app, 1).await;
    let b = dep.replica(&app).await;
    let c = dep.replica(&app).await;
    let mut two = [
        device_at(&c.base(), people.peer.1[0].0, &people.peer.1[0].1).await,
        device_at(&b.base(), people.hp.1[0].0, &people.hp.1[0].1).await,
    ];
    let conv = open(&mut two, people.peer.0, people.hp.0).await;
    let [mut peer, mut hp] = two;
    let mut ws = Stream::connect(&b.base(), &hp.token).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");
    peer.send_text(conv.id, &conv.group_id, "før", Uuid::new_v4())
        .await
        .expect(201);
    ws.until("message").await;

    redis.kill().expect("stop redis");
    let _ = redis.wait();
    peer.send_text(conv.id, &conv.group_id, "under", Uuid::new_v4())
        .await
        .expect(201);
    let ready = Client::new(&b.base()).get("/readyz", None).await;
    ready.expect(200);
    let (texts, cursor) = hp.read(conv.id, 0).await;
    assert_eq!(
        texts,
        vec!["før".to_string(), "under".to_string()],
        "polling delivers"
    );

    redis = start_redis();
    let rb = Client::new(&b.base());
    let mut healthy = false;
    for _ in 0..100 {
        let (r1, r2) = (
            rb.get("/readyz", None).await,
            Client::new(&c.base()).get("/readyz", None).await,
        );
        if r1.json()["bus"]["state"] == "ok" && r2.json()["bus"]["state"] == "ok" {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the bus recovered by itself");
    peer.send_text(conv.id, &conv.group_id, "etter", Uuid::new_v4())
        .await
        .expect(201);
    let n = ws.until("message").await;
    assert_eq!(n["seq"], 3);
    let (texts, _) = hp.read(conv.id, cursor).await;
    assert_eq!(texts, vec!["etter".to_string()]);
    let _ = redis.kill();
}
