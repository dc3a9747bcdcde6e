//! Staff secrets: argon2id password hashes and TOTP (RFC 6238, SHA-1, 6 digits, 30 s,
//! ±1 step, each step accepted once).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Hashes a password with argon2id (OWASP parameters: 19 MiB, 2 passes). CPU-heavy: call
/// from a blocking task.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Verifies a password against a stored hash; with no hash (unknown account) it still does
/// the same work, so timing does not reveal whether the account exists.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| hash_password("not-a-real-password-but-same-cost").unwrap_or_default());
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// Password rules: long enough to resist guessing, short enough to hash cheaply.
pub fn check_password_policy(password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < 12 {
        return Err("passwords are at least 12 characters");
    }
    if n > 256 {
        return Err("passwords are at most 256 characters");
    }
    Ok(())
}

pub const TOTP_STEP: u64 = 30;

/// A new random TOTP secret (160 bits).
pub fn new_totp_secret() -> Vec<u8> {
    crate::crypto::random_bytes::<20>().to_vec()
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        TOTP_STEP,
        secret.to_vec(),
        Some("Peerbridge".into()),
        account.replace(':', "_"),
    )
    .ok()
}

/// Base32 secret and `otpauth://` URI for an authenticator app.
pub fn totp_provisioning(secret: &[u8], account: &str) -> Option<(String, String)> {
    let t = totp(secret, account)?;
    Some((t.get_secret_base32(), t.get_url()))
}

/// Checks a code at `now_unix` within ±1 step. Returns the matched step, which must be
/// greater than the last accepted one (replay protection is the caller's compare-and-set).
pub fn check_totp(secret: &[u8], code: &str, now_unix: i64, last_step: Option<i64>) -> Option<i64> {
    // Exactly six digits, as the schema says (no surrounding spaces).
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "x")?;
    let current = now_unix.max(0) / TOTP_STEP as i64;
    let mut matched = None;
    for step in [current - 1, current, current + 1] {
        if step < 0 {
            continue;
        }
        let expected = t.generate(step as u64 * TOTP_STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    matched.filter(|s| last_step.is_none_or(|last| *s > last))
}

/// The code an authenticator would show at `now_unix` (tests and the admin CLI).
pub fn totp_code_at(secret: &[u8], now_unix: i64) -> Option<String> {
    Some(totp(secret, "x")?.generate(now_unix.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("correct horse batterY", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("x", Some("not a phc string")));
    }

    #[test]
    fn a_totp_code_is_accepted_once_and_only_near_its_time() {
        let secret = new_totp_secret();
        let t0 = 1_800_000_000;
        let code = totp_code_at(&secret, t0).expect("code");
        let step = check_totp(&secret, &code, t0, None).expect("valid now");
        assert_eq!(
            check_totp(&secret, &code, t0, Some(step)),
            None,
            "replay refused"
        );
        assert!(
            check_totp(&secret, &code, t0 + 30, None).is_some(),
            "one step late ok"
        );
        assert!(
            check_totp(&secret, &code, t0 + 120, None).is_none(),
            "too late"
        );
        assert!(check_totp(&secret, "12345", t0, None).is_none());
        assert!(check_totp(&secret, "abcdef", t0, None).is_none());
    }
}
