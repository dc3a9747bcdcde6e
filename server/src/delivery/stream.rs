//! `GET /v1/stream`: one authenticated WebSocket per device. It carries notices (`message`,
//! `commit`, `welcome`, `resync`) as JSON text frames, never plaintext; the device then
//! reads the log over HTTP from its cursor, unless a `message` notice carried the very next
//! entry (a small message). On connect the server announces every
//! conversation with unread entries and every pending welcome, so a reconnect resumes from
//! the cursor. Heartbeats every 20 s; a peer silent for 60 s is dropped; frames from the
//! client are capped; shutdown closes with 1001 (going away); revocation closes at once.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use peerbridge_openapi::delivery::Notice;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entities::{conversation, member_device, welcome};
use crate::auth::extract::{authenticate, bearer_token};
use crate::bus::Delivery;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, State};

pub const HEARTBEAT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// Browsers cannot set headers on a WebSocket: they offer two subprotocols, this one and
/// then the access token, and the server selects this one.
pub const BEARER_PROTOCOL: &str = "peerbridge.bearer";

/// The access token from `Authorization: Bearer …`, else from the subprotocols offered as
/// `peerbridge.bearer, <token>`; and whether the subprotocol carried it.
fn stream_token(req: &HttpRequest) -> Option<(String, bool)> {
    if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        return bearer_token(req).map(|t| (t, false));
    }
    let offered = req
        .headers()
        .get(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())?;
    let mut parts = offered.split(',').map(str::trim);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(BEARER_PROTOCOL), Some(token), None) if !token.is_empty() => {
            Some((token.to_owned(), true))
        }
        _ => None,
    }
}

/// Open the device's notification stream (WebSocket). Every text frame the server sends is
/// one `Notice` (see the schema): it says what to read, and a `message` notice may carry
/// the entry itself (a small message's ciphertext, as the log holds it). The first is `hello`,
/// then the backlog (a `message` per conversation with unacknowledged entries, a `welcome`
/// per pending Welcome), then live notices; `resync` means notices may have been missed.
/// Browsers, which cannot set headers on a WebSocket, offer two subprotocols instead:
/// `peerbridge.bearer` and then the access token; the server selects `peerbridge.bearer`.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
    )
)]
#[get("/v1/stream")]
#[tracing::instrument(skip_all)]
pub async fn stream(state: State, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    let (token, via_protocol) = stream_token(&req).ok_or_else(ApiError::unauthenticated)?;
    let auth = authenticate(&state, &token).await?;
    let (mut resp, mut session, msgs) = actix_ws::handle(&req, body).map_err(|_| {
        ApiError::new(peerbridge_openapi::ErrorCode::MalformedBody)
            .detail("expected a WebSocket upgrade")
    })?;
    if via_protocol {
        resp.headers_mut().insert(
            actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
            actix_web::http::header::HeaderValue::from_static(BEARER_PROTOCOL),
        );
    }
    let device = auth.device_id;
    // Registered before the backlog is read, so nothing published in between is missed.
    let registration = state.bus.register(device);
    let mut shutdown = state.shutdown_signal.subscribe();
    let backlog = backlog(&state, device).await?;
    let mut msgs = msgs.max_frame_size(MAX_CLIENT_FRAME);
    super::service::stream_seen(&state, device, true).await;
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let reason = serve(
            &mut session,
            &mut msgs,
            &registration,
            &mut shutdown,
            backlog,
        )
        .await;
        // The device's last stream here: it is offline unless another replica holds one
        // (that replica marks it seen again at its next heartbeat).
        if registration.close() {
            super::service::stream_seen(&state, device, false).await;
        }
        let _ = session.close(reason).await;
    });
    Ok(resp)
}

/// The socket's life: the backlog, then notices from its mailbox, heartbeats, and the
/// client's frames, until one side ends it. Returns the close reason to send, if any.
async fn serve(
    session: &mut actix_ws::Session,
    msgs: &mut actix_ws::MessageStream,
    registration: &crate::bus::Registration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    backlog: Vec<String>,
) -> Option<CloseReason> {
    for notice in backlog {
        session.text(notice).await.ok()?;
    }
    let mut last_seen = Instant::now();
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            delivery = registration.mailbox().next() => match delivery {
                Delivery::Notices(notices) => {
                    for n in notices {
                        session.text(n.to_string()).await.ok()?;
                    }
                }
                // Too far behind, or the bus came back and notices from other replicas
                // may have been missed: the device reads from its cursors.
                Delivery::Resync => session.text(Notice::Resync.to_json()).await.ok()?,
                Delivery::Revoked => {
                    return Some(CloseReason { code: CloseCode::Policy, description: Some("device revoked".into()) });
                }
            },
            _ = beat.tick() => {
                if last_seen.elapsed() > CLIENT_TIMEOUT {
                    return Some(CloseReason { code: CloseCode::Normal, description: Some("heartbeat timeout".into()) });
                }
                session.ping(b"").await.ok()?;
            }
            _ = shutdown.changed() => {
                return Some(CloseReason { code: CloseCode::Away, description: Some("server shutting down".into()) });
            }
            frame = msgs.next() => match frame {
                Some(Ok(Message::Ping(b))) => {
                    last_seen = Instant::now();
                    session.pong(&b).await.ok()?;
                }
                Some(Ok(Message::Pong(_) | Message::Text(_) | Message::Binary(_))) => {
                    last_seen = Instant::now();
                }
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    return Some(CloseReason { code: CloseCode::Size, description: Some("frame too large or malformed".into()) });
                }
            },
        }
    }
}

/// Notices for what the device has not acknowledged yet: a reconnect resumes from there.
async fn backlog(state: &AppState, device: Uuid) -> ApiResult<Vec<String>> {
    let mut out = vec![Notice::Hello { device_id: device }.to_json()];
    let memberships = member_device::Entity::find()
        .filter(member_device::Column::DeviceId.eq(device))
        .filter(member_device::Column::RemovedAt.is_null())
        .all(&state.read)
        .await?;
    for m in memberships {
        if let Some(c) = conversation::Entity::find_by_id(m.conversation_id)
            .one(&state.read)
            .await?
            && c.last_seq > m.acked_seq
        {
            out.push(
                Notice::Message {
                    conversation_id: c.id,
                    seq: c.last_seq.max(0) as u64,
                    entry: None,
                }
                .to_json(),
            );
        }
    }
    for w in welcome::Entity::find()
        .filter(welcome::Column::DeviceId.eq(device))
        .filter(welcome::Column::AckedAt.is_null())
        .all(&state.read)
        .await?
    {
        out.push(
            Notice::Welcome {
                conversation_id: w.conversation_id,
                seq: w.start_seq.max(0) as u64,
            }
            .to_json(),
        );
    }
    Ok(out)
}
