//! `peerbridge dev …`: act as one device against a running server, so a person can try the
//! API by hand (the README's quickstart) without writing code. It makes the Ed25519 device
//! key, computes the TOTP code from the secret the server returns and signs login
//! challenges, then prints the session as shell variables for `eval`. Real apps use the SDK
//! (`mobile-bindings/`); the key file here is a development convenience (mode 0600, never
//! overwritten) and not how a phone keeps its key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use ed25519_dalek::{Signer, SigningKey};
use peerbridge_openapi::auth::{
    Challenge, ChallengeRequest, DeviceLogin, DeviceRegistration, InviteRedeem, Session,
    StaffSetupBegin, StaffSetupComplete, TotpProvisioning,
};
use peerbridge_openapi::error::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Finish a staff account's setup (HP, clinic admin or operator): set the password, make
    /// a device key (saved to --key-file), confirm a TOTP code computed from the returned
    /// secret. Prints the session (and the TOTP secret for an authenticator app).
    StaffSetup {
        /// The one-time setup code `admin create-staff` printed.
        #[arg(long)]
        setup_code: String,
        /// The password to set (12–256 characters).
        #[arg(long, env = "PEERBRIDGE_DEV_PASSWORD", hide_env_values = true)]
        password: String,
        #[command(flatten)]
        device: NewDevice,
    },
    /// Redeem an invite code with a new device key (saved to --key-file); prints the session.
    Redeem {
        /// The invite code as printed or typed (case, dashes and spaces do not matter).
        #[arg(long)]
        code: String,
        #[command(flatten)]
        device: NewDevice,
    },
    /// Log a saved device in again by challenge–response; prints a fresh session.
    Login {
        /// The key file `staff-setup` or `redeem` wrote.
        #[arg(long)]
        key_file: PathBuf,
        /// Server base URL (default: the one the key file was made against).
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct NewDevice {
    /// Server base URL.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// Where to save the new device key (refused if the file exists).
    #[arg(long)]
    key_file: PathBuf,
    /// The device's label, shown to the user and their clinic.
    #[arg(long, default_value = "Terminal")]
    label: String,
}

/// What the key file holds: enough to log the device in again.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    server: String,
    user_id: Uuid,
    device_id: Uuid,
    /// The Ed25519 seed, unpadded base64url.
    seed: String,
}

pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("starting the HTTP client")?;
    match command {
        DevCommand::StaffSetup {
            setup_code,
            password,
            device,
        } => {
            refuse_existing(&device.key_file)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let prov: TotpProvisioning = post(
                &http,
                &device.server,
                "/v1/staff/setup",
                &StaffSetupBegin {
                    setup_code: setup_code.clone(),
                    password,
                },
            )
            .await?;
            let secret = data_encoding::BASE32_NOPAD
                .decode(prov.totp_secret.trim_end_matches('=').as_bytes())
                .context("the server's TOTP secret is not base32")?;
            let now = chrono::Utc::now().timestamp();
            let totp_code = crate::auth::secrets::totp_code_at(&secret, now)
                .context("computing the TOTP code")?;
            let session: Session = post(
                &http,
                &device.server,
                "/v1/staff/setup/complete",
                &StaffSetupComplete {
                    setup_code,
                    totp_code,
                    device: registration(&key, &device.label),
                },
            )
            .await?;
            save(&device, &key, &session)?;
            print_session(&session);
            say_var("TOTP_SECRET", &prov.totp_secret);
        }
        DevCommand::Redeem { code, device } => {
            refuse_existing(&device.key_file)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let session: Session = post(
                &http,
                &device.server,
                "/v1/invites/redeem",
                &InviteRedeem {
                    code,
                    device: registration(&key, &device.label),
                },
            )
            .await?;
            save(&device, &key, &session)?;
            print_session(&session);
        }
        DevCommand::Login { key_file, server } => {
            let text = std::fs::read_to_string(&key_file)
                .with_context(|| format!("reading {}", key_file.display()))?;
            let saved: KeyFile = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a peerbridge dev key file", key_file.display())
            })?;
            let seed: [u8; 32] = crate::crypto::b64_decode(&saved.seed)
                .and_then(|s| s.try_into().ok())
                .with_context(|| format!("{} holds no valid key", key_file.display()))?;
            let key = SigningKey::from_bytes(&seed);
            let server = server.unwrap_or(saved.server);
            let challenge: Challenge = post(
                &http,
                &server,
                "/v1/auth/challenge",
                &ChallengeRequest {
                    device_id: saved.device_id,
                },
            )
            .await?;
            let message = peerbridge_openapi::signed::login_challenge_message(
                challenge.challenge_id,
                &challenge.nonce,
            );
            let session: Session = post(
                &http,
                &server,
                "/v1/auth/device",
                &DeviceLogin {
                    challenge_id: challenge.challenge_id,
                    device_id: saved.device_id,
                    signature: crate::crypto::b64(&key.sign(&message).to_bytes()),
                },
            )
            .await?;
            print_session(&session);
        }
    }
    Ok(())
}

fn registration(key: &SigningKey, label: &str) -> DeviceRegistration {
    DeviceRegistration {
        public_key: crate::crypto::b64(key.verifying_key().as_bytes()),
        label: label.to_owned(),
    }
}

fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "{} exists; choose another --key-file (a saved device key is never overwritten)",
            path.display()
        );
    }
    Ok(())
}

fn save(device: &NewDevice, key: &SigningKey, session: &Session) -> anyhow::Result<()> {
    use std::io::Write as _;
    let body = serde_json::to_string_pretty(&KeyFile {
        server: device.server.clone(),
        user_id: session.user_id,
        device_id: session.device_id,
        seed: crate::crypto::b64(key.as_bytes()),
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&device.key_file)
        .with_context(|| format!("creating {}", device.key_file.display()))?;
    file.write_all(body.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", device.key_file.display()))
}

async fn post<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    server: &str,
    path: &str,
    body: &impl Serialize,
) -> anyhow::Result<T> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let res = http
        .post(&url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {path}: is the server running at {server}?"))?;
    let status = res.status();
    let bytes = res.bytes().await.with_context(|| format!("POST {path}"))?;
    if !status.is_success() {
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) => bail!(
                "POST {path}: {} {}{}",
                p.status,
                p.code.as_str(),
                p.detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            Err(_) => bail!("POST {path}: HTTP {status}"),
        }
    }
    serde_json::from_slice(&bytes).with_context(|| format!("POST {path}: unexpected answer"))
}

fn print_session(s: &Session) {
    say_var("ACCESS", &s.access_token);
    say_var("REFRESH", &s.refresh_token);
    say_var("USER_ID", &s.user_id.to_string());
    say_var("DEVICE_ID", &s.device_id.to_string());
    if let Some(clinic) = s.clinic_id {
        say_var("CLINIC", &clinic.to_string());
    }
    say_var("ROLE", s.role.as_str());
}

/// `NAME='value'` for `eval "$(peerbridge dev …)"`; values never hold a quote, but one
/// would be escaped.
fn say_var(name: &str, value: &str) {
    say!("{name}='{}'", value.replace('\'', r"'\''"));
}
