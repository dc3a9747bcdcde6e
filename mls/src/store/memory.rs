//! The browser backend: the store's sealed rows held in memory, loaded whole when the client
//! opens, with every committed batch also queued on a [`Journal`]. The web SDK drains the
//! journal after each client operation and writes each batch to IndexedDB in one
//! transaction, awaiting it before the operation reports success; so a tab closed at any
//! moment leaves IndexedDB at the end of some operation, never in the middle of one. Rows
//! are sealed before they reach this backend, so neither memory dumps of the journal nor
//! IndexedDB hold plaintext or logical keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{RowBackend, RowKey, StoreError, StoreMeta};

/// One committed batch as the persistence layer must write it: the meta values when the
/// store was just created, then the rows (`None` deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub meta: Option<StoreMeta>,
    pub rows: Vec<(RowKey, Option<Vec<u8>>)>,
}

/// The queue of committed batches not yet persisted, shared with the backend.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Batch>>>);

impl Journal {
    /// Removes and returns every batch committed since the last call, oldest first.
    pub fn drain(&self) -> Vec<Batch> {
        self.0
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    fn push(&self, batch: Batch) -> Result<(), StoreError> {
        self.0.lock().map_err(|_| StoreError::Poisoned)?.push(batch);
        Ok(())
    }
}

/// A store image in memory; see the module docs.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    meta: Option<StoreMeta>,
    rows: BTreeMap<RowKey, Vec<u8>>,
    journal: Journal,
}

impl MemoryBackend {
    /// An image of what the persistence layer holds (`meta` is `None` for a new store),
    /// and the journal on which it will receive every committed batch.
    pub fn load(
        meta: Option<StoreMeta>,
        rows: impl IntoIterator<Item = (RowKey, Vec<u8>)>,
    ) -> (MemoryBackend, Journal) {
        let journal = Journal::default();
        (
            MemoryBackend {
                meta,
                rows: rows.into_iter().collect(),
                journal: journal.clone(),
            },
            journal,
        )
    }
}

impl RowBackend for MemoryBackend {
    fn meta(&mut self) -> Result<Option<StoreMeta>, StoreError> {
        if self.meta.is_none() && !self.rows.is_empty() {
            return Err(StoreError::Corrupt("rows without a key check".into()));
        }
        Ok(self.meta.clone())
    }

    fn create(&mut self, meta: &StoreMeta) -> Result<(), StoreError> {
        self.journal.push(Batch {
            meta: Some(meta.clone()),
            rows: Vec::new(),
        })?;
        self.meta = Some(meta.clone());
        Ok(())
    }

    fn get(&mut self, row: &RowKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.rows.get(row).cloned())
    }

    fn apply(&mut self, batch: &[(RowKey, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        self.journal.push(Batch {
            meta: None,
            rows: batch.to_vec(),
        })?;
        for (row, v) in batch {
            match v {
                Some(v) => self.rows.insert(*row, v.clone()),
                None => self.rows.remove(row),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreKey};

    /// What IndexedDB would hold after writing every drained batch.
    #[derive(Default)]
    struct Persisted {
        meta: Option<StoreMeta>,
        rows: BTreeMap<RowKey, Vec<u8>>,
    }

    impl Persisted {
        fn write(&mut self, journal: &Journal) {
            for b in journal.drain() {
                if let Some(m) = b.meta {
                    self.meta = Some(m);
                }
                for (k, v) in b.rows {
                    match v {
                        Some(v) => self.rows.insert(k, v),
                        None => self.rows.remove(&k),
                    };
                }
            }
        }

        fn reopen(&self, key: &StoreKey) -> Result<(Store, Journal), StoreError> {
            let (backend, journal) = MemoryBackend::load(self.meta.clone(), self.rows.clone());
            let (store, _) = Store::open_backend(Box::new(backend), key)?;
            Ok((store, journal))
        }
    }

    #[test]
    fn committed_operations_survive_a_reload_and_uncommitted_ones_do_not() {
        let key = StoreKey::generate();
        let mut disk = Persisted::default();
        let (store, journal) = disk.reopen(&key).expect("new");
        store.put(b"group/g", b"epoch 1".to_vec()).expect("put");
        store.commit().expect("commit");
        disk.write(&journal);
        store.put(b"group/g", b"epoch 2".to_vec()).expect("put");
        // The tab closes before the operation commits.
        drop(store);
        let (store, _) = disk.reopen(&key).expect("reload");
        assert_eq!(
            store.get(b"group/g").expect("get").as_deref(),
            Some(&b"epoch 1".to_vec())
        );
        // Nothing readable is handed to the persistence layer.
        assert!(
            !disk
                .rows
                .values()
                .any(|v| v.windows(7).any(|w| w == b"epoch 1"))
        );
    }

    #[test]
    fn the_wrong_key_is_the_same_typed_error_as_on_native() {
        let key = StoreKey::generate();
        let mut disk = Persisted::default();
        let (store, journal) = disk.reopen(&key).expect("new");
        store.put(b"a", b"1".to_vec()).expect("put");
        store.commit().expect("commit");
        disk.write(&journal);
        drop(store);
        assert_eq!(
            disk.reopen(&StoreKey::generate()).err(),
            Some(StoreError::WrongKey)
        );
        assert!(disk.reopen(&key).is_ok());
    }
}
