//! Offline devices get a content-free wake-up at their registered push endpoint (a local
//! HTTP receiver here); only operator-allowed gateways can be registered.

use std::sync::{Arc, Mutex};

use peerbridge_tests::mls_device::Stream;
use peerbridge_tests::{Backend, TestApp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A minimal push gateway: records (path, body) of every POST and answers 201.
async fn gateway() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
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
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(split) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = &text[..split];
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < split + 4 + len {
                        continue;
                    }
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let body = text[split + 4..split + 4 + len].to_owned();
                    store.lock().expect("lock").push((path, body));
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
