//! The one place where errors become HTTP: every failure leaves as problem+json with a stable
//! code from the contract. The cause chain goes to the log (at error level for 5xx only);
//! bodies carry only what the caller may know.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use peerbridge_openapi::{ErrorCode, Problem};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: Option<String>,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
    pub current_epoch: Option<u64>,
    /// Internal cause, logged and never sent.
    pub source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        ApiError {
            code,
            detail: None,
            field: None,
            retry_after: None,
            current_epoch: None,
            source: None,
        }
    }

    pub fn stale_epoch(current: u64) -> Self {
        ApiError {
            current_epoch: Some(current),
            ..ApiError::new(ErrorCode::StaleEpoch)
                .detail(format!("the conversation is at epoch {current}"))
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A validation failure on a named request field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(ErrorCode::ValidationFailed).detail(detail)
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(ErrorCode::NotFound)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden).detail(detail)
    }

    pub fn unauthenticated() -> Self {
        ApiError::new(ErrorCode::Unauthenticated)
    }

    /// 503 `unavailable`: the server is too busy to take this now; the same request may be
    /// sent again after `retry_after` seconds.
    pub fn busy(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(ErrorCode::Unavailable)
                .detail("the server is busy; send this again after Retry-After seconds")
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(ErrorCode::RateLimited)
        }
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        ApiError {
            source: Some(source.into()),
            ..ApiError::new(ErrorCode::Internal)
        }
    }

    pub fn problem(&self) -> Problem {
        let mut p = Problem::new(self.code, self.detail.clone());
        p.field = self.field.clone();
        p.retry_after_seconds = self.retry_after;
        p.current_epoch = self.current_epoch;
        p
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.as_str())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " (cause: {s:#})")?;
        }
        Ok(())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::internal(e)
    }
}

impl From<sea_orm::TransactionError<ApiError>> for ApiError {
    fn from(e: sea_orm::TransactionError<ApiError>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(db) => ApiError::internal(db),
            sea_orm::TransactionError::Transaction(api) => api,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if self.code == ErrorCode::Internal {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

/// Maps body-extraction failures to problem+json without echoing the body's values (a
/// mistyped password must not come back in an error message or a log line).
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::ContentType => ApiError::new(ErrorCode::UnsupportedMediaType)
            .detail("send the body as application/json"),
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ApiError::new(ErrorCode::PayloadTooLarge)
                .detail(format!("the body may be at most {limit} bytes"))
        }
        J::Deserialize(e) => {
            ApiError::new(ErrorCode::MalformedBody).detail(describe_serde_error(e))
        }
        J::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::new(ErrorCode::PayloadTooLarge)
        }
        J::Payload(actix_web::error::PayloadError::Io(e))
            if e.kind() == std::io::ErrorKind::TimedOut =>
        {
            ApiError::new(ErrorCode::RequestTimeout)
                .detail("the request body did not arrive in time")
        }
        _ => ApiError::new(ErrorCode::MalformedBody).detail("the body could not be read"),
    };
    api.into()
}

fn describe_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // Field names are ours (or the client's own typo); values are never repeated.
    if msg.starts_with("unknown field") || msg.starts_with("missing field") {
        return msg;
    }
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        _ => format!(
            "a value has the wrong type or form (line {}, column {})",
            e.line(),
            e.column()
        ),
    }
}

/// Path parameter failures (e.g. a malformed UUID).
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let _ = err;
    ApiError::new(ErrorCode::InvalidParameter)
        .detail("a path parameter is malformed")
        .into()
}

/// Query string failures.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    let _ = err;
    ApiError::new(ErrorCode::InvalidParameter)
        .detail("a query parameter is malformed")
        .into()
}
