//! The README's two commands build one set of artifacts: every crate `cargo run -p
//! peerbridge-server` compiles gets the same features as under `cargo test --workspace`, so
//! the first run after the tests recompiles nothing (it recompiled 63 crates, 15 minutes on
//! this machine, before `workspace-hack/`). Compared with `cargo tree`, which resolves
//! features as the build does; after a dependency change, `cargo hakari generate` brings the
//! two back together.

use std::collections::{BTreeMap, BTreeSet};

/// Package → the feature sets it is built with (a package built for the host and for the
/// target may have two).
fn resolved(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree", "--locked", "--prefix", "none", "--format", "{p}|{f}",
        ])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        let Some((pkg, features)) = line.split_once('|') else {
            continue;
        };
        // Workspace members print their path; the name and version identify them.
        let pkg = pkg.split(" (").next().unwrap_or(pkg).to_owned();
        map.entry(pkg).or_default().insert(features.to_owned());
    }
    map
}

fn differences(
    run: &BTreeMap<String, BTreeSet<String>>,
    test: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    run.iter()
        .filter(|(pkg, features)| test.get(*pkg) != Some(features))
        .map(|(pkg, features)| format!("{pkg}: run {features:?}, test {:?}", test.get(pkg)))
        .collect()
}

#[test]
fn the_server_run_and_the_workspace_tests_resolve_every_shared_crate_alike() {
    // `cargo run -p peerbridge-server`: normal and build dependencies of the server.
    let run = resolved(&["-p", "peerbridge-server", "-e", "normal,build"]);
    // `cargo test --workspace`: every member with its dev-dependencies.
    let test = resolved(&["--workspace", "-e", "normal,build,dev"]);
    assert!(
        run.len() > 100,
        "the server's graph was read ({} crates)",
        run.len()
    );
    let diff = differences(&run, &test);
    assert!(
        diff.is_empty(),
        "feature sets differ (run `cargo hakari generate`):\n{}",
        diff.join("\n")
    );
}

#[test]
fn the_comparison_sees_a_feature_that_only_one_side_enables() {
    let mut run = BTreeMap::new();
    run.insert(
        "serde_json v1".to_owned(),
        BTreeSet::from(["default,std".to_owned()]),
    );
    let mut test = run.clone();
    assert!(differences(&run, &test).is_empty());
    test.insert(
        "serde_json v1".to_owned(),
        BTreeSet::from(["default,std,unbounded_depth".to_owned()]),
    );
    assert_eq!(differences(&run, &test).len(), 1);
}
