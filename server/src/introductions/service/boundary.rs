//! Boundary reports: raised by a party, handled by the clinic's HPs.

use super::{as_party, clinic_hps, conflict, in_clinic, notify, parse_party, party_str};
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::enum_str;
use crate::error::{ApiError, ApiResult};
use crate::ids::ClinicId;
use crate::introductions::entities::report;
use crate::state::AppState;
use peerbridge_openapi::introductions::{BoundaryReport, BoundaryReportCreate};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

fn report_dto(state: &AppState, r: report::Model) -> ApiResult<BoundaryReport> {
    let note = r
        .note_enc
        .as_deref()
        .map(|c| {
            state
                .keys
                .fields
                .open("boundary_reports.note", &r.id.to_string(), c)
                .map_err(ApiError::internal)
        })
        .transpose()?;
    Ok(BoundaryReport {
        id: r.id,
        introduction_id: r.introduction_id,
        reported_by: parse_party(&r.reported_by).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "corrupt row: boundary_reports.reported_by holds a value no variant names"
            ))
        })?,
        category: crate::crypto::stored("boundary_reports.category", &r.category)?,
        note,
        created_at: r.created_at,
        handled_at: r.handled_at,
        handled_by: r.handled_by,
    })
}

pub async fn report_boundary(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    req: &BoundaryReportCreate,
) -> ApiResult<(BoundaryReport, bool)> {
    let (i, me) = as_party(&state.db, p, id).await?;
    let note = req
        .note
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| validate::text("note", n, 1000))
        .transpose()?;
    if let Some(existing) = report::Entity::find()
        .filter(report::Column::ClientId.eq(req.client_id))
        .one(&state.db)
        .await?
    {
        if existing.introduction_id != i.id {
            return Err(conflict("this client_id was used for another report"));
        }
        return Ok((report_dto(state, existing)?, false));
    }
    let now = state.now();
    let rid = Uuid::new_v4();
    let txn = crate::storage::begin(&state.db).await?;
    let row = report::ActiveModel {
        id: Set(rid),
        introduction_id: Set(i.id),
        client_id: Set(req.client_id),
        reported_by: Set(party_str(me).into()),
        category: Set(enum_str(&req.category)),
        note_enc: Set(note.map(|n| {
            state
                .keys
                .fields
                .seal("boundary_reports.note", &rid.to_string(), &n)
        })),
        created_at: Set(now),
        handled_at: Set(None),
        handled_by: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("introduction.boundary_reported")
            .clinic(Some(i.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(i.id)
            .detail(json!({ "report_id": rid, "category": enum_str(&req.category) })),
    )
    .await?;
    txn.commit().await?;
    notify(state, &clinic_hps(&state.db, i.clinic_id).await?, i.id).await;
    Ok((report_dto(state, row)?, true))
}

/// The introduction's reports for the clinic's HPs (every read is audited: notes may be
/// sensitive).
pub async fn reports(
    state: &AppState,
    p: &Principal,
    clinic: ClinicId,
    id: Uuid,
) -> ApiResult<Vec<BoundaryReport>> {
    let i = in_clinic(&state.db, clinic, id).await?;
    let rows = report::Entity::find()
        .filter(report::Column::IntroductionId.eq(i.id))
        .order_by_asc(report::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let txn = crate::storage::begin(&state.db).await?;
    audit::append(
        &txn,
        state.now(),
        AuditEvent::new("introduction.reports_viewed")
            .clinic(Some(clinic.0))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(i.id),
    )
    .await?;
    txn.commit().await?;
    rows.into_iter().map(|r| report_dto(state, r)).collect()
}

pub async fn handle_report(
    state: &AppState,
    p: &Principal,
    clinic: ClinicId,
    id: Uuid,
    report_id: Uuid,
) -> ApiResult<BoundaryReport> {
    let i = in_clinic(&state.db, clinic, id).await?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let r = report::Entity::find_by_id(report_id)
        .one(&txn)
        .await?
        .filter(|r| r.introduction_id == i.id)
        .ok_or_else(ApiError::not_found)?;
    if r.handled_at.is_some() {
        return report_dto(state, r);
    }
    let mut am: report::ActiveModel = r.into();
    am.handled_at = Set(Some(now));
    am.handled_by = Set(Some(p.user_id));
    let r = am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("introduction.report_handled")
            .clinic(Some(clinic.0))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(i.id)
            .detail(json!({ "report_id": report_id })),
    )
    .await?;
    txn.commit().await?;
    report_dto(state, r)
}
