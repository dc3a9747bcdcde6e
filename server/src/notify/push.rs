//! Content-free wake-ups for offline devices, to the endpoint the device registered: for a
//! plain URL (UnifiedPush style) an HTTP POST of a constant body; for a browser's Web Push
//! subscription (a URL with `p256dh` and `auth` keys) an RFC 8291 encrypted body saying
//! only which kind of wake-up it is, with a VAPID authorization (`webpush`). No sender, no
//! content, no group id leaves the server this way. Only gateways the operator allows are
//! ever contacted; sends run in the background with a timeout, bounded retries and bounded
//! concurrency, so a slow gateway never delays delivery.
//!
//! A flag's wake-up is never swallowed: debouncing is per (device, kind), so a message
//! wake-up just before never suppresses it, and it goes out even to a device whose stream
//! was seen recently (a half-dead socket must not hide an escalation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::webpush::{self, SubscriptionKeys, Vapid, b64_decode};
use crate::accounts::entities::device;
use crate::clock::SharedClock;

/// The whole payload of every UnifiedPush wake-up.
pub const WAKE_BODY: &str = r#"{"type":"wake"}"#;

/// What a wake-up is for. It decides the Web Push payload, urgency and topic, and it keys
/// the debounce, so one kind never suppresses the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WakeKind {
    /// New log entries, welcomes, introductions, debriefs: read when convenient.
    Message,
    /// A flag was raised, escalated or reassigned: someone has to act.
    Flag,
}

impl WakeKind {
    /// The Web Push plaintext: the kind and nothing else.
    pub fn payload(self) -> &'static str {
        match self {
            WakeKind::Message => r#"{"type":"wake","kind":"message"}"#,
            WakeKind::Flag => r#"{"type":"wake","kind":"flag"}"#,
        }
    }

    /// RFC 8030 §5.3 `Urgency`.
    fn urgency(self) -> &'static str {
        match self {
            WakeKind::Message => "normal",
            WakeKind::Flag => "high",
        }
    }

    /// RFC 8030 §5.4 `Topic`: a newer wake-up replaces an undelivered one of the same
    /// topic only, so a flag never collapses into (or is replaced by) a message wake-up.
    fn topic(self) -> &'static str {
        match self {
            WakeKind::Message => "pb-wake-message",
            WakeKind::Flag => "pb-wake-flag",
        }
    }

    /// RFC 8030 §5.2 `TTL` in seconds.
    fn ttl(self) -> u32 {
        match self {
            WakeKind::Message => 3600,
            WakeKind::Flag => 24 * 3600,
        }
    }
}
/// A device whose stream showed life this recently is online and needs no wake-up.
const ONLINE_WINDOW_SECS: i64 = 45;
/// At most one wake-up per device in this interval (per replica).
const DEBOUNCE: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;

/// One allowed gateway: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    scheme: String,
    host: String,
    port: u16,
}

impl Gateway {
    /// Parses an allow-list entry: `host` (HTTPS, port 443), `host:port` (HTTPS on that
    /// port) or `http(s)://host[:port]`.
    pub fn parse(entry: &str) -> Option<Gateway> {
        let entry = entry.trim().to_lowercase();
        let url = if entry.contains("://") {
            entry
        } else {
            format!("https://{entry}")
        };
        let u = reqwest::Url::parse(&url).ok()?;
        if u.path() != "/" || u.query().is_some() || !u.username().is_empty() {
            return None;
        }
        Gateway::of_url(&u)
    }

    fn of_url(u: &reqwest::Url) -> Option<Gateway> {
        if !matches!(u.scheme(), "http" | "https") {
            return None;
        }
        Some(Gateway {
            scheme: u.scheme().to_owned(),
            host: u.host_str()?.to_lowercase(),
            port: u.port_or_known_default()?,
        })
    }
}

pub struct Pusher {
    http: reqwest::Client,
    db: DatabaseConnection,
    clock: SharedClock,
    allowed: Vec<Gateway>,
    /// The VAPID identity; without it Web Push subscriptions are refused and not woken.
    vapid: Option<Vapid>,
    slots: Arc<Semaphore>,
    recent: Mutex<HashMap<(Uuid, WakeKind), Instant>>,
}

impl Pusher {
    pub fn new(
        db: DatabaseConnection,
        clock: SharedClock,
        allowed: Vec<String>,
        vapid: Option<Vapid>,
    ) -> Pusher {
        Pusher {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            db,
            clock,
            allowed: allowed.iter().filter_map(|a| Gateway::parse(a)).collect(),
            vapid,
            slots: Arc::new(Semaphore::new(32)),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `url` points at an allowed gateway: the scheme, host and port an allow-list
    /// entry names (HTTPS and its default port unless the entry says otherwise), and no
    /// credentials in the URL.
    pub fn is_allowed(&self, url: &str) -> bool {
        let Some(target) = reqwest::Url::parse(url)
            .ok()
            .filter(|u| u.username().is_empty() && u.password().is_none())
            .and_then(|u| Gateway::of_url(&u))
        else {
            return false;
        };
        self.allowed.contains(&target)
    }

    /// The VAPID public key browsers subscribe with, when Web Push is configured.
    pub fn vapid_public_key(&self) -> Option<&str> {
        self.vapid.as_ref().map(Vapid::public_key_b64)
    }

    /// Wakes those of `devices` that have an endpoint: for a message only those without a
    /// live stream, for a flag every one. Returns at once.
    pub fn wake(self: &Arc<Self>, devices: Vec<Uuid>, kind: WakeKind) {
        if self.allowed.is_empty() || devices.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let cutoff = me.clock.now() - chrono::Duration::seconds(ONLINE_WINDOW_SECS);
            let Ok(rows) = device::Entity::find()
                .filter(device::Column::Id.is_in(devices))
                .filter(device::Column::PushUrl.is_not_null())
                .filter(device::Column::RevokedAt.is_null())
                .all(&me.db)
                .await
            else {
                return;
            };
            for d in rows {
                let online = d.stream_seen_at.is_some_and(|t| t > cutoff);
                if (kind == WakeKind::Message && online) || !me.debounce(d.id, kind) {
                    continue;
                }
                let device = d.id;
                let Some(request) = me.request_for(d, kind) else {
                    continue;
                };
                let permit = match kind {
                    // A flag waits for a free slot rather than be dropped.
                    WakeKind::Flag => me.slots.clone().acquire_owned().await.ok(),
                    WakeKind::Message => me.slots.clone().try_acquire_owned().ok(),
                };
                let Some(permit) = permit else {
                    // Saturated: the device still catches up at its next poll or reconnect
                    // (and a flag's owed wake-up is redelivered).
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let started = me.clock.now();
                    for attempt in 0..ATTEMPTS {
                        if me.send(&request).await {
                            if kind == WakeKind::Flag {
                                let _ = super::wakeups::paid(&me.db, device, started).await;
                            }
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(500 * 3u64.pow(attempt))).await;
                    }
                    tracing::warn!("push: wake-up failed after retries");
                });
            }
        });
    }

    /// Sends the flag wake-ups still owed when due (see `wakeups`); every replica calls this
    /// at the ladder's interval. Nothing happens without push gateways configured.
    pub async fn redeliver(self: &Arc<Self>) {
        if self.allowed.is_empty() {
            return;
        }
        let now = self.clock.now();
        let Ok(due) = super::wakeups::claim_due(&self.db, now).await else {
            return;
        };
        for w in due {
            let request = device::Entity::find_by_id(w.device_id)
                .filter(device::Column::RevokedAt.is_null())
                .one(&self.db)
                .await
                .ok()
                .flatten()
                .and_then(|d| self.request_for(d, WakeKind::Flag));
            let Some(request) = request else {
                // The device is gone or has no usable endpoint: nothing left to owe it.
                let _ = super::wakeups::drop_row(&self.db, w.id).await;
                continue;
            };
            if self.send(&request).await {
                let _ = super::wakeups::paid(&self.db, w.device_id, now).await;
                tracing::info!(
                    attempts = w.attempts,
                    "push: an owed flag wake-up was delivered"
                );
            } else if w.attempts >= super::wakeups::GIVE_UP_AFTER {
                let _ = super::wakeups::drop_row(&self.db, w.id).await;
                tracing::error!(
                    attempts = w.attempts,
                    "push: an owed flag wake-up was given up"
                );
            }
        }
    }

    /// The request that wakes this device, if it has a usable, allowed endpoint.
    fn request_for(&self, d: device::Model, kind: WakeKind) -> Option<Wake> {
        let url = d.push_url.filter(|u| self.is_allowed(u))?;
        match (d.push_p256dh, d.push_auth) {
            (Some(p256dh), Some(auth)) => self.web_push(&url, &p256dh, &auth, kind),
            _ => Some(Wake {
                url,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("ttl", "3600".into()),
                ],
                body: WAKE_BODY.as_bytes().to_vec(),
            }),
        }
    }

    /// One attempt; `true` when the push service accepted it.
    async fn send(&self, request: &Wake) -> bool {
        let mut rb = self.http.post(&request.url).body(request.body.clone());
        for (name, value) in &request.headers {
            rb = rb.header(*name, value);
        }
        rb.send().await.is_ok_and(|r| r.status().is_success())
    }

    /// The encrypted, VAPID-signed request for a Web Push subscription; `None` (logged
    /// without the endpoint) when Web Push is off or the stored keys are unusable.
    fn web_push(&self, url: &str, p256dh: &str, auth: &str, kind: WakeKind) -> Option<Wake> {
        let vapid = self.vapid.as_ref()?;
        let endpoint = reqwest::Url::parse(url).ok()?;
        let keys = match (b64_decode(p256dh), b64_decode(auth)) {
            (Some(p), Some(a)) => SubscriptionKeys::new(&p, &a).ok(),
            _ => None,
        };
        let built = keys
            .ok_or(webpush::WebPushError::BadPublicKey)
            .and_then(|k| webpush::encrypt(&k, kind.payload().as_bytes()))
            .and_then(|body| Ok((body, vapid.authorization(&endpoint, self.clock.now())?)));
        let (body, authorization) = match built {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "push: web push wake-up not built");
                return None;
            }
        };
        Some(Wake {
            url: url.to_owned(),
            headers: vec![
                ("content-type", "application/octet-stream".into()),
                ("content-encoding", "aes128gcm".into()),
                ("ttl", kind.ttl().to_string()),
                ("urgency", kind.urgency().into()),
                ("topic", kind.topic().into()),
                ("authorization", authorization),
            ],
            body,
        })
    }

    fn debounce(&self, device: Uuid, kind: WakeKind) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        recent.retain(|_, t| now.duration_since(*t) < DEBOUNCE);
        if recent.contains_key(&(device, kind)) {
            return false;
        }
        recent.insert((device, kind), now);
        true
    }
}

/// One wake-up request, ready to send (and to resend unchanged).
struct Wake {
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_topic_and_a_content_free_payload() {
        assert_ne!(WakeKind::Message.topic(), WakeKind::Flag.topic());
        for k in [WakeKind::Message, WakeKind::Flag] {
            // RFC 8030 §5.4: at most 32 characters of the base64url alphabet.
            let t = k.topic();
            assert!(t.len() <= 32);
            assert!(
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
            let p: serde_json::Value = serde_json::from_str(k.payload()).expect("json");
            assert_eq!(p.as_object().map(|o| o.len()), Some(2));
            assert_eq!(p["type"], "wake");
        }
        assert_eq!(WakeKind::Flag.urgency(), "high");
        assert_eq!(WakeKind::Message.urgency(), "normal");
    }
}
