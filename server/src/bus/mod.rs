//! The bus wakes connected devices and dashboards up; it never carries the only copy of
//! anything (the database is the source of truth, so a lost bus message delays nothing
//! beyond the next poll). Embedded default: an in-process broadcast channel. With
//! `REDIS_URL`: Redis pub/sub, so a publish on any replica reaches subscribers on all of
//! them. A publish never waits for Redis: it is queued (bounded) for a background publisher
//! and the caller's answer goes out at once. When Redis is down, publishes still reach this
//! replica's subscribers, the bus reports itself degraded, the subscriber reconnects by
//! itself, and on every (re)subscription it tells this replica's subscribers to resync
//! ([`topics::BUS_RESUMED`]) so what other replicas published meanwhile is read at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

pub mod mailboxes;
use crate::auth::cache::AuthCache;
pub use mailboxes::{Delivery, Mailboxes, Registration};

/// Topic names. Payloads are ids, never content.
pub mod topics {
    /// A device was revoked: close its sockets (and forget cached authorisation). Payload:
    /// device id.
    pub const DEVICE_REVOKED: &str = "device.revoked";
    /// Something that can take access away changed (a role, an account's status, a session
    /// ended): every replica forgets its cached authorisation. Payload: the user or device id.
    pub const AUTH_CHANGED: &str = "auth.changed";
    /// Prefix of a device's own topic (`device.<id>`): new-message, commit and welcome
    /// notices for that device. Payload: JSON `{type, conversation_id, seq}`.
    pub const DEVICE_PREFIX: &str = "device.";
    /// Local only: the Redis subscription was (re)established; notices published on other
    /// replicas while it was down were missed, so every connected device should resync.
    pub const BUS_RESUMED: &str = "bus.resumed";
}

/// Publishes waiting for the background Redis publisher; past this a publish is delivered
/// locally only (and counted), never queued without bound.
const PUBLISH_QUEUE: usize = 8192;

/// Local fan-out capacity per subscriber; a subscriber that lags further is told
/// (`RecvError::Lagged`) and resynchronises from the database.
const LOCAL_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub topic: String,
    pub payload: Vec<u8>,
}

pub struct Bus {
    local: Local,
    redis: Option<RedisBus>,
}

/// Delivery on this replica: a device's notices and revocations go to that device's
/// sockets only ([`Mailboxes`]); a resumed bus resyncs every socket. The tap hears
/// everything (diagnostics and tests); with no one listening it costs nothing.
#[derive(Clone)]
struct Local {
    mailboxes: Arc<Mailboxes>,
    /// Forgotten on every revocation, access change and bus resumption (notices may have
    /// been missed while it was down).
    auth: Arc<AuthCache>,
    tap: broadcast::Sender<BusMessage>,
}

impl Local {
    fn new() -> Local {
        let (tap, _) = broadcast::channel(LOCAL_CAPACITY);
        Local {
            mailboxes: Arc::new(Mailboxes::default()),
            auth: Arc::new(AuthCache::default()),
            tap,
        }
    }

    fn send(&self, msg: BusMessage) {
        if forgets_auth(&msg.topic) {
            self.auth.forget_all();
        }
        if msg.topic == topics::BUS_RESUMED {
            self.mailboxes.resync_all();
        } else if msg.topic == topics::DEVICE_REVOKED {
            if let Some(d) = std::str::from_utf8(&msg.payload)
                .ok()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                self.mailboxes.revoke(&d);
            }
        } else if let Some(d) = msg
            .topic
            .strip_prefix(topics::DEVICE_PREFIX)
            .and_then(|s| Uuid::parse_str(s).ok())
            && let Ok(text) = std::str::from_utf8(&msg.payload)
        {
            self.mailboxes.notice(&d, &Arc::from(text));
        }
        if self.tap.receiver_count() > 0 {
            let _ = self.tap.send(msg);
        }
    }
}

/// Topics after which no cached authorisation may be trusted.
fn forgets_auth(topic: &str) -> bool {
    topic == topics::DEVICE_REVOKED || topic == topics::AUTH_CHANGED || topic == topics::BUS_RESUMED
}

struct RedisBus {
    queue: mpsc::Sender<BusMessage>,
    /// Publishes that went to this replica only (degraded or queue full); see
    /// [`Bus::local_only`].
    local_only: Arc<AtomicU64>,
    /// True while the subscriber is connected to Redis.
    subscribed: Arc<AtomicBool>,
    subscriber: tokio::task::AbortHandle,
    publisher: tokio::task::AbortHandle,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL")]
pub struct BusError(#[source] redis::RedisError);

impl Bus {
    /// The embedded in-process bus.
    pub fn in_process() -> Bus {
        Bus {
            local: Local::new(),
            redis: None,
        }
    }

    /// A Redis-backed bus. Does not wait for Redis: the subscriber connects in the
    /// background and keeps retrying, so a replica starts even while Redis is down.
    pub fn redis(url: &SecretString, prefix: &str) -> Result<Bus, BusError> {
        let client = redis::Client::open(url.expose_secret()).map_err(BusError)?;
        let local = Local::new();
        let subscribed = Arc::new(AtomicBool::new(false));
        let subscriber = tokio::spawn(subscriber_loop(
            client.clone(),
            format!("{prefix}:"),
            local.clone(),
            subscribed.clone(),
        ))
        .abort_handle();
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let publisher = tokio::spawn(publisher_loop(
            client,
            format!("{prefix}:"),
            rx,
            local.clone(),
        ))
        .abort_handle();
        Ok(Bus {
            local,
            redis: Some(RedisBus {
                queue,
                local_only: Arc::new(AtomicU64::new(0)),
                subscribed,
                subscriber,
                publisher,
            }),
        })
    }

    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "in_process"
        }
    }

    /// False when Redis is configured but unreachable. The subscriber connection is the
    /// witness: it drops when Redis goes away and comes back by itself when Redis does.
    pub fn is_healthy(&self) -> bool {
        match &self.redis {
            None => true,
            Some(r) => r.subscribed.load(Ordering::SeqCst),
        }
    }

    /// Subscribes to every message on this replica (a tap for diagnostics and tests;
    /// streams register a mailbox instead, see [`Bus::register`]).
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.local.tap.subscribe()
    }

    /// Registers a stream of `device` on this replica: its notices, its revocation and
    /// resyncs arrive in the registration's mailbox, and nothing else wakes it.
    pub fn register(&self, device: Uuid) -> Registration {
        self.local.mailboxes.register(device)
    }

    /// The streams open on this replica, by device.
    pub fn mailboxes(&self) -> &Arc<Mailboxes> {
        &self.local.mailboxes
    }

    /// This replica's cached authorisation ([`AuthCache`]).
    pub fn auth_cache(&self) -> &AuthCache {
        &self.local.auth
    }

    /// Tells every replica that access of `subject` (a user or device) may have been taken
    /// away: this replica forgets its cached authorisation before this returns, the others
    /// when the notice reaches them. Call it after the change commits.
    pub fn auth_changed(&self, subject: Uuid) {
        self.publish(topics::AUTH_CHANGED, subject.to_string().as_bytes());
    }

    /// Publishes to every replica. Never fails and never waits (it is not `async`): the
    /// database already holds the truth, so at worst subscribers learn of it at their next
    /// poll or at the resync that follows Redis' return. A revocation or access change is
    /// applied to this replica's authorisation cache at once, before the publish is queued.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let msg = BusMessage {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
        };
        let Some(r) = &self.redis else {
            self.local.send(msg);
            return;
        };
        // Redis echoes it back later; this replica must not wait for that.
        if forgets_auth(topic) {
            self.local.auth.forget_all();
        }
        if !r.subscribed.load(Ordering::SeqCst) {
            // Degraded: Redis would not echo it back to us; deliver to this replica directly
            // (other replicas' devices resync when the bus returns).
            r.local_only.fetch_add(1, Ordering::Relaxed);
            self.local.send(msg);
            return;
        }
        if let Err(e) = r.queue.try_send(msg) {
            let msg = match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            r.local_only.fetch_add(1, Ordering::Relaxed);
            self.local.send(msg);
        }
    }

    /// How many publishes reached only this replica (Redis down, or the publish queue full)
    /// since start; exported as `peerbridge_bus_publishes_local_only`.
    pub fn local_only(&self) -> u64 {
        self.redis
            .as_ref()
            .map_or(0, |r| r.local_only.load(Ordering::Relaxed))
    }

    /// Stops the background subscriber.
    pub fn shutdown(&self) {
        if let Some(r) = &self.redis {
            r.subscriber.abort();
            r.publisher.abort();
            r.subscribed.store(false, Ordering::SeqCst);
        }
    }
}

/// Sends queued publishes to Redis, one connection, reconnecting on failure. A publish
/// Redis did not take is delivered to this replica directly (Redis will not echo it).
async fn publisher_loop(
    client: redis::Client,
    prefix: String,
    mut rx: mpsc::Receiver<BusMessage>,
    local: Local,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    while let Some(msg) = rx.recv().await {
        // A connection that died with an earlier outage fails once: try again on a fresh
        // one before giving up on this message.
        let mut ok = false;
        for _ in 0..2 {
            if conn.is_none() {
                let connect = client.get_multiplexed_async_connection();
                if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                    conn = Some(c);
                }
            }
            let Some(c) = conn.as_mut() else { break };
            let res: Result<Result<i64, _>, _> = tokio::time::timeout(
                Duration::from_secs(2),
                redis::cmd("PUBLISH")
                    .arg(format!("{prefix}{}", msg.topic))
                    .arg(&msg.payload)
                    .query_async(c),
            )
            .await;
            ok = matches!(res, Ok(Ok(_)));
            if ok {
                break;
            }
            conn = None;
        }
        if !ok {
            local.send(msg);
        }
    }
}

async fn subscriber_loop(
    client: redis::Client,
    prefix: String,
    local: Local,
    subscribed: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{prefix}*")).await?;
            subscribed.store(true, Ordering::SeqCst);
            tracing::info!("bus: subscribed to Redis");
            // Whatever other replicas published while we were not subscribed was missed here.
            local.send(BusMessage {
                topic: topics::BUS_RESUMED.to_owned(),
                payload: Vec::new(),
            });
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let topic = msg
                    .get_channel_name()
                    .strip_prefix(&prefix)
                    .unwrap_or_default()
                    .to_owned();
                local.send(BusMessage {
                    topic,
                    payload: msg.get_payload_bytes().to_vec(),
                });
            }
            Ok::<(), redis::RedisError>(())
        };
        let res = session.await;
        if subscribed.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                error = ?res.err().map(|e| e.kind()),
                "bus: Redis subscription lost; degraded until it returns"
            );
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
