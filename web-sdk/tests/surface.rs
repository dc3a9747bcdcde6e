//! Every public operation of the Rust SDK is exported to the browser: each `pub fn` of
//! `PeerbridgeClient` has a line in `src/ops.rs` (or is listed here with the exported call
//! that covers it), and each line is that one SDK call under its own name (the export adds
//! no behaviour). Adding an SDK operation without exporting it fails here, natively, without
//! the wasm toolchain; the browser suite checks that the built package has every method.

use std::collections::BTreeSet;
use std::path::Path;

#[path = "../../mobile-bindings/tests/sdk_surface/mod.rs"]
mod sdk_surface;

use sdk_surface::camel;

/// SDK items reached through another exported call, or not for apps.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "open",
        "phones open a directory; the browser opens IndexedDB",
    ),
    ("open_with_options", "phones open a directory"),
    (
        "open_with_backend",
        "PeerbridgeWeb.open / openOnThisBrowser (web.rs)",
    ),
    ("device_public_key", "devicePublicKey (web.rs, synchronous)"),
    ("close_stream", "suspend() (web.rs)"),
    ("opened_excerpt", "openFlag (opens and verifies)"),
    ("verify_excerpt", "openFlag (opens and verifies)"),
];

/// `(jsName, rust_name, the SDK method the line calls)` for each line of `ops.rs`.
fn exports(src: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in src.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('"')
            && let Some((js, after)) = rest.split_once('"')
            && let Some(after) = after.trim_start().strip_prefix("fn ")
        {
            let name = after.split('(').next().unwrap_or_default().to_owned();
            current = Some((js.to_owned(), name));
        }
        if let Some((_, call)) = t.split_once("|sdk| sdk.")
            && let Some((js, name)) = current.take()
        {
            out.push((
                js,
                name,
                call.split('(').next().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

#[test]
fn every_sdk_operation_is_exported_to_the_browser_as_one_call() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk = sdk_surface::sdk_operations(&root.join("../mobile-bindings"));
    let ops = std::fs::read_to_string(root.join("src/ops.rs")).expect("ops.rs");
    let lines = exports(&ops);
    assert!(
        lines.len() > 80,
        "the scan found the exports: {}",
        lines.len()
    );
    for (js, name, call) in &lines {
        assert_eq!(
            name, call,
            "{js} calls the SDK's {call}, not its own {name}"
        );
        assert_eq!(js, &camel(name), "{name} is exported as {js}");
        assert!(sdk.contains(name), "{name} is not an SDK operation");
    }
    let exported: BTreeSet<&str> = lines.iter().map(|(_, n, _)| n.as_str()).collect();
    let covered: BTreeSet<&str> = COVERED_ELSEWHERE.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = sdk
        .iter()
        .filter(|n| !exported.contains(n.as_str()) && !covered.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "SDK operations not exported to the browser (add them to web-sdk/src/ops.rs): {missing:?}"
    );
}

#[test]
fn the_scan_sees_a_missing_export_and_a_mismatched_call() {
    let src = r#"
    "sendText" fn send_text(conversation: "string", text: "string") -> "Promise<string>"
        = |sdk| sdk.send_text(id(conversation)?, &arg::<String>(text)?).await;
    "syncAll" fn sync_all() -> "Promise<Event[]>" = |sdk| sdk.sync(x).await;
    "#;
    let lines = exports(src);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        ("sendText".into(), "send_text".into(), "send_text".into())
    );
    assert_ne!(
        lines[1].1, lines[1].2,
        "a line calling another operation is seen"
    );
}
