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
    /// The upgrade was answered with this HTTP status (a browser never tells).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
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

#[cfg(target_arch = "wasm32")]
pub(crate) use browser::*;

#[cfg(target_arch = "wasm32")]
pub(crate) mod browser {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_channel::{mpsc, oneshot};
    use futures_util::StreamExt;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    pub(crate) use wasmtimer::std::Instant;
    pub(crate) use wasmtimer::tokio::{sleep, sleep_until, timeout};
    use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

    use super::{ConnectError, Frame};

    /// The browser's write-ahead rule: the store's committed writes live in memory until
    /// the web layer writes them to IndexedDB, so before any request leaves the device the
    /// SDK awaits this hook, which resolves once every committed write is on disk. A page
    /// killed at any moment therefore never leaves the server holding a message, ack or
    /// commit whose ratchet step the device forgot (a reused message key, a lost epoch, an
    /// acknowledged message the device never stored). Natively SQLite commits are durable
    /// before the next line runs, so there is no such hook.
    #[derive(Clone)]
    pub struct BeforeSend(
        #[allow(clippy::type_complexity)]
        pub  Rc<
            dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>,
        >,
    );

    impl std::fmt::Debug for BeforeSend {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("BeforeSend")
        }
    }

    /// A browser cannot set headers on a WebSocket: the token travels as the second of two
    /// subprotocols (`peerbridge.bearer`, then the token), which the server accepts in place
    /// of the header and answers with `peerbridge.bearer` alone.
    pub(crate) const BEARER_PROTOCOL: &str = "peerbridge.bearer";

    /// The notice stream over the browser's WebSocket; its events feed a channel.
    pub(crate) struct Socket {
        ws: WebSocket,
        frames: mpsc::UnboundedReceiver<Frame>,
        _handlers: Handlers,
    }

    struct Handlers {
        _open: Closure<dyn FnMut(Event)>,
        _message: Closure<dyn FnMut(MessageEvent)>,
        _close: Closure<dyn FnMut(CloseEvent)>,
        _error: Closure<dyn FnMut(Event)>,
    }

    impl Socket {
        pub(crate) async fn connect(
            url: &str,
            token: &str,
            max_bytes: usize,
            within: Duration,
        ) -> Result<Socket, ConnectError> {
            let protocols = js_sys::Array::of2(&BEARER_PROTOCOL.into(), &token.into());
            let ws = WebSocket::new_with_str_sequence(url, &protocols)
                .map_err(|_| ConnectError::BadRequest("the stream URL is not valid".into()))?;
            let (tx, frames) = mpsc::unbounded::<Frame>();
            let (opened_tx, opened) = oneshot::channel::<bool>();
            let opened_tx = Rc::new(RefCell::new(Some(opened_tx)));
            let settle = {
                let opened_tx = opened_tx.clone();
                move |ok: bool| {
                    if let Some(t) = opened_tx.borrow_mut().take() {
                        let _ = t.send(ok);
                    }
                }
            };
            let on_open = {
                let settle = settle.clone();
                Closure::<dyn FnMut(Event)>::new(move |_| settle(true))
            };
            let on_message = {
                let tx = tx.clone();
                Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                    let frame = match e.data().as_string() {
                        Some(text) if text.len() <= max_bytes => Frame::Text(text),
                        Some(_) => Frame::Closed,
                        None => Frame::Other,
                    };
                    let _ = tx.unbounded_send(frame);
                })
            };
            let on_close = {
                let tx = tx.clone();
                let settle = settle.clone();
                Closure::<dyn FnMut(CloseEvent)>::new(move |_| {
                    settle(false);
                    let _ = tx.unbounded_send(Frame::Closed);
                })
            };
            let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
                settle(false);
                let _ = tx.unbounded_send(Frame::Closed);
            });
            ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            let socket = Socket {
                ws,
                frames,
                _handlers: Handlers {
                    _open: on_open,
                    _message: on_message,
                    _close: on_close,
                    _error: on_error,
                },
            };
            match timeout(within, opened).await {
                Ok(Ok(true)) => Ok(socket),
                // A browser does not reveal why an upgrade failed (a refused token and a
                // network error look alike): the SDK polls over HTTP, which does tell.
                Ok(_) => Err(ConnectError::Network("the stream did not open".into())),
                Err(_) => Err(ConnectError::Network(
                    "the stream did not connect in time".into(),
                )),
            }
        }

        pub(crate) async fn next(&mut self) -> Frame {
            self.frames.next().await.unwrap_or(Frame::Closed)
        }

        pub(crate) async fn close(&mut self) {
            let _ = self.ws.close();
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            self.ws.set_onopen(None);
            self.ws.set_onmessage(None);
            self.ws.set_onclose(None);
            self.ws.set_onerror(None);
            let _ = self.ws.close();
        }
    }
}
