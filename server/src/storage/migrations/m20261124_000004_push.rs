//! Push wake-ups: a device's UnifiedPush-style endpoint and when its stream was last alive.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000004_push"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("devices")
                .add_column(string_len_null("push_url", 2048))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("devices")
                .add_column(timestamp_with_time_zone_null("stream_seen_at"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in ["push_url", "stream_seen_at"] {
            m.alter_table(Table::alter().table("devices").drop_column(c).take())
                .await?;
        }
        Ok(())
    }
}
