//! Indexes over the entries that still hold ciphertext only, so deleting what every device
//! acknowledged and purging what outlived its retention visit the rows they delete, not the
//! whole history of a conversation or of the table (both grow without bound otherwise).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000010_unread_ciphertext"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("log_entries_held_seq")
                .table("log_entries")
                .col("conversation_id")
                .col("seq")
                .and_where(Expr::col("payload").is_not_null())
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("log_entries_held_expiry")
                .table("log_entries")
                .col("expires_at")
                .and_where(Expr::col("payload").is_not_null())
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["log_entries_held_expiry", "log_entries_held_seq"] {
            m.drop_index(Index::drop().name(name).table("log_entries").to_owned())
                .await?;
        }
        Ok(())
    }
}
