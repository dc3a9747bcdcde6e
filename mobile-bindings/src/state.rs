//! The SDK's own durable state beside the MLS store: the session (refresh token included),
//! and per conversation the read cursor, recently seen ids, undelivered events and the
//! outbox. One SQLite file whose rows are sealed with XChaCha20-Poly1305 under a key derived
//! from the app's storage key, the same layout idea as the client core's store: row keys are
//! HMACs of the logical keys (no conversation id is visible on disk), every value is
//! `format byte || nonce || ciphertext` authenticated together with its row key, and a sealed
//! check value proves the key before anything is read or written, so a wrong key fails
//! without touching the file. Each `write` is one SQLite transaction (WAL, synchronous=FULL).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use zeroize::Zeroizing;

const FORMAT_MARKER: &[u8] = b"peerbridge-sdk-state/1";
const AAD_PREFIX: &[u8] = b"peerbridge/sdk-state/v1/row\n";
const CHECK_PLAINTEXT: &[u8] = b"peerbridge/sdk-state/v1/check";
const CHECK_ROW: &[u8] = b"\0check";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the storage key does not open the SDK state")]
    WrongKey,
    #[error("the SDK state is damaged or is not a Peerbridge SDK state: {0}")]
    Corrupt(String),
    #[error("SDK state I/O failed: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StateError::Corrupt(e.to_string()),
            _ => StateError::Io(e.to_string()),
        }
    }
}

/// The sealed key-value state.
pub(crate) struct StateStore {
    conn: Mutex<Connection>,
    sealer: peerbridge_mls::seal::RowSealer,
    index_key: Zeroizing<[u8; 32]>,
}

fn derive(key: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts any key length, so this cannot fail; a zero key would only follow a bug.
    let mut out = Zeroizing::new([0u8; 32]);
    if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) {
        mac.update(label);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

impl StateStore {
    /// Opens (or creates) the state file. A wrong key fails with [`StateError::WrongKey`]
    /// before anything is written.
    pub(crate) fn open(path: &Path, key: &[u8; 32]) -> Result<StateStore, StateError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = StateStore {
            conn: Mutex::new(conn),
            sealer: peerbridge_mls::seal::RowSealer::new(
                derive(key, b"peerbridge/sdk-state/v1/seal-key"),
                AAD_PREFIX,
            ),
            index_key: derive(key, b"peerbridge/sdk-state/v1/index-key"),
        };
        store.init()?;
        Ok(store)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StateError> {
        self.conn
            .lock()
            .map_err(|_| StateError::Io("the state lock was poisoned".into()))
    }

    fn init(&self) -> Result<(), StateError> {
        let mut conn = self.lock()?;
        let has_meta: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        if has_meta > 0 {
            let marker: Option<Vec<u8>> = conn
                .query_row("SELECT value FROM meta WHERE name = 'format'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if marker.as_deref() != Some(FORMAT_MARKER) {
                return Err(StateError::Corrupt("unknown state format".into()));
            }
            let check: Vec<u8> = conn
                .query_row("SELECT value FROM meta WHERE name = 'check'", [], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or_else(|| StateError::Corrupt("no key check".into()))?;
            let opened = self
                .open_sealed(CHECK_ROW, &check)
                .map_err(|_| StateError::WrongKey)?;
            if opened.as_slice() != CHECK_PLAINTEXT {
                return Err(StateError::WrongKey);
            }
            Self::configure(&conn)?;
            return Ok(());
        }
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(StateError::Corrupt(
                "not a Peerbridge SDK state file".into(),
            ));
        }
        Self::configure(&conn)?;
        let check = self.seal(CHECK_ROW, CHECK_PLAINTEXT)?;
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('format', ?1)",
            params![FORMAT_MARKER],
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('check', ?1)",
            params![check],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn configure(conn: &Connection) -> Result<(), StateError> {
        // A 2xx the app has seen must survive a power cut: full sync on every commit.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    fn row_key(&self, logical: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.index_key.as_ref()) {
            mac.update(logical.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    fn seal(&self, row: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StateError> {
        self.sealer
            .seal(row, plaintext)
            .map_err(|e| StateError::Corrupt(e.to_string()))
    }

    fn open_sealed(&self, row: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StateError> {
        self.sealer
            .open(row, sealed)
            .map_err(|e| StateError::Corrupt(e.to_string()))
    }

    /// Reads and decodes one value.
    pub(crate) fn get<T: DeserializeOwned>(&self, logical: &str) -> Result<Option<T>, StateError> {
        let row = self.row_key(logical);
        let sealed: Option<Vec<u8>> = self
            .lock()?
            .query_row("SELECT v FROM kv WHERE k = ?1", params![row], |r| r.get(0))
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self.open_sealed(&row, &sealed)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| StateError::Corrupt(format!("{logical}: {e}")))
    }

    /// Writes (`Some`) and deletes (`None`) values in one transaction.
    pub(crate) fn write(&self, batch: Vec<(String, Option<Vec<u8>>)>) -> Result<(), StateError> {
        let mut sealed = Vec::with_capacity(batch.len());
        for (logical, value) in batch {
            let row = self.row_key(&logical);
            let v = value
                .map(|v| self.seal(&row, &Zeroizing::new(v)))
                .transpose()?;
            sealed.push((row, v));
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        for (row, v) in sealed {
            match v {
                Some(v) => tx.execute(
                    "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    params![row, v],
                )?,
                None => tx.execute("DELETE FROM kv WHERE k = ?1", params![row])?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// Folds the write-ahead log into the database file (every commit is already durable;
    /// this leaves one compact file when the app goes to the background).
    pub(crate) fn checkpoint(&self) -> Result<(), StateError> {
        let conn = self.lock()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Encodes one value for [`StateStore::write`].
    pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
        serde_json::to_vec(value).map_err(|e| StateError::Corrupt(e.to_string()))
    }

    /// Writes one value.
    pub(crate) fn put<T: Serialize>(&self, logical: &str, value: &T) -> Result<(), StateError> {
        self.write(vec![(logical.to_owned(), Some(Self::encode(value)?))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_a_wrong_key_opens_nothing_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let s = StateStore::open(&path, &[1u8; 32]).expect("create");
        s.put("conv/x", &vec![1u32, 2, 3]).expect("put");
        assert_eq!(
            s.get::<Vec<u32>>("conv/x").expect("get"),
            Some(vec![1, 2, 3])
        );
        drop(s);
        let before = std::fs::read(&path).expect("read");
        assert_eq!(
            StateStore::open(&path, &[2u8; 32]).err(),
            Some(StateError::WrongKey)
        );
        assert_eq!(std::fs::read(&path).expect("read"), before);
        let s = StateStore::open(&path, &[1u8; 32]).expect("reopen");
        assert_eq!(
            s.get::<Vec<u32>>("conv/x").expect("get"),
            Some(vec![1, 2, 3])
        );
        let raw = std::fs::read(&path).expect("read");
        assert!(!raw.windows(6).any(|w| w == b"conv/x"), "keys are hashed");
    }
}
