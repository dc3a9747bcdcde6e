//! An HTTP/1.1 relay in front of a test server that can lose answers: each request is
//! forwarded on its own connection (`connection: close` both ways) and, while the relay is
//! armed for it, the client's connection is closed instead of relaying the answer, after
//! the server has acted on the request. What a phone sees when the network drops just as
//! the server answers. WebSocket upgrades are passed through untouched.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct LossyProxy {
    pub base: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    lost: Arc<AtomicU32>,
}

struct Rule {
    method: String,
    path_contains: String,
    remaining: u32,
}

impl LossyProxy {
    /// A relay to `upstream` (`http://host:port`), passing everything until armed.
    pub async fn start(upstream: &str) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = upstream.trim_start_matches("http://").to_owned();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let lost = Arc::new(AtomicU32::new(0));
        let (r, l) = (rules.clone(), lost.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target.clone(), r.clone(), l.clone()));
            }
        });
        LossyProxy {
            base: format!("http://127.0.0.1:{port}"),
            rules,
            lost,
        }
    }

    /// Loses the answers to the next `n` requests with `method` whose path contains
    /// `path_contains`.
    pub fn lose_answers(&self, method: &str, path_contains: &str, n: u32) {
        self.rules.lock().expect("rules").push(Rule {
            method: method.into(),
            path_contains: path_contains.into(),
            remaining: n,
        });
    }

    /// Answers lost so far.
    pub fn lost(&self) -> u32 {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The head (up to the blank line) with any `connection` header replaced by `close`.
fn closing(head: &str) -> String {
    let mut out: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    out.push("connection: close");
    out.join("\r\n") + "\r\n\r\n"
}

async fn relay(
    mut client: TcpStream,
    target: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    lost: Arc<AtomicU32>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let split = loop {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    if head.to_ascii_lowercase().contains("\r\nupgrade:") {
        if upstream.write_all(&buf).await.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        return;
    }
    let length: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < split + 4 + length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    let mut request = closing(&head).into_bytes();
    request.extend_from_slice(&buf[split + 4..]);
    if upstream.write_all(&request).await.is_err() {
        return;
    }
    let mut answer = Vec::new();
    if upstream.read_to_end(&mut answer).await.is_err() {
        return;
    }
    let lose = {
        let mut rules = rules.lock().expect("rules");
        rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(&r.path_contains))
            .map(|r| r.remaining -= 1)
            .is_some()
    };
    if lose {
        lost.fetch_add(1, Ordering::SeqCst);
        return; // dropped: the client's connection closes with no answer
    }
    let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let mut out = closing(&String::from_utf8_lossy(&answer[..i])).into_bytes();
    out.extend_from_slice(&answer[i + 4..]);
    let _ = client.write_all(&out).await;
    let _ = client.shutdown().await;
}
