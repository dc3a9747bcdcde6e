//! Group commit for acknowledgements: every device acknowledges what it read, so acks come
//! as often as sends times receivers; one writer applies all waiting acks in one
//! transaction (one fsync on SQLite) and answers each only after that commit.
//!
//! Per batch: each device's cursor moves forward (never back, never past the conversation's
//! last entry), in (conversation, device) order so two replicas' batches cannot deadlock;
//! then, per conversation touched, the ciphertext every active member device has
//! acknowledged is deleted. Each ack is answered with its device's cursor after the commit.
//! A failed commit answers every ack in it with the error and moves nothing: the clients ack
//! again.

use std::collections::{BTreeSet, HashMap};

use prometheus_client::metrics::counter::Counter;
use sea_orm::prelude::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::delivery::entities::{conversation, log_entry, member_device};

/// Acks in one transaction at most.
const MAX_BATCH: usize = 256;
/// Acks waiting for the writer at most; past this an ack waits for room.
const QUEUE: usize = 4096;

/// One device's acknowledgement of its conversation's log up to `upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ack {
    pub conversation_id: Uuid,
    pub device_id: Uuid,
    pub upto: i64,
}

struct Pending {
    ack: Ack,
    reply: oneshot::Sender<Result<i64, String>>,
}

/// The handle acks go through; the writer runs until every handle is dropped.
pub struct AckCommit {
    queue: mpsc::Sender<Pending>,
}

impl AckCommit {
    /// Starts the writer on the current Tokio runtime. `deleted` counts the ciphertexts
    /// deleted because every member device acknowledged them.
    pub fn start(db: DatabaseConnection, deleted: Counter) -> AckCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db, deleted, rx));
        AckCommit { queue }
    }

    /// Applies `ack` in the next batch and waits until that batch is committed; the device's
    /// cursor after it.
    pub async fn ack(&self, ack: Ack) -> Result<i64, String> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { ack, reply })
            .await
            .map_err(|_| "the acknowledgement writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the acknowledgement writer has stopped".to_owned())?
    }
}

async fn writer(db: DatabaseConnection, deleted: Counter, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pending = std::mem::take(&mut batch);
        let acks: BTreeSet<Ack> = pending.iter().map(|p| p.ack).collect();
        let result = commit(&db, &acks).await;
        if let Ok((n, _)) = &result {
            deleted.inc_by(*n);
        }
        for p in pending {
            let a = p.ack;
            let _ = p.reply.send(match &result {
                Ok((_, cursors)) => Ok(cursors
                    .get(&(a.conversation_id, a.device_id))
                    .copied()
                    .unwrap_or(0)),
                Err(e) => Err(e.to_string()),
            });
        }
    }
}

/// Each device's cursor after a batch, by (conversation, device).
type Cursors = HashMap<(Uuid, Uuid), i64>;

/// One transaction for the whole batch; how many ciphertexts it deleted, and the cursors of
/// the active member devices of every conversation it touched.
async fn commit(db: &DatabaseConnection, acks: &BTreeSet<Ack>) -> Result<(u64, Cursors), DbErr> {
    let txn = crate::storage::begin(db).await?;
    let conversations: BTreeSet<Uuid> = acks.iter().map(|a| a.conversation_id).collect();
    let mut last_seq = HashMap::new();
    for conv in &conversations {
        if let Some(c) = conversation::Entity::find_by_id(*conv).one(&txn).await? {
            last_seq.insert(*conv, c.last_seq);
        }
    }
    let mut cursors = Cursors::new();
    // In (conversation, device, upto) order: a device acknowledging twice in one batch moves
    // to the larger, and the guard keeps a cursor from moving back.
    for a in acks {
        let upto = a
            .upto
            .min(last_seq.get(&a.conversation_id).copied().unwrap_or(0));
        member_device::Entity::update_many()
            .col_expr(member_device::Column::AckedSeq, Expr::value(upto))
            .filter(member_device::Column::ConversationId.eq(a.conversation_id))
            .filter(member_device::Column::DeviceId.eq(a.device_id))
            .filter(member_device::Column::AckedSeq.lt(upto))
            .exec(&txn)
            .await?;
        // Replaced below by the stored cursor when the device is still an active member.
        cursors.insert((a.conversation_id, a.device_id), upto);
    }
    let mut deleted = 0;
    for conv in conversations {
        let members = member_device::Entity::find()
            .filter(member_device::Column::ConversationId.eq(conv))
            .filter(member_device::Column::RemovedAt.is_null())
            .all(&txn)
            .await?;
        cursors.extend(members.iter().map(|m| ((conv, m.device_id), m.acked_seq)));
        let floor = members.iter().map(|m| m.acked_seq).min().unwrap_or(0);
        deleted += log_entry::Entity::update_many()
            .col_expr(
                log_entry::Column::Payload,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(log_entry::Column::ConversationId.eq(conv))
            .filter(log_entry::Column::Seq.lte(floor))
            .filter(log_entry::Column::Payload.is_not_null())
            .exec(&txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    Ok((deleted, cursors))
}
