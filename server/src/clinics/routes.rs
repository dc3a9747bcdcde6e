//! `/v1/clinics`: create, list and read clinics; create staff accounts in them.

use actix_web::{HttpResponse, get, post, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::clinics::{Clinic, ClinicCreate, StaffCreate, StaffCreated};
use uuid::Uuid;

use crate::accounts::service as accounts;
use crate::auth::extract::{AnyRole, Auth, Operator, StaffManager};
use crate::error::ApiResult;
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_clinic)
        .service(list_clinics)
        .service(get_clinic)
        .service(create_staff);
}

/// Create a clinic (operators).
#[utoipa::path(
    tag = "clinics",
    security(("bearer" = [])),
    request_body = ClinicCreate,
    responses(
        (status = 201, body = Clinic),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/clinics")]
#[tracing::instrument(skip_all)]
async fn create_clinic(
    state: State,
    auth: Auth<Operator>,
    body: crate::json::Json<ClinicCreate>,
) -> ApiResult<HttpResponse> {
    let c = super::create(&state, Some(&auth), &body).await?;
    Ok(HttpResponse::Created().json(c))
}

/// List all clinics (operators).
#[utoipa::path(
    tag = "clinics",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Clinic>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics")]
#[tracing::instrument(skip_all)]
async fn list_clinics(state: State, _auth: Auth<Operator>) -> ApiResult<web::Json<Vec<Clinic>>> {
    Ok(web::Json(super::list(&state).await?))
}

/// Read a clinic (its members and operators).
#[utoipa::path(
    tag = "clinics",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Clinic),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/clinics/{clinic_id}")]
#[tracing::instrument(skip_all, fields(clinic_id = %path))]
async fn get_clinic(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Clinic>> {
    auth.require_clinic(*path)?;
    Ok(web::Json(super::get(&state, *path).await?))
}

/// Create an HP or clinic-admin account; returns the one-time setup code to hand over.
#[utoipa::path(
    tag = "clinics",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = StaffCreate,
    responses(
        (status = 201, body = StaffCreated),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/clinics/{clinic_id}/staff")]
#[tracing::instrument(skip_all, fields(clinic_id = %path))]
async fn create_staff(
    state: State,
    auth: Auth<StaffManager>,
    path: web::Path<Uuid>,
    body: crate::json::Json<StaffCreate>,
) -> ApiResult<HttpResponse> {
    auth.require_clinic(*path)?;
    let created =
        accounts::create_staff(&state, Some(&auth), Some(*path), body.role.into(), &body).await?;
    Ok(HttpResponse::Created().json(created))
}
