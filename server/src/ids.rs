//! Typed ids for functions that take several ids of different meaning: swapping a clinic
//! and a user (or a conversation and a device) is a compile error, not a wrong row.
//! Each wraps the stored `Uuid`; it converts into a sea-orm `Value`, so column filters take
//! it as they are (`Column::UserId.eq(user)`), and compares with a plain `Uuid`.

use std::fmt;

use uuid::Uuid;

macro_rules! id {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> sea_orm::Value {
                id.0.into()
            }
        }

        impl PartialEq<Uuid> for $name {
            fn eq(&self, other: &Uuid) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for Uuid {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id! {
    /// A clinic (`clinics.id`).
    ClinicId;
    /// A person's account (`users.id`): service user, peer, HP or admin.
    UserId;
    /// One device of a user (`devices.id`).
    DeviceId;
    /// A conversation, i.e. one MLS group (`conversations.id`).
    ConversationId;
}

#[cfg(test)]
mod tests {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryTrait};

    use super::*;

    #[test]
    fn a_typed_id_filters_and_compares_as_its_uuid() {
        let raw = Uuid::new_v4();
        let user = UserId(raw);
        assert_eq!(user, raw);
        assert_eq!(raw, user);
        assert_eq!(Uuid::from(user), raw);
        assert_ne!(UserId(Uuid::new_v4()), user);
        let typed = crate::accounts::entities::user::Entity::find()
            .filter(crate::accounts::entities::user::Column::Id.eq(user))
            .build(sea_orm::DbBackend::Postgres)
            .to_string();
        let plain = crate::accounts::entities::user::Entity::find()
            .filter(crate::accounts::entities::user::Column::Id.eq(raw))
            .build(sea_orm::DbBackend::Postgres)
            .to_string();
        assert_eq!(typed, plain);
        assert!(plain.contains(&raw.to_string()));
        assert_eq!(user.to_string(), raw.to_string());
    }
}
