//! HTTP transport: one reqwest client (rustls), JSON in and out, problem+json mapped to
//! [`SdkError`] by its stable code. It knows nothing about sessions; the client passes the
//! bearer token it wants used.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use peerbridge_openapi::Problem;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, SdkError};

/// Unpadded base64url, as the API carries binary values.
pub(crate) fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Decodes a server-supplied base64url value; bad input is a server error, never a panic.
pub(crate) fn unb64(field: &str, s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim())
        .map_err(|_| SdkError::Server(format!("{field} is not base64url")))
}

/// A successful response's raw body.
pub(crate) struct Reply {
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| SdkError::Server(format!("unexpected response body: {e}")))
    }

    /// A text body (e.g. CSV); invalid UTF-8 is a server error.
    pub(crate) fn text(self) -> Result<String> {
        String::from_utf8(self.body)
            .map_err(|_| SdkError::Server("the response body is not UTF-8 text".into()))
    }
}

/// Sees every response body and WebSocket text frame this client receives (for tests that
/// check what a device learns). Off unless set; nothing is logged.
#[derive(Clone)]
pub struct WireTap(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for WireTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireTap")
    }
}

#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
    pub(crate) tap: Option<WireTap>,
    timeout: Duration,
    /// The browser's write-ahead hook (`platform::BeforeSend`).
    #[cfg(target_arch = "wasm32")]
    pub(crate) before_send: Option<crate::platform::BeforeSend>,
}

impl Api {
    pub(crate) fn new(base: &str, timeout: Duration, tap: Option<WireTap>) -> Result<Api> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SdkError::InvalidInput(
                "the server URL must start with https:// (or http:// for local testing)".into(),
            ));
        }
        // In the browser, fetch owns connections and the user agent; the deadline is set
        // per request instead (`call`).
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("peerbridge-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SdkError::Network(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| SdkError::Network(e.to_string()))?;
        Ok(Api {
            base,
            http,
            tap,
            timeout,
            #[cfg(target_arch = "wasm32")]
            before_send: None,
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; a non-2xx answer becomes the mapped error (401 included: the
    /// caller decides whether to refresh and retry).
    pub(crate) async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<Reply> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        #[cfg(target_arch = "wasm32")]
        if let Some(durable) = &self.before_send {
            (durable.0)().await.map_err(SdkError::Storage)?;
        }
        let resp = rb.send().await.map_err(|e| {
            SdkError::Network(
                // reqwest's message may carry the URL; that holds no secret.
                e.without_url().to_string(),
            )
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| SdkError::Network(e.to_string()))?
            .to_vec();
        if let Some(tap) = &self.tap {
            (tap.0)(&String::from_utf8_lossy(&body));
        }
        if status.is_success() {
            return Ok(Reply { body });
        }
        Err(match serde_json::from_slice::<Problem>(&body) {
            Ok(p) => SdkError::from_problem(&p),
            Err(_) => match status {
                StatusCode::UNAUTHORIZED => SdkError::Unauthenticated(format!("HTTP {status}")),
                StatusCode::FORBIDDEN => SdkError::Forbidden(format!("HTTP {status}")),
                StatusCode::NOT_FOUND => SdkError::NotFound(format!("HTTP {status}")),
                StatusCode::TOO_MANY_REQUESTS => SdkError::RateLimited {
                    retry_after_seconds: 1,
                },
                // A proxy or load balancer answering for an unreachable server.
                StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => SdkError::Network(format!("HTTP {status}")),
                _ => SdkError::Server(format!("HTTP {status}")),
            },
        })
    }
}
