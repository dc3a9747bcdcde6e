//! Every public operation of the Rust SDK is reachable from the apps: each `pub fn` of
//! `PeerbridgeClient` has an exported method of the same name on the UniFFI object (or is
//! listed here with the exported call that covers it), and every exported method is in
//! the committed Kotlin bindings. Adding an SDK operation without exporting it fails here.

use std::collections::BTreeSet;
use std::path::Path;

mod sdk_surface;

use sdk_surface::{camel, pub_fns, sdk_operations};

/// SDK items that are reached through another exported call, or are not for apps.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    ("open", "the Peerbridge constructor"),
    (
        "open_with_options",
        "the Peerbridge constructor (phone defaults)",
    ),
    (
        "open_with_backend",
        "the browser's constructor (web-sdk/, over IndexedDB); phones open a directory",
    ),
    ("close_stream", "suspend()"),
    ("opened_excerpt", "open_flag (opens and verifies)"),
    ("verify_excerpt", "open_flag (opens and verifies)"),
];

#[test]
fn every_sdk_operation_is_exported_and_in_the_kotlin_bindings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let sdk = sdk_operations(root);
    let exported = pub_fns(&read("src/ffi.rs"));
    let covered: BTreeSet<&str> = COVERED_ELSEWHERE.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = sdk
        .iter()
        .filter(|n| !exported.contains(*n) && !covered.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "SDK operations not exported to the apps: {missing:?}"
    );

    let kotlin = read("bindings/kotlin/no/peerbridge/sdk/peerbridge.kt");
    for name in exported.iter().filter(|n| *n != "new" && *n != "code") {
        assert!(
            kotlin.contains(&format!("fun `{}`(", camel(name))),
            "{name} is not in the committed Kotlin bindings (run mobile-bindings/generate)"
        );
    }
}
