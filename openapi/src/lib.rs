//! The Peerbridge API contract: every request and response body, the problem+json error shape
//! and its stable error codes. Server and clients compile against this crate, so a change here
//! is a change of the wire contract (and of the committed `openapi.json`).

pub mod auth;
pub mod clinics;
pub mod delivery;
pub mod error;
pub mod escalation;
pub mod health;
pub mod introductions;
pub mod signed;
pub mod supervision;
pub mod users;

pub use error::{ErrorCode, Problem};

/// Roles a user can hold. Exactly one per user; every role but `operator` is bound to a clinic.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Role {
    /// Runs the deployment; creates clinics and their first staff accounts.
    Operator,
    /// Manages a clinic's staff accounts, rosters and retention.
    ClinicAdmin,
    /// Healthcare professional: enrolls users, matches, supervises, works escalations.
    Hp,
    /// Trained peer supporter.
    Peer,
    /// Service user: a person living with HIV followed up at the clinic.
    ServiceUser,
}

impl Role {
    /// The stable wire name, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::ClinicAdmin => "clinic_admin",
            Role::Hp => "hp",
            Role::Peer => "peer",
            Role::ServiceUser => "service_user",
        }
    }

    /// Parses the stored value.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "operator" => Role::Operator,
            "clinic_admin" => Role::ClinicAdmin,
            "hp" => Role::Hp,
            "peer" => Role::Peer,
            "service_user" => Role::ServiceUser,
            _ => return None,
        })
    }

    /// Staff roles sign in with password + TOTP in addition to their device key.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Operator | Role::ClinicAdmin | Role::Hp)
    }
}

/// Roles a staff account can be created with inside a clinic.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum StaffRole {
    ClinicAdmin,
    Hp,
}

impl From<StaffRole> for Role {
    fn from(r: StaffRole) -> Role {
        match r {
            StaffRole::ClinicAdmin => Role::ClinicAdmin,
            StaffRole::Hp => Role::Hp,
        }
    }
}

/// Roles an invite enrolls: the people an HP brings into the programme.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum EnrolleeRole {
    Peer,
    ServiceUser,
}

impl From<EnrolleeRole> for Role {
    fn from(r: EnrolleeRole) -> Role {
        match r {
            EnrolleeRole::Peer => Role::Peer,
            EnrolleeRole::ServiceUser => Role::ServiceUser,
        }
    }
}

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("peerbridge_api");

/// How the contract's foreign types cross the UniFFI boundary: ids as their canonical
/// string, instants as the platform's timestamp (`java.time.Instant`, `Date`), calendar
/// dates as `YYYY-MM-DD`. Other crates re-use these with `uniffi::use_remote_type!`.
#[cfg(feature = "uniffi")]
pub mod ffi_types {
    pub use uuid::Uuid;
    pub type DateTime = chrono::DateTime<chrono::Utc>;
    pub type NaiveDate = chrono::NaiveDate;

    uniffi::custom_type!(Uuid, String, {
        remote,
        try_lift: |s| Ok(Uuid::parse_str(&s)?),
        lower: |u| u.to_string(),
    });
    uniffi::custom_type!(DateTime, std::time::SystemTime, {
        remote,
        try_lift: |t| Ok(DateTime::from(t)),
        lower: |d| d.into(),
    });
    uniffi::custom_type!(NaiveDate, String, {
        remote,
        try_lift: |s| Ok(s.parse::<NaiveDate>()?),
        lower: |d| d.to_string(),
    });
}
