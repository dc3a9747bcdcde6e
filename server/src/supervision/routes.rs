//! `/v1/clinics/{clinic_id}/peers/{peer_id}/supervisors` and `/v1/me/supervision`.

use actix_web::{HttpResponse, delete, get, post, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::supervision::{SupervisorAssign, SupervisorAssignment};
use uuid::Uuid;

use crate::auth::extract::{AnyRole, Auth, ClinicStaff};
use crate::error::ApiResult;
use crate::ids::{ClinicId, UserId};
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(assign)
        .service(list)
        .service(unassign)
        .service(mine);
}

/// Assign an HP of the clinic to supervise a peer (clinic staff).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    request_body = SupervisorAssign,
    responses(
        (status = 201, body = SupervisorAssignment),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/clinics/{clinic_id}/peers/{peer_id}/supervisors")]
#[tracing::instrument(skip_all)]
async fn assign(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<SupervisorAssign>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    let a = super::assign(
        &state,
        &auth,
        ClinicId(clinic),
        UserId(peer),
        UserId(body.hp_id),
    )
    .await?;
    Ok(HttpResponse::Created().json(a))
}

/// A peer's supervisors (clinic staff).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<SupervisorAssignment>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics/{clinic_id}/peers/{peer_id}/supervisors")]
#[tracing::instrument(skip_all)]
async fn list(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<Vec<SupervisorAssignment>>> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(web::Json(
        super::list_for_peer(&state, ClinicId(clinic), UserId(peer)).await?,
    ))
}

/// End an HP's supervision of a peer (clinic staff).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path), ("hp_id" = Uuid, Path)),
    responses(
        (status = 204, description = "No longer assigned"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/clinics/{clinic_id}/peers/{peer_id}/supervisors/{hp_id}")]
#[tracing::instrument(skip_all)]
async fn unassign(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer, hp) = path.into_inner();
    auth.require_clinic(clinic)?;
    super::unassign(&state, &auth, ClinicId(clinic), UserId(peer), UserId(hp)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's supervision assignments: a peer sees their supervisors, an HP their peers.
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SupervisorAssignment>))
)]
#[get("/v1/me/supervision")]
#[tracing::instrument(skip_all)]
async fn mine(
    state: State,
    auth: Auth<AnyRole>,
) -> ApiResult<web::Json<Vec<SupervisorAssignment>>> {
    Ok(web::Json(super::mine(&state, &auth).await?))
}
