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

pub struct Pusher {
    http: reqwest::Client,
    db: DatabaseConnection,
    clock: SharedClock,
    allowed: Vec<String>,
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
            allowed,
            slots: Arc::new(Semaphore::new(32)),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `url` points at an allowed gateway (`host` or `host:port` in the allowlist).
    pub fn is_allowed(&self, url: &str) -> bool {
        let Ok(u) = reqwest::Url::parse(url) else {
            return false;
        };
        if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() {
            return false;
        }
        let Some(host) = u.host_str().map(str::to_lowercase) else {
            return false;
        };
        let with_port = u
            .port_or_known_default()
            .map(|p| format!("{host}:{p}"))
            .unwrap_or_else(|| host.clone());
        self.allowed.iter().any(|a| *a == host || *a == with_port)
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
