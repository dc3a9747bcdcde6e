//! Short, typable, high-entropy one-time codes (invites, staff setup): 16 Crockford base32
//! characters (80 bits), shown in groups of four. Parsing forgives case, spaces, dashes and
//! the usual look-alikes (O→0, I/L→1), so a code read aloud over the phone still works.

use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;

/// Number of significant characters in a code.
pub const CODE_LEN: usize = 16;

fn crockford() -> &'static Encoding {
    static ENC: OnceLock<Encoding> = OnceLock::new();
    ENC.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
        spec.encoding()
            .unwrap_or_else(|_| data_encoding::BASE32_NOPAD.clone())
    })
}

/// A fresh code, formatted for display (`XXXX-XXXX-XXXX-XXXX`).
pub fn generate() -> String {
    let raw = crockford().encode(&super::random_bytes::<10>());
    raw.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical form of a typed code, or `None` when it cannot be one.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_LEN);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii_digit() || c.is_ascii_uppercase() => c,
            _ => return None,
        };
        if c == 'U' {
            return None;
        }
        out.push(c);
        if out.len() > CODE_LEN {
            return None;
        }
    }
    (out.len() == CODE_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_normalize_to_themselves_without_dashes() {
        for _ in 0..100 {
            let code = generate();
            assert_eq!(code.len(), 19);
            let norm = normalize(&code).expect("valid");
            assert_eq!(norm, code.replace('-', ""));
        }
    }

    #[test]
    fn typing_mistakes_are_forgiven_but_garbage_is_not() {
        assert_eq!(
            normalize("abcd efgh-jkmn-pq0o").as_deref(),
            Some("ABCDEFGHJKMNPQ00")
        );
        assert_eq!(
            normalize("ilIL-0000-0000-0000").as_deref(),
            Some("1111000000000000")
        );
        assert!(normalize("ABCD").is_none());
        assert!(normalize("ABCD-EFGH-JKMN-PQRS-T").is_none());
        assert!(normalize("ABCD-EFGH-JKMN-PQR!").is_none());
        assert!(normalize("ÆBCD-EFGH-JKMN-PQRS").is_none());
    }
}
