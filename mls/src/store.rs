//! The on-device store: one SQLite file in which every row is sealed with XChaCha20-Poly1305
//! under a key the app supplies, and in which every client operation's writes land in exactly
//! one SQLite transaction (so a crash or a failed operation never leaves torn MLS state).
//!
//! Layout. `meta(name, value)` holds a format marker and a sealed check value that proves the
//! key before anything else is read or written. `kv(k, v)` is a flat key-value table: `k` is
//! HMAC-SHA256(index key, logical key) so group ids and labels are not visible on disk, and
//! `v` is `format byte || 24-byte nonce || ciphertext`, authenticated together with `k` so a
//! row cannot be moved to another key. Both sub-keys are derived from the app key with
//! HMAC-SHA256 and domain-separating labels.
//!
//! Transactions. Writes never go straight to the backend. They are staged in memory
//! (`staged`); reads see staged values first. The client commits the staged set in one
//! backend transaction when an operation succeeds and discards it when the operation fails,
//! so openmls' many small writes per operation become one atomic step.
//!
//! Backends. Where the sealed rows live is a seam ([`RowBackend`]): a SQLite file on native
//! platforms (`sqlite`), and in the browser a memory image whose committed batches the web
//! SDK writes to IndexedDB, one IndexedDB transaction per batch (`memory`). Sealing, row
//! keys, staging and the key check are the same code on every platform.

use std::collections::BTreeMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

mod memory;
#[cfg(not(target_arch = "wasm32"))]
mod sqlite;

pub use memory::{Batch, Journal, MemoryBackend};

/// Marks a file as a Peerbridge store of this layout.
const FORMAT_MARKER: &[u8] = b"peerbridge-store/1";
/// Prefix byte of every sealed value (lets a later layout coexist while migrating).
const SEAL_AAD_PREFIX: &[u8] = b"peerbridge/store/v1/row\n";
const CHECK_PLAINTEXT: &[u8] = b"peerbridge/store/v1/check";
const CHECK_ROW: &[u8] = b"\0check";

/// A row key on disk: HMAC-SHA256 of the logical key.
pub type RowKey = [u8; 32];
/// Staged writes: `Some(plaintext)` to write, `None` to delete.
pub(crate) type Staged = BTreeMap<RowKey, Option<Zeroizing<Vec<u8>>>>;

/// The 32-byte key the app supplies to open the store (e.g. from the platform keystore).
/// Zeroized on drop; `Debug` never prints it.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StoreKey(Zeroizing::new(bytes))
    }

    /// Accepts exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self::from_bytes)
    }

    /// A fresh random key from the OS RNG, for apps that generate and keep it themselves.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        StoreKey(k)
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(redacted)")
    }
}

/// Why the store failed. Also the error type of the openmls storage provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store key does not open this store")]
    WrongKey,
    #[error("the store is damaged or is not a Peerbridge store: {0}")]
    Corrupt(String),
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("a stored value could not be (de)serialized: {0}")]
    Serialization(String),
    #[error("the store lock was poisoned by an earlier panic")]
    Poisoned,
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Serialization(e.to_string())
    }
}

/// What a store keeps outside the sealed rows: its format marker and the sealed key check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    pub format: Vec<u8>,
    pub check: Vec<u8>,
}

/// Where the sealed rows of a store live. Every value handed to a backend is already sealed
/// and every key is already an HMAC: a backend never sees plaintext or a logical key.
pub trait RowBackend: Send {
    /// The store's meta values, `None` for an empty backend; `Corrupt` for something that is
    /// not empty and not a Peerbridge store.
    fn meta(&mut self) -> Result<Option<StoreMeta>, StoreError>;
    /// Makes an empty backend a store with these meta values (atomically).
    fn create(&mut self, meta: &StoreMeta) -> Result<(), StoreError>;
    /// Called once the key check passed, before the first read or write.
    fn opened(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn get(&mut self, row: &RowKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies one batch atomically: all of it or none of it (`None` deletes).
    fn apply(&mut self, batch: &[(RowKey, Option<Vec<u8>>)]) -> Result<(), StoreError>;
    /// Compacts whatever the backend journals (SQLite's write-ahead log).
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The encrypted store plus the staged writes of the operation in progress.
pub(crate) struct Store {
    backend: Mutex<Box<dyn RowBackend>>,
    sealer: crate::seal::RowSealer,
    index_key: Zeroizing<[u8; 32]>,
    staged: Mutex<Staged>,
    /// The first storage failure seen during the current operation. openmls wraps storage
    /// errors in its own error types; the client reports this one instead so that a full
    /// disk is not mistaken for a protocol error.
    failure: Mutex<Option<StoreError>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| StoreError::Poisoned)
}

fn derive(key: &StoreKey, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.0.as_ref())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    mac.update(label);
    Ok(Zeroizing::new(mac.finalize().into_bytes().into()))
}

impl Store {
    /// Opens the SQLite store at `path`, creating it if the file does not exist. A wrong key
    /// is detected from the sealed check value before anything is written, so it fails with
    /// [`StoreError::WrongKey`] and leaves the file untouched.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn open(path: &Path, key: &StoreKey) -> Result<(Store, bool), StoreError> {
        Self::open_backend(Box::new(sqlite::SqliteBackend::open(path)?), key)
    }

    /// Opens a store over any backend, with the same key check.
    pub(crate) fn open_backend(
        backend: Box<dyn RowBackend>,
        key: &StoreKey,
    ) -> Result<(Store, bool), StoreError> {
        let store = Store {
            backend: Mutex::new(backend),
            sealer: crate::seal::RowSealer::new(
                derive(key, b"peerbridge/store/v1/seal-key")?,
                SEAL_AAD_PREFIX,
            ),
            index_key: derive(key, b"peerbridge/store/v1/index-key")?,
            staged: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
        };
        let created = store.init()?;
        Ok((store, created))
    }

    /// Returns whether the store was created now.
    fn init(&self) -> Result<bool, StoreError> {
        let mut backend = lock(&self.backend)?;
        if let Some(meta) = backend.meta()? {
            if meta.format != FORMAT_MARKER {
                return Err(StoreError::Corrupt("unknown store format".into()));
            }
            let opened = self
                .open_sealed(CHECK_ROW, &meta.check)
                .map_err(|_| StoreError::WrongKey)?;
            if opened.as_slice() != CHECK_PLAINTEXT {
                return Err(StoreError::WrongKey);
            }
            backend.opened()?;
            return Ok(false);
        }
        backend.opened()?;
        let check = self.seal(CHECK_ROW, CHECK_PLAINTEXT)?;
        backend.create(&StoreMeta {
            format: FORMAT_MARKER.to_vec(),
            check,
        })?;
        Ok(true)
    }

    fn row_key(&self, logical: &[u8]) -> Result<RowKey, StoreError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.index_key.as_ref())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        mac.update(logical);
        Ok(mac.finalize().into_bytes().into())
    }

    fn seal(&self, row: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .seal(row, plaintext)
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    fn open_sealed(&self, row: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.sealer
            .open(row, sealed)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Reads a value, seeing the current operation's staged writes first.
    pub(crate) fn get(&self, logical: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let row = self.row_key(logical)?;
        if let Some(staged) = lock(&self.staged)?.get(&row) {
            return Ok(staged.clone());
        }
        let sealed = lock(&self.backend)?.get(&row)?;
        sealed.map(|s| self.open_sealed(&row, &s)).transpose()
    }

    /// Stages a write.
    pub(crate) fn put(&self, logical: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        let row = self.row_key(logical)?;
        lock(&self.staged)?.insert(row, Some(Zeroizing::new(value)));
        Ok(())
    }

    /// Stages a deletion.
    pub(crate) fn delete(&self, logical: &[u8]) -> Result<(), StoreError> {
        let row = self.row_key(logical)?;
        lock(&self.staged)?.insert(row, None);
        Ok(())
    }

    /// Writes every staged change in one backend transaction, then clears the stage. On
    /// failure nothing of the stage reaches the file and the stage is dropped.
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        let staged = std::mem::take(&mut *lock(&self.staged)?);
        *lock(&self.failure)? = None;
        if staged.is_empty() {
            return Ok(());
        }
        let mut sealed = Vec::with_capacity(staged.len());
        for (row, value) in &staged {
            let v = value
                .as_ref()
                .map(|plain| self.seal(row, plain))
                .transpose()?;
            sealed.push((*row, v));
        }
        lock(&self.backend)?.apply(&sealed)
    }

    /// Drops every staged change (the operation failed or was refused).
    pub(crate) fn discard(&self) {
        if let Ok(mut staged) = self.staged.lock() {
            staged.clear();
        }
        if let Ok(mut failure) = self.failure.lock() {
            *failure = None;
        }
    }

    /// A copy of the stage, to roll back one step of a multi-step operation.
    pub(crate) fn savepoint(&self) -> Result<Staged, StoreError> {
        Ok(lock(&self.staged)?.clone())
    }

    pub(crate) fn rollback_to(&self, savepoint: Staged) -> Result<(), StoreError> {
        *lock(&self.staged)? = savepoint;
        Ok(())
    }

    /// Removes and returns the stage (used to park an external commit's state until the
    /// server accepts it).
    pub(crate) fn take_staged(&self) -> Result<Staged, StoreError> {
        Ok(std::mem::take(&mut *lock(&self.staged)?))
    }

    /// Adds previously taken changes to the stage.
    pub(crate) fn restage(&self, changes: Staged) -> Result<(), StoreError> {
        lock(&self.staged)?.extend(changes);
        Ok(())
    }

    /// Compacts the backend's journal (SQLite: folds the write-ahead log into the file).
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        lock(&self.backend)?.checkpoint()
    }

    pub(crate) fn record_failure(&self, e: &StoreError) {
        if let Ok(mut failure) = self.failure.lock()
            && failure.is_none()
        {
            *failure = Some(e.clone());
        }
    }

    pub(crate) fn take_failure(&self) -> Option<StoreError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn values_are_sealed_on_disk_and_row_keys_hide_the_logical_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let key = StoreKey::generate();
        let (store, created) = Store::open(&path, &key).expect("open");
        assert!(created);
        store
            .put(b"group/secret-group-id", b"very secret value".to_vec())
            .expect("put");
        store.commit().expect("commit");
        drop(store);
        let raw = std::fs::read(&path).expect("read");
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for hay in [&raw, &wal] {
            assert!(!hay.windows(17).any(|w| w == b"very secret value"));
            assert!(!hay.windows(21).any(|w| w == b"group/secret-group-id"));
        }
        let (store, created) = Store::open(&path, &key).expect("reopen");
        assert!(!created);
        assert_eq!(
            store.get(b"group/secret-group-id").expect("get").as_deref(),
            Some(&b"very secret value".to_vec())
        );
    }

    #[test]
    fn staged_writes_are_visible_but_not_durable_until_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let key = StoreKey::generate();
        let (store, _) = Store::open(&path, &key).expect("open");
        store.put(b"a", b"1".to_vec()).expect("put");
        store.commit().expect("commit");
        store.put(b"a", b"2".to_vec()).expect("put");
        store.put(b"b", b"3".to_vec()).expect("put");
        assert_eq!(
            store.get(b"a").expect("get").as_deref(),
            Some(&b"2".to_vec())
        );
        // A "crash" here: the process dies with the stage in memory.
        drop(store);
        let (store, _) = Store::open(&path, &key).expect("reopen");
        assert_eq!(
            store.get(b"a").expect("get").as_deref(),
            Some(&b"1".to_vec())
        );
        assert_eq!(store.get(b"b").expect("get"), None);
        store.delete(b"a").expect("delete");
        store.discard();
        assert_eq!(
            store.get(b"a").expect("get").as_deref(),
            Some(&b"1".to_vec())
        );
    }

    #[test]
    fn a_wrong_key_is_refused_and_leaves_the_store_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let key = StoreKey::generate();
        let (store, _) = Store::open(&path, &key).expect("open");
        store.put(b"a", b"1".to_vec()).expect("put");
        store.commit().expect("commit");
        drop(store);
        let before = std::fs::read(&path).expect("read");
        assert_eq!(
            Store::open(&path, &StoreKey::generate()).err(),
            Some(StoreError::WrongKey)
        );
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "not a byte changed"
        );
        let (store, created) = Store::open(&path, &key).expect("reopen");
        assert!(!created);
        assert_eq!(
            store.get(b"a").expect("get").as_deref(),
            Some(&b"1".to_vec())
        );
    }

    #[test]
    fn a_file_that_is_not_a_store_is_reported_as_corrupt_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        std::fs::write(&path, vec![0x42; 8192]).expect("write");
        assert!(matches!(
            Store::open(&path, &StoreKey::generate()),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(std::fs::read(&path).expect("read"), vec![0x42; 8192]);
    }
}
