//! Peer profiles, the clinic's topic list, service users' needs, and suggestions. Profiles
//! and needs are seen only by the clinic's HPs (and the peer their own profile); remote-opted
//! peers reach HPs of other clinics of the network only through suggestions.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use peerbridge_openapi::Role;
use peerbridge_openapi::introductions::{
    AgeBand, Gender, Needs, NeedsRecord, OwnPeerProfileUpdate, PeerApproval, PeerProfile,
    PeerProfileUpdate, Suggestion, Topic, TopicList,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::entities::{introduction, needs, peer_profile, topic};
use super::suggest::{self, Candidate};
use crate::accounts::entities::user;
use crate::accounts::service::ACTIVE;
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::clinics::entity as clinic;
use crate::crypto::{enum_parse, enum_str};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, UserId};
use crate::state::AppState;
use crate::supervision::member_with_role;

/// The topics a clinic starts with (it edits the list).
const DEFAULT_TOPICS: &[(&str, &str)] = &[
    ("newly_diagnosed", "Newly diagnosed"),
    ("disclosure", "Disclosure"),
    ("adherence", "Treatment and adherence"),
    ("migration_background", "Migration background"),
    ("sexuality", "Sexuality"),
    ("parenthood", "Parenthood"),
    ("stigma", "Stigma"),
    ("relationships", "Relationships"),
    ("ageing", "Ageing with HIV"),
];

const DEFAULT_CAPACITY: u16 = 3;

/// States in which an introduction holds one of the peer's places.
pub const OPEN_STATES: [&str; 3] = ["proposed", "active", "paused"];

// ---------------------------------------------------------------------------------------
// Stored lists and enums

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Vec<T> {
    serde_json::from_str(s).unwrap_or_default()
}

fn languages(field: &str, v: &[String]) -> ApiResult<Vec<String>> {
    if v.len() > 10 {
        return Err(ApiError::invalid(field, "at most 10 languages"));
    }
    let mut out: Vec<String> = Vec::new();
    for l in v {
        let l = l.to_ascii_lowercase();
        if l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ApiError::invalid(
                field,
                "ISO 639-1 codes of two letters, e.g. nb, nn, en",
            ));
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    Ok(out)
}

async fn topic_keys(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    field: &str,
    v: &[String],
) -> ApiResult<Vec<String>> {
    if v.len() > 30 {
        return Err(ApiError::invalid(field, "at most 30 topics"));
    }
    let known: HashSet<String> = topics(db, clinic)
        .await?
        .into_iter()
        .map(|t| t.key)
        .collect();
    let mut out: Vec<String> = Vec::new();
    for t in v {
        if !known.contains(t) {
            return Err(ApiError::invalid(
                field,
                "unknown topic; use a key from the clinic's topic list",
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn optional_text(field: &str, v: &Option<String>, max: usize) -> ApiResult<Option<String>> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| validate::text(field, s, max))
        .transpose()
}

fn capacity(v: u16) -> ApiResult<i32> {
    if v > 50 {
        return Err(ApiError::invalid("capacity", "0 to 50"));
    }
    Ok(i32::from(v))
}

// ---------------------------------------------------------------------------------------
// Topics

pub async fn topics(db: &impl ConnectionTrait, clinic: Uuid) -> ApiResult<Vec<Topic>> {
    let rows = topic::Entity::find()
        .filter(topic::Column::ClinicId.eq(clinic))
        .order_by_asc(topic::Column::Position)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(DEFAULT_TOPICS
            .iter()
            .map(|(k, l)| Topic {
                key: (*k).into(),
                label: (*l).into(),
            })
            .collect());
    }
    Ok(rows
        .into_iter()
        .map(|r| Topic {
            key: r.key,
            label: r.label,
        })
        .collect())
}

pub async fn set_topics(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    req: &TopicList,
) -> ApiResult<Vec<Topic>> {
    if req.topics.is_empty() || req.topics.len() > 100 {
        return Err(ApiError::invalid("topics", "1 to 100 topics"));
    }
    let mut seen = HashSet::new();
    let mut clean = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let key_ok = !t.key.is_empty()
            && t.key.len() <= 40
            && t.key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(ApiError::invalid(
                &format!("topics[{i}].key"),
                "1 to 40 of a-z, 0-9 and _",
            ));
        }
        if !seen.insert(t.key.clone()) {
            return Err(ApiError::invalid(
                &format!("topics[{i}].key"),
                "keys must be unique",
            ));
        }
        let label = validate::text(&format!("topics[{i}].label"), &t.label, 100)?;
        clean.push((t.key.clone(), label));
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    topic::Entity::delete_many()
        .filter(topic::Column::ClinicId.eq(clinic))
        .exec(&txn)
        .await?;
    for (i, (key, label)) in clean.into_iter().enumerate() {
        topic::ActiveModel {
            clinic_id: Set(clinic),
            key: Set(key),
            label: Set(label),
            position: Set(i as i32),
        }
        .insert(&txn)
        .await?;
    }
    audit::append(
        &txn,
        now,
        AuditEvent::new("topics.updated")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(clinic),
    )
    .await?;
    txn.commit().await?;
    topics(&state.db, clinic).await
}

// ---------------------------------------------------------------------------------------
// Peer profiles

/// Open introductions per peer (proposed, active, paused; a proposal past its expiry no
/// longer holds a place).
pub async fn open_counts(
    db: &impl ConnectionTrait,
    peers: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<HashMap<Uuid, u32>> {
    let rows = introduction::Entity::find()
        .filter(introduction::Column::PeerId.is_in(peers.to_vec()))
        .filter(introduction::Column::State.is_in(OPEN_STATES))
        .all(db)
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        if r.state == "proposed" && r.expires_at <= now {
            continue;
        }
        *out.entry(r.peer_id).or_insert(0) += 1;
    }
    Ok(out)
}

fn profile_dto(m: peer_profile::Model, active: u32) -> PeerProfile {
    PeerProfile {
        peer_id: m.peer_id,
        clinic_id: m.clinic_id,
        approved: m.approved,
        trained_on: m.trained_on,
        approved_at: m.approved_at,
        approved_by: m.approved_by,
        languages: from_json(&m.languages),
        gender: m.gender.as_deref().and_then(enum_parse::<Gender>),
        age_band: m.age_band.as_deref().and_then(enum_parse::<AgeBand>),
        region: m.region,
        years_since_diagnosis: m.years_since_diagnosis.map(|y| y.clamp(0, 200) as u16),
        topics: from_json(&m.topics),
        remote_support: m.remote_support,
        capacity: m.capacity.clamp(0, 50) as u16,
        availability: m.availability,
        paused: m.paused,
        active_introductions: active,
        updated_at: m.updated_at,
    }
}

fn blank_profile(peer: UserId, clinic: ClinicId, now: DateTime<Utc>) -> peer_profile::Model {
    peer_profile::Model {
        peer_id: peer.0,
        clinic_id: clinic.0,
        approved: false,
        trained_on: None,
        approved_at: None,
        approved_by: None,
        languages: "[]".into(),
        gender: None,
        age_band: None,
        region: None,
        years_since_diagnosis: None,
        topics: "[]".into(),
        remote_support: false,
        capacity: i32::from(DEFAULT_CAPACITY),
        availability: None,
        paused: false,
        updated_at: now,
    }
}

async fn with_count(state: &AppState, m: peer_profile::Model) -> ApiResult<PeerProfile> {
    let counts = open_counts(&state.db, &[m.peer_id], state.now()).await?;
    let n = counts.get(&m.peer_id).copied().unwrap_or(0);
    Ok(profile_dto(m, n))
}

async fn stored_profile(
    db: &impl ConnectionTrait,
    peer: Uuid,
) -> ApiResult<Option<peer_profile::Model>> {
    Ok(peer_profile::Entity::find_by_id(peer).one(db).await?)
}

/// The profile of a peer of `clinic` (a blank, unapproved one if none was written yet).
pub async fn get_profile(
    state: &AppState,
    clinic: ClinicId,
    peer: UserId,
) -> ApiResult<PeerProfile> {
    member_with_role(&state.db, clinic, peer, Role::Peer).await?;
    let m = stored_profile(&state.db, peer.0)
        .await?
        .unwrap_or_else(|| blank_profile(peer, clinic, state.now()));
    with_count(state, m).await
}

pub async fn list_profiles(state: &AppState, clinic: Uuid) -> ApiResult<Vec<PeerProfile>> {
    let peers = user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic))
        .filter(user::Column::Role.eq(Role::Peer.as_str()))
        .filter(user::Column::Status.eq(ACTIVE))
        .order_by_asc(user::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let ids: Vec<Uuid> = peers.iter().map(|u| u.id).collect();
    let stored: HashMap<Uuid, peer_profile::Model> = peer_profile::Entity::find()
        .filter(peer_profile::Column::PeerId.is_in(ids.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|m| (m.peer_id, m))
        .collect();
    let counts = open_counts(&state.db, &ids, state.now()).await?;
    let now = state.now();
    Ok(ids
        .into_iter()
        .map(|id| {
            let m = stored
                .get(&id)
                .cloned()
                .unwrap_or_else(|| blank_profile(UserId(id), ClinicId(clinic), now));
            profile_dto(m, counts.get(&id).copied().unwrap_or(0))
        })
        .collect())
}

pub async fn put_profile(
    state: &AppState,
    p: &Principal,
    clinic: ClinicId,
    peer: UserId,
    req: &PeerProfileUpdate,
) -> ApiResult<PeerProfile> {
    let langs = languages("languages", &req.languages)?;
    let region = optional_text("region", &req.region, 100)?;
    let availability = optional_text("availability", &req.availability, 200)?;
    if req.years_since_diagnosis.is_some_and(|y| y > 80) {
        return Err(ApiError::invalid("years_since_diagnosis", "0 to 80"));
    }
    let cap = req.capacity.map(capacity).transpose()?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    member_with_role(&txn, clinic, peer, Role::Peer).await?;
    let topics = topic_keys(&txn, clinic.0, "topics", &req.topics).await?;
    let existing = stored_profile(&txn, peer.0).await?;
    let is_new = existing.is_none();
    let base = existing.unwrap_or_else(|| blank_profile(peer, clinic, now));
    let mut am: peer_profile::ActiveModel = base.clone().into();
    am.languages = Set(to_json(&langs));
    am.gender = Set(req.gender.as_ref().map(enum_str));
    am.age_band = Set(req.age_band.as_ref().map(enum_str));
    am.region = Set(region);
    am.years_since_diagnosis = Set(req.years_since_diagnosis.map(i32::from));
    am.topics = Set(to_json(&topics));
    am.remote_support = Set(req.remote_support);
    if let Some(c) = cap {
        am.capacity = Set(c);
    }
    if req.availability.is_some() {
        am.availability = Set(availability);
    }
    am.updated_at = Set(now);
    let saved = if is_new {
        peer_profile::ActiveModel {
            peer_id: Set(peer.0),
            ..am
        }
        .insert(&txn)
        .await?
    } else {
        am.update(&txn).await?
    };
    audit::append(
        &txn,
        now,
        AuditEvent::new("peer_profile.updated")
            .clinic(Some(clinic.0))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(peer),
    )
    .await?;
    txn.commit().await?;
    with_count(state, saved).await
}

/// Approve (`Some`) or withdraw approval (`None`) of a peer.
pub async fn set_approval(
    state: &AppState,
    p: &Principal,
    clinic: ClinicId,
    peer: UserId,
    req: Option<&PeerApproval>,
) -> ApiResult<PeerProfile> {
    let now = state.now();
    if let Some(a) = req
        && a.trained_on > now.date_naive()
    {
        return Err(ApiError::invalid("trained_on", "must not be in the future"));
    }
    let txn = crate::storage::begin(&state.db).await?;
    member_with_role(&txn, clinic, peer, Role::Peer).await?;
    let existing = stored_profile(&txn, peer.0).await?;
    let is_new = existing.is_none();
    let mut am: peer_profile::ActiveModel = existing
        .unwrap_or_else(|| blank_profile(peer, clinic, now))
        .into();
    am.approved = Set(req.is_some());
    am.trained_on = Set(req.map(|a| a.trained_on));
    am.approved_at = Set(req.map(|_| now));
    am.approved_by = Set(req.map(|_| p.user_id));
    am.updated_at = Set(now);
    let saved = if is_new {
        am.peer_id = Set(peer.0);
        am.insert(&txn).await?
    } else {
        am.update(&txn).await?
    };
    audit::append(
        &txn,
        now,
        AuditEvent::new(if req.is_some() {
            "peer.approved"
        } else {
            "peer.approval_withdrawn"
        })
        .clinic(Some(clinic.0))
        .actor(Some(p.user_id), Some(p.device_id))
        .subject(peer),
    )
    .await?;
    txn.commit().await?;
    with_count(state, saved).await
}

pub async fn own_profile(state: &AppState, p: &Principal) -> ApiResult<PeerProfile> {
    let clinic = p.clinic_id.ok_or_else(ApiError::not_found)?;
    get_profile(state, ClinicId(clinic), UserId(p.user_id)).await
}

pub async fn patch_own_profile(
    state: &AppState,
    p: &Principal,
    req: &OwnPeerProfileUpdate,
) -> ApiResult<PeerProfile> {
    let clinic = p.clinic_id.ok_or_else(ApiError::not_found)?;
    let cap = req.capacity.map(capacity).transpose()?;
    let availability = optional_text("availability", &req.availability, 200)?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let existing = stored_profile(&txn, p.user_id).await?;
    let is_new = existing.is_none();
    let mut am: peer_profile::ActiveModel = existing
        .unwrap_or_else(|| blank_profile(UserId(p.user_id), ClinicId(clinic), now))
        .into();
    if let Some(c) = cap {
        am.capacity = Set(c);
    }
    if req.availability.is_some() {
        am.availability = Set(availability);
    }
    if let Some(paused) = req.paused {
        am.paused = Set(paused);
    }
    am.updated_at = Set(now);
    let saved = if is_new {
        am.peer_id = Set(p.user_id);
        am.insert(&txn).await?
    } else {
        am.update(&txn).await?
    };
    audit::append(
        &txn,
        now,
        AuditEvent::new("peer_profile.updated_by_peer")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(p.user_id)
            .detail(json!({ "paused": req.paused, "capacity": req.capacity })),
    )
    .await?;
    txn.commit().await?;
    with_count(state, saved).await
}

// ---------------------------------------------------------------------------------------
// Needs

fn needs_dto(m: needs::Model) -> NeedsRecord {
    NeedsRecord {
        user_id: m.user_id,
        needs: Needs {
            languages: from_json(&m.languages),
            preferred_gender: m.preferred_gender.as_deref().and_then(enum_parse::<Gender>),
            preferred_age_bands: from_json::<String>(&m.preferred_age_bands)
                .iter()
                .filter_map(|s| enum_parse::<AgeBand>(s))
                .collect(),
            region: m.region,
            topics: from_json(&m.topics),
            accepts_remote: m.accepts_remote,
        },
        updated_by: m.updated_by,
        updated_at: m.updated_at,
    }
}

pub async fn get_needs(state: &AppState, clinic: ClinicId, user: UserId) -> ApiResult<NeedsRecord> {
    member_with_role(&state.db, clinic, user, Role::ServiceUser).await?;
    needs::Entity::find_by_id(user)
        .one(&state.db)
        .await?
        .map(needs_dto)
        .ok_or_else(|| ApiError::not_found().detail("no needs recorded for this user yet"))
}

pub async fn put_needs(
    state: &AppState,
    p: &Principal,
    clinic: ClinicId,
    user: UserId,
    req: &Needs,
) -> ApiResult<NeedsRecord> {
    let langs = languages("languages", &req.languages)?;
    let region = optional_text("region", &req.region, 100)?;
    if req.preferred_age_bands.len() > 5 {
        return Err(ApiError::invalid("preferred_age_bands", "at most 5"));
    }
    let bands: Vec<String> = req.preferred_age_bands.iter().map(enum_str).collect();
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    member_with_role(&txn, clinic, user, Role::ServiceUser).await?;
    let topics = topic_keys(&txn, clinic.0, "topics", &req.topics).await?;
    let row = needs::ActiveModel {
        user_id: Set(user.0),
        clinic_id: Set(clinic.0),
        languages: Set(to_json(&langs)),
        preferred_gender: Set(req.preferred_gender.as_ref().map(enum_str)),
        preferred_age_bands: Set(to_json(&bands)),
        region: Set(region),
        topics: Set(to_json(&topics)),
        accepts_remote: Set(req.accepts_remote),
        updated_by: Set(p.user_id),
        updated_at: Set(now),
    };
    let saved = if needs::Entity::find_by_id(user).one(&txn).await?.is_some() {
        row.update(&txn).await?
    } else {
        row.insert(&txn).await?
    };
    audit::append(
        &txn,
        now,
        AuditEvent::new("needs.updated")
            .clinic(Some(clinic.0))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(user),
    )
    .await?;
    txn.commit().await?;
    Ok(needs_dto(saved))
}

// ---------------------------------------------------------------------------------------
// Suggestions

/// Ranked eligible peers for a service user of `clinic`: approved, not paused, below
/// capacity, active accounts; not in an open introduction with the user, not declined by the
/// user, no block between them; from the user's clinic, or remote-opted peers of the same
/// network when the user accepts remote support.
pub async fn suggestions(
    state: &AppState,
    clinic: ClinicId,
    user: UserId,
    limit: usize,
) -> ApiResult<Vec<Suggestion>> {
    member_with_role(&state.db, clinic, user, Role::ServiceUser).await?;
    let needs = needs::Entity::find_by_id(user)
        .one(&state.db)
        .await?
        .map(|m| needs_dto(m).needs)
        .unwrap_or(Needs {
            accepts_remote: true,
            ..Needs::default()
        });
    let home = clinic::Entity::find_by_id(clinic)
        .one(&state.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let network_clinics: Vec<Uuid> = match (&home.network, needs.accepts_remote) {
        (Some(net), true) => clinic::Entity::find()
            .filter(clinic::Column::Network.eq(net.clone()))
            .filter(clinic::Column::Id.ne(clinic))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect(),
        _ => Vec::new(),
    };
    let mut clinics = network_clinics.clone();
    clinics.push(clinic.0);
    let profiles = peer_profile::Entity::find()
        .filter(peer_profile::Column::ClinicId.is_in(clinics))
        .filter(peer_profile::Column::Approved.eq(true))
        .filter(peer_profile::Column::Paused.eq(false))
        .all(&state.db)
        .await?;
    let ids: Vec<Uuid> = profiles.iter().map(|p| p.peer_id).collect();
    let active_peers: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.clone()))
        .filter(user::Column::Status.eq(ACTIVE))
        .filter(user::Column::Role.eq(Role::Peer.as_str()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let now = state.now();
    let counts = open_counts(&state.db, &ids, now).await?;
    // Pairs excluded by history: open introductions, the user's declines, blocks.
    let history = introduction::Entity::find()
        .filter(introduction::Column::ServiceUserId.eq(user))
        .all(&state.db)
        .await?;
    let excluded: HashSet<Uuid> = history
        .iter()
        .filter(|i| {
            let open = OPEN_STATES.contains(&i.state.as_str())
                && !(i.state == "proposed" && i.expires_at <= now);
            open || i.service_user_response == "declined" || i.blocked_by.is_some()
        })
        .map(|i| i.peer_id)
        .collect();
    let candidates = profiles
        .into_iter()
        .filter(|p| active_peers.contains(&p.peer_id) && !excluded.contains(&p.peer_id))
        .filter(|p| {
            let remote = p.clinic_id != clinic;
            !remote || (p.remote_support && network_clinics.contains(&p.clinic_id))
        })
        .filter_map(|p| {
            let n = counts.get(&p.peer_id).copied().unwrap_or(0);
            if i64::from(n) >= i64::from(p.capacity) {
                return None;
            }
            let remote = p.clinic_id != clinic;
            Some(Candidate {
                profile: profile_dto(p, n),
                remote,
            })
        })
        .collect();
    let mut ranked = suggest::rank(&needs, candidates);
    ranked.truncate(limit);
    Ok(ranked)
}

/// Whether `peer` may be proposed to a service user of `clinic` right now (the same rules as
/// suggestions, except history: the HP may propose a peer the user met before).
pub async fn proposable(
    db: &impl ConnectionTrait,
    clinic: ClinicId,
    peer: UserId,
    now: DateTime<Utc>,
) -> ApiResult<Result<peer_profile::Model, &'static str>> {
    let Some(profile) = stored_profile(db, peer.0).await? else {
        return Ok(Err("this peer has no approved profile"));
    };
    let peer_user = user::Entity::find_by_id(peer).one(db).await?;
    if peer_user
        .as_ref()
        .is_none_or(|u| u.status != ACTIVE || u.role != Role::Peer.as_str())
    {
        return Ok(Err("no active peer with this id"));
    }
    if !profile.approved {
        return Ok(Err("this peer is not approved"));
    }
    if profile.paused {
        return Ok(Err("this peer has paused new introductions"));
    }
    if profile.clinic_id != clinic {
        let home = clinic::Entity::find_by_id(clinic).one(db).await?;
        let theirs = clinic::Entity::find_by_id(profile.clinic_id)
            .one(db)
            .await?;
        let same_network = matches!(
            (home.and_then(|c| c.network), theirs.and_then(|c| c.network)),
            (Some(a), Some(b)) if a == b
        );
        if !same_network || !profile.remote_support {
            return Ok(Err("no active peer with this id"));
        }
    }
    let n = open_counts(db, &[peer.0], now)
        .await?
        .get(&peer.0)
        .copied()
        .unwrap_or(0);
    if i64::from(n) >= i64::from(profile.capacity) {
        return Ok(Err("this peer is at capacity"));
    }
    Ok(Ok(profile))
}
