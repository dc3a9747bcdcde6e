//! Peerbridge client core: the device identity, MLS group state (openmls) in an encrypted
//! on-device store, and the in-group content envelope. Consents, escalation sealing and the
//! risk detector arrive with later issues.
//!
//! Invariants: this crate does no network IO and knows no HTTP (the SDK in
//! `mobile-bindings` adds transport); every public [`Client`] operation is one atomic store
//! transaction; an own commit is merged only after the server accepted it.

mod client;
mod codec;
pub mod detector;
pub mod envelope;
mod error;
pub mod excerpt;
pub mod identity;
mod policy;
pub mod seal;
mod storage_provider;
mod store;

pub use client::{
    BufferedMessage, CIPHERSUITE, Client, ClientOptions, Clock, CommitKind, CredentialKind, Epoch,
    Event, Franked, GeneratedKeyPackage, GroupId, IgnoredReason, Joined, MemberSignature,
    PSEUDONYM_PREFIX, PendingCommit, SystemClock, leaf_binding_message, pseudonym_of,
    verify_leaf_credential, verify_signature,
};
pub use codec::CodecError;
pub use envelope::{Envelope, EnvelopeError, MessageId, NoticeKind};
pub use error::{Error, Result};
pub use identity::DeviceIdentity;
pub use policy::{AddCandidate, AddKind, AddPolicy, AllowIdentities, MemberInfo};
pub use store::{
    Batch, Journal, MemoryBackend, RowBackend, RowKey, StoreError, StoreKey, StoreMeta,
};
