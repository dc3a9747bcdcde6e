//! Tables owned by matching and introductions. Lists (languages, topics, age bands) are
//! stored as JSON text so SQLite and PostgreSQL read them alike.

pub mod topic {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "clinic_topics")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub clinic_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub label: String,
        pub position: i32,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod peer_profile {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "peer_profiles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub peer_id: Uuid,
        pub clinic_id: Uuid,
        pub approved: bool,
        pub trained_on: Option<Date>,
        pub approved_at: Option<DateTimeUtc>,
        pub approved_by: Option<Uuid>,
        pub languages: String,
        pub gender: Option<String>,
        pub age_band: Option<String>,
        pub region: Option<String>,
        pub years_since_diagnosis: Option<i32>,
        pub topics: String,
        pub remote_support: bool,
        pub capacity: i32,
        pub availability: Option<String>,
        pub paused: bool,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod needs {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_needs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub clinic_id: Uuid,
        pub languages: String,
        pub preferred_gender: Option<String>,
        pub preferred_age_bands: String,
        pub region: Option<String>,
        pub topics: String,
        pub accepts_remote: bool,
        pub updated_by: Uuid,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod introduction {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "introductions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub clinic_id: Uuid,
        pub client_id: Uuid,
        pub introduced_by: Uuid,
        pub service_user_id: Uuid,
        pub peer_id: Uuid,
        pub peer_clinic_id: Uuid,
        pub service_user_alias: String,
        pub peer_alias: String,
        pub blurb_for_service_user: String,
        pub blurb_for_peer: String,
        pub service_user_response: String,
        pub peer_response: String,
        pub state: String,
        pub outcome: Option<String>,
        pub paused_by: Option<String>,
        pub blocked_by: Option<String>,
        pub conversation_id: Option<Uuid>,
        pub rematched_to: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub ended_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod consent {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub introduction_id: Uuid,
        pub party: String,
        pub device_id: Uuid,
        pub scope: String,
        pub action: String,
        pub issued_at: i64,
        pub signature_key: Vec<u8>,
        pub signature: Vec<u8>,
        pub recorded_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod report {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "boundary_reports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub introduction_id: Uuid,
        pub client_id: Uuid,
        pub reported_by: String,
        pub category: String,
        pub note_enc: Option<Vec<u8>>,
        pub created_at: DateTimeUtc,
        pub handled_at: Option<DateTimeUtc>,
        pub handled_by: Option<Uuid>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
