//! Clinics: the tenants every record belongs to. Operators create them; members read their own.

pub mod entity;
pub mod routes;

use peerbridge_openapi::clinics::{Clinic, ClinicCreate};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use crate::accounts::validate;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn dto(c: entity::Model) -> Clinic {
    Clinic {
        id: c.id,
        name: c.name,
        network: c.network,
        created_at: c.created_at,
    }
}

/// Creates a clinic. `actor` is `None` from the admin CLI.
pub async fn create(
    state: &AppState,
    actor: Option<&Principal>,
    req: &ClinicCreate,
) -> ApiResult<Clinic> {
    let name = validate::text("name", &req.name, 200)?;
    let network = req
        .network
        .as_deref()
        .map(|n| validate::text("network", n, 200))
        .transpose()?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let c = entity::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name),
        network: Set(network),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("clinic.created")
            .clinic(Some(c.id))
            .actor(actor.map(|a| a.user_id), actor.map(|a| a.device_id))
            .subject(c.id)
            .detail(json!({ "via": if actor.is_some() { "api" } else { "cli" } })),
    )
    .await?;
    txn.commit().await?;
    Ok(dto(c))
}

pub async fn list(state: &AppState) -> ApiResult<Vec<Clinic>> {
    Ok(entity::Entity::find()
        .order_by_asc(entity::Column::CreatedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(dto)
        .collect())
}

pub async fn get(state: &AppState, id: Uuid) -> ApiResult<Clinic> {
    entity::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .map(dto)
        .ok_or_else(ApiError::not_found)
}
