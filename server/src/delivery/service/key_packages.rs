//! Key packages: upload, status, and claims under the conversation policy.

use super::conversations::{allowed_users, visible_conversation};
use super::{
    CLAIMS_PER_WINDOW, MAX_KEY_PACKAGES_PER_DEVICE, REPLENISH_BELOW, caller_device, decode,
    invalid_mls,
};
use crate::auth::extract::Principal;
use crate::crypto::b64;
use crate::delivery::entities::{key_package, leaf_binding, member_device};
use crate::delivery::mls::{self};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ConversationId, DeviceId};
use crate::introductions::service as introductions;
use crate::state::AppState;
use peerbridge_openapi::ErrorCode;
use peerbridge_openapi::delivery::{
    ClaimTarget, ClaimedKeyPackage, KeyPackageClaim, KeyPackageStatus, KeyPackageUpload,
};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use std::collections::HashSet;
use uuid::Uuid;

pub async fn upload_key_packages(
    state: &AppState,
    p: &Principal,
    req: &KeyPackageUpload,
) -> ApiResult<KeyPackageStatus> {
    let total = req.key_packages.len() + req.pseudonymous.len();
    if total == 0 || total > 100 {
        return Err(ApiError::invalid("key_packages", "1 to 100 per upload"));
    }
    let now = state.now();
    let now_unix = now.timestamp().max(0) as u64;
    let dev = caller_device(&state.db, p).await?;
    let mut parsed = Vec::with_capacity(total);
    for (i, kp) in req.key_packages.iter().enumerate() {
        let bytes = decode(&format!("key_packages[{i}]"), kp, 16 * 1024)?;
        let kp = mls::parse_key_package(&bytes, now_unix).map_err(invalid_mls)?;
        if kp.credential
            != mls::LeafCredential::Device(dev.public_key.as_slice().try_into().unwrap_or([0; 32]))
        {
            return Err(ApiError::new(ErrorCode::InvalidMls)
                .detail(format!("key_packages[{i}] is not bound to this device")));
        }
        parsed.push((bytes, kp, false));
    }
    for (i, pk) in req.pseudonymous.iter().enumerate() {
        let field = format!("pseudonymous[{i}]");
        let bytes = decode(&format!("{field}.key_package"), &pk.key_package, 16 * 1024)?;
        let binding = decode(&format!("{field}.leaf_binding"), &pk.leaf_binding, 64)?;
        let kp = mls::parse_key_package(&bytes, now_unix).map_err(invalid_mls)?;
        if kp.credential != mls::LeafCredential::Pseudonym {
            return Err(ApiError::new(ErrorCode::InvalidMls)
                .detail(format!("{field} does not carry a pseudonymous credential")));
        }
        if kp.last_resort {
            return Err(ApiError::new(ErrorCode::InvalidMls).detail(format!(
                "{field}: pseudonymous key packages are one-time (a reused one would link introductions)"
            )));
        }
        if !mls::binding_verifies(&dev.public_key, &kp.signature_key, &binding) {
            return Err(ApiError::invalid(
                &format!("{field}.leaf_binding"),
                "is not this device's signature over the leaf signature key",
            ));
        }
        parsed.push((bytes, kp, true));
    }
    let txn = crate::storage::begin(&state.db).await?;
    let remaining =
        unclaimed(&txn, dev.id, now, false).await? + unclaimed(&txn, dev.id, now, true).await?;
    let new_one_time = parsed.iter().filter(|(_, k, _)| !k.last_resort).count() as u64;
    if remaining + new_one_time > MAX_KEY_PACKAGES_PER_DEVICE {
        return Err(ApiError::new(ErrorCode::Conflict).detail(format!(
            "a device holds at most {MAX_KEY_PACKAGES_PER_DEVICE} unclaimed key packages"
        )));
    }
    for (bytes, kp, pseudonymous) in parsed {
        if pseudonymous {
            leaf_binding::Entity::insert(leaf_binding::ActiveModel {
                signature_key: Set(kp.signature_key.clone()),
                device_id: Set(dev.id),
                created_at: Set(now),
            })
            .on_conflict(
                OnConflict::column(leaf_binding::Column::SignatureKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        if kp.last_resort {
            // One last-resort package per device: the new one replaces the old.
            key_package::Entity::delete_many()
                .filter(key_package::Column::DeviceId.eq(dev.id))
                .filter(key_package::Column::LastResort.eq(true))
                .exec(&txn)
                .await?;
        }
        let not_after = chrono::DateTime::from_timestamp(kp.not_after as i64, 0).unwrap_or(now);
        key_package::Entity::insert(key_package::ActiveModel {
            id: Set(Uuid::new_v4()),
            device_id: Set(dev.id),
            kp_ref: Set(hex::encode(&kp.kp_ref)),
            key_package: Set(bytes),
            last_resort: Set(kp.last_resort),
            not_after: Set(not_after),
            uploaded_at: Set(now),
            claimed_at: Set(None),
            claimed_for: Set(None),
            pseudonymous: Set(pseudonymous),
        })
        .on_conflict(
            OnConflict::column(key_package::Column::KpRef)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    key_package_status(state, p).await
}

async fn unclaimed(
    db: &impl ConnectionTrait,
    device: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    pseudonymous: bool,
) -> ApiResult<u64> {
    Ok(key_package::Entity::find()
        .filter(key_package::Column::DeviceId.eq(device))
        .filter(key_package::Column::Pseudonymous.eq(pseudonymous))
        .filter(key_package::Column::LastResort.eq(false))
        .filter(key_package::Column::ClaimedAt.is_null())
        .filter(key_package::Column::NotAfter.gt(now))
        .count(db)
        .await?)
}

pub async fn key_package_status(state: &AppState, p: &Principal) -> ApiResult<KeyPackageStatus> {
    let now = state.now();
    let remaining = unclaimed(&state.db, p.device_id, now, false).await?;
    let pseudonymous_remaining = unclaimed(&state.db, p.device_id, now, true).await?;
    let has_last_resort = key_package::Entity::find()
        .filter(key_package::Column::DeviceId.eq(p.device_id))
        .filter(key_package::Column::LastResort.eq(true))
        .filter(key_package::Column::NotAfter.gt(now))
        .count(&state.db)
        .await?
        > 0;
    Ok(KeyPackageStatus {
        remaining: remaining.min(u32::MAX as u64) as u32,
        has_last_resort,
        pseudonymous_remaining: pseudonymous_remaining.min(u32::MAX as u64) as u32,
        replenish_below: REPLENISH_BELOW,
    })
}

/// Claims one key package of `device` for `conversation`: a one-time package if any is left
/// (atomically: `FOR UPDATE SKIP LOCKED` on PostgreSQL plus a conditional update, so two
/// claimers never get the same one), else the device's last-resort package.
async fn claim_one(
    txn: &DatabaseTransaction,
    device: DeviceId,
    conversation: ConversationId,
    now: chrono::DateTime<chrono::Utc>,
    pseudonymous: bool,
) -> ApiResult<Option<key_package::Model>> {
    for _ in 0..8 {
        let candidate = key_package::Entity::find()
            .filter(key_package::Column::DeviceId.eq(device))
            .filter(key_package::Column::Pseudonymous.eq(pseudonymous))
            .filter(key_package::Column::LastResort.eq(false))
            .filter(key_package::Column::ClaimedAt.is_null())
            .filter(key_package::Column::NotAfter.gt(now))
            .order_by_asc(key_package::Column::UploadedAt)
            .limit(1)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .one(txn)
            .await?;
        let Some(kp) = candidate else { break };
        let won = key_package::Entity::update_many()
            .col_expr(key_package::Column::ClaimedAt, Expr::value(now))
            .col_expr(key_package::Column::ClaimedFor, Expr::value(conversation))
            .filter(key_package::Column::Id.eq(kp.id))
            .filter(key_package::Column::ClaimedAt.is_null())
            .exec(txn)
            .await?;
        if won.rows_affected == 1 {
            return Ok(Some(kp));
        }
    }
    if pseudonymous {
        return Ok(None);
    }
    let last_resort = key_package::Entity::find()
        .filter(key_package::Column::DeviceId.eq(device))
        .filter(key_package::Column::LastResort.eq(true))
        .filter(key_package::Column::NotAfter.gt(now))
        .one(txn)
        .await?;
    Ok(last_resort)
}

pub async fn claim_key_packages(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    req: &KeyPackageClaim,
) -> ApiResult<Vec<ClaimedKeyPackage>> {
    let conv = visible_conversation(state, p, conversation_id).await?;
    let intro = introductions::of_conversation(&state.db, &conv).await?;
    // Introductions name members by role, never by user id.
    let (target, pseudonymous) = match (&intro, req.user_id, req.member) {
        (None, Some(user), None) => (user, false),
        (Some(i), None, Some(ClaimTarget::Counterpart)) => {
            let me = introductions::party_of(i, p.user_id).ok_or_else(|| {
                ApiError::forbidden("only the parties claim each other's key packages")
            })?;
            let them = match me {
                peerbridge_openapi::introductions::Party::ServiceUser => i.peer_id,
                peerbridge_openapi::introductions::Party::Peer => i.service_user_id,
            };
            (them, true)
        }
        (Some(i), None, Some(ClaimTarget::IntroducingHp)) => (i.introduced_by, false),
        (None, _, _) => {
            return Err(ApiError::invalid("user_id", "name the user to add"));
        }
        (Some(_), _, _) => {
            return Err(ApiError::invalid(
                "member",
                "in an introduction name the member by role: counterpart or introducing_hp",
            ));
        }
    };
    // Claims drain other people's key packages: bounded per device and window.
    crate::auth::limits::consume(
        state,
        &crate::auth::limits::per_device_calls("kp-claim", p.device_id, CLAIMS_PER_WINDOW),
    )
    .await?;
    let allowed = allowed_users(&state.db, &conv).await?;
    if !allowed.contains(&target) {
        return Err(ApiError::new(ErrorCode::PolicyViolation)
            .detail("this user may not be a member of this conversation"));
    }
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let devices = crate::notify::live_devices(&txn, &[target]).await?;
    // Devices already in the group need no key package (adding one twice is refused).
    let members: HashSet<Uuid> = member_device::Entity::find()
        .filter(member_device::Column::ConversationId.eq(conv.id))
        .filter(member_device::Column::RemovedAt.is_null())
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| m.device_id)
        .collect();
    let mut out = Vec::new();
    for d in devices
        .iter()
        .filter(|d| d.id != p.device_id && !members.contains(&d.id))
    {
        if let Some(kp) = claim_one(
            &txn,
            DeviceId(d.id),
            ConversationId(conv.id),
            now,
            pseudonymous,
        )
        .await?
        {
            out.push(ClaimedKeyPackage {
                key_package_ref: kp.kp_ref,
                key_package: b64(&kp.key_package),
                last_resort: kp.last_resort,
            });
        }
    }
    txn.commit().await?;
    if out.is_empty() {
        return Err(ApiError::new(ErrorCode::NoKeyPackage)
            .detail("no device of this user has a key package; ask them to open the app"));
    }
    Ok(out)
}
