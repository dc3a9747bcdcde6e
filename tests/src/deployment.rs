//! A production-style deployment for multi-process tests: shared keys and Redis settings
//! for the in-process app and the replica processes started from the real binary.

use peerbridge_server::config::RawConfig;
use peerbridge_server::crypto::keys::generate_key_b64;
use uuid::Uuid;

use crate::TestApp;
use crate::binary::{ServerProcess, command};

/// Shared production-style settings for the in-process app and the replica processes.
#[derive(Clone)]
pub struct Deployment {
    pub redis: String,
    pub prefix: String,
    jwt: String,
    field: String,
    index: String,
}

impl Deployment {
    pub fn new(redis: String) -> Self {
        Deployment {
            redis,
            prefix: format!("pbtest{}", Uuid::new_v4().simple()),
            jwt: generate_key_b64(),
            field: generate_key_b64(),
            index: generate_key_b64(),
        }
    }

    /// The embedded default: no Redis (each process its in-process bus), so only what the
    /// database holds is shared; with SQLite, the file.
    pub fn embedded() -> Self {
        Self::new(String::new())
    }

    pub fn configure(&self, c: &mut RawConfig) {
        c.redis_url = (!self.redis.is_empty()).then(|| self.redis.clone());
        c.redis_channel_prefix = self.prefix.clone();
        c.jwt_signing_kid = Some("k1".into());
        c.jwt_signing_key = Some(self.jwt.clone());
        c.field_keys = Some(format!("f1:{}", self.field));
        c.index_key = Some(self.index.clone());
    }

    pub async fn replica(&self, app: &TestApp) -> ServerProcess {
        self.replica_with(app, &[]).await
    }

    /// A replica with extra environment settings.
    pub async fn replica_with(&self, app: &TestApp, env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = command(app.db.dir.path());
        cmd.env("DATABASE_URL", &app.db.url);
        if !self.redis.is_empty() {
            cmd.env("REDIS_URL", &self.redis);
        }
        cmd.env("PEERBRIDGE_REDIS_CHANNEL_PREFIX", &self.prefix)
            .env("PEERBRIDGE_BIND", "127.0.0.1:0")
            .env("PEERBRIDGE_JWT_SIGNING_KID", "k1")
            .env("PEERBRIDGE_JWT_SIGNING_KEY", &self.jwt)
            .env("PEERBRIDGE_FIELD_KEYS", format!("f1:{}", self.field))
            .env("PEERBRIDGE_INDEX_KEY", &self.index)
            .env("PEERBRIDGE_SHUTDOWN_UNREADY_DELAY_SECS", "0")
            .env("PEERBRIDGE_LOG_LEVEL", "info");
        cmd.envs(env.iter().copied());
        let p = ServerProcess::start(cmd).await;
        p.wait_ready().await;
        p
    }
}
