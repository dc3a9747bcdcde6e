//! Admission to a writer: at most so many requests may be waiting for one of the single
//! writers (`group_commit`, `ack_commit`). Past that, a request is refused at once with 503
//! `unavailable` and `Retry-After`, before any work is done for it, instead of
//! waiting in memory behind everything else. An overloaded server then keeps its latency and
//! memory bounded, and the phone's outbox sends again later with the same `client_id`.
//! Flags never pass through here: they have their own path to the database.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// Seconds a refused client is asked to wait before it tries again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Room for waiting requests; cloned handles share it.
#[derive(Clone)]
pub struct Admission {
    room: Arc<Semaphore>,
    limit: usize,
    refused: Counter,
}

/// A place among the waiting requests, given back when dropped.
pub struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    /// Room for `limit` waiting requests (at least one); `refused` counts those turned away.
    pub fn new(limit: usize, refused: Counter) -> Admission {
        let limit = limit.max(1);
        Admission {
            room: Arc::new(Semaphore::new(limit)),
            limit,
            refused,
        }
    }

    /// How many requests may wait at most.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place, or 503 `unavailable` with `Retry-After` when every place is taken.
    pub fn admit(&self) -> ApiResult<Admitted> {
        self.room
            .clone()
            .try_acquire_owned()
            .map(Admitted)
            .map_err(|_| {
                self.refused.inc();
                ApiError::busy(RETRY_AFTER_SECS)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_room_refuses_with_retry_after_and_a_place_given_back_admits_again() {
        let refused = Counter::default();
        let room = Admission::new(2, refused.clone());
        let first = room.admit();
        let second = room.admit();
        assert!(first.is_ok() && second.is_ok());
        let Err(e) = room.admit() else {
            panic!("a third request was admitted to a room of two");
        };
        let p = e.problem();
        assert_eq!(p.code, peerbridge_openapi::ErrorCode::Unavailable);
        assert_eq!(p.retry_after_seconds, Some(RETRY_AFTER_SECS));
        assert_eq!(refused.get(), 1);
        drop(first);
        assert!(room.admit().is_ok(), "a place given back admits again");
        assert_eq!(refused.get(), 1);
    }
}
