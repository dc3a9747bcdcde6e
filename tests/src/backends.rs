//! Fresh storage per test and the application on top of it.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use peerbridge_server::clock::ManualClock;
use peerbridge_server::config::{Config, DatabaseKind, RawConfig};
use peerbridge_server::startup::{Application, ShutdownHandle};
use peerbridge_server::state::State;
use sea_orm::{ConnectionTrait, Database};

/// Storage backends a suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

pub fn postgres_admin_url() -> String {
    std::env::var("PB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("PB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether PostgreSQL answers; in CI its absence is a failure, elsewhere a skip.
pub async fn postgres_available() -> bool {
    let ok = match Database::connect(postgres_admin_url()).await {
        Ok(db) => db.execute_unprepared("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    if !ok {
        assert!(
            !in_ci(),
            "PostgreSQL is not reachable at {} (CI requires it)",
            postgres_admin_url()
        );
        eprintln!("NOTICE: PostgreSQL unreachable; skipping the PostgreSQL backend");
    }
    ok
}

/// Whether Redis answers; in CI its absence is a failure, elsewhere a skip.
pub async fn redis_available() -> bool {
    let ok = async {
        let client = redis::Client::open(redis_url()).ok()?;
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    }
    .await
    .is_some();
    if !ok {
        assert!(
            !in_ci(),
            "Redis is not reachable at {} (CI requires it)",
            redis_url()
        );
        eprintln!("NOTICE: Redis unreachable; skipping Redis tests");
    }
    ok
}

/// The backends this run covers: SQLite always, PostgreSQL when reachable (always in CI).
pub async fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if postgres_available().await {
        v.push(Backend::Postgres);
    }
    v
}

/// A fresh, empty database (and a data directory) that lives as long as this value.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let name = format!("pbtest_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(postgres_admin_url())
                    .await
                    .expect("pg admin");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                let base = postgres_admin_url();
                let url = match base.rsplit_once('/') {
                    Some((prefix, _)) => format!("{prefix}/{name}"),
                    None => panic!("PB_TEST_POSTGRES_URL needs a database path"),
                };
                TestDb {
                    backend,
                    url,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.backend {
            Backend::Sqlite => DatabaseKind::Sqlite,
            Backend::Postgres => DatabaseKind::Postgres,
        }
    }

    /// A direct connection (for tampering and inspection).
    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        peerbridge_server::storage::connect_url(&self.url, self.kind(), 2)
            .await
            .expect("connect test db")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, off the async runtime; leftovers are harmless test databases.
            let url = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    let admin = Database::connect(url).await.ok()?;
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// Settings for a test server: port 0, low brute-force limits, no shutdown delay.
pub fn test_raw_config(db: &TestDb) -> RawConfig {
    RawConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: db.dir.path().join("data").display().to_string(),
        database_url: Some(db.url.clone()),
        log_format: "pretty".into(),
        log_level: "warn".into(),
        auth_max_failures_per_account: 5,
        auth_max_failures_per_address: 50,
        shutdown_unready_delay_secs: 0,
        shutdown_drain_secs: 2,
        max_body_bytes: 64 * 1024,
        db_max_connections: 5,
        ..RawConfig::default()
    }
}

/// PostgreSQL runs as in production: with Redis fan-out (when reachable; always in CI), on
/// a channel prefix of its own database so replicas of one test share the bus and tests do
/// not hear each other.
async fn with_redis(raw: &mut RawConfig, db: &TestDb) {
    if db.backend == Backend::Postgres && redis_available().await {
        use sha2::Digest;
        raw.redis_url = Some(redis_url());
        let h = sha2::Sha256::digest(db.url.as_bytes());
        raw.redis_channel_prefix = format!("pbt{}", hex::encode(&h[..8]));
    }
}

/// A running application on a fresh database.
pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub state: State,
    pub db: Arc<TestDb>,
    pub shutdown: ShutdownHandle,
    /// Set when `metrics_bind` is configured.
    pub metrics_base: Option<String>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with adjusted settings.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut RawConfig)) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut raw = test_raw_config(&db);
        with_redis(&mut raw, &db).await;
        tweak(&mut raw);
        // Starts at the real time (MLS key package lifetimes are checked against it too),
        // on a whole minute so TOTP steps and token times are predictable; then it only
        // moves when the test moves it.
        let now = Utc::now().timestamp();
        let clock = ManualClock::new(Utc.timestamp_opt(now - now % 60, 0).unwrap());
        Self::spawn_on(Arc::new(db), raw, clock).await
    }

    /// Another replica on the same database and clock (e.g. after a key rotation).
    pub async fn spawn_sibling(&self, tweak: impl FnOnce(&mut RawConfig)) -> TestApp {
        let mut raw = test_raw_config(&self.db);
        with_redis(&mut raw, &self.db).await;
        tweak(&mut raw);
        Self::spawn_on(self.db.clone(), raw, self.clock.clone()).await
    }

    pub async fn spawn_on(db: Arc<TestDb>, raw: RawConfig, clock: ManualClock) -> TestApp {
        let config = Config::from_raw(raw).expect("valid test config");
        let app = Application::build_with_clock(config, Arc::new(clock.clone()))
            .await
            .expect("application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
        let state = app.state();
        let shutdown = app.shutdown_handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base,
            clock,
            state,
            db,
            shutdown,
            metrics_base,
        }
    }

    pub fn client(&self) -> crate::Client {
        crate::Client::new(&self.base)
    }

    pub fn now_unix(&self) -> i64 {
        use peerbridge_server::clock::Clock;
        self.clock.now().timestamp()
    }
}
