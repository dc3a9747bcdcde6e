//! The SDK's public operations, read from its source: every `pub fn` / `pub async fn` of
//! `PeerbridgeClient` across `src/client/` and the operation modules. Shared by the surface
//! tests of the UniFFI export (`ffi_surface.rs`) and the browser export
//! (`web-sdk/tests/surface.rs`), so both check against the same list.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

/// The names of the `pub fn`s declared at method level (four spaces in) in `src`.
pub fn pub_fns(src: &str) -> BTreeSet<String> {
    src.lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("    pub async fn ")
                .or_else(|| l.strip_prefix("    pub fn "))?;
            Some(rest.split(['(', '<']).next()?.to_owned())
        })
        .collect()
}

/// Every public operation of the SDK (`mobile-bindings` at `root`).
pub fn sdk_operations(root: &Path) -> BTreeSet<String> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let mut files: Vec<String> = std::fs::read_dir(root.join("src/client"))
        .expect("src/client")
        .map(|e| {
            format!(
                "src/client/{}",
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    assert!(files.len() > 3, "the client module is split across files");
    files.extend(
        [
            "src/account.rs",
            "src/authority.rs",
            "src/clinic.rs",
            "src/introductions.rs",
            "src/escalation.rs",
            "src/stream.rs",
        ]
        .map(String::from),
    );
    let mut sdk = BTreeSet::new();
    for f in &files {
        sdk.extend(pub_fns(&read(f)));
    }
    assert!(sdk.len() > 80, "the scan found the SDK's operations");
    sdk
}

/// `snake_case` → `camelCase`, as the Kotlin bindings and the browser package spell names.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
