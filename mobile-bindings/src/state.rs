//! The SDK's own durable state: the session (refresh token included), and per conversation
//! the read cursor, recently seen ids, undelivered events, history and the outbox. It is not
//! a second database: every value is an app row of the client core's device store
//! (`mls.db`), sealed and row-key-hashed like the MLS state itself, so one SQLite transaction
//! can hold both. A received message's ratchet step and the rows it produces (cursor, dedup
//! ids, inbox, history, kept franking openings, identity cards) are written together inside
//! [`peerbridge_mls::Client::atomically`]: a crash leaves either none of it or all of it.
//! Values are JSON.

use peerbridge_mls::Client as MlsClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// A value that no longer decodes (e.g. written by an older SDK).
    #[error("an SDK state value does not decode: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] peerbridge_mls::Error),
}

/// Reads and decodes one value (inside an atomic step it sees the step's writes).
pub(crate) fn get<T: DeserializeOwned>(
    mls: &MlsClient,
    logical: &str,
) -> Result<Option<T>, StateError> {
    let Some(plain) = mls.app_get(logical.as_bytes())? else {
        return Ok(None);
    };
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| StateError::Corrupt(format!("{logical}: {e}")))
}

/// Writes (`Some`) and deletes (`None`) values in one transaction, or as part of the
/// enclosing atomic step.
pub(crate) fn write(
    mls: &mut MlsClient,
    batch: Vec<(String, Option<Vec<u8>>)>,
) -> Result<(), StateError> {
    Ok(mls.app_write(batch.into_iter().map(|(k, v)| (k.into_bytes(), v)))?)
}

/// Writes one value.
pub(crate) fn put<T: Serialize>(
    mls: &mut MlsClient,
    logical: &str,
    value: &T,
) -> Result<(), StateError> {
    write(mls, vec![(logical.to_owned(), Some(encode(value)?))])
}

/// Encodes one value for [`write`].
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbridge_mls::{ClientOptions, StoreKey};

    #[test]
    fn values_round_trip_sealed_in_the_device_store_and_a_failed_step_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mls.db");
        let key = StoreKey::from_bytes([1u8; 32]);
        let mut mls = MlsClient::open(&path, &key, ClientOptions::default()).expect("open");
        put(&mut mls, "conv/x", &vec![1u32, 2, 3]).expect("put");
        assert_eq!(
            get::<Vec<u32>>(&mls, "conv/x").expect("get"),
            Some(vec![1, 2, 3])
        );
        let failed: Result<(), StateError> = mls.atomically(|m| {
            put(m, "conv/x", &vec![9u32])?;
            put(m, "conv/y", &vec![9u32])?;
            assert_eq!(
                get::<Vec<u32>>(m, "conv/x")?,
                Some(vec![9]),
                "the step sees itself"
            );
            Err(StateError::Corrupt("the step failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(get::<Vec<u32>>(&mls, "conv/y").expect("get"), None);
        drop(mls);
        let mls = MlsClient::open(&path, &key, ClientOptions::default()).expect("reopen");
        assert_eq!(
            get::<Vec<u32>>(&mls, "conv/x").expect("get"),
            Some(vec![1, 2, 3])
        );
        drop(mls);
        let raw = std::fs::read(&path).expect("read");
        let wal = std::fs::read(dir.path().join("mls.db-wal")).unwrap_or_default();
        // Positive control: the file is readable and holds the format marker.
        assert!(raw.windows(16).any(|w| w == b"peerbridge-store"));
        for hay in [&raw, &wal] {
            assert!(!hay.windows(6).any(|w| w == b"conv/x"), "keys are hashed");
        }
    }
}
