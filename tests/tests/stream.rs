//! The per-device WebSocket: notices for new messages, a backlog on reconnect, fan-out
//! across replicas through Redis, close 1001 on shutdown and immediate close on revocation.

use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::mls_device::Stream;
use peerbridge_tests::{Backend, TestApp, redis_url};
use uuid::Uuid;

#[tokio::test]
async fn new_messages_are_announced_live_and_again_after_a_reconnect() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut s = app.supervision_pair().await;
    let mut ws = Stream::connect(&app.base, s.hp.token()).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");

    let sent =
        s.p.send_text(s.conv.id, &s.conv.group_id, "er du der?", Uuid::new_v4())
            .await;
    sent.expect(201);
    let n = ws.until("message").await;
    assert_eq!(n["conversation_id"], s.conv.id.to_string());
    assert_eq!(n["seq"], sent.json()["seq"]);
    // A small message travels in its notice exactly as the log holds it (ciphertext and
    // franking stamp): the device may take it without reading the log.
    let page =
        s.h.http
            .get(
                &format!(
                    "/v1/conversations/{}/messages?after={}",
                    s.conv.id, s.h_start
                ),
                Some(&s.h.token),
            )
            .await
            .expect(200)
            .json();
    assert_eq!(
        n["entry"], page["items"][0],
        "the notice's entry is the log's"
    );
    assert!(n["entry"]["franking"]["signature"].is_string());
    let (texts, _) = s.h.read(s.conv.id, s.h_start).await;
    assert_eq!(texts, vec!["er du der?".to_string()]);
    assert!(
        !n.to_string().contains("er du der"),
        "notices carry no plaintext"
    );

    // A large one is only announced: the device reads it from the log.
    let long = "x".repeat(5000);
    s.p.send_text(s.conv.id, &s.conv.group_id, &long, Uuid::new_v4())
        .await
        .expect(201);
    let n = ws.until("message").await;
    assert_eq!(n["seq"], 2);
    assert!(n.get("entry").is_none(), "{n}");

    // Offline: nothing acknowledged yet, so a reconnect announces the conversation again
    // (to be read from the device's cursor: a backlog notice carries no entry).
    drop(ws);
    s.p.send_text(s.conv.id, &s.conv.group_id, "hallo?", Uuid::new_v4())
        .await
        .expect(201);
    let mut ws = Stream::connect(&app.base, s.hp.token()).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");
    let backlog = ws.until("message").await;
    assert_eq!(backlog["seq"], 3);
    assert!(backlog.get("entry").is_none(), "{backlog}");

    // Shutdown closes the socket with 1001 (going away).
    app.shutdown.shutdown().await;
    let mut code = None;
    for _ in 0..5 {
        if let Err(c) = ws.next().await {
            code = c;
            break;
        }
    }
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn a_revoked_device_loses_its_stream_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = app.supervision_pair().await;
    let mut ws = Stream::connect(&app.base, s.peer.token()).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");
    app.client()
        .delete(
            &format!("/v1/me/devices/{}", s.peer.session.device_id),
            Some(s.peer.token()),
        )
        .await
        .expect(200);
    let mut closed = None;
    for _ in 0..5 {
        if let Err(c) = ws.next().await {
            closed = c;
            break;
        }
    }
    assert_eq!(closed, Some(1008), "policy close");
}

#[tokio::test]
async fn a_message_sent_through_one_replica_is_announced_on_another_through_redis() {
    if !postgres_available().await || !redis_available().await {
        return;
    }
    let prefix = format!("pbtest{}", Uuid::new_v4().simple());
    let keys = (
        peerbridge_server::crypto::keys::generate_key_b64(),
        peerbridge_server::crypto::keys::generate_key_b64(),
        peerbridge_server::crypto::keys::generate_key_b64(),
    );
    let configure = |c: &mut peerbridge_server::config::RawConfig| {
        c.redis_url = Some(redis_url());
        c.redis_channel_prefix = prefix.clone();
        c.jwt_signing_kid = Some("k".into());
        c.jwt_signing_key = Some(keys.0.clone());
        c.field_keys = Some(format!("f:{}", keys.1));
        c.index_key = Some(keys.2.clone());
    };
    let a = TestApp::spawn_with(Backend::Postgres, configure).await;
    let b = a.spawn_sibling(configure).await;
    for app in [&a, &b] {
        for _ in 0..100 {
            if app.state.bus.is_healthy() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let mut s = a.supervision_pair().await;
    // The HP listens on replica A; the peer's device talks to replica B.
    let mut ws = Stream::connect(&a.base, s.hp.token()).await;
    assert_eq!(ws.next().await.expect("hello")["type"], "hello");
    s.p.http = b.client();
    let sent =
        s.p.send_text(s.conv.id, &s.conv.group_id, "via replica B", Uuid::new_v4())
            .await;
    sent.expect(201);
    let n = ws.until("message").await;
    assert_eq!(n["seq"], sent.json()["seq"]);
    assert_eq!(
        n["entry"]["seq"], n["seq"],
        "the entry crosses the bus with its notice"
    );
    let (texts, _) = s.h.read(s.conv.id, s.h_start).await;
    assert_eq!(texts, vec!["via replica B".to_string()]);
}

/// Opens `/v1/stream` offering `protocols` in `Sec-WebSocket-Protocol` (what a browser can
/// do; it cannot set `Authorization`). Returns the selected protocol or the refusal status.
async fn connect_offering(base: &str, protocols: &str) -> Result<Option<String>, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/v1/stream", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            use futures_util::StreamExt;
            let first = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .expect("a frame");
            let text = match first {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => t.to_string(),
                other => panic!("expected hello, got {other:?}"),
            };
            assert!(text.contains("\"hello\""), "{text}");
            Ok(resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[tokio::test]
async fn a_browser_passes_its_token_as_a_subprotocol_and_the_server_selects_the_bearer_protocol() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = app.supervision_pair().await;
    let selected = connect_offering(&app.base, &format!("peerbridge.bearer, {}", s.peer.token()))
        .await
        .expect("the stream opens");
    assert_eq!(selected.as_deref(), Some("peerbridge.bearer"));
    // A wrong token, a missing token and an unknown protocol are all refused.
    for offered in [
        "peerbridge.bearer, not-a-token".to_owned(),
        "peerbridge.bearer".to_owned(),
        format!("other, {}", s.peer.token()),
    ] {
        assert_eq!(
            connect_offering(&app.base, &offered).await,
            Err(401),
            "{offered}"
        );
    }
}

/// The device's `stream_seen_at` as push reads it.
async fn seen_at(app: &TestApp, device: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
    use peerbridge_server::accounts::entities::device;
    use sea_orm::EntityTrait;
    device::Entity::find_by_id(device)
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("device")
        .stream_seen_at
}

#[tokio::test]
async fn presence_is_kept_by_the_replica_and_ends_when_the_last_stream_closes() {
    for backend in peerbridge_tests::backends().await {
        let app = TestApp::spawn(backend).await;
        let s = app.supervision_pair().await;
        let hp = s.h.device_id;
        assert_eq!(seen_at(&app, hp).await, None, "never connected: not seen");
        let mut first = Stream::connect(&app.base, s.hp.token()).await;
        assert_eq!(first.next().await.expect("hello")["type"], "hello");
        let opened = app.state.now();
        assert_eq!(seen_at(&app, hp).await, Some(opened), "seen on connect");

        // A minute later the socket is still open: the replica's heartbeat pass (one
        // statement for all its streams, not a write per socket) keeps the device seen.
        app.clock.advance(chrono::Duration::seconds(60));
        peerbridge_server::delivery::service::streams_seen(&app.state).await;
        assert_eq!(seen_at(&app, hp).await, Some(app.state.now()));
        assert!(app.state.bus.mailboxes().is_connected(&hp));

        // Two streams of one device: closing one leaves it online.
        let mut second = Stream::connect(&app.base, s.hp.token()).await;
        assert_eq!(second.next().await.expect("hello")["type"], "hello");
        first.close().await;
        assert!(
            seen_at(&app, hp).await.is_some(),
            "still online through the second stream"
        );
        second.close().await;
        let mut offline = false;
        for _ in 0..50 {
            if seen_at(&app, hp).await.is_none() {
                offline = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(offline, "offline once its last stream closed");
        assert!(!app.state.bus.mailboxes().is_connected(&hp));
        // The heartbeat pass no longer marks it.
        peerbridge_server::delivery::service::streams_seen(&app.state).await;
        assert_eq!(seen_at(&app, hp).await, None);
    }
}

#[tokio::test]
async fn a_notice_wakes_only_its_own_device_and_an_idle_socket_hears_nothing_of_others() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut a = app.supervision_pair().await;
    let b = app.supervision_pair().await;
    // b's HP sits idle on its stream while a's conversation is busy.
    let mut idle = Stream::connect(&app.base, b.hp.token()).await;
    assert_eq!(idle.next().await.expect("hello")["type"], "hello");
    let mut busy = Stream::connect(&app.base, a.hp.token()).await;
    assert_eq!(busy.next().await.expect("hello")["type"], "hello");
    for i in 0..5 {
        a.p.send_text(
            a.conv.id,
            &a.conv.group_id,
            &format!("m{i}"),
            Uuid::new_v4(),
        )
        .await
        .expect(201);
        assert_eq!(
            busy.until("message").await["conversation_id"],
            a.conv.id.to_string()
        );
    }
    // Positive control: the idle socket does hear its own device's notice, and it is the
    // first frame it gets (none of a's five came before it).
    let mut b = b;
    b.p.send_text(b.conv.id, &b.conv.group_id, "hei", Uuid::new_v4())
        .await
        .expect(201);
    let first = idle.next().await.expect("a notice");
    assert_eq!(first["type"], "message");
    assert_eq!(first["conversation_id"], b.conv.id.to_string());
    assert_eq!(app.state.bus.mailboxes().sockets(), 2);
}
