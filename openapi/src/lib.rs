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
pub mod supervision;
pub mod users;

pub use error::{ErrorCode, Problem};

/// Roles a user can hold. Exactly one per user; every role but `operator` is bound to a clinic.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
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
