//! The MLS delivery service: key packages, conversations with their public group state,
//! member devices with cursors, the per-conversation log, and queued welcomes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_delivery"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("key_packages")
                .col(uuid("id").primary_key())
                .col(uuid("device_id"))
                .col(string_len("kp_ref", 128).unique_key())
                .col(blob("key_package"))
                .col(boolean("last_resort"))
                .col(timestamp_with_time_zone("not_after"))
                .col(timestamp_with_time_zone("uploaded_at"))
                .col(timestamp_with_time_zone_null("claimed_at"))
                .col(uuid_null("claimed_for"))
                .foreign_key(
                    ForeignKey::create()
                        .from("key_packages", "device_id")
                        .to("devices", "id"),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("key_packages_device_idx")
                .table("key_packages")
                .col("device_id")
                .col("claimed_at")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("conversations")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(string_len("kind", 32))
                // The subject of the policy: for supervision, the peer supporter.
                .col(uuid("subject_id"))
                .col(blob("group_id").unique_key())
                // 0 until the creator's first commit opens the group.
                .col(big_integer("epoch"))
                // Highest sequence number assigned; the next entry gets last_seq + 1 under the
                // row lock, so sequences are gap-free.
                .col(big_integer("last_seq"))
                .col(blob_null("public_state"))
                .col(blob_null("group_info"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("conversations", "clinic_id")
                        .to("clinics", "id"),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("conversations_subject_idx")
                .table("conversations")
                .col("kind")
                .col("subject_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("conversation_devices")
                .col(uuid("conversation_id"))
                .col(uuid("device_id"))
                .col(big_integer("leaf_index"))
                // Entries up to this seq predate the device's membership.
                .col(big_integer("joined_seq"))
                .col(big_integer("acked_seq"))
                .col(timestamp_with_time_zone_null("removed_at"))
                .primary_key(Index::create().col("conversation_id").col("device_id"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("conversation_devices_device_idx")
                .table("conversation_devices")
                .col("device_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("log_entries")
                .col(uuid("conversation_id"))
                .col(big_integer("seq"))
                .col(string_len("kind", 16))
                .col(uuid_null("client_id"))
                .col(uuid("sender_device_id"))
                .col(big_integer("epoch"))
                // Null once every member device acknowledged it or its retention ended.
                .col(blob_null("payload"))
                .col(string_len("payload_hash", 64))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .primary_key(Index::create().col("conversation_id").col("seq"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("log_entries_client_id_uniq")
                .table("log_entries")
                .col("conversation_id")
                .col("client_id")
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("welcomes")
                .col(uuid("id").primary_key())
                .col(uuid("conversation_id"))
                .col(uuid("device_id"))
                .col(string_len("kp_ref", 128))
                .col(blob("welcome"))
                .col(big_integer("start_seq"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("acked_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("welcomes_device_idx")
                .table("welcomes")
                .col("device_id")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "welcomes",
            "log_entries",
            "conversation_devices",
            "conversations",
            "key_packages",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
