//! Recipient keys a raising client can check without trusting the server: each clinic's
//! escalation authority (an Ed25519 public key whose secret stays on a clinic admin's
//! device) and, per HP escalation key, the authority's certificate.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000009_escalation_authority"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("escalation_authorities")
                .col(uuid("clinic_id").primary_key())
                .col(blob("public_key"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("escalation_keys")
                .add_column(blob_null("certificate"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("escalation_keys")
                .drop_column("certificate")
                .take(),
        )
        .await?;
        m.drop_table(Table::drop().table("escalation_authorities").take())
            .await
    }
}
