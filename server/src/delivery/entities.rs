//! Tables owned by the delivery service.

pub mod key_package {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "key_packages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub device_id: Uuid,
        pub kp_ref: String,
        pub key_package: Vec<u8>,
        pub last_resort: bool,
        pub not_after: DateTimeUtc,
        pub uploaded_at: DateTimeUtc,
        pub claimed_at: Option<DateTimeUtc>,
        pub claimed_for: Option<Uuid>,
        pub pseudonymous: bool,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod conversation {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub clinic_id: Uuid,
        pub kind: String,
        pub subject_id: Uuid,
        pub group_id: Vec<u8>,
        pub epoch: i64,
        pub last_seq: i64,
        pub public_state: Option<Vec<u8>>,
        pub group_info: Option<Vec<u8>>,
        pub created_by: Uuid,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod member_device {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversation_devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub device_id: Uuid,
        pub leaf_index: i64,
        pub joined_seq: i64,
        pub acked_seq: i64,
        pub removed_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod log_entry {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "log_entries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub kind: String,
        pub client_id: Option<Uuid>,
        pub sender_device_id: Uuid,
        pub epoch: i64,
        pub payload: Option<Vec<u8>>,
        pub payload_hash: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub frank_commitment: Option<Vec<u8>>,
        pub frank_sender: Option<String>,
        pub frank_stamp: Option<Vec<u8>>,
        pub frank_kid: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod welcome {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "welcomes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub conversation_id: Uuid,
        pub device_id: Uuid,
        pub kp_ref: String,
        pub welcome: Vec<u8>,
        pub start_seq: i64,
        pub created_at: DateTimeUtc,
        pub acked_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which device owns a pseudonymous leaf (by its MLS signature key). Only the server knows;
/// the group never carries it.
pub mod leaf_binding {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "leaf_bindings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub signature_key: Vec<u8>,
        pub device_id: Uuid,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
