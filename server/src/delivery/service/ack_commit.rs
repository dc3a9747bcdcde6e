//! Group commit for acknowledgements: every device acknowledges what it read, so acks come
//! as often as sends times receivers; one writer applies all waiting acks in one
//! transaction (one fsync on SQLite) and answers each only after that commit.
//!
//! Per batch: each device's cursor moves forward (never back), in (conversation, device)
//! order so two replicas' batches cannot deadlock; then, per conversation touched, the
//! ciphertext every active member device has acknowledged is deleted. A failed commit answers
//! every ack in it with the error and moves nothing: the clients ack again.

use std::collections::BTreeSet;

use prometheus_client::metrics::counter::Counter;
use sea_orm::prelude::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::delivery::entities::{log_entry, member_device};

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
    reply: oneshot::Sender<Result<(), String>>,
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

    /// Applies `ack` in the next batch and waits until that batch is committed.
    pub async fn ack(&self, ack: Ack) -> Result<(), String> {
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
        if let Ok(n) = &result {
            deleted.inc_by(*n);
        }
        for p in pending {
            let _ = p
                .reply
                .send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

/// One transaction for the whole batch; how many ciphertexts it deleted.
async fn commit(db: &DatabaseConnection, acks: &BTreeSet<Ack>) -> Result<u64, DbErr> {
    let txn = crate::storage::begin(db).await?;
    // In (conversation, device, upto) order: a device acknowledging twice in one batch moves
    // to the larger, and the guard keeps a cursor from moving back.
    for a in acks {
        member_device::Entity::update_many()
            .col_expr(member_device::Column::AckedSeq, Expr::value(a.upto))
            .filter(member_device::Column::ConversationId.eq(a.conversation_id))
            .filter(member_device::Column::DeviceId.eq(a.device_id))
            .filter(member_device::Column::AckedSeq.lt(a.upto))
            .exec(&txn)
            .await?;
    }
    let conversations: BTreeSet<Uuid> = acks.iter().map(|a| a.conversation_id).collect();
    let mut deleted = 0;
    for conv in conversations {
        let floor = member_device::Entity::find()
            .filter(member_device::Column::ConversationId.eq(conv))
            .filter(member_device::Column::RemovedAt.is_null())
            .all(&txn)
            .await?
            .iter()
            .map(|m| m.acked_seq)
            .min()
            .unwrap_or(0);
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
    Ok(deleted)
}
