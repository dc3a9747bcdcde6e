//! The escalation ladder: a periodic job that keeps every flag in somebody's hands.
//!
//! - An open flag past its deadline climbs to the next level that reaches somebody new
//!   (next responders, then every HP of the clinic, then the clinic admins).
//! - An open flag past its deadline at the top level alerts the top level again, at the
//!   severity's interval, until somebody acknowledges it.
//! - An acknowledged flag past its follow-up time reminds its responders and the HP who
//!   acknowledged it, at the clinic's follow-up interval, until it is resolved.
//!
//! Each step is recorded, audited and counted, and wakes the people concerned. The job runs
//! on one replica at a time under a lease in the database, and each step is a
//! compare-and-set on the flag's status, level and deadline, so a step happens exactly once
//! even if two replicas overlap.

use chrono::Duration;
use peerbridge_openapi::escalation::{EventKind, Severity};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;

use super::entities::{flag, lease};
use super::service::{
    TOP_LEVEL, add_event, deadline, flag_responders, followup, next_level, notify, settings_of,
};
use crate::audit::{self, AuditEvent};
use crate::crypto::enum_parse;
use crate::error::ApiResult;
use crate::state::AppState;

const LEASE: &str = "escalation-ladder";
const LEASE_TTL_SECONDS: i64 = 30;

/// Takes or renews the ladder lease for `holder`; `false` if another replica holds it.
pub async fn acquire(state: &AppState, holder: &str) -> ApiResult<bool> {
    let now = state.now();
    lease::Entity::insert(lease::ActiveModel {
        name: Set(LEASE.into()),
        holder: Set(holder.into()),
        expires_at: Set(now + Duration::seconds(LEASE_TTL_SECONDS)),
    })
    .on_conflict(
        OnConflict::column(lease::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&state.urgent.write)
    .await?;
    let won = lease::Entity::update_many()
        .col_expr(lease::Column::Holder, Expr::value(holder.to_owned()))
        .col_expr(
            lease::Column::ExpiresAt,
            Expr::value(now + Duration::seconds(LEASE_TTL_SECONDS)),
        )
        .filter(lease::Column::Name.eq(LEASE))
        .filter(
            sea_orm::Condition::any()
                .add(lease::Column::Holder.eq(holder))
                .add(lease::Column::ExpiresAt.lt(now)),
        )
        .exec(&state.urgent.write)
        .await?;
    Ok(won.rows_affected == 1)
}

/// What the ladder does with one due flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Up to the next level that reaches somebody new.
    Escalated,
    /// Still unacknowledged at the top: the top level again.
    Realerted,
    /// Acknowledged, not resolved in time: a reminder.
    Overdue,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Escalated => "escalated",
            Step::Realerted => "realerted",
            Step::Overdue => "overdue",
        }
    }
}

/// One pass: every flag past its deadline takes one step. Returns the steps taken.
pub async fn tick(state: &AppState, holder: &str) -> ApiResult<u32> {
    if !acquire(state, holder).await? {
        return Ok(0);
    }
    let now = state.now();
    let mut steps = 0;
    for f in due(state, now).await? {
        if step(state, f, now).await? {
            steps += 1;
        }
    }
    state.metrics.escalation.ladder_pass(now);
    Ok(steps)
}

/// Flags past their deadline at `now`, most severe and most overdue first.
pub async fn due(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Vec<flag::Model>> {
    Ok(flag::Entity::find()
        .filter(flag::Column::Status.is_in(["open", "acknowledged"]))
        .filter(flag::Column::DeadlineAt.lte(now))
        .order_by_asc(flag::Column::SeverityRank)
        .order_by_asc(flag::Column::DeadlineAt)
        .all(&state.urgent.read)
        .await?)
}

/// Takes the step a due flag (as read by `due`) needs; `false` if somebody else changed it
/// since that read (another replica's pass, an acknowledgement).
pub async fn step(
    state: &AppState,
    f: flag::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<bool> {
    // A severity no variant names is a corrupt row; the ladder must still move the flag
    // on, so it is treated as the most urgent (and said loudly), never as a lesser one.
    let severity: Severity = enum_parse(&f.severity).unwrap_or_else(|| {
        tracing::error!(flag = %f.id, "corrupt row: flags.severity; escalating as imminent");
        Severity::Imminent
    });
    let policy = settings_of(&state.urgent.read, f.clinic_id, now).await?;
    let (what, next_level, next_deadline) = if f.status == "acknowledged" {
        (Step::Overdue, f.level, followup(&policy, now))
    } else if f.level >= TOP_LEVEL {
        (Step::Realerted, f.level, deadline(&policy, severity, now))
    } else {
        (
            Step::Escalated,
            next_level(&state.urgent.read, &f, now).await?,
            deadline(&policy, severity, now),
        )
    };
    let turn = state.urgent.turn().await;
    let txn = crate::storage::begin(&state.urgent.write).await?;
    // The compare-and-set: the flag as this pass read it, or nothing.
    let moved = flag::Entity::update_many()
        .col_expr(flag::Column::Level, Expr::value(next_level))
        .col_expr(flag::Column::DeadlineAt, Expr::value(next_deadline))
        .filter(flag::Column::Id.eq(f.id))
        .filter(flag::Column::Level.eq(f.level))
        .filter(flag::Column::Status.eq(f.status.clone()))
        .filter(flag::Column::DeadlineAt.eq(f.deadline_at))
        .exec(&txn)
        .await?;
    if moved.rows_affected != 1 {
        return Ok(false); // acknowledged meanwhile, or another replica took this step
    }
    let kind = match what {
        Step::Escalated => EventKind::Escalated,
        Step::Realerted => EventKind::Realerted,
        Step::Overdue => EventKind::Overdue,
    };
    add_event(
        &txn,
        f.id,
        now,
        kind,
        None,
        Some(next_level),
        None,
        None,
        None,
    )
    .await?;
    audit::append(
        &txn,
        now,
        AuditEvent::new(match what {
            Step::Escalated => "flag.escalated",
            Step::Realerted => "flag.realerted",
            Step::Overdue => "flag.overdue",
        })
        .clinic(Some(f.clinic_id))
        .subject(f.id)
        .detail(json!({ "level": next_level })),
    )
    .await?;
    let after = flag::Model {
        level: next_level,
        deadline_at: next_deadline,
        ..f.clone()
    };
    // A reminder goes to whoever holds the flag and whoever is on duty now (not the whole
    // clinic again); an escalation or re-alert to every responder of the level.
    let mut tell = if what == Step::Overdue {
        let first = flag::Model {
            level: 0,
            ..after.clone()
        };
        flag_responders(&txn, &first, now).await?
    } else {
        flag_responders(&txn, &after, now).await?
    };
    tell.extend(after.acknowledged_by);
    crate::notify::wakeups::owe(&txn, &tell.iter().copied().collect::<Vec<_>>(), now).await?;
    txn.commit().await?;
    drop(turn);
    state.metrics.escalation.breach(what.as_str(), &f.severity);
    tracing::warn!(flag = %f.id, level = next_level, step = what.as_str(), "flag past its deadline");
    notify(state, &tell, after.id, what.as_str()).await;
    Ok(true)
}
