//! The command line as operators and CI use it: the committed API document is what the
//! binary prints (the freshness test), and `config env-vars` lists the settings it reads.
//! (These tests also make every workspace test run build the `peerbridge` binary that the
//! end-to-end suites start.)

use std::process::Command;

fn peerbridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peerbridge"))
        .args(args)
        .env_clear()
        .output()
        .expect("peerbridge runs")
}

#[test]
fn the_committed_openapi_json_matches_the_code() {
    let out = peerbridge(&["openapi"]);
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p peerbridge-server --test cli` \
         (or `cargo run -p peerbridge-server -- openapi > openapi/openapi.json`) and commit it"
    );
    let spec: serde_json::Value = serde_json::from_str(&generated).expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    for path in [
        "/livez",
        "/readyz",
        "/v1/auth/refresh",
        "/v1/clinics/{clinic_id}/invites",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} documented");
    }
}

#[test]
fn config_env_vars_lists_what_the_server_reads() {
    let out = peerbridge(&["config", "env-vars"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let names: Vec<&str> = text.lines().collect();
    for n in [
        "PEERBRIDGE_BIND",
        "PEERBRIDGE_METRICS_BIND",
        "PEERBRIDGE_SHUTDOWN_DRAIN_SECS",
        "PEERBRIDGE_JWT_SIGNING_KEY",
        "PEERBRIDGE_FIELD_KEYS",
        "DATABASE_URL",
        "REDIS_URL",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

#[test]
fn gen_keys_prints_usable_production_key_material() {
    let out = peerbridge(&["admin", "gen-keys"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let vars: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let raw = peerbridge_server::config::RawConfig {
        jwt_signing_kid: vars
            .iter()
            .find(|(k, _)| k == "PEERBRIDGE_JWT_SIGNING_KID")
            .map(|v| v.1.clone()),
        jwt_signing_key: vars
            .iter()
            .find(|(k, _)| k == "PEERBRIDGE_JWT_SIGNING_KEY")
            .map(|v| v.1.clone()),
        field_keys: vars
            .iter()
            .find(|(k, _)| k == "PEERBRIDGE_FIELD_KEYS")
            .map(|v| v.1.clone()),
        index_key: vars
            .iter()
            .find(|(k, _)| k == "PEERBRIDGE_INDEX_KEY")
            .map(|v| v.1.clone()),
        data_dir: "/nonexistent/never-written".into(),
        ..Default::default()
    };
    let config = peerbridge_server::config::Config::from_raw(raw).expect("valid");
    let keys =
        peerbridge_server::crypto::Keys::load(&config).expect("keys load without a dev file");
    assert!(!keys.development);
}
