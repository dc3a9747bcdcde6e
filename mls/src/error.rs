//! The client core's one error type: a flat enum whose variants and [`Error::code`] strings are
//! stable, so the SDK and the FFI layer can map them without parsing messages.

use crate::envelope::EnvelopeError;
use crate::policy::MemberInfo;
use crate::store::StoreError;

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store key does not open this store. Nothing was changed.
    #[error("the store key does not open this store")]
    WrongStoreKey,
    /// The store file is damaged or is not a Peerbridge store. Nothing was changed.
    #[error("the store is damaged or is not a Peerbridge store: {0}")]
    StoreCorrupt(String),
    /// Reading or writing the store failed (e.g. the disk is full). The operation had no
    /// effect.
    #[error("the store could not be read or written: {0}")]
    StoreIo(String),
    /// The store holds a different device identity than the one supplied.
    #[error("the store belongs to a different device identity")]
    IdentityMismatch,
    /// No group with this id is in the store.
    #[error("no such group")]
    UnknownGroup,
    /// A group with this id already exists.
    #[error("a group with this id already exists")]
    GroupExists,
    /// Group ids are 1 to 255 bytes.
    #[error("a group id is 1 to 255 bytes")]
    InvalidGroupId,
    /// This device is no longer a member of the group.
    #[error("this device is no longer a member of the group")]
    NotAMember,
    /// An own commit is already waiting for the server's answer.
    #[error("a commit is already pending for this group")]
    CommitPending,
    /// `commit_accepted`/`commit_rejected` was called with no commit pending.
    #[error("no commit is pending for this group")]
    NoPendingCommit,
    /// The bytes are not a well-formed MLS message.
    #[error("malformed MLS message: {0}")]
    MalformedMessage(String),
    /// A well-formed MLS message of the wrong kind for this call.
    #[error("expected {expected}, got another kind of MLS message")]
    UnexpectedMessage { expected: &'static str },
    /// A key package failed validation (signature, ciphersuite, lifetime, ...).
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    /// No key package of this device matches the Welcome (already used, or not ours).
    #[error("the welcome matches none of this device's key packages")]
    NoMatchingKeyPackage,
    /// The group policy refused these members; nothing was merged.
    #[error("the group policy refused {} member(s)", refused.len())]
    PolicyRefused { refused: Vec<MemberInfo> },
    /// The future-epoch buffer of this group is full; the client should rejoin.
    #[error("the buffer of future-epoch messages for this group is full")]
    BufferFull,
    /// A leaf index that is not a member of the group.
    #[error("leaf {0} is not a member of the group")]
    UnknownMember(u32),
    /// openmls refused the operation or the message (a protocol-level failure).
    #[error("MLS: {0}")]
    Mls(String),
    /// The envelope could not be encoded.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl Error {
    /// A stable machine-readable code (snake_case) for the FFI layer and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::WrongStoreKey => "wrong_store_key",
            Error::StoreCorrupt(_) => "store_corrupt",
            Error::StoreIo(_) => "store_io",
            Error::IdentityMismatch => "identity_mismatch",
            Error::UnknownGroup => "unknown_group",
            Error::GroupExists => "group_exists",
            Error::InvalidGroupId => "invalid_group_id",
            Error::NotAMember => "not_a_member",
            Error::CommitPending => "commit_pending",
            Error::NoPendingCommit => "no_pending_commit",
            Error::MalformedMessage(_) => "malformed_message",
            Error::UnexpectedMessage { .. } => "unexpected_message",
            Error::InvalidKeyPackage(_) => "invalid_key_package",
            Error::NoMatchingKeyPackage => "no_matching_key_package",
            Error::PolicyRefused { .. } => "policy_refused",
            Error::BufferFull => "buffer_full",
            Error::UnknownMember(_) => "unknown_member",
            Error::Mls(_) => "mls",
            Error::Envelope(_) => "envelope",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongKey => Error::WrongStoreKey,
            StoreError::Corrupt(m) => Error::StoreCorrupt(m),
            StoreError::Serialization(m) => Error::StoreCorrupt(m),
            StoreError::Io(m) => Error::StoreIo(m),
            StoreError::Poisoned => Error::StoreIo("store lock poisoned".into()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
