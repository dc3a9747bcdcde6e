//! Matching and introductions over HTTP. Clinic-side paths live under
//! `/v1/clinics/{clinic_id}/…` (the clinic's HPs; other clinics get 403); party-side paths
//! under `/v1/introductions/…` (only the two parties; anyone else gets 404).

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use peerbridge_openapi::Problem;
use peerbridge_openapi::introductions::{
    BoundaryReport, BoundaryReportCreate, ConsentRecord, ConsentUpload, IntroductionCreate,
    IntroductionDetail, IntroductionState, Needs, NeedsRecord, OwnPeerProfileUpdate,
    PartyIntroduction, PeerApproval, PeerProfile, PeerProfileUpdate, Rematch, Suggestion, Topic,
    TopicList,
};
use serde::Deserialize;
use uuid::Uuid;

use super::profiles;
use super::service::{self, Action, ListFilter};
use crate::auth::extract::{Auth, ClinicStaff, Hp, Party, PeerSupporter};
use crate::error::ApiResult;
use crate::ids::{ClinicId, UserId};
use crate::state::State;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_topics)
        .service(put_topics)
        .service(list_peers)
        .service(get_profile)
        .service(put_profile)
        .service(approve)
        .service(unapprove)
        .service(own_profile)
        .service(patch_own_profile)
        .service(get_needs)
        .service(put_needs)
        .service(suggestions)
        .service(propose)
        .service(list)
        .service(detail)
        .service(hp_pause)
        .service(hp_resume)
        .service(hp_close)
        .service(rematch)
        .service(reports)
        .service(handle_report)
        .service(mine)
        .service(get_mine)
        .service(accept)
        .service(decline)
        .service(pause)
        .service(resume)
        .service(close)
        .service(block)
        .service(report)
        .service(consents)
        .service(consent);
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
struct SuggestionQuery {
    /// At most this many (1–50, default 10).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<IntroductionState>,
    /// Only introductions that need an HP's attention (blocks, open boundary reports).
    attention: Option<bool>,
}

/// The clinic's topic list (clinic staff).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<Topic>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/topics")]
#[tracing::instrument(skip_all)]
async fn get_topics(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(profiles::topics(&state.db, clinic).await?))
}

/// Replace the clinic's topic list (clinic staff).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = TopicList,
    responses(
        (status = 200, body = Vec<Topic>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/topics")]
#[tracing::instrument(skip_all)]
async fn put_topics(
    state: State,
    auth: Auth<ClinicStaff>,
    path: web::Path<Uuid>,
    body: crate::json::Json<TopicList>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(profiles::set_topics(&state, &auth, clinic, &body).await?))
}

/// Profiles of the clinic's peer supporters (HPs).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<PeerProfile>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/peers")]
#[tracing::instrument(skip_all)]
async fn list_peers(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(profiles::list_profiles(&state, clinic).await?))
}

/// A peer supporter's profile (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/peers/{peer_id}/profile")]
#[tracing::instrument(skip_all)]
async fn get_profile(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(profiles::get_profile(&state, ClinicId(clinic), UserId(peer)).await?))
}

/// Write a peer supporter's profile (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    request_body = PeerProfileUpdate,
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/peers/{peer_id}/profile")]
#[tracing::instrument(skip_all)]
async fn put_profile(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<PeerProfileUpdate>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(profiles::put_profile(&state, &auth, ClinicId(clinic), UserId(peer), &body).await?))
}

/// Approve a trained peer supporter (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    request_body = PeerApproval,
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/peers/{peer_id}/approval")]
#[tracing::instrument(skip_all)]
async fn approve(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<PeerApproval>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(
        profiles::set_approval(&state, &auth, ClinicId(clinic), UserId(peer), Some(&body)).await?,
    ))
}

/// Withdraw a peer supporter's approval (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("peer_id" = Uuid, Path)),
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[delete("/v1/clinics/{clinic_id}/peers/{peer_id}/approval")]
#[tracing::instrument(skip_all)]
async fn unapprove(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, peer) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(profiles::set_approval(&state, &auth, ClinicId(clinic), UserId(peer), None).await?))
}

/// The calling peer supporter's own profile.
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/me/peer-profile")]
#[tracing::instrument(skip_all)]
async fn own_profile(state: State, auth: Auth<PeerSupporter>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(profiles::own_profile(&state, &auth).await?))
}

/// Change one's own capacity, availability or pause (peer supporters).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    request_body = OwnPeerProfileUpdate,
    responses(
        (status = 200, body = PeerProfile),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[patch("/v1/me/peer-profile")]
#[tracing::instrument(skip_all)]
async fn patch_own_profile(
    state: State,
    auth: Auth<PeerSupporter>,
    body: crate::json::Json<OwnPeerProfileUpdate>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(profiles::patch_own_profile(&state, &auth, &body).await?))
}

/// A service user's needs and preferences (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 200, body = NeedsRecord),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/users/{user_id}/needs")]
#[tracing::instrument(skip_all)]
async fn get_needs(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, user) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(profiles::get_needs(&state, ClinicId(clinic), UserId(user)).await?))
}

/// Record a service user's needs and preferences (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = Needs,
    responses(
        (status = 200, body = NeedsRecord),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[put("/v1/clinics/{clinic_id}/users/{user_id}/needs")]
#[tracing::instrument(skip_all)]
async fn put_needs(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<Needs>,
) -> ApiResult<HttpResponse> {
    let (clinic, user) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(profiles::put_needs(&state, &auth, ClinicId(clinic), UserId(user), &body).await?))
}

/// Ranked peer supporters for a service user, each score explained (HPs of the clinic).
#[utoipa::path(
    tag = "matching",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("user_id" = Uuid, Path), SuggestionQuery),
    responses(
        (status = 200, body = Vec<Suggestion>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/users/{user_id}/suggestions")]
#[tracing::instrument(skip_all)]
async fn suggestions(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
    q: web::Query<SuggestionQuery>,
) -> ApiResult<HttpResponse> {
    let (clinic, user) = path.into_inner();
    auth.require_clinic(clinic)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(crate::error::ApiError::invalid("limit", "1 to 50"));
    }
    Ok(HttpResponse::Ok()
        .json(profiles::suggestions(&state, ClinicId(clinic), UserId(user), limit as usize).await?))
}

/// Propose an introduction of a service user and a peer supporter (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path)),
    request_body = IntroductionCreate,
    responses(
        (status = 201, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions")]
#[tracing::instrument(skip_all)]
async fn propose(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<Uuid>,
    body: crate::json::Json<IntroductionCreate>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(created_or_ok(
        service::propose(&state, &auth, clinic, &body).await?,
    ))
}

/// The clinic's introductions, newest first (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ListQuery),
    responses(
        (status = 200, body = Vec<IntroductionDetail>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/introductions")]
#[tracing::instrument(skip_all)]
async fn list(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let clinic = path.into_inner();
    auth.require_clinic(clinic)?;
    let filter = ListFilter {
        state: q.state,
        attention: q.attention.unwrap_or(false),
    };
    Ok(HttpResponse::Ok().json(service::list(&state, clinic, &filter).await?))
}

/// One introduction (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/introductions/{introduction_id}")]
#[tracing::instrument(skip_all)]
async fn detail(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(service::get(&state, ClinicId(clinic), id).await?))
}

/// Pause an active introduction (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions/{introduction_id}/pause")]
#[tracing::instrument(skip_all)]
async fn hp_pause(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(service::hp_act(&state, &auth, ClinicId(clinic), id, Action::Pause).await?))
}

/// Resume a paused introduction (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions/{introduction_id}/resume")]
#[tracing::instrument(skip_all)]
async fn hp_resume(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(service::hp_act(&state, &auth, ClinicId(clinic), id, Action::Resume).await?))
}

/// Close an introduction (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions/{introduction_id}/close")]
#[tracing::instrument(skip_all)]
async fn hp_close(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(service::hp_act(&state, &auth, ClinicId(clinic), id, Action::Close).await?))
}

/// Close an introduction without blame and propose the service user to another peer (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    request_body = Rematch,
    responses(
        (status = 201, body = IntroductionDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions/{introduction_id}/rematch")]
#[tracing::instrument(skip_all)]
async fn rematch(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
    body: crate::json::Json<Rematch>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(created_or_ok(
        service::rematch(&state, &auth, ClinicId(clinic), id, &body).await?,
    ))
}

/// Boundary reports of an introduction (HPs of the clinic; audited).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<BoundaryReport>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/clinics/{clinic_id}/introductions/{introduction_id}/reports")]
#[tracing::instrument(skip_all)]
async fn reports(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok().json(service::reports(&state, &auth, ClinicId(clinic), id).await?))
}

/// Mark a boundary report as handled (HPs of the clinic).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("clinic_id" = Uuid, Path), ("introduction_id" = Uuid, Path), ("report_id" = Uuid, Path)),
    responses(
        (status = 200, body = BoundaryReport),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/clinics/{clinic_id}/introductions/{introduction_id}/reports/{report_id}/handled")]
#[tracing::instrument(skip_all)]
async fn handle_report(
    state: State,
    auth: Auth<Hp>,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (clinic, id, report_id) = path.into_inner();
    auth.require_clinic(clinic)?;
    Ok(HttpResponse::Ok()
        .json(service::handle_report(&state, &auth, ClinicId(clinic), id, report_id).await?))
}

/// The caller's introductions as a party: aliases and blurbs only.
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PartyIntroduction>),
        (status = 403, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/introductions")]
#[tracing::instrument(skip_all)]
async fn mine(state: State, auth: Auth<Party>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::mine(&state, &auth).await?))
}

/// One of the caller's introductions (parties only; 404 for anyone else).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/introductions/{introduction_id}")]
#[tracing::instrument(skip_all)]
async fn get_mine(
    state: State,
    auth: Auth<Party>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::get_mine(&state, &auth, *path).await?))
}

/// Accept an introduction (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/accept")]
#[tracing::instrument(skip_all)]
async fn accept(state: State, auth: Auth<Party>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Accept).await?))
}

/// Decline an introduction (parties); the counterpart sees it as an expiry.
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/decline")]
#[tracing::instrument(skip_all)]
async fn decline(
    state: State,
    auth: Auth<Party>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Decline).await?))
}

/// Pause an active introduction (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/pause")]
#[tracing::instrument(skip_all)]
async fn pause(state: State, auth: Auth<Party>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Pause).await?))
}

/// Resume an introduction one paused (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/resume")]
#[tracing::instrument(skip_all)]
async fn resume(state: State, auth: Auth<Party>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Resume).await?))
}

/// Close an introduction (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/close")]
#[tracing::instrument(skip_all)]
async fn close(state: State, auth: Auth<Party>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Close).await?))
}

/// Block the counterpart: the introduction ends, no further messages are delivered, the clinic's HPs are informed (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = PartyIntroduction),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/block")]
#[tracing::instrument(skip_all)]
async fn block(state: State, auth: Auth<Party>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::party_act(&state, &auth, *path, Action::Block).await?))
}

/// Report a boundary problem to the clinic's HPs (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    request_body = BoundaryReportCreate,
    responses(
        (status = 201, body = BoundaryReport),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/reports")]
#[tracing::instrument(skip_all)]
async fn report(
    state: State,
    auth: Auth<Party>,
    path: web::Path<Uuid>,
    body: crate::json::Json<BoundaryReportCreate>,
) -> ApiResult<HttpResponse> {
    Ok(created_or_ok(
        service::report_boundary(&state, &auth, *path, &body).await?,
    ))
}

/// Signed consent statements of both parties (parties; clients verify each signature).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<ConsentRecord>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/v1/introductions/{introduction_id}/consents")]
#[tracing::instrument(skip_all)]
async fn consents(
    state: State,
    auth: Auth<Party>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::consents(&state, &auth, *path).await?))
}

/// Record a signed consent or its withdrawal (parties).
#[utoipa::path(
    tag = "introductions",
    security(("bearer" = [])),
    params(("introduction_id" = Uuid, Path)),
    request_body = ConsentUpload,
    responses(
        (status = 201, body = ConsentRecord),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    )
)]
#[post("/v1/introductions/{introduction_id}/consents")]
#[tracing::instrument(skip_all)]
async fn consent(
    state: State,
    auth: Auth<Party>,
    path: web::Path<Uuid>,
    body: crate::json::Json<ConsentUpload>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(service::record_consent(&state, &auth, *path, &body).await?))
}
