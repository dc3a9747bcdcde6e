//! The SDK's one error type: a small flat enum with stable [`SdkError::code`] strings, so the
//! FFI layer can hand apps something to `switch` on. Server problems (problem+json) are
//! mapped by their stable `code`; client-core failures by theirs. The human detail is for
//! logs and developers, never for program logic.

use peerbridge_openapi::{ErrorCode, Problem};

/// Everything a [`crate::PeerbridgeClient`] call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The server could not be reached or the connection broke. Retrying later is safe:
    /// sends keep their client id, commits stay pending until the answer is known.
    #[error("network: {0}")]
    Network(String),
    /// No usable session: not enrolled yet, or the session ended and the device key could
    /// not start a new one. Enroll or log in again.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated, but the role, clinic, conversation policy or account state forbids it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such invite, conversation or welcome (or one this device may not see).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server's state does not allow this (e.g. the conversation already exists, the
    /// user has no key package left).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another member's commit won the epoch, and retrying did not succeed within the bound.
    #[error("stale epoch: {0}")]
    StaleEpoch(String),
    /// Too many attempts; retry after `retry_after_seconds`.
    #[error("rate limited; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    /// The caller passed something invalid (bad invite format, text too long, bad key size),
    /// or the server refused the request's content.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The on-device store could not be read or written (disk full, damaged file).
    #[error("storage: {0}")]
    Storage(String),
    /// The storage key does not open this storage directory. Nothing was changed.
    #[error("the storage key does not open this storage directory")]
    WrongStorageKey,
    /// The MLS client core refused an operation or a message.
    #[error("mls: {0}")]
    Mls(String),
    /// The server failed or answered something this SDK does not understand.
    #[error("server: {0}")]
    Server(String),
}

impl SdkError {
    /// A stable machine-readable code (snake_case).
    pub fn code(&self) -> &'static str {
        match self {
            SdkError::Network(_) => "network",
            SdkError::Unauthenticated(_) => "unauthenticated",
            SdkError::Forbidden(_) => "forbidden",
            SdkError::NotFound(_) => "not_found",
            SdkError::Conflict(_) => "conflict",
            SdkError::StaleEpoch(_) => "stale_epoch",
            SdkError::RateLimited { .. } => "rate_limited",
            SdkError::InvalidInput(_) => "invalid_input",
            SdkError::Storage(_) => "storage",
            SdkError::WrongStorageKey => "wrong_storage_key",
            SdkError::Mls(_) => "mls",
            SdkError::Server(_) => "server",
        }
    }

    /// Worth retrying unchanged later (the request may or may not have reached the server).
    pub fn is_transient(&self) -> bool {
        matches!(self, SdkError::Network(_) | SdkError::Server(_))
    }

    /// Maps a server problem by its stable code.
    pub(crate) fn from_problem(p: &Problem) -> SdkError {
        let detail = match &p.detail {
            Some(d) => format!("{} ({}): {d}", p.title, p.code.as_str()),
            None => format!("{} ({})", p.title, p.code.as_str()),
        };
        match p.code {
            ErrorCode::Unauthenticated
            | ErrorCode::InvalidCredentials
            | ErrorCode::InvalidChallenge
            | ErrorCode::RefreshTokenInvalid
            | ErrorCode::RefreshTokenReused => SdkError::Unauthenticated(detail),
            ErrorCode::Forbidden | ErrorCode::AccountInactive | ErrorCode::PolicyViolation => {
                SdkError::Forbidden(detail)
            }
            ErrorCode::NotFound | ErrorCode::InviteInvalid | ErrorCode::SetupCodeInvalid => {
                SdkError::NotFound(detail)
            }
            ErrorCode::Conflict | ErrorCode::NoKeyPackage => SdkError::Conflict(detail),
            ErrorCode::StaleEpoch => SdkError::StaleEpoch(detail),
            // The body did not reach the server in time: a network condition, retryable.
            ErrorCode::RequestTimeout => SdkError::Network(detail),
            ErrorCode::RateLimited => SdkError::RateLimited {
                retry_after_seconds: p.retry_after_seconds.unwrap_or(1),
            },
            ErrorCode::MalformedBody
            | ErrorCode::ValidationFailed
            | ErrorCode::InvalidParameter
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::InvalidMls => SdkError::InvalidInput(detail),
            ErrorCode::MethodNotAllowed | ErrorCode::Unavailable | ErrorCode::Internal => {
                SdkError::Server(detail)
            }
        }
    }
}

impl From<peerbridge_mls::Error> for SdkError {
    fn from(e: peerbridge_mls::Error) -> Self {
        use peerbridge_mls::Error as E;
        match e {
            E::WrongStoreKey => SdkError::WrongStorageKey,
            E::StoreCorrupt(m) | E::StoreIo(m) => SdkError::Storage(m),
            E::IdentityMismatch => {
                SdkError::Storage("the store belongs to a different device identity".into())
            }
            E::Envelope(env) => SdkError::InvalidInput(env.to_string()),
            other => SdkError::Mls(format!("{} ({})", other, other.code())),
        }
    }
}

impl From<crate::state::StateError> for SdkError {
    fn from(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Store(e) => e.into(),
            other => SdkError::Storage(other.to_string()),
        }
    }
}

pub type Result<T, E = SdkError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_problems_map_to_the_flat_codes() {
        let cases = [
            (ErrorCode::RefreshTokenReused, "unauthenticated"),
            (ErrorCode::PolicyViolation, "forbidden"),
            (ErrorCode::InviteInvalid, "not_found"),
            (ErrorCode::NoKeyPackage, "conflict"),
            (ErrorCode::StaleEpoch, "stale_epoch"),
            (ErrorCode::RateLimited, "rate_limited"),
            (ErrorCode::ValidationFailed, "invalid_input"),
            (ErrorCode::Internal, "server"),
        ];
        for (code, flat) in cases {
            assert_eq!(
                SdkError::from_problem(&Problem::new(code, None)).code(),
                flat
            );
        }
        assert_eq!(
            SdkError::from(peerbridge_mls::Error::WrongStoreKey),
            SdkError::WrongStorageKey
        );
    }
}
