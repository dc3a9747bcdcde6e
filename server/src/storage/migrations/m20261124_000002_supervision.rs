//! Supervision assignments: a peer supporter's supervising HPs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_supervision"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("supervision_assignments")
                .col(uuid("clinic_id"))
                .col(uuid("peer_id"))
                .col(uuid("hp_id"))
                .col(uuid("assigned_by"))
                .col(timestamp_with_time_zone("assigned_at"))
                .primary_key(Index::create().col("peer_id").col("hp_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("supervision_assignments", "peer_id")
                        .to("users", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("supervision_assignments", "hp_id")
                        .to("users", "id"),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("supervision_hp_idx")
                .table("supervision_assignments")
                .col("hp_id")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("supervision_assignments").take())
            .await
    }
}
