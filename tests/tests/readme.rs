//! The README's quickstart, run literally: the shell blocks between the `quickstart` markers
//! are pasted into bash against a freshly started `peerbridge serve` in an empty directory.
//! Only `cargo` is replaced, by a shim that checks it is called as the README calls it
//! (`cargo run -q -p peerbridge-server -- …`) and runs the binary cargo would have built.
//! It proves a new user gets from nothing to an enrolled device and working API calls with
//! the commands as written (issue 13).

use std::path::Path;

use peerbridge_tests::binary::{ServerProcess, command, peerbridge_bin};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md")
}

/// The fenced `sh` block between `<!-- {marker}: … -->` and `<!-- /{marker} -->`.
fn block(readme: &str, marker: &str) -> String {
    let open = format!("<!-- {marker}:");
    let start = readme
        .find(&open)
        .unwrap_or_else(|| panic!("README has no `{open}` marker"));
    let rest = &readme[start..];
    let end = rest
        .find(&format!("<!-- /{marker} -->"))
        .unwrap_or_else(|| panic!("README's {marker} block is not closed"));
    let section = &rest[..end];
    let code_start = section.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let code_end = section[code_start..].find("```").expect("block end") + code_start;
    section[code_start..code_end].to_owned()
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_readme_quickstart_run_as_written_enrols_devices_and_calls_the_api() {
    let text = readme();
    let quickstart = block(&text, "quickstart");
    let integrator = block(&text, "quickstart-integrator");
    let ci = std::env::var_os("CI").is_some();
    let missing: Vec<&str> = ["curl", "jq", "openssl", "basenc", "oathtool"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            !ci,
            "the quickstart needs {missing:?} (installed by .ci/run)"
        );
        eprintln!("skipping: {missing:?} not installed");
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server_cmd = command(dir.path());
    server_cmd.env("PEERBRIDGE_BIND", "127.0.0.1:0");
    let mut server = ServerProcess::start(server_cmd).await;
    server.wait_ready().await;

    // `cargo run -q -p peerbridge-server -- ARGS` → the binary with ARGS, nothing else.
    let shim_dir = dir.path().join("shim");
    std::fs::create_dir(&shim_dir).expect("shim dir");
    let shim = shim_dir.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$1 $2 $3 $4 $5\" = \"run -q -p peerbridge-server --\" ] \
             || {{ echo \"unexpected cargo call: $*\" >&2; exit 97; }}\n\
             shift 5\nexec '{}' \"$@\"\n",
            peerbridge_bin().display()
        ),
    )
    .expect("shim");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        shim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Both blocks in one shell (the integrator block uses the first block's variables),
    // stopping at the first failing command.
    let script = format!("set -euo pipefail\n{quickstart}\n{integrator}\n");
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("PB", server.base())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quickstart failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        out.status,
        server.drain_log().join("\n")
    );

    // What each `/v1/me` printed, in order: the nurse, the service user's phone, the peer's
    // phone; then the rotated session's role and the clinic admin's setup.
    let me: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let roles: Vec<&str> = me.iter().filter_map(|v| v["role"].as_str()).collect();
    assert_eq!(roles, ["hp", "service_user", "peer"], "{stdout}");
    let bare: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(bare, ["service_user", "clinic_admin"], "{stdout}");
    // The helper's key files are private to the user.
    for key in ["nurse.key", "phone.key"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(key))
            .expect(key)
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
    }
    server.terminate();
}
