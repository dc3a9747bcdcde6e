//! Peerbridge app SDK: the one client object an app holds per device. It enrolls and signs
//! in, keeps the session fresh, uploads key packages, opens and joins conversations, sends
//! text and receives through the WebSocket with a polling fallback, on top of the client
//! core (`peerbridge-mls`), which does the cryptography and knows no network.
//!
//! Layout: `client` (the [`PeerbridgeClient`] object: sessions, key packages, conversations,
//! sending, syncing, history), `account` (staff setup, devices, push, invites, supervisors),
//! `clinic` (the HP console: clinics, users, invites, staff, clinic settings and reports),
//! `introductions`, `escalation`, `stream` (WebSocket receive loop), `http` (HTTP
//! transport), `state` (the SDK's sealed on-device state), `events` and `error` (what apps
//! see), and `ffi`: the UniFFI export ([`Peerbridge`]), which converts types and runs the
//! app's event loop, and adds nothing else.
//!
//! Invariants: nothing secret is stored in plaintext (the MLS store and the SDK state are
//! both sealed with the app's storage key); a send is retried only with the same client id
//! and ciphertext; an own commit is merged only after the server accepted it; a refresh is
//! never run twice in parallel; no server input can make the SDK panic.

mod account;
mod authority;
mod client;
mod clinic;
mod error;
mod escalation;
mod events;
#[cfg(not(target_arch = "wasm32"))]
mod ffi;
mod hooks;
mod http;
mod introductions;
mod platform;
mod state;
mod stream;

uniffi::setup_scaffolding!("peerbridge");

// The contract's ids, dates and instants as UniFFI knows them (the SDK's records use them on
// every target).
mod remote_types {
    use peerbridge_openapi::ffi_types::{DateTime, NaiveDate, Uuid};
    uniffi::use_remote_type!(peerbridge_openapi::Uuid);
    uniffi::use_remote_type!(peerbridge_openapi::NaiveDate);
    uniffi::use_remote_type!(peerbridge_openapi::DateTime);
}

pub use authority::{EscalationKeyReview, key_fingerprint as escalation_key_fingerprint};
pub use client::{ConversationInfo, HistoryPage, PeerbridgeClient, SdkOptions, SessionInfo};
pub use error::{Result, SdkError};
pub use escalation::{DraftOffer, ExcerptLine, OpenedFlag, QueuedFlagInfo};
pub use events::{ConnectionState, Event, Member};
#[cfg(not(target_arch = "wasm32"))]
pub use ffi::{
    HpIntroductionAction, Peerbridge, PeerbridgeError, PeerbridgeListener, detect_risk, error_code,
};
pub use hooks::detector::{RiskSuggestion, suggest_risk};
pub use http::WireTap;
pub use introductions::{ConsentState, IdentityCard};
pub use peerbridge_mls::DeviceIdentity;
pub use peerbridge_openapi as api;
pub use peerbridge_openapi::Role;
pub use peerbridge_openapi::delivery::{ConversationKind, KeyPackageStatus};
#[cfg(target_arch = "wasm32")]
pub use platform::browser::BeforeSend;
