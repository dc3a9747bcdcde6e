//! Flag → HP push latency: a peer raises flags (each with a sealed excerpt copy for the
//! supervising HP's device) one after another; the HP's device is connected to its stream
//! on another replica-like path (the bus). For each flag the time from the start of the
//! `POST …/flags` request to the arrival of the `flag` notice on the HP's WebSocket is
//! measured; p50 and p99 are printed per backend (SQLite + in-process bus, PostgreSQL +
//! Redis). Usage: `peerbridge-flag-bench [flags]` (default 300).

use std::time::Instant;

use peerbridge_openapi::signed::escalation_key_message;
use peerbridge_tests::mls_device::{Stream, b64};
use peerbridge_tests::{Backend, TestApp, backends};
use serde_json::json;
use uuid::Uuid;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(backend: Backend, flags: usize) -> (f64, f64, f64) {
    let app = TestApp::spawn(backend).await;
    let c = app.client();
    let (_, hp, peer) = app.peer_with_supervisor().await;
    // The HP device's escalation key (any X25519-sized key: the server never opens it).
    let hpke = [5u8; 32];
    c.put(
        "/v1/me/escalation-key",
        Some(hp.token()),
        json!({ "public_key": b64(&hpke), "signature": b64(&hp.device.sign(&escalation_key_message(&hpke))) }),
    )
    .await
    .expect(204);
    let conv_id = app.supervision_opened_alone(&peer).await;
    let mut ws = Stream::connect(&app.base, hp.token()).await;
    ws.until("hello").await;
    let excerpt = json!([{ "public_key": b64(&hpke), "enc": b64(&[9u8; 32]), "ciphertext": b64(&[1u8; 2048]) }]);
    let mut lat = Vec::with_capacity(flags);
    let started = Instant::now();
    for _ in 0..flags {
        let t = Instant::now();
        let r = c
            .post(
                &format!("/v1/conversations/{conv_id}/flags"),
                Some(peer.token()),
                json!({ "client_id": Uuid::new_v4(), "kind": "flag", "category": "suicide_risk",
                        "severity": "imminent", "excerpts": excerpt }),
            )
            .await;
        r.expect(201);
        let n = ws.until("flag").await;
        assert_eq!(n["event"], "raised");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let per_s = flags as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    (percentile(&lat, 0.5), percentile(&lat, 0.99), per_s)
}

#[tokio::main]
async fn main() {
    let flags: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    println!("flags={flags} (sequential, one sealed copy of 2 KiB each)");
    println!("| backend | p50 ms | p99 ms | flags/s |");
    println!("|---|---|---|---|");
    for backend in backends().await {
        let (p50, p99, per_s) = run(backend, flags).await;
        let name = match backend {
            Backend::Sqlite => "SQLite + in-process bus",
            Backend::Postgres => "PostgreSQL + Redis",
        };
        println!("| {name} | {p50:.1} | {p99:.1} | {per_s:.0} |");
    }
}
