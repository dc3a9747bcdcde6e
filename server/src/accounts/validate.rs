//! Parsing of account inputs at the edge: public keys, labels, names, phones, login names.

use ed25519_dalek::VerifyingKey;

use crate::crypto::b64_decode;
use crate::error::{ApiError, ApiResult};

/// A device's Ed25519 public key: 32 bytes that decode to a curve point.
pub fn public_key(field: &str, s: &str) -> ApiResult<VerifyingKey> {
    let bytes =
        b64_decode(s).ok_or_else(|| ApiError::invalid(field, "expected unpadded base64url"))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::invalid(field, "an Ed25519 public key is 32 bytes"))?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| ApiError::invalid(field, "not a valid Ed25519 public key"))
}

/// Free text of bounded length without control characters, stored trimmed. Exactly what
/// the published schema says (`maxLength` on the text as sent, and `TEXT_PATTERN`: at least
/// one character that is not white space, no control character).
pub fn text(field: &str, s: &str, max: usize) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_owned())
}

/// A login name, normalized to lower case: 3–254 characters, no spaces (none around it
/// either; apps trim what a person typed).
pub fn login(field: &str, s: &str) -> ApiResult<String> {
    let n = s.chars().count();
    if !(3..=254).contains(&n) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            field,
            "3–254 characters without spaces, e.g. a work e-mail",
        ));
    }
    Ok(s.to_lowercase())
}

/// A phone number: an optional leading +, then 5–15 digits, each of which may be followed by
/// one space or dash (the schema's `^\+?(?:[0-9][ -]?){5,15}$`, checked here without a regex).
pub fn phone(field: &str, s: &str) -> ApiResult<String> {
    let bad = || ApiError::invalid(field, "expected a phone number like +47 912 34 567");
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut digits = 0;
    let mut after_digit = false;
    for c in body.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            after_digit = true;
        } else if (c == ' ' || c == '-') && after_digit {
            after_digit = false;
        } else {
            return Err(bad());
        }
    }
    if !(5..=15).contains(&digits) {
        return Err(bad());
    }
    Ok(s.trim_end_matches([' ', '-']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_parsed_at_the_edge() {
        assert!(public_key("k", "AAAA").is_err());
        assert!(public_key("k", "!!!").is_err());
        let vk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        assert!(public_key("k", &crate::crypto::b64(vk.as_bytes())).is_ok());
        assert_eq!(
            login("l", "Nurse@Clinic.NO").expect("ok"),
            "nurse@clinic.no"
        );
        // The schema's pattern has no room for spaces, so neither has the server.
        assert!(login("l", " nurse@clinic.no").is_err());
        assert!(login("l", "a b").is_err());
        assert!(phone("p", "+47 912 34 567").is_ok());
        assert!(phone("p", "call me").is_err());
        assert!(text("t", "  ", 10).is_err());
        assert!(text("t", "a\u{0}b", 10).is_err());
        assert!(text("t", "ålesund", 7).is_ok());
    }
}
