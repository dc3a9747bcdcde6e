//! The clinic's escalation settings and roster, crisis resources, debrief requests and the
//! consultation log with its report (date, duration, kind — never content).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use peerbridge_openapi::Role;
use peerbridge_openapi::delivery::Notice;
use peerbridge_openapi::escalation::{
    Consultation, ConsultationCreate, ConsultationKind, ConsultationReport, ConsultationReportRow,
    CrisisResource, CrisisResourceList, Debrief, DebriefCreate, EscalationSettings, FlagStatus,
    Locale, OutOfHours, OutOfHoursContact, RosterLevel, Severity, Shift,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use super::calendar;
use super::entities::{consultation, crisis_resource, debrief, on_call, roster, settings, shift};
use super::service::{deadline, settings_of};
use crate::accounts::entities::user;
use crate::accounts::service::ACTIVE;
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{enum_str, stored};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, UserId};
use crate::state::AppState;
use crate::supervision;
use peerbridge_openapi::ErrorCode;

// ---------------------------------------------------------------------------------------
// Settings and roster

pub async fn get_settings(state: &AppState, clinic: Uuid) -> ApiResult<EscalationSettings> {
    let s = settings_of(&state.db, clinic, state.now()).await?;
    let rota = roster::Entity::find()
        .filter(roster::Column::ClinicId.eq(clinic))
        .all(&state.db)
        .await?;
    let level = |l: i32| {
        rota.iter()
            .filter(|r| r.level == l)
            .map(|r| r.hp_id)
            .collect()
    };
    let shifts = shift::Entity::find()
        .filter(shift::Column::ClinicId.eq(clinic))
        .order_by_asc(shift::Column::Level)
        .order_by_asc(shift::Column::StartMinute)
        .order_by_asc(shift::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| Shift {
            hp_id: r.hp_id,
            level: if r.level == 0 {
                RosterLevel::OnDuty
            } else {
                RosterLevel::NextResponder
            },
            days: calendar::days_of(r.days),
            start: hhmm(r.start_minute),
            end: hhmm(r.end_minute),
        })
        .collect();
    let on_call = on_call::Entity::find()
        .filter(on_call::Column::ClinicId.eq(clinic))
        .order_by_asc(on_call::Column::Position)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| r.hp_id)
        .collect();
    let contact = match (
        &s.ooh_phone,
        &s.ooh_label_nb,
        &s.ooh_label_nn,
        &s.ooh_label_en,
    ) {
        (Some(phone), Some(nb), Some(nn), Some(en)) => Some(OutOfHoursContact {
            phone: phone.clone(),
            label_nb: nb.clone(),
            label_nn: nn.clone(),
            label_en: en.clone(),
        }),
        _ => None,
    };
    Ok(EscalationSettings {
        on_duty: level(0),
        next_responders: level(1),
        shifts,
        out_of_hours: OutOfHours { on_call, contact },
        time_zone: s.time_zone.clone(),
        followup_minutes: s.followup_minutes.max(1) as u32,
        imminent_minutes: s.imminent_minutes.max(1) as u32,
        urgent_minutes: s.urgent_minutes.max(1) as u32,
        concerning_minutes: s.concerning_minutes.max(1) as u32,
        routine_hour: s.routine_hour.clamp(0, 23) as u32,
        notice_nb: s.notice_nb,
        notice_nn: s.notice_nn,
        notice_en: s.notice_en,
    })
}

/// A service's phone number as people dial it ("113", "116 117", "+47 (22) 00 00 00"):
/// digits, spaces, `+`, `-` and parentheses, at most 50 characters. Not a person's number
/// (`validate::phone`): emergency numbers are short.
fn service_phone(field: &str, s: &str) -> ApiResult<String> {
    let phone = validate::text(field, s, 50)?;
    if !phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-()".contains(c))
    {
        return Err(ApiError::invalid(
            field,
            "digits, spaces, +, - and parentheses",
        ));
    }
    Ok(phone)
}

fn hhmm(minutes: i32) -> String {
    let m = minutes.clamp(0, 24 * 60 - 1);
    format!("{:02}:{:02}", m / 60, m % 60)
}

pub async fn put_settings(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    req: &EscalationSettings,
) -> ApiResult<EscalationSettings> {
    for (field, v) in [
        ("imminent_minutes", req.imminent_minutes),
        ("urgent_minutes", req.urgent_minutes),
        ("concerning_minutes", req.concerning_minutes),
        ("followup_minutes", req.followup_minutes),
    ] {
        if !(1..=10_080).contains(&v) {
            return Err(ApiError::invalid(field, "1 to 10080 minutes"));
        }
    }
    if req.routine_hour > 23 {
        return Err(ApiError::invalid("routine_hour", "0 to 23"));
    }
    if req.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::invalid(
            "time_zone",
            "an IANA time zone name, e.g. Europe/Oslo",
        ));
    }
    let notices = [
        validate::text("notice_nb", &req.notice_nb, 500)?,
        validate::text("notice_nn", &req.notice_nn, 500)?,
        validate::text("notice_en", &req.notice_en, 500)?,
    ];
    if req.on_duty.len() + req.next_responders.len() > 200 {
        return Err(ApiError::invalid(
            "on_duty",
            "at most 200 people on the roster",
        ));
    }
    if req.shifts.len() > 500 {
        return Err(ApiError::invalid("shifts", "at most 500 shifts"));
    }
    if req.out_of_hours.on_call.len() > 50 {
        return Err(ApiError::invalid(
            "out_of_hours.on_call",
            "at most 50 people on call",
        ));
    }
    let mut shifts = Vec::new();
    for (i, sh) in req.shifts.iter().enumerate() {
        let field = |f: &str| format!("shifts[{i}].{f}");
        if sh.days.is_empty() {
            return Err(ApiError::invalid(&field("days"), "at least one day"));
        }
        let start = calendar::parse_hhmm(&sh.start)
            .ok_or_else(|| ApiError::invalid(&field("start"), "HH:MM, 00:00 to 23:59"))?;
        let end = calendar::parse_hhmm(&sh.end)
            .ok_or_else(|| ApiError::invalid(&field("end"), "HH:MM, 00:00 to 23:59"))?;
        shifts.push((sh, start, end));
    }
    let contact = match &req.out_of_hours.contact {
        Some(c) => {
            let phone = service_phone("out_of_hours.contact.phone", &c.phone)?;
            Some([
                phone,
                validate::text("out_of_hours.contact.label_nb", &c.label_nb, 200)?,
                validate::text("out_of_hours.contact.label_nn", &c.label_nn, 200)?,
                validate::text("out_of_hours.contact.label_en", &c.label_en, 200)?,
            ])
        }
        None => None,
    };
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let hps: Vec<Uuid> = user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic))
        .filter(user::Column::Role.eq(Role::Hp.as_str()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(&txn)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let shift_hps: Vec<Uuid> = req.shifts.iter().map(|s| s.hp_id).collect();
    for (field, list) in [
        ("on_duty", &req.on_duty),
        ("next_responders", &req.next_responders),
        ("shifts", &shift_hps),
        ("out_of_hours.on_call", &req.out_of_hours.on_call),
    ] {
        if let Some(bad) = list.iter().find(|id| !hps.contains(id)) {
            return Err(ApiError::invalid(
                field,
                format!("{bad} is not an active HP of this clinic"),
            ));
        }
    }
    if req
        .on_duty
        .iter()
        .any(|id| req.next_responders.contains(id))
    {
        return Err(ApiError::invalid(
            "next_responders",
            "an HP is either on duty or a next responder",
        ));
    }
    settings::Entity::delete_by_id(clinic).exec(&txn).await?;
    let [nb, nn, en] = notices;
    let [ooh_phone, ooh_nb, ooh_nn, ooh_en] = match contact {
        Some(c) => c.map(Some),
        None => [None, None, None, None],
    };
    settings::ActiveModel {
        clinic_id: Set(clinic),
        imminent_minutes: Set(req.imminent_minutes as i32),
        urgent_minutes: Set(req.urgent_minutes as i32),
        concerning_minutes: Set(req.concerning_minutes as i32),
        routine_hour: Set(req.routine_hour as i32),
        notice_nb: Set(nb),
        notice_nn: Set(nn),
        notice_en: Set(en),
        updated_at: Set(now),
        time_zone: Set(req.time_zone.clone()),
        followup_minutes: Set(req.followup_minutes as i32),
        ooh_phone: Set(ooh_phone),
        ooh_label_nb: Set(ooh_nb),
        ooh_label_nn: Set(ooh_nn),
        ooh_label_en: Set(ooh_en),
    }
    .insert(&txn)
    .await?;
    roster::Entity::delete_many()
        .filter(roster::Column::ClinicId.eq(clinic))
        .exec(&txn)
        .await?;
    for (level, list) in [(0, &req.on_duty), (1, &req.next_responders)] {
        let mut seen = std::collections::HashSet::new();
        for id in list {
            if !seen.insert(*id) {
                continue;
            }
            roster::ActiveModel {
                clinic_id: Set(clinic),
                hp_id: Set(*id),
                level: Set(level),
            }
            .insert(&txn)
            .await?;
        }
    }
    shift::Entity::delete_many()
        .filter(shift::Column::ClinicId.eq(clinic))
        .exec(&txn)
        .await?;
    for (sh, start, end) in shifts {
        shift::ActiveModel {
            id: Set(Uuid::new_v4()),
            clinic_id: Set(clinic),
            hp_id: Set(sh.hp_id),
            level: Set(match sh.level {
                RosterLevel::OnDuty => 0,
                RosterLevel::NextResponder => 1,
            }),
            days: Set(calendar::day_bits(&sh.days)),
            start_minute: Set(start as i32),
            end_minute: Set(end as i32),
        }
        .insert(&txn)
        .await?;
    }
    on_call::Entity::delete_many()
        .filter(on_call::Column::ClinicId.eq(clinic))
        .exec(&txn)
        .await?;
    let mut seen = std::collections::HashSet::new();
    for (i, id) in req.out_of_hours.on_call.iter().enumerate() {
        if !seen.insert(*id) {
            continue;
        }
        on_call::ActiveModel {
            clinic_id: Set(clinic),
            hp_id: Set(*id),
            position: Set(i as i32),
        }
        .insert(&txn)
        .await?;
    }
    audit::append(
        &txn,
        now,
        AuditEvent::new("escalation_settings.updated")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(clinic)
            .detail(json!({
                "on_duty": req.on_duty,
                "next_responders": req.next_responders,
                "shifts": req.shifts.len(),
                "on_call": req.out_of_hours.on_call,
                "time_zone": req.time_zone,
            })),
    )
    .await?;
    txn.commit().await?;
    get_settings(state, clinic).await
}

// ---------------------------------------------------------------------------------------
// Crisis resources

pub async fn crisis_resources(
    state: &AppState,
    clinic: Option<Uuid>,
    locale: Locale,
) -> ApiResult<CrisisResourceList> {
    let rows = match clinic {
        Some(c) => {
            crisis_resource::Entity::find()
                .filter(crisis_resource::Column::ClinicId.eq(c))
                .filter(crisis_resource::Column::Locale.eq(locale.code()))
                .order_by_asc(crisis_resource::Column::Position)
                .all(&state.db)
                .await?
        }
        None => Vec::new(),
    };
    let resources = if rows.is_empty() {
        CrisisResource::defaults(locale)
    } else {
        rows.into_iter()
            .map(|r| CrisisResource {
                label: r.label,
                phone: r.phone,
                description: r.description,
            })
            .collect()
    };
    let notice = match clinic {
        Some(c) => {
            let s = super::service::settings_of(&state.db, c, state.now()).await?;
            Some(match locale {
                Locale::Nb => s.notice_nb,
                Locale::Nn => s.notice_nn,
                Locale::En => s.notice_en,
            })
        }
        None => None,
    };
    Ok(CrisisResourceList {
        locale,
        resources,
        check_in_notice: notice,
    })
}

pub async fn put_crisis_resources(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    req: &CrisisResourceList,
) -> ApiResult<CrisisResourceList> {
    if req.resources.is_empty() || req.resources.len() > 30 {
        return Err(ApiError::invalid("resources", "1 to 30 resources"));
    }
    let mut clean = Vec::new();
    for (i, r) in req.resources.iter().enumerate() {
        let label = validate::text(&format!("resources[{i}].label"), &r.label, 200)?;
        let phone = service_phone(&format!("resources[{i}].phone"), &r.phone)?;
        let description = r
            .description
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| validate::text(&format!("resources[{i}].description"), d, 500))
            .transpose()?;
        clean.push((label, phone, description));
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    crisis_resource::Entity::delete_many()
        .filter(crisis_resource::Column::ClinicId.eq(clinic))
        .filter(crisis_resource::Column::Locale.eq(req.locale.code()))
        .exec(&txn)
        .await?;
    for (i, (label, phone, description)) in clean.into_iter().enumerate() {
        crisis_resource::ActiveModel {
            clinic_id: Set(clinic),
            locale: Set(req.locale.code().into()),
            position: Set(i as i32),
            label: Set(label),
            phone: Set(phone),
            description: Set(description),
        }
        .insert(&txn)
        .await?;
    }
    audit::append(
        &txn,
        now,
        AuditEvent::new("crisis_resources.updated")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(clinic)
            .detail(json!({ "locale": req.locale.code() })),
    )
    .await?;
    txn.commit().await?;
    crisis_resources(state, Some(clinic), req.locale).await
}

// ---------------------------------------------------------------------------------------
// Debriefs

fn debrief_dto(d: debrief::Model) -> ApiResult<Debrief> {
    Ok(Debrief {
        id: d.id,
        clinic_id: d.clinic_id,
        peer_id: d.peer_id,
        introduction_id: d.introduction_id,
        severity: stored("debriefs.severity", &d.severity)?,
        status: stored("debriefs.status", &d.status)?,
        deadline_at: d.deadline_at,
        acknowledged_by: d.acknowledged_by,
        acknowledged_at: d.acknowledged_at,
        created_at: d.created_at,
    })
}

async fn supervisors_of(state: &AppState, clinic: ClinicId, peer: UserId) -> ApiResult<Vec<Uuid>> {
    Ok(supervision::supervisors_of(&state.db, clinic, peer)
        .await?
        .into_iter()
        .map(|a| a.hp_id)
        .collect())
}

pub async fn request_debrief(
    state: &AppState,
    p: &Principal,
    req: &DebriefCreate,
) -> ApiResult<(Debrief, bool)> {
    let clinic = p
        .clinic_id
        .ok_or_else(|| ApiError::forbidden("debriefs belong to a clinic"))?;
    let severity = req.severity.unwrap_or(Severity::Routine);
    if !matches!(severity, Severity::Urgent | Severity::Routine) {
        return Err(ApiError::invalid(
            "severity",
            "urgent or routine; a risk to someone is a flag, not a debrief",
        ));
    }
    if let Some(existing) = debrief::Entity::find()
        .filter(debrief::Column::ClientId.eq(req.client_id))
        .one(&state.db)
        .await?
    {
        if existing.peer_id != p.user_id {
            return Err(ApiError::new(ErrorCode::Conflict)
                .detail("this client_id was used for another debrief"));
        }
        return Ok((debrief_dto(existing)?, false));
    }
    if let Some(intro) = req.introduction_id {
        let mine = crate::introductions::entities::introduction::Entity::find_by_id(intro)
            .one(&state.db)
            .await?
            .is_some_and(|i| i.peer_id == p.user_id);
        if !mine {
            return Err(ApiError::not_found().detail("no introduction of yours with this id"));
        }
    }
    let now = state.now();
    let policy = settings_of(&state.db, clinic, now).await?;
    let txn = crate::storage::begin(&state.db).await?;
    let row = debrief::ActiveModel {
        id: Set(Uuid::new_v4()),
        clinic_id: Set(clinic),
        client_id: Set(req.client_id),
        peer_id: Set(p.user_id),
        introduction_id: Set(req.introduction_id),
        severity: Set(enum_str(&severity)),
        status: Set("open".into()),
        deadline_at: Set(deadline(&policy, severity, now)),
        acknowledged_by: Set(None),
        acknowledged_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("debrief.requested")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(row.id),
    )
    .await?;
    txn.commit().await?;
    let notice = Notice::Debrief { debrief_id: row.id };
    let sups = supervisors_of(state, ClinicId(clinic), UserId(p.user_id)).await?;
    crate::notify::users(state, &sups, &notice).await;
    Ok((debrief_dto(row)?, true))
}

/// Debriefs of the peers the caller supervises (open first, urgent first, oldest first).
pub async fn debrief_queue(state: &AppState, p: &Principal) -> ApiResult<Vec<Debrief>> {
    let peers: Vec<Uuid> = supervision::entity::Entity::find()
        .filter(supervision::entity::Column::HpId.eq(p.user_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| a.peer_id)
        .collect();
    let mut rows: Vec<Debrief> = debrief::Entity::find()
        .filter(debrief::Column::PeerId.is_in(peers))
        .order_by_asc(debrief::Column::CreatedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(debrief_dto)
        .collect::<ApiResult<_>>()?;
    rows.sort_by_key(|d| (d.status != FlagStatus::Open, d.severity, d.created_at));
    Ok(rows)
}

pub async fn my_debriefs(state: &AppState, p: &Principal) -> ApiResult<Vec<Debrief>> {
    debrief::Entity::find()
        .filter(debrief::Column::PeerId.eq(p.user_id))
        .order_by_desc(debrief::Column::CreatedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(debrief_dto)
        .collect()
}

pub async fn acknowledge_debrief(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Debrief> {
    let d = debrief::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !supervisors_of(state, ClinicId(d.clinic_id), UserId(d.peer_id))
        .await?
        .contains(&p.user_id)
    {
        return Err(ApiError::not_found());
    }
    if d.status != "open" {
        return debrief_dto(d);
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let mut am: debrief::ActiveModel = d.clone().into();
    am.status = Set("acknowledged".into());
    am.acknowledged_by = Set(Some(p.user_id));
    am.acknowledged_at = Set(Some(now));
    let d = am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("debrief.acknowledged")
            .clinic(Some(d.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(d.id),
    )
    .await?;
    txn.commit().await?;
    let notice = Notice::Debrief { debrief_id: d.id };
    crate::notify::users(state, &[d.peer_id], &notice).await;
    debrief_dto(d)
}

// ---------------------------------------------------------------------------------------
// Consultations

fn consultation_dto(c: consultation::Model) -> ApiResult<Consultation> {
    Ok(Consultation {
        id: c.id,
        peer_id: c.peer_id,
        date: c.date,
        duration_minutes: c.duration_minutes.max(0) as u32,
        kind: stored("consultations.kind", &c.kind)?,
        created_at: c.created_at,
    })
}

pub async fn log_consultation(
    state: &AppState,
    p: &Principal,
    req: &ConsultationCreate,
) -> ApiResult<(Consultation, bool)> {
    let clinic = p
        .clinic_id
        .ok_or_else(|| ApiError::forbidden("consultations belong to a clinic"))?;
    if !(1..=600).contains(&req.duration_minutes) {
        return Err(ApiError::invalid("duration_minutes", "1 to 600"));
    }
    let now = state.now();
    if req.date > now.date_naive() || req.date < now.date_naive() - chrono::Duration::days(366) {
        return Err(ApiError::invalid(
            "date",
            "within the last year, not in the future",
        ));
    }
    if let Some(existing) = consultation::Entity::find()
        .filter(consultation::Column::ClientId.eq(req.client_id))
        .one(&state.db)
        .await?
    {
        if existing.peer_id != p.user_id {
            return Err(ApiError::new(ErrorCode::Conflict)
                .detail("this client_id was used for another consultation"));
        }
        return Ok((consultation_dto(existing)?, false));
    }
    let txn = crate::storage::begin(&state.db).await?;
    let row = consultation::ActiveModel {
        id: Set(Uuid::new_v4()),
        clinic_id: Set(clinic),
        client_id: Set(req.client_id),
        peer_id: Set(p.user_id),
        date: Set(req.date),
        duration_minutes: Set(req.duration_minutes as i32),
        kind: Set(enum_str(&req.kind)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("consultation.logged")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(row.id),
    )
    .await?;
    txn.commit().await?;
    Ok((consultation_dto(row)?, true))
}

pub async fn my_consultations(state: &AppState, p: &Principal) -> ApiResult<Vec<Consultation>> {
    consultation::Entity::find()
        .filter(consultation::Column::PeerId.eq(p.user_id))
        .order_by_desc(consultation::Column::Date)
        .all(&state.db)
        .await?
        .into_iter()
        .map(consultation_dto)
        .collect()
}

pub async fn consultation_report(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> ApiResult<ConsultationReport> {
    if to < from || (to - from).num_days() > 366 {
        return Err(ApiError::invalid(
            "to",
            "on or after `from`, at most a year later",
        ));
    }
    let rows = consultation::Entity::find()
        .filter(consultation::Column::ClinicId.eq(clinic))
        .filter(consultation::Column::Date.gte(from))
        .filter(consultation::Column::Date.lte(to))
        .all(&state.db)
        .await?;
    let mut by_peer: BTreeMap<Uuid, ConsultationReportRow> = BTreeMap::new();
    for c in rows {
        let r = by_peer.entry(c.peer_id).or_insert(ConsultationReportRow {
            peer_id: c.peer_id,
            consultations: 0,
            total_minutes: 0,
            chat: 0,
            call: 0,
            video: 0,
            meeting: 0,
        });
        r.consultations += 1;
        r.total_minutes += c.duration_minutes.max(0) as u32;
        match stored("consultations.kind", &c.kind)? {
            ConsultationKind::Chat => r.chat += 1,
            ConsultationKind::Call => r.call += 1,
            ConsultationKind::Video => r.video += 1,
            ConsultationKind::Meeting => r.meeting += 1,
        }
    }
    let txn = crate::storage::begin(&state.db).await?;
    audit::append(
        &txn,
        state.now(),
        AuditEvent::new("consultation_report.viewed")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .detail(json!({ "from": from, "to": to })),
    )
    .await?;
    txn.commit().await?;
    Ok(ConsultationReport {
        clinic_id: clinic,
        from,
        to,
        rows: by_peer.into_values().collect(),
    })
}

/// The report as CSV (one header line, one line per peer).
pub fn report_csv(r: &ConsultationReport) -> String {
    let mut out = String::from("peer_id,consultations,total_minutes,chat,call,video,meeting\n");
    for row in &r.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            row.peer_id,
            row.consultations,
            row.total_minutes,
            row.chat,
            row.call,
            row.video,
            row.meeting
        ));
    }
    out
}
