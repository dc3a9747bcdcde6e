//! Group commit for acknowledgements: every device acknowledges what it read, so acks come
//! as often as sends times receivers; one writer applies all waiting acks in one
//! transaction (one fsync on SQLite) and answers each only after that commit.
//!
//! Per batch, in a fixed number of statements whatever its size: the touched conversations'
//! active member rows are locked in (conversation, device) order (so two replicas' batches
//! cannot deadlock), each device's cursor moves forward (never back, never past the
//! conversation's last entry), and the ciphertext every active member device has
//! acknowledged is deleted. Each ack is answered with its device's cursor after the commit.
//! A failed commit answers every ack in it with the error and moves nothing: the clients ack
//! again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prometheus_client::metrics::counter::Counter;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{CaseStatement, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::admission::{Admission, Admitted};
use crate::delivery::entities::{conversation, log_entry, member_device};
use crate::error::ApiResult;
use crate::storage::turns::Turns;

/// Acks in one transaction at most.
const MAX_BATCH: usize = 256;

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
    room: Admission,
}

impl AckCommit {
    /// Starts the writer on the current Tokio runtime. `deleted` counts the ciphertexts
    /// deleted because every member device acknowledged them. `room`: how many acks may
    /// wait for it (see [`AckCommit::admit`]). `turns`: on SQLite, the writer connection's
    /// turns, shared with the escalation path (see `storage::turns`).
    pub fn start(
        db: DatabaseConnection,
        deleted: Counter,
        room: Admission,
        turns: Turns,
    ) -> AckCommit {
        // As long as the room: an admitted ack never waits to be queued.
        let (queue, rx) = mpsc::channel(room.limit());
        tokio::spawn(writer(db, deleted, turns, rx));
        AckCommit { queue, room }
    }

    /// A place among the acks waiting for the writer, held until the ack is answered; 503
    /// with `Retry-After` when there is none.
    pub fn admit(&self) -> ApiResult<Admitted> {
        self.room.admit()
    }

    /// Applies `ack` in the next batch and waits until that batch is committed; the device's
    /// cursor after it. The caller holds a place from [`Self::admit`].
    pub async fn ack(&self, _place: &Admitted, ack: Ack) -> Result<i64, String> {
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

async fn writer(
    db: DatabaseConnection,
    deleted: Counter,
    turns: Turns,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pending = std::mem::take(&mut batch);
        let acks: BTreeSet<Ack> = pending.iter().map(|p| p.ack).collect();
        // On SQLite, after any flag waiting for the one writer connection.
        let turn = turns.batch().await;
        let result = commit(&db, &acks).await;
        drop(turn);
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

/// One transaction for the whole batch, in a fixed number of statements whatever its size:
/// how many ciphertexts it deleted, and the cursors of the active member devices of every
/// conversation it touched.
async fn commit(db: &DatabaseConnection, acks: &BTreeSet<Ack>) -> Result<(u64, Cursors), DbErr> {
    let txn = crate::storage::begin(db).await?;
    let conversations: BTreeSet<Uuid> = acks.iter().map(|a| a.conversation_id).collect();
    let last_seq: HashMap<Uuid, i64> = conversation::Entity::find()
        .select_only()
        .column(conversation::Column::Id)
        .column(conversation::Column::LastSeq)
        .filter(conversation::Column::Id.is_in(conversations.iter().copied()))
        .into_tuple::<(Uuid, i64)>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    // Each device's target: the largest it acknowledged in the batch, never past the log
    // (the set is in (conversation, device, upto) order, so the last one wins).
    let mut upto: BTreeMap<(Uuid, Uuid), i64> = BTreeMap::new();
    for a in acks {
        let to = a
            .upto
            .min(last_seq.get(&a.conversation_id).copied().unwrap_or(0));
        upto.insert((a.conversation_id, a.device_id), to);
    }
    // The active member rows of every conversation touched, locked in (conversation,
    // device) order so two replicas' batches cannot deadlock.
    let members = member_device::Entity::find()
        .filter(member_device::Column::ConversationId.is_in(conversations.iter().copied()))
        .filter(member_device::Column::RemovedAt.is_null())
        .order_by_asc(member_device::Column::ConversationId)
        .order_by_asc(member_device::Column::DeviceId)
        .lock_exclusive()
        .all(&txn)
        .await?;
    // Cursors only move forward: a row is written only where it is behind its target. A
    // device no longer an active member is answered with where its ack would have taken it.
    let mut to = CaseStatement::new();
    let mut behind = Condition::any();
    let mut moving = false;
    let mut cursors: Cursors = upto.clone().into_iter().collect();
    // What every active member device has acknowledged, by conversation.
    let mut floor: BTreeMap<Uuid, i64> = BTreeMap::new();
    for m in &members {
        let key = (m.conversation_id, m.device_id);
        let mut cursor = m.acked_seq;
        if let Some(&seq) = upto.get(&key)
            && seq > cursor
        {
            let this = Condition::all()
                .add(member_device::Column::ConversationId.eq(key.0))
                .add(member_device::Column::DeviceId.eq(key.1));
            to = to.case(this.clone(), seq);
            behind = behind.add(this);
            moving = true;
            cursor = seq;
        }
        cursors.insert(key, cursor);
        floor
            .entry(m.conversation_id)
            .and_modify(|f| *f = (*f).min(cursor))
            .or_insert(cursor);
    }
    if moving {
        member_device::Entity::update_many()
            .col_expr(
                member_device::Column::AckedSeq,
                SimpleExpr::Case(Box::new(
                    to.finally(Expr::col(member_device::Column::AckedSeq)),
                )),
            )
            .filter(member_device::Column::RemovedAt.is_null())
            .filter(behind)
            .exec(&txn)
            .await?;
    }
    let mut done = Condition::any();
    let mut any = false;
    for (conv, f) in floor.into_iter().filter(|(_, f)| *f > 0) {
        any = true;
        // The payload test in each term lets SQLite answer every term from the index of
        // entries still holding ciphertext (its OR plan looks at each term alone).
        done = done.add(
            Condition::all()
                .add(log_entry::Column::ConversationId.eq(conv))
                .add(log_entry::Column::Seq.lte(f))
                .add(log_entry::Column::Payload.is_not_null()),
        );
    }
    let deleted = if any {
        log_entry::Entity::update_many()
            .col_expr(
                log_entry::Column::Payload,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(done)
            .exec(&txn)
            .await?
            .rows_affected
    } else {
        0
    };
    txn.commit().await?;
    Ok((deleted, cursors))
}
