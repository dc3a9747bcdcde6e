//! Introductions: proposal by an HP, acceptance by both parties, pause, close, block,
//! re-match, boundary reports, and signed consents. Parties see only aliases; the
//! conversation policy (delivery) asks this module who may be in an introduction's group.

use chrono::{DateTime, Duration, Utc};
use peerbridge_openapi::introductions::{
    BoundaryReport, BoundaryReportCreate, ConsentAction, ConsentRecord, ConsentScope,
    ConsentSummary, ConsentUpload, IntroductionCreate, IntroductionDetail, IntroductionOutcome,
    IntroductionState, Party, PartyIntroduction, Rematch, Response,
};
use peerbridge_openapi::signed::consent_statement;
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::entities::{consent, introduction, report};
use super::profiles;
use crate::accounts::entities::{device, user};
use crate::accounts::service::ACTIVE;
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, b64_decode, enum_parse, enum_str};
use crate::delivery::entities::{conversation, leaf_binding};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::supervision::member_with_role;

pub const INTRODUCTION: &str = "introduction";
const DEFAULT_EXPIRY_HOURS: u32 = 168;
/// How far a consent's `issued_at` may be from the server's clock.
const CONSENT_SKEW_SECONDS: i64 = 600;

// ---------------------------------------------------------------------------------------
// Stored values

fn party_str(p: Party) -> &'static str {
    match p {
        Party::ServiceUser => "service_user",
        Party::Peer => "peer",
    }
}

fn parse_party(s: &str) -> Option<Party> {
    match s {
        "service_user" => Some(Party::ServiceUser),
        "peer" => Some(Party::Peer),
        _ => None,
    }
}

fn other(p: Party) -> Party {
    match p {
        Party::ServiceUser => Party::Peer,
        Party::Peer => Party::ServiceUser,
    }
}

fn response(s: &str) -> Response {
    match s {
        "accepted" => Response::Accepted,
        "declined" => Response::Declined,
        _ => Response::Pending,
    }
}

fn scope_str(s: ConsentScope) -> &'static str {
    match s {
        ConsentScope::Reveal => "reveal",
        ConsentScope::InviteHp => "invite_hp",
    }
}

fn action_str(a: ConsentAction) -> &'static str {
    match a {
        ConsentAction::Grant => "grant",
        ConsentAction::Withdraw => "withdraw",
    }
}

fn closed_by(p: Party) -> IntroductionOutcome {
    match p {
        Party::ServiceUser => IntroductionOutcome::ClosedByServiceUser,
        Party::Peer => IntroductionOutcome::ClosedByPeer,
    }
}

fn declined_by(p: Party) -> IntroductionOutcome {
    match p {
        Party::ServiceUser => IntroductionOutcome::DeclinedByServiceUser,
        Party::Peer => IntroductionOutcome::DeclinedByPeer,
    }
}

fn blocked_by(p: Party) -> IntroductionOutcome {
    match p {
        Party::ServiceUser => IntroductionOutcome::BlockedByServiceUser,
        Party::Peer => IntroductionOutcome::BlockedByPeer,
    }
}

/// The introduction as it stands at `now`: an unanswered proposal past its expiry is
/// ended (expired) even before anything writes that down.
fn effective(mut i: introduction::Model, now: DateTime<Utc>) -> introduction::Model {
    if i.state == "proposed" && i.expires_at <= now {
        i.state = "ended".into();
        i.outcome = Some(enum_str(&IntroductionOutcome::Expired));
        i.ended_at = Some(i.expires_at);
    }
    i
}

fn state_of(s: &str) -> IntroductionState {
    match s {
        "proposed" => IntroductionState::Proposed,
        "active" => IntroductionState::Active,
        "paused" => IntroductionState::Paused,
        _ => IntroductionState::Ended,
    }
}

pub fn party_of(i: &introduction::Model, user: Uuid) -> Option<Party> {
    if i.service_user_id == user {
        Some(Party::ServiceUser)
    } else if i.peer_id == user {
        Some(Party::Peer)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Aliases

const ADJECTIVES: &[&str] = &[
    "Amber", "Birch", "Bright", "Calm", "Cedar", "Clear", "Coral", "Dawn", "Fern", "Frost",
    "Gentle", "Golden", "Harbour", "Hazel", "Juniper", "Kind", "Linden", "Maple", "Meadow",
    "Misty", "Moss", "North", "Ocean", "Pine", "Quiet", "River", "Rowan", "Sage", "Silver",
    "Spruce", "Steady", "Still", "Summer", "Swift", "Tidal", "Warm", "Willow", "Winter",
];
const NOUNS: &[&str] = &[
    "Auk", "Badger", "Beacon", "Brook", "Cairn", "Cloud", "Crane", "Eider", "Fjord", "Fox", "Gull",
    "Hare", "Heron", "Isle", "Kestrel", "Lark", "Lynx", "Marten", "Moor", "Otter", "Owl", "Puffin",
    "Raven", "Reef", "Robin", "Seal", "Skerry", "Sparrow", "Stone", "Swan", "Tern", "Valley",
    "Wagtail", "Wave", "Wren",
];

/// A per-introduction handle like "Quiet Heron 42": random, never derived from the user.
fn alias() -> String {
    let r = crate::crypto::random_bytes::<6>();
    let pick = |hi: u8, lo: u8, n: usize| usize::from(u16::from_be_bytes([hi, lo])) % n;
    format!(
        "{} {} {}",
        ADJECTIVES[pick(r[0], r[1], ADJECTIVES.len())],
        NOUNS[pick(r[2], r[3], NOUNS.len())],
        10 + pick(r[4], r[5], 90)
    )
}

// ---------------------------------------------------------------------------------------
// Views

async fn consents_of(db: &impl ConnectionTrait, intro: Uuid) -> ApiResult<Vec<consent::Model>> {
    Ok(consent::Entity::find()
        .filter(consent::Column::IntroductionId.eq(intro))
        .order_by_asc(consent::Column::RecordedAt)
        .order_by_asc(consent::Column::IssuedAt)
        .all(db)
        .await?)
}

/// Whether `party`'s latest statement for `scope` is a grant.
fn granted(consents: &[consent::Model], party: Party, scope: ConsentScope) -> bool {
    consents
        .iter()
        .filter(|c| c.party == party_str(party) && c.scope == scope_str(scope))
        .max_by_key(|c| (c.issued_at, c.recorded_at))
        .is_some_and(|c| c.action == action_str(ConsentAction::Grant))
}

fn summary(consents: &[consent::Model]) -> ConsentSummary {
    ConsentSummary {
        service_user_reveal: granted(consents, Party::ServiceUser, ConsentScope::Reveal),
        peer_reveal: granted(consents, Party::Peer, ConsentScope::Reveal),
        service_user_invite_hp: granted(consents, Party::ServiceUser, ConsentScope::InviteHp),
        peer_invite_hp: granted(consents, Party::Peer, ConsentScope::InviteHp),
    }
}

/// Both parties' latest `invite_hp` statements are grants: the introducing HP may join.
pub async fn hp_admitted(db: &impl ConnectionTrait, i: &introduction::Model) -> ApiResult<bool> {
    let c = consents_of(db, i.id).await?;
    Ok(granted(&c, Party::ServiceUser, ConsentScope::InviteHp)
        && granted(&c, Party::Peer, ConsentScope::InviteHp))
}

async fn detail(
    db: &impl ConnectionTrait,
    i: introduction::Model,
    now: DateTime<Utc>,
) -> ApiResult<IntroductionDetail> {
    let i = effective(i, now);
    let consents = consents_of(db, i.id).await?;
    let open_reports = report::Entity::find()
        .filter(report::Column::IntroductionId.eq(i.id))
        .filter(report::Column::HandledAt.is_null())
        .all(db)
        .await?
        .len() as u32;
    Ok(IntroductionDetail {
        id: i.id,
        clinic_id: i.clinic_id,
        introduced_by: i.introduced_by,
        service_user_id: i.service_user_id,
        peer_id: i.peer_id,
        peer_clinic_id: i.peer_clinic_id,
        state: state_of(&i.state),
        service_user_response: response(&i.service_user_response),
        peer_response: response(&i.peer_response),
        outcome: i
            .outcome
            .as_deref()
            .and_then(enum_parse::<IntroductionOutcome>),
        paused_by: i.paused_by.as_deref().and_then(parse_party),
        service_user_alias: i.service_user_alias,
        peer_alias: i.peer_alias,
        blurb_for_service_user: i.blurb_for_service_user,
        blurb_for_peer: i.blurb_for_peer,
        conversation_id: i.conversation_id,
        consents: summary(&consents),
        open_reports,
        created_at: i.created_at,
        expires_at: i.expires_at,
        ended_at: i.ended_at,
        rematched_to: i.rematched_to,
    })
}

/// What a party sees. A decline by the counterpart is shown exactly like an expiry: the
/// proposal stays `proposed` until it would have expired, then it is `ended`.
async fn party_view(
    db: &impl ConnectionTrait,
    i: introduction::Model,
    me: Party,
    now: DateTime<Utc>,
) -> ApiResult<PartyIntroduction> {
    let i = effective(i, now);
    let them = other(me);
    let (my_alias, their_alias, blurb, mine, theirs) = match me {
        Party::ServiceUser => (
            &i.service_user_alias,
            &i.peer_alias,
            &i.blurb_for_service_user,
            &i.service_user_response,
            &i.peer_response,
        ),
        Party::Peer => (
            &i.peer_alias,
            &i.service_user_alias,
            &i.blurb_for_peer,
            &i.peer_response,
            &i.service_user_response,
        ),
    };
    let outcome = i
        .outcome
        .as_deref()
        .and_then(enum_parse::<IntroductionOutcome>);
    let hidden_decline = outcome == Some(declined_by(them)) && now < i.expires_at;
    let state = if hidden_decline {
        IntroductionState::Proposed
    } else {
        state_of(&i.state)
    };
    let hp_device_keys = if i.conversation_id.is_some() && hp_admitted(db, &i).await? {
        device::Entity::find()
            .filter(device::Column::UserId.eq(i.introduced_by))
            .filter(device::Column::RevokedAt.is_null())
            .order_by_asc(device::Column::CreatedAt)
            .all(db)
            .await?
            .into_iter()
            .map(|d| b64(&d.public_key))
            .collect()
    } else {
        Vec::new()
    };
    Ok(PartyIntroduction {
        id: i.id,
        role: me,
        my_alias: my_alias.clone(),
        counterpart_alias: their_alias.clone(),
        blurb: blurb.clone(),
        state,
        my_response: response(mine),
        counterpart_accepted: response(theirs) == Response::Accepted,
        paused_by_me: (state == IntroductionState::Paused)
            .then(|| i.paused_by.as_deref() == Some(party_str(me))),
        conversation_id: i.conversation_id,
        blocked_by_me: i.blocked_by.as_deref() == Some(party_str(me)),
        expires_at: i.expires_at,
        created_at: i.created_at,
        hp_device_keys,
    })
}

// ---------------------------------------------------------------------------------------
// Loading with authorization

/// An introduction of `clinic` (the introducing clinic), else 404.
async fn in_clinic(
    db: &impl ConnectionTrait,
    clinic: Uuid,
    id: Uuid,
) -> ApiResult<introduction::Model> {
    introduction::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|i| i.clinic_id == clinic)
        .ok_or_else(ApiError::not_found)
}

/// An introduction the caller is a party of, else 404 (nobody learns it exists).
async fn as_party(
    db: &impl ConnectionTrait,
    p: &Principal,
    id: Uuid,
) -> ApiResult<(introduction::Model, Party)> {
    let i = introduction::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let party = party_of(&i, p.user_id).ok_or_else(ApiError::not_found)?;
    Ok((i, party))
}

async fn locked(txn: &DatabaseTransaction, id: Uuid) -> ApiResult<introduction::Model> {
    use sea_orm::QuerySelect;
    introduction::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(ApiError::not_found)
}

// ---------------------------------------------------------------------------------------
// Notifications: content-free wake-ups, like messages

async fn notify(state: &AppState, users: &[Uuid], intro: Uuid) {
    crate::notify::users(
        state,
        users,
        &peerbridge_openapi::delivery::Notice::Introduction {
            introduction_id: intro,
        },
    )
    .await;
}

/// The clinic's HPs (informed of blocks and boundary reports).
async fn clinic_hps(db: &impl ConnectionTrait, clinic: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(user::Entity::find()
        .filter(user::Column::ClinicId.eq(clinic))
        .filter(user::Column::Role.eq(Role::Hp.as_str()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect())
}

// ---------------------------------------------------------------------------------------
// HP side

fn blurb(field: &str, s: &str) -> ApiResult<String> {
    let t = validate::text(field, s, 500)?;
    let mut run = 0;
    for c in t.chars() {
        run = if c.is_ascii_digit() {
            run + 1
        } else if c == ' ' || c == '-' {
            run
        } else {
            0
        };
        if run >= 6 {
            return Err(ApiError::invalid(
                field,
                "looks like it contains a phone number; blurbs must not identify anyone",
            ));
        }
    }
    if t.contains('@') {
        return Err(ApiError::invalid(
            field,
            "looks like it contains an address; blurbs must not identify anyone",
        ));
    }
    Ok(t)
}

fn expiry(hours: Option<u32>) -> ApiResult<Duration> {
    let h = hours.unwrap_or(DEFAULT_EXPIRY_HOURS);
    if !(1..=720).contains(&h) {
        return Err(ApiError::invalid("expires_in_hours", "1 to 720"));
    }
    Ok(Duration::hours(i64::from(h)))
}

struct Proposal<'a> {
    client_id: Uuid,
    service_user_id: Uuid,
    peer_id: Uuid,
    blurb_for_service_user: &'a str,
    blurb_for_peer: &'a str,
    expires_in_hours: Option<u32>,
}

async fn insert_proposal(
    txn: &DatabaseTransaction,
    p: &Principal,
    clinic: Uuid,
    req: &Proposal<'_>,
    now: DateTime<Utc>,
) -> ApiResult<introduction::Model> {
    let for_su = blurb("blurb_for_service_user", req.blurb_for_service_user)?;
    let for_peer = blurb("blurb_for_peer", req.blurb_for_peer)?;
    let ttl = expiry(req.expires_in_hours)?;
    member_with_role(txn, clinic, req.service_user_id, Role::ServiceUser).await?;
    let profile = match profiles::proposable(txn, clinic, req.peer_id, now).await? {
        Ok(p) => p,
        Err(why) if why == "no active peer with this id" => {
            return Err(ApiError::not_found().detail(why));
        }
        Err(why) => return Err(ApiError::new(ErrorCode::Conflict).detail(why)),
    };
    let open = introduction::Entity::find()
        .filter(introduction::Column::ServiceUserId.eq(req.service_user_id))
        .filter(introduction::Column::PeerId.eq(req.peer_id))
        .filter(introduction::Column::State.is_in(profiles::OPEN_STATES))
        .all(txn)
        .await?
        .into_iter()
        .any(|i| effective(i, now).state != "ended");
    if open {
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("this service user and peer already have an open introduction"));
    }
    let (su_alias, mut peer_alias) = (alias(), alias());
    while peer_alias == su_alias {
        peer_alias = alias();
    }
    let row = introduction::ActiveModel {
        id: Set(Uuid::new_v4()),
        clinic_id: Set(clinic),
        client_id: Set(req.client_id),
        introduced_by: Set(p.user_id),
        service_user_id: Set(req.service_user_id),
        peer_id: Set(req.peer_id),
        peer_clinic_id: Set(profile.clinic_id),
        service_user_alias: Set(su_alias),
        peer_alias: Set(peer_alias),
        blurb_for_service_user: Set(for_su),
        blurb_for_peer: Set(for_peer),
        service_user_response: Set("pending".into()),
        peer_response: Set("pending".into()),
        state: Set("proposed".into()),
        outcome: Set(None),
        paused_by: Set(None),
        blocked_by: Set(None),
        conversation_id: Set(None),
        rematched_to: Set(None),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        ended_at: Set(None),
    }
    .insert(txn)
    .await?;
    audit::append(
        txn,
        now,
        AuditEvent::new("introduction.proposed")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(row.id)
            .detail(json!({ "service_user_id": row.service_user_id, "peer_id": row.peer_id })),
    )
    .await?;
    Ok(row)
}

/// Proposes an introduction; the same `client_id` again returns the first one
/// (`Ok((detail, false))`).
pub async fn propose(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    req: &IntroductionCreate,
) -> ApiResult<(IntroductionDetail, bool)> {
    let now = state.now();
    if let Some(existing) = by_client_id(&state.db, req.client_id).await? {
        if existing.clinic_id != clinic
            || existing.service_user_id != req.service_user_id
            || existing.peer_id != req.peer_id
        {
            return Err(ApiError::new(ErrorCode::Conflict)
                .detail("this client_id was used for another introduction"));
        }
        return Ok((detail(&state.db, existing, now).await?, false));
    }
    let txn = crate::storage::begin(&state.db).await?;
    let row = insert_proposal(
        &txn,
        p,
        clinic,
        &Proposal {
            client_id: req.client_id,
            service_user_id: req.service_user_id,
            peer_id: req.peer_id,
            blurb_for_service_user: &req.blurb_for_service_user,
            blurb_for_peer: &req.blurb_for_peer,
            expires_in_hours: req.expires_in_hours,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    notify(state, &[row.service_user_id, row.peer_id], row.id).await;
    Ok((detail(&state.db, row, now).await?, true))
}

async fn by_client_id(
    db: &impl ConnectionTrait,
    client_id: Uuid,
) -> ApiResult<Option<introduction::Model>> {
    Ok(introduction::Entity::find()
        .filter(introduction::Column::ClientId.eq(client_id))
        .one(db)
        .await?)
}

pub struct ListFilter {
    pub state: Option<IntroductionState>,
    pub attention: bool,
}

pub async fn list(
    state: &AppState,
    clinic: Uuid,
    filter: &ListFilter,
) -> ApiResult<Vec<IntroductionDetail>> {
    let now = state.now();
    let rows = introduction::Entity::find()
        .filter(introduction::Column::ClinicId.eq(clinic))
        .order_by_desc(introduction::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let d = detail(&state.db, r, now).await?;
        if filter.state.is_some_and(|s| s != d.state) {
            continue;
        }
        let needs_attention = d.open_reports > 0
            || matches!(
                d.outcome,
                Some(
                    IntroductionOutcome::BlockedByPeer | IntroductionOutcome::BlockedByServiceUser
                )
            );
        if filter.attention && !needs_attention {
            continue;
        }
        out.push(d);
    }
    Ok(out)
}

pub async fn get(state: &AppState, clinic: Uuid, id: Uuid) -> ApiResult<IntroductionDetail> {
    let i = in_clinic(&state.db, clinic, id).await?;
    detail(&state.db, i, state.now()).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Decline,
    Pause,
    Resume,
    Close,
    Block,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Accept => "accepted",
            Action::Decline => "declined",
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Close => "closed",
            Action::Block => "blocked",
        }
    }
}

fn conflict(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict).detail(detail.to_owned())
}

/// Applies `action` by `who` (a party, or `None` for the clinic's HP) to a locked row.
fn apply(
    mut i: introduction::Model,
    action: Action,
    who: Option<Party>,
    now: DateTime<Utc>,
) -> ApiResult<introduction::Model> {
    let was_expired = i.state == "proposed" && i.expires_at <= now;
    let end = |i: &mut introduction::Model, outcome: IntroductionOutcome| {
        i.state = "ended".into();
        i.outcome = Some(enum_str(&outcome));
        i.ended_at = Some(now);
        i.paused_by = None;
    };
    match (action, who) {
        (Action::Accept | Action::Decline, Some(me)) => {
            let accept = action == Action::Accept;
            let hidden_decline = i.state == "ended"
                && i.outcome.as_deref() == Some(enum_str(&declined_by(other(me))).as_str())
                && now < i.expires_at;
            let mine = match me {
                Party::ServiceUser => &mut i.service_user_response,
                Party::Peer => &mut i.peer_response,
            };
            let want = if accept { "accepted" } else { "declined" };
            if mine == want {
                return Ok(i); // repeated: no change
            }
            if was_expired {
                return Err(conflict("this introduction has expired"));
            }
            if hidden_decline {
                // The counterpart declined; to this party it must look like waiting.
                if *mine == "pending" {
                    *mine = want.into();
                }
                return Ok(i);
            }
            if i.state != "proposed" || *mine != "pending" {
                return Err(conflict(
                    "this introduction is no longer waiting for an answer",
                ));
            }
            *mine = want.into();
            if !accept {
                end(&mut i, declined_by(me));
            } else if i.service_user_response == "accepted" && i.peer_response == "accepted" {
                i.state = "active".into();
            }
        }
        (Action::Accept | Action::Decline, None) => {
            return Err(ApiError::forbidden("only the parties accept or decline"));
        }
        (Action::Pause, who) => {
            if i.state != "active" {
                return Err(conflict("only an active introduction can be paused"));
            }
            i.state = "paused".into();
            i.paused_by = Some(who.map(party_str).unwrap_or("hp").into());
        }
        (Action::Resume, who) => {
            if i.state != "paused" {
                return Err(conflict("this introduction is not paused"));
            }
            if let Some(me) = who
                && i.paused_by.as_deref() != Some(party_str(me))
            {
                return Err(ApiError::forbidden(
                    "only whoever paused it (or the clinic) can resume it",
                ));
            }
            i.state = "active".into();
            i.paused_by = None;
        }
        (Action::Close, who) => {
            if i.state == "ended" || was_expired {
                return Err(conflict("this introduction has already ended"));
            }
            end(
                &mut i,
                who.map(closed_by)
                    .unwrap_or(IntroductionOutcome::ClosedByHp),
            );
        }
        (Action::Block, Some(me)) => {
            if i.blocked_by.is_some() {
                return Ok(i);
            }
            i.blocked_by = Some(party_str(me).into());
            if i.state != "ended" {
                end(&mut i, blocked_by(me));
            } else if was_expired {
                i.state = "ended".into();
                i.outcome = Some(enum_str(&IntroductionOutcome::Expired));
                i.ended_at = Some(i.expires_at);
            }
        }
        (Action::Block, None) => {
            return Err(ApiError::forbidden("the clinic closes; parties block"));
        }
    }
    Ok(i)
}

async fn act(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    action: Action,
    who: Option<Party>,
) -> ApiResult<introduction::Model> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let before = locked(&txn, id).await?;
    let after = apply(before.clone(), action, who, now)?;
    if after != before {
        let am = introduction::ActiveModel {
            id: Set(after.id),
            service_user_response: Set(after.service_user_response.clone()),
            peer_response: Set(after.peer_response.clone()),
            state: Set(after.state.clone()),
            outcome: Set(after.outcome.clone()),
            paused_by: Set(after.paused_by.clone()),
            blocked_by: Set(after.blocked_by.clone()),
            ended_at: Set(after.ended_at),
            ..Default::default()
        };
        am.update(&txn).await?;
        audit::append(
            &txn,
            now,
            AuditEvent::new(match action {
                Action::Accept => "introduction.accepted",
                Action::Decline => "introduction.declined",
                Action::Pause => "introduction.paused",
                Action::Resume => "introduction.resumed",
                Action::Close => "introduction.closed",
                Action::Block => "introduction.blocked",
            })
            .clinic(Some(after.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(after.id)
            .detail(json!({ "by": who.map(party_str).unwrap_or("hp"), "state": after.state })),
        )
        .await?;
        txn.commit().await?;
        // A decline is not announced to the counterpart (it must look like an expiry).
        let mut tell = vec![];
        if action != Action::Decline {
            tell.extend([after.service_user_id, after.peer_id]);
        } else if let Some(me) = who {
            tell.push(match me {
                Party::ServiceUser => after.service_user_id,
                Party::Peer => after.peer_id,
            });
        }
        if matches!(action, Action::Block) || who.is_none() {
            tell.extend(clinic_hps(&state.db, after.clinic_id).await?);
        }
        notify(state, &tell, after.id).await;
        tracing::info!(introduction = %after.id, action = action.name(), "introduction changed");
    }
    Ok(after)
}

pub async fn hp_act(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    id: Uuid,
    action: Action,
) -> ApiResult<IntroductionDetail> {
    in_clinic(&state.db, clinic, id).await?;
    let i = act(state, p, id, action, None).await?;
    detail(&state.db, i, state.now()).await
}

pub async fn rematch(
    state: &AppState,
    p: &Principal,
    clinic: Uuid,
    id: Uuid,
    req: &Rematch,
) -> ApiResult<(IntroductionDetail, bool)> {
    let now = state.now();
    if let Some(existing) = by_client_id(&state.db, req.client_id).await? {
        if existing.clinic_id != clinic || existing.peer_id != req.peer_id {
            return Err(ApiError::new(ErrorCode::Conflict)
                .detail("this client_id was used for another introduction"));
        }
        return Ok((detail(&state.db, existing, now).await?, false));
    }
    in_clinic(&state.db, clinic, id).await?;
    let txn = crate::storage::begin(&state.db).await?;
    let old = effective(locked(&txn, id).await?, now);
    if old.rematched_to.is_some() {
        return Err(conflict("this introduction was already re-matched"));
    }
    let new = insert_proposal(
        &txn,
        p,
        clinic,
        &Proposal {
            client_id: req.client_id,
            service_user_id: old.service_user_id,
            peer_id: req.peer_id,
            blurb_for_service_user: &req.blurb_for_service_user,
            blurb_for_peer: &req.blurb_for_peer,
            expires_in_hours: req.expires_in_hours,
        },
        now,
    )
    .await?;
    let still_open = old.state != "ended";
    let am = introduction::ActiveModel {
        id: Set(old.id),
        rematched_to: Set(Some(new.id)),
        state: Set("ended".into()),
        outcome: Set(if still_open {
            Some(enum_str(&IntroductionOutcome::Rematched))
        } else {
            old.outcome.clone()
        }),
        ended_at: Set(old.ended_at.or(Some(now))),
        paused_by: Set(None),
        ..Default::default()
    };
    am.update(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("introduction.rematched")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(old.id)
            .detail(json!({ "new_introduction": new.id })),
    )
    .await?;
    txn.commit().await?;
    notify(
        state,
        &[old.service_user_id, old.peer_id, new.peer_id],
        old.id,
    )
    .await;
    notify(state, &[new.service_user_id, new.peer_id], new.id).await;
    Ok((detail(&state.db, new, now).await?, true))
}

// ---------------------------------------------------------------------------------------
// Party side

pub async fn mine(state: &AppState, p: &Principal) -> ApiResult<Vec<PartyIntroduction>> {
    let now = state.now();
    let rows = introduction::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(introduction::Column::ServiceUserId.eq(p.user_id))
                .add(introduction::Column::PeerId.eq(p.user_id)),
        )
        .order_by_desc(introduction::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(me) = party_of(&r, p.user_id) {
            out.push(party_view(&state.db, r, me, now).await?);
        }
    }
    Ok(out)
}

pub async fn get_mine(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<PartyIntroduction> {
    let (i, me) = as_party(&state.db, p, id).await?;
    party_view(&state.db, i, me, state.now()).await
}

pub async fn party_act(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    action: Action,
) -> ApiResult<PartyIntroduction> {
    let (_, me) = as_party(&state.db, p, id).await?;
    let i = act(state, p, id, action, Some(me)).await?;
    party_view(&state.db, i, me, state.now()).await
}

// ---------------------------------------------------------------------------------------
// Boundary reports

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
        .filter(|n| !n.trim().is_empty())
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
    clinic: Uuid,
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
            .clinic(Some(clinic))
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
    clinic: Uuid,
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
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(i.id)
            .detail(json!({ "report_id": report_id })),
    )
    .await?;
    txn.commit().await?;
    report_dto(state, r)
}

// ---------------------------------------------------------------------------------------
// Consents

fn consent_dto(c: consent::Model, me: Party) -> ConsentRecord {
    ConsentRecord {
        id: c.id,
        mine: c.party == party_str(me),
        scope: if c.scope == "invite_hp" {
            ConsentScope::InviteHp
        } else {
            ConsentScope::Reveal
        },
        action: if c.action == "withdraw" {
            ConsentAction::Withdraw
        } else {
            ConsentAction::Grant
        },
        issued_at: c.issued_at,
        signature_key: b64(&c.signature_key),
        signature: b64(&c.signature),
        recorded_at: c.recorded_at,
    }
}

pub async fn consents(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Vec<ConsentRecord>> {
    let (i, me) = as_party(&state.db, p, id).await?;
    Ok(consents_of(&state.db, i.id)
        .await?
        .into_iter()
        .map(|c| consent_dto(c, me))
        .collect())
}

/// Records a consent statement signed by the caller's leaf in the introduction's group.
/// The server checks what it can (the key is the caller device's current leaf, the
/// signature verifies over the rebuilt statement, the time is near); the counterpart's
/// client checks the signature again against its own view of the group.
pub async fn record_consent(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    req: &ConsentUpload,
) -> ApiResult<ConsentRecord> {
    let (i, me) = as_party(&state.db, p, id).await?;
    let now = state.now();
    let i = effective(i, now);
    if !matches!(i.state.as_str(), "active" | "paused") {
        return Err(conflict("consents are given in an open introduction"));
    }
    let conv_id = i
        .conversation_id
        .ok_or_else(|| conflict("the conversation has not been opened yet"))?;
    let conv = conversation::Entity::find_by_id(conv_id)
        .one(&state.db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if (req.issued_at - now.timestamp()).abs() > CONSENT_SKEW_SECONDS {
        return Err(ApiError::invalid(
            "issued_at",
            "must be within 10 minutes of the server's clock",
        ));
    }
    let key = b64_decode(req.signature_key.trim())
        .filter(|k| k.len() == 32)
        .ok_or_else(|| ApiError::invalid("signature_key", "a 32-byte key, base64url"))?;
    let sig = b64_decode(req.signature.trim())
        .filter(|s| s.len() == 64)
        .ok_or_else(|| ApiError::invalid("signature", "a 64-byte signature, base64url"))?;
    let bound = leaf_binding::Entity::find_by_id(key.clone())
        .one(&state.db)
        .await?
        .is_some_and(|b| b.device_id == p.device_id);
    let in_tree = match conv.public_state.as_deref() {
        Some(s) => crate::delivery::mls::leaves_of_state(s, &conv.group_id)
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e.to_string())))?
            .iter()
            .any(|l| l.signature_key == key),
        None => false,
    };
    if !bound || !in_tree {
        return Err(ApiError::new(ErrorCode::PolicyViolation)
            .detail("sign with your own device's current leaf key in this conversation"));
    }
    let statement = consent_statement(i.id, &conv.group_id, req.scope, req.action, req.issued_at);
    let verifies = crate::crypto::ed25519_verifies(&key, &statement, &sig);
    if !verifies {
        return Err(ApiError::invalid(
            "signature",
            "does not verify over the consent statement",
        ));
    }
    let txn = crate::storage::begin(&state.db).await?;
    locked(&txn, i.id).await?;
    let existing = consents_of(&txn, i.id).await?;
    if req.action == ConsentAction::Withdraw
        && granted(&existing, Party::ServiceUser, req.scope)
        && granted(&existing, Party::Peer, req.scope)
    {
        return Err(conflict(
            "both parties have consented and the reveal has happened; it cannot be withdrawn",
        ));
    }
    let row = consent::ActiveModel {
        id: Set(Uuid::new_v4()),
        introduction_id: Set(i.id),
        party: Set(party_str(me).into()),
        device_id: Set(p.device_id),
        scope: Set(scope_str(req.scope).into()),
        action: Set(action_str(req.action).into()),
        issued_at: Set(req.issued_at),
        signature_key: Set(key),
        signature: Set(sig),
        recorded_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new(match req.action {
            ConsentAction::Grant => "consent.granted",
            ConsentAction::Withdraw => "consent.withdrawn",
        })
        .clinic(Some(i.clinic_id))
        .actor(Some(p.user_id), Some(p.device_id))
        .subject(i.id)
        .detail(json!({ "party": party_str(me), "scope": scope_str(req.scope) })),
    )
    .await?;
    txn.commit().await?;
    let mut tell = vec![i.service_user_id, i.peer_id];
    if req.scope == ConsentScope::InviteHp {
        tell.push(i.introduced_by);
    }
    notify(state, &tell, i.id).await;
    Ok(consent_dto(row, me))
}

// ---------------------------------------------------------------------------------------
// For the delivery service

/// The introduction behind an introduction conversation.
pub async fn of_conversation(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
) -> ApiResult<Option<introduction::Model>> {
    if conv.kind != INTRODUCTION {
        return Ok(None);
    }
    Ok(introduction::Entity::find_by_id(conv.subject_id)
        .one(db)
        .await?)
}

/// Users an introduction's group may hold: the two parties, and the introducing HP once
/// both granted `invite_hp`.
pub async fn members_allowed(
    db: &impl ConnectionTrait,
    i: &introduction::Model,
) -> ApiResult<Vec<Uuid>> {
    let mut ids = vec![i.service_user_id, i.peer_id];
    if hp_admitted(db, i).await? {
        ids.push(i.introduced_by);
    }
    Ok(ids)
}

/// Whether messages may flow now: `Ok` while active; paused → 409, ended → 403.
pub fn gate_messages(i: &introduction::Model, now: DateTime<Utc>) -> ApiResult<()> {
    let i = effective(i.clone(), now);
    match i.state.as_str() {
        "active" => Ok(()),
        "paused" => Err(conflict(
            "this introduction is paused; messages resume when it is resumed",
        )),
        _ => Err(ApiError::new(ErrorCode::PolicyViolation)
            .detail("this introduction has ended; no further messages are delivered")),
    }
}

/// Opens (or returns) the conversation of an active introduction. Returns whether it was
/// created now.
pub async fn open_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<(conversation::Model, bool)> {
    let (i, _) = as_party(&state.db, p, id).await?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let i = effective(locked(&txn, i.id).await?, now);
    if let Some(c) = i.conversation_id {
        let conv = conversation::Entity::find_by_id(c)
            .one(&txn)
            .await?
            .ok_or_else(ApiError::not_found)?;
        return Ok((conv, false));
    }
    if i.state != "active" {
        return Err(conflict(
            "the conversation opens when both parties have accepted",
        ));
    }
    let conv = conversation::ActiveModel {
        id: Set(Uuid::new_v4()),
        clinic_id: Set(i.clinic_id),
        kind: Set(INTRODUCTION.into()),
        subject_id: Set(i.id),
        group_id: Set(crate::crypto::random_bytes::<32>().to_vec()),
        epoch: Set(0),
        last_seq: Set(0),
        public_state: Set(None),
        group_info: Set(None),
        created_by: Set(p.user_id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    introduction::ActiveModel {
        id: Set(i.id),
        conversation_id: Set(Some(conv.id)),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("conversation.created")
            .clinic(Some(i.clinic_id))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(conv.id)
            .detail(json!({ "kind": INTRODUCTION, "introduction_id": i.id })),
    )
    .await?;
    txn.commit().await?;
    notify(state, &[i.service_user_id, i.peer_id], i.id).await;
    Ok((conv, true))
}

/// Conversations of introductions the user takes part in (as a party, or as the admitted
/// introducing HP).
pub async fn conversations_of(db: &impl ConnectionTrait, user: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows = introduction::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(introduction::Column::ServiceUserId.eq(user))
                .add(introduction::Column::PeerId.eq(user))
                .add(introduction::Column::IntroducedBy.eq(user)),
        )
        .filter(introduction::Column::ConversationId.is_not_null())
        .all(db)
        .await?;
    let mut out = Vec::new();
    for i in rows {
        if (i.introduced_by != user || hp_admitted(db, &i).await?)
            && let Some(c) = i.conversation_id
        {
            out.push(c);
        }
    }
    Ok(out)
}
