//! The replica's memory of what the database granted: after one read, a live device's
//! account facts (user, clinic, role, `tokens_not_before`), and which conversations a user
//! may see and which devices are their members, answer the next requests for a few seconds
//! without a read.
//!
//! What makes it safe:
//! - Every change that can take access away forgets *everything* here right after its
//!   commit, on this replica at once and on the others when the bus brings them the notice
//!   ([`crate::bus::Bus::auth_changed`]): a device revoked, an account deactivated, a role
//!   changed, a session ended, a supervision assignment made or ended, an introduction's
//!   state changed, a conversation's members changed. A resumed bus forgets too, since
//!   notices may have been missed while it was down.
//! - A read that raced such a change is not kept: [`AuthCache::epoch`] is taken before the
//!   database read and [`AuthCache::keep`] refuses the entry if anything was forgotten since.
//! - Only what the database said *allows* access is kept; a refusal is always read again.
//! - An entry lives at most [`TTL`], which bounds what no notice reaches (an admin command
//!   run from another process while Redis is down). A busy entry is read again by one
//!   request in its last [`REFRESH_AHEAD`], not by every request in flight when it expires.
//! - What moves with every message (a conversation's `last_seq`, a device's `acked_seq`) is
//!   never taken from here.
//!
//! The access token itself (signature, expiry) is still checked on every request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbridge_openapi::Role;
use uuid::Uuid;

use crate::delivery::entities::conversation;
use crate::introductions::entities::introduction;

/// How long an entry answers without a database read.
pub const TTL: Duration = Duration::from_secs(5);

/// In an entry's last this long, one request reads it again (see [`Kept::get`]).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(1);

/// Past this many entries a map is emptied rather than grown.
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

/// A conversation a user may see, with its introduction if it has one (its `last_seq` and
/// `epoch` are stale by design, and its group state blobs are dropped: read those from the
/// database).
pub type Visible = Arc<(conversation::Model, Option<introduction::Model>)>;

/// An active member device of a conversation, and the first entry it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub device_id: Uuid,
    pub joined_seq: i64,
}

/// A kept read.
struct Entry<V> {
    read_at: Instant,
    value: V,
    /// A caller has been sent to read it again (see [`Kept::get`]).
    renewing: bool,
}

/// One kind of entry, with its hit and miss counts.
pub struct Kept<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Kept {
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    /// The entry, if read less than [`TTL`] ago and not forgotten since. In an entry's last
    /// [`REFRESH_AHEAD`], one caller (the first to ask) is answered `None` so that it reads
    /// and keeps the entry again, while every other caller is still answered from it: a busy
    /// entry is renewed by one read instead of by every request in flight when it expires.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        let found = match self.lock().get_mut(key) {
            Some(e) => {
                let age = now.duration_since(e.read_at);
                if age >= TTL {
                    None
                } else if age >= TTL - REFRESH_AHEAD && !e.renewing {
                    e.renewing = true;
                    None
                } else {
                    Some(e.value.clone())
                }
            }
            None => None,
        };
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        // A panic while holding the lock cannot leave the map inconsistent (every write is a
        // single insert or clear), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct AuthCache {
    epoch: AtomicU64,
    /// By device.
    pub devices: Kept<Uuid, Cached>,
    /// By (conversation, user): the conversation is visible to the user.
    pub conversations: Kept<(Uuid, Uuid), Visible>,
    /// By conversation: its active member devices.
    pub members: Kept<Uuid, Arc<Vec<Member>>>,
}

impl AuthCache {
    /// The device's facts, if read less than [`TTL`] ago and not forgotten since.
    pub fn get(&self, device: Uuid) -> Option<Cached> {
        self.devices.get(&device)
    }

    /// Taken before a database read whose result may be kept with [`AuthCache::keep`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps what a read begun at `epoch` found, unless something was forgotten since (the
    /// read may have seen the state before that change).
    pub fn keep<K: Eq + Hash, V>(
        &self,
        kept: &Kept<K, V>,
        epoch: u64,
        key: K,
        value: V,
        read_at: Instant,
    ) {
        let mut entries = kept.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the map's lock: `forget_all` bumps the epoch before it clears each
        // map under its lock, so either this sees the new epoch or the clear follows.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                read_at,
                value,
                renewing: false,
            },
        );
    }

    /// The entry kept for `key` (see [`Kept::get`]), else what `read` finds, kept (if
    /// nothing was forgotten while it ran). A refusal (`Err`) is never kept.
    pub async fn read_through<K, V, E>(
        &self,
        kept: &Kept<K, V>,
        key: K,
        read: impl std::future::Future<Output = Result<V, E>>,
    ) -> Result<V, E>
    where
        K: Eq + Hash,
        V: Clone,
    {
        if let Some(v) = kept.get(&key) {
            return Ok(v);
        }
        let epoch = self.epoch();
        let read_at = Instant::now();
        let value = read.await?;
        self.keep(kept, epoch, key, value.clone(), read_at);
        Ok(value)
    }

    /// Forgets everything: the next request of each device is read from the database.
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.devices.lock().clear();
        self.conversations.lock().clear();
        self.members.lock().clear();
    }

    /// Device (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        self.devices.counts()
    }

    /// Conversation visibility and membership (hits, misses) since start.
    pub fn access_counts(&self) -> (u64, u64) {
        let (a, b) = self.conversations.counts();
        let (c, d) = self.members.counts();
        (a + c, b + d)
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
        cache.keep(&cache.devices, e, d, facts(), Instant::now());
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
        cache.keep(&cache.devices, e, d, facts(), Instant::now());
        assert_eq!(cache.get(d), None, "a read from before the change was kept");
        // Positive control: a read begun after the change is kept.
        let e = cache.epoch();
        cache.keep(&cache.devices, e, d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_read_again() {
        let cache = AuthCache::default();
        let d = Uuid::new_v4();
        let Some(old) = Instant::now().checked_sub(TTL + Duration::from_millis(1)) else {
            panic!("this machine has been up for less than the TTL");
        };
        cache.keep(&cache.devices, cache.epoch(), d, facts(), old);
        assert_eq!(cache.get(d), None);
        cache.keep(&cache.devices, cache.epoch(), d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
    }

    #[test]
    fn an_entry_about_to_expire_sends_one_caller_to_read_it_again_and_answers_the_rest() {
        let cache = AuthCache::default();
        let d = Uuid::new_v4();
        let Some(late) = Instant::now().checked_sub(TTL - REFRESH_AHEAD / 2) else {
            panic!("this machine has been up for less than the TTL");
        };
        cache.keep(&cache.devices, cache.epoch(), d, facts(), late);
        assert_eq!(cache.get(d), None, "the first caller reads it again");
        assert!(cache.get(d).is_some(), "the others are still answered");
        assert!(cache.get(d).is_some());
        // Its read kept afresh: answered, and nobody is sent to read until the end nears.
        cache.keep(&cache.devices, cache.epoch(), d, facts(), Instant::now());
        assert!(cache.get(d).is_some());
        assert_eq!(cache.counts(), (3, 1));
        // Positive control: a fresh entry's first caller is answered from it.
        let fresh = Uuid::new_v4();
        cache.keep(
            &cache.devices,
            cache.epoch(),
            fresh,
            facts(),
            Instant::now(),
        );
        assert!(cache.get(fresh).is_some());
    }

    #[tokio::test]
    async fn read_through_keeps_what_allows_and_never_a_refusal() {
        let cache = AuthCache::default();
        let conv = Uuid::new_v4();
        let refused: Result<Arc<Vec<Member>>, &str> = cache
            .read_through(&cache.members, conv, async { Err("not a member") })
            .await;
        assert!(refused.is_err());
        assert!(cache.members.get(&conv).is_none(), "a refusal was kept");
        let read = cache
            .read_through(&cache.members, conv, async {
                Ok::<_, &str>(Arc::new(Vec::new()))
            })
            .await;
        assert!(read.is_ok());
        // Answered from memory now: a failing read is never awaited.
        let again = cache
            .read_through(&cache.members, conv, async { Err("not read") })
            .await;
        assert!(again.is_ok());
    }

    #[test]
    fn forgetting_empties_the_access_maps_and_refuses_their_racing_reads() {
        let cache = AuthCache::default();
        let conv = Uuid::new_v4();
        let member = Member {
            device_id: Uuid::new_v4(),
            joined_seq: 0,
        };
        let e = cache.epoch();
        cache.keep(
            &cache.members,
            e,
            conv,
            Arc::new(vec![member]),
            Instant::now(),
        );
        assert_eq!(cache.members.get(&conv).map(|m| m.len()), Some(1));
        cache.forget_all();
        assert!(
            cache.members.get(&conv).is_none(),
            "a member list outlived a change"
        );
        // A read begun before the change is not kept.
        cache.keep(
            &cache.members,
            e,
            conv,
            Arc::new(vec![member]),
            Instant::now(),
        );
        assert!(cache.members.get(&conv).is_none());
        assert_eq!(cache.access_counts(), (1, 2));
    }
}
