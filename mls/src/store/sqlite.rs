//! The native backend: one SQLite file (`meta` and a `kv` table of sealed rows), WAL with
//! full fsync, deleted rows overwritten on disk.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{RowBackend, RowKey, StoreError, StoreMeta};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Io(e.to_string()),
        }
    }
}

pub(crate) struct SqliteBackend {
    conn: Connection,
}

impl SqliteBackend {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteBackend { conn })
    }
}

impl RowBackend for SqliteBackend {
    fn meta(&mut self) -> Result<Option<StoreMeta>, StoreError> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if !has_meta {
            // A file that is not empty but has no meta table is someone else's database.
            let tables: i64 =
                self.conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
            if tables > 0 {
                return Err(StoreError::Corrupt("not a Peerbridge store".into()));
            }
            return Ok(None);
        }
        let value = |name: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self
                .conn
                .query_row(
                    "SELECT value FROM meta WHERE name = ?1",
                    params![name],
                    |row| row.get(0),
                )
                .optional()?)
        };
        let format = value("format")?.unwrap_or_default();
        let check = value("check")?.ok_or_else(|| StoreError::Corrupt("no key check".into()));
        // An unknown format is reported as such even without a check row.
        Ok(Some(StoreMeta {
            check: if format == super::FORMAT_MARKER {
                check?
            } else {
                Vec::new()
            },
            format,
        }))
    }

    fn create(&mut self, meta: &StoreMeta) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('format', ?1)",
            params![meta.format],
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('check', ?1)",
            params![meta.check],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Durability settings: WAL with full fsync, and deleted rows overwritten on disk.
    fn opened(&mut self) -> Result<(), StoreError> {
        let _mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")?;
        Ok(())
    }

    fn get(&mut self, row: &RowKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT v FROM kv WHERE k = ?1", params![row], |r| r.get(0))
            .optional()?)
    }

    fn apply(&mut self, batch: &[(RowKey, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM kv WHERE k = ?1")?;
            for (row, v) in batch {
                match v {
                    Some(v) => upsert.execute(params![row, v])?,
                    None => delete.execute(params![row])?,
                };
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
