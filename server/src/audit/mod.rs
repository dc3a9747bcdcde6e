//! The tamper-evident audit log. Each entry's hash covers its content and the previous
//! entry's hash; a head row pins the latest entry, so editing, deleting (middle or tail) or
//! reordering rows is detected by [`verify`]. Entries hold ids, actions and non-identifying
//! details only: never names, phone numbers, tokens or message content.

pub mod entities;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use entities::{audit_head, audit_log};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, by whom, to whom. `detail` must not carry identifying data.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub action: &'static str,
    pub clinic_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_device_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(action: &'static str) -> Self {
        AuditEvent {
            action,
            clinic_id: None,
            actor_user_id: None,
            actor_device_id: None,
            subject_id: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }
    pub fn clinic(mut self, id: Option<Uuid>) -> Self {
        self.clinic_id = id;
        self
    }
    pub fn actor(mut self, user: Option<Uuid>, device: Option<Uuid>) -> Self {
        self.actor_user_id = user;
        self.actor_device_id = device;
        self
    }
    pub fn subject(mut self, id: impl Into<Uuid>) -> Self {
        let id = id.into();
        self.subject_id = Some(id);
        self
    }
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

fn opt(u: Option<Uuid>) -> String {
    u.map(|u| u.to_string()).unwrap_or_else(|| "-".into())
}

fn entry_hash(m: &audit_log::Model) -> String {
    let canonical = format!(
        "v1|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        m.seq,
        m.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        opt(m.clinic_id),
        opt(m.actor_user_id),
        opt(m.actor_device_id),
        m.action,
        opt(m.subject_id),
        m.detail,
        m.prev_hash
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Appends an entry inside the caller's transaction, so the action and its audit entry
/// commit together or not at all. Takes a transaction (not any connection) because the
/// head-row lock only serializes appends while the transaction lives.
pub async fn append(
    txn: &DatabaseTransaction,
    at: DateTime<Utc>,
    ev: AuditEvent,
) -> Result<i64, DbErr> {
    let head = audit_head::Entity::find_by_id(1)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("audit_head row missing".into()))?;
    let mut entry = audit_log::Model {
        seq: head.last_seq + 1,
        at,
        clinic_id: ev.clinic_id,
        actor_user_id: ev.actor_user_id,
        actor_device_id: ev.actor_device_id,
        action: ev.action.to_owned(),
        subject_id: ev.subject_id,
        detail: ev.detail.to_string(),
        prev_hash: head.last_hash.clone(),
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    let seq = entry.seq;
    let hash = entry.hash.clone();
    audit_log::ActiveModel::from(entry).insert(txn).await?;
    audit_head::ActiveModel {
        id: Set(1),
        last_seq: Set(seq),
        last_hash: Set(hash),
    }
    .update(txn)
    .await?;
    Ok(seq)
}

/// Result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Intact { entries: i64 },
    Broken { problems: Vec<String> },
}

/// Walks the whole chain and reports every inconsistency found.
pub async fn verify(db: &impl ConnectionTrait) -> Result<Verification, DbErr> {
    const PAGE: u64 = 1000;
    let mut problems = Vec::new();
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS.to_owned();
    loop {
        let rows = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_log::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        let n = rows.len() as u64;
        for row in rows {
            if row.seq != expected_seq {
                problems.push(format!(
                    "entries {expected_seq}..{} are missing (deleted)",
                    row.seq - 1
                ));
            }
            if row.prev_hash != prev_hash {
                problems.push(format!(
                    "entry {} does not follow its predecessor (chain broken)",
                    row.seq
                ));
            }
            if entry_hash(&row) != row.hash {
                problems.push(format!("entry {} was altered (hash mismatch)", row.seq));
            }
            prev_hash = row.hash.clone();
            expected_seq = row.seq + 1;
        }
        if n < PAGE {
            break;
        }
    }
    let last = expected_seq - 1;
    match audit_head::Entity::find_by_id(1).one(db).await? {
        None => problems.push("the audit head row is missing".into()),
        Some(head) => {
            if head.last_seq != last {
                problems.push(format!(
                    "the log ends at entry {last} but the head records entry {} (tail deleted or head altered)",
                    head.last_seq
                ));
            } else if head.last_hash != prev_hash {
                problems.push("the head hash does not match the last entry".into());
            }
        }
    }
    Ok(if problems.is_empty() {
        Verification::Intact { entries: last }
    } else {
        Verification::Broken { problems }
    })
}
