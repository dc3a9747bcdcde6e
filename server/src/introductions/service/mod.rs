//! Introductions: proposal by an HP, acceptance by both parties, pause, close, block,
//! re-match, boundary reports, and signed consents. Parties see only aliases; the
//! conversation policy (delivery) asks this module who may be in an introduction's group.

use super::entities::{consent, introduction, report};
use crate::accounts::entities::{device, user};
use crate::accounts::service::ACTIVE;
use crate::auth::extract::Principal;
use crate::crypto::{b64, enum_parse, enum_str};
use crate::error::{ApiError, ApiResult};
use crate::ids::ClinicId;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use peerbridge_openapi::introductions::{
    ConsentAction, ConsentScope, ConsentSummary, IntroductionDetail, IntroductionOutcome,
    IntroductionState, Party, PartyIntroduction, Response,
};
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

mod answers;
mod boundary;
mod gate;
mod proposals;
mod signed_consents;
pub use answers::{get_mine, mine, party_act};
pub use boundary::{handle_report, report_boundary, reports};
pub use gate::{
    conversations_of, gate_messages, members_allowed, of_conversation, open_conversation,
};
pub use proposals::{Action, ListFilter, get, hp_act, list, propose, rematch};
pub use signed_consents::{consents, record_consent};

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
fn granted(statements: &[consent::Model], party: Party, scope: ConsentScope) -> bool {
    statements
        .iter()
        .filter(|c| c.party == party_str(party) && c.scope == scope_str(scope))
        .max_by_key(|c| (c.issued_at, c.recorded_at))
        .is_some_and(|c| c.action == action_str(ConsentAction::Grant))
}

fn summary(statements: &[consent::Model]) -> ConsentSummary {
    ConsentSummary {
        service_user_reveal: granted(statements, Party::ServiceUser, ConsentScope::Reveal),
        peer_reveal: granted(statements, Party::Peer, ConsentScope::Reveal),
        service_user_invite_hp: granted(statements, Party::ServiceUser, ConsentScope::InviteHp),
        peer_invite_hp: granted(statements, Party::Peer, ConsentScope::InviteHp),
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
    let statements = consents_of(db, i.id).await?;
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
        consents: summary(&statements),
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
    let (my_alias, their_alias, blurb, my_answer, theirs) = match me {
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
        my_response: response(my_answer),
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
    clinic: ClinicId,
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

fn conflict(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict).detail(detail.to_owned())
}
