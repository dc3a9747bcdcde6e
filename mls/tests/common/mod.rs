//! Test helpers: in-memory "devices" (a client on a temporary store) and shortcuts for the
//! scenarios, so each test reads as the conversation it checks. The tests stand in for the
//! delivery service by handing bytes from one client to another.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peerbridge_mls::{
    AllowIdentities, Client, ClientOptions, Clock, Envelope, Event, GroupId, MessageId, StoreKey,
};
use tempfile::TempDir;

pub struct Device {
    pub client: Client,
    pub path: PathBuf,
    pub key: StoreKey,
    pub options: ClientOptions,
    _dir: TempDir,
}

impl Device {
    pub fn new() -> Device {
        Device::with_options(ClientOptions::default())
    }

    pub fn with_options(options: ClientOptions) -> Device {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.db");
        let key = StoreKey::generate();
        let client = Client::open(&path, &key, options.clone()).expect("open store");
        Device {
            client,
            path,
            key,
            options,
            _dir: dir,
        }
    }

    /// Reopens the store from its file (an app restart). The new connection opens before the
    /// old client drops, which SQLite's WAL mode allows; nothing is carried over in memory.
    pub fn restart(&mut self) {
        self.client =
            Client::open(&self.path, &self.key, self.options.clone()).expect("reopen store");
    }

    /// The device's credential identity (its Ed25519 public key).
    pub fn id(&self) -> Vec<u8> {
        self.client.identity().public_key().to_vec()
    }

    pub fn key_package(&mut self) -> Vec<u8> {
        self.client
            .generate_key_packages(1)
            .expect("key package")
            .remove(0)
            .key_package
    }

    pub fn send(&mut self, group: &GroupId, body: &str) -> Vec<u8> {
        self.client.encrypt(group, &text(body)).expect("encrypt")
    }

    pub fn recv(&mut self, message: &[u8], policy: &AllowIdentities) -> Vec<Event> {
        self.client.process(message, policy).expect("process")
    }
}

pub fn allow(ids: &[Vec<u8>]) -> AllowIdentities {
    AllowIdentities(ids.to_vec())
}

pub fn text(body: &str) -> Envelope {
    Envelope::Text {
        id: MessageId::random(),
        body: body.to_string(),
        sent_at: 1_700_000_000_000,
    }
}

/// The bodies of the text messages among `events`, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                envelope: Envelope::Text { body, .. },
                ..
            } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

/// A and B in a fresh group: A created it with B's key package, the "server" accepted the
/// commit, and B joined from the Welcome.
pub fn pair() -> (Device, Device, GroupId) {
    let mut a = Device::new();
    let mut b = Device::new();
    let gid = GroupId::random();
    let everyone = allow(&[a.id(), b.id()]);
    let kp = b.key_package();
    let pending = a.client.create_group(&gid, &[kp]).expect("create");
    a.client.commit_accepted(&gid, &everyone).expect("accepted");
    b.client
        .join_from_welcome(pending.welcome.as_deref().expect("welcome"), &everyone)
        .expect("join");
    (a, b, gid)
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(secs: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(secs)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}
