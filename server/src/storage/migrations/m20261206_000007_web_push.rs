//! Web Push: a browser subscription's keys beside the device's push endpoint.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000007_web_push"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table("devices")
                .add_column(string_len_null("push_p256dh", 100))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("devices")
                .add_column(string_len_null("push_auth", 32))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in ["push_p256dh", "push_auth"] {
            m.alter_table(Table::alter().table("devices").drop_column(c).take())
                .await?;
        }
        Ok(())
    }
}
