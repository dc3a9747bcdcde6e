//! Storage: one sea-orm connection pool on SQLite (embedded default) or PostgreSQL
//! (production), opened with the durability settings that make a 2xx mean "committed":
//! SQLite in WAL mode with `synchronous=FULL`, PostgreSQL with `synchronous_commit=on`.
//! On a SQLite file a second, query-only pool serves the hot path's reads ([`connect_reads`]):
//! in WAL mode they run beside the single writer instead of queueing behind its fsync.

pub mod migrations;
pub mod turns;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use secrecy::ExposeSecret;

use crate::config::{Config, DatabaseKind};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the {kind:?} database")]
    Connect {
        kind: DatabaseKind,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("migration failed")]
    Migrate(#[source] sea_orm::DbErr),
}

/// Opens the pool described by the configuration.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, StorageError> {
    if config.database_kind == DatabaseKind::Sqlite {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StorageError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    connect_url(
        config.database_url.expose_secret(),
        config.database_kind,
        config.db_max_connections,
    )
    .await
}

/// Read connections beside SQLite's single writer, at most.
pub const MAX_SQLITE_READERS: u32 = 4;

/// The pool for reads that need no transaction (authorisation, visibility, membership, the
/// log). On a SQLite file: up to [`MAX_SQLITE_READERS`] connections opened `query_only`
/// (a write through them fails instead of bypassing the writer), which in WAL mode read
/// the last committed state while the writer commits. Elsewhere (PostgreSQL, whose pool
/// already has many connections; an in-memory SQLite, which another connection would not
/// see) it is the same pool as `db`.
pub async fn connect_reads(
    config: &Config,
    db: &DatabaseConnection,
) -> Result<DatabaseConnection, StorageError> {
    if config.sqlite_file().is_none() {
        return Ok(db.clone());
    }
    connect_sqlite_reads(
        config.database_url.expose_secret(),
        config.db_max_connections.min(MAX_SQLITE_READERS),
    )
    .await
}

/// Connections kept for the escalation path alone (see [`Lane`]).
pub const LANE_CONNECTIONS: u32 = 2;

/// The escalation path's own connections: raising a flag, an HP working it, the ladder and
/// the notices they send read and write through these, so a flag never waits for a
/// connection behind message traffic (sends, acks, log reads and their authorisation).
/// - PostgreSQL: a pool of [`LANE_CONNECTIONS`] for reads and transactions alike.
/// - A SQLite file: a query-only pool of [`LANE_CONNECTIONS`] for reads; transactions go to
///   the single writer (SQLite has one), taking [`turns`] ahead of the message and ack
///   batches, so a flag waits at most for the batch in progress.
/// - An in-memory SQLite: the one connection, with turns the same way.
#[derive(Clone)]
pub struct Lane {
    pub read: DatabaseConnection,
    pub write: DatabaseConnection,
    /// Turns at the writer connection, shared with the batch writers: on SQLite its one
    /// connection; off on PostgreSQL.
    pub turns: turns::Turns,
}

impl Lane {
    /// Taken before each of the escalation path's transactions and held until it ends: on
    /// SQLite, the writer's next turn ahead of every batch not yet in progress.
    pub async fn turn(&self) -> turns::Turn {
        self.turns.urgent().await
    }
}

/// Opens the escalation path's [`Lane`] beside `db`.
pub async fn connect_lane(config: &Config, db: &DatabaseConnection) -> Result<Lane, StorageError> {
    let url = config.database_url.expose_secret();
    Ok(match config.database_kind {
        DatabaseKind::Postgres => {
            let pool = connect_url(url, DatabaseKind::Postgres, LANE_CONNECTIONS).await?;
            Lane {
                read: pool.clone(),
                write: pool,
                turns: turns::Turns::off(),
            }
        }
        DatabaseKind::Sqlite if config.sqlite_file().is_some() => Lane {
            read: connect_sqlite_reads(url, LANE_CONNECTIONS).await?,
            write: db.clone(),
            turns: turns::Turns::shared(),
        },
        DatabaseKind::Sqlite => Lane {
            read: db.clone(),
            write: db.clone(),
            turns: turns::Turns::shared(),
        },
    })
}

/// Opens a query-only pool on a SQLite file a writer pool already opened (in WAL mode).
pub async fn connect_sqlite_reads(
    url: &str,
    connections: u32,
) -> Result<DatabaseConnection, StorageError> {
    let mut opts = options(url);
    opts.max_connections(connections.max(1)).min_connections(1);
    opts.map_sqlx_sqlite_opts(|o| {
        o.pragma("query_only", "ON")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
    });
    Database::connect(opts)
        .await
        .map_err(|source| StorageError::Connect {
            kind: DatabaseKind::Sqlite,
            source,
        })
}

/// What every pool shares: no statement logging, bounded waits, and a ping at checkout only
/// for a connection idle long enough to have been dropped by the server or a proxy (a hot
/// connection goes out without an extra round trip; a dead one fails that request, and the
/// pool replaces it).
fn options(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    opts
}

/// Opens a pool for a URL (tests use this for fresh databases).
pub async fn connect_url(
    url: &str,
    kind: DatabaseKind,
    max_connections: u32,
) -> Result<DatabaseConnection, StorageError> {
    let mut opts = options(url);
    match kind {
        DatabaseKind::Sqlite => {
            // One connection: SQLite has one writer anyway, and a single connection makes
            // every transaction serializable without SQLITE_BUSY upgrade failures. WAL keeps
            // the file consistent on crash; FULL fsyncs every commit.
            opts.max_connections(1).min_connections(1);
            opts.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
        DatabaseKind::Postgres => {
            opts.max_connections(max_connections);
            opts.map_sqlx_postgres_opts(|o| o.options([("synchronous_commit", "on")]));
        }
    }
    Database::connect(opts)
        .await
        .map_err(|source| StorageError::Connect { kind, source })
}

/// Starts a transaction for a change. On SQLite it takes the write lock at `BEGIN`
/// (`IMMEDIATE`): another process on the same file (the admin CLI beside a running server)
/// then waits up to the busy timeout, where a deferred transaction that read first would fail
/// at once with "database is locked" when it upgrades to a write. On PostgreSQL a plain
/// transaction.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Applies pending migrations. On PostgreSQL this runs in one transaction under an advisory
/// transaction lock, so replicas starting together (or the Helm migration Job) migrate once
/// and a failed migration leaves the schema as it was.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StorageError> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let txn = db.begin().await.map_err(StorageError::Migrate)?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7264013)")
            .await
            .map_err(StorageError::Migrate)?;
        migrations::Migrator::up(&txn, None)
            .await
            .map_err(StorageError::Migrate)?;
        txn.commit().await.map_err(StorageError::Migrate)
    } else {
        migrations::Migrator::up(db, None)
            .await
            .map_err(StorageError::Migrate)
    }
}

/// Whether the schema has pending migrations (`None` if it cannot be told).
pub async fn schema_is_current(db: &DatabaseConnection) -> Option<bool> {
    migrations::Migrator::get_pending_migrations(db)
        .await
        .ok()
        .map(|p| p.is_empty())
}

/// Cheap reachability check.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Statement;

    fn sql(s: &str) -> Statement {
        Statement::from_string(DatabaseBackend::Sqlite, s)
    }

    async fn count(db: &DatabaseConnection) -> anyhow::Result<i64> {
        let row = db
            .query_one_raw(sql("SELECT COUNT(*) AS n FROM t"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        Ok(row.try_get::<i64>("", "n")?)
    }

    /// The read pool reads the last committed state while the writer holds a transaction
    /// open (it does not queue behind it), sees the commit as soon as it is made, and cannot
    /// write.
    #[tokio::test]
    async fn sqlite_reads_run_beside_an_open_write_and_cannot_write() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let db = connect_url(&url, DatabaseKind::Sqlite, 1).await?;
        db.execute_unprepared("CREATE TABLE t (x INTEGER)").await?;
        db.execute_unprepared("INSERT INTO t VALUES (1)").await?;
        let reads = connect_sqlite_reads(&url, 2).await?;
        assert_eq!(count(&reads).await?, 1);

        let txn = begin(&db).await?;
        txn.execute_unprepared("INSERT INTO t VALUES (2)").await?;
        // The writer's only connection is inside the transaction: a read through `db` would
        // wait for it; the read pool answers with what is committed.
        let during = tokio::time::timeout(Duration::from_secs(5), count(&reads))
            .await
            .map_err(|_| anyhow::anyhow!("a read waited for the open write transaction"))??;
        assert_eq!(during, 1, "an uncommitted row was read");
        txn.commit().await?;
        assert_eq!(count(&reads).await?, 2, "a committed row was not read");

        let Err(refused) = reads.execute_unprepared("INSERT INTO t VALUES (3)").await else {
            anyhow::bail!("the read pool wrote");
        };
        assert!(refused.to_string().contains("readonly"), "{refused}");
        assert_eq!(count(&db).await?, 2);
        Ok(())
    }
}
