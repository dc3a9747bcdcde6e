//! The escalation ladder: a periodic job that moves every unacknowledged flag past its
//! deadline one level up (next responders, then every HP of the clinic, then the clinic
//! admins), records and audits the step and wakes the new responders. It runs on one
//! replica at a time under a lease in the database, and each step is a compare-and-set on
//! the flag's level, so a step happens exactly once even if two replicas overlap.

use chrono::Duration;
use peerbridge_openapi::escalation::{EventKind, Severity};
use sea_orm::prelude::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;

use super::entities::{flag, lease};
use super::service::{TOP_LEVEL, add_event, deadline, flag_responders, notify, settings_of};
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
    .exec_without_returning(&state.db)
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
        .exec(&state.db)
        .await?;
    Ok(won.rows_affected == 1)
}

/// One pass: every open flag past its deadline climbs one level. Returns the steps taken.
pub async fn tick(state: &AppState, holder: &str) -> ApiResult<u32> {
    if !acquire(state, holder).await? {
        return Ok(0);
    }
    let now = state.now();
    let due = flag::Entity::find()
        .filter(flag::Column::Status.eq("open"))
        .filter(flag::Column::Level.lt(TOP_LEVEL))
        .filter(flag::Column::DeadlineAt.lte(now))
        .order_by_asc(flag::Column::SeverityRank)
        .order_by_asc(flag::Column::DeadlineAt)
        .all(&state.db)
        .await?;
    let mut steps = 0;
    for f in due {
        // A severity no variant names is a corrupt row; the ladder must still move the flag
        // on, so it is treated as the most urgent (and said loudly), never as a lesser one.
        let severity: Severity = enum_parse(&f.severity).unwrap_or_else(|| {
            tracing::error!(flag = %f.id, "corrupt row: flags.severity; escalating as imminent");
            Severity::Imminent
        });
        let policy = settings_of(&state.db, f.clinic_id, now).await?;
        let next_level = f.level + 1;
        let next_deadline = deadline(&policy, severity, now);
        let txn = crate::storage::begin(&state.db).await?;
        let moved = flag::Entity::update_many()
            .col_expr(flag::Column::Level, Expr::value(next_level))
            .col_expr(flag::Column::DeadlineAt, Expr::value(next_deadline))
            .filter(flag::Column::Id.eq(f.id))
            .filter(flag::Column::Level.eq(f.level))
            .filter(flag::Column::Status.eq("open"))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            continue; // acknowledged meanwhile, or another replica took this step
        }
        add_event(
            &txn,
            f.id,
            now,
            EventKind::Escalated,
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
            AuditEvent::new("flag.escalated")
                .clinic(Some(f.clinic_id))
                .subject(f.id)
                .detail(json!({ "level": next_level })),
        )
        .await?;
        txn.commit().await?;
        steps += 1;
        tracing::warn!(flag = %f.id, level = next_level, "flag not acknowledged in time; escalated");
        let after = flag::Model {
            level: next_level,
            deadline_at: next_deadline,
            ..f
        };
        notify(
            state,
            &flag_responders(&state.db, &after).await?,
            after.id,
            "escalated",
        )
        .await;
    }
    Ok(steps)
}
