//! Delivery-service logic: key packages, conversations under a membership policy, commits
//! (epoch compare-and-swap, verified against the public group state), the gap-free
//! per-conversation log, cursors and acknowledgements, welcomes. Every 2xx means committed.

use std::collections::{HashMap, HashSet};

use peerbridge_openapi::delivery::{
    ClaimTarget, ClaimedKeyPackage, CommitAccepted, CommitUpload, Conversation, ConversationCreate,
    ConversationKind, EntryKind, FrankingStamp, GroupInfoOut, KeyPackageClaim, KeyPackageStatus,
    KeyPackageUpload, LogEntry, LogPage, MessageAccepted, MessageSend, Notice, PurgedRange,
    Welcome,
};
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::entities::{conversation, key_package, leaf_binding, log_entry, member_device, welcome};
use super::mls::{self, Leaf, LeafCredential, MlsError};
use crate::accounts::entities::{device, user};
use crate::accounts::service::ACTIVE;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, b64_decode, random_bytes};
use crate::error::{ApiError, ApiResult};
use crate::introductions::service as introductions;
use crate::state::AppState;
use crate::supervision;

/// Largest application message accepted (decoded bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Unclaimed one-time key packages a device may hold: the pool is bounded, never truncated.
pub const MAX_KEY_PACKAGES_PER_DEVICE: u64 = 500;
/// Clients should upload more when fewer remain.
pub const REPLENISH_BELOW: u32 = 10;
const SUPERVISION: &str = "supervision";
/// Key-package claims one device may make per rate-limit window.
pub const CLAIMS_PER_WINDOW: u32 = 200;

fn invalid_mls(e: MlsError) -> ApiError {
    match e {
        MlsError::State(_) => ApiError::internal(anyhow::anyhow!(e.to_string())),
        other => ApiError::new(ErrorCode::InvalidMls).detail(other.to_string()),
    }
}

fn decode(field: &str, s: &str, max: usize) -> ApiResult<Vec<u8>> {
    let bytes =
        b64_decode(s.trim()).ok_or_else(|| ApiError::invalid(field, "expected base64url"))?;
    if bytes.is_empty() || bytes.len() > max {
        return Err(ApiError::invalid(field, format!("1 to {max} bytes")));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// Key packages

async fn caller_device(db: &impl ConnectionTrait, p: &Principal) -> ApiResult<device::Model> {
    device::Entity::find_by_id(p.device_id)
        .one(db)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

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
    device: Uuid,
    conversation: Uuid,
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
        if let Some(kp) = claim_one(&txn, d.id, conv.id, now, pseudonymous).await? {
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

// ---------------------------------------------------------------------------------------
// Conversations and policy

/// Users whose devices the conversation's policy allows: for supervision, the peer and the
/// HPs currently assigned to supervise them (active accounts only).
pub async fn allowed_users(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
) -> ApiResult<Vec<Uuid>> {
    let mut ids = vec![conv.subject_id];
    if let Some(i) = introductions::of_conversation(db, conv).await? {
        ids = introductions::members_allowed(db, &i).await?;
    } else if conv.kind == SUPERVISION {
        ids.extend(
            supervision::supervisors_of(db, conv.clinic_id, conv.subject_id)
                .await?
                .into_iter()
                .map(|a| a.hp_id),
        );
    }
    let active: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.clone()))
        .filter(user::Column::Status.eq(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    Ok(ids.into_iter().filter(|i| active.contains(i)).collect())
}

/// The conversation if the caller may see it (an allowed user of its clinic), else 404.
async fn visible_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<conversation::Model> {
    // Introductions may span two clinics of a network: membership decides, not the clinic.
    let conv = conversation::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|c| c.kind == introductions::INTRODUCTION || Some(c.clinic_id) == p.clinic_id)
        .ok_or_else(ApiError::not_found)?;
    if !allowed_users(&state.db, &conv).await?.contains(&p.user_id) {
        return Err(ApiError::not_found());
    }
    Ok(conv)
}

/// The conversation if the caller sees it and its device is a member (404 / 403).
pub async fn member_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<conversation::Model> {
    let conv = visible_conversation(state, p, id).await?;
    member(&state.db, conv.id, p.device_id).await?;
    Ok(conv)
}

/// The caller's device as an active member of the conversation, else 403.
async fn member(
    db: &impl ConnectionTrait,
    conv: Uuid,
    device: Uuid,
) -> ApiResult<member_device::Model> {
    member_device::Entity::find_by_id((conv, device))
        .one(db)
        .await?
        .filter(|m| m.removed_at.is_none())
        .ok_or_else(|| ApiError::forbidden("this device is not a member of the conversation"))
}

async fn dto(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
    device: Uuid,
) -> ApiResult<Conversation> {
    let acked = member_device::Entity::find_by_id((conv.id, device))
        .one(db)
        .await?
        .map(|m| m.acked_seq)
        .unwrap_or(0);
    let intro = conv.kind == introductions::INTRODUCTION;
    Ok(Conversation {
        id: conv.id,
        kind: if intro {
            ConversationKind::Introduction
        } else {
            ConversationKind::Supervision
        },
        // Parties of an introduction learn neither clinic nor user ids.
        clinic_id: (!intro).then_some(conv.clinic_id),
        introduction_id: intro.then_some(conv.subject_id),
        group_id: b64(&conv.group_id),
        epoch: conv.epoch.max(0) as u64,
        allowed_users: if intro {
            Vec::new()
        } else {
            allowed_users(db, conv).await?
        },
        last_seq: conv.last_seq.max(0) as u64,
        acked_seq: acked.max(0) as u64,
        created_at: conv.created_at,
    })
}

pub async fn create_conversation(
    state: &AppState,
    p: &Principal,
    req: &ConversationCreate,
) -> ApiResult<(Conversation, bool)> {
    if req.kind == ConversationKind::Introduction {
        if req.peer_id.is_some() {
            return Err(ApiError::invalid("peer_id", "not used for introductions"));
        }
        let id = req
            .introduction_id
            .ok_or_else(|| ApiError::invalid("introduction_id", "required for introductions"))?;
        let (conv, created) = introductions::open_conversation(state, p, id).await?;
        return Ok((dto(&state.db, &conv, p.device_id).await?, created));
    }
    if req.introduction_id.is_some() {
        return Err(ApiError::invalid(
            "introduction_id",
            "only for introduction conversations",
        ));
    }
    let peer_id = req
        .peer_id
        .ok_or_else(|| ApiError::invalid("peer_id", "required for supervision"))?;
    let clinic = p
        .clinic_id
        .ok_or_else(|| ApiError::forbidden("conversations belong to a clinic"))?;
    let peer = user::Entity::find_by_id(peer_id)
        .one(&state.db)
        .await?
        .filter(|u| {
            u.clinic_id == Some(clinic) && u.role == Role::Peer.as_str() && u.status == ACTIVE
        })
        .ok_or_else(|| ApiError::not_found().detail("no active peer with this id"))?;
    let now = state.now();
    let txn = crate::storage::begin(&state.db).await?;
    let conv = conversation::Model {
        id: Uuid::new_v4(),
        clinic_id: clinic,
        kind: SUPERVISION.into(),
        subject_id: peer.id,
        group_id: random_bytes::<32>().to_vec(),
        epoch: 0,
        last_seq: 0,
        public_state: None,
        group_info: None,
        created_by: p.user_id,
        created_at: now,
    };
    if !allowed_users(&txn, &conv).await?.contains(&p.user_id) {
        return Err(ApiError::forbidden(
            "only the peer and their supervisors take part in a supervision conversation",
        ));
    }
    if conversation::Entity::find()
        .filter(conversation::Column::Kind.eq(SUPERVISION))
        .filter(conversation::Column::SubjectId.eq(peer.id))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("this peer already has a supervision conversation"));
    }
    let conv = conversation::ActiveModel::from(conv).insert(&txn).await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new("conversation.created")
            .clinic(Some(clinic))
            .actor(Some(p.user_id), Some(p.device_id))
            .subject(conv.id)
            .detail(json!({ "kind": SUPERVISION, "peer_id": peer.id })),
    )
    .await?;
    txn.commit().await?;
    Ok((dto(&state.db, &conv, p.device_id).await?, true))
}

pub async fn list_conversations(state: &AppState, p: &Principal) -> ApiResult<Vec<Conversation>> {
    let Some(clinic) = p.clinic_id else {
        return Ok(Vec::new());
    };
    let intro_convs = introductions::conversations_of(&state.db, p.user_id).await?;
    let convs = conversation::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(
                    sea_orm::Condition::all()
                        .add(conversation::Column::ClinicId.eq(clinic))
                        .add(conversation::Column::Kind.eq(SUPERVISION)),
                )
                .add(conversation::Column::Id.is_in(intro_convs)),
        )
        .order_by_asc(conversation::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::new();
    for c in convs {
        if allowed_users(&state.db, &c).await?.contains(&p.user_id) {
            out.push(dto(&state.db, &c, p.device_id).await?);
        }
    }
    Ok(out)
}

pub async fn get_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<Conversation> {
    let conv = visible_conversation(state, p, id).await?;
    dto(&state.db, &conv, p.device_id).await
}

pub async fn group_info(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<GroupInfoOut> {
    let conv = visible_conversation(state, p, id).await?;
    let gi = conv
        .group_info
        .ok_or_else(|| ApiError::not_found().detail("the group has not been opened yet"))?;
    Ok(GroupInfoOut {
        epoch: conv.epoch.max(0) as u64,
        group_info: b64(&gi),
    })
}

/// Maps every leaf to an allowed live device, or refuses the whole group state.
async fn devices_for_leaves(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
    leaves: &[Leaf],
) -> ApiResult<Vec<(u32, device::Model)>> {
    let allowed = allowed_users(db, conv).await?;
    let intro = introductions::of_conversation(db, conv).await?;
    let devices = crate::notify::live_devices(db, &allowed).await?;
    let by_key: HashMap<&[u8], &device::Model> = devices
        .iter()
        .map(|d| (d.public_key.as_slice(), d))
        .collect();
    let by_id: HashMap<Uuid, &device::Model> = devices.iter().map(|d| (d.id, d)).collect();
    let pseudonymous: Vec<Vec<u8>> = leaves
        .iter()
        .filter(|l| l.credential == LeafCredential::Pseudonym)
        .map(|l| l.signature_key.clone())
        .collect();
    let bound: HashMap<Vec<u8>, Uuid> = if pseudonymous.is_empty() {
        HashMap::new()
    } else {
        leaf_binding::Entity::find()
            .filter(leaf_binding::Column::SignatureKey.is_in(pseudonymous))
            .all(db)
            .await?
            .into_iter()
            .map(|b| (b.signature_key, b.device_id))
            .collect()
    };
    let mut out: Vec<(u32, device::Model)> = Vec::new();
    for leaf in leaves {
        // In an introduction the parties are pseudonymous leaves (bound to their devices
        // only here) and only the admitted HP has a device credential; elsewhere every
        // leaf carries a device credential.
        let dev = match (&leaf.credential, &intro) {
            (LeafCredential::Device(k), None) => by_key.get(k.as_slice()).copied(),
            (LeafCredential::Device(k), Some(i)) => by_key
                .get(k.as_slice())
                .copied()
                .filter(|d| d.user_id == i.introduced_by),
            (LeafCredential::Pseudonym, Some(i)) => bound
                .get(&leaf.signature_key)
                .and_then(|id| by_id.get(id).copied())
                .filter(|d| d.user_id == i.service_user_id || d.user_id == i.peer_id),
            _ => None,
        };
        let dev = dev.ok_or_else(|| {
            ApiError::new(ErrorCode::PolicyViolation).detail(format!(
                "leaf {} is not a device the conversation's policy allows",
                leaf.index
            ))
        })?;
        // A device that lost its group state rejoins by external commit with a new leaf;
        // its stale leaf stays until a member removes it. The newest leaf (the highest
        // index) is the device's: only it may commit for the device.
        if let Some(slot) = out.iter_mut().find(|(_, d)| d.id == dev.id) {
            slot.0 = slot.0.max(leaf.index);
            continue;
        }
        out.push((leaf.index, (*dev).clone()));
    }
    Ok(out)
}

/// Accepts a commit for the current epoch (compare-and-swap under the conversation row
/// lock), verified against the public group state and the policy. The welcome is stored
/// only with an accepted commit.
pub async fn commit(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    req: &CommitUpload,
) -> ApiResult<CommitAccepted> {
    let visible = visible_conversation(state, p, conversation_id).await?;
    let commit = decode("commit", &req.commit, 256 * 1024)?;
    let group_info = decode("group_info", &req.group_info, 256 * 1024)?;
    let welcome_bytes = req
        .welcome
        .as_deref()
        .map(|w| decode("welcome", w, 256 * 1024))
        .transpose()?;
    let (commit_group, commit_epoch) = mls::commit_framing(&commit).map_err(invalid_mls)?;
    if commit_group != visible.group_id {
        return Err(ApiError::new(ErrorCode::InvalidMls).detail("the commit is for another group"));
    }
    let recipients = welcome_bytes
        .as_deref()
        .map(mls::welcome_recipients)
        .transpose()
        .map_err(invalid_mls)?
        .unwrap_or_default();
    let now = state.now();
    if let Some(i) = introductions::of_conversation(&state.db, &visible).await?
        && let Err(e) = introductions::gate_messages(&i, now)
        && e.code != ErrorCode::Conflict
    {
        return Err(e); // ended: the group is frozen (paused groups may still commit)
    }
    let leaf_binding = req
        .leaf_binding
        .as_deref()
        .map(|b| decode("leaf_binding", b, 64))
        .transpose()?;
    let txn = crate::storage::begin(&state.db).await?;
    let conv = conversation::Entity::find_by_id(conversation_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let current = conv.epoch.max(0) as u64;
    if req.epoch != current || commit_epoch != current {
        return Err(ApiError::stale_epoch(current));
    }
    let (next, sender, added_refs, seq) = match conv.public_state.as_deref() {
        None => {
            // Opening: the creator's first commit. Track the group from the GroupInfo of
            // the epoch it creates; its tree must hold only allowed devices, the caller's
            // among them.
            let next = mls::group_from_info(&group_info).map_err(invalid_mls)?;
            if next.group_id != conv.group_id {
                return Err(ApiError::new(ErrorCode::InvalidMls)
                    .detail("the group info is for another group"));
            }
            (next, None, recipients.clone(), conv.last_seq)
        }
        Some(state_bytes) => {
            let outcome =
                mls::process_commit(state_bytes, &conv.group_id, &commit).map_err(invalid_mls)?;
            let (gi_group, gi_epoch) = mls::group_info_epoch(&group_info).map_err(invalid_mls)?;
            if gi_group != conv.group_id || gi_epoch != outcome.next.epoch {
                return Err(ApiError::invalid(
                    "group_info",
                    "must describe the epoch this commit creates",
                ));
            }
            (
                outcome.next,
                outcome.sender,
                outcome.added_refs,
                conv.last_seq + 1,
            )
        }
    };
    // A pseudonymous leaf of the caller (a new group, or a rejoin) is bound to the device by
    // the device's signature, which travels beside the commit and never into the group.
    if let Some(binding) = &leaf_binding {
        let dev = caller_device(&txn, p).await?;
        let mine = next.leaves.iter().find(|l| {
            l.credential == LeafCredential::Pseudonym
                && mls::binding_verifies(&dev.public_key, &l.signature_key, binding)
        });
        let Some(leaf) = mine else {
            return Err(ApiError::invalid(
                "leaf_binding",
                "does not bind any pseudonymous leaf of the group to this device",
            ));
        };
        leaf_binding::Entity::insert(leaf_binding::ActiveModel {
            signature_key: Set(leaf.signature_key.clone()),
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
    let leaf_devices = devices_for_leaves(&txn, &conv, &next.leaves).await?;
    let caller_leaf = leaf_devices.iter().find(|(_, d)| d.id == p.device_id);
    match (conv.public_state.is_some(), sender) {
        // A member commit must come from the caller's own leaf.
        (true, Some(leaf)) => {
            let sender_dev = member_device::Entity::find()
                .filter(member_device::Column::ConversationId.eq(conv.id))
                .filter(member_device::Column::LeafIndex.eq(leaf as i64))
                .filter(member_device::Column::RemovedAt.is_null())
                .one(&txn)
                .await?;
            if sender_dev.map(|m| m.device_id) != Some(p.device_id) {
                return Err(ApiError::forbidden("commit as your own device's leaf"));
            }
        }
        // Opening or an external commit (rejoin): the caller's device must be in the tree.
        _ => {
            if caller_leaf.is_none() {
                return Err(ApiError::new(ErrorCode::PolicyViolation)
                    .detail("the committing device is not in the group"));
            }
        }
    }
    // Adds must use key packages claimed for this conversation; welcomes go only to them.
    let mut kp_device: HashMap<String, Uuid> = HashMap::new();
    for r in &added_refs {
        let kp = key_package::Entity::find()
            .filter(key_package::Column::KpRef.eq(hex::encode(r)))
            .one(&txn)
            .await?
            .filter(|k| k.claimed_for == Some(conv.id) || k.last_resort)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::PolicyViolation).detail(
                    "members are added only with key packages claimed for this conversation",
                )
            })?;
        kp_device.insert(kp.kp_ref.clone(), kp.device_id);
    }
    for r in &recipients {
        if !kp_device.contains_key(&hex::encode(r)) {
            return Err(ApiError::new(ErrorCode::InvalidMls)
                .detail("the welcome is addressed to a device the commit does not add"));
        }
    }
    // The log entry (not for the opening commit: nobody else is in the group yet).
    if conv.public_state.is_some() {
        log_entry::ActiveModel {
            conversation_id: Set(conv.id),
            seq: Set(seq),
            kind: Set("commit".into()),
            client_id: Set(None),
            sender_device_id: Set(p.device_id),
            epoch: Set(current as i64),
            payload_hash: Set(hex::encode(Sha256::digest(&commit))),
            payload: Set(Some(commit)),
            created_at: Set(now),
            expires_at: Set(now + state.config.message_retention),
            frank_commitment: Set(None),
            frank_sender: Set(None),
            frank_stamp: Set(None),
            frank_kid: Set(None),
        }
        .insert(&txn)
        .await?;
    }
    let mut am: conversation::ActiveModel = conv.clone().into();
    am.epoch = Set(next.epoch as i64);
    am.last_seq = Set(seq);
    am.public_state = Set(Some(next.state));
    am.group_info = Set(Some(group_info));
    am.update(&txn).await?;
    // Membership follows the tree: new devices start reading after this commit.
    let existing = member_device::Entity::find()
        .filter(member_device::Column::ConversationId.eq(conv.id))
        .all(&txn)
        .await?;
    let in_tree: HashSet<Uuid> = leaf_devices.iter().map(|(_, d)| d.id).collect();
    for (leaf, d) in &leaf_devices {
        match existing.iter().find(|m| m.device_id == d.id) {
            Some(m) if m.removed_at.is_none() && m.leaf_index == *leaf as i64 => {}
            Some(m) => {
                let mut mm: member_device::ActiveModel = m.clone().into();
                mm.leaf_index = Set(*leaf as i64);
                if m.removed_at.is_some() {
                    mm.removed_at = Set(None);
                    mm.joined_seq = Set(seq);
                    mm.acked_seq = Set(seq);
                }
                mm.update(&txn).await?;
            }
            None => {
                member_device::ActiveModel {
                    conversation_id: Set(conv.id),
                    device_id: Set(d.id),
                    leaf_index: Set(*leaf as i64),
                    joined_seq: Set(seq),
                    acked_seq: Set(seq),
                    removed_at: Set(None),
                }
                .insert(&txn)
                .await?;
            }
        }
    }
    for m in existing
        .iter()
        .filter(|m| m.removed_at.is_none() && !in_tree.contains(&m.device_id))
    {
        let mut mm: member_device::ActiveModel = m.clone().into();
        mm.removed_at = Set(Some(now));
        mm.update(&txn).await?;
    }
    let mut woken = Vec::new();
    if let Some(w) = &welcome_bytes {
        for r in &recipients {
            let kp_ref = hex::encode(r);
            let device_id = kp_device[&kp_ref];
            welcome::ActiveModel {
                id: Set(Uuid::new_v4()),
                conversation_id: Set(conv.id),
                device_id: Set(device_id),
                kp_ref: Set(kp_ref),
                welcome: Set(w.clone()),
                start_seq: Set(seq),
                created_at: Set(now),
                acked_at: Set(None),
            }
            .insert(&txn)
            .await?;
            woken.push(device_id);
        }
    }
    txn.commit().await?;
    let seq = seq.max(0) as u64;
    let (conversation_id, in_tree) = (conv.id, in_tree.iter().copied().collect::<Vec<_>>());
    crate::notify::devices(
        state,
        &in_tree,
        &Notice::Commit {
            conversation_id,
            seq,
        },
    );
    crate::notify::devices(
        state,
        &woken,
        &Notice::Welcome {
            conversation_id,
            seq,
        },
    );
    Ok(CommitAccepted {
        epoch: next.epoch,
        seq,
    })
}

/// Registers (or with `None` clears) the calling device's push endpoint.
pub async fn set_push_endpoint(
    state: &AppState,
    p: &Principal,
    url: Option<&str>,
) -> ApiResult<()> {
    if let Some(u) = url
        && (u.len() > 2048 || !state.push.is_allowed(u))
    {
        return Err(ApiError::invalid(
            "url",
            "not an allowed push gateway (the operator lists them in PEERBRIDGE_PUSH_ALLOWED_HOSTS)",
        ));
    }
    device::Entity::update_many()
        .col_expr(device::Column::PushUrl, Expr::value(url.map(str::to_owned)))
        .filter(device::Column::Id.eq(p.device_id))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Marks the device's stream alive (`true`) or gone (`false`).
pub async fn stream_seen(state: &AppState, device_id: Uuid, alive: bool) {
    let at = alive.then(|| state.now());
    let _ = device::Entity::update_many()
        .col_expr(device::Column::StreamSeenAt, Expr::value(at))
        .filter(device::Column::Id.eq(device_id))
        .exec(&state.db)
        .await;
}

// ---------------------------------------------------------------------------------------
// Application messages

pub async fn send_message(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    req: &MessageSend,
) -> ApiResult<(MessageAccepted, bool)> {
    let conv = visible_conversation(state, p, conversation_id).await?;
    member(&state.db, conv.id, p.device_id).await?;
    let bytes = decode("ciphertext", &req.ciphertext, MAX_MESSAGE_BYTES)?;
    let (group, epoch, commitment) = mls::private_message_framing(&bytes).map_err(invalid_mls)?;
    if group != conv.group_id {
        return Err(ApiError::new(ErrorCode::InvalidMls).detail("the message is for another group"));
    }
    let hash = hex::encode(Sha256::digest(&bytes));
    if let Some(done) = existing_send(&state.db, conv.id, req.client_id, &hash).await? {
        return Ok((done, false));
    }
    let now = state.now();
    let intro = introductions::of_conversation(&state.db, &conv).await?;
    if let Some(i) = &intro {
        introductions::gate_messages(i, now)?;
    }
    // Franking: the sender as the conversation knows them (never a user id to a party).
    let sender = match &intro {
        Some(i) => match introductions::party_of(i, p.user_id) {
            Some(peerbridge_openapi::introductions::Party::ServiceUser) => {
                i.service_user_alias.clone()
            }
            Some(peerbridge_openapi::introductions::Party::Peer) => i.peer_alias.clone(),
            None => "clinician".to_owned(),
        },
        None => format!("user:{}", p.user_id),
    };
    let txn = crate::storage::begin(&state.db).await?;
    let locked = conversation::Entity::find_by_id(conv.id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let seq = locked.last_seq + 1;
    let stamp = commitment.map(|c| {
        use ed25519_dalek::Signer;
        let m = peerbridge_openapi::signed::franking_stamp_message(
            &c,
            &conv.group_id,
            &sender,
            seq.max(0) as u64,
            now.timestamp(),
        );
        state.keys.signing.sign(&m).to_bytes().to_vec()
    });
    let insert = log_entry::ActiveModel {
        conversation_id: Set(conv.id),
        seq: Set(seq),
        kind: Set("application".into()),
        client_id: Set(Some(req.client_id)),
        sender_device_id: Set(p.device_id),
        epoch: Set(epoch as i64),
        payload: Set(Some(bytes)),
        payload_hash: Set(hash.clone()),
        created_at: Set(now),
        expires_at: Set(now + state.config.message_retention),
        frank_commitment: Set(commitment.map(|c| c.to_vec())),
        frank_sender: Set(commitment.map(|_| sender.clone())),
        frank_stamp: Set(stamp),
        frank_kid: Set(commitment.map(|_| state.keys.jwt_signing_kid.clone())),
    }
    .insert(&txn)
    .await;
    if let Err(e) = insert {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            drop(txn);
            // A concurrent retry of the same send won the race: answer as it did.
            return existing_send(&state.db, conv.id, req.client_id, &hash)
                .await?
                .map(|a| (a, false))
                .ok_or_else(|| ApiError::internal(e));
        }
        return Err(e.into());
    }
    conversation::Entity::update_many()
        .col_expr(conversation::Column::LastSeq, Expr::value(seq))
        .filter(conversation::Column::Id.eq(conv.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    let members: Vec<Uuid> = member_device::Entity::find()
        .filter(member_device::Column::ConversationId.eq(conv.id))
        .filter(member_device::Column::RemovedAt.is_null())
        .all(&state.db)
        .await?
        .into_iter()
        .map(|m| m.device_id)
        .filter(|d| *d != p.device_id)
        .collect();
    crate::notify::devices(
        state,
        &members,
        &Notice::Message {
            conversation_id: conv.id,
            seq: seq.max(0) as u64,
        },
    );
    Ok((
        MessageAccepted {
            seq: seq as u64,
            created: true,
        },
        true,
    ))
}

async fn existing_send(
    db: &impl ConnectionTrait,
    conv: Uuid,
    client_id: Uuid,
    hash: &str,
) -> ApiResult<Option<MessageAccepted>> {
    let Some(e) = log_entry::Entity::find()
        .filter(log_entry::Column::ConversationId.eq(conv))
        .filter(log_entry::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if e.payload_hash != hash {
        return Err(ApiError::new(ErrorCode::Conflict)
            .detail("this client_id was already used for a different message"));
    }
    Ok(Some(MessageAccepted {
        seq: e.seq as u64,
        created: false,
    }))
}

/// Reads the log after `after` (never before the device joined), in sequence order.
pub async fn fetch(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    after: u64,
    limit: u64,
) -> ApiResult<LogPage> {
    let conv = visible_conversation(state, p, conversation_id).await?;
    let me = member(&state.db, conv.id, p.device_id).await?;
    let limit = limit.clamp(1, 500);
    let from = (after as i64).max(me.joined_seq);
    let rows = log_entry::Entity::find()
        .filter(log_entry::Column::ConversationId.eq(conv.id))
        .filter(log_entry::Column::Seq.gt(from))
        .order_by_asc(log_entry::Column::Seq)
        .limit(limit + 1)
        .all(&state.db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    let mut rows = rows;
    rows.truncate(limit as usize);
    // The cursor covers every scanned row, purged or not: a page whose rows were all purged
    // still moves the reader on (it never stalls on an empty page with `has_more`).
    let scanned_to = rows.last().map(|r| r.seq.max(0) as u64);
    let mut purged: Option<PurgedRange> = None;
    for r in rows.iter().filter(|r| r.payload.is_none()) {
        let seq = r.seq.max(0) as u64;
        let commit = u64::from(r.kind == "commit");
        match purged.as_mut() {
            Some(p) => {
                p.to_seq = seq;
                p.count += 1;
                p.commits += commit;
            }
            None => {
                purged = Some(PurgedRange {
                    from_seq: seq,
                    to_seq: seq,
                    count: 1,
                    commits: commit,
                })
            }
        }
    }
    let items: Vec<LogEntry> = rows
        .into_iter()
        .filter_map(|r| {
            let payload = r.payload?;
            Some(LogEntry {
                seq: r.seq as u64,
                kind: if r.kind == "commit" {
                    EntryKind::Commit
                } else {
                    EntryKind::Application
                },
                client_id: r.client_id,
                epoch: r.epoch.max(0) as u64,
                payload: b64(&payload),
                created_at: r.created_at,
                franking: match (
                    &r.frank_commitment,
                    &r.frank_sender,
                    &r.frank_stamp,
                    &r.frank_kid,
                ) {
                    (Some(c), Some(s), Some(sig), Some(kid)) => Some(FrankingStamp {
                        commitment: b64(c),
                        sender: s.clone(),
                        seq: r.seq.max(0) as u64,
                        received_at: r.created_at.timestamp(),
                        kid: kid.clone(),
                        signature: b64(sig),
                    }),
                    _ => None,
                },
            })
        })
        .collect();
    let cursor = scanned_to.unwrap_or(from.max(0) as u64);
    Ok(LogPage {
        items,
        cursor,
        has_more,
        purged,
    })
}

/// Moves the device's cursor and deletes ciphertext every member device has acknowledged.
pub async fn ack(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    seq: u64,
) -> ApiResult<u64> {
    let conv = visible_conversation(state, p, conversation_id).await?;
    let me = member(&state.db, conv.id, p.device_id).await?;
    let upto = (seq.min(i64::MAX as u64) as i64).min(conv.last_seq);
    let txn = crate::storage::begin(&state.db).await?;
    if upto > me.acked_seq {
        member_device::Entity::update_many()
            .col_expr(member_device::Column::AckedSeq, Expr::value(upto))
            .filter(member_device::Column::ConversationId.eq(conv.id))
            .filter(member_device::Column::DeviceId.eq(p.device_id))
            .filter(member_device::Column::AckedSeq.lt(upto))
            .exec(&txn)
            .await?;
    }
    let floor = member_device::Entity::find()
        .filter(member_device::Column::ConversationId.eq(conv.id))
        .filter(member_device::Column::RemovedAt.is_null())
        .all(&txn)
        .await?
        .iter()
        .map(|m| m.acked_seq)
        .min()
        .unwrap_or(0);
    let purged = log_entry::Entity::update_many()
        .col_expr(
            log_entry::Column::Payload,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(log_entry::Column::ConversationId.eq(conv.id))
        .filter(log_entry::Column::Seq.lte(floor))
        .filter(log_entry::Column::Payload.is_not_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    state
        .metrics
        .ciphertext_deleted
        .get_or_create(&vec![("reason".to_owned(), "acknowledged".to_owned())])
        .inc_by(purged.rows_affected);
    Ok(upto.max(me.acked_seq).max(0) as u64)
}

/// Deletes ciphertext whose retention has ended (run periodically; idempotent).
pub async fn purge_expired(state: &AppState) -> ApiResult<u64> {
    let now = state.now();
    let purged = log_entry::Entity::update_many()
        .col_expr(
            log_entry::Column::Payload,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(log_entry::Column::ExpiresAt.lte(now))
        .filter(log_entry::Column::Payload.is_not_null())
        .exec(&state.db)
        .await?;
    state
        .metrics
        .ciphertext_deleted
        .get_or_create(&vec![("reason".to_owned(), "retention".to_owned())])
        .inc_by(purged.rows_affected);
    Ok(purged.rows_affected)
}

// ---------------------------------------------------------------------------------------
// Welcomes

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
