//! Escalation: HP devices' escalation keys, clinic settings and roster, flags with their
//! sealed excerpts and history, crisis resources, debriefs, consultations, job leases; and
//! the franking stamp of application messages.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000006_escalation"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("escalation_keys")
                .col(uuid("device_id").primary_key())
                .col(blob("public_key"))
                .col(blob("signature"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("escalation_keys", "device_id")
                        .to("devices", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("escalation_settings")
                .col(uuid("clinic_id").primary_key())
                .col(integer("imminent_minutes"))
                .col(integer("urgent_minutes"))
                .col(integer("concerning_minutes"))
                .col(integer("routine_hour"))
                .col(text("notice_nb"))
                .col(text("notice_nn"))
                .col(text("notice_en"))
                .col(timestamp_with_time_zone("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("escalation_roster")
                .col(uuid("clinic_id"))
                .col(uuid("hp_id"))
                .col(integer("level"))
                .primary_key(Index::create().col("clinic_id").col("hp_id"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flags")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(uuid("conversation_id"))
                .col(uuid_null("introduction_id"))
                .col(uuid("client_id").unique_key())
                .col(string_len("kind", 20))
                .col(string_len("category", 40))
                .col(string_len("severity", 20))
                .col(integer("severity_rank"))
                .col(string_len("status", 20))
                .col(uuid("raised_by"))
                .col(uuid("raised_device"))
                .col(uuid("subject_id"))
                .col(uuid_null("peer_id"))
                .col(integer("level"))
                .col(timestamp_with_time_zone("deadline_at"))
                .col(uuid_null("assigned_to"))
                .col(uuid_null("acknowledged_by"))
                .col(timestamp_with_time_zone_null("acknowledged_at"))
                .col(string_len_null("outcome", 40))
                .col(uuid_null("resolved_by"))
                .col(timestamp_with_time_zone_null("resolved_at"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flags_open_idx")
                .table("flags")
                .col("status")
                .col("deadline_at")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flag_excerpts")
                .col(uuid("flag_id"))
                .col(uuid("device_id"))
                .col(blob("public_key"))
                .col(blob("enc"))
                .col(blob("ciphertext"))
                .primary_key(Index::create().col("flag_id").col("device_id"))
                .foreign_key(
                    ForeignKey::create()
                        .from("flag_excerpts", "flag_id")
                        .to("flags", "id"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flag_events")
                .col(uuid("id").primary_key())
                .col(uuid("flag_id"))
                .col(timestamp_with_time_zone("at"))
                .col(string_len("kind", 20))
                .col(uuid_null("actor"))
                .col(integer_null("level"))
                .col(blob_null("note_enc"))
                .col(uuid_null("assigned_to"))
                .col(string_len_null("outcome", 40))
                .foreign_key(
                    ForeignKey::create()
                        .from("flag_events", "flag_id")
                        .to("flags", "id"),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flag_events_flag_idx")
                .table("flag_events")
                .col("flag_id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("crisis_resources")
                .col(uuid("clinic_id"))
                .col(string_len("locale", 5))
                .col(integer("position"))
                .col(string_len("label", 200))
                .col(string_len("phone", 50))
                .col(text_null("description"))
                .primary_key(
                    Index::create()
                        .col("clinic_id")
                        .col("locale")
                        .col("position"),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("debriefs")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(uuid("client_id").unique_key())
                .col(uuid("peer_id"))
                .col(uuid_null("introduction_id"))
                .col(string_len("severity", 20))
                .col(string_len("status", 20))
                .col(timestamp_with_time_zone("deadline_at"))
                .col(uuid_null("acknowledged_by"))
                .col(timestamp_with_time_zone_null("acknowledged_at"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("consultations")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(uuid("client_id").unique_key())
                .col(uuid("peer_id"))
                .col(date("date"))
                .col(integer("duration_minutes"))
                .col(string_len("kind", 20))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("consultations_clinic_date_idx")
                .table("consultations")
                .col("clinic_id")
                .col("date")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("job_leases")
                .col(string_len("name", 60).primary_key())
                .col(string_len("holder", 100))
                .col(timestamp_with_time_zone("expires_at"))
                .take(),
        )
        .await?;
        for def in [
            blob_null("frank_commitment"),
            string_len_null("frank_sender", 100),
            blob_null("frank_stamp"),
            string_len_null("frank_kid", 64),
        ] {
            m.alter_table(Table::alter().table("log_entries").add_column(def).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for c in [
            "frank_commitment",
            "frank_sender",
            "frank_stamp",
            "frank_kid",
        ] {
            m.alter_table(Table::alter().table("log_entries").drop_column(c).take())
                .await?;
        }
        for t in [
            "job_leases",
            "consultations",
            "debriefs",
            "crisis_resources",
            "flag_events",
            "flag_excerpts",
            "flags",
            "escalation_roster",
            "escalation_settings",
            "escalation_keys",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
