//! Welcomes for devices added by a commit.

use crate::auth::extract::Principal;
use crate::crypto::b64;
use crate::delivery::entities::welcome;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use peerbridge_openapi::delivery::Welcome;
use sea_orm::prelude::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

pub async fn welcomes(state: &AppState, p: &Principal) -> ApiResult<Vec<Welcome>> {
    Ok(welcome::Entity::find()
        .filter(welcome::Column::DeviceId.eq(p.device_id))
        .filter(welcome::Column::AckedAt.is_null())
        .order_by_asc(welcome::Column::CreatedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|w| Welcome {
            id: w.id,
            conversation_id: w.conversation_id,
            welcome: b64(&w.welcome),
            key_package_ref: w.kp_ref,
            start_seq: w.start_seq.max(0) as u64,
        })
        .collect())
}

pub async fn ack_welcome(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<()> {
    let done = welcome::Entity::update_many()
        .col_expr(welcome::Column::AckedAt, Expr::value(state.now()))
        .filter(welcome::Column::Id.eq(id))
        .filter(welcome::Column::DeviceId.eq(p.device_id))
        .exec(&state.db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::not_found());
    }
    Ok(())
}
