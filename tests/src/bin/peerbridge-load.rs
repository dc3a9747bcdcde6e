//! Open-loop load generator for the delivery path (issue 18's measuring tool).
//!
//! For each backend (SQLite + in-process bus; PostgreSQL + Redis when both are up) it starts
//! the real `peerbridge` binary, sets up `C` supervision conversations (one peer device
//! sending in each, HP devices receiving, several conversations per HP), and measures in
//! one sitting, as ratios against references taken in the same run:
//!
//! - **maximum accepted sends/s**: an open-loop ladder of offered rates (a fixed schedule,
//!   one task per send, many in flight: the generator does not slow down with the server);
//!   payloads are MLS ciphertexts encrypted before the run, so client crypto is not measured;
//! - **send → delivered** p50/p99/p999 at half that maximum, "delivered" meaning the
//!   receiving device has the entry: from its notice when the notice carried the next
//!   entry, else read over HTTP after the notice (then it acknowledges what it read, as the
//!   SDK does);
//! - the server's CPU (cores) and RSS; accepted and delivered rates;
//! - the maximum offered for `S` seconds: what is accepted and the server's RSS after it;
//! - the maximum with 4 conversations against all `C`, and with `I` idle WebSockets open
//!   against none (and the RSS each idle socket costs);
//! - **references**: the same database's raw single-row insert rate (same payload, one
//!   commit per row; PostgreSQL with 8 connections), and an in-memory relay (no auth, no
//!   durability, like the openmls example delivery service) under this same sender;
//! - flags raised during the half-maximum step: raise → supervising HP's notice p50/p99;
//! - with Redis: send latency in a closed loop with Redis up, then cut.
//!
//! `cargo run --release -p peerbridge-tests --bin peerbridge-load -- [conversations]
//! [idle sockets] [seconds per step] [seconds at max]` (defaults 200, 2000, 4, 60). Run it on a quiet machine
//! with `ulimit -n 65536`. Figures only: nothing here asserts a speed. `I` = 0 or `S` = 0
//! leaves that phase out; `PEERBRIDGE_LOAD_QUICK=1` measures only the maxima and the
//! half-maximum step on SQLite (for profiling). What the server's caches and group commit did in each maximum goes to
//! stderr.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use peerbridge_mls::{Envelope, GroupId, MessageId};
use peerbridge_openapi::auth::Session;
use peerbridge_openapi::delivery::LogPage;
use peerbridge_server::config::DatabaseKind;
use peerbridge_server::crypto::keys::generate_key_b64;
use peerbridge_tests::api::device_login_at;
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::binary::{ServerProcess, command};
use peerbridge_tests::mls_device::{MlsDevice, b64, unb64};
use peerbridge_tests::{Backend, Client, TestApp, redis_url};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Conversations each HP device receives.
const CONVS_PER_HP: usize = 25;
/// Distinct ciphertexts per conversation, reused with fresh client ids (the server does not
/// decrypt; the receivers here do not either).
const PAYLOADS: usize = 8;
/// Sends in flight at most; beyond it a send is counted as refused by the generator.
const IN_FLIGHT: usize = 16_384;
/// Sends per round of the Redis outage phase.
const OUTAGE_SENDS: usize = 400;

/// One conversation as the generator drives it.
#[derive(Clone)]
struct Conv {
    id: Uuid,
    /// The sending peer device's access token at the measured server.
    token: String,
    payloads: Arc<Vec<String>>,
}

/// A send the server accepted: conversation index, seq, sent at, answered at.
type Accepted = (usize, u64, Instant, Instant);

/// An HP device's access token at the measured server and the conversations it receives
/// (index, id, start cursor).
type HpReceiver = (String, Vec<(usize, Uuid, u64)>);

/// When each entry was read by its receiver, by (conversation index, seq).
type Deliveries = Arc<Mutex<HashMap<(usize, u64), Instant>>>;

/// When the first `flag` notice of each raised flag reached a supervising HP's socket.
type FlagNotices = Arc<Mutex<HashMap<Uuid, Instant>>>;

/// Flags raised per second while messages flow at half the maximum.
const FLAGS_PER_S: f64 = 4.0;

/// Raises a flag every 1/[`FLAGS_PER_S`] s, by each conversation's peer in turn, until
/// `stop`; when each was sent, by flag id, and how many were refused.
async fn raise_flags(
    http: reqwest::Client,
    base: String,
    convs: Vec<Conv>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<(Uuid, Instant)>, usize) {
    let mut raised = Vec::new();
    let mut refused = 0;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / FLAGS_PER_S));
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let c = &convs[k % convs.len()];
        k += 1;
        let t0 = Instant::now();
        let r = http
            .post(format!("{base}/v1/conversations/{}/flags", c.id))
            .bearer_auth(&c.token)
            .json(&json!({ "client_id": Uuid::new_v4(), "kind": "flag",
                           "category": "suicide_risk", "severity": "imminent", "excerpts": [] }))
            .send()
            .await;
        let id = match r {
            Ok(r) if r.status().as_u16() == 201 => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["id"].as_str().and_then(|s| s.parse::<Uuid>().ok())),
            _ => None,
        };
        match id {
            Some(id) => raised.push((id, t0)),
            None => refused += 1,
        }
    }
    (raised, refused)
}

#[derive(Default, Clone, Copy)]
struct Step {
    offered: f64,
    accepted: f64,
    delivered: f64,
    refused: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    undelivered: usize,
    cpu: f64,
    rss: f64,
}

fn proc_field(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("http client")
}

/// Offers `rate` sends/s for `secs` across `convs` (round robin) against `base`, then waits
/// up to 5 s for stragglers. Each send is its own task: the schedule does not wait for
/// answers. `deliveries` (when receivers run) gives send → delivered latency.
async fn offer(
    http: &reqwest::Client,
    base: &str,
    convs: &[Conv],
    rate: f64,
    secs: f64,
    deliveries: Option<&Deliveries>,
    pid: Option<u32>,
) -> Step {
    let sent: Arc<Mutex<Vec<Accepted>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let cpu0 = pid.map(cpu_seconds).unwrap_or(0.0);
    let start = Instant::now();
    let total = (rate * secs).round() as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut issued = 0u64;
    while issued < total {
        tick.tick().await;
        // Every send due by now goes out now (a fixed schedule, whatever the answers do).
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        while issued < due {
            let k = issued as usize % convs.len();
            let c = &convs[k];
            let Ok(permit) = gate.clone().try_acquire_owned() else {
                refused.fetch_add(1, Ordering::Relaxed);
                issued += 1;
                continue;
            };
            let body = format!(
                r#"{{"client_id":"{}","ciphertext":"{}"}}"#,
                Uuid::new_v4(),
                c.payloads[issued as usize % c.payloads.len()]
            );
            let req = http
                .post(format!("{base}/v1/conversations/{}/messages", c.id))
                .bearer_auth(&c.token)
                .header("content-type", "application/json")
                .body(body);
            let sent = sent.clone();
            let refused = refused.clone();
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let r = req.send().await;
                let ok = match r {
                    Ok(r) if r.status().as_u16() == 201 => r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["seq"].as_u64()),
                    _ => None,
                };
                match ok {
                    Some(seq) => sent
                        .lock()
                        .expect("lock")
                        .push((k, seq, t0, Instant::now())),
                    None => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(permit);
            }));
            issued += 1;
        }
    }
    let window = start.elapsed().as_secs_f64().max(secs);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let cpu = pid.map(|p| (cpu_seconds(p) - cpu0) / start.elapsed().as_secs_f64());
    // Receivers get a moment to read the last entries.
    if deliveries.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let sent = sent.lock().expect("lock").clone();
    let end = start + Duration::from_secs_f64(window);
    let accepted = sent.iter().filter(|s| s.3 <= end).count() as f64 / window;
    let mut step = Step {
        offered: rate,
        accepted,
        refused: refused.load(Ordering::Relaxed),
        cpu: cpu.unwrap_or(0.0),
        rss: pid.map(|p| proc_field(p, "VmRSS:")).unwrap_or(0.0),
        ..Step::default()
    };
    if let Some(d) = deliveries {
        let d = d.lock().expect("lock");
        let mut lat = Vec::with_capacity(sent.len());
        let mut delivered_in_window = 0usize;
        for (k, seq, t0, _) in &sent {
            match d.get(&(*k, *seq)) {
                Some(at) => {
                    lat.push(at.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
                    if *at <= end {
                        delivered_in_window += 1;
                    }
                }
                None => step.undelivered += 1,
            }
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        step.delivered = delivered_in_window as f64 / window;
        step.p50 = percentile(&lat, 0.5);
        step.p99 = percentile(&lat, 0.99);
        step.p999 = percentile(&lat, 0.999);
    }
    step
}

/// The highest accepted rate: a ladder of offered rates (×1.5 a step from `from`) up to the
/// first the server does not keep up with (accepts less than 90 % of what was offered, or
/// more than 1 % was refused: by the server with 503 when its writer's room is full, or by
/// the generator at its in-flight limit), then three bisections between the last rate it kept up
/// with and that one, so the figure is within about 6 % of the ladder step.
async fn maximum(
    http: &reqwest::Client,
    base: &str,
    convs: &[Conv],
    from: f64,
    secs: f64,
    pid: Option<u32>,
) -> Step {
    // A server that sheds load refuses a few sends in a step's first moments or during a
    // stall (a checkpoint) while it keeps up with the rest.
    let kept_up =
        |s: &Step, rate: f64| s.accepted >= 0.9 * rate && s.refused as f64 <= 0.01 * rate * secs;
    let mut best = Step::default();
    let (mut lo, mut hi) = (0.0, None);
    let mut rate = from;
    for _ in 0..12 {
        let s = offer(http, base, convs, rate, secs, None, pid).await;
        if s.accepted > best.accepted {
            best = s;
        }
        if !kept_up(&s, rate) {
            hi = Some(rate);
            break;
        }
        lo = rate;
        rate *= 1.5;
    }
    if let Some(mut hi) = hi
        && lo > 0.0
    {
        for _ in 0..3 {
            let mid = (lo + hi) / 2.0;
            let s = offer(http, base, convs, mid, secs, None, pid).await;
            if s.accepted > best.accepted {
                best = s;
            }
            if kept_up(&s, mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    best
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A device's `/v1/stream` WebSocket.
async fn connect(base: &str, token: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/v1/stream", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects")
        .0
}

/// Every receiving device on its WebSocket, handling each `message` notice as the SDK
/// does: a notice carrying the very next entry is taken as read (no HTTP read), any other
/// wakes that conversation's reader, which reads from its cursor over HTTP; either way the
/// time is recorded and what was read acknowledged.
async fn receivers(
    base: &str,
    hp_tokens: &[HpReceiver],
    flags: &FlagNotices,
) -> (Deliveries, Vec<tokio::task::JoinHandle<()>>) {
    let deliveries: Deliveries = Arc::default();
    let mut tasks = Vec::new();
    for (token, convs) in hp_tokens {
        // By conversation: (the notice's seq, the seq of the entry it carried).
        let mut wakers: HashMap<Uuid, tokio::sync::mpsc::UnboundedSender<(u64, Option<u64>)>> =
            HashMap::new();
        for &(k, conv, start) in convs {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<u64>)>();
            wakers.insert(conv, tx);
            let http = Client::new(base);
            let token = token.clone();
            let deliveries = deliveries.clone();
            tasks.push(tokio::spawn(async move {
                let mut cursor = start;
                while let Some((seq, inline)) = rx.recv().await {
                    if seq <= cursor {
                        continue;
                    }
                    if inline == Some(seq) && seq == cursor + 1 {
                        deliveries
                            .lock()
                            .expect("lock")
                            .insert((k, seq), Instant::now());
                        cursor = seq;
                    } else {
                        loop {
                            let r = http
                                .get(
                                    &format!(
                                        "/v1/conversations/{conv}/messages?after={cursor}&limit=500"
                                    ),
                                    Some(&token),
                                )
                                .await;
                            if r.status != 200 {
                                break;
                            }
                            let page: LogPage = r.parse();
                            let now = Instant::now();
                            {
                                let mut d = deliveries.lock().expect("lock");
                                for e in &page.items {
                                    d.insert((k, e.seq), now);
                                }
                            }
                            let more = page.items.len() == 500;
                            cursor = page.cursor;
                            if !more {
                                break;
                            }
                        }
                    }
                    // As an app does once it has processed what it read: the server
                    // deletes ciphertext every member device acknowledged.
                    let _ = http
                        .post(
                            &format!("/v1/conversations/{conv}/ack"),
                            Some(&token),
                            serde_json::json!({ "seq": cursor }),
                        )
                        .await;
                }
            }));
        }
        let mut ws = connect(base, token).await;
        let flags = flags.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(t) = frame else { continue };
                let Ok(n) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                    continue;
                };
                if n["type"] == "flag" && n["event"] == "raised" {
                    if let Some(id) = n["flag_id"].as_str().and_then(|s| s.parse().ok()) {
                        flags
                            .lock()
                            .expect("lock")
                            .entry(id)
                            .or_insert_with(Instant::now);
                    }
                    continue;
                }
                if n["type"] != "message" {
                    continue;
                }
                let conv = n["conversation_id"]
                    .as_str()
                    .and_then(|s| s.parse::<Uuid>().ok());
                if let (Some(tx), Some(seq)) =
                    (conv.and_then(|c| wakers.get(&c)), n["seq"].as_u64())
                {
                    let _ = tx.send((seq, n["entry"]["seq"].as_u64()));
                }
            }
        }));
    }
    (deliveries, tasks)
}

struct Setup {
    convs: Vec<Conv>,
    hps: Vec<HpReceiver>,
    /// Access tokens of HP devices in no conversation: their sockets are truly idle (no
    /// notice is ever addressed to them), unlike extra sockets of a receiving device.
    idle: Vec<String>,
    payload: usize,
}

/// HP devices whose sockets stand for the idle connections (each holds a share of them).
const IDLE_DEVICES: usize = 5;

async fn setup(app: &TestApp, server: &Client, n: usize) -> Setup {
    let c = app.client();
    let mut op = app.bootstrap_operator().await;
    let (clinic, first) = app.clinic_with_hp(&op, "Load").await;
    let mut idle_hps = Vec::with_capacity(IDLE_DEVICES);
    for i in 0..IDLE_DEVICES {
        idle_hps.push(
            app.create_staff(&op, clinic, "hp", &format!("Idle HP {i}"))
                .await,
        );
    }
    // Each HP is made just before its conversations and done with them before the next:
    // every staff set-up moves the test clock 30 s (a fresh TOTP step), which outlasts the
    // 10-minute sessions of an operator and of HPs made long before.
    let mut first = Some(first);
    let mut staff_made = IDLE_DEVICES;
    let mut convs = Vec::with_capacity(n);
    let mut by_hp = Vec::new();
    let mut payload = 0;
    for h in 0..n.div_ceil(CONVS_PER_HP) {
        // An operator's access token lasts 10 minutes of the test clock: 20 staff set-ups.
        let hp = match first.take() {
            Some(hp) => hp,
            None => {
                if staff_made.is_multiple_of(10) {
                    op = app.bootstrap_operator().await;
                }
                staff_made += 1;
                app.create_staff(&op, clinic, "hp", &format!("HP {h}"))
                    .await
            }
        };
        let hp = &hp;
        let mut dev = MlsDevice::new(c.clone(), hp.token(), hp.session.device_id, &hp.device);
        let block = h * CONVS_PER_HP..((h + 1) * CONVS_PER_HP).min(n);
        for k in block.clone() {
            let peer = app.supervised_peer(hp, clinic).await;
            dev.upload_key_packages(1).await.expect(200);
            let mut p = MlsDevice::new(
                c.clone(),
                peer.token(),
                peer.session.device_id,
                &peer.device,
            );
            let conv = app.supervision_conversation(&peer).await;
            let claimed: Vec<peerbridge_openapi::delivery::ClaimedKeyPackage> = p
                .claim(conv.id, hp.session.user_id)
                .await
                .expect(200)
                .parse();
            p.open_group(conv.id, &conv.group_id, &claimed)
                .await
                .expect(201);
            let gid = GroupId::new(unb64(&conv.group_id)).expect("gid");
            let payloads: Vec<String> = (0..PAYLOADS)
                .map(|i| {
                    let ct = p
                        .mls
                        .encrypt(
                            &gid,
                            &Envelope::Text {
                                id: MessageId::random(),
                                body: format!("load {k}:{i} {}", "x".repeat(160)),
                                sent_at: 0,
                            },
                        )
                        .expect("encrypt");
                    payload = ct.len();
                    b64(&ct)
                })
                .collect();
            let s: Session = device_login_at(server, peer.session.device_id, &peer.device)
                .await
                .expect(200)
                .parse();
            convs.push(Conv {
                id: conv.id,
                token: s.access_token,
                payloads: Arc::new(payloads),
            });
        }
        let joined: HashMap<Uuid, u64> = dev.accept_welcomes().await.into_iter().collect();
        let s: Session = device_login_at(server, hp.session.device_id, &hp.device)
            .await
            .expect(200)
            .parse();
        let mine = block
            .map(|k| {
                (
                    k,
                    convs[k].id,
                    joined.get(&convs[k].id).copied().unwrap_or(0),
                )
            })
            .collect();
        by_hp.push((s.access_token, mine));
    }
    let mut idle = Vec::with_capacity(IDLE_DEVICES);
    for hp in &idle_hps {
        let s: Session = device_login_at(server, hp.session.device_id, &hp.device)
            .await
            .expect(200)
            .parse();
        idle.push(s.access_token);
    }
    Setup {
        convs,
        hps: by_hp,
        idle,
        payload,
    }
}

/// The database's own single-row insert rate with the same payload size, one commit per
/// row (SQLite: one connection, as its single writer; PostgreSQL: 8 connections).
async fn raw_inserts(url: &str, backend: Backend, payload: usize) -> f64 {
    let kind = match backend {
        Backend::Sqlite => DatabaseKind::Sqlite,
        _ => DatabaseKind::Postgres,
    };
    let conns = if backend == Backend::Sqlite { 1 } else { 8 };
    let db = peerbridge_server::storage::connect_url(url, kind, conns)
        .await
        .expect("db");
    let blob = if backend == Backend::Sqlite {
        "BLOB"
    } else {
        "BYTEA"
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE load_raw (id BIGINT PRIMARY KEY, payload {blob} NOT NULL)"
    ))
    .await
    .expect("table");
    let n = 3000u64;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conns {
        let db = db.clone();
        let next = next.clone();
        let bytes = vec![0x5au8; payload];
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let sql = if backend == Backend::Sqlite {
                    "INSERT INTO load_raw (id, payload) VALUES (?, ?)"
                } else {
                    "INSERT INTO load_raw (id, payload) VALUES ($1, $2)"
                };
                db.execute_raw(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    sql,
                    [(i as i64).into(), bytes.clone().into()],
                ))
                .await
                .expect("insert");
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The reference: an in-memory relay with the send route's shape (no auth, no durability,
/// no fan-out work beyond appending), like the openmls example delivery service.
async fn reference_relay() -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    type Logs = web::Data<Mutex<HashMap<String, Vec<web::Bytes>>>>;
    async fn send(logs: Logs, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
        let mut l = logs.lock().expect("lock");
        let log = l.entry(path.into_inner()).or_default();
        log.push(body);
        HttpResponse::Created().json(json!({ "seq": log.len(), "created": true }))
    }
    let logs: Logs = web::Data::new(Mutex::new(HashMap::new()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(logs.clone())
            .route("/v1/conversations/{id}/messages", web::post().to(send))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{addr}")
}

/// Flags raised at half the maximum and how fast their supervising HP heard.
#[derive(Default, Clone, Copy)]
struct FlagFigures {
    raised: usize,
    refused: usize,
    /// Raised but no `flag` notice reached an HP socket.
    unnotified: usize,
    p50: f64,
    p99: f64,
}

struct Figures {
    backend: &'static str,
    flags: FlagFigures,
    max: Step,
    half: Step,
    max_4: Step,
    /// Offered at the maximum for the sustained seconds.
    sustained: Step,
    max_idle: Step,
    idle_kib: f64,
    raw: f64,
    relay: f64,
    payload: usize,
    outage: Option<[(f64, f64); 2]>,
    /// Messages appended per group commit over the whole run.
    per_commit: f64,
}

/// The server's `/metrics` (empty when it does not answer).
async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A counter of the server's `/metrics`.
async fn server_counter(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = metrics_text(http, base).await;
    peerbridge_tests::api::metric_value(&text, name).unwrap_or(f64::NAN)
}

/// The cumulative buckets (upper bound in seconds, count) of the server's request-duration
/// histogram for one method and route.
async fn server_buckets(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    route: &str,
) -> Vec<(f64, f64)> {
    let text = metrics_text(http, base).await;
    let labels = format!("method=\"{method}\",route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with("peerbridge_http_request_duration_seconds_bucket{"))
        .filter(|l| l.contains(&labels))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which a fraction `q` of the requests between two readings of
/// [`server_buckets`] finished (in ms), and how many there were.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let count = |b: &[(f64, f64)], le: f64| {
        b.iter()
            .find(|(l, _)| *l == le)
            .map(|(_, c)| *c)
            .unwrap_or(0.0)
    };
    let n = after
        .last()
        .map(|(le, c)| c - count(before, *le))
        .unwrap_or(0.0);
    let at = after
        .iter()
        .find(|(le, c)| c - count(before, *le) >= q * n)
        .map(|(le, _)| le * 1000.0)
        .unwrap_or(f64::NAN);
    (at, n)
}

/// The server's count of sends refused because its message writer's room was full.
const WRITER_REFUSED: &str = "peerbridge_writer_refused_total{writer=\"messages\"}";

/// The server's counters that explain a phase, as `name=value` pairs (printed to stderr
/// after each maximum): the caches' hits and misses, commits and what they appended.
async fn server_counters(http: &reqwest::Client, base: &str) -> Vec<(&'static str, f64)> {
    let text = metrics_text(http, base).await;
    [
        "peerbridge_auth_cache_hits",
        "peerbridge_auth_cache_misses",
        "peerbridge_access_cache_hits",
        "peerbridge_access_cache_misses",
        "peerbridge_message_commits_total",
        "peerbridge_messages_committed_total",
    ]
    .into_iter()
    .map(|n| {
        (
            n,
            peerbridge_tests::api::metric_value(&text, n).unwrap_or(f64::NAN),
        )
    })
    .collect()
}

/// [`maximum`], then what the server's counters moved by during it (stderr).
async fn maximum_explained(
    label: &str,
    http: &reqwest::Client,
    base: &str,
    convs: &[Conv],
    secs: f64,
    pid: Option<u32>,
) -> Step {
    let before = server_counters(http, base).await;
    let step = maximum(http, base, convs, 100.0, secs, pid).await;
    let after = server_counters(http, base).await;
    let moved: Vec<String> = before
        .iter()
        .zip(&after)
        .map(|((n, b), (_, a))| format!("{}={:.0}", n.trim_start_matches("peerbridge_"), a - b))
        .collect();
    eprintln!(
        "{label}: max {:.0}/s at {:.2} cores; {}",
        step.accepted,
        step.cpu,
        moved.join(" ")
    );
    step
}

async fn run(backend: Backend, n: usize, idle: usize, secs: f64, sustain: f64) -> Figures {
    let (jwt, field, index) = (generate_key_b64(), generate_key_b64(), generate_key_b64());
    let prefix = format!("pbload{}", Uuid::new_v4().simple());
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
    // The server reaches Redis through a relay the generator can cut.
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
    let pid = server.child.id();
    let set = setup(&app, &Client::new(&base), n).await;
    eprintln!("{n} conversations set up");
    let http = http_client();

    // Idle sockets first, on a server that has not yet grown its heap under load: what
    // each costs, and the maximum with them open.
    let rss_before = pid.map(|p| proc_field(p, "VmRSS:")).unwrap_or(0.0);
    // An idle device still reads its socket (so pings are answered), nothing more. The
    // sockets belong to devices in no conversation, so no notice is addressed to them.
    let mut sockets = Vec::with_capacity(idle);
    for k in 0..idle {
        let mut ws = connect(&base, &set.idle[k % set.idle.len()]).await;
        sockets.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.map(|p| proc_field(p, "VmRSS:")).unwrap_or(0.0);
    let idle_kib = if idle > 0 {
        (rss_after - rss_before) * 1024.0 / idle as f64
    } else {
        0.0
    };
    let max_idle = if idle > 0 {
        maximum_explained("with idle sockets", &http, &base, &set.convs, secs, pid).await
    } else {
        Step::default()
    };
    for s in sockets {
        s.abort();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The maximum with every conversation, then 4; the latency at half the maximum with
    // the receivers reading.
    let max = maximum_explained("all conversations", &http, &base, &set.convs, secs, pid).await;
    let max_4 = maximum_explained(
        "4 conversations",
        &http,
        &base,
        &set.convs[..4.min(n)],
        secs,
        pid,
    )
    .await;
    let quick = std::env::var_os("PEERBRIDGE_LOAD_QUICK").is_some();
    let sustained = if sustain > 0.0 && !quick {
        let refused_before = server_counter(&http, &base, WRITER_REFUSED).await;
        let step = offer(&http, &base, &set.convs, max.accepted, sustain, None, pid).await;
        let refused_after = server_counter(&http, &base, WRITER_REFUSED).await;
        eprintln!(
            "{sustain} s at the maximum ({:.0}/s offered): {:.0}/s accepted, {} not accepted; the server refused {} sends with 503 (its writer's room full)",
            step.offered,
            step.accepted,
            step.refused,
            refused_after - refused_before
        );
        step
    } else {
        Step::default()
    };
    let flag_notices = FlagNotices::default();
    let (deliveries, readers) = receivers(&base, &set.hps, &flag_notices).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Flags raised while the messages flow: the escalation path's latency under load.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flagger = tokio::spawn(raise_flags(
        http.clone(),
        base.clone(),
        set.convs.clone(),
        stop.clone(),
    ));
    const ROUTES: [(&str, &str); 3] = [
        ("POST", "/v1/conversations/{conversation_id}/flags"),
        ("POST", "/v1/conversations/{conversation_id}/messages"),
        ("POST", "/v1/conversations/{conversation_id}/ack"),
    ];
    let mut before = Vec::new();
    for (method, route) in ROUTES {
        before.push(server_buckets(&http, &base, method, route).await);
    }
    let half = offer(
        &http,
        &base,
        &set.convs,
        (max.accepted / 2.0).max(10.0),
        secs * 2.0,
        Some(&deliveries),
        pid,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    // Where a request's time went: inside the server (these) or before it got there.
    for ((method, route), before) in ROUTES.into_iter().zip(&before) {
        let after = server_buckets(&http, &base, method, route).await;
        let (p50, n) = bucket_quantile(before, &after, 0.5);
        let (p99, _) = bucket_quantile(before, &after, 0.99);
        eprintln!(
            "half-maximum step, in the server: {method} {route}: {n} requests, p50 <= {p50} ms, p99 <= {p99} ms"
        );
    }
    let (raised, flags_refused) = flagger.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flags = {
        let seen = flag_notices.lock().expect("lock");
        let mut lat: Vec<f64> = raised
            .iter()
            .filter_map(|(id, t0)| seen.get(id).map(|at| at.duration_since(*t0)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        FlagFigures {
            raised: raised.len(),
            refused: flags_refused,
            unnotified: raised.len() - lat.len(),
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
        }
    };
    for r in readers {
        r.abort();
    }
    if quick {
        // The maxima and the half-maximum step only (for profiling the server).
        return Figures {
            backend: "quick",
            flags,
            max,
            half,
            max_4,
            sustained: Step::default(),
            max_idle,
            idle_kib,
            raw: f64::NAN,
            relay: f64::NAN,
            payload: set.payload,
            outage: None,
            per_commit: f64::NAN,
        };
    }
    // The maximum held for a while: what the server accepts and the RSS it settles at.

    // With Redis: closed-loop send latency with Redis up, then cut.
    let outage = match &relay {
        Some(relay) => {
            let mut figures = [(0.0, 0.0); 2];
            for (round, up) in [true, false].into_iter().enumerate() {
                relay.set_up(up);
                tokio::time::sleep(Duration::from_secs(2)).await;
                let mut lat = Vec::new();
                for i in 0..OUTAGE_SENDS {
                    let c = &set.convs[i % set.convs.len()];
                    let t = Instant::now();
                    let r = http
                        .post(format!("{base}/v1/conversations/{}/messages", c.id))
                        .bearer_auth(&c.token)
                        .json(&json!({ "client_id": Uuid::new_v4(), "ciphertext": c.payloads[0] }))
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(r.status().as_u16(), 201);
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

    let per_commit = server_counter(&http, &base, "peerbridge_messages_committed_total").await
        / server_counter(&http, &base, "peerbridge_message_commits_total").await;
    let raw = raw_inserts(&app.db.url, backend, set.payload).await;
    let relay_base = reference_relay().await;
    let relay_max = maximum(&http, &relay_base, &set.convs, 1000.0, secs, None).await;
    Figures {
        backend: if backend == Backend::Sqlite {
            "SQLite + in-process bus"
        } else {
            "PostgreSQL + Redis"
        },
        flags,
        max,
        half,
        max_4,
        sustained,
        max_idle,
        idle_kib,
        raw,
        relay: relay_max.accepted,
        payload: set.payload,
        outage,
        per_commit,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200).max(4);
    let idle = args.get(1).copied().unwrap_or(2000);
    let secs = args.get(2).copied().unwrap_or(4) as f64;
    let sustain = args.get(3).copied().unwrap_or(60) as f64;
    let started = Instant::now();
    let mut all = vec![run(Backend::Sqlite, n, idle, secs, sustain).await];
    if std::env::var_os("PEERBRIDGE_LOAD_QUICK").is_none()
        && postgres_available().await
        && redis_available().await
    {
        all.push(run(Backend::Postgres, n, idle, secs, sustain).await);
    }
    println!(
        "conversations={n} idle sockets={idle} seconds per step={secs} seconds at max={sustain}"
    );
    println!(
        "| backend | max accepted/s | raw inserts/s | ÷ raw | relay/s | ÷ relay | at half max (offered/s): delivered/s, p50/p99/p999 ms, undelivered | server CPU cores at max | {sustain:.0} s at max: accepted/s, RSS MiB after | max with 4 convs ({n} ÷ 4) | max with {idle} idle sockets (÷ none) | RSS per idle socket KiB | payload B |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.3} | ({:.0}) {:.0}, {:.1}/{:.1}/{:.1}, {} | {:.2} | {:.0}, {:.0} | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.1} | {} |",
            f.backend,
            f.max.accepted,
            f.raw,
            f.max.accepted / f.raw,
            f.relay,
            f.max.accepted / f.relay,
            f.half.offered,
            f.half.delivered,
            f.half.p50,
            f.half.p99,
            f.half.p999,
            f.half.undelivered,
            f.max.cpu,
            f.sustained.accepted,
            f.sustained.rss,
            f.max_4.accepted,
            f.max.accepted / f.max_4.accepted,
            f.max_idle.accepted,
            f.max_idle.accepted / f.max.accepted,
            f.idle_kib,
            f.payload
        );
    }
    for f in &all {
        println!(
            "{}: {:.1} messages per group commit over the run",
            f.backend, f.per_commit
        );
        println!(
            "{}: {} flags raised at {FLAGS_PER_S} per s during the half-maximum step ({} refused): raise -> HP notice p50 {:.1} ms p99 {:.1} ms, {} never notified",
            f.backend,
            f.flags.raised,
            f.flags.refused,
            f.flags.p50,
            f.flags.p99,
            f.flags.unnotified
        );
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
