//! Brute-force protection for every authentication path: failures are counted per account
//! and per client address in fixed windows stored in the database, so the limit holds across
//! replicas and does not depend on Redis (it fails closed: if the count cannot be read, the
//! attempt is refused). Keys are blind-indexed: no login name or address is stored.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, EntityTrait, QuerySelect, Set};

use super::entities::auth_failure;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One counter and its limit.
#[derive(Debug, Clone)]
pub struct LimitKey {
    key: String,
    limit: u32,
}

/// The counter for an account (login name, device id, …) on an authentication path.
pub fn per_account(state: &AppState, path: &str, account: &str) -> LimitKey {
    LimitKey {
        key: format!(
            "{path}:acct:{}",
            state.keys.blind_index("ratelimit", account)
        ),
        limit: state.config.auth_max_failures_per_account,
    }
}

/// The counter for a client address on an authentication path.
pub fn per_address(state: &AppState, path: &str, addr: &str) -> LimitKey {
    LimitKey {
        key: format!("{path}:addr:{}", state.keys.blind_index("ratelimit", addr)),
        limit: state.config.auth_max_failures_per_address,
    }
}

/// Refuses with 429 and `Retry-After` when any counter has reached its limit in the
/// current window.
pub async fn ensure_allowed(state: &AppState, keys: &[LimitKey]) -> ApiResult<()> {
    let now = state.now();
    let window = state.config.auth_failure_window;
    for k in keys {
        let row = auth_failure::Entity::find_by_id(k.key.clone())
            .one(&state.db)
            .await
            .map_err(|e| ApiError::internal(e).detail("rate limiter unavailable"))?;
        if let Some(row) = row {
            let ends = row.window_start + window;
            if ends > now && row.failures >= k.limit as i32 {
                state.metrics.rate_limited.inc();
                return Err(ApiError::rate_limited(
                    (ends - now).num_seconds().max(1) as u64
                ));
            }
        }
    }
    Ok(())
}

/// A counter of every call (not only failures), e.g. key-package claims per device.
pub fn per_device_calls(path: &str, device: uuid::Uuid, limit: u32) -> LimitKey {
    LimitKey {
        key: format!("{path}:dev:{device}"),
        limit,
    }
}

/// Counts a call and refuses it with 429 once the window's limit is reached.
pub async fn consume(state: &AppState, key: &LimitKey) -> ApiResult<()> {
    ensure_allowed(state, std::slice::from_ref(key)).await?;
    record_failure(state, std::slice::from_ref(key)).await
}

/// Counts one failure on every counter.
pub async fn record_failure(state: &AppState, keys: &[LimitKey]) -> ApiResult<()> {
    let now = state.now();
    for k in keys {
        bump(state, &k.key, now).await?;
    }
    Ok(())
}

async fn bump(state: &AppState, key: &str, now: DateTime<Utc>) -> ApiResult<()> {
    let window = state.config.auth_failure_window;
    let txn = crate::storage::begin(&state.db).await?;
    auth_failure::Entity::insert(auth_failure::ActiveModel {
        key: Set(key.to_owned()),
        window_start: Set(now),
        failures: Set(0),
    })
    .on_conflict(
        OnConflict::column(auth_failure::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let row = auth_failure::Entity::find_by_id(key.to_owned())
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("failure counter vanished")))?;
    let mut am: auth_failure::ActiveModel = row.clone().into();
    if row.window_start + window <= now {
        am.window_start = Set(now);
        am.failures = Set(1);
    } else {
        am.failures = Set(row.failures.saturating_add(1));
    }
    am.update(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Every authentication path that counts failures (the `path` of `per_account` and
/// `per_address`).
const PATHS: [&str; 6] = [
    "setup",
    "password",
    "challenge",
    "device",
    "refresh",
    "redeem",
];

/// The operator's unlock: deletes the failure counters of the given accounts (staff login
/// names, normalised as at login, or device ids) and address on every path, and records the
/// unlock in the audit chain (which counters, never the login or address itself). Returns
/// how many counters were cleared.
pub async fn unlock(
    state: &AppState,
    accounts: &[String],
    address: Option<&str>,
) -> ApiResult<u64> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let mut keys = Vec::new();
    for path in PATHS {
        for account in accounts {
            keys.push(per_account(state, path, account).key);
        }
        if let Some(addr) = address {
            keys.push(per_address(state, path, addr).key);
        }
    }
    let txn = crate::storage::begin(&state.db).await?;
    let cleared = auth_failure::Entity::delete_many()
        .filter(auth_failure::Column::Key.is_in(keys))
        .exec(&txn)
        .await?
        .rows_affected;
    crate::audit::append(
        &txn,
        state.now(),
        crate::audit::AuditEvent::new("auth.unlocked").detail(serde_json::json!({
            "accounts": accounts.len(),
            "address": address.is_some(),
            "cleared": cleared,
        })),
    )
    .await?;
    txn.commit().await?;
    Ok(cleared)
}
