//! The replica's memory of who a device is: after one database read, a live device's
//! account facts (user, clinic, role, `tokens_not_before`) answer its next requests for a few
//! seconds without a read.
//!
//! What makes it safe:
//! - Every change that can take access away (device revoked, account deactivated, role
//!   changed, a session ended) forgets *everything* here right after its commit, on this
//!   replica at once and on the others when the bus brings them the notice
//!   ([`crate::bus::Bus::auth_changed`]); a resumed bus forgets too, since notices may have been
//!   missed while it was down.
//! - A read that raced such a change is not kept: [`AuthCache::epoch`] is taken before the
//!   database read and [`AuthCache::keep`] refuses the entry if anything was forgotten since.
//! - Only what the database said *allows* access is kept; a refusal is always read again.
//! - An entry lives at most [`TTL`], which bounds what no notice reaches (an admin command
//!   run from another process while Redis is down).
//!
//! The access token itself (signature, expiry) is still checked on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peerbridge_openapi::Role;
use uuid::Uuid;

/// How long an entry answers without a database read.
pub const TTL: Duration = Duration::from_secs(5);

/// Past this many devices the map is emptied rather than grown (each entry is ~80 bytes).
const MAX_ENTRIES: usize = 100_000;

/// What the database said about a live device and its active account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub user_id: Uuid,
    pub clinic_id: Option<Uuid>,
    pub role: Role,
    /// Access tokens issued before this (ms since the epoch) are refused.
    pub tokens_not_before_ms: Option<i64>,
}

#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<Uuid, (Instant, Cached)>>,
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl AuthCache {
    /// The device's facts, if read less than [`TTL`] ago and not forgotten since.
    pub fn get(&self, device: Uuid) -> Option<Cached> {
        let now = Instant::now();
        let found = self
            .lock()
            .get(&device)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, c)| c.clone());
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Taken before a database read whose result may be kept with [`AuthCache::keep`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps what a read begun at `epoch` found, unless something was forgotten since (the
    /// read may have seen the state before that change).
    pub fn keep(&self, epoch: u64, device: Uuid, facts: Cached, read_at: Instant) {
        let mut entries = self.lock();
        // Checked under the lock: `forget_all` bumps the epoch and clears under it too.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(device, (read_at, facts));
    }

    /// Forgets every device: the next request of each is read from the database.
    pub fn forget_all(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Instant, Cached)>> {
        // A panic while holding the lock cannot leave the map inconsistent (every write is a
        // single insert or clear), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Cached {
        Cached {
            user_id: Uuid::new_v4(),
            clinic_id: None,
            role: Role::Peer,
            tokens_not_before_ms: None,
        }
    }

    #[test]
    fn a_kept_read_answers_until_forgotten() {
        let cache = AuthCache::default();
        let d = Uuid::new_v4();
        assert_eq!(cache.get(d), None);
        let e = cache.epoch();
        cache.keep(e, d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
        cache.forget_all();
        assert_eq!(cache.get(d), None);
        assert_eq!(cache.counts(), (1, 2));
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = AuthCache::default();
        let d = Uuid::new_v4();
        let e = cache.epoch();
        // The change commits and forgets while the read is in flight.
        cache.forget_all();
        cache.keep(e, d, facts(), Instant::now());
        assert_eq!(cache.get(d), None, "a read from before the change was kept");
        // Positive control: a read begun after the change is kept.
        let e = cache.epoch();
        cache.keep(e, d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_read_again() {
        let cache = AuthCache::default();
        let d = Uuid::new_v4();
        let Some(old) = Instant::now().checked_sub(TTL + Duration::from_millis(1)) else {
            panic!("this machine has been up for less than the TTL");
        };
        cache.keep(cache.epoch(), d, facts(), old);
        assert_eq!(cache.get(d), None);
        cache.keep(cache.epoch(), d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
    }
}
