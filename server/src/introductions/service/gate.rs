//! What delivery asks: which conversation belongs to an introduction, who may be in its group, whether it takes messages.

use super::{INTRODUCTION, as_party, conflict, effective, hp_admitted, locked, notify};
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::delivery::entities::conversation;
use crate::error::{ApiError, ApiResult};
use crate::introductions::entities::introduction;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use peerbridge_openapi::ErrorCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

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
    state.bus.auth_changed(i.id);
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
