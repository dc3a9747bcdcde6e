//! Supervision: HPs assigned to supervise a peer supporter (one-to-one debriefing, and the
//! members of the peer's supervision conversation). Assignments stay inside the peer's home
//! clinic.

pub mod entity;
pub mod routes;

use peerbridge_openapi::Role;
use peerbridge_openapi::supervision::SupervisorAssignment;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use crate::accounts::entities::user;
use crate::accounts::service::ACTIVE;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, UserId};
use crate::state::AppState;
use peerbridge_openapi::ErrorCode;

fn dto(a: entity::Model) -> SupervisorAssignment {
    SupervisorAssignment {
        clinic_id: a.clinic_id,
        peer_id: a.peer_id,
        hp_id: a.hp_id,
        assigned_by: a.assigned_by,
        assigned_at: a.assigned_at,
    }
}

/// An active user of `clinic` with `role`, or 404.
pub(crate) async fn member_with_role(
    db: &impl ConnectionTrait,
    clinic: ClinicId,
    id: UserId,
    role: Role,
) -> ApiResult<user::Model> {
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|u| u.clinic_id == Some(clinic.0) && u.role == role.as_str() && u.status == ACTIVE)
        .ok_or_else(|| {
            ApiError::not_found().detail(format!("no active {} with this id", role.as_str()))
        })
}

pub async fn assign(
    state: &AppState,
    actor: &Principal,
    clinic: ClinicId,
    peer: UserId,
    hp: UserId,
) -> ApiResult<SupervisorAssignment> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    member_with_role(&txn, clinic, peer, Role::Peer).await?;
    member_with_role(&txn, clinic, hp, Role::Hp).await?;
    if entity::Entity::find_by_id((peer.0, hp.0))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(
            ApiError::new(ErrorCode::Conflict).detail("this HP already supervises this peer")
        );
    }
    let a = entity::ActiveModel {
        clinic_id: Set(clinic.0),
        peer_id: Set(peer.0),
        hp_id: Set(hp.0),
        assigned_by: Set(actor.user_id),
        assigned_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("supervision.assigned")
            .clinic(Some(clinic.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(peer)
            .detail(json!({ "hp_id": hp })),
    )
    .await?;
    txn.commit().await?;
    // The HP may now see the peer's supervision conversation.
    state.bus.auth_changed(peer.0);
    Ok(dto(a))
}

pub async fn unassign(
    state: &AppState,
    actor: &Principal,
    clinic: ClinicId,
    peer: UserId,
    hp: UserId,
) -> ApiResult<()> {
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let a = entity::Entity::find_by_id((peer.0, hp.0))
        .one(&txn)
        .await?
        .filter(|a| a.clinic_id == clinic)
        .ok_or_else(ApiError::not_found)?;
    entity::Entity::delete_by_id((a.peer_id, a.hp_id))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("supervision.unassigned")
            .clinic(Some(clinic.0))
            .actor(Some(actor.user_id), Some(actor.device_id))
            .subject(peer)
            .detail(json!({ "hp_id": hp })),
    )
    .await?;
    txn.commit().await?;
    // The HP no longer sees the peer's supervision conversation: no cached answer may say so.
    state.bus.auth_changed(peer.0);
    Ok(())
}

/// A peer's supervisors (`clinic` scopes the lookup).
pub async fn supervisors_of(
    db: &impl ConnectionTrait,
    clinic: ClinicId,
    peer: UserId,
) -> ApiResult<Vec<SupervisorAssignment>> {
    Ok(entity::Entity::find()
        .filter(entity::Column::PeerId.eq(peer))
        .filter(entity::Column::ClinicId.eq(clinic))
        .order_by_asc(entity::Column::AssignedAt)
        .all(db)
        .await?
        .into_iter()
        .map(dto)
        .collect())
}

/// The caller's own assignments: as a peer (their supervisors) or as an HP (their peers).
pub async fn mine(state: &AppState, me: &Principal) -> ApiResult<Vec<SupervisorAssignment>> {
    let col = if me.role == Role::Hp {
        entity::Column::HpId
    } else {
        entity::Column::PeerId
    };
    Ok(entity::Entity::find()
        .filter(col.eq(me.user_id))
        .order_by_asc(entity::Column::AssignedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(dto)
        .collect())
}

/// Checks the peer exists in the clinic before listing (404 otherwise).
pub async fn list_for_peer(
    state: &AppState,
    clinic: ClinicId,
    peer: UserId,
) -> ApiResult<Vec<SupervisorAssignment>> {
    member_with_role(&state.db, clinic, peer, Role::Peer).await?;
    supervisors_of(&state.db, clinic, peer).await
}
