//! Group commit for application messages: concurrent sends are appended to their
//! conversations' logs in one transaction, so many acknowledgements share one durable commit
//! (one fsync on SQLite, one WAL flush on PostgreSQL).
//!
//! A writer task takes whatever sends are waiting (up to [`MAX_BATCH`]), locks their
//! conversations in id order (so two replicas' batches cannot deadlock), gives each send the
//! next sequence number of its conversation, inserts them all in one statement, moves every
//! `last_seq` in one more, commits, and only then answers every send in the batch. If a
//! `client_id` turns out to be one the conversation already holds (a retry), that attempt is
//! rolled back and the batch is appended a row at a time instead, the retry left alone and
//! answered as a duplicate. A failed commit answers every send in it with
//! the error, and nothing of the batch is stored: the clients retry with their `client_id`s.
//! The per-conversation log stays gap-free: sequence numbers are taken under the row lock and
//! only for rows that were inserted.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use prometheus_client::metrics::counter::Counter;
use sea_orm::prelude::Expr;
use sea_orm::sea_query::{CaseStatement, OnConflict, SimpleExpr};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::admission::{Admission, Admitted};
use crate::delivery::entities::{conversation, log_entry};
use crate::error::ApiResult;
use crate::storage::turns::Turns;

/// Sends in one transaction at most.
pub const MAX_BATCH: usize = 256;

/// One send, checked and ready to be appended.
pub struct Append {
    pub conversation_id: Uuid,
    pub group_id: Vec<u8>,
    pub client_id: Uuid,
    pub sender_device_id: Uuid,
    pub epoch: i64,
    pub payload: Vec<u8>,
    pub payload_hash: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The franking commitment and the sender as the conversation knows them.
    pub frank: Option<([u8; 32], String)>,
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this sequence number, with the franking stamp it was given (if any).
    Stored(i64, Option<[u8; 64]>),
    /// The conversation already holds this `client_id` (a retry or a concurrent twin): the
    /// caller answers as the stored one did.
    Duplicate,
    /// The conversation is gone.
    NoConversation,
}

struct Pending {
    append: Append,
    reply: oneshot::Sender<Result<Appended, String>>,
}

/// The handle sends go through; the writer runs until every handle is dropped.
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    room: Admission,
}

/// The franking key and its id, for stamps made once the sequence number is known.
pub struct Stamper {
    pub key: SigningKey,
    pub kid: String,
}

impl GroupCommit {
    /// Starts the writer on the current Tokio runtime.
    /// `counters`: committed transactions and the messages they appended. `room`: how many
    /// sends may wait for it (see [`GroupCommit::admit`]). `turns`: the writer
    /// connection's turns (on SQLite), shared with the escalation path (see `storage::turns`).
    pub fn start(
        db: DatabaseConnection,
        stamper: Stamper,
        counters: (Counter, Counter),
        room: Admission,
        turns: Turns,
    ) -> GroupCommit {
        // As long as the room: an admitted send never waits to be queued.
        let (queue, rx) = mpsc::channel(room.limit());
        tokio::spawn(writer(db, stamper, counters, turns, rx));
        GroupCommit { queue, room }
    }

    /// A place among the sends waiting for the writer, taken before any work is done for a
    /// send and held until it is answered; 503 with `Retry-After` when there is none.
    pub fn admit(&self) -> ApiResult<Admitted> {
        self.room.admit()
    }

    /// Appends `append` in the next batch and waits until that batch is committed (or has
    /// failed: then nothing of it is stored). The caller holds a place from [`Self::admit`].
    pub async fn append(&self, _place: &Admitted, append: Append) -> Result<Appended, String> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { append, reply })
            .await
            .map_err(|_| "the message writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the message writer has stopped".to_owned())?
    }
}

async fn writer(
    db: DatabaseConnection,
    stamper: Stamper,
    (commits, committed): (Counter, Counter),
    turns: Turns,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pending = std::mem::take(&mut batch);
        let appends: Vec<&Append> = pending.iter().map(|p| &p.append).collect();
        // On SQLite, after any flag waiting for the one writer connection.
        let turn = turns.batch().await;
        let result = commit(&db, &stamper, &appends).await;
        drop(turn);
        if let Ok(outcomes) = &result {
            commits.inc();
            committed.inc_by(
                outcomes
                    .iter()
                    .filter(|o| matches!(o, Appended::Stored(..)))
                    .count() as u64,
            );
        }
        for (i, p) in pending.into_iter().enumerate() {
            let answer = match &result {
                Ok(outcomes) => Ok(outcomes[i]),
                Err(e) => Err(e.to_string()),
            };
            let _ = p.reply.send(answer);
        }
    }
}

/// One transaction for the whole batch; the outcome of each send, in order.
async fn commit(
    db: &DatabaseConnection,
    stamper: &Stamper,
    batch: &[&Append],
) -> Result<Vec<Appended>, DbErr> {
    if let Some(out) = append(db, stamper, batch, Rows::Together).await? {
        return Ok(out);
    }
    // A send in the batch is a retry of one already stored: the batch again, a row at a
    // time, so the retry is left alone and the others still get gap-free numbers.
    append(db, stamper, batch, Rows::OneByOne)
        .await?
        .ok_or_else(|| DbErr::Custom("a row-by-row append gave up".into()))
}

/// How [`append`] inserts a batch's rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// All in one statement, numbered in advance: gives up (`None`, nothing stored) if a
    /// `client_id` turns out to be stored already, which numbering in advance cannot allow.
    Together,
    /// A row at a time, each numbered only once it is known to be new.
    OneByOne,
}

/// The batch in one transaction: lock its conversations in id order, number and insert its
/// rows, move every `last_seq` in one statement, commit. With [`Rows::Together`] that is
/// four statements whatever the batch's size.
async fn append(
    db: &DatabaseConnection,
    stamper: &Stamper,
    batch: &[&Append],
    how: Rows,
) -> Result<Option<Vec<Appended>>, DbErr> {
    let txn = crate::storage::begin(db).await?;
    let mut last = lock_conversations(&txn, batch).await?;
    let mut moved: BTreeSet<Uuid> = BTreeSet::new();
    let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut out = Vec::with_capacity(batch.len());
    let mut rows = Vec::new();
    for a in batch {
        let Some(last_seq) = last.get_mut(&a.conversation_id) else {
            out.push(Appended::NoConversation);
            continue;
        };
        if !seen.insert((a.conversation_id, a.client_id)) {
            out.push(Appended::Duplicate);
            continue;
        }
        let seq = *last_seq + 1;
        let (row, stamp) = entry(stamper, a, seq);
        if how == Rows::Together {
            rows.push(row);
        } else if log_entry::Entity::insert(row)
            .on_conflict(keep_existing())
            .exec_without_returning(&txn)
            .await?
            == 0
        {
            out.push(Appended::Duplicate);
            continue;
        }
        *last_seq = seq;
        moved.insert(a.conversation_id);
        out.push(Appended::Stored(seq, stamp));
    }
    if !rows.is_empty() {
        let expected = rows.len() as u64;
        let inserted = log_entry::Entity::insert_many(rows)
            .on_conflict(keep_existing())
            .exec_without_returning(&txn)
            .await?;
        if inserted != expected {
            txn.rollback().await?;
            return Ok(None);
        }
    }
    move_last_seq(&txn, &last, &moved).await?;
    txn.commit().await?;
    Ok(Some(out))
}

/// Locks the batch's conversations (in id order) and reads their `last_seq`.
async fn lock_conversations(
    txn: &DatabaseTransaction,
    batch: &[&Append],
) -> Result<BTreeMap<Uuid, i64>, DbErr> {
    let ids: BTreeSet<Uuid> = batch.iter().map(|a| a.conversation_id).collect();
    Ok(conversation::Entity::find()
        .filter(conversation::Column::Id.is_in(ids))
        .order_by_asc(conversation::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?
        .into_iter()
        .map(|c| (c.id, c.last_seq))
        .collect())
}

/// The log row of `a` at `seq`, franked if the sender committed to franking; and the stamp.
fn entry(stamper: &Stamper, a: &Append, seq: i64) -> (log_entry::ActiveModel, Option<[u8; 64]>) {
    let stamp = a.frank.as_ref().map(|(c, sender)| {
        let m = peerbridge_openapi::signed::franking_stamp_message(
            c,
            &a.group_id,
            sender,
            seq.max(0) as u64,
            a.now.timestamp(),
        );
        stamper.key.sign(&m).to_bytes()
    });
    let row = log_entry::ActiveModel {
        conversation_id: Set(a.conversation_id),
        seq: Set(seq),
        kind: Set("application".into()),
        client_id: Set(Some(a.client_id)),
        sender_device_id: Set(a.sender_device_id),
        epoch: Set(a.epoch),
        payload: Set(Some(a.payload.clone())),
        payload_hash: Set(a.payload_hash.clone()),
        created_at: Set(a.now),
        expires_at: Set(a.expires_at),
        frank_commitment: Set(a.frank.as_ref().map(|(c, _)| c.to_vec())),
        frank_sender: Set(a.frank.as_ref().map(|(_, s)| s.clone())),
        frank_stamp: Set(stamp.map(|s| s.to_vec())),
        frank_kid: Set(a.frank.as_ref().map(|_| stamper.kid.clone())),
    };
    (row, stamp)
}

/// A `client_id` the conversation already holds is left alone.
fn keep_existing() -> OnConflict {
    OnConflict::columns([
        log_entry::Column::ConversationId,
        log_entry::Column::ClientId,
    ])
    .do_nothing()
    .to_owned()
}

/// Moves each conversation's `last_seq` to where the batch left it, in one statement.
async fn move_last_seq(
    txn: &DatabaseTransaction,
    last: &BTreeMap<Uuid, i64>,
    moved: &BTreeSet<Uuid>,
) -> Result<(), DbErr> {
    if moved.is_empty() {
        return Ok(());
    }
    let mut to = CaseStatement::new();
    for id in moved {
        to = to.case(conversation::Column::Id.eq(*id), last[id]);
    }
    let to = to.finally(Expr::col(conversation::Column::LastSeq));
    conversation::Entity::update_many()
        .col_expr(
            conversation::Column::LastSeq,
            SimpleExpr::Case(Box::new(to)),
        )
        .filter(conversation::Column::Id.is_in(moved.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}
