//! The real `peerbridge` binary as a child process, for what only a process shows: start-up
//! with no configuration, environment switches, signals, exit codes and log output.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Path of the `peerbridge` binary next to the test executable, built (or brought up to
/// date) once per test process: a binary left by an earlier build is never tested stale.
pub fn peerbridge_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(build_bin).clone()
}

fn build_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin> → target/<profile>/peerbridge
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join("peerbridge");
    {
        let mut args = vec!["build", "-p", "peerbridge-server", "--bin", "peerbridge"];
        if dir.file_name().is_some_and(|n| n == "release") {
            args.push("--release");
        }
        let status = std::process::Command::new(env!("CARGO"))
            .args(&args)
            .status()
            .expect("cargo build runs");
        assert!(status.success(), "building the peerbridge binary failed");
    }
    assert!(bin.exists(), "no binary at {}", bin.display());
    bin
}

/// A command for the binary with a clean environment (no inherited PEERBRIDGE_* settings).
pub fn command(cwd: &std::path::Path) -> Command {
    let mut c = Command::new(peerbridge_bin());
    c.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .kill_on_drop(true);
    c
}

/// A running server process with its log lines collected.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    lines: mpsc::UnboundedReceiver<String>,
    pub log: Vec<String>,
}

impl ServerProcess {
    /// Starts `peerbridge serve` and waits for its "listening" log line (JSON logs).
    pub async fn start(mut cmd: Command) -> ServerProcess {
        cmd.arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn peerbridge");
        let (tx, rx) = mpsc::unbounded_channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(l);
                }
            });
        }
        let mut p = ServerProcess {
            child,
            port: 0,
            lines: rx,
            log: Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while p.port == 0 {
            let line = tokio::time::timeout_at(deadline, p.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("server did not start; log:\n{}", p.log.join("\n")))
                .unwrap_or_else(|| panic!("server exited; log:\n{}", p.log.join("\n")));
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
            {
                p.port = v["port"].as_u64().unwrap_or(0) as u16;
            }
            p.log.push(line);
        }
        p
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Collects log lines printed so far.
    pub fn drain_log(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
        &self.log
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self) -> serde_json::Value {
        let c = crate::Client::new(&self.base());
        for _ in 0..100 {
            let r = c.get("/readyz", None).await;
            if r.status == 200 {
                return r.json();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never became ready");
    }

    /// Shuts the server down (SIGTERM), waits for it to exit and returns its whole log, read
    /// to the end of both pipes: nothing it wrote can still be in flight.
    pub async fn shut_down_and_read_log(&mut self) -> Vec<String> {
        self.terminate();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits within 30 s of SIGTERM")
            .expect("wait");
        // Both readers end at EOF and drop their senders; then `recv` returns `None`.
        while let Some(l) = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
            .await
            .expect("the log pipes close after exit")
        {
            self.log.push(l);
        }
        self.log.clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}
