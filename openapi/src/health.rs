//! Liveness and readiness bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `/readyz` body. Ready means the database is reachable and its schema current; the bus is
/// reported but does not gate readiness (a degraded bus only delays fan-out).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: String,
    /// `ok` or `unreachable`.
    pub database: String,
    /// `current`, `behind` (migrations pending) or `unknown`.
    pub schema: String,
    pub bus: BusHealth,
    /// True once shutdown has begun.
    pub shutting_down: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct BusHealth {
    /// `in_process` or `redis`.
    pub kind: String,
    /// `ok` or `degraded`.
    pub state: String,
}

/// `/livez` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Liveness {
    pub status: String,
}
