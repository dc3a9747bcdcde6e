//! Delivery benchmark: starts the real `peerbridge` binary (SQLite + in-process bus, then
//! PostgreSQL + Redis), drives supervision pairs over HTTP + WebSocket with the real client
//! core, and prints durable messages/s accepted, messages/s delivered, p50/p99
//! send→receive latency at a fixed offered load, the server's RSS, and the raw single-row
//! insert rate of the same database with the same payload size.
//!
//! `cargo run --release -p peerbridge-tests --bin peerbridge-bench -- [pairs] [burst] [rate]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbridge_mls::{Envelope, GroupId, MessageId};
use peerbridge_openapi::auth::Session;
use peerbridge_server::config::DatabaseKind;
use peerbridge_server::crypto::keys::generate_key_b64;
use peerbridge_tests::api::device_login_at;
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::binary::{ServerProcess, command};
use peerbridge_tests::mls_device::{Stream, b64, unb64};
use peerbridge_tests::{Backend, Client, TestApp, redis_url};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use uuid::Uuid;

struct Figures {
    backend: &'static str,
    accepted_per_s: f64,
    delivered_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    offered: u32,
    rss_mib: f64,
    raw_inserts_per_s: f64,
    payload: usize,
    /// Send latency (p50, p99 ms) in a closed loop with Redis up, then with it cut.
    outage: Option<[(f64, f64); 2]>,
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(backend: Backend, pairs: usize, burst: usize, rate: u32) -> Figures {
    let (jwt, field, index) = (generate_key_b64(), generate_key_b64(), generate_key_b64());
    let prefix = format!("pbbench{}", Uuid::new_v4().simple());
    let redis = (backend == Backend::Postgres).then(redis_url);
    let (j, f, i, p, r) = (
        jwt.clone(),
        field.clone(),
        index.clone(),
        prefix.clone(),
        redis.clone(),
    );
    let app = TestApp::spawn_with(backend, move |c| {
        c.jwt_signing_kid = Some("k1".into());
        c.jwt_signing_key = Some(j);
        c.field_keys = Some(format!("f1:{f}"));
        c.index_key = Some(i);
        c.redis_url = r;
        c.redis_channel_prefix = p;
    })
    .await;
    let mut cmd = command(app.db.dir.path());
    cmd.env("DATABASE_URL", &app.db.url)
        .env("PEERBRIDGE_BIND", "127.0.0.1:0")
        .env("PEERBRIDGE_JWT_SIGNING_KID", "k1")
        .env("PEERBRIDGE_JWT_SIGNING_KEY", &jwt)
        .env("PEERBRIDGE_FIELD_KEYS", format!("f1:{field}"))
        .env("PEERBRIDGE_INDEX_KEY", &index)
        .env("PEERBRIDGE_REDIS_CHANNEL_PREFIX", &prefix)
        .env("PEERBRIDGE_LOG_LEVEL", "info");
    // The server reaches Redis through a relay the bench can cut (an outage for this
    // server only).
    let relay = match &redis {
        Some(_) => Some(peerbridge_tests::relay::Relay::start().await),
        None => None,
    };
    if let Some(r) = &relay {
        cmd.env("REDIS_URL", &r.url);
    }
    let server = ServerProcess::start(cmd).await;
    server.wait_ready().await;
    let base = server.base();

    // Supervision pairs, logged in at the server process.
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut convs = Vec::new();
    for _ in 0..pairs {
        let s = app.supervision_pair().await;
        let http = Client::new(&base);
        let login = |id, key| {
            let http = http.clone();
            async move {
                let s: Session = device_login_at(&http, id, key).await.expect(200).parse();
                s.access_token
            }
        };
        let mut p = s.p;
        p.token = login(s.peer.session.device_id, &s.peer.device).await;
        p.http = http.clone();
        let mut h = s.h;
        h.token = login(s.hp.session.device_id, &s.hp.device).await;
        h.http = http.clone();
        convs.push((s.conv.id, s.conv.group_id.clone(), s.h_start));
        senders.push(p);
        receivers.push(h);
    }

    // Phase 1: fixed offered load, latency measured send → decrypted by the receiver, which
    // learns of messages through its WebSocket and reads them over HTTP.
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let per_pair = (rate as usize * 10).div_ceil(pairs);
    let mut tasks = Vec::new();
    for (k, mut h) in receivers.into_iter().enumerate() {
        let (conv, _, start) = convs[k].clone();
        let sent_at = sent_at.clone();
        let latencies = latencies.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = Stream::connect(&base, &h.token).await;
            let mut cursor = start;
            let mut got = 0;
            while got < per_pair {
                let Ok(n) = ws.next().await else { break };
                if n["type"] != "message" {
                    continue;
                }
                let page: peerbridge_openapi::delivery::LogPage = h
                    .http
                    .get(
                        &format!("/v1/conversations/{conv}/messages?after={cursor}&limit=500"),
                        Some(&h.token),
                    )
                    .await
                    .parse();
                for e in &page.items {
                    for ev in h
                        .mls
                        .process(&unb64(&e.payload), &peerbridge_tests::mls_device::allow_all)
                        .unwrap_or_default()
                    {
                        if let peerbridge_mls::Event::Message {
                            envelope: Envelope::Text { body, .. },
                            ..
                        } = ev
                        {
                            if let Some(t) = sent_at.lock().expect("lock").get(&body) {
                                latencies
                                    .lock()
                                    .expect("lock")
                                    .push(t.elapsed().as_secs_f64() * 1000.0);
                            }
                            got += 1;
                        }
                    }
                }
                cursor = page.cursor;
            }
            (h, cursor)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let interval = Duration::from_secs_f64(pairs as f64 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    for i in 0..per_pair {
        for (k, p) in senders.iter_mut().enumerate() {
            ticker.tick().await;
            let body = format!("{k}:{i}");
            let (conv, gid, _) = &convs[k];
            sent_at
                .lock()
                .expect("lock")
                .insert(body.clone(), Instant::now());
            p.send_text(*conv, gid, &body, Uuid::new_v4())
                .await
                .expect(201);
        }
    }
    let mut receivers = Vec::new();
    let mut cursors = Vec::new();
    for t in tasks {
        let (h, c) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("receivers finish")
            .expect("task");
        receivers.push(h);
        cursors.push(c);
    }
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));

    // Phase 2: durable acceptance rate, all senders at once, ciphertexts prepared first.
    let mut payload = 0;
    let mut batches = Vec::new();
    for (k, p) in senders.iter_mut().enumerate() {
        let gid = GroupId::new(unb64(&convs[k].1)).expect("gid");
        let mut cts = Vec::with_capacity(burst);
        for i in 0..burst {
            let ct = p
                .mls
                .encrypt(
                    &gid,
                    &Envelope::Text {
                        id: MessageId::random(),
                        body: format!("burst {k}:{i} {}", "x".repeat(160)),
                        sent_at: 0,
                    },
                )
                .expect("encrypt");
            payload = ct.len();
            cts.push(b64(&ct));
        }
        batches.push((convs[k].0, p.token.clone(), cts));
    }
    let started = Instant::now();
    let mut sends = Vec::new();
    for (conv, token, cts) in batches {
        let http = Client::new(&base);
        sends.push(tokio::spawn(async move {
            for ct in cts {
                let r = http
                    .post(
                        &format!("/v1/conversations/{conv}/messages"),
                        Some(&token),
                        json!({ "client_id": Uuid::new_v4(), "ciphertext": ct }),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.text);
            }
        }));
    }
    for s in sends {
        s.await.expect("sender");
    }
    let accepted_per_s = (pairs * burst) as f64 / started.elapsed().as_secs_f64();

    // Phase 3: delivery rate, every receiver reading and decrypting its backlog at once.
    let started = Instant::now();
    let mut reads = Vec::new();
    for (k, mut h) in receivers.into_iter().enumerate() {
        let conv = convs[k].0;
        let cursor = cursors[k];
        reads.push(tokio::spawn(
            async move { h.read(conv, cursor).await.0.len() },
        ));
    }
    let mut delivered = 0;
    for r in reads {
        delivered += r.await.expect("reader");
    }
    let delivered_per_s = delivered as f64 / started.elapsed().as_secs_f64();
    let rss = server.child.id().map(rss_mib).unwrap_or(0.0);

    // Phase 4 (with Redis): send latency in a closed loop, Redis up, then Redis cut. A
    // publish never waits for Redis, so the two should be alike.
    let outage = match &relay {
        Some(relay) => {
            let mut figures = [(0.0, 0.0); 2];
            for (round, up) in [true, false].into_iter().enumerate() {
                relay.set_up(up);
                // Let the server's bus notice the change before measuring.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let mut lat = Vec::new();
                for i in 0..OUTAGE_SENDS {
                    let k = i % senders.len();
                    let (conv, gid, _) = &convs[k];
                    let t = Instant::now();
                    senders[k]
                        .send_text(*conv, gid, &format!("outage {round}:{i}"), Uuid::new_v4())
                        .await
                        .expect(201);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                figures[round] = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            }
            relay.set_up(true);
            Some(figures)
        }
        None => None,
    };

    // The database's own single-row insert rate, same payload size, one commit per row.
    let db = peerbridge_server::storage::connect_url(
        &app.db.url,
        if backend == Backend::Sqlite {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        },
        1,
    )
    .await
    .expect("db");
    let blob = if backend == Backend::Sqlite {
        "BLOB"
    } else {
        "BYTEA"
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE bench_raw (id BIGINT PRIMARY KEY, payload {blob} NOT NULL)"
    ))
    .await
    .expect("table");
    let n = 1000;
    let bytes = vec![0x5au8; payload];
    let started = Instant::now();
    for i in 0..n {
        let sql = if backend == Backend::Sqlite {
            "INSERT INTO bench_raw (id, payload) VALUES (?, ?)"
        } else {
            "INSERT INTO bench_raw (id, payload) VALUES ($1, $2)"
        };
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [i.into(), bytes.clone().into()],
        ))
        .await
        .expect("insert");
    }
    let raw_inserts_per_s = n as f64 / started.elapsed().as_secs_f64();
    Figures {
        backend: if backend == Backend::Sqlite {
            "SQLite + in-process bus"
        } else {
            "PostgreSQL + Redis"
        },
        accepted_per_s,
        delivered_per_s,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        offered: rate,
        rss_mib: rss,
        raw_inserts_per_s,
        payload,
        outage,
    }
}

/// Sends per round of the Redis outage phase.
const OUTAGE_SENDS: usize = 400;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pairs = args.first().copied().unwrap_or(4);
    let burst = args.get(1).copied().unwrap_or(500);
    let rate = args.get(2).copied().unwrap_or(100) as u32;
    let started = Instant::now();
    let mut all = vec![run(Backend::Sqlite, pairs, burst, rate).await];
    if postgres_available().await && redis_available().await {
        all.push(run(Backend::Postgres, pairs, burst, rate).await);
    }
    println!("pairs={pairs} burst={burst}/pair offered={rate} msg/s");
    println!(
        "| backend | accepted msg/s | delivered msg/s | p50 ms | p99 ms (at {rate}/s) | server RSS MiB | raw inserts/s | accepted ÷ raw | payload B |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {} |",
            f.backend,
            f.accepted_per_s,
            f.delivered_per_s,
            f.p50_ms,
            f.p99_ms,
            f.rss_mib,
            f.raw_inserts_per_s,
            f.accepted_per_s / f.raw_inserts_per_s,
            f.payload
        );
        let _ = f.offered;
    }
    for f in &all {
        if let Some([(up50, up99), (down50, down99)]) = f.outage {
            println!(
                "{}: send latency in a closed loop of {OUTAGE_SENDS}: Redis up p50 {up50:.1} ms p99 {up99:.1} ms; Redis cut p50 {down50:.1} ms p99 {down99:.1} ms; p99 cut ÷ up {:.2}",
                f.backend,
                down99 / up99
            );
        }
    }
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
}
