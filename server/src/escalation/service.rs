//! Flags: who must act (routing and the ladder's levels), raising with sealed excerpts,
//! the HP queue and its actions. The server never opens an excerpt: it stores one sealed
//! copy per recipient device and hands each device its own.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use peerbridge_openapi::escalation::{
    CrisisResource, EscalationKeyUpload, EscalationRecipient, EventKind, Flag, FlagCreate,
    FlagDetail, FlagEvent, FlagKind, FlagOutcome, FlagParty, FlagProgress, FlagReceipt,
    FlagResolve, Locale, RiskCategory, SealedExcerpt, Severity, SubjectIdentity,
};
use peerbridge_openapi::signed::escalation_key_message;
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    SqlErr,
};
use serde_json::json;
use uuid::Uuid;

use super::calendar;
use super::entities::{escalation_key, event, excerpt, flag, on_call, roster, settings, shift};
use crate::accounts::entities::{device, user};
use crate::accounts::service::ACTIVE;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, b64_decode, ed25519_verifies, enum_parse, enum_str, stored};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, UserId};
use crate::introductions::service as introductions;
use crate::state::AppState;
use crate::supervision;

/// The highest ladder level: 0 on duty now (or the out-of-hours on-call HPs) + supervisors,
/// 1 next responders, 2 every HP of the clinic, 3 the clinic admins.
pub const TOP_LEVEL: i32 = 3;
const MAX_EXCERPTS: usize = 200;

pub const DEFAULT_NOTICE_NB: &str = "En behandler fra klinikken er bedt om å ta kontakt med deg.";
pub const DEFAULT_NOTICE_NN: &str = "Ein behandlar frå klinikken er beden om å ta kontakt med deg.";
pub const DEFAULT_NOTICE_EN: &str =
    "A clinician from the clinic has been asked to check in with you.";

/// What the conversation is told when nobody could be alerted: the flag is stored and
/// waits, and nobody is said to have been asked.
const RECEIVED_NB: &str = "Klinikken har mottatt meldingen, men ingen har bekreftet den ennå. Ved fare for liv: ring 113.";
const RECEIVED_NN: &str =
    "Klinikken har fått meldinga, men ingen har stadfesta ho enno. Ved fare for liv: ring 113.";
const RECEIVED_EN: &str = "The clinic has received this, but no one has confirmed it yet. If a life is in danger, call 113.";

// ---------------------------------------------------------------------------------------
// Stored values

pub fn severity_rank(s: Severity) -> i32 {
    match s {
        Severity::Imminent => 0,
        Severity::Urgent => 1,
        Severity::Concerning => 2,
        Severity::Routine => 3,
    }
}

// ---------------------------------------------------------------------------------------
// Settings and deadlines

pub fn default_settings(clinic: Uuid, now: DateTime<Utc>) -> settings::Model {
    settings::Model {
        clinic_id: clinic,
        imminent_minutes: 5,
        urgent_minutes: 15,
        concerning_minutes: 240,
        routine_hour: 10,
        notice_nb: DEFAULT_NOTICE_NB.into(),
        notice_nn: DEFAULT_NOTICE_NN.into(),
        notice_en: DEFAULT_NOTICE_EN.into(),
        updated_at: now,
        time_zone: "Europe/Oslo".into(),
        followup_minutes: 120,
        ooh_phone: None,
        ooh_label_nb: None,
        ooh_label_nn: None,
        ooh_label_en: None,
    }
}

pub async fn settings_of(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<settings::Model> {
    Ok(settings::Entity::find_by_id(clinic)
        .one(db)
        .await?
        .unwrap_or_else(|| default_settings(clinic, now)))
}

/// When a flag of `severity` raised (or escalated) at `now` must be acknowledged.
pub fn deadline(s: &settings::Model, severity: Severity, now: DateTime<Utc>) -> DateTime<Utc> {
    let minutes = match severity {
        Severity::Imminent => s.imminent_minutes,
        Severity::Urgent => s.urgent_minutes,
        Severity::Concerning => s.concerning_minutes,
        Severity::Routine => {
            return calendar::next_working_day(
                now,
                s.routine_hour.clamp(0, 23) as u32,
                calendar::zone(&s.time_zone),
            );
        }
    };
    now + Duration::minutes(i64::from(minutes.max(1)))
}

/// When an acknowledged, unresolved flag's responders are reminded (again).
pub fn followup(s: &settings::Model, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(i64::from(s.followup_minutes.max(1)))
}

// ---------------------------------------------------------------------------------------
// Routing

async fn active_with_role(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    role: Role,
) -> ApiResult<Vec<Uuid>> {
    Ok(user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic))
        .filter(user::Column::Role.eq(role.as_str()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect())
}

/// The supervisors of a peer (in the peer's home clinic).
async fn supervisors(db: &impl ConnectionTrait, peer: Option<Uuid>) -> ApiResult<Vec<Uuid>> {
    let Some(peer) = peer else {
        return Ok(Vec::new());
    };
    let Some(home) = user::Entity::find_by_id(peer)
        .one(db)
        .await?
        .and_then(|u| u.clinic_id)
    else {
        return Ok(Vec::new());
    };
    Ok(
        supervision::supervisors_of(db, ClinicId(home), UserId(peer))
            .await?
            .into_iter()
            .map(|a| a.hp_id)
            .collect(),
    )
}

/// The clinic's roster at an instant: who is on duty and next responder now (the
/// always-on lists and every shift covering it on the clinic's clock), and, when nobody is
/// on duty, the out-of-hours on-call HPs who take the first level instead.
pub struct Rota {
    pub on_duty: Vec<Uuid>,
    pub next: Vec<Uuid>,
    pub out_of_hours: bool,
}

pub async fn rota_at(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Rota> {
    let policy = settings_of(db, clinic, now).await?;
    let tz = calendar::zone(&policy.time_zone);
    let mut on_duty = Vec::new();
    let mut next = Vec::new();
    for r in roster::Entity::find()
        .filter(roster::Column::ClinicId.eq(clinic))
        .all(db)
        .await?
    {
        if r.level == 0 {
            &mut on_duty
        } else {
            &mut next
        }
        .push(r.hp_id);
    }
    for sh in shift::Entity::find()
        .filter(shift::Column::ClinicId.eq(clinic))
        .all(db)
        .await?
    {
        let days = calendar::days_of(sh.days);
        let (start, end) = (sh.start_minute.max(0) as u32, sh.end_minute.max(0) as u32);
        if calendar::covers(&days, start, end, tz, now) {
            if sh.level == 0 {
                &mut on_duty
            } else {
                &mut next
            }
            .push(sh.hp_id);
        }
    }
    let on_duty = only_active(db, on_duty).await?;
    let out_of_hours = on_duty.is_empty();
    let on_duty = if out_of_hours {
        let on_call: Vec<Uuid> = on_call::Entity::find()
            .filter(on_call::Column::ClinicId.eq(clinic))
            .order_by_asc(on_call::Column::Position)
            .all(db)
            .await?
            .into_iter()
            .map(|r| r.hp_id)
            .collect();
        only_active(db, on_call).await?
    } else {
        on_duty
    };
    Ok(Rota {
        on_duty,
        next: only_active(db, next).await?,
        out_of_hours,
    })
}

async fn only_active(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> ApiResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let active: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.clone()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let mut seen = HashSet::new();
    Ok(ids
        .into_iter()
        .filter(|id| active.contains(id) && seen.insert(*id))
        .collect())
}

/// Who must act at `level` (cumulative) at `now`: those on duty now at the responsible
/// clinic (or its on-call HPs out of hours) and the peer's supervisors; then the next
/// responders; then every HP of the clinic; then its admins. Active accounts only.
pub async fn responders(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    peer: Option<Uuid>,
    assigned_to: Option<Uuid>,
    level: i32,
    now: DateTime<Utc>,
) -> ApiResult<HashSet<Uuid>> {
    let mut out: HashSet<Uuid> = HashSet::new();
    let rota = rota_at(db, clinic, now).await?;
    out.extend(rota.on_duty);
    out.extend(supervisors(db, peer).await?);
    out.extend(assigned_to);
    if level >= 1 {
        out.extend(rota.next);
    }
    if level >= 2 {
        out.extend(active_with_role(db, clinic, Role::Hp).await?);
    }
    if level >= 3 {
        out.extend(active_with_role(db, clinic, Role::ClinicAdmin).await?);
    }
    let active: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::Id.is_in(out.iter().copied().collect::<Vec<_>>()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    Ok(out.into_iter().filter(|u| active.contains(u)).collect())
}

/// The first level above `level` that reaches somebody new at `now` (levels that add nobody
/// are passed over: an empty next-responder list must not cost a deadline), or the top.
pub async fn next_level(
    db: &impl ConnectionTrait,
    f: &flag::Model,
    now: DateTime<Utc>,
) -> ApiResult<i32> {
    let current = responders(db, f.clinic_id, f.peer_id, f.assigned_to, f.level, now).await?;
    let mut level = f.level + 1;
    while level < TOP_LEVEL {
        let reached = responders(db, f.clinic_id, f.peer_id, f.assigned_to, level, now).await?;
        if reached.iter().any(|u| !current.contains(u)) {
            break;
        }
        level += 1;
    }
    Ok(level.min(TOP_LEVEL))
}

pub async fn flag_responders(
    db: &impl ConnectionTrait,
    f: &flag::Model,
    now: DateTime<Utc>,
) -> ApiResult<HashSet<Uuid>> {
    responders(db, f.clinic_id, f.peer_id, f.assigned_to, f.level, now).await
}

/// Whether `user` may see the flag now (its responders at `now`, and whoever acknowledged
/// or was assigned it: a shift ending does not take a flag out of its acknowledger's hands).
async fn can_see(
    db: &impl ConnectionTrait,
    f: &flag::Model,
    user: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    Ok(f.acknowledged_by == Some(user)
        || f.assigned_to == Some(user)
        || flag_responders(db, f, now).await?.contains(&user))
}

/// What a flag on this conversation is about: the responsible clinic, the person at risk and
/// the peer supporter involved.
struct Subject {
    clinic: Uuid,
    subject: Uuid,
    peer: Option<Uuid>,
    introduction: Option<Uuid>,
}

/// The person at risk in an introduction: who the raiser names, else the raiser for
/// `help_now`, else the other party (what a party flags is what they read from the other).
fn at_risk(
    p: &Principal,
    kind: FlagKind,
    named: Option<FlagParty>,
    service_user: Uuid,
    peer: Uuid,
) -> Uuid {
    let party = |w: FlagParty| match w {
        FlagParty::ServiceUser => service_user,
        FlagParty::Peer => peer,
    };
    match (kind, named) {
        (FlagKind::HelpNow, _) => p.user_id,
        (FlagKind::Flag, Some(w)) if p.role == Role::Hp => party(w),
        (FlagKind::Flag, _) if p.user_id == service_user => peer,
        (FlagKind::Flag, _) => service_user,
    }
}

async fn subject_of(
    state: &AppState,
    p: &Principal,
    conversation: Uuid,
    kind: FlagKind,
    named: Option<FlagParty>,
) -> ApiResult<(crate::delivery::entities::conversation::Model, Subject)> {
    let conv =
        crate::delivery::service::member_conversation(&state.urgent.read, p, conversation).await?;
    let s = if let Some(i) = introductions::of_conversation(&state.urgent.read, &conv).await? {
        Subject {
            clinic: i.clinic_id,
            subject: at_risk(p, kind, named, i.service_user_id, i.peer_id),
            peer: Some(i.peer_id),
            introduction: Some(i.id),
        }
    } else {
        // A supervision conversation: the peer supporter themselves may be at risk.
        Subject {
            clinic: conv.clinic_id,
            subject: conv.subject_id,
            peer: Some(conv.subject_id),
            introduction: None,
        }
    };
    Ok((conv, s))
}

// ---------------------------------------------------------------------------------------
// Escalation keys

pub async fn set_escalation_key(
    state: &AppState,
    p: &Principal,
    req: &EscalationKeyUpload,
) -> ApiResult<()> {
    let key = b64_decode(&req.public_key)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            ApiError::invalid("public_key", "an X25519 public key: 32 bytes, base64url")
        })?;
    let sig = b64_decode(&req.signature)
        .filter(|s| s.len() == 64)
        .ok_or_else(|| ApiError::invalid("signature", "64 bytes, base64url"))?;
    let dev = device::Entity::find_by_id(p.device_id)
        .one(&state.db)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let verifies = ed25519_verifies(&dev.public_key, &escalation_key_message(&key), &sig);
    if !verifies {
        return Err(ApiError::invalid(
            "signature",
            "is not this device's signature over the escalation key",
        ));
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    // Publishing the same key again keeps its certificate; a new key needs a new one.
    let certificate = escalation_key::Entity::find_by_id(p.device_id)
        .one(&txn)
        .await?
        .filter(|k| k.public_key == key)
        .and_then(|k| k.certificate);
    escalation_key::Entity::delete_by_id(p.device_id)
        .exec(&txn)
        .await?;
    escalation_key::ActiveModel {
        device_id: Set(p.device_id),
        public_key: Set(key),
        signature: Set(sig),
        created_at: Set(now),
        certificate: Set(certificate),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("escalation_key.published")
            .clinic(p.clinic_id)
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(p.device_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Keys of every device of every user who may ever have to act on a flag about `s` (all
/// ladder levels): sealing to all of them means escalation never waits for cryptography.
async fn recipient_keys(
    db: &impl ConnectionTrait,
    s: &Subject,
    now: DateTime<Utc>,
) -> ApiResult<Vec<(device::Model, escalation_key::Model)>> {
    let users: Vec<Uuid> = responders(db, s.clinic, s.peer, None, TOP_LEVEL, now)
        .await?
        .into_iter()
        .collect();
    let devices = device::Entity::find()
        .filter(device::Column::UserId.is_in(users))
        .filter(device::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    let keys = escalation_key::Entity::find()
        .filter(
            escalation_key::Column::DeviceId
                .is_in(devices.iter().map(|d| d.id).collect::<Vec<_>>()),
        )
        .all(db)
        .await?;
    Ok(devices
        .into_iter()
        .filter_map(|d| {
            let k = keys.iter().find(|k| k.device_id == d.id)?.clone();
            Some((d, k))
        })
        .collect())
}

/// The escalation authority of the clinic a flag from this conversation goes to.
pub async fn conversation_authority(
    state: &AppState,
    p: &Principal,
    conversation: Uuid,
) -> ApiResult<peerbridge_openapi::escalation::EscalationAuthority> {
    let (_, s) = subject_of(state, p, conversation, FlagKind::Flag, None).await?;
    super::authority::get(state, s.clinic).await
}

pub async fn recipients(
    state: &AppState,
    p: &Principal,
    conversation: Uuid,
) -> ApiResult<Vec<EscalationRecipient>> {
    let (_, s) = subject_of(state, p, conversation, FlagKind::Flag, None).await?;
    Ok(recipient_keys(&state.urgent.read, &s, state.now())
        .await?
        .into_iter()
        .map(|(d, k)| EscalationRecipient {
            device_id: d.id,
            device_key: b64(&d.public_key),
            public_key: b64(&k.public_key),
            signature: b64(&k.signature),
            certificate: k.certificate.as_deref().map(b64),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Raising

fn notice(s: &settings::Model, locale: Option<Locale>) -> String {
    match locale {
        Some(Locale::Nn) => s.notice_nn.clone(),
        Some(Locale::En) => s.notice_en.clone(),
        _ => s.notice_nb.clone(),
    }
}

/// Wakes every live device of `users` about a flag (content-free).
pub async fn notify(state: &AppState, users: &HashSet<Uuid>, flag: Uuid, what: &str) {
    let users: Vec<Uuid> = users.iter().copied().collect();
    let notice = peerbridge_openapi::delivery::Notice::Flag {
        flag_id: flag,
        event: what.to_owned(),
    };
    crate::notify::users(state, &users, &notice).await;
}

pub async fn raise(
    state: &AppState,
    p: &Principal,
    conversation: Uuid,
    req: &FlagCreate,
) -> ApiResult<(FlagReceipt, bool)> {
    let (conv, s) = subject_of(state, p, conversation, req.kind, req.subject).await?;
    let (category, severity) = match (req.kind, p.role) {
        (FlagKind::HelpNow, Role::ServiceUser) => (RiskCategory::Other, Severity::Imminent),
        (FlagKind::HelpNow, _) => {
            return Err(ApiError::forbidden(
                "\"I need help now\" is the service user's button",
            ));
        }
        // A service user flags what they read from their peer supporter (introductions only).
        (FlagKind::Flag, Role::Peer | Role::Hp | Role::ServiceUser) => (
            req.category
                .ok_or_else(|| ApiError::invalid("category", "required for a flag"))?,
            req.severity
                .ok_or_else(|| ApiError::invalid("severity", "required for a flag"))?,
        ),
        (FlagKind::Flag, _) => {
            return Err(ApiError::forbidden(
                "flags are raised by the people in the conversation",
            ));
        }
    };
    let now = state.now();
    let policy = settings_of(&state.urgent.read, s.clinic, now).await?;
    if let Some(done) = already_raised(state, p, conv.id, req, &policy).await? {
        return Ok(done);
    }
    if req.excerpts.len() > MAX_EXCERPTS {
        return Err(ApiError::invalid("excerpts", "at most 200 sealed copies"));
    }
    // Each sealed copy must be addressed to a current key of a possible responder.
    let keys = recipient_keys(&state.urgent.read, &s, now).await?;
    let mut copies = Vec::new();
    for (i, e) in req.excerpts.iter().enumerate() {
        let field = |f: &str| format!("excerpts[{i}].{f}");
        let pk = b64_decode(&e.public_key)
            .ok_or_else(|| ApiError::invalid(&field("public_key"), "base64url"))?;
        let enc = b64_decode(&e.enc)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .ok_or_else(|| ApiError::invalid(&field("enc"), "1 to 256 bytes, base64url"))?;
        let ct = b64_decode(&e.ciphertext)
            .filter(|v| !v.is_empty() && v.len() <= 256 * 1024)
            .ok_or_else(|| {
                ApiError::invalid(&field("ciphertext"), "1 byte to 256 KiB, base64url")
            })?;
        let (dev, _) = keys.iter().find(|(_, k)| k.public_key == pk).ok_or_else(|| {
            ApiError::invalid(
                &field("public_key"),
                "not a current escalation key of a responder; fetch escalation-recipients again",
            )
        })?;
        if copies
            .iter()
            .any(|(d, ..): &(Uuid, Vec<u8>, Vec<u8>, Vec<u8>)| *d == dev.id)
        {
            return Err(ApiError::invalid(
                &field("public_key"),
                "one copy per device",
            ));
        }
        copies.push((dev.id, pk, enc, ct));
    }
    // Start at the first level that reaches somebody (out of hours, the on-call HPs are
    // the first level). When no level does, the flag waits and nobody is said to be asked.
    let rota = rota_at(&state.urgent.read, s.clinic, now).await?;
    let mut level = 0;
    let mut first = responders(&state.urgent.read, s.clinic, s.peer, None, level, now).await?;
    while level < TOP_LEVEL && first.is_empty() {
        level += 1;
        first = responders(&state.urgent.read, s.clinic, s.peer, None, level, now).await?;
    }
    let asked = !first.is_empty();
    let id = Uuid::new_v4();
    let turn = state.urgent.turn().await;
    let txn = crate::storage::begin(&state.urgent.write).await?;
    let row = flag::ActiveModel {
        id: Set(id),
        clinic_id: Set(s.clinic),
        conversation_id: Set(conv.id),
        introduction_id: Set(s.introduction),
        client_id: Set(req.client_id),
        kind: Set(enum_str(&req.kind)),
        category: Set(enum_str(&category)),
        severity: Set(enum_str(&severity)),
        severity_rank: Set(severity_rank(severity)),
        status: Set("open".into()),
        raised_by: Set(p.user_id),
        raised_device: Set(p.device_id),
        subject_id: Set(s.subject),
        peer_id: Set(s.peer),
        level: Set(level),
        deadline_at: Set(deadline(&policy, severity, now)),
        assigned_to: Set(None),
        acknowledged_by: Set(None),
        acknowledged_at: Set(None),
        outcome: Set(None),
        resolved_by: Set(None),
        resolved_at: Set(None),
        created_at: Set(now),
        out_of_hours: Set(rota.out_of_hours),
        asked: Set(asked),
    }
    .insert(&txn)
    .await;
    let row = match row {
        Ok(row) => row,
        // A concurrent retry of the same flag committed first: answer as a retry does.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            drop(txn);
            drop(turn);
            return already_raised(state, p, conv.id, req, &policy)
                .await?
                .ok_or_else(|| e.into());
        }
        Err(e) => return Err(e.into()),
    };
    for (device_id, pk, enc, ct) in copies {
        excerpt::ActiveModel {
            flag_id: Set(id),
            device_id: Set(device_id),
            public_key: Set(pk),
            enc: Set(enc),
            ciphertext: Set(ct),
        }
        .insert(&txn)
        .await?;
    }
    add_event(
        &txn,
        id,
        now,
        EventKind::Raised,
        Some(p.user_id),
        Some(level),
        None,
        None,
        None,
    )
    .await?;
    // Owed wake-ups are stored with the flag: a process killed before it pushes still
    // ends in a push (from another replica, or this one restarted).
    crate::notify::wakeups::owe(&txn, &first.iter().copied().collect::<Vec<_>>(), now).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("flag.raised")
            .clinic(Some(s.clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(id)
            .detail(json!({
                "kind": enum_str(&req.kind), "severity": enum_str(&severity), "level": level,
                "out_of_hours": rota.out_of_hours, "asked": asked,
            })),
    )
    .await?;
    txn.commit().await?;
    drop(turn);
    if asked {
        tracing::info!(flag = %id, severity = %enum_str(&severity), level, out_of_hours = rota.out_of_hours, "flag raised");
    } else {
        state.metrics.escalation.unalertable();
        tracing::error!(flag = %id, severity = %enum_str(&severity), "flag raised and nobody at any level of its clinic can be alerted");
    }
    notify(state, &first, id, "raised").await;
    Ok((receipt(&row, &policy, req.locale)?, true))
}

/// The stored flag with this client id, when this is a retry of it (a 2xx, nothing new);
/// 409 when the id belongs to somebody else's flag or another conversation.
async fn already_raised(
    state: &AppState,
    p: &Principal,
    conversation: Uuid,
    req: &FlagCreate,
    policy: &settings::Model,
) -> ApiResult<Option<(FlagReceipt, bool)>> {
    let Some(existing) = flag::Entity::find()
        .filter(flag::Column::ClientId.eq(req.client_id))
        .one(&state.urgent.read)
        .await?
    else {
        return Ok(None);
    };
    if existing.raised_by != p.user_id || existing.conversation_id != conversation {
        return Err(
            ApiError::new(ErrorCode::Conflict).detail("this client_id was used for another flag")
        );
    }
    Ok(Some((receipt(&existing, policy, req.locale)?, false)))
}

fn receipt(f: &flag::Model, s: &settings::Model, locale: Option<Locale>) -> ApiResult<FlagReceipt> {
    let notice = if f.asked {
        notice(s, locale)
    } else {
        match locale {
            Some(Locale::Nn) => RECEIVED_NN,
            Some(Locale::En) => RECEIVED_EN,
            _ => RECEIVED_NB,
        }
        .to_owned()
    };
    Ok(FlagReceipt {
        id: f.id,
        status: stored("flags.status", &f.status)?,
        created_at: f.created_at,
        notice,
        asked: f.asked,
        out_of_hours: out_of_hours_contact(f, s, locale),
    })
}

/// The clinic's out-of-hours service in the raiser's words, for a flag raised out of hours.
fn out_of_hours_contact(
    f: &flag::Model,
    s: &settings::Model,
    locale: Option<Locale>,
) -> Option<CrisisResource> {
    if !f.out_of_hours {
        return None;
    }
    let label = match locale {
        Some(Locale::Nn) => s.ooh_label_nn.clone(),
        Some(Locale::En) => s.ooh_label_en.clone(),
        _ => s.ooh_label_nb.clone(),
    };
    Some(CrisisResource {
        label: label?,
        phone: s.ooh_phone.clone()?,
        description: None,
    })
}

/// Where a flag the caller raised stands (received, acknowledged, resolved); 404 for a
/// flag somebody else raised.
pub async fn progress(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    locale: Option<Locale>,
) -> ApiResult<FlagProgress> {
    let f = flag::Entity::find_by_id(id)
        .one(&state.urgent.read)
        .await?
        .filter(|f| f.raised_by == p.user_id)
        .ok_or_else(ApiError::not_found)?;
    let s = settings_of(&state.urgent.read, f.clinic_id, state.now()).await?;
    progress_dto(&f, &s, locale)
}

fn progress_dto(
    f: &flag::Model,
    s: &settings::Model,
    locale: Option<Locale>,
) -> ApiResult<FlagProgress> {
    Ok(FlagProgress {
        id: f.id,
        conversation_id: f.conversation_id,
        kind: stored("flags.kind", &f.kind)?,
        status: stored("flags.status", &f.status)?,
        created_at: f.created_at,
        acknowledged_at: f.acknowledged_at,
        resolved_at: f.resolved_at,
        asked: f.asked,
        out_of_hours: out_of_hours_contact(f, s, locale),
    })
}

/// The flags the caller raised, newest first (at most 100).
pub async fn my_flags(
    state: &AppState,
    p: &Principal,
    locale: Option<Locale>,
) -> ApiResult<Vec<FlagProgress>> {
    use sea_orm::QuerySelect;
    let rows = flag::Entity::find()
        .filter(flag::Column::RaisedBy.eq(p.user_id))
        .order_by_desc(flag::Column::CreatedAt)
        .limit(100)
        .all(&state.urgent.read)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for f in rows {
        let s = settings_of(&state.urgent.read, f.clinic_id, state.now()).await?;
        out.push(progress_dto(&f, &s, locale)?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub async fn add_event(
    db: &impl ConnectionTrait,
    flag: Uuid,
    at: DateTime<Utc>,
    kind: EventKind,
    actor: Option<Uuid>,
    level: Option<i32>,
    note_enc: Option<Vec<u8>>,
    assigned_to: Option<Uuid>,
    outcome: Option<FlagOutcome>,
) -> ApiResult<()> {
    event::ActiveModel {
        id: Set(Uuid::new_v4()),
        flag_id: Set(flag),
        at: Set(at),
        kind: Set(enum_str(&kind)),
        actor: Set(actor),
        level: Set(level),
        note_enc: Set(note_enc),
        assigned_to: Set(assigned_to),
        outcome: Set(outcome.as_ref().map(enum_str)),
    }
    .insert(db)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The queue

async fn dto(
    db: &impl ConnectionTrait,
    f: &flag::Model,
    me: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Flag> {
    let named = responders(db, f.clinic_id, f.peer_id, None, f.level.min(1), now).await?;
    let group = crate::delivery::entities::conversation::Entity::find_by_id(f.conversation_id)
        .one(db)
        .await?
        .map(|c| b64(&c.group_id))
        .unwrap_or_default();
    Ok(Flag {
        id: f.id,
        clinic_id: f.clinic_id,
        conversation_id: f.conversation_id,
        group_id: group,
        introduction_id: f.introduction_id,
        kind: stored("flags.kind", &f.kind)?,
        category: stored("flags.category", &f.category)?,
        severity: stored("flags.severity", &f.severity)?,
        status: stored("flags.status", &f.status)?,
        raised_by: f.raised_by,
        subject_id: f.subject_id,
        level: f.level.clamp(0, TOP_LEVEL) as u8,
        deadline_at: f.deadline_at,
        out_of_hours: f.out_of_hours,
        assigned_to: f.assigned_to,
        acknowledged_by: f.acknowledged_by,
        acknowledged_at: f.acknowledged_at,
        outcome: f.outcome.as_deref().and_then(enum_parse),
        resolved_at: f.resolved_at,
        created_at: f.created_at,
        mine: f.assigned_to == Some(me)
            || f.acknowledged_by == Some(me)
            || (f.assigned_to.is_none() && named.contains(&me)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Mine,
    Clinic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Open and acknowledged (the default).
    Active,
    Open,
    Acknowledged,
    Resolved,
    All,
}

/// The caller's queue: flags they may see, most severe first, then oldest first.
pub async fn queue(
    state: &AppState,
    p: &Principal,
    scope: Scope,
    status: StatusFilter,
) -> ApiResult<Vec<Flag>> {
    // Candidates: the caller's clinic's flags, and flags about peers they supervise.
    let supervised: Vec<Uuid> = supervision::entity::Entity::find()
        .filter(supervision::entity::Column::HpId.eq(p.user_id))
        .all(&state.urgent.read)
        .await?
        .into_iter()
        .map(|a| a.peer_id)
        .collect();
    let mut any = sea_orm::Condition::any().add(flag::Column::PeerId.is_in(supervised));
    if let Some(c) = p.clinic_id {
        any = any.add(flag::Column::ClinicId.eq(c));
    }
    let now = state.now();
    let mut q = flag::Entity::find().filter(any);
    q = match status {
        StatusFilter::Active => q.filter(flag::Column::Status.is_in(["open", "acknowledged"])),
        StatusFilter::Open => q.filter(flag::Column::Status.eq("open")),
        StatusFilter::Acknowledged => q.filter(flag::Column::Status.eq("acknowledged")),
        StatusFilter::Resolved => q.filter(flag::Column::Status.eq("resolved")),
        StatusFilter::All => q,
    };
    let rows = q
        .order_by_asc(flag::Column::SeverityRank)
        .order_by_asc(flag::Column::CreatedAt)
        .all(&state.urgent.read)
        .await?;
    let mut out = Vec::new();
    for f in rows {
        if !can_see(&state.urgent.read, &f, p.user_id, now).await? {
            continue;
        }
        let d = dto(&state.urgent.read, &f, p.user_id, now).await?;
        if scope == Scope::Mine && !d.mine {
            continue;
        }
        out.push(d);
    }
    if !out.is_empty() {
        let turn = state.urgent.turn().await;
        let txn = crate::storage::begin(&state.urgent.write).await?;
        audit::append(
            &txn,
            state.now(),
            AuditEvent::new("flags.listed")
                .clinic(p.clinic_id)
                .actor(Some(p.user_id), Some(p.device_id))
                .detail(json!({ "flags": out.iter().map(|f| f.id).collect::<Vec<_>>() })),
        )
        .await?;
        txn.commit().await?;
        drop(turn);
    }
    Ok(out)
}

/// The flag if the caller may see it now, else 404.
async fn visible(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<flag::Model> {
    let f = flag::Entity::find_by_id(id)
        .one(&state.urgent.read)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !can_see(&state.urgent.read, &f, p.user_id, state.now()).await? {
        return Err(ApiError::not_found());
    }
    Ok(f)
}

fn event_dto(state: &AppState, e: event::Model) -> ApiResult<FlagEvent> {
    let note = e
        .note_enc
        .as_deref()
        .map(|c| {
            state
                .keys
                .fields
                .open("flag_events.note", &e.id.to_string(), c)
                .map_err(ApiError::internal)
        })
        .transpose()?;
    Ok(FlagEvent {
        at: e.at,
        kind: stored("flag_events.kind", &e.kind)?,
        actor: e.actor,
        level: e.level.map(|l| l.clamp(0, TOP_LEVEL) as u8),
        note,
        assigned_to: e.assigned_to,
        outcome: e.outcome.as_deref().and_then(enum_parse),
    })
}

pub async fn detail(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<FlagDetail> {
    let f = visible(state, p, id).await?;
    let events = event::Entity::find()
        .filter(event::Column::FlagId.eq(id))
        .order_by_asc(event::Column::At)
        .all(&state.urgent.read)
        .await?
        .into_iter()
        .map(|e| event_dto(state, e))
        .collect::<ApiResult<Vec<_>>>()?;
    let mine = excerpt::Entity::find_by_id((id, p.device_id))
        .one(&state.urgent.read)
        .await?
        .map(|e| SealedExcerpt {
            public_key: b64(&e.public_key),
            enc: b64(&e.enc),
            ciphertext: b64(&e.ciphertext),
        });
    let turn = state.urgent.turn().await;
    let txn = crate::storage::begin(&state.urgent.write).await?;
    audit::append(
        &txn,
        state.now(),
        AuditEvent::new("flag.viewed")
            .clinic(Some(f.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(f.id)
            .detail(json!({ "excerpt": mine.is_some() })),
    )
    .await?;
    txn.commit().await?;
    drop(turn);
    Ok(FlagDetail {
        flag: dto(&state.urgent.read, &f, p.user_id, state.now()).await?,
        events,
        excerpt: mine,
    })
}

/// The person at risk's identity, for the clinician who must reach them (audited).
/// Where a reason for an identity read is sealed (the audit entry's `reason_sealed`,
/// bound to the flag's id).
pub const SUBJECT_REASON_PLACE: &str = "audit_log.subject_reason";

/// The flagged person's identity, for a responder who states why; the read and its reason
/// (sealed: it may itself name someone) are one audit entry.
pub async fn subject(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    reason: &str,
) -> ApiResult<SubjectIdentity> {
    let reason = crate::accounts::validate::text("reason", reason, 500)?;
    let f = visible(state, p, id).await?;
    let u = user::Entity::find_by_id(f.subject_id)
        .one(&state.urgent.read)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let row = u.id.to_string();
    let open = |place: &str, v: &Option<Vec<u8>>| -> ApiResult<Option<String>> {
        v.as_deref()
            .map(|c| {
                state
                    .keys
                    .fields
                    .open(place, &row, c)
                    .map_err(ApiError::internal)
            })
            .transpose()
    };
    let out = SubjectIdentity {
        user_id: u.id,
        clinic_id: u.clinic_id,
        display_name: open("users.display_name", &u.display_name_enc)?,
        phone: open("users.phone", &u.phone_enc)?,
    };
    let turn = state.urgent.turn().await;
    let txn = crate::storage::begin(&state.urgent.write).await?;
    audit::append(
        &txn,
        state.now(),
        AuditEvent::new("flag.subject_identity_viewed")
            .clinic(Some(f.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(f.id)
            .detail(json!({
                "user_id": u.id,
                "reason_sealed": b64(&state.keys.fields.seal(
                    SUBJECT_REASON_PLACE,
                    &f.id.to_string(),
                    &reason,
                )),
            })),
    )
    .await?;
    txn.commit().await?;
    drop(turn);
    Ok(out)
}

pub enum Act<'a> {
    Acknowledge,
    Note(&'a str),
    Reassign(Uuid),
    Resolve(&'a FlagResolve),
}

pub async fn act(state: &AppState, p: &Principal, id: Uuid, act: Act<'_>) -> ApiResult<FlagDetail> {
    use sea_orm::QuerySelect;
    visible(state, p, id).await?;
    let now = state.now();
    let seal = |text: &str, event_id: Uuid| {
        state
            .keys
            .fields
            .seal("flag_events.note", &event_id.to_string(), text)
    };
    let turn = state.urgent.turn().await;
    let txn = crate::storage::begin(&state.urgent.write).await?;
    let f = flag::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let before = flag_responders(&txn, &f, now).await?;
    let policy = settings_of(&txn, f.clinic_id, now).await?;
    let mut am: flag::ActiveModel = f.clone().into();
    let (kind, action, mut note, mut assigned, mut outcome) =
        (EventKind::Note, "flag.note_added", None, None, None);
    let (kind, action) = match act {
        Act::Acknowledge => {
            if f.status != "open" {
                return detail_after(state, p, id, txn, turn).await;
            }
            am.status = Set("acknowledged".into());
            am.acknowledged_by = Set(Some(p.user_id));
            am.acknowledged_at = Set(Some(now));
            // From now on the deadline is the follow-up: reminders until it is resolved.
            am.deadline_at = Set(followup(&policy, now));
            (EventKind::Acknowledged, "flag.acknowledged")
        }
        Act::Note(text) => {
            let text = crate::accounts::validate::text("note", text, 2000)?;
            note = Some(text);
            (kind, action)
        }
        Act::Reassign(hp) => {
            if f.status == "resolved" {
                return Err(ApiError::new(ErrorCode::Conflict).detail("the flag is resolved"));
            }
            let ok = user::Entity::find_by_id(hp)
                .one(&txn)
                .await?
                .is_some_and(|u| {
                    u.status == ACTIVE
                        && u.role == Role::Hp.as_str()
                        && (u.clinic_id == Some(f.clinic_id) || before.contains(&u.id))
                });
            if !ok {
                return Err(ApiError::invalid(
                    "hp_id",
                    "an active HP of the flag's clinic or one of its responders",
                ));
            }
            am.assigned_to = Set(Some(hp));
            assigned = Some(hp);
            (EventKind::Reassigned, "flag.reassigned")
        }
        Act::Resolve(r) => {
            if f.status == "resolved" {
                return Err(
                    ApiError::new(ErrorCode::Conflict).detail("the flag is already resolved")
                );
            }
            if let Some(n) = r.note.as_deref().filter(|n| !n.is_empty()) {
                note = Some(crate::accounts::validate::text("note", n, 2000)?);
            }
            am.status = Set("resolved".into());
            am.outcome = Set(Some(enum_str(&r.outcome)));
            am.resolved_by = Set(Some(p.user_id));
            am.resolved_at = Set(Some(now));
            if f.acknowledged_by.is_none() {
                am.acknowledged_by = Set(Some(p.user_id));
                am.acknowledged_at = Set(Some(now));
            }
            outcome = Some(r.outcome);
            (EventKind::Resolved, "flag.resolved")
        }
    };
    let updated = am.update(&txn).await?;
    let event_id = Uuid::new_v4();
    event::ActiveModel {
        id: Set(event_id),
        flag_id: Set(id),
        at: Set(now),
        kind: Set(enum_str(&kind)),
        actor: Set(Some(p.user_id)),
        level: Set(None),
        note_enc: Set(note.as_deref().map(|n| seal(n, event_id))),
        assigned_to: Set(assigned.take()),
        outcome: Set(outcome.take().as_ref().map(enum_str)),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new(action)
            .clinic(Some(f.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(id),
    )
    .await?;
    let mut tell = before;
    tell.extend(flag_responders(&txn, &updated, now).await?);
    // The raiser hears that it moved (their app reads `progress`), never who moved it.
    if matches!(kind, EventKind::Acknowledged | EventKind::Resolved) {
        tell.insert(f.raised_by);
    }
    crate::notify::wakeups::owe(&txn, &tell.iter().copied().collect::<Vec<_>>(), now).await?;
    txn.commit().await?;
    drop(turn);
    if kind == EventKind::Acknowledged || (kind == EventKind::Resolved && f.status == "open") {
        state.metrics.escalation.acknowledged(&f, now);
    }
    notify(state, &tell, id, &enum_str(&kind)).await;
    detail(state, p, id).await
}

async fn detail_after(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    txn: sea_orm::DatabaseTransaction,
    turn: crate::storage::turns::Turn,
) -> ApiResult<FlagDetail> {
    txn.rollback().await?;
    // `detail` takes a turn of its own.
    drop(turn);
    detail(state, p, id).await
}
