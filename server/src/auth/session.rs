//! Issuing a session: an access token and a rotating refresh token in a family, written in
//! the caller's transaction. Used by login (`auth::service`) and by enrollment and device
//! linking (`accounts::service`), so it depends on neither.

use peerbridge_openapi::Role;
use peerbridge_openapi::auth::Session;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::entities::refresh_token;
use super::tokens::new_refresh_token;
use crate::accounts::entities::{device, user};
use crate::crypto::secret_hash;
use crate::error::{ApiError, ApiResult};
use crate::ids::{DeviceId, UserId};
use crate::state::AppState;

/// Issues an access token and a new refresh token (in `family`, or a new family).
pub async fn issue_session(
    txn: &DatabaseTransaction,
    state: &AppState,
    user_id: Uuid,
    dev: &device::Model,
    family: Option<Uuid>,
) -> ApiResult<Session> {
    let now = state.now();
    let u = user::Entity::find_by_id(user_id)
        .one(txn)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let role = Role::parse(&u.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("invalid stored role")))?;
    let (access, access_exp) = state
        .tokens
        .issue_access(
            now,
            UserId(user_id),
            DeviceId(dev.id),
            dev.tokens_not_before,
        )
        .map_err(ApiError::internal)?;
    let refresh = new_refresh_token();
    let refresh_exp = now + state.tokens.refresh_ttl;
    refresh_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        family_id: Set(family.unwrap_or_else(Uuid::new_v4)),
        device_id: Set(dev.id),
        user_id: Set(user_id),
        token_hash: Set(secret_hash(&refresh)),
        created_at: Set(now),
        expires_at: Set(refresh_exp),
        rotated_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(txn)
    .await?;
    device::Entity::update_many()
        .col_expr(device::Column::LastSeenAt, Expr::value(now))
        .filter(device::Column::Id.eq(dev.id))
        .exec(txn)
        .await?;
    Ok(Session {
        user_id,
        device_id: dev.id,
        clinic_id: u.clinic_id,
        role,
        token_type: "Bearer".into(),
        access_token: access,
        access_token_expires_at: access_exp,
        refresh_token: refresh,
        refresh_token_expires_at: refresh_exp,
    })
}

/// Ends the session (refresh-token family) `tok` belongs to: every refresh token of the
/// family is revoked and the device's access tokens issued so far end with it (logout, and a
/// family revoked for reuse).
pub async fn end_session(
    txn: &DatabaseTransaction,
    tok: &refresh_token::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(tok.family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    end_access_tokens(txn, tok.device_id, now).await
}

/// Refuses, from `now` on, every access token of `device` issued up to `now` (logout, a
/// family revoked for reuse): revocation reaches access tokens through the per-request
/// device check, with millisecond issue times so a login right after still works.
/// `tokens_not_before` only ever moves forward.
async fn end_access_tokens(
    txn: &DatabaseTransaction,
    device_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    // Tokens issued in this very millisecond end too: revocation wins every tie.
    let nb = now + chrono::Duration::milliseconds(1);
    device::Entity::update_many()
        .col_expr(device::Column::TokensNotBefore, Expr::value(nb))
        .filter(device::Column::Id.eq(device_id))
        .filter(
            device::Column::TokensNotBefore
                .is_null()
                .or(device::Column::TokensNotBefore.lt(nb)),
        )
        .exec(txn)
        .await?;
    Ok(())
}
