//! Shared application state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DatabaseConnection;

use crate::auth::tokens::TokenService;
use crate::bus::Bus;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::Keys;
use crate::telemetry::Metrics;

pub struct AppState {
    /// Every write, and reads inside a transaction or a read-modify-write.
    pub db: DatabaseConnection,
    /// Reads on the hot path that need no transaction (see `storage::connect_reads`): on a
    /// SQLite file they run beside the writer; elsewhere this is `db`.
    pub read: DatabaseConnection,
    /// The escalation path's own connections (flags, the ladder, their notices): see
    /// `storage::Lane`.
    pub urgent: crate::storage::Lane,
    pub config: Config,
    pub keys: Keys,
    pub tokens: TokenService,
    pub clock: SharedClock,
    pub bus: Bus,
    pub metrics: Metrics,
    /// Set when shutdown begins: `/readyz` turns unready before connections drain.
    pub shutting_down: AtomicBool,
    /// Flipped to `true` when sockets must close (code 1001) during shutdown.
    pub shutdown_signal: tokio::sync::watch::Sender<bool>,
    pub push: std::sync::Arc<crate::notify::push::Pusher>,
    /// Application messages are appended through it, many to a commit.
    pub messages: crate::delivery::service::GroupCommit,
    /// Acknowledgements are applied through it, many to a commit.
    pub acks: crate::delivery::service::AckCommit,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// The handle handlers receive.
pub type State = actix_web::web::Data<AppState>;
