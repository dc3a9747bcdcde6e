//! The receive hooks: what the SDK does with a received entry besides turning it into events.
//! Each hook runs inside the entry's atomic device-store step (its rows land with the ratchet
//! step, the cursor and the inbox, or not at all), in the order of [`RECEIVE_HOOKS`].
//!
//! Hooks depend only on the client core, the sealed state and the event types; they never
//! call back into the client that runs them. The one receive-time check that needs the
//! network, re-verifying an introduction's consents before a commit is processed, is a page
//! step of the sync (`client/receiving.rs`), not a hook.

use peerbridge_mls::Client as MlsClient;
use peerbridge_openapi::delivery::LogEntry;
use uuid::Uuid;

use crate::error::Result;
use crate::events::Event;

pub(crate) mod cards;
pub(crate) mod detector;
pub(crate) mod franking;

/// What a hook sees of the entry being received.
pub(crate) struct Received<'a> {
    pub conversation: Uuid,
    pub entry: &'a LogEntry,
    /// The introduction this conversation belongs to, if any.
    pub introduction: Option<Uuid>,
}

/// One thing the receive path does with each entry.
pub(crate) trait ReceiveHook: Sync {
    /// Called with each new client-core event of the entry (not with duplicates or own
    /// echoes), before it becomes an SDK event; may write rows in the same step.
    fn on_decrypted(
        &self,
        _mls: &mut MlsClient,
        _cx: &Received<'_>,
        _event: &peerbridge_mls::Event,
    ) -> Result<()> {
        Ok(())
    }

    /// Called with each SDK event the entry produced; events pushed to `follow` are
    /// delivered right after it.
    fn on_event(
        &self,
        _mls: &mut MlsClient,
        _cx: &Received<'_>,
        _event: &Event,
        _follow: &mut Vec<Event>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Every hook, in the order they run: keep franked openings for excerpts, keep the
/// counterpart's identity card, suggest a flag when a text reads as a risk disclosure.
pub(crate) const RECEIVE_HOOKS: &[&dyn ReceiveHook] = &[
    &franking::KeepFranked,
    &cards::KeepIdentityCard,
    &detector::SuggestRisk,
];
