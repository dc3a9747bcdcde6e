//! Escalation over HTTP: escalation keys, flags on a conversation, the HP queue under
//! `/v1/flags` (visible only to the flag's responders at its current level; anyone else
//! gets 404, wrong roles 403), clinic settings, crisis resources, debriefs, consultations.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::NaiveDate;
use peerbridge_openapi::Problem;
use peerbridge_openapi::escalation::{
    Consultation, ConsultationCreate, ConsultationReport, CrisisResourceList, Debrief,
    DebriefCreate, EscalationAuthority, EscalationAuthorityCreate, EscalationCertificateUpload,
    EscalationKeyInfo, EscalationKeyUpload, EscalationRecipient, EscalationSettings, Flag,
    FlagCreate, FlagDetail, FlagNote, FlagProgress, FlagReassign, FlagReceipt, FlagResolve, Locale,
    SubjectIdentity, SubjectRequest,
};
use serde::Deserialize;
use uuid::Uuid;

use super::followup;
use super::service::{self, Act, Scope, StatusFilter};
use crate::auth::extract::{AnyRole, Auth, ClinicAdmin, ClinicStaff, Hp, PeerSupporter};
use crate::error::{ApiError, ApiResult};
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(set_escalation_key)
        .service(get_authority)
        .service(create_authority)
        .service(list_keys)
        .service(certify_key)
        .service(conversation_authority)
        .service(recipients)
        .service(raise)
        .service(queue)
        .service(my_flags)
        .service(detail)
        .service(progress)
        .service(subject)
        .service(acknowledge)
        .service(note)
        .service(reassign)
        .service(resolve)
        .service(get_settings)
        .service(put_settings)
        .service(crisis_resources)
        .service(put_crisis_resources)
        .service(request_debrief)
        .service(my_debriefs)
        .service(debrief_queue)
        .service(acknowledge_debrief)
        .service(log_consultation)
        .service(my_consultations)
        .service(consultation_report);
}

fn created_or_ok<T: serde::Serialize>((body, created): (T, bool)) -> HttpResponse {
    if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    /// `mine` (named responder, assigned or acknowledged by me) or `clinic` (default).
    #[param(inline)]
    scope: Option<Scope>,
    /// `active` (open and acknowledged, default), `open`, `acknowledged`, `resolved`, `all`.
    #[param(inline)]
    status: Option<StatusFilter>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct LocaleQuery {
    /// `nb` (default), `nn` or `en`.
    locale: Option<Locale>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    from: NaiveDate,
    to: NaiveDate,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// Publish this HP device's HPKE escalation key, signed by the device key.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    request_body = EscalationKeyUpload,
    responses(
        (status = 204, description = "Done"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/me/escalation-key")]
#[tracing::instrument(skip_all)]
async fn set_escalation_key(
    state: State,
    auth: Auth<ClinicStaff>,
    body: crate::json::Json<EscalationKeyUpload>,
) -> ApiResult<HttpResponse> {
    service::set_escalation_key(&state, &auth, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The clinic's escalation authority (its members): the key raising clients pin.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = EscalationAuthority),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/escalation-authority")]
#[tracing::instrument(skip_all)]
async fn get_authority(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(super::authority::get(&state, clinic).await?))
}

/// Set the clinic's escalation authority once (clinic admins; the secret stays on their device).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = EscalationAuthorityCreate,
    responses(
        (status = 200, body = EscalationAuthority),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/escalation-authority")]
#[tracing::instrument(skip_all)]
async fn create_authority(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<Uuid>,
    body: crate::json::Json<EscalationAuthorityCreate>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(super::authority::create(&state, &auth, clinic, &body).await?))
}

/// The clinic's staff devices with a published escalation key, certified or not (clinic admins).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<EscalationKeyInfo>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/escalation-keys")]
#[tracing::instrument(skip_all)]
async fn list_keys(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(super::authority::keys(&state, clinic).await?))
}

/// Store the clinic authority's certificate for a device's current escalation key (clinic admins).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("device_id" = Uuid, Path)),
    request_body = EscalationCertificateUpload,
    responses(
        (status = 204, description = "Certified"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/escalation-keys/{device_id}/certificate")]
#[tracing::instrument(skip_all)]
async fn certify_key(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<EscalationCertificateUpload>,
) -> ApiResult<HttpResponse> {
    let (clinic, device) = path.into_inner();
    auth.require_clinic(clinic)?;
    super::authority::certify(&state, &auth, clinic, device, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The escalation authority of the clinic this conversation's flags go to (members only).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses(
        (status = 200, body = EscalationAuthority),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/conversations/{conversation_id}/escalation-authority")]
#[tracing::instrument(skip_all)]
async fn conversation_authority(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::conversation_authority(&state, &auth, *path).await?))
}

/// The HP devices an excerpt from this conversation may be sealed to (members only).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<EscalationRecipient>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/conversations/{conversation_id}/escalation-recipients")]
#[tracing::instrument(skip_all)]
async fn recipients(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::recipients(&state, &auth, *path).await?))
}

/// Raise a flag (peer supporters) or ask for help now (service users) with sealed excerpts; stored before the answer, raising twice with one client id stores one.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    request_body = FlagCreate,
    responses(
        (status = 201, body = FlagReceipt),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/conversations/{conversation_id}/flags")]
#[tracing::instrument(skip_all)]
async fn raise(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    body: crate::json::Json<FlagCreate>,
) -> ApiResult<HttpResponse> {
    Ok(created_or_ok(
        service::raise(&state, &auth, *path, &body).await?,
    ))
}

/// The caller's escalation queue: flags they must act on now, most severe first, then oldest (audited).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(QueueQuery),
    responses(
        (status = 200, body = Vec<Flag>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/flags")]
#[tracing::instrument(skip_all)]
async fn queue(
    state: State,
    auth: Auth<ClinicStaff>,
    q: web::Query<QueueQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        service::queue(
            &state,
            &auth,
            q.scope.unwrap_or(Scope::Clinic),
            q.status.unwrap_or(StatusFilter::Active),
        )
        .await?,
    ))
}

/// The flags the caller raised, newest first (at most 100): where each stands.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(LocaleQuery),
    responses(
        (status = 200, body = Vec<FlagProgress>),
    )
)]
#[get("/v1/me/flags")]
#[tracing::instrument(skip_all)]
async fn my_flags(
    state: State,
    auth: Auth<AnyRole>,
    q: web::Query<LocaleQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::my_flags(&state, &auth, q.locale).await?))
}

/// Where a flag the caller raised stands: received (open, not yet acknowledged),
/// acknowledged, resolved; never who handles it. 404 for anybody but its raiser.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path), LocaleQuery),
    responses(
        (status = 200, body = FlagProgress),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/flags/{flag_id}/progress")]
#[tracing::instrument(skip_all)]
async fn progress(
    state: State,
    auth: Auth<AnyRole>,
    path: web::Path<Uuid>,
    q: web::Query<LocaleQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::progress(&state, &auth, *path, q.locale).await?))
}

/// A flag with its history and the calling device's sealed excerpt (responders only; audited).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    responses(
        (status = 200, body = FlagDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/flags/{flag_id}")]
#[tracing::instrument(skip_all)]
async fn detail(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::detail(&state, &auth, *path).await?))
}

/// Who the person at risk is and how to reach them (responders only), for a stated reason
/// that is kept with the read's audit entry.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    request_body = SubjectRequest,
    responses(
        (status = 200, body = SubjectIdentity),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/flags/{flag_id}/subject")]
#[tracing::instrument(skip_all)]
async fn subject(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<SubjectRequest>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::subject(&state, &auth, *path, &body.reason).await?))
}

/// Acknowledge a flag: the ladder stops.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    responses(
        (status = 200, body = FlagDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/flags/{flag_id}/acknowledge")]
#[tracing::instrument(skip_all)]
async fn acknowledge(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::act(&state, &auth, *path, Act::Acknowledge).await?))
}

/// Add a note to a flag (encrypted at rest).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    request_body = FlagNote,
    responses(
        (status = 200, body = FlagDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/flags/{flag_id}/notes")]
#[tracing::instrument(skip_all)]
async fn note(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<FlagNote>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::act(&state, &auth, *path, Act::Note(&body.note)).await?))
}

/// Hand a flag to another HP.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    request_body = FlagReassign,
    responses(
        (status = 200, body = FlagDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/flags/{flag_id}/reassign")]
#[tracing::instrument(skip_all)]
async fn reassign(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<FlagReassign>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok()
        .json(service::act(&state, &auth, *path, Act::Reassign(body.hp_id)).await?))
}

/// Resolve a flag with an outcome.
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path)),
    request_body = FlagResolve,
    responses(
        (status = 200, body = FlagDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/flags/{flag_id}/resolve")]
#[tracing::instrument(skip_all)]
async fn resolve(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<FlagResolve>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::act(&state, &auth, *path, Act::Resolve(&body)).await?))
}

/// The clinic's escalation roster, deadlines and notice wording (clinic staff).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = EscalationSettings),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/escalation-settings")]
#[tracing::instrument(skip_all)]
async fn get_settings(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(followup::get_settings(&state, clinic).await?))
}

/// Set the clinic's escalation roster, deadlines and notice wording (clinic admins).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = EscalationSettings,
    responses(
        (status = 200, body = EscalationSettings),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/escalation-settings")]
#[tracing::instrument(skip_all)]
async fn put_settings(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<Uuid>,
    body: crate::json::Json<EscalationSettings>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(followup::put_settings(&state, &auth, clinic, &body).await?))
}

/// Crisis resources of the caller's clinic in a locale (national defaults until the clinic edits them).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(LocaleQuery),
    responses(
        (status = 200, body = CrisisResourceList),
    )
)]
#[get("/v1/crisis-resources")]
#[tracing::instrument(skip_all)]
async fn crisis_resources(
    state: State,
    auth: Auth<AnyRole>,
    q: web::Query<LocaleQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        followup::crisis_resources(&state, auth.clinic_id, q.locale.unwrap_or(Locale::Nb)).await?,
    ))
}

/// Replace the clinic's crisis resources for one locale (clinic staff).
#[utoipa::path(
    tag = "escalation",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = CrisisResourceList,
    responses(
        (status = 200, body = CrisisResourceList),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/crisis-resources")]
#[tracing::instrument(skip_all)]
async fn put_crisis_resources(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<CrisisResourceList>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(
        HttpResponse::Ok()
            .json(followup::put_crisis_resources(&state, &auth, clinic, &body).await?),
    )
}

/// Ask one's supervisors for a debrief (peer supporters).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    request_body = DebriefCreate,
    responses(
        (status = 201, body = Debrief),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/me/debriefs")]
#[tracing::instrument(skip_all)]
async fn request_debrief(
    state: State,
    auth: Auth<PeerSupporter>,
    body: crate::json::Json<DebriefCreate>,
) -> ApiResult<HttpResponse> {
    Ok(created_or_ok(
        followup::request_debrief(&state, &auth, &body).await?,
    ))
}

/// One's own debrief requests (peer supporters).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Debrief>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/me/debriefs")]
#[tracing::instrument(skip_all)]
async fn my_debriefs(state: State, auth: Auth<PeerSupporter>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(followup::my_debriefs(&state, &auth).await?))
}

/// Debrief requests of the peers the caller supervises (after flags in priority).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Debrief>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/debriefs")]
#[tracing::instrument(skip_all)]
async fn debrief_queue(state: State, auth: Auth<Hp>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(followup::debrief_queue(&state, &auth).await?))
}

/// Acknowledge a debrief request (the peer's supervisors).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    params(("debrief_id" = Uuid, Path)),
    responses(
        (status = 200, body = Debrief),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/debriefs/{debrief_id}/acknowledge")]
#[tracing::instrument(skip_all)]
async fn acknowledge_debrief(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(followup::acknowledge_debrief(&state, &auth, *path).await?))
}

/// Log a consultation: date, duration, kind — never content (peer supporters).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    request_body = ConsultationCreate,
    responses(
        (status = 201, body = Consultation),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/me/consultations")]
#[tracing::instrument(skip_all)]
async fn log_consultation(
    state: State,
    auth: Auth<PeerSupporter>,
    body: crate::json::Json<ConsultationCreate>,
) -> ApiResult<HttpResponse> {
    Ok(created_or_ok(
        followup::log_consultation(&state, &auth, &body).await?,
    ))
}

/// One's own consultation log (peer supporters).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Consultation>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/me/consultations")]
#[tracing::instrument(skip_all)]
async fn my_consultations(state: State, auth: Auth<PeerSupporter>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(followup::my_consultations(&state, &auth).await?))
}

/// Consultations per peer supporter in a period, for compensation (clinic admins; `format=csv` for CSV).
#[utoipa::path(
    tag = "supervision",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ReportQuery),
    responses(
        (status = 200, body = ConsultationReport),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/consultation-report")]
#[tracing::instrument(skip_all)]
async fn consultation_report(
    state: State,
    auth: Auth<ClinicAdmin>,
    path: web::Path<Uuid>,
    q: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    let report = followup::consultation_report(&state, &auth, clinic, q.from, q.to).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(report)),
        "csv" => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(followup::report_csv(&report))),
        _ => Err(ApiError::invalid("format", "json or csv")),
    }
}
