//! The published schema states exactly what the server's validators accept (issue 13): for
//! each kind of field, the `pattern` and length bounds read from the generated API document
//! and the server's own validator agree on a set of edge cases (blank, padded, control
//! characters, Unicode spaces, the length limit and one past it). A disagreement either way
//! is a contract bug: a client that follows the schema gets refused, or the schema promises a
//! refusal the server does not make.

use peerbridge_server::accounts::validate;
use regex::Regex;
use serde_json::Value;

struct Rule {
    pattern: Regex,
    min_length: Option<usize>,
    max_length: Option<usize>,
}

impl Rule {
    fn accepts(&self, s: &str) -> bool {
        let n = s.chars().count();
        self.pattern.is_match(s)
            && self.min_length.is_none_or(|m| n >= m)
            && self.max_length.is_none_or(|m| n <= m)
    }
}

fn rule(doc: &Value, schema: &str, field: &str) -> Rule {
    let p = &doc["components"]["schemas"][schema]["properties"][field];
    assert!(p.is_object(), "{schema}.{field} is not in the document");
    let pattern = p["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{schema}.{field} states no pattern"));
    Rule {
        pattern: Regex::new(pattern).expect("the pattern compiles"),
        min_length: p["minLength"].as_u64().map(|v| v as usize),
        max_length: p["maxLength"].as_u64().map(|v| v as usize),
    }
}

fn doc() -> Value {
    serde_json::from_str(&peerbridge_server::docs::openapi_json()).expect("json")
}

fn text_samples(max: usize) -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "  ",
        "\t",
        "\n",
        "a",
        " a ",
        "a b",
        "a\tb",
        "a\nb",
        "a\u{0}",
        "\u{7f}a",
        "\u{85}",
        "\u{a0}",
        "\u{a0}a",
        "\u{3000}",
        "\u{2028}",
        "\u{feff}",
        "\u{200b}",
        "ålesund",
        "Hanne Sykepleier",
        "😀",
        "a\u{9f}",
        "\u{1680}x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(max));
    v.push("a".repeat(max + 1));
    v.push(format!("{}a", " ".repeat(max)));
    v.push(format!(" {} ", "a".repeat(max - 2)));
    v
}

#[test]
fn required_text_fields_state_what_the_text_validator_accepts() {
    let doc = doc();
    for (schema, field, max) in [
        ("DeviceRegistration", "label", 64),
        ("StaffCreate", "display_name", 200),
        ("ClinicCreate", "name", 200),
        ("Topic", "label", 100),
        ("IntroductionCreate", "blurb_for_peer", 500),
        ("FlagNote", "note", 2000),
        ("SubjectRequest", "reason", 500),
        ("EscalationSettings", "notice_nb", 500),
        ("CrisisResource", "label", 200),
    ] {
        let r = rule(&doc, schema, field);
        assert_eq!(r.max_length, Some(max), "{schema}.{field}");
        for s in text_samples(max) {
            assert_eq!(
                r.accepts(&s),
                validate::text(field, &s, max).is_ok(),
                "{schema}.{field} disagrees on {s:?}"
            );
        }
    }
}

#[test]
fn optional_text_fields_accept_empty_as_absent_and_otherwise_what_text_accepts() {
    let doc = doc();
    for (schema, field, max) in [
        ("PeerProfileUpdate", "region", 100),
        ("PeerProfileUpdate", "availability", 200),
        ("Needs", "region", 100),
        ("CrisisResource", "description", 500),
        ("BoundaryReportCreate", "note", 1000),
    ] {
        let r = rule(&doc, schema, field);
        for s in text_samples(max) {
            let server = s.is_empty() || validate::text(field, &s, max).is_ok();
            assert_eq!(r.accepts(&s), server, "{schema}.{field} disagrees on {s:?}");
        }
    }
}

#[test]
fn logins_and_phone_numbers_state_what_their_validators_accept() {
    let doc = doc();
    let login = rule(&doc, "StaffCreate", "login");
    for s in [
        "",
        "ab",
        "abc",
        "Nurse@Clinic.no",
        " nurse@x.no",
        "nurse@x.no ",
        "a b c",
        "a\u{a0}bc",
        "a\u{0}bc",
        "ålesund@x.no",
        &"a".repeat(254),
        &"a".repeat(255),
    ] {
        assert_eq!(
            login.accepts(s),
            validate::login("login", s).is_ok(),
            "login disagrees on {s:?}"
        );
    }
    let phone = rule(&doc, "StaffCreate", "phone");
    for s in [
        "+47 912 34 567",
        "91234567",
        "12345",
        "1234",
        "+ 12345",
        "--12345",
        "1  2345",
        "12345-",
        "1-2-3-4-5",
        "+4791234567890123",
        "123456789012345",
        "1234567890123456",
        " 12345",
        "12345 ",
        "+",
        "",
        "++12345",
        "12a45",
    ] {
        assert_eq!(
            phone.accepts(s),
            validate::phone("phone", s).is_ok(),
            "phone disagrees on {s:?}"
        );
    }
}

#[test]
fn the_checker_sees_a_disagreement_when_there_is_one() {
    // A rule that forgot the "not blank" part must be caught by the comparison above.
    let loose = Rule {
        pattern: Regex::new(r"^[^\u0000-\u001f\u007f-\u009f]*$").expect("re"),
        min_length: Some(1),
        max_length: Some(10),
    };
    let caught = text_samples(10)
        .iter()
        .any(|s| loose.accepts(s) != validate::text("f", s, 10).is_ok());
    assert!(caught);
}
