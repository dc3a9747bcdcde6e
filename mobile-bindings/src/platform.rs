//! What differs per platform, behind small seams chosen by target (issue 14): timers and the
//! notice stream's socket. Everything above them (sessions, outbox, inbox, sync,
//! introductions, escalation) is one body of code for phones and the browser. Native: tokio
//! timers and tokio-tungstenite over rustls with the webpki roots. The browser's
//! implementations (host timers, the browser's WebSocket) sit beside these under
//! `cfg(target_arch = "wasm32")`.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

/// One frame read from the notice stream.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A notice (JSON text).
    Text(String),
    /// A ping, pong or binary frame: proof of life, nothing to act on.
    Other,
    /// The server closed the stream, or it broke.
    Closed,
}

/// Why the stream did not open.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The upgrade was answered with this HTTP status.
    Status(u16),
    /// The URL or token could not form a request.
    BadRequest(String),
    /// Transport trouble (DNS, TCP, TLS, timeout).
    Network(String),
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use futures_util::StreamExt;
    pub(crate) use tokio::time::{Instant, sleep, sleep_until, timeout};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::{self, Message};
    use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

    use super::{ConnectError, Frame};

    fn tls_config() -> Result<Arc<rustls::ClientConfig>, ConnectError> {
        static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
        if let Some(c) = CONFIG.get() {
            return Ok(c.clone());
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Network(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
    }

    /// The notice stream: a WebSocket with the bearer token in the upgrade's header.
    pub(crate) struct Socket(WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>);

    impl Socket {
        pub(crate) async fn connect(
            url: &str,
            token: &str,
            max_bytes: usize,
            within: Duration,
        ) -> Result<Socket, ConnectError> {
            let mut req = url
                .into_client_request()
                .map_err(|e| ConnectError::BadRequest(format!("stream URL: {e}")))?;
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().map_err(|_| {
                    ConnectError::BadRequest("the access token is not a valid header".into())
                })?,
            );
            let config = WebSocketConfig::default()
                .max_message_size(Some(max_bytes))
                .max_frame_size(Some(max_bytes));
            let connect = tokio_tungstenite::connect_async_tls_with_config(
                req,
                Some(config),
                false,
                Some(Connector::Rustls(tls_config()?)),
            );
            match timeout(within, connect).await {
                Err(_) => Err(ConnectError::Network(
                    "the stream did not connect in time".into(),
                )),
                Ok(Ok((ws, _))) => Ok(Socket(ws)),
                Ok(Err(tungstenite::Error::Http(resp))) => {
                    Err(ConnectError::Status(resp.status().as_u16()))
                }
                Ok(Err(e)) => Err(ConnectError::Network(e.to_string())),
            }
        }

        /// The next frame (pings are answered by the library while reading).
        pub(crate) async fn next(&mut self) -> Frame {
            match self.0.next().await {
                Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Frame::Closed,
                Some(Ok(_)) => Frame::Other,
            }
        }

        pub(crate) async fn close(&mut self) {
            let _ = timeout(Duration::from_secs(2), self.0.close(None)).await;
        }
    }
}
