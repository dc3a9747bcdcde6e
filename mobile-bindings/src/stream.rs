//! Receiving: the device's WebSocket (`GET /v1/stream`, bearer token in the header) wakes the
//! SDK, which then reads the log over HTTP from its cursor, unless the notice carried the
//! very next entry (a small message), which is taken as read from the log. When
//! the socket is down the SDK polls instead and reconnects with capped, jittered exponential
//! backoff. `hello` (every connect) and `resync` (the server dropped notices) trigger a full
//! sync and a flag catch-up (`flag_catch_up`), so a reconnect never misses anything: the database, not the socket, is the truth.

use std::time::Duration;

use peerbridge_openapi::delivery::Notice;
use rand::Rng;

use crate::client::PeerbridgeClient;
use crate::error::{Result, SdkError};
use crate::events::{ConnectionState, Event};
use crate::platform::{ConnectError, Frame, Instant, Socket, sleep_until, timeout};

type Ws = Socket;

/// Notices are tiny; anything bigger is not from a Peerbridge server.
const MAX_NOTICE_BYTES: usize = 64 * 1024;
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The receive loop's connection state (held only by the one running receive call).
#[derive(Default)]
pub(crate) struct Receiver {
    ws: Option<Ws>,
    /// Consecutive failed or dropped connections (drives the backoff).
    failures: u32,
    next_connect: Option<Instant>,
    last_poll: Option<Instant>,
    /// The connection state the app was last told.
    reported: Option<ConnectionState>,
}

impl Receiver {
    /// A [`Event::ConnectionChanged`] if `now` differs from what the app was last told.
    fn report(&mut self, now: ConnectionState) -> Option<Event> {
        (self.reported != Some(now)).then(|| {
            self.reported = Some(now);
            Event::ConnectionChanged { state: now }
        })
    }
}

/// Errors the receive loop cannot work around; everything else means "try again later".
fn fatal(e: &SdkError) -> bool {
    matches!(
        e,
        SdkError::Unauthenticated(_) | SdkError::WrongStorageKey | SdkError::Storage(_)
    )
}

impl PeerbridgeClient {
    fn stream_url(&self) -> String {
        let base = self.api.base();
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        };
        format!("{ws}/v1/stream")
    }

    async fn ws_connect(&self, token: &str) -> Result<Ws> {
        Socket::connect(
            &self.stream_url(),
            token,
            MAX_NOTICE_BYTES,
            self.options.request_timeout,
        )
        .await
        .map_err(|e| match e {
            ConnectError::Status(401) => {
                SdkError::Unauthenticated("the stream refused the token".into())
            }
            ConnectError::Status(403) => {
                SdkError::Forbidden("the stream refused this device".into())
            }
            ConnectError::Status(s) => {
                SdkError::Network(format!("stream upgrade answered HTTP {s}"))
            }
            ConnectError::BadRequest(m) => SdkError::InvalidInput(m),
            ConnectError::Network(m) => SdkError::Network(m),
        })
    }

    /// Connects with a current token; on 401 refreshes once and tries again.
    async fn connect_stream(&self) -> Result<Ws> {
        let token = self.access_token().await?;
        match self.ws_connect(&token).await {
            Err(SdkError::Unauthenticated(_)) => {
                let token = self.refresh_after(&token).await?;
                self.ws_connect(&token).await
            }
            other => other,
        }
    }

    fn reconnect_delay(&self, failures: u32) -> Duration {
        let exp = FIRST_RECONNECT_DELAY.saturating_mul(1u32 << failures.saturating_sub(1).min(10));
        let capped = exp.min(self.options.max_reconnect_backoff);
        // ±25 % jitter so a fleet of phones does not reconnect in lockstep after a restart.
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        Duration::try_from_secs_f64(capped.as_secs_f64() * jitter).unwrap_or(capped)
    }

    /// Waits until something happens and returns the new events (never an empty batch).
    /// Uses the WebSocket while it is up, polls every [`crate::SdkOptions::poll_interval`]
    /// while it is down, and reconnects with backoff. Returns an error only for what needs
    /// the app (the session is gone, the storage fails); network trouble is handled inside.
    /// Cancel-safe: events not yet returned stay in the durable inbox.
    pub async fn next_events(&self) -> Result<Vec<Event>> {
        let mut rx = self.receiver.lock().await;
        loop {
            let ready = self.drain_all().await?;
            if !ready.is_empty() {
                return Ok(ready);
            }
            let now = Instant::now();
            if rx.ws.is_none() && rx.next_connect.is_none_or(|t| now >= t) {
                match self.connect_stream().await {
                    Ok(ws) => {
                        tracing::debug!("stream connected");
                        rx.ws = Some(ws);
                        rx.failures = 0;
                        rx.next_connect = None;
                        if let Some(e) = rx.report(ConnectionState::Connected) {
                            return Ok(vec![e]);
                        }
                    }
                    Err(e) if fatal(&e) => return Err(e),
                    Err(e) => {
                        tracing::debug!(code = e.code(), "stream unavailable; polling");
                        rx.failures += 1;
                        rx.next_connect = now.checked_add(self.reconnect_delay(rx.failures));
                        if let Some(e) = rx.report(ConnectionState::Reconnecting) {
                            return Ok(vec![e]);
                        }
                    }
                }
            }
            let events = match rx.ws.as_mut() {
                Some(ws) => match timeout(self.options.stream_silence_timeout, ws.next()).await {
                    Ok(Frame::Text(text)) => self.on_notice(&text).await?,
                    Ok(Frame::Closed) | Err(_) => {
                        tracing::debug!("stream dropped; polling until it reconnects");
                        rx.ws = None;
                        rx.failures += 1;
                        rx.next_connect =
                            Instant::now().checked_add(self.reconnect_delay(rx.failures));
                        let mut events = self.poll(&mut rx).await?;
                        events.extend(rx.report(ConnectionState::Reconnecting));
                        events
                    }
                    Ok(Frame::Other) => Vec::new(),
                },
                None => {
                    let due = rx.last_poll.map_or(now, |t| {
                        t.checked_add(self.options.poll_interval).unwrap_or(t)
                    });
                    if Instant::now() >= due {
                        self.poll(&mut rx).await?
                    } else {
                        let wake = rx.next_connect.map_or(due, |c| c.min(due));
                        sleep_until(wake).await;
                        Vec::new()
                    }
                }
            };
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }

    /// Closes the stream (the app goes to the background) and checkpoints the state file;
    /// the next [`Self::next_events`] reconnects. Cancel a running `next_events` first: this
    /// waits for the receive state it holds.
    pub async fn close_stream(&self) {
        let mut rx = self.receiver.lock().await;
        if let Some(mut ws) = rx.ws.take() {
            ws.close().await;
        }
        rx.reported = None;
        rx.failures = 0;
        rx.next_connect = None;
        if let Err(e) = self.checkpoint_state() {
            tracing::debug!(error = %e, "state checkpoint failed; every write is durable anyway");
        }
    }

    /// A full sync while the socket is down; transport trouble is left for the next round.
    async fn poll(&self, rx: &mut Receiver) -> Result<Vec<Event>> {
        rx.last_poll = Some(Instant::now());
        self.tolerant(self.sync_all().await)
    }

    fn tolerant(&self, r: Result<Vec<Event>>) -> Result<Vec<Event>> {
        match r {
            Ok(events) => Ok(events),
            Err(e) if fatal(&e) => Err(e),
            Err(e) => {
                tracing::debug!(code = e.code(), "sync failed; will retry");
                Ok(Vec::new())
            }
        }
    }

    async fn on_notice(&self, text: &str) -> Result<Vec<Event>> {
        if let Some(tap) = &self.api.tap {
            (tap.0)(text);
        }
        let Ok(n) = serde_json::from_str::<Notice>(text) else {
            // A newer server's notice type, or garbage: nothing to act on.
            tracing::debug!("ignoring a notice that does not parse");
            return Ok(Vec::new());
        };
        match n {
            Notice::Hello { .. } | Notice::Resync => {
                let mut events = self.tolerant(self.sync_all().await)?;
                // Flags raised or moved while this device was not listening.
                events.extend(self.tolerant(self.flag_catch_up().await)?);
                Ok(events)
            }
            Notice::Welcome { .. } => self.tolerant(self.accept_welcomes().await),
            Notice::Flag { flag_id, .. } => Ok(vec![Event::FlagChanged { flag: flag_id }]),
            Notice::Debrief { debrief_id } => Ok(vec![Event::DebriefChanged {
                debrief: debrief_id,
            }]),
            Notice::Introduction { introduction_id } => {
                self.tolerant(self.on_introduction_changed(introduction_id).await)
            }
            Notice::Message {
                conversation_id: conv,
                seq,
                entry,
            } => self.on_new_entry(conv, seq, entry.map(|e| *e)).await,
            Notice::Commit {
                conversation_id: conv,
                seq,
            } => self.on_new_entry(conv, seq, None).await,
        }
    }

    /// The conversation's log has grown to `seq`; `entry` is that entry when the notice
    /// carried it (taken as read from the log if it is the next one, see
    /// [`PeerbridgeClient::sync_with`]).
    async fn on_new_entry(
        &self,
        conv: uuid::Uuid,
        seq: u64,
        entry: Option<peerbridge_openapi::delivery::LogEntry>,
    ) -> Result<Vec<Event>> {
        match self.conv_state(conv)? {
            Some(st) if st.group_id_known() => {
                if seq <= st.cursor {
                    return Ok(Vec::new());
                }
                self.tolerant(self.sync_with(conv, entry.filter(|e| e.seq == seq)).await)
            }
            // A conversation this device has not joined yet: its welcome may be waiting.
            _ => self.tolerant(self.accept_welcomes().await),
        }
    }
}
