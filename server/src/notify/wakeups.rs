//! Flag wake-ups that outlive the process that owed them. A row per device is written in the
//! transaction that raised, escalated or changed the flag (`owe`); the immediate wake-up
//! (`push::Pusher::wake`) deletes a device's rows once a push service accepted it; every
//! replica's `redeliver` (at the ladder's interval) claims the rows still there when due
//! (a compare-and-set, so one replica sends each) and sends them: a replica killed between
//! the commit and the push, or a push service that was down, still ends in a wake-up.

use chrono::{DateTime, Duration, Utc};
use sea_orm::prelude::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::accounts::entities::device;
use crate::error::ApiResult;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "flag_wakeups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub device_id: Uuid,
        pub created_at: DateTimeUtc,
        /// When a replica sends it if the immediate wake-up has not (and retries after).
        pub due_at: DateTimeUtc,
        pub attempts: i32,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// How long the immediate wake-up has before another replica sends it.
pub const GRACE_SECS: i64 = 10;
/// How long a claimed row is left to the replica sending it.
const CLAIM_SECS: i64 = 60;
/// Attempts (about an hour at the claim interval) before a wake-up is given up, loudly.
pub const GIVE_UP_AFTER: i32 = 60;

/// Owes a flag wake-up to every live device of `users` that has a push endpoint (in the
/// caller's transaction, so it is stored exactly when the change is).
pub async fn owe(db: &impl ConnectionTrait, users: &[Uuid], now: DateTime<Utc>) -> ApiResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let devices = device::Entity::find()
        .filter(device::Column::UserId.is_in(users.to_vec()))
        .filter(device::Column::RevokedAt.is_null())
        .filter(device::Column::PushUrl.is_not_null())
        .all(db)
        .await?;
    for d in devices {
        entity::Entity::insert(entity::ActiveModel {
            id: Set(Uuid::new_v4()),
            device_id: Set(d.id),
            created_at: Set(now),
            due_at: Set(now + Duration::seconds(GRACE_SECS)),
            attempts: Set(0),
        })
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// A wake-up reached the device: what it owed up to `sent_at` is paid.
pub async fn paid(
    db: &impl ConnectionTrait,
    device: Uuid,
    sent_at: DateTime<Utc>,
) -> ApiResult<()> {
    entity::Entity::delete_many()
        .filter(entity::Column::DeviceId.eq(device))
        .filter(entity::Column::CreatedAt.lte(sent_at))
        .exec(db)
        .await?;
    Ok(())
}

/// Claims up to 100 due rows for this replica (each a compare-and-set on its due time).
pub async fn claim_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> ApiResult<Vec<entity::Model>> {
    let due = entity::Entity::find()
        .filter(entity::Column::DueAt.lte(now))
        .order_by_asc(entity::Column::DueAt)
        .limit(100)
        .all(db)
        .await?;
    let mut mine = Vec::new();
    for w in due {
        let claimed = entity::Entity::update_many()
            .col_expr(
                entity::Column::DueAt,
                Expr::value(now + Duration::seconds(CLAIM_SECS)),
            )
            .col_expr(entity::Column::Attempts, Expr::value(w.attempts + 1))
            .filter(entity::Column::Id.eq(w.id))
            .filter(entity::Column::DueAt.eq(w.due_at))
            .exec(db)
            .await?;
        if claimed.rows_affected == 1 {
            mine.push(entity::Model {
                attempts: w.attempts + 1,
                ..w
            });
        }
    }
    Ok(mine)
}

/// Drops one row (its device is gone, or it was given up).
pub async fn drop_row(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<()> {
    entity::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
