//! Delivery endpoints: `/v1/key-packages`, `/v1/conversations/…`, `/v1/welcomes`.

use actix_web::{HttpResponse, delete, get, post, put, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::delivery::{
    Ack, ClaimedKeyPackage, CommitAccepted, CommitUpload, Conversation, ConversationCreate,
    FrankingKeys, GroupInfoOut, KeyPackageClaim, KeyPackageStatus, KeyPackageUpload, LogPage,
    MessageAccepted, MessageSend, PushEndpoint, VapidKey, Welcome,
};
use serde::Deserialize;
use uuid::Uuid;

use super::service;
use crate::auth::extract::{AnyRole, Auth};
use crate::error::ApiResult;
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(franking_keys)
        .service(upload_key_packages)
        .service(key_package_status)
        .service(create_conversation)
        .service(list_conversations)
        .service(get_conversation)
        .service(claim)
        .service(commit)
        .service(group_info)
        .service(send)
        .service(fetch)
        .service(ack)
        .service(welcomes)
        .service(ack_welcome)
        .service(set_push_endpoint)
        .service(clear_push_endpoint)
        .service(vapid_key)
        .service(super::stream::stream);
}

/// Upload a batch of key packages for the calling device.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    request_body = KeyPackageUpload,
    responses(
        (status = 200, body = KeyPackageStatus),
        (status = 409, description = "too many unclaimed key packages", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/key-packages")]
#[tracing::instrument(skip_all)]
async fn upload_key_packages(
    state: State,
    auth: Auth<AnyRole>,
    body: crate::json::Json<KeyPackageUpload>,
) -> ApiResult<web::Json<KeyPackageStatus>> {
    Ok(web::Json(
        service::upload_key_packages(&state, &auth, &body).await?,
    ))
}

/// How many key packages the calling device has left.
#[utoipa::path(tag = "delivery", security(("bearer" = [])), responses((status = 200, body = KeyPackageStatus)))]
#[get("/v1/key-packages/status")]
#[tracing::instrument(skip_all)]
async fn key_package_status(
    state: State,
    auth: Auth<AnyRole>,
) -> ApiResult<web::Json<KeyPackageStatus>> {
    Ok(web::Json(service::key_package_status(&state, &auth).await?))
}

/// Create a conversation: a peer's supervision conversation, or the conversation of an
/// active introduction (idempotent: 200 with the existing one).
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    request_body = ConversationCreate,
    responses(
        (status = 201, body = Conversation),
        (status = 200, body = Conversation),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/conversations")]
#[tracing::instrument(skip_all)]
async fn create_conversation(
    state: State,
    auth: Auth<AnyRole>,
    body: crate::json::Json<ConversationCreate>,
) -> ApiResult<HttpResponse> {
    let (c, created) = service::create_conversation(&state, &auth, &body).await?;
    Ok(if created {
        HttpResponse::Created().json(c)
    } else {
        HttpResponse::Ok().json(c)
    })
}

/// The conversations the caller takes part in.
#[utoipa::path(tag = "delivery", security(("bearer" = [])), responses((status = 200, body = Vec<Conversation>)))]
#[get("/v1/conversations")]
#[tracing::instrument(skip_all)]
async fn list_conversations(
    state: State,
    auth: Auth<AnyRole>,
) -> ApiResult<web::Json<Vec<Conversation>>> {
    Ok(web::Json(service::list_conversations(&state, &auth).await?))
}

/// One conversation.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses((status = 200, body = Conversation), (status = 404, body = Problem, content_type = "application/problem+json"))
)]
#[get("/v1/conversations/{conversation_id}")]
#[tracing::instrument(skip_all)]
async fn get_conversation(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Conversation>> {
    Ok(web::Json(
        service::get_conversation(&state, &auth, *path).await?,
    ))
}

/// Claim a key package for every device of a user the policy allows in this conversation.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    request_body = KeyPackageClaim,
    responses(
        (status = 200, body = Vec<ClaimedKeyPackage>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no_key_package", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many claims from this device", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/conversations/{conversation_id}/key-packages/claim")]
#[tracing::instrument(skip_all)]
async fn claim(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    body: crate::json::Json<KeyPackageClaim>,
) -> ApiResult<web::Json<Vec<ClaimedKeyPackage>>> {
    Ok(web::Json(
        service::claim_key_packages(&state, &auth, *path, &body).await?,
    ))
}

/// Submit a commit for the current epoch (409 `stale_epoch` with `current_epoch` otherwise).
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    request_body = CommitUpload,
    responses(
        (status = 201, body = CommitAccepted),
        (status = 403, description = "policy_violation or not the caller's leaf", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "stale_epoch", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/conversations/{conversation_id}/commits")]
#[tracing::instrument(skip_all)]
async fn commit(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    body: crate::json::Json<CommitUpload>,
) -> ApiResult<HttpResponse> {
    let a = service::commit(&state, &auth, *path, &body).await?;
    Ok(HttpResponse::Created().json(a))
}

/// The latest GroupInfo, to rejoin by external commit.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses((status = 200, body = GroupInfoOut), (status = 404, body = Problem, content_type = "application/problem+json"))
)]
#[get("/v1/conversations/{conversation_id}/group-info")]
#[tracing::instrument(skip_all)]
async fn group_info(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<GroupInfoOut>> {
    Ok(web::Json(service::group_info(&state, &auth, *path).await?))
}

/// Send an application message. Sending the same `client_id` again stores nothing new.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    request_body = MessageSend,
    responses(
        (status = 201, body = MessageAccepted),
        (status = 200, description = "already stored (a retry)", body = MessageAccepted),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "too busy to take it now (`unavailable`): nothing was stored; send it again with the same `client_id` after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/conversations/{conversation_id}/messages")]
#[tracing::instrument(skip_all)]
async fn send(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    body: crate::json::Json<MessageSend>,
) -> ApiResult<HttpResponse> {
    let (a, created) = service::send_message(&state, &auth, *path, &body).await?;
    Ok(if created {
        HttpResponse::Created().json(a)
    } else {
        HttpResponse::Ok().json(a)
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct FetchQuery {
    /// Return entries with a greater sequence number (default 0).
    after: Option<u64>,
    /// At most this many (1–500, default 100).
    limit: Option<u64>,
}

/// Read the conversation log after a cursor, in sequence order.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path), FetchQuery),
    responses(
        (status = 200, body = LogPage),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/conversations/{conversation_id}/messages")]
#[tracing::instrument(skip_all)]
async fn fetch(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    q: web::Query<FetchQuery>,
) -> ApiResult<web::Json<LogPage>> {
    Ok(web::Json(
        service::fetch(
            &state,
            &auth,
            *path,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?,
    ))
}

/// Acknowledge everything up to `seq`; fully acknowledged ciphertext is deleted.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    request_body = Ack,
    responses(
        (status = 200, body = Ack),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "too busy to take it now (`unavailable`): the cursor did not move; acknowledge again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/conversations/{conversation_id}/ack")]
#[tracing::instrument(skip_all)]
async fn ack(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    body: crate::json::Json<Ack>,
) -> ApiResult<web::Json<Ack>> {
    let seq = service::ack(&state, &auth, *path, body.seq).await?;
    Ok(web::Json(Ack { seq }))
}

/// The server's franking verification keys (Ed25519 by `kid`), to check the stamps in
/// escalation excerpts offline.
#[utoipa::path(tag = "delivery", security(("bearer" = [])), responses((status = 200, body = FrankingKeys)))]
#[get("/v1/franking-keys")]
#[tracing::instrument(skip_all)]
async fn franking_keys(state: State, _auth: Auth<AnyRole>) -> web::Json<FrankingKeys> {
    web::Json(FrankingKeys {
        keys: state
            .keys
            .jwt_verifying
            .iter()
            .map(|(kid, k)| (kid.clone(), crate::crypto::b64(k.as_bytes())))
            .collect(),
    })
}

/// Welcomes waiting for the calling device.
#[utoipa::path(tag = "delivery", security(("bearer" = [])), responses((status = 200, body = Vec<Welcome>)))]
#[get("/v1/welcomes")]
#[tracing::instrument(skip_all)]
async fn welcomes(state: State, auth: Auth<AnyRole>) -> ApiResult<web::Json<Vec<Welcome>>> {
    Ok(web::Json(service::welcomes(&state, &auth).await?))
}

/// Mark a welcome processed.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    params(("welcome_id" = Uuid, Path)),
    responses((status = 204, description = "Processed"), (status = 404, body = Problem, content_type = "application/problem+json"))
)]
#[post("/v1/welcomes/{welcome_id}/ack")]
#[tracing::instrument(skip_all)]
async fn ack_welcome(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    service::ack_welcome(&state, &auth, *path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Register the calling device's push endpoint for content-free wake-ups while it has no
/// live stream: a UnifiedPush-style URL, or a browser's Web Push subscription (`url` its
/// endpoint, with `keys`). Only operator-allowed gateways are accepted.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    request_body = PushEndpoint,
    responses(
        (status = 204, description = "Registered"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/me/push-endpoint")]
#[tracing::instrument(skip_all)]
async fn set_push_endpoint(
    state: State,
    auth: Auth<AnyRole>,
    body: crate::json::Json<PushEndpoint>,
) -> ApiResult<HttpResponse> {
    service::set_push_endpoint(&state, &auth, Some(&body)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The server's VAPID public key, for a browser's `pushManager.subscribe`
/// (`applicationServerKey`). 404 when the operator configured no VAPID key.
#[utoipa::path(
    tag = "delivery",
    security(("bearer" = [])),
    responses(
        (status = 200, body = VapidKey),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/push/vapid-key")]
#[tracing::instrument(skip_all)]
async fn vapid_key(state: State, _auth: Auth<AnyRole>) -> ApiResult<web::Json<VapidKey>> {
    Ok(web::Json(service::vapid_key(&state)?))
}

/// Stop wake-ups for the calling device.
#[utoipa::path(tag = "delivery", security(("bearer" = [])), responses((status = 204, description = "Removed")))]
#[delete("/v1/me/push-endpoint")]
#[tracing::instrument(skip_all)]
async fn clear_push_endpoint(state: State, auth: Auth<AnyRole>) -> ApiResult<HttpResponse> {
    service::set_push_endpoint(&state, &auth, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
