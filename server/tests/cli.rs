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

/// Every `$ref` in a JSON document that does not resolve to a node of the same document.
fn dangling_refs(doc: &serde_json::Value) -> (usize, Vec<String>) {
    fn walk(
        v: &serde_json::Value,
        root: &serde_json::Value,
        seen: &mut usize,
        bad: &mut Vec<String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    *seen += 1;
                    let resolved = r
                        .strip_prefix('#')
                        .and_then(|pointer| root.pointer(pointer));
                    if resolved.is_none() {
                        bad.push(r.clone());
                    }
                }
                for child in m.values() {
                    walk(child, root, seen, bad);
                }
            }
            serde_json::Value::Array(a) => {
                for child in a {
                    walk(child, root, seen, bad);
                }
            }
            _ => {}
        }
    }
    let (mut seen, mut bad) = (0, Vec::new());
    walk(doc, doc, &mut seen, &mut bad);
    (seen, bad)
}

#[test]
fn every_ref_in_the_api_document_resolves() {
    let doc: serde_json::Value = serde_json::from_str(&peerbridge_server::docs::openapi_json())
        .expect("the document is JSON");
    let (seen, bad) = dangling_refs(&doc);
    assert!(
        seen > 100,
        "the walk found the document's references ({seen})"
    );
    assert!(bad.is_empty(), "references to nothing: {bad:?}");
    // Control: a planted dangling reference is seen.
    let mut planted = doc.clone();
    planted["components"]["schemas"]["Problem"]["properties"]["planted"] =
        serde_json::json!({ "$ref": "#/components/schemas/DoesNotExist" });
    assert_eq!(
        dangling_refs(&planted).1,
        vec!["#/components/schemas/DoesNotExist".to_string()]
    );
}
