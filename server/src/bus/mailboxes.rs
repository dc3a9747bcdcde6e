//! Per-device routing on this replica: each open stream registers a [`Mailbox`] under its
//! device id, and a bus message addressed to a device wakes only that device's sockets. An
//! idle socket costs a map entry and a small queue; nothing wakes it but its own notices, a
//! revocation, or a resync after the bus came back. The map is also this replica's
//! presence: which devices have a live stream here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

/// Notices queued for one socket before it is told to resync instead (a socket this far
/// behind reads from its cursor anyway).
const QUEUE: usize = 64;
/// The map is split so registrations and deliveries on different devices rarely contend.
const SHARDS: usize = 32;

/// What a stream's socket loop receives.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Arc<str>>>,
    lagged: AtomicBool,
    revoked: AtomicBool,
    notify: Notify,
}

/// What a socket should do next, in order: close, resync, or send these notices.
pub enum Delivery {
    Revoked,
    Resync,
    Notices(Vec<Arc<str>>),
}

impl Mailbox {
    /// Waits until something is there, then takes all of it. A revocation wins over
    /// anything queued; a lag drops the queue for one resync.
    pub async fn next(&self) -> Delivery {
        loop {
            if let Some(d) = self.take() {
                return d;
            }
            self.notify.notified().await;
        }
    }

    fn take(&self) -> Option<Delivery> {
        if self.revoked.load(Ordering::SeqCst) {
            return Some(Delivery::Revoked);
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if self.lagged.swap(false, Ordering::SeqCst) {
            q.clear();
            return Some(Delivery::Resync);
        }
        (!q.is_empty()).then(|| Delivery::Notices(q.drain(..).collect()))
    }

    fn push(&self, notice: &Arc<str>) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= QUEUE {
                self.lagged.store(true, Ordering::SeqCst);
            } else {
                q.push_back(notice.clone());
            }
        }
        self.notify.notify_one();
    }

    fn resync(&self) {
        self.lagged.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

type Shard = Mutex<HashMap<Uuid, Vec<Arc<Mailbox>>>>;

/// The devices with a live stream on this replica and their mailboxes.
pub struct Mailboxes {
    shards: Vec<Shard>,
}

impl Default for Mailboxes {
    fn default() -> Self {
        Mailboxes {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Mailboxes {
    fn shard(&self, device: &Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Arc<Mailbox>>>> {
        let i = (device.as_u128() % SHARDS as u128) as usize;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket of `device`; it stays registered until the returned guard drops.
    pub fn register(self: &Arc<Self>, device: Uuid) -> Registration {
        let mailbox = Arc::new(Mailbox::default());
        self.shard(&device)
            .entry(device)
            .or_default()
            .push(mailbox.clone());
        Registration {
            owner: self.clone(),
            device,
            mailbox,
        }
    }

    /// Queues `notice` for every socket of `device` on this replica.
    pub fn notice(&self, device: &Uuid, notice: &Arc<str>) {
        if let Some(boxes) = self.shard(device).get(device) {
            for b in boxes {
                b.push(notice);
            }
        }
    }

    /// Closes every socket of `device` on this replica.
    pub fn revoke(&self, device: &Uuid) {
        if let Some(boxes) = self.shard(device).get(device) {
            for b in boxes {
                b.revoke();
            }
        }
    }

    /// Tells every socket on this replica to read from its cursors.
    pub fn resync_all(&self) {
        for shard in &self.shards {
            for boxes in shard.lock().unwrap_or_else(|e| e.into_inner()).values() {
                for b in boxes {
                    b.resync();
                }
            }
        }
    }

    /// The devices with at least one live stream here.
    pub fn devices(&self) -> Vec<Uuid> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .copied(),
            );
        }
        out
    }

    /// Whether `device` has a live stream here.
    pub fn is_connected(&self, device: &Uuid) -> bool {
        self.shard(device).contains_key(device)
    }

    /// Live streams on this replica.
    pub fn sockets(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// A socket's registration; dropping it unregisters the socket.
pub struct Registration {
    owner: Arc<Mailboxes>,
    device: Uuid,
    mailbox: Arc<Mailbox>,
}

impl Registration {
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Whether this was the device's last socket here (checked after this one is gone).
    fn unregister(&self) -> bool {
        let mut shard = self.owner.shard(&self.device);
        let Some(boxes) = shard.get_mut(&self.device) else {
            return true;
        };
        boxes.retain(|b| !Arc::ptr_eq(b, &self.mailbox));
        if boxes.is_empty() {
            shard.remove(&self.device);
            true
        } else {
            false
        }
    }

    /// Unregisters now and says whether the device has no other stream here.
    pub fn close(self) -> bool {
        let last = self.unregister();
        std::mem::forget(self);
        last
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[tokio::test]
    async fn a_notice_reaches_only_its_device_and_a_revocation_wins() {
        let m = Arc::new(Mailboxes::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ra = m.register(a);
        let rb = m.register(b);
        m.notice(&a, &notice("n1"));
        m.notice(&a, &notice("n2"));
        match ra.mailbox().next().await {
            Delivery::Notices(n) => assert_eq!(n, vec![notice("n1"), notice("n2")]),
            _ => panic!("expected notices"),
        }
        assert!(rb.mailbox().take().is_none(), "b heard a's notice");
        m.notice(&b, &notice("n3"));
        m.revoke(&b);
        assert!(matches!(rb.mailbox().next().await, Delivery::Revoked));
        assert_eq!(m.sockets(), 2);
        drop(ra);
        assert!(!m.is_connected(&a));
        assert!(rb.close());
        assert_eq!(m.sockets(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_becomes_one_resync() {
        let m = Arc::new(Mailboxes::default());
        let d = Uuid::new_v4();
        let r = m.register(d);
        for i in 0..(QUEUE + 5) {
            m.notice(&d, &notice(&i.to_string()));
        }
        assert!(matches!(r.mailbox().next().await, Delivery::Resync));
        assert!(r.mailbox().take().is_none());
        m.resync_all();
        assert!(matches!(r.mailbox().next().await, Delivery::Resync));
    }

    #[tokio::test]
    async fn two_sockets_of_one_device_both_hear_it_and_the_last_close_says_so() {
        let m = Arc::new(Mailboxes::default());
        let d = Uuid::new_v4();
        let (r1, r2) = (m.register(d), m.register(d));
        m.notice(&d, &notice("x"));
        assert!(matches!(r1.mailbox().next().await, Delivery::Notices(_)));
        assert!(matches!(r2.mailbox().next().await, Delivery::Notices(_)));
        assert!(!r1.close());
        assert!(m.is_connected(&d));
        assert!(r2.close());
        assert!(!m.is_connected(&d));
    }
}
