//! The bus wakes connected devices and dashboards up; it never carries the only copy of
//! anything (the database is the source of truth, so a lost bus message delays nothing
//! beyond the next poll). Embedded default: an in-process broadcast channel. With
//! `REDIS_URL`: Redis pub/sub, so a publish on any replica reaches subscribers on all of
//! them. When Redis is down, publishes still reach this replica's subscribers, the bus
//! reports itself degraded, and the subscriber reconnects by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, broadcast};

/// Topic names. Payloads are ids, never content.
pub mod topics {
    /// A device was revoked: close its sockets. Payload: device id.
    pub const DEVICE_REVOKED: &str = "device.revoked";
    /// Prefix of a device's own topic (`device.<id>`): new-message, commit and welcome
    /// notices for that device. Payload: JSON `{type, conversation_id, seq}`.
    pub const DEVICE_PREFIX: &str = "device.";
}

/// Local fan-out capacity per subscriber; a subscriber that lags further is told
/// (`RecvError::Lagged`) and resynchronises from the database.
const LOCAL_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub topic: String,
    pub payload: Vec<u8>,
}

pub struct Bus {
    local: broadcast::Sender<BusMessage>,
    redis: Option<RedisBus>,
}

struct RedisBus {
    client: redis::Client,
    prefix: String,
    publisher: Mutex<Option<redis::aio::ConnectionManager>>,
    /// True while the subscriber is connected to Redis.
    subscribed: Arc<AtomicBool>,
    subscriber: tokio::task::AbortHandle,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL")]
pub struct BusError(#[source] redis::RedisError);

impl Bus {
    /// The embedded in-process bus.
    pub fn in_process() -> Bus {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Bus { local, redis: None }
    }

    /// A Redis-backed bus. Does not wait for Redis: the subscriber connects in the
    /// background and keeps retrying, so a replica starts even while Redis is down.
    pub fn redis(url: &SecretString, prefix: &str) -> Result<Bus, BusError> {
        let client = redis::Client::open(url.expose_secret()).map_err(BusError)?;
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let subscribed = Arc::new(AtomicBool::new(false));
        let subscriber = tokio::spawn(subscriber_loop(
            client.clone(),
            format!("{prefix}:"),
            local.clone(),
            subscribed.clone(),
        ))
        .abort_handle();
        Ok(Bus {
            local,
            redis: Some(RedisBus {
                client,
                prefix: prefix.to_owned(),
                publisher: Mutex::new(None),
                subscribed,
                subscriber,
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

    /// Subscribes to every message on this replica.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.local.subscribe()
    }

    /// Publishes to every replica. Never fails the caller: the database already holds the
    /// truth, so at worst subscribers learn of it at their next poll.
    pub async fn publish(&self, topic: &str, payload: &[u8]) {
        let msg = BusMessage {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
        };
        let Some(r) = &self.redis else {
            let _ = self.local.send(msg);
            return;
        };
        let channel = format!("{}:{topic}", r.prefix);
        let ok = r.publish(&channel, payload).await;
        if !ok || !r.subscribed.load(Ordering::SeqCst) {
            // Redis will not echo it back to us: deliver to this replica directly.
            let _ = self.local.send(msg);
        }
    }

    /// Stops the background subscriber.
    pub fn shutdown(&self) {
        if let Some(r) = &self.redis {
            r.subscriber.abort();
            r.subscribed.store(false, Ordering::SeqCst);
        }
    }
}

impl RedisBus {
    async fn publish(&self, channel: &str, payload: &[u8]) -> bool {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            let connect = self.client.get_connection_manager();
            match tokio::time::timeout(Duration::from_secs(2), connect).await {
                Ok(Ok(c)) => *guard = Some(c),
                _ => return false,
            }
        }
        let Some(conn) = guard.as_mut() else {
            return false;
        };
        let res: Result<Result<i64, _>, _> = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(conn),
        )
        .await;
        match res {
            Ok(Ok(_)) => true,
            _ => {
                *guard = None;
                false
            }
        }
    }
}

async fn subscriber_loop(
    client: redis::Client,
    prefix: String,
    local: broadcast::Sender<BusMessage>,
    subscribed: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{prefix}*")).await?;
            subscribed.store(true, Ordering::SeqCst);
            tracing::info!("bus: subscribed to Redis");
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let topic = msg
                    .get_channel_name()
                    .strip_prefix(&prefix)
                    .unwrap_or_default()
                    .to_owned();
                let _ = local.send(BusMessage {
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
