//! The platform schema: clinics, users, devices, invites, staff setup codes, login
//! challenges, refresh-token families, authentication-failure counters and the audit chain.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

/// `prev_hash` of the first audit entry (64 zeros), fixed forever.
const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_platform"
    }
}

fn fk(from_table: &'static str, col: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, col)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Restrict)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("clinics")
                .col(uuid("id").primary_key())
                .col(string_len("name", 200))
                .col(string_len_null("network", 200))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("users")
                .col(uuid("id").primary_key())
                .col(uuid_null("clinic_id"))
                .col(string_len("role", 32))
                .col(string_len("status", 16))
                // HMAC of the normalized login name: lookups without storing it in the clear.
                .col(string_len_null("login_index", 64).unique_key())
                .col(blob_null("login_enc"))
                .col(blob_null("display_name_enc"))
                .col(blob_null("phone_enc"))
                .col(string_null("password_hash"))
                .col(blob_null("totp_secret_enc"))
                // Last accepted TOTP time step: a code is never accepted twice.
                .col(big_integer_null("totp_last_step"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("deactivated_at"))
                .foreign_key(&mut fk("users", "clinic_id", "clinics"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_clinic_idx")
                .table("users")
                .col("clinic_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("devices")
                .col(uuid("id").primary_key())
                .col(uuid("user_id"))
                .col(blob("public_key").unique_key())
                .col(string_len("label", 64))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("last_seen_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                // Access tokens issued before this instant are refused for this device.
                .col(timestamp_with_time_zone_null("tokens_not_before"))
                .foreign_key(&mut fk("devices", "user_id", "users"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("devices_user_idx")
                .table("devices")
                .col("user_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("invites")
                .col(uuid("id").primary_key())
                .col(uuid("clinic_id"))
                .col(string_len("role", 32))
                .col(string_len("code_hash", 64).unique_key())
                .col(blob_null("display_name_enc"))
                .col(blob_null("phone_enc"))
                .col(uuid("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("redeemed_at"))
                .col(uuid_null("redeemed_by"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .foreign_key(&mut fk("invites", "clinic_id", "clinics"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invites_clinic_idx")
                .table("invites")
                .col("clinic_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("setup_codes")
                .col(uuid("id").primary_key())
                .col(uuid("user_id"))
                .col(string_len("code_hash", 64).unique_key())
                .col(blob_null("pending_totp_enc"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .foreign_key(&mut fk("setup_codes", "user_id", "users"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("login_challenges")
                .col(uuid("id").primary_key())
                .col(uuid("device_id"))
                .col(string_len("nonce", 64))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .foreign_key(&mut fk("login_challenges", "device_id", "devices"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("refresh_tokens")
                .col(uuid("id").primary_key())
                // All tokens descending from one login share a family; reuse of a spent
                // token revokes the family.
                .col(uuid("family_id"))
                .col(uuid("device_id"))
                .col(uuid("user_id"))
                .col(string_len("token_hash", 64).unique_key())
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("rotated_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .foreign_key(&mut fk("refresh_tokens", "device_id", "devices"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_family_idx")
                .table("refresh_tokens")
                .col("family_id")
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_device_idx")
                .table("refresh_tokens")
                .col("device_id")
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("auth_failures")
                // e.g. "password:account:<hmac>" or "redeem:addr:<hmac>"; never a raw name.
                .col(string_len("key", 160).primary_key())
                .col(timestamp_with_time_zone("window_start"))
                .col(integer("failures"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("audit_log")
                // Assigned under the head-row lock, so it is gap-free (a serial is not).
                .col(big_integer("seq").primary_key())
                .col(timestamp_with_time_zone("at"))
                .col(uuid_null("clinic_id"))
                .col(uuid_null("actor_user_id"))
                .col(uuid_null("actor_device_id"))
                .col(string_len("action", 64))
                .col(uuid_null("subject_id"))
                .col(text("detail"))
                .col(string_len("prev_hash", 64))
                .col(string_len("hash", 64))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_clinic_idx")
                .table("audit_log")
                .col("clinic_id")
                .col("seq")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("audit_head")
                .col(integer("id").primary_key())
                .col(big_integer("last_seq"))
                .col(string_len("last_hash", 64))
                .take(),
        )
        .await?;
        // The single head row exists from the start, so the first append locks it like
        // every other append (no insert race between replicas).
        m.exec_stmt(
            Query::insert()
                .into_table("audit_head")
                .columns(["id", "last_seq", "last_hash"])
                .values_panic([1.into(), 0i64.into(), AUDIT_GENESIS.into()])
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "audit_head",
            "audit_log",
            "auth_failures",
            "refresh_tokens",
            "login_challenges",
            "setup_codes",
            "invites",
            "devices",
            "users",
            "clinics",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
