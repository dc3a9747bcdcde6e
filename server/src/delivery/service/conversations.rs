//! Conversations under a membership policy, group info, commits (epoch compare-and-swap, verified against the public group state), push endpoints.

use super::{SUPERVISION, caller_device, decode, invalid_mls};
use crate::accounts::entities::{device, user};
use crate::accounts::service::ACTIVE;
use crate::audit::{self, AuditEvent};
use crate::auth::extract::Principal;
use crate::crypto::{b64, random_bytes};
use crate::delivery::entities::{
    conversation, key_package, leaf_binding, log_entry, member_device, welcome,
};
use crate::delivery::mls::{self, Leaf, LeafCredential};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClinicId, ConversationId, DeviceId, UserId};
use crate::introductions::entities::introduction;
use crate::introductions::service as introductions;
use crate::state::AppState;
use crate::supervision;
use peerbridge_openapi::delivery::{
    CommitAccepted, CommitUpload, Conversation, ConversationCreate, ConversationKind, GroupInfoOut,
    Notice, PushEndpoint, VapidKey,
};
use peerbridge_openapi::{ErrorCode, Role};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Users whose devices the conversation's policy allows: for supervision, the peer and the
/// HPs currently assigned to supervise them (active accounts only).
pub async fn allowed_users(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
) -> ApiResult<Vec<Uuid>> {
    let intro = introductions::of_conversation(db, conv).await?;
    allowed_users_given(db, conv, intro.as_ref()).await
}

/// [`allowed_users`] when the conversation's introduction (if it has one) is already read.
async fn allowed_users_given(
    db: &impl ConnectionTrait,
    conv: &conversation::Model,
    intro: Option<&introduction::Model>,
) -> ApiResult<Vec<Uuid>> {
    let mut ids = vec![conv.subject_id];
    if let Some(i) = intro {
        ids = introductions::members_allowed(db, i).await?;
    } else if conv.kind == SUPERVISION {
        ids.extend(
            supervision::supervisors_of(db, ClinicId(conv.clinic_id), UserId(conv.subject_id))
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
pub(super) async fn visible_conversation(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<conversation::Model> {
    Ok(visible(state, p, id).await?.0)
}

/// [`visible_conversation`] with its introduction, if it has one (read once for both).
pub(super) async fn visible(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<(conversation::Model, Option<introduction::Model>)> {
    visible_in(&state.read, p, id).await
}

/// [`visible`], read through `db`.
async fn visible_in(
    db: &impl ConnectionTrait,
    p: &Principal,
    id: Uuid,
) -> ApiResult<(conversation::Model, Option<introduction::Model>)> {
    // Introductions may span two clinics of a network: membership decides, not the clinic.
    let conv = conversation::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|c| c.kind == introductions::INTRODUCTION || Some(c.clinic_id) == p.clinic_id)
        .ok_or_else(ApiError::not_found)?;
    let intro = introductions::of_conversation(db, &conv).await?;
    if !allowed_users_given(db, &conv, intro.as_ref())
        .await?
        .contains(&p.user_id)
    {
        return Err(ApiError::not_found());
    }
    Ok((conv, intro))
}

/// [`visible`] for the hot path (sends, reads, acknowledgements): from this replica's
/// [`AuthCache`](crate::auth::cache::AuthCache) when it was read moments ago, else read and
/// kept. The conversation's `last_seq` and `epoch` in it may be stale: never use them; its
/// `public_state` and `group_info` are not kept.
pub(super) async fn visible_cached(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<crate::auth::cache::Visible> {
    let cache = state.bus.auth_cache();
    let v = cache
        .read_through(&cache.conversations, (id, p.user_id), async {
            let (mut conv, intro) = visible(state, p, id).await?;
            // The group's public state and info (kilobytes each) are not what the hot path
            // reads.
            conv.public_state = None;
            conv.group_info = None;
            Ok::<_, ApiError>(std::sync::Arc::new((conv, intro)))
        })
        .await?;
    if v.0.kind == introductions::INTRODUCTION || Some(v.0.clinic_id) == p.clinic_id {
        return Ok(v);
    }
    // Kept for this user in another clinic: decided afresh.
    let (conv, intro) = visible(state, p, id).await?;
    Ok(std::sync::Arc::new((conv, intro)))
}

/// The conversation's active member devices, from this replica's cache when read moments
/// ago (their `acked_seq` is not kept: it moves with every acknowledgement).
pub(super) async fn members_cached(
    state: &AppState,
    conv: ConversationId,
) -> ApiResult<std::sync::Arc<Vec<crate::auth::cache::Member>>> {
    let cache = state.bus.auth_cache();
    cache
        .read_through(&cache.members, conv.0, async {
            let members: Vec<crate::auth::cache::Member> = member_device::Entity::find()
                .filter(member_device::Column::ConversationId.eq(conv.0))
                .filter(member_device::Column::RemovedAt.is_null())
                .all(&state.read)
                .await?
                .into_iter()
                .map(|m| crate::auth::cache::Member {
                    device_id: m.device_id,
                    joined_seq: m.joined_seq,
                })
                .collect();
            Ok::<_, ApiError>(std::sync::Arc::new(members))
        })
        .await
}

/// The caller's device as an active member (from [`members_cached`]), and all of them; 403
/// if it is not one.
pub(super) async fn member_cached(
    state: &AppState,
    conv: ConversationId,
    device: DeviceId,
) -> ApiResult<(
    crate::auth::cache::Member,
    std::sync::Arc<Vec<crate::auth::cache::Member>>,
)> {
    let members = members_cached(state, conv).await?;
    let me = members
        .iter()
        .find(|m| m.device_id == device.0)
        .copied()
        .ok_or_else(not_a_member)?;
    Ok((me, members))
}

/// The conversation if the caller sees it and its device is a member (404 / 403), read
/// through `db` (the escalation path reads through its own connections).
pub async fn member_conversation(
    db: &impl ConnectionTrait,
    p: &Principal,
    id: Uuid,
) -> ApiResult<conversation::Model> {
    let (conv, _) = visible_in(db, p, id).await?;
    member(db, ConversationId(conv.id), DeviceId(p.device_id)).await?;
    Ok(conv)
}

/// The caller's device as an active member of the conversation, else 403.
pub(super) async fn member(
    db: &impl ConnectionTrait,
    conv: ConversationId,
    device: DeviceId,
) -> ApiResult<member_device::Model> {
    member_device::Entity::find_by_id((conv.0, device.0))
        .one(db)
        .await?
        .filter(|m| m.removed_at.is_none())
        .ok_or_else(not_a_member)
}

fn not_a_member() -> ApiError {
    ApiError::forbidden("this device is not a member of the conversation")
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
    let mut members_changed = false;
    for (leaf, d) in &leaf_devices {
        match existing.iter().find(|m| m.device_id == d.id) {
            Some(m) if m.removed_at.is_none() && m.leaf_index == *leaf as i64 => {}
            Some(m) => {
                members_changed = true;
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
                members_changed = true;
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
        members_changed = true;
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
    if members_changed {
        // A removed device's next send or read is refused at once on every replica.
        state.bus.auth_changed(conv.id);
    }
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

/// Registers (or with `None` clears) the calling device's push endpoint, with a Web Push
/// subscription's keys when given. Nothing is stored unless all of it is valid.
pub async fn set_push_endpoint(
    state: &AppState,
    p: &Principal,
    endpoint: Option<&PushEndpoint>,
) -> ApiResult<()> {
    let mut keys: (Option<String>, Option<String>) = (None, None);
    if let Some(e) = endpoint {
        if e.url.len() > 2048 || !state.push.is_allowed(&e.url) {
            return Err(ApiError::invalid(
                "url",
                "not an allowed push gateway (the operator lists them in PEERBRIDGE_PUSH_ALLOWED_HOSTS)",
            ));
        }
        if let Some(k) = &e.keys {
            if state.push.vapid_public_key().is_none() {
                return Err(ApiError::invalid(
                    "keys",
                    "Web Push is not configured on this server (no VAPID key)",
                ));
            }
            let p256dh = crate::crypto::b64_decode(&k.p256dh)
                .filter(|b| b.len() == crate::notify::webpush::P256DH_LEN)
                .ok_or_else(|| {
                    ApiError::invalid("keys.p256dh", "expected base64url of 65 bytes")
                })?;
            let auth = crate::crypto::b64_decode(&k.auth)
                .filter(|b| b.len() == crate::notify::webpush::AUTH_LEN)
                .ok_or_else(|| ApiError::invalid("keys.auth", "expected base64url of 16 bytes"))?;
            crate::notify::webpush::SubscriptionKeys::new(&p256dh, &auth).map_err(|_| {
                ApiError::invalid(
                    "keys.p256dh",
                    "not an uncompressed P-256 public key (0x04 ‖ x ‖ y on the curve)",
                )
            })?;
            // Stored in the canonical encoding of the checked bytes.
            keys = (Some(b64(&p256dh)), Some(b64(&auth)));
        }
    }
    device::Entity::update_many()
        .col_expr(
            device::Column::PushUrl,
            Expr::value(endpoint.map(|e| e.url.clone())),
        )
        .col_expr(device::Column::PushP256dh, Expr::value(keys.0))
        .col_expr(device::Column::PushAuth, Expr::value(keys.1))
        .filter(device::Column::Id.eq(p.device_id))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The VAPID public key browsers subscribe with.
pub fn vapid_key(state: &AppState) -> ApiResult<VapidKey> {
    let public_key = state
        .push
        .vapid_public_key()
        .ok_or_else(|| ApiError::not_found().detail("Web Push is not configured on this server"))?;
    Ok(VapidKey {
        public_key: public_key.to_owned(),
    })
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

/// Marks every device with a live stream on this replica as seen now: one statement per
/// 500 devices per heartbeat for the whole replica, not a write per socket.
pub async fn streams_seen(state: &AppState) {
    let devices = state.bus.mailboxes().devices();
    let now = state.now();
    for chunk in devices.chunks(500) {
        let _ = device::Entity::update_many()
            .col_expr(device::Column::StreamSeenAt, Expr::value(Some(now)))
            .filter(device::Column::Id.is_in(chunk.to_vec()))
            .exec(&state.db)
            .await;
    }
}
