//! The `peerbridge` command line: serve, migrate, print the API document, verify the audit
//! chain, and the operator's day-one admin commands. Results go to stdout; logs to stderr.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use peerbridge_openapi::clinics::{ClinicCreate, InviteCreate, StaffCreate};
use peerbridge_openapi::{EnrolleeRole, Role, StaffRole};
use uuid::Uuid;

use crate::audit::{self, Verification};
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::startup::Application;
use crate::state::AppState;
use crate::{accounts, clinics, docs, storage, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "peerbridge",
    version,
    about = "Peerbridge peer-support messaging server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (SQLite + in-process bus unless DATABASE_URL / REDIS_URL are set).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Operator commands for day one.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Try the API by hand: act as one device against a running server (the quickstart).
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every environment variable the server reads, one per line.
    EnvVars,
    /// Print every metric family the server exports (names, types, help, label names; the
    /// values mean nothing): alert rules are checked against it.
    Metrics,
    /// Validate the configuration and exit (non-zero with the offending key on error).
    Check,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain; exits non-zero if any entry was altered or removed.
    Verify,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StaffRoleArg {
    Hp,
    /// Spelled as the API spells the role.
    #[value(name = "clinic_admin", alias = "clinic-admin")]
    ClinicAdmin,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EnrolleeArg {
    Peer,
    /// Spelled as the API spells the role.
    #[value(name = "service_user", alias = "service-user")]
    ServiceUser,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a clinic; prints its id.
    CreateClinic {
        #[arg(long)]
        name: String,
        #[arg(long)]
        network: Option<String>,
    },
    /// Create an operator account; prints its one-time setup code.
    CreateOperator {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
    },
    /// Create an HP or clinic-admin account; prints its one-time setup code.
    CreateStaff {
        #[arg(long)]
        clinic: Uuid,
        #[arg(long, value_enum)]
        role: StaffRoleArg,
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Print a bootstrap invite for a peer or service user of a clinic.
    CreateInvite {
        #[arg(long)]
        clinic: Uuid,
        #[arg(long, value_enum)]
        role: EnrolleeArg,
        #[arg(long)]
        hours: Option<u32>,
    },
    /// Clear the sign-in failure counters (the 429 lockout) of an account or an address,
    /// e.g. after a colleague mistyped their password too often. Give at least one.
    Unlock {
        /// A staff login name.
        #[arg(long)]
        login: Option<String>,
        /// A device id (device login).
        #[arg(long)]
        device: Option<Uuid>,
        /// A client address, as the server sees it (behind a proxy: the forwarded address).
        #[arg(long)]
        address: Option<String>,
    },
    /// Print freshly generated production key material (for a Kubernetes Secret).
    GenKeys,
    /// After adding a new field key and making it active: re-seal every identifying field
    /// still under an older key, so the old key can be removed.
    ReencryptFields,
}

/// Writes a line to stdout; a closed pipe (`peerbridge admin gen-keys | head -1`) ends the
/// command quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*)
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

mod dev;

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Dev { command } = cli.command {
        dev::run(command).await?;
        return Ok(0);
    }
    if let Command::Openapi = cli.command {
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), "{}", docs::openapi_json())
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            return Ok(0);
        }
        return Ok(0);
    }
    if let Command::Config {
        command: ConfigCommand::EnvVars,
    } = cli.command
    {
        for name in config::env_var_names() {
            say!("{name}");
        }
        return Ok(0);
    }
    if let Command::Config {
        command: ConfigCommand::Metrics,
    } = cli.command
    {
        say!("{}", crate::telemetry::Metrics::catalogue().trim_end());
        return Ok(0);
    }
    if let Command::Admin {
        command: AdminCommand::GenKeys,
    } = cli.command
    {
        use crate::crypto::keys::{generate_key_b64, public_of_seed};
        let seed = generate_key_b64();
        let kid = format!("k{}", chrono::Utc::now().format("%Y%m%d"));
        say!("PEERBRIDGE_JWT_SIGNING_KID={kid}");
        say!("PEERBRIDGE_JWT_SIGNING_KEY={seed}");
        say!(
            "# public key, for PEERBRIDGE_JWT_VERIFY_KEYS after the next rotation: {kid}:{}",
            public_of_seed(&seed).unwrap_or_default()
        );
        say!(
            "PEERBRIDGE_FIELD_KEYS=f{}:{}",
            chrono::Utc::now().format("%Y%m%d"),
            generate_key_b64()
        );
        say!("PEERBRIDGE_INDEX_KEY={}", generate_key_b64());
        let (vapid, vapid_public) = crate::crypto::keys::generate_vapid_b64();
        say!("PEERBRIDGE_VAPID_PRIVATE_KEY={vapid}");
        say!("# VAPID public key (served to browsers at /v1/push/vapid-key): {vapid_public}");
        return Ok(0);
    }

    let config = Config::load()?;
    let serving = matches!(cli.command, Command::Serve);
    telemetry::init_logging(
        serving && config.log_json,
        if serving { &config.log_level } else { "warn" },
        !serving,
    );
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        crate::crypto::Keys::check(&config).context("checking keys")?;
        say!("configuration ok ({:?} storage)", config.database_kind);
        return Ok(0);
    }
    match cli.command {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(port = app.port(), metrics_port = ?app.metrics_port(), "listening");
            app.run_with_signals().await?;
            Ok(0)
        }
        Command::Migrate => {
            let db = storage::connect(&config).await?;
            storage::migrate(&db).await?;
            say!("migrations applied");
            Ok(0)
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            if let Some(db_file) = config.sqlite_file().filter(|f| !f.exists()) {
                bail!(
                    "no Peerbridge database at {} (run this where `peerbridge serve` runs, \
                     or set PEERBRIDGE_DATA_DIR)",
                    db_file.display()
                );
            }
            let db = storage::connect(&config).await?;
            match audit::verify(&db).await? {
                Verification::Intact { entries } => {
                    say!("audit log intact: {entries} entries");
                    Ok(0)
                }
                Verification::Broken { problems } => {
                    say!("AUDIT LOG TAMPERED: {} problem(s)", problems.len());
                    for p in problems {
                        say!("  - {p}");
                    }
                    Ok(2)
                }
            }
        }
        Command::Admin { command } => {
            let state = AppState::open(config, Arc::new(SystemClock), true).await?;
            admin(&state, command).await?;
            Ok(0)
        }
        Command::Openapi | Command::Config { .. } | Command::Dev { .. } => Ok(0),
    }
}

async fn admin(state: &AppState, command: AdminCommand) -> anyhow::Result<()> {
    let api = |e: crate::error::ApiError| anyhow::anyhow!("{e}");
    match command {
        AdminCommand::CreateClinic { name, network } => {
            let c = clinics::create(state, None, &ClinicCreate { name, network })
                .await
                .map_err(api)?;
            say!("{}", c.id);
        }
        AdminCommand::CreateOperator { login, name } => {
            let req = StaffCreate {
                role: StaffRole::Hp,
                login,
                display_name: name,
                phone: None,
            };
            let s = accounts::service::create_staff(state, None, None, Role::Operator, &req)
                .await
                .map_err(api)?;
            say!("user_id: {}", s.user_id);
            say!("setup_code: {}", s.setup_code);
            say!("expires_at: {}", s.setup_code_expires_at.to_rfc3339());
        }
        AdminCommand::CreateStaff {
            clinic,
            role,
            login,
            name,
            phone,
        } => {
            let role = match role {
                StaffRoleArg::Hp => StaffRole::Hp,
                StaffRoleArg::ClinicAdmin => StaffRole::ClinicAdmin,
            };
            let req = StaffCreate {
                role,
                login,
                display_name: name,
                phone,
            };
            let s = accounts::service::create_staff(state, None, Some(clinic), role.into(), &req)
                .await
                .map_err(api)?;
            say!("user_id: {}", s.user_id);
            say!("setup_code: {}", s.setup_code);
            say!("expires_at: {}", s.setup_code_expires_at.to_rfc3339());
        }
        AdminCommand::CreateInvite {
            clinic,
            role,
            hours,
        } => {
            let role = match role {
                EnrolleeArg::Peer => EnrolleeRole::Peer,
                EnrolleeArg::ServiceUser => EnrolleeRole::ServiceUser,
            };
            let req = InviteCreate {
                role,
                display_name: None,
                phone: None,
                expires_in_hours: hours,
            };
            let inv = accounts::service::create_invite(state, None, clinic, &req)
                .await
                .map_err(api)?;
            say!("code: {}", inv.code);
            say!("qr_payload: {}", inv.qr_payload);
            say!("expires_at: {}", inv.expires_at.to_rfc3339());
        }
        AdminCommand::ReencryptFields => {
            let n = accounts::service::reencrypt_fields(state)
                .await
                .map_err(api)?;
            say!(
                "re-encrypted {n} values under key {}",
                state.keys.fields.active_kid()
            );
        }
        AdminCommand::Unlock {
            login,
            device,
            address,
        } => {
            if login.is_none() && device.is_none() && address.is_none() {
                bail!("give --login, --device or --address");
            }
            let mut accounts = Vec::new();
            if let Some(login) = login {
                accounts.push(crate::accounts::validate::login("--login", &login).map_err(api)?);
            }
            accounts.extend(device.map(|d| d.to_string()));
            let n = crate::auth::limits::unlock(state, &accounts, address.as_deref())
                .await
                .map_err(api)?;
            say!("cleared {n} failure counter(s)");
        }
        AdminCommand::GenKeys => bail!("handled before configuration"),
    }
    Ok(())
}

/// Exit with a clear message instead of a panic or a debug dump.
pub fn report(err: &anyhow::Error) {
    eprintln!("peerbridge: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Context helper for main.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
