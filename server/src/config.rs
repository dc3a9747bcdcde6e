//! Typed settings from defaults, an optional TOML file (`PEERBRIDGE_CONFIG`) and
//! `PEERBRIDGE_*` environment variables (plus the conventional `DATABASE_URL` and `REDIS_URL`),
//! validated once at start with an error that names the offending key.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Environment variable prefix of every setting.
pub const ENV_PREFIX: &str = "PEERBRIDGE_";

/// The settings as read, before validation. Field names are the setting keys: `bind` is
/// `PEERBRIDGE_BIND` in the environment and `bind` in the file. Deliberately no `Debug`:
/// it holds secrets in the clear.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub bind: String,
    pub metrics_bind: Option<String>,
    pub data_dir: String,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_channel_prefix: String,
    pub public_url: String,
    pub web_dir: String,
    pub migrate_on_start: bool,
    pub log_format: String,
    pub log_level: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub jwt_signing_key: Option<String>,
    pub jwt_signing_kid: Option<String>,
    pub jwt_verify_keys: Option<String>,
    pub field_keys: Option<String>,
    pub field_key_active: Option<String>,
    pub index_key: Option<String>,
    pub invite_ttl_hours: u32,
    pub setup_code_ttl_hours: u32,
    pub auth_max_failures_per_account: u32,
    pub auth_max_failures_per_address: u32,
    pub auth_failure_window_secs: u64,
    pub trust_forwarded_for: bool,
    pub shutdown_unready_delay_secs: u64,
    pub shutdown_drain_secs: u64,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub message_retention_days: u32,
    pub push_allowed_hosts: Option<String>,
    pub vapid_private_key: Option<String>,
    pub vapid_subject: String,
    pub ladder_interval_ms: u64,
    pub request_body_timeout_secs: u64,
    pub refresh_reuse_grace_secs: u64,
    pub max_waiting_writes: u32,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            bind: "127.0.0.1:8080".into(),
            metrics_bind: None,
            data_dir: "peerbridge-data".into(),
            database_url: None,
            redis_url: None,
            redis_channel_prefix: "peerbridge".into(),
            public_url: "http://127.0.0.1:8080".into(),
            web_dir: "web/dist".into(),
            migrate_on_start: true,
            log_format: "auto".into(),
            log_level: "info".into(),
            jwt_issuer: "peerbridge".into(),
            jwt_audience: "peerbridge-api".into(),
            access_token_ttl_secs: 600,
            refresh_token_ttl_days: 30,
            jwt_signing_key: None,
            jwt_signing_kid: None,
            jwt_verify_keys: None,
            field_keys: None,
            field_key_active: None,
            index_key: None,
            invite_ttl_hours: 72,
            setup_code_ttl_hours: 72,
            auth_max_failures_per_account: 5,
            auth_max_failures_per_address: 30,
            auth_failure_window_secs: 900,
            trust_forwarded_for: false,
            shutdown_unready_delay_secs: 0,
            shutdown_drain_secs: 20,
            max_body_bytes: 256 * 1024,
            db_max_connections: 10,
            message_retention_days: 30,
            push_allowed_hosts: None,
            vapid_private_key: None,
            vapid_subject: "mailto:operator@peerbridge.invalid".into(),
            ladder_interval_ms: 5000,
            request_body_timeout_secs: 15,
            refresh_reuse_grace_secs: 10,
            max_waiting_writes: 2048,
        }
    }
}

/// Where a setting was wrong, named as the operator would set it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("{ENV_PREFIX}{}", field.to_uppercase()),
        reason: reason.into(),
    }
}

/// Storage backend chosen by `database_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// Validated settings. `Debug` is safe to log: secrets are redacted by `SecretString`.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// When set, `/metrics` is served only on this separate listener (keep it off the Ingress).
    pub metrics_bind: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub database_kind: DatabaseKind,
    pub redis_url: Option<SecretString>,
    pub redis_channel_prefix: String,
    pub public_url: String,
    /// The built web app (`web/build`): served at `/` with a strict CSP. Missing is not an
    /// error: the API runs without it, and `/` says how to build it.
    pub web_dir: PathBuf,
    pub migrate_on_start: bool,
    pub log_json: bool,
    pub log_level: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    pub jwt_signing_key: Option<SecretString>,
    pub jwt_signing_kid: Option<String>,
    pub jwt_verify_keys: Option<String>,
    pub field_keys: Option<SecretString>,
    pub field_key_active: Option<String>,
    pub index_key: Option<SecretString>,
    pub invite_ttl_hours: u32,
    pub setup_code_ttl_hours: u32,
    pub auth_max_failures_per_account: u32,
    pub auth_max_failures_per_address: u32,
    pub auth_failure_window: chrono::Duration,
    pub trust_forwarded_for: bool,
    pub shutdown_unready_delay: std::time::Duration,
    pub shutdown_drain: std::time::Duration,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    /// Ciphertext is deleted once every member device acknowledged it, or after this.
    pub message_retention: chrono::Duration,
    /// How often the escalation ladder looks for overdue flags.
    pub ladder_interval: std::time::Duration,
    /// Push gateways wake-ups may be sent to; empty disables push. `host` allows
    /// `https://host` on port 443, `host:port` HTTPS on that port, and only an entry written
    /// as `http://host:port` allows plain HTTP (a gateway inside the cluster).
    pub push_allowed_hosts: Vec<String>,
    /// The VAPID (RFC 8292) P-256 private key for Web Push, base64url of the 32-byte scalar.
    /// Every replica must share it: browsers bind their subscriptions to its public key.
    /// Without it (and without development keys) Web Push is off; UnifiedPush still works.
    pub vapid_private_key: Option<SecretString>,
    /// The operator contact push services may use (`mailto:` or `https:`), sent as the
    /// VAPID `sub` claim.
    pub vapid_subject: String,
    /// A request body must arrive whole within this long of the request's head.
    pub request_body_timeout: std::time::Duration,
    /// A refresh token presented again this soon after its rotation (an app's resume and
    /// its background sync racing) gets a session too, instead of counting as reuse.
    pub refresh_reuse_grace: chrono::Duration,
    /// Sends (and, apart, acknowledgements) that may wait for their writer at once; past
    /// it they are refused with 503 and `Retry-After` instead of queueing in memory.
    pub max_waiting_writes: u32,
}

impl Config {
    /// The SQLite database file, when storage is SQLite on a file.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        if self.database_kind != DatabaseKind::Sqlite {
            return None;
        }
        use secrecy::ExposeSecret;
        let url = self.database_url.expose_secret();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

/// Every environment variable the server reads (for deployment checks and docs).
pub fn env_var_names() -> Vec<String> {
    let mut names: Vec<String> = serde_aux::serde_introspection::serde_introspect::<RawConfig>()
        .iter()
        .map(|f| format!("{ENV_PREFIX}{}", f.to_uppercase()))
        .collect();
    names.push(format!("{ENV_PREFIX}CONFIG"));
    names.push("DATABASE_URL".into());
    names.push("REDIS_URL".into());
    names.push("RUST_LOG".into());
    names
}

impl Config {
    /// Loads from the process environment and the optional `PEERBRIDGE_CONFIG` file.
    pub fn load() -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Ok(path) = std::env::var(format!("{ENV_PREFIX}CONFIG")) {
            if !std::path::Path::new(&path).exists() {
                return Err(invalid("config", format!("file {path} does not exist")));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]));
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        Config::from_raw(raw)
    }

    /// Validates raw settings.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let bind: SocketAddr = raw
            .bind
            .parse()
            .map_err(|_| invalid("bind", "expected host:port, e.g. 127.0.0.1:8080"))?;
        let metrics_bind = match raw.metrics_bind.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| invalid("metrics_bind", "expected host:port"))?,
            ),
        };
        let data_dir = PathBuf::from(&raw.data_dir);
        let (database_url, database_kind) = match raw.database_url.filter(|s| !s.is_empty()) {
            None => {
                let path = data_dir.join("peerbridge.db");
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    DatabaseKind::Sqlite,
                )
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url, DatabaseKind::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url, DatabaseKind::Sqlite),
            Some(_) => {
                return Err(invalid(
                    "database_url",
                    "expected postgres://… or sqlite:… (value not shown)",
                ));
            }
        };
        let redis_url = match raw.redis_url.filter(|s| !s.is_empty()) {
            None => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(SecretString::from(url))
            }
            Some(_) => {
                return Err(invalid(
                    "redis_url",
                    "expected redis://… or rediss://… (value not shown)",
                ));
            }
        };
        if raw.redis_channel_prefix.is_empty()
            || !raw
                .redis_channel_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "redis_channel_prefix",
                "expected letters, digits, - or _",
            ));
        }
        // `auto`: readable lines for a person at a terminal, JSON for a log collector.
        let log_json = match raw.log_format.as_str() {
            "json" => true,
            "pretty" => false,
            "auto" => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
            _ => return Err(invalid("log_format", "expected auto, json or pretty")),
        };
        if !(30..=900).contains(&raw.access_token_ttl_secs) {
            return Err(invalid(
                "access_token_ttl_secs",
                "must be between 30 and 900 (access tokens live at most 15 minutes)",
            ));
        }
        if !(1..=90).contains(&raw.refresh_token_ttl_days) {
            return Err(invalid(
                "refresh_token_ttl_days",
                "must be between 1 and 90",
            ));
        }
        if !(1..=720).contains(&raw.invite_ttl_hours) {
            return Err(invalid("invite_ttl_hours", "must be between 1 and 720"));
        }
        if !(1..=720).contains(&raw.setup_code_ttl_hours) {
            return Err(invalid("setup_code_ttl_hours", "must be between 1 and 720"));
        }
        if raw.auth_max_failures_per_account == 0 || raw.auth_max_failures_per_address == 0 {
            return Err(invalid(
                "auth_max_failures_per_account",
                "failure limits must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&raw.auth_failure_window_secs) {
            return Err(invalid(
                "auth_failure_window_secs",
                "must be between 1 and 86400",
            ));
        }
        if raw.jwt_issuer.is_empty() {
            return Err(invalid("jwt_issuer", "must not be empty"));
        }
        if raw.jwt_audience.is_empty() {
            return Err(invalid("jwt_audience", "must not be empty"));
        }
        if raw.jwt_signing_key.is_some() != raw.jwt_signing_kid.is_some() {
            return Err(invalid(
                "jwt_signing_kid",
                "set jwt_signing_key and jwt_signing_kid together",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&raw.max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if !(1..=200).contains(&raw.db_max_connections) {
            return Err(invalid("db_max_connections", "must be between 1 and 200"));
        }
        if !(1..=365).contains(&raw.message_retention_days) {
            return Err(invalid(
                "message_retention_days",
                "must be between 1 and 365",
            ));
        }
        if !(50..=60_000).contains(&raw.ladder_interval_ms) {
            return Err(invalid(
                "ladder_interval_ms",
                "must be between 50 and 60000",
            ));
        }
        if !(1..=300).contains(&raw.request_body_timeout_secs) {
            return Err(invalid(
                "request_body_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if !(16..=65_536).contains(&raw.max_waiting_writes) {
            return Err(invalid(
                "max_waiting_writes",
                "must be between 16 and 65536",
            ));
        }
        if raw.refresh_reuse_grace_secs > 60 {
            return Err(invalid(
                "refresh_reuse_grace_secs",
                "must be between 0 and 60",
            ));
        }
        let push_allowed_hosts: Vec<String> = raw
            .push_allowed_hosts
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if push_allowed_hosts
            .iter()
            .any(|h| crate::notify::push::Gateway::parse(h).is_none())
        {
            return Err(invalid(
                "push_allowed_hosts",
                "expected comma-separated host, host:port or http(s)://host[:port] entries",
            ));
        }
        let vapid_subject = raw.vapid_subject.trim().to_owned();
        if !(vapid_subject.starts_with("mailto:") || vapid_subject.starts_with("https://"))
            || vapid_subject.len() > 200
            || vapid_subject
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(
                "vapid_subject",
                "expected a mailto: or https: contact of at most 200 characters",
            ));
        }
        if !raw.public_url.starts_with("http://") && !raw.public_url.starts_with("https://") {
            return Err(invalid("public_url", "expected http(s)://host[:port]"));
        }
        Ok(Config {
            bind,
            metrics_bind,
            data_dir,
            database_url: SecretString::from(database_url),
            database_kind,
            redis_url,
            redis_channel_prefix: raw.redis_channel_prefix,
            public_url: raw.public_url.trim_end_matches('/').to_owned(),
            web_dir: PathBuf::from(raw.web_dir),
            migrate_on_start: raw.migrate_on_start,
            log_json,
            log_level: raw.log_level,
            jwt_issuer: raw.jwt_issuer,
            jwt_audience: raw.jwt_audience,
            access_token_ttl: chrono::Duration::seconds(raw.access_token_ttl_secs as i64),
            refresh_token_ttl: chrono::Duration::days(raw.refresh_token_ttl_days as i64),
            jwt_signing_key: raw.jwt_signing_key.map(SecretString::from),
            jwt_signing_kid: raw.jwt_signing_kid,
            jwt_verify_keys: raw.jwt_verify_keys.filter(|s| !s.is_empty()),
            field_keys: raw
                .field_keys
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            field_key_active: raw.field_key_active.filter(|s| !s.is_empty()),
            index_key: raw
                .index_key
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            invite_ttl_hours: raw.invite_ttl_hours,
            setup_code_ttl_hours: raw.setup_code_ttl_hours,
            auth_max_failures_per_account: raw.auth_max_failures_per_account,
            auth_max_failures_per_address: raw.auth_max_failures_per_address,
            auth_failure_window: chrono::Duration::seconds(raw.auth_failure_window_secs as i64),
            trust_forwarded_for: raw.trust_forwarded_for,
            shutdown_unready_delay: std::time::Duration::from_secs(raw.shutdown_unready_delay_secs),
            shutdown_drain: std::time::Duration::from_secs(raw.shutdown_drain_secs),
            max_body_bytes: raw.max_body_bytes,
            db_max_connections: raw.db_max_connections,
            message_retention: chrono::Duration::days(raw.message_retention_days as i64),
            ladder_interval: std::time::Duration::from_millis(raw.ladder_interval_ms),
            push_allowed_hosts,
            vapid_private_key: raw
                .vapid_private_key
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            vapid_subject,
            request_body_timeout: std::time::Duration::from_secs(raw.request_body_timeout_secs),
            refresh_reuse_grace: chrono::Duration::seconds(raw.refresh_reuse_grace_secs as i64),
            max_waiting_writes: raw.max_waiting_writes,
        })
    }
}

/// Figment errors name the key and its source (env var or file) but may quote the value;
/// keep the key and the kind of problem, never the value.
fn describe_figment_error(e: figment::Error) -> String {
    let mut out = Vec::new();
    for err in e {
        let key = err
            .path
            .last()
            .map(|k| format!("{ENV_PREFIX}{}", k.to_uppercase()))
            .unwrap_or_else(|| "(top level)".into());
        let what = match &err.kind {
            figment::error::Kind::UnknownField(name, _) => {
                format!(
                    "unknown setting {ENV_PREFIX}{} (check for a typo)",
                    name.to_uppercase()
                )
            }
            figment::error::Kind::InvalidType(actual, expected) => {
                format!("{key}: expected {expected}, found {actual}")
            }
            figment::error::Kind::InvalidValue(_, expected) => {
                format!("{key}: invalid value, expected {expected}")
            }
            other => format!("{key}: {other}"),
        };
        out.push(what);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_to_the_embedded_setup() {
        let c = Config::from_raw(RawConfig::default()).expect("defaults are valid");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_kind, DatabaseKind::Sqlite);
        assert!(c.redis_url.is_none());
        assert!(c.access_token_ttl <= chrono::Duration::minutes(15));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let raw = RawConfig {
            access_token_ttl_secs: 3600,
            ..RawConfig::default()
        };
        let err = Config::from_raw(raw).expect_err("too long").to_string();
        assert!(err.contains("PEERBRIDGE_ACCESS_TOKEN_TTL_SECS"), "{err}");
        let raw = RawConfig {
            database_url: Some("mysql://root:secretpw@db/x".into()),
            ..RawConfig::default()
        };
        let err = Config::from_raw(raw).expect_err("bad scheme").to_string();
        assert!(err.contains("PEERBRIDGE_DATABASE_URL"), "{err}");
        assert!(!err.contains("secretpw"), "{err}");
    }

    #[test]
    fn env_names_cover_every_setting() {
        let names = env_var_names();
        assert!(names.contains(&"PEERBRIDGE_BIND".to_string()));
        assert!(names.contains(&"PEERBRIDGE_SHUTDOWN_DRAIN_SECS".to_string()));
        assert!(names.contains(&"DATABASE_URL".to_string()));
        let fields = serde_aux::serde_introspection::serde_introspect::<RawConfig>();
        assert_eq!(fields.len() + 4, names.len());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let raw = RawConfig {
            database_url: Some("postgres://u:hunter2hunter2@h/db".into()),
            index_key: Some("c2VjcmV0c2VjcmV0".into()),
            vapid_private_key: Some("dmFwaWRzZWNyZXQ".into()),
            ..RawConfig::default()
        };
        let c = Config::from_raw(raw).expect("valid");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("c2VjcmV0c2VjcmV0"), "{dbg}");
        assert!(!dbg.contains("dmFwaWRzZWNyZXQ"), "{dbg}");
    }

    #[test]
    fn the_vapid_subject_is_an_operator_contact() {
        for ok in [
            "mailto:ops@clinic.example",
            "https://clinic.example/contact",
        ] {
            let raw = RawConfig {
                vapid_subject: ok.into(),
                ..RawConfig::default()
            };
            assert!(Config::from_raw(raw).is_ok(), "{ok}");
        }
        for bad in [
            "ops@clinic.example",
            "http://clinic.example",
            "mailto:a b",
            "",
        ] {
            let raw = RawConfig {
                vapid_subject: bad.into(),
                ..RawConfig::default()
            };
            let err = Config::from_raw(raw).expect_err(bad).to_string();
            assert!(err.contains("PEERBRIDGE_VAPID_SUBJECT"), "{err}");
        }
    }
}
