//! Clinic-scoped account endpoints (users, invites, devices) and the caller's own devices.

use actix_web::{HttpResponse, delete, get, post, put, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::auth::DeviceRegistration;
use peerbridge_openapi::clinics::{Invite, InviteCreate, InviteCreated};
use peerbridge_openapi::users::{Device, Me, RoleChange, UserDetail, UserSummary};
use uuid::Uuid;

use super::service;
use crate::auth::extract::{AnyRole, Auth, ClinicAdmin, ClinicStaff, Hp};
use crate::error::ApiResult;
use crate::ids::{ClinicId, DeviceId, UserId};
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_users)
        .service(get_user)
        .service(deactivate_user)
        .service(change_role)
        .service(revoke_user_device)
        .service(create_invite)
        .service(list_invites)
        .service(revoke_invite)
        .service(me)
        .service(my_devices)
        .service(add_my_device)
        .service(revoke_my_device);
}

/// List the clinic's users (no identifying fields).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<UserSummary>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics/{clinic_id}/users")]
#[tracing::instrument(skip_all, fields(clinic_id = %path))]
async fn list_users(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<UserSummary>>> {
    auth.require_clinic(*path)?;
    Ok(web::Json(service::list_users(&state, *path).await?))
}

/// Read a user with identifying fields. Audited as an identity view.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 200, body = UserDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics/{clinic_id}/users/{user_id}")]
#[tracing::instrument(skip_all)]
async fn get_user(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<UserDetail>> {
    let (clinic_id, user_id) = path.into_inner();
    auth.require_clinic(clinic_id)?;
    Ok(web::Json(
        service::user_detail(&state, &auth, ClinicId(clinic_id), UserId(user_id)).await?,
    ))
}

/// Deactivate an account (HPs: service users and peers; clinic admins: staff). Devices are
/// revoked, sessions ended and identifying fields erased.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 200, body = UserSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/clinics/{clinic_id}/users/{user_id}/deactivate")]
#[tracing::instrument(skip_all)]
async fn deactivate_user(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<UserSummary>> {
    let (clinic_id, user_id) = path.into_inner();
    auth.require_clinic(clinic_id)?;
    Ok(web::Json(
        service::deactivate(&state, &auth, ClinicId(clinic_id), UserId(user_id)).await?,
    ))
}

/// Change a staff member's role (clinic admins).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = RoleChange,
    responses(
        (status = 200, body = UserSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/clinics/{clinic_id}/users/{user_id}/role")]
#[tracing::instrument(skip_all)]
async fn change_role(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<RoleChange>,
) -> ApiResult<web::Json<UserSummary>> {
    let (clinic_id, user_id) = path.into_inner();
    auth.require_clinic(clinic_id)?;
    Ok(web::Json(
        service::change_role(&state, &auth, ClinicId(clinic_id), UserId(user_id), &body).await?,
    ))
}

/// Revoke a device of a user the caller manages (e.g. a lost phone).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path), ("device_id" = Uuid, Path)),
    responses(
        (status = 200, body = Device),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/clinics/{clinic_id}/users/{user_id}/devices/{device_id}")]
#[tracing::instrument(skip_all)]
async fn revoke_user_device(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> ApiResult<web::Json<Device>> {
    let (clinic_id, user_id, device_id) = path.into_inner();
    auth.require_clinic(clinic_id)?;
    service::managed_user(&state, &auth, ClinicId(clinic_id), UserId(user_id)).await?;
    Ok(web::Json(
        service::revoke_device(&state, &auth, UserId(user_id), DeviceId(device_id)).await?,
    ))
}

/// Invite a service user or peer into the caller's clinic (HPs). The code is shown once.
#[utoipa::path(
    tag = "invites",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = InviteCreate,
    responses(
        (status = 201, body = InviteCreated),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/clinics/{clinic_id}/invites")]
#[tracing::instrument(skip_all, fields(clinic_id = %path))]
async fn create_invite(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<Uuid>,
    body: crate::json::Json<InviteCreate>,
) -> ApiResult<HttpResponse> {
    auth.require_clinic(*path)?;
    let inv = service::create_invite(&state, Some(&auth), *path, &body).await?;
    Ok(HttpResponse::Created().json(inv))
}

/// List the clinic's invites (never their codes).
#[utoipa::path(
    tag = "invites",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<Invite>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics/{clinic_id}/invites")]
#[tracing::instrument(skip_all, fields(clinic_id = %path))]
async fn list_invites(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<Invite>>> {
    auth.require_clinic(*path)?;
    Ok(web::Json(service::list_invites(&state, *path).await?))
}

/// Revoke a pending invite.
#[utoipa::path(
    tag = "invites",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("invite_id" = Uuid, Path)),
    responses(
        (status = 200, body = Invite),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/clinics/{clinic_id}/invites/{invite_id}")]
#[tracing::instrument(skip_all)]
async fn revoke_invite(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<Invite>> {
    let (clinic_id, invite_id) = path.into_inner();
    auth.require_clinic(clinic_id)?;
    Ok(web::Json(
        service::revoke_invite(&state, &auth, ClinicId(clinic_id), invite_id).await?,
    ))
}

/// Who am I.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me")]
#[tracing::instrument(skip_all)]
async fn me(auth: Auth<AnyRole>) -> web::Json<Me> {
    web::Json(Me {
        user_id: auth.user_id,
        device_id: auth.device_id,
        clinic_id: auth.clinic_id,
        role: auth.role,
    })
}

/// The caller's devices.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Device>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me/devices")]
#[tracing::instrument(skip_all)]
async fn my_devices(state: State, auth: Auth<AnyRole>) -> ApiResult<web::Json<Vec<Device>>> {
    Ok(web::Json(
        service::list_devices(&state, auth.user_id).await?,
    ))
}

/// Register another device from a logged-in one; the new device then logs in by
/// challenge–response.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = DeviceRegistration,
    responses(
        (status = 201, body = Device),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/devices")]
#[tracing::instrument(skip_all)]
async fn add_my_device(
    state: State,
    auth: Auth<AnyRole>,
    body: crate::json::Json<DeviceRegistration>,
) -> ApiResult<HttpResponse> {
    let d = service::add_device(&state, &auth, &body).await?;
    Ok(HttpResponse::Created().json(d))
}

/// Revoke one of the caller's devices (its sessions end at once).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(("device_id" = Uuid, Path)),
    responses(
        (status = 200, body = Device),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/me/devices/{device_id}")]
#[tracing::instrument(skip_all)]
async fn revoke_my_device(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Device>> {
    Ok(web::Json(
        service::revoke_device(&state, &auth, UserId(auth.user_id), DeviceId(*path)).await?,
    ))
}
