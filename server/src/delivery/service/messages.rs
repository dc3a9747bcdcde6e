//! Application messages: the gap-free per-conversation log, fetch with purge ranges, acknowledgements, retention.

use super::ack_commit::Ack;
use super::conversations::{member_cached, visible_cached};
use super::group_commit::{Append, Appended};
use super::{MAX_MESSAGE_BYTES, decode, invalid_mls};
use crate::auth::extract::Principal;
use crate::crypto::b64;
use crate::delivery::entities::log_entry;
use crate::delivery::mls::{self};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ConversationId, DeviceId};
use crate::introductions::service as introductions;
use crate::state::AppState;
use peerbridge_openapi::ErrorCode;
use peerbridge_openapi::delivery::{
    EntryKind, FrankingStamp, LogEntry, LogPage, MessageAccepted, MessageSend, Notice, PurgedRange,
};
use sea_orm::prelude::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Ciphertexts up to this size travel in their `message` notice as well.
pub const INLINE_MAX_BYTES: usize = 4 * 1024;

pub async fn send_message(
    state: &AppState,
    p: &Principal,
    conversation_id: Uuid,
    req: &MessageSend,
) -> ApiResult<(MessageAccepted, bool)> {
    // Before any work: a send the writer has no room for is refused at once (503).
    let place = state.messages.admit()?;
    let seen = visible_cached(state, p, conversation_id).await?;
    let (conv, intro) = (&seen.0, &seen.1);
    // One look-up admits the sender and names whom the message wakes. A device joining
    // meanwhile learns of it from its welcome's sync; one leaving gets a content-free notice
    // it can no longer follow.
    let (_, members) = member_cached(state, ConversationId(conv.id), DeviceId(p.device_id)).await?;
    let bytes = decode("ciphertext", &req.ciphertext, MAX_MESSAGE_BYTES)?;
    let (group, epoch, commitment) = mls::private_message_framing(&bytes).map_err(invalid_mls)?;
    if group != conv.group_id {
        return Err(ApiError::new(ErrorCode::InvalidMls).detail("the message is for another group"));
    }
    let hash = hex::encode(Sha256::digest(&bytes));
    // To the microsecond, as PostgreSQL keeps it: the notice's copy of the entry and the
    // log's are the same on both backends.
    let now = chrono::SubsecRound::trunc_subsecs(state.now(), 6);
    if let Some(i) = intro
        && let Err(refused) = introductions::gate_messages(i, now)
    {
        // A retry of a send stored before the gate closed is answered as it was.
        return match existing_send(&state.read, conv.id, req.client_id, &hash).await? {
            Some(done) => Ok((done, false)),
            None => Err(refused),
        };
    }
    // A retry (a `client_id` the log holds) is found by the append itself, which leaves it
    // alone; it is then answered as stored, or refused if its ciphertext differs.
    // Franking: the sender as the conversation knows them (never a user id to a party).
    let sender = match intro {
        Some(i) => match introductions::party_of(i, p.user_id) {
            Some(peerbridge_openapi::introductions::Party::ServiceUser) => {
                i.service_user_alias.clone()
            }
            Some(peerbridge_openapi::introductions::Party::Peer) => i.peer_alias.clone(),
            None => "clinician".to_owned(),
        },
        None => format!("user:{}", p.user_id),
    };
    let frank = commitment.map(|c| (c, sender));
    // In the log's own encoding, for the notice.
    let inline = (bytes.len() <= INLINE_MAX_BYTES).then(|| b64(&bytes));
    let appended = state
        .messages
        .append(
            &place,
            Append {
                conversation_id: conv.id,
                group_id: conv.group_id.clone(),
                client_id: req.client_id,
                sender_device_id: p.device_id,
                epoch: epoch as i64,
                payload: bytes,
                payload_hash: hash.clone(),
                now,
                expires_at: now + state.config.message_retention,
                frank: frank.clone(),
            },
        )
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let (seq, stamp) = match appended {
        Appended::Stored(seq, stamp) => (seq, stamp),
        // A concurrent retry of the same send won the race: answer as it did.
        Appended::Duplicate => {
            return existing_send(&state.read, conv.id, req.client_id, &hash)
                .await?
                .map(|a| (a, false))
                .ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!("a duplicate send without its entry"))
                });
        }
        Appended::NoConversation => return Err(ApiError::not_found()),
    };
    let members: Vec<Uuid> = members
        .iter()
        .map(|m| m.device_id)
        .filter(|d| *d != p.device_id)
        .collect();
    // A small message travels in its notice, so a connected device caught up to `seq - 1`
    // has it without reading the log (the entry exactly as `fetch` would give it).
    let entry = inline.map(|payload| {
        Box::new(LogEntry {
            seq: seq as u64,
            kind: EntryKind::Application,
            client_id: Some(req.client_id),
            epoch,
            payload,
            created_at: now,
            franking: match (&frank, stamp) {
                (Some((c, sender)), Some(sig)) => Some(FrankingStamp {
                    commitment: b64(c),
                    sender: sender.clone(),
                    seq: seq.max(0) as u64,
                    received_at: now.timestamp(),
                    kid: state.keys.jwt_signing_kid.clone(),
                    signature: b64(&sig),
                }),
                _ => None,
            },
        })
    });
    crate::notify::devices(
        state,
        &members,
        &Notice::Message {
            conversation_id: conv.id,
            seq: seq.max(0) as u64,
            entry,
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
    let conv = &visible_cached(state, p, conversation_id).await?.0;
    let (me, _) = member_cached(state, ConversationId(conv.id), DeviceId(p.device_id)).await?;
    let limit = limit.clamp(1, 500);
    let from = (after as i64).max(me.joined_seq);
    let rows = log_entry::Entity::find()
        .filter(log_entry::Column::ConversationId.eq(conv.id))
        .filter(log_entry::Column::Seq.gt(from))
        .order_by_asc(log_entry::Column::Seq)
        .limit(limit + 1)
        .all(&state.read)
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
    let place = state.acks.admit()?;
    let conv = &visible_cached(state, p, conversation_id).await?.0;
    member_cached(state, ConversationId(conv.id), DeviceId(p.device_id)).await?;
    // Applied with every other waiting ack in one commit (`ack_commit`), which keeps it
    // within the log and answers with the device's cursor after that commit.
    let cursor = state
        .acks
        .ack(
            &place,
            Ack {
                conversation_id: conv.id,
                device_id: p.device_id,
                upto: seq.min(i64::MAX as u64) as i64,
            },
        )
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(cursor.max(0) as u64)
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
