//! problem+json (RFC 9457) errors with stable machine-readable codes. Apps switch on `code`;
//! `title` and `detail` are for humans and may change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable error codes. Adding one is a contract change; renaming one breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ErrorCode {
    /// The body is not valid JSON, has a wrong type, a missing or an unknown field.
    MalformedBody,
    /// The body parsed but a value is out of range or badly formed.
    ValidationFailed,
    /// A path or query parameter is malformed.
    InvalidParameter,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// The request body did not arrive in time (the connection is closed).
    RequestTimeout,
    /// No such resource, or not one the caller may see.
    NotFound,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// No bearer token, or one that is malformed, badly signed, expired or revoked.
    Unauthenticated,
    /// Authenticated, but the role or clinic does not allow this.
    Forbidden,
    /// Login name, password or TOTP code wrong (deliberately not saying which).
    InvalidCredentials,
    /// The device signature over the login challenge does not verify, or the challenge is spent.
    InvalidChallenge,
    /// Invite code unknown, already used, revoked or expired (deliberately not saying which).
    InviteInvalid,
    /// Staff setup code unknown, used or expired.
    SetupCodeInvalid,
    /// Refresh token unknown, expired or revoked.
    RefreshTokenInvalid,
    /// A spent refresh token was presented again; its whole family is now revoked.
    RefreshTokenReused,
    /// The account has been deactivated.
    AccountInactive,
    /// The state of the resource does not allow this (e.g. the key is already registered).
    Conflict,
    /// Too many attempts; retry after `retry_after_seconds`.
    RateLimited,
    /// The commit targets an old epoch; `current_epoch` says which one is current.
    StaleEpoch,
    /// The MLS payload is malformed, badly signed, or not the kind this endpoint takes.
    InvalidMls,
    /// The change would put a device into the conversation that its policy does not allow.
    PolicyViolation,
    /// The target user has no device with a key package left.
    NoKeyPackage,
    /// The server is shutting down or a dependency is unavailable; retry.
    Unavailable,
    /// An unexpected server error; the request id identifies it in the server log.
    Internal,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::InvalidChallenge => "invalid_challenge",
            ErrorCode::InviteInvalid => "invite_invalid",
            ErrorCode::SetupCodeInvalid => "setup_code_invalid",
            ErrorCode::RefreshTokenInvalid => "refresh_token_invalid",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::AccountInactive => "account_inactive",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StaleEpoch => "stale_epoch",
            ErrorCode::InvalidMls => "invalid_mls",
            ErrorCode::PolicyViolation => "policy_violation",
            ErrorCode::NoKeyPackage => "no_key_package",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status this code is always sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::MalformedBody | ErrorCode::InvalidParameter => 400,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Unauthenticated
            | ErrorCode::InvalidCredentials
            | ErrorCode::InvalidChallenge
            | ErrorCode::RefreshTokenInvalid
            | ErrorCode::RefreshTokenReused => 401,
            ErrorCode::Forbidden | ErrorCode::AccountInactive => 403,
            // "No usable invite with this code": unknown, spent, revoked and expired codes
            // look the same on purpose.
            ErrorCode::InviteInvalid | ErrorCode::SetupCodeInvalid => 404,
            ErrorCode::Conflict | ErrorCode::StaleEpoch | ErrorCode::NoKeyPackage => 409,
            ErrorCode::InvalidMls => 422,
            ErrorCode::PolicyViolation => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// A short human title for the code.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::MalformedBody => "Malformed request body",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::InvalidParameter => "Invalid parameter",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::Unauthenticated => "Authentication required",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::InvalidCredentials => "Invalid credentials",
            ErrorCode::InvalidChallenge => "Invalid challenge response",
            ErrorCode::InviteInvalid => "Invite not valid",
            ErrorCode::SetupCodeInvalid => "Setup code not valid",
            ErrorCode::RefreshTokenInvalid => "Refresh token not valid",
            ErrorCode::RefreshTokenReused => "Refresh token reused",
            ErrorCode::AccountInactive => "Account inactive",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::StaleEpoch => "Stale epoch",
            ErrorCode::InvalidMls => "Invalid MLS message",
            ErrorCode::PolicyViolation => "Not allowed by the conversation policy",
            ErrorCode::NoKeyPackage => "No key package available",
            ErrorCode::Unavailable => "Service unavailable",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// An RFC 9457 problem document, sent with `Content-Type: application/problem+json`. The
/// `x-request-id` response header finds the request in the server log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Problem {
    /// `urn:peerbridge:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// The stable machine-readable code.
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Which request field was wrong, as a JSON pointer-ish path (`device.public_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `rate_limited`, and `unavailable` when the server is too busy to take a send or
    /// an acknowledgement: seconds until a retry may succeed (also in `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// For `stale_epoch`: the conversation's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
}

impl Problem {
    /// A problem for `code` with an optional human detail.
    pub fn new(code: ErrorCode, detail: impl Into<Option<String>>) -> Self {
        Problem {
            type_: format!("urn:peerbridge:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status(),
            code,
            detail: detail.into(),
            field: None,
            retry_after_seconds: None,
            current_epoch: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_to_its_wire_name() {
        for code in [
            ErrorCode::MalformedBody,
            ErrorCode::ValidationFailed,
            ErrorCode::InvalidParameter,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RequestTimeout,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Unauthenticated,
            ErrorCode::Forbidden,
            ErrorCode::InvalidCredentials,
            ErrorCode::InvalidChallenge,
            ErrorCode::InviteInvalid,
            ErrorCode::SetupCodeInvalid,
            ErrorCode::RefreshTokenInvalid,
            ErrorCode::RefreshTokenReused,
            ErrorCode::AccountInactive,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::StaleEpoch,
            ErrorCode::InvalidMls,
            ErrorCode::PolicyViolation,
            ErrorCode::NoKeyPackage,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).expect("serialize");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let p = Problem::new(code, None);
            assert!(p.type_.ends_with(code.as_str()));
            assert!((400..600).contains(&p.status));
        }
    }
}
