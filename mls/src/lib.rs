//! Peerbridge client core. Today: the device identity (the Ed25519 key a device registers
//! and signs login challenges with). The MLS group state, content envelope, consents and
//! escalation sealing arrive with the conversation issues. This crate does no network IO.

pub mod identity;

pub use identity::DeviceIdentity;
