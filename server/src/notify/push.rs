//! Content-free wake-ups for offline devices, UnifiedPush style: an HTTP POST of a constant
//! body to the endpoint the device registered. No sender, no content, no group id leaves
//! the server this way. Only gateways the operator allows are ever contacted; sends run in
//! the background with a timeout, bounded retries and bounded concurrency, so a slow
//! gateway never delays delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::accounts::entities::device;
use crate::clock::SharedClock;

/// The whole payload of every wake-up.
pub const WAKE_BODY: &str = r#"{"type":"wake"}"#;
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
    slots: Arc<Semaphore>,
    recent: Mutex<HashMap<Uuid, Instant>>,
}

impl Pusher {
    pub fn new(db: DatabaseConnection, clock: SharedClock, allowed: Vec<String>) -> Pusher {
        Pusher {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            db,
            clock,
            allowed: allowed.iter().filter_map(|a| Gateway::parse(a)).collect(),
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

    /// Wakes those of `devices` that have an endpoint and no live stream. Returns at once.
    pub fn wake(self: &Arc<Self>, devices: Vec<Uuid>) {
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
                if d.stream_seen_at.is_some_and(|t| t > cutoff) || !me.debounce(d.id) {
                    continue;
                }
                let Some(url) = d.push_url.filter(|u| me.is_allowed(u)) else {
                    continue;
                };
                let Ok(permit) = me.slots.clone().try_acquire_owned() else {
                    // Saturated: the device still catches up at its next poll or reconnect.
                    continue;
                };
                let http = me.http.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    for attempt in 0..ATTEMPTS {
                        let sent = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("ttl", "3600")
                            .body(WAKE_BODY)
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status().is_success()) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(500 * 3u64.pow(attempt))).await;
                    }
                    tracing::warn!("push: wake-up failed after retries");
                });
            }
        });
    }

    fn debounce(&self, device: Uuid) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        recent.retain(|_, t| now.duration_since(*t) < DEBOUNCE);
        if recent.contains_key(&device) {
            return false;
        }
        recent.insert(device, now);
        true
    }
}
