//! Matching and introductions: clinic topic lists, peer profiles, service users' needs,
//! introductions, signed consents, boundary reports; pseudonymous key packages and the
//! server-side binding of pseudonymous MLS leaves to devices.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_introductions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("clinic_topics")
                .col(uuid("clinic_id"))
                .col(string_len("key", 40))
                .col(string_len("label", 100))
                .col(integer("position"))
                .primary_key(Index::create().col("clinic_id").col("key"))
                .foreign_key(
                    ForeignKey::create()
                        .from("clinic_topics", "clinic_id")
                        .to("clinics", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("peer_profiles")
                .col(uuid("peer_id").primary_key())
                .col(uuid("clinic_id"))
                .col(boolean("approved"))
                .col(date_null("trained_on"))
                .col(timestamp_with_time_zone_null("approved_at"))
                .col(uuid_null("approved_by"))
                .col(text("languages"))
                .col(string_len_null("gender", 20))
                .col(string_len_null("age_band", 10))
                .col(string_len_null("region", 100))
                .col(integer_null("years_since_diagnosis"))
                .col(text("topics"))
                .col(boolean("remote_support"))
                .col(integer("capacity"))
                .col(string_len_null("availability", 200))
                .col(boolean("paused"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("peer_profiles", "peer_id")
                        .to("users", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("user_needs")
                .col(uuid("user_id").primary_key())
                .col(uuid("clinic_id"))
                .col(text("languages"))
                .col(string_len_null("preferred_gender", 20))
                .col(text("preferred_age_bands"))
                .col(string_len_null("region", 100))
                .col(text("topics"))
                .col(boolean("accepts_remote"))
                .col(uuid("updated_by"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("user_needs", "user_id")
                        .to("users", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("introductions")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(uuid("client_id").unique_key())
                .col(uuid("introduced_by"))
                .col(uuid("service_user_id"))
                .col(uuid("peer_id"))
                .col(uuid("peer_clinic_id"))
                .col(string_len("service_user_alias", 60))
                .col(string_len("peer_alias", 60))
                .col(text("blurb_for_service_user"))
                .col(text("blurb_for_peer"))
                .col(string_len("service_user_response", 20))
                .col(string_len("peer_response", 20))
                .col(string_len("state", 20))
                .col(string_len_null("outcome", 40))
                .col(string_len_null("paused_by", 20))
                .col(string_len_null("blocked_by", 20))
                .col(uuid_null("conversation_id"))
                .col(uuid_null("rematched_to"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("ended_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("introductions", "service_user_id")
                        .to("users", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("introductions", "peer_id")
                        .to("users", "id"),
                )
                .take(),
        )
        .await?;
        for (name, col) in [
            ("introductions_su_idx", "service_user_id"),
            ("introductions_peer_idx", "peer_id"),
            ("introductions_clinic_idx", "clinic_id"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table("introductions")
                    .col(col)
                    .take(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("consents")
                .col(uuid("id").primary_key())
                .col(uuid("introduction_id"))
                .col(string_len("party", 20))
                .col(uuid("device_id"))
                .col(string_len("scope", 20))
                .col(string_len("action", 20))
                .col(big_integer("issued_at"))
                .col(blob("signature_key"))
                .col(blob("signature"))
                .col(timestamp_with_time_zone("recorded_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("consents", "introduction_id")
                        .to("introductions", "id"),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("consents_intro_idx")
                .table("consents")
                .col("introduction_id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("boundary_reports")
                .col(uuid("id").primary_key())
                .col(uuid("introduction_id"))
                .col(uuid("client_id").unique_key())
                .col(string_len("reported_by", 20))
                .col(string_len("category", 40))
                .col(blob_null("note_enc"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("handled_at"))
                .col(uuid_null("handled_by"))
                .foreign_key(
                    ForeignKey::create()
                        .from("boundary_reports", "introduction_id")
                        .to("introductions", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("leaf_bindings")
                .col(blob("signature_key").primary_key())
                .col(uuid("device_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("leaf_bindings", "device_id")
                        .to("devices", "id"),
                )
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("key_packages")
                .add_column(boolean("pseudonymous").default(false))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("key_packages")
                .drop_column("pseudonymous")
                .take(),
        )
        .await?;
        for t in [
            "leaf_bindings",
            "boundary_reports",
            "consents",
            "introductions",
            "user_needs",
            "peer_profiles",
            "clinic_topics",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
