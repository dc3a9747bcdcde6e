//! The real `peerbridge` binary: acceptance 1 (ready with no configuration; ready on
//! PostgreSQL + Redis from the environment), graceful shutdown, the admin commands, and
//! acceptance 5's promise that no log line carries a password, token, TOTP secret or name.

use std::time::Duration;

use peerbridge_mls::DeviceIdentity;
use peerbridge_openapi::auth::{Session, TotpProvisioning};
use peerbridge_openapi::clinics::{InviteCreated, StaffCreated};
use peerbridge_tests::api::device_json;
use peerbridge_tests::backends::{postgres_available, redis_available};
use peerbridge_tests::binary::{ServerProcess, command};
use peerbridge_tests::{Backend, Client, TestDb, redis_url};
use serde_json::json;

#[tokio::test]
async fn serve_in_an_empty_directory_with_no_configuration_becomes_ready_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    // Nothing but PATH: the embedded default must need nothing else. A short unready
    // delay keeps the test quick, and port 0 keeps it off the default 127.0.0.1:8080 (where
    // the README's first command may be running on the same machine; the default itself is
    // checked in `config`'s unit tests). These are the only settings given.
    cmd.env("PEERBRIDGE_SHUTDOWN_UNREADY_DELAY_SECS", "1")
        .env("PEERBRIDGE_BIND", "127.0.0.1:0");
    let mut server = ServerProcess::start(cmd).await;
    assert_ne!(server.port, 0);
    let ready = server.wait_ready().await;
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["schema"], "current");
    assert_eq!(ready["bus"]["kind"], "in_process");
    assert!(dir.path().join("peerbridge-data/peerbridge.db").exists());
    assert!(dir.path().join("peerbridge-data/dev-keys.json").exists());
    assert!(
        server
            .drain_log()
            .iter()
            .any(|l| l.contains("DEVELOPMENT KEYS")),
        "the log says loudly that development keys are in use"
    );
    let c = Client::new(&server.base());
    assert_eq!(c.get("/livez", None).await.status, 200);
    let metrics = c.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("peerbridge_http_requests_total"));
    let spec = c.get("/openapi.json", None).await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.json()["info"]["title"], "Peerbridge API");
    assert_eq!(
        c.get("/docs/", None).await.status,
        200,
        "interactive docs are served"
    );

    // SIGTERM: readiness turns off first, then the process drains and exits 0.
    server.terminate();
    let mut saw_unready = false;
    for _ in 0..50 {
        let r = c.get("/readyz", None).await;
        if r.status == 503 {
            assert_eq!(r.json()["shutting_down"], true);
            saw_unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_unready, "readiness went off before the listener closed");
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits after draining")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_same_binary_runs_on_postgres_and_redis_from_the_environment() {
    if !postgres_available().await || !redis_available().await {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let mut cmd = command(db.dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url())
        .env("PEERBRIDGE_BIND", "127.0.0.1:0")
        .env(
            "PEERBRIDGE_REDIS_CHANNEL_PREFIX",
            format!("pbtest{}", uuid::Uuid::new_v4().simple()),
        );
    let server = ServerProcess::start(cmd).await;
    let c = Client::new(&server.base());
    let mut body = server.wait_ready().await;
    for _ in 0..50 {
        if body["bus"]["state"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = c.get("/readyz", None).await.json();
    }
    assert_eq!(body["database"], "ok");
    assert_eq!(body["bus"]["kind"], "redis");
    assert_eq!(body["bus"]["state"], "ok");
    // The schema really is on PostgreSQL.
    use sea_orm::ConnectionTrait;
    let conn = db.connect().await;
    assert_eq!(
        conn.get_database_backend(),
        sea_orm::DatabaseBackend::Postgres
    );
    conn.execute_unprepared("SELECT seq FROM audit_log LIMIT 1")
        .await
        .expect("migrated");
}

#[tokio::test]
async fn a_bad_setting_is_refused_at_start_with_its_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, value, named) in [
        (
            "PEERBRIDGE_ACCESS_TOKEN_TTL_SECS",
            "3600",
            "PEERBRIDGE_ACCESS_TOKEN_TTL_SECS",
        ),
        ("PEERBRIDGE_BIDN", "127.0.0.1:1", "PEERBRIDGE_BIDN"),
        (
            "DATABASE_URL",
            "mysql://root:s3cretpw@db/x",
            "PEERBRIDGE_DATABASE_URL",
        ),
    ] {
        let out = command(dir.path())
            .env(key, value)
            .arg("serve")
            .output()
            .await
            .expect("runs");
        assert!(!out.status.success(), "{key} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{key}: {err}");
        assert!(!err.contains("s3cretpw"), "secret echoed: {err}");
    }
}

/// The first hour's rough edges in the command line: `config check` refuses every key
/// `serve` refuses (and writes nothing), `gen-keys | head` does not panic, `audit verify` in
/// the wrong directory says so instead of creating an empty database, and roles are spelled
/// as the API spells them.
#[tokio::test]
async fn the_command_line_refuses_what_serve_refuses_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Control: a good configuration checks out.
    let ok = command(dir.path())
        .args(["config", "check"])
        .output()
        .await
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        !dir.path().join("peerbridge-data").exists(),
        "config check wrote key material"
    );
    for (key, value) in [
        ("PEERBRIDGE_INDEX_KEY", "not-base64-!!"),
        ("PEERBRIDGE_FIELD_KEYS", "f1:tooshort"),
        ("PEERBRIDGE_PUSH_ALLOWED_HOSTS", "ftp://push.example.org/x"),
    ] {
        let out = command(dir.path())
            .env(key, value)
            .args(["config", "check"])
            .output()
            .await
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "config check accepted {key}: {err}");
        assert!(err.contains(key), "{key} not named: {err}");
        assert!(!err.contains(value), "the value was echoed: {err}");
    }

    // `gen-keys | head -1`: the reader goes away; the command ends without a panic.
    let mut child = command(dir.path())
        .args(["admin", "gen-keys"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().await.expect("waits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");

    // `audit verify` where nothing runs.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = command(empty.path())
        .args(["audit", "verify"])
        .output()
        .await
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no Peerbridge database"), "{err}");
    assert!(
        std::fs::read_dir(empty.path())
            .expect("ls")
            .next()
            .is_none(),
        "audit verify created files in the wrong directory"
    );

    // Roles as the API spells them (the old spelling still works).
    let clinic = command(dir.path())
        .args(["admin", "create-clinic", "--name", "Molde"])
        .output()
        .await
        .expect("runs");
    assert!(
        clinic.status.success(),
        "{}",
        String::from_utf8_lossy(&clinic.stderr)
    );
    let clinic = String::from_utf8_lossy(&clinic.stdout).trim().to_owned();
    for role in ["service_user", "service-user", "peer"] {
        let out = command(dir.path())
            .args([
                "admin",
                "create-invite",
                "--clinic",
                &clinic,
                "--role",
                role,
            ])
            .output()
            .await
            .expect("runs");
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn stdout_field(out: &std::process::Output, field: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn audit_verify_passes_on_a_clean_log_and_fails_after_tampering() {
    let mut backends = vec![Backend::Sqlite];
    if postgres_available().await {
        backends.push(Backend::Postgres);
    }
    for backend in backends {
        let db = TestDb::new(backend).await;
        let run = |args: &[&str]| {
            let mut c = command(db.dir.path());
            c.env("DATABASE_URL", &db.url).args(args);
            async move { c.output().await.expect("runs") }
        };
        let out = run(&["admin", "create-clinic", "--name", "Bergen"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let clinic = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        for i in 0..3 {
            let login = format!("hp{i}@bergen.example");
            let out = run(&[
                "admin",
                "create-staff",
                "--clinic",
                &clinic,
                "--role",
                "hp",
                "--login",
                &login,
                "--name",
                "Nina Nurse",
            ])
            .await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = run(&[
            "admin",
            "create-invite",
            "--clinic",
            &clinic,
            "--role",
            "peer",
        ])
        .await;
        assert!(out.status.success());
        assert!(stdout_field(&out, "qr_payload").contains("/join#code="));

        let verify = || run(&["audit", "verify"]);
        let out = verify().await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 5 entries"));

        use sea_orm::ConnectionTrait;
        let conn = db.connect().await;
        // An edited row.
        conn.execute_unprepared("UPDATE audit_log SET action = 'clinic.renamed' WHERE seq = 2")
            .await
            .expect("tamper");
        let out = verify().await;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stdout).contains("entry 2 was altered"));
        conn.execute_unprepared("UPDATE audit_log SET action = 'account.created' WHERE seq = 2")
            .await
            .expect("restore");
        assert!(
            verify().await.status.success(),
            "restoring the row restores the chain"
        );
        // A removed row in the middle.
        conn.execute_unprepared("DELETE FROM audit_log WHERE seq = 3")
            .await
            .expect("delete");
        let out = verify().await;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));
        // A removed last row (the head row still pins it).
        conn.execute_unprepared("DELETE FROM audit_log WHERE seq = 5")
            .await
            .expect("delete tail");
        let out = verify().await;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stdout).contains("tail deleted"));
    }
}

#[tokio::test]
async fn no_log_line_carries_a_password_token_totp_secret_code_or_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    cmd.env("PEERBRIDGE_BIND", "127.0.0.1:0")
        .env("PEERBRIDGE_LOG_LEVEL", "debug");
    let mut server = ServerProcess::start(cmd).await;
    let c = Client::new(&server.base());
    let mut secrets: Vec<String> = Vec::new();

    // The operator is created with the admin CLI against the same data directory.
    let out = command(dir.path())
        .args([
            "admin",
            "create-operator",
            "--login",
            "ops@example.org",
            "--name",
            "Oskar Operatørsen",
        ])
        .output()
        .await
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup_code = stdout_field(&out, "setup_code");
    let setup = |code: String, password: &'static str| {
        let c = c.clone();
        async move {
            let prov: TotpProvisioning = c
                .post(
                    "/v1/staff/setup",
                    None,
                    json!({ "setup_code": code, "password": password }),
                )
                .await
                .expect(200)
                .parse();
            let secret = totp_rs::Secret::Encoded(prov.totp_secret.clone())
                .to_bytes()
                .expect("b32");
            let now = chrono::Utc::now().timestamp();
            let code_now =
                peerbridge_server::auth::secrets::totp_code_at(&secret, now).expect("totp");
            let dev = DeviceIdentity::generate();
            let s: Session = c
                .post(
                    "/v1/staff/setup/complete",
                    None,
                    json!({ "setup_code": code, "totp_code": code_now, "device": device_json(&dev, "Desk") }),
                )
                .await
                .expect(201)
                .parse();
            (s, prov.totp_secret)
        }
    };
    let (op, op_totp) = setup(setup_code.clone(), "operator-password-very-secret").await;
    secrets.extend([
        setup_code,
        op_totp,
        op.access_token.clone(),
        op.refresh_token.clone(),
    ]);
    let clinic: serde_json::Value = c
        .post(
            "/v1/clinics",
            Some(&op.access_token),
            json!({ "name": "Drammen" }),
        )
        .await
        .expect(201)
        .json();
    let clinic = clinic["id"].as_str().expect("id").to_owned();
    let staff: StaffCreated = c
        .post(
            &format!("/v1/clinics/{clinic}/staff"),
            Some(&op.access_token),
            json!({ "role": "hp", "login": "hanne.hemmelig@drammen.example", "display_name": "Hanne Hemmelig", "phone": "+47 911 22 333" }),
        )
        .await
        .expect(201)
        .parse();
    let (hp, hp_totp) = setup(staff.setup_code.clone(), "hp-password-very-secret").await;
    secrets.extend([
        staff.setup_code,
        hp_totp,
        hp.access_token.clone(),
        hp.refresh_token.clone(),
    ]);
    let inv: InviteCreated = c
        .post(
            &format!("/v1/clinics/{clinic}/invites"),
            Some(&hp.access_token),
            json!({ "role": "service_user", "display_name": "Kari Konfidensiell", "phone": "+47 400 11 222" }),
        )
        .await
        .expect(201)
        .parse();
    let su_dev = DeviceIdentity::generate();
    let su: Session = c
        .post(
            "/v1/invites/redeem",
            None,
            json!({ "code": inv.code, "device": device_json(&su_dev, "Phone") }),
        )
        .await
        .expect(201)
        .parse();
    let refreshed: Session = c
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": su.refresh_token }),
        )
        .await
        .expect(200)
        .parse();
    // Failures carrying secrets in the request must not echo them either.
    let bad = c
        .post(
            "/v1/auth/password",
            None,
            json!({ "login": "hanne.hemmelig@drammen.example", "password": "hp-password-very-secret", "totp_code": "000000",
                    "device": device_json(&su_dev, "Phone") }),
        )
        .await;
    assert_eq!(bad.status, 401);
    let wrong_type = c
        .raw(
            reqwest::Method::POST,
            "/v1/auth/password",
            None,
            Some("application/json"),
            br#"{"login": "hanne.hemmelig@drammen.example", "password": ["hp-password-very-secret"], "totp_code": "1", "device": {"public_key": "x", "label": "y"}}"#.to_vec(),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    assert!(
        !wrong_type.text.contains("hp-password-very-secret"),
        "{}",
        wrong_type.text
    );
    c.get("/v1/me", Some(&format!("{}x", refreshed.access_token)))
        .await;
    // A token in a query string (some clients put it there) is not logged either: the
    // log carries the route pattern, never the target.
    let query_token = format!("{}q", refreshed.access_token);
    c.get(
        &format!("/v1/me?access_token={query_token}&note=hemmelig-query-verdi"),
        None,
    )
    .await;
    secrets.extend([
        query_token,
        "hemmelig-query-verdi".into(),
        "access_token=".into(),
        inv.code.clone(),
        inv.code.replace('-', ""),
        su.access_token,
        su.refresh_token,
        refreshed.access_token,
        refreshed.refresh_token,
        "operator-password-very-secret".into(),
        "hp-password-very-secret".into(),
        "Oskar Operatørsen".into(),
        "Hanne Hemmelig".into(),
        "Hemmelig".into(),
        "hanne.hemmelig".into(),
        "Kari Konfidensiell".into(),
        "Konfidensiell".into(),
        "911 22 333".into(),
        "400 11 222".into(),
    ]);

    let log = server.shut_down_and_read_log().await.join("\n");
    assert!(
        log.lines().count() > 10 && log.contains("/v1/me"),
        "the server logged the requests (the positive control of the checks below):\n{log}"
    );
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the log contains a secret ({} chars)",
            s.len()
        );
    }
}

/// Sends a request the HTTP parser refuses (a header line without a colon) and returns the
/// status line of the answer.
async fn malformed_request(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_malformed_request_is_counted_not_logged_as_a_server_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    cmd.env("PEERBRIDGE_BIND", "127.0.0.1:0");
    let mut server = ServerProcess::start(cmd).await;
    server.wait_ready().await;
    for _ in 0..3 {
        assert!(malformed_request(server.port).await.contains(" 400"));
    }
    let metrics = Client::new(&server.base()).get("/metrics", None).await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l == "peerbridge_http_protocol_errors_total 3"),
        "{metrics}"
    );
    let log = server.shut_down_and_read_log().await;
    let errors: Vec<&String> = log.iter().filter(|l| l.contains("\"ERROR\"")).collect();
    assert!(errors.is_empty(), "{errors:?}");

    // Control: asked for by name, the parser's own line is there to see.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    cmd.env("PEERBRIDGE_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info,actix_http=error");
    let mut server = ServerProcess::start(cmd).await;
    server.wait_ready().await;
    assert!(malformed_request(server.port).await.contains(" 400"));
    let log = server.shut_down_and_read_log().await;
    assert!(
        log.iter()
            .any(|l| l.contains("\"ERROR\"") && l.contains("actix_http")),
        "{log:?}"
    );
}
