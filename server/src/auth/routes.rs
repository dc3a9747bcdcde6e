//! Unauthenticated entry points: invite redemption, staff setup, logins, refresh, logout.

use actix_web::{HttpResponse, post, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::auth::{
    Challenge, ChallengeRequest, DeviceLogin, InviteRedeem, LogoutRequest, PasswordLogin,
    RefreshRequest, Session, StaffSetupBegin, StaffSetupComplete, TotpProvisioning,
};

use super::extract::ClientAddr;
use super::service;
use crate::accounts::service as accounts;
use crate::error::ApiResult;
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(redeem_invite)
        .service(setup_begin)
        .service(setup_complete)
        .service(password_login)
        .service(challenge)
        .service(device_login)
        .service(refresh)
        .service(logout);
}

/// Redeem an invite on a new device: creates the account and the device, returns a session.
#[utoipa::path(
    tag = "auth",
    request_body = InviteRedeem,
    responses(
        (status = 201, body = Session),
        (status = 404, description = "invite_invalid: no usable invite with this code", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/invites/redeem")]
#[tracing::instrument(skip_all)]
async fn redeem_invite(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<InviteRedeem>,
) -> ApiResult<HttpResponse> {
    let s = accounts::redeem_invite(&state, &addr, &body).await?;
    Ok(HttpResponse::Created().json(s))
}

/// Staff setup step 1: choose a password with the one-time setup code; returns the TOTP
/// secret for an authenticator app.
#[utoipa::path(
    tag = "auth",
    request_body = StaffSetupBegin,
    responses(
        (status = 200, body = TotpProvisioning),
        (status = 404, description = "setup_code_invalid: no usable setup code", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/staff/setup")]
#[tracing::instrument(skip_all)]
async fn setup_begin(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<StaffSetupBegin>,
) -> ApiResult<web::Json<TotpProvisioning>> {
    Ok(web::Json(service::setup_begin(&state, &addr, &body).await?))
}

/// Staff setup step 2: confirm a TOTP code and register the first device.
#[utoipa::path(
    tag = "auth",
    request_body = StaffSetupComplete,
    responses(
        (status = 201, body = Session),
        (status = 404, description = "setup_code_invalid: no usable setup code", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/staff/setup/complete")]
#[tracing::instrument(skip_all)]
async fn setup_complete(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<StaffSetupComplete>,
) -> ApiResult<HttpResponse> {
    let s = service::setup_complete(&state, &addr, &body).await?;
    Ok(HttpResponse::Created().json(s))
}

/// Staff login: password + TOTP from a device (registered now if new).
#[utoipa::path(
    tag = "auth",
    request_body = PasswordLogin,
    responses(
        (status = 200, body = Session),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/password")]
#[tracing::instrument(skip_all)]
async fn password_login(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<PasswordLogin>,
) -> ApiResult<web::Json<Session>> {
    Ok(web::Json(
        service::password_login(&state, &addr, &body).await?,
    ))
}

/// Ask for a login challenge for a registered device.
#[utoipa::path(
    tag = "auth",
    request_body = ChallengeRequest,
    responses(
        (status = 200, body = Challenge),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/challenge")]
#[tracing::instrument(skip_all)]
async fn challenge(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<ChallengeRequest>,
) -> ApiResult<web::Json<Challenge>> {
    Ok(web::Json(
        service::challenge(&state, &addr, body.device_id).await?,
    ))
}

/// Answer a challenge with the device's signature; returns a session.
#[utoipa::path(
    tag = "auth",
    request_body = DeviceLogin,
    responses(
        (status = 200, body = Session),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/device")]
#[tracing::instrument(skip_all)]
async fn device_login(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<DeviceLogin>,
) -> ApiResult<web::Json<Session>> {
    Ok(web::Json(
        service::device_login(&state, &addr, &body).await?,
    ))
}

/// Rotate a refresh token. Reusing a spent one revokes the whole session.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = Session),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/refresh")]
#[tracing::instrument(skip_all)]
async fn refresh(
    state: State,
    addr: ClientAddr,
    body: crate::json::Json<RefreshRequest>,
) -> ApiResult<web::Json<Session>> {
    Ok(web::Json(service::refresh(&state, &addr, &body).await?))
}

/// End the session a refresh token belongs to.
#[utoipa::path(
    tag = "auth",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "session ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/logout")]
#[tracing::instrument(skip_all)]
async fn logout(state: State, body: crate::json::Json<LogoutRequest>) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}
