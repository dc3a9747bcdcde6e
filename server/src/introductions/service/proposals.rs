//! The HP side: proposals, listing, pause/resume/close, re-matching.

use super::{
    DEFAULT_EXPIRY_HOURS, alias, blocked_by, clinic_hps, closed_by, conflict, declined_by, detail,
    effective, in_clinic, locked, notify, other, party_str,
};
use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::enum_str;
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, UserId};
use crate::introductions::entities::introduction;
use crate::introductions::profiles;
use crate::state::AppState;
use crate::supervision::member_with_role;
use chrono::{DateTime, Duration, Utc};
use peerbridge_openapi::introductions::{
    IntroductionCreate, IntroductionDetail, IntroductionOutcome, IntroductionState, Party, Rematch,
};
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

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
    member_with_role(
        txn,
        ClinicId(clinic),
        UserId(req.service_user_id),
        Role::ServiceUser,
    )
    .await?;
    let profile =
        match profiles::proposable(txn, ClinicId(clinic), UserId(req.peer_id), now).await? {
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

pub async fn get(state: &AppState, clinic: ClinicId, id: Uuid) -> ApiResult<IntroductionDetail> {
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

pub(super) async fn act(
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
        // Paused, blocked, closed: messages stop at once on every replica.
        state.bus.auth_changed(after.id);
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
    clinic: ClinicId,
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
    clinic: ClinicId,
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
        clinic.0,
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
            .clinic(Some(clinic.0))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(old.id)
            .detail(json!({ "new_introduction": new.id })),
    )
    .await?;
    txn.commit().await?;
    state.bus.auth_changed(old.id);
    notify(
        state,
        &[old.service_user_id, old.peer_id, new.peer_id],
        old.id,
    )
    .await;
    notify(state, &[new.service_user_id, new.peer_id], new.id).await;
    Ok((detail(&state.db, new, now).await?, true))
}
