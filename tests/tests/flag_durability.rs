//! A flag is never lost: one that got a 2xx survives SIGKILL of the process that took it
//! (on the embedded default, SQLite with the in-process bus, and on PostgreSQL + Redis), a
//! retry with the same client id stores nothing twice, and with Redis down a flag is still
//! stored and reaches the HP's queue by polling (real processes).

use std::process::Stdio;
use std::time::Duration;

use peerbridge_openapi::auth::Session;
use peerbridge_openapi::escalation::{Flag, FlagReceipt};
use peerbridge_tests::api::device_login_at;
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::deployment::Deployment;
use peerbridge_tests::{Backend, Client, TestApp, redis_url};
use serde_json::{Value, json};
use uuid::Uuid;

/// A peer, alone in their opened supervision conversation, and their supervisor.
async fn setup(
    app: &TestApp,
) -> (
    Uuid,
    peerbridge_tests::api::Enrolled,
    peerbridge_tests::Staff,
) {
    let (_, hp, peer) = app.peer_with_supervisor().await;
    let id = app.supervision_opened_alone(&peer).await;
    (id, peer, hp)
}

fn flag_body(client_id: Uuid) -> Value {
    json!({ "client_id": client_id, "kind": "flag", "category": "suicide_risk",
            "severity": "imminent", "excerpts": [] })
}

async fn token_at(base: &str, s: &Session, d: &peerbridge_mls::DeviceIdentity) -> String {
    device_login_at(&Client::new(base), s.device_id, d)
        .await
        .expect(200)
        .parse::<Session>()
        .access_token
}

#[tokio::test]
async fn a_stored_flag_survives_sigkill_and_a_retry_stores_it_once() {
    for backend in peerbridge_tests::backends().await {
        let dep = match backend {
            Backend::Sqlite => Deployment::embedded(),
            Backend::Postgres if redis_available().await => Deployment::new(redis_url()),
            Backend::Postgres => continue,
        };
        survives_sigkill(backend, dep).await;
    }
}

async fn survives_sigkill(backend: Backend, dep: Deployment) {
    let app = TestApp::spawn_with(backend, |c| dep.configure(c)).await;
    let (conv, peer, hp) = setup(&app).await;
    let mut a = dep.replica(&app).await;
    let at_a = Client::new(&a.base());
    let peer_token = token_at(&a.base(), &peer.session, &peer.device).await;
    let client_id = Uuid::new_v4();
    let path = format!("/v1/conversations/{conv}/flags");
    let first: FlagReceipt = at_a
        .post(&path, Some(&peer_token), flag_body(client_id))
        .await
        .expect(201)
        .parse();
    // The replica dies at once, without a graceful shutdown.
    a.child.start_kill().expect("kill");
    let _ = a.child.wait().await;

    let b = dep.replica(&app).await;
    let at_b = Client::new(&b.base());
    // The phone did not see the answer and retries through another replica: one flag.
    let again: FlagReceipt = at_b
        .post(&path, Some(&peer_token), flag_body(client_id))
        .await
        .expect(200)
        .parse();
    assert_eq!(again.id, first.id);
    let hp_token = token_at(&b.base(), &hp.session, &hp.device).await;
    let queue: Vec<Flag> = at_b
        .get("/v1/flags", Some(&hp_token))
        .await
        .expect(200)
        .parse();
    assert_eq!(
        queue.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first.id]
    );
}

/// The process that stored a flag is killed before its wake-up reached the HP's push
/// gateway (down at that moment): the wake-up was owed in the flag's own transaction, and
/// the next process sends it (embedded default: SQLite file, in-process bus, real binary).
#[tokio::test]
async fn a_flag_wake_up_owed_by_a_killed_process_is_sent_by_the_next_one() {
    use peerbridge_server::notify::wakeups::entity as wakeups;
    use sea_orm::{EntityTrait, PaginatorTrait};
    let dep = Deployment::embedded();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| dep.configure(c)).await;
    let (conv, peer, hp) = setup(&app).await;
    // A port for the gateway, free but not listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let allowed = format!("http://127.0.0.1:{port}");
    let env = [
        ("PEERBRIDGE_PUSH_ALLOWED_HOSTS", allowed.as_str()),
        ("PEERBRIDGE_LADDER_INTERVAL_MS", "200"),
    ];
    let mut a = dep.replica_with(&app, &env).await;
    let at_a = Client::new(&a.base());
    let hp_token = token_at(&a.base(), &hp.session, &hp.device).await;
    at_a.put(
        "/v1/me/push-endpoint",
        Some(&hp_token),
        json!({ "url": format!("{allowed}/hp-phone") }),
    )
    .await
    .expect(204);
    let peer_token = token_at(&a.base(), &peer.session, &peer.device).await;
    at_a.post(
        &format!("/v1/conversations/{conv}/flags"),
        Some(&peer_token),
        flag_body(Uuid::new_v4()),
    )
    .await
    .expect(201);
    a.child.start_kill().expect("kill");
    let _ = a.child.wait().await;
    let owed = wakeups::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(owed, 1, "the wake-up is owed in the database");

    // The gateway comes up; the next process sends what was owed.
    let (_, seen) = peerbridge_tests::gateway::start(port).await;
    let _b = dep.replica_with(&app, &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.lock().expect("seen").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wake-up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = seen.lock().expect("seen").clone();
    assert_eq!(got[0].0, "/hp-phone");
    assert_eq!(got[0].1, peerbridge_server::notify::push::WAKE_BODY);
    for _ in 0..50 {
        if wakeups::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count")
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the delivered wake-up is still owed");
}

#[tokio::test]
async fn with_redis_down_a_flag_is_stored_and_reaches_the_queue_by_polling() {
    if !postgres_available().await {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut redis = std::process::Command::new("redis-server")
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
        .expect("redis-server runs");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dep = Deployment::new(format!("redis://127.0.0.1:{port}"));
    let app = TestApp::spawn_with(Backend::Postgres, |c| dep.configure(c)).await;
    let (conv, peer, hp) = setup(&app).await;
    let r = dep.replica(&app).await;
    let http = Client::new(&r.base());
    let peer_token = token_at(&r.base(), &peer.session, &peer.device).await;
    let hp_token = token_at(&r.base(), &hp.session, &hp.device).await;

    redis.kill().expect("stop redis");
    let _ = redis.wait();
    let receipt: FlagReceipt = http
        .post(
            &format!("/v1/conversations/{conv}/flags"),
            Some(&peer_token),
            flag_body(Uuid::new_v4()),
        )
        .await
        .expect(201)
        .parse();
    // Nobody was woken, but the HP's app polls its queue and finds it.
    let queue: Vec<Flag> = http
        .get("/v1/flags", Some(&hp_token))
        .await
        .expect(200)
        .parse();
    assert_eq!(
        queue.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![receipt.id]
    );
    let ready = http.get("/readyz", None).await;
    assert_eq!(
        ready.status, 200,
        "still ready while the database is: {}",
        ready.text
    );
}
