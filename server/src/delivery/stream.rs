//! `GET /v1/stream`: one authenticated WebSocket per device. It carries content-free
//! notices (`message`, `commit`, `welcome`, `resync`) as JSON text frames; the device then
//! reads the log over HTTP from its cursor. On connect the server announces every
//! conversation with unread entries and every pending welcome, so a reconnect resumes from
//! the cursor. Heartbeats every 20 s; a peer silent for 60 s is dropped; frames from the
//! client are capped; shutdown closes with 1001 (going away); revocation closes at once.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use peerbridge_openapi::delivery::Notice;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::entities::{conversation, member_device, welcome};
use crate::auth::extract::{authenticate, bearer_token};
use crate::bus::topics;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, State};

const HEARTBEAT: Duration = Duration::from_secs(20);
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
/// one `Notice` (see the schema): content-free, it says what to read. The first is `hello`,
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
    let mut bus = state.bus.subscribe();
    let mut shutdown = state.shutdown_signal.subscribe();
    let backlog = backlog(&state, device).await?;
    let mut msgs = msgs.max_frame_size(MAX_CLIENT_FRAME);
    super::service::stream_seen(&state, device, true).await;
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let my_topic = format!("{}{device}", topics::DEVICE_PREFIX);
        let mut last_seen = Instant::now();
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut reason = None;
        for notice in backlog {
            if session.text(notice).await.is_err() {
                super::service::stream_seen(&state, device, false).await;
                return;
            }
        }
        loop {
            tokio::select! {
                m = bus.recv() => match m {
                    Ok(m) if m.topic == my_topic => {
                        if session.text(String::from_utf8_lossy(&m.payload).into_owned()).await.is_err() {
                            break;
                        }
                    }
                    Ok(m) if m.topic == topics::DEVICE_REVOKED && m.payload == device.to_string().as_bytes() => {
                        reason = Some(CloseReason { code: CloseCode::Policy, description: Some("device revoked".into()) });
                        break;
                    }
                    // The bus came back: notices from other replicas may have been missed.
                    Ok(m) if m.topic == topics::BUS_RESUMED => {
                        if session.text(Notice::Resync.to_json()).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // Too far behind: tell the device to read from its cursor.
                    Err(RecvError::Lagged(_)) => {
                        if session.text(Notice::Resync.to_json()).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = beat.tick() => {
                    if last_seen.elapsed() > CLIENT_TIMEOUT {
                        reason = Some(CloseReason { code: CloseCode::Normal, description: Some("heartbeat timeout".into()) });
                        break;
                    }
                    if session.ping(b"").await.is_err() {
                        break;
                    }
                    super::service::stream_seen(&state, device, true).await;
                }
                _ = shutdown.changed() => {
                    reason = Some(CloseReason { code: CloseCode::Away, description: Some("server shutting down".into()) });
                    break;
                }
                frame = msgs.next() => match frame {
                    Some(Ok(Message::Ping(b))) => {
                        last_seen = Instant::now();
                        if session.pong(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Pong(_) | Message::Text(_) | Message::Binary(_))) => {
                        last_seen = Instant::now();
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        reason = Some(CloseReason { code: CloseCode::Size, description: Some("frame too large or malformed".into()) });
                        break;
                    }
                },
            }
        }
        super::service::stream_seen(&state, device, false).await;
        let _ = session.close(reason).await;
    });
    Ok(resp)
}

/// Notices for what the device has not acknowledged yet: a reconnect resumes from there.
async fn backlog(state: &AppState, device: Uuid) -> ApiResult<Vec<String>> {
    let mut out = vec![Notice::Hello { device_id: device }.to_json()];
    let memberships = member_device::Entity::find()
        .filter(member_device::Column::DeviceId.eq(device))
        .filter(member_device::Column::RemovedAt.is_null())
        .all(&state.db)
        .await?;
    for m in memberships {
        if let Some(c) = conversation::Entity::find_by_id(m.conversation_id)
            .one(&state.db)
            .await?
            && c.last_seq > m.acked_seq
        {
            out.push(
                Notice::Message {
                    conversation_id: c.id,
                    seq: c.last_seq.max(0) as u64,
                }
                .to_json(),
            );
        }
    }
    for w in welcome::Entity::find()
        .filter(welcome::Column::DeviceId.eq(device))
        .filter(welcome::Column::AckedAt.is_null())
        .all(&state.db)
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
