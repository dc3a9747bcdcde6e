//! Tables owned by accounts: users, devices, invites and staff setup codes.
//! Identifying fields are `*_enc` columns sealed by [`crate::crypto::FieldCipher`].

pub mod user {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub clinic_id: Option<Uuid>,
        pub role: String,
        pub status: String,
        pub login_index: Option<String>,
        pub login_enc: Option<Vec<u8>>,
        pub display_name_enc: Option<Vec<u8>>,
        pub phone_enc: Option<Vec<u8>>,
        pub password_hash: Option<String>,
        pub totp_secret_enc: Option<Vec<u8>>,
        pub totp_last_step: Option<i64>,
        pub created_by: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub deactivated_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod device {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub public_key: Vec<u8>,
        pub label: String,
        pub created_at: DateTimeUtc,
        pub last_seen_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
        pub tokens_not_before: Option<DateTimeUtc>,
        /// UnifiedPush-style endpoint for content-free wake-ups (an allowed gateway only).
        pub push_url: Option<String>,
        /// With `push_auth`: the browser's Web Push subscription keys (base64url; the
        /// uncompressed P-256 point and the 16-byte auth secret). Both or neither.
        pub push_p256dh: Option<String>,
        pub push_auth: Option<String>,
        /// Last sign of life of the device's stream; wake-ups go only to devices without one.
        pub stream_seen_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod invite {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invites")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub clinic_id: Uuid,
        pub role: String,
        pub code_hash: String,
        pub display_name_enc: Option<Vec<u8>>,
        pub phone_enc: Option<Vec<u8>>,
        pub created_by: Uuid,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub redeemed_at: Option<DateTimeUtc>,
        pub redeemed_by: Option<Uuid>,
        pub revoked_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod setup_code {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "setup_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub code_hash: String,
        pub pending_totp_enc: Option<Vec<u8>>,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
