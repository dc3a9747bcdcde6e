//! Serves the built web app (`web/`, issue 15) from `web_dir` on the API's own origin, so
//! the browser never talks to a second host: the API, the app and its service worker share
//! one origin and one strict Content-Security-Policy (no third-party request is possible:
//! everything is `'self'`; WebAssembly is allowed to compile, nothing else is evaluated).
//!
//! It is the server's default service: anything the API, the docs and `/metrics` did not
//! match arrives here. `GET`/`HEAD` of a file under `web_dir` serves it (hashed `assets/`
//! forever-cacheable, everything else `no-store`); any other path that is not under `/v1/`
//! gets `index.html` (the app routes on the client); the API's paths (`/v1/…`, documented
//! routes such as `/metrics` on a server that moved it) and other methods fall through to
//! the API's problem+json 404/405.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// The app's policy: only this origin, WebAssembly compilation, no inline script, no
/// framing, no plugins, no `<base>` tricks, forms only to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The file a request path names inside `root`, if it is a plain relative path (no `..`,
/// no hidden segment, no absolute or drive component) to a file that exists.
fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(s) if !s.to_string_lossy().starts_with('.') => out.push(s),
            _ => return None,
        }
    }
    out.is_file().then_some(out)
}

fn secure(resp: &mut HttpResponse, immutable: bool) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-store"
        }),
    );
}

async fn file(req: &HttpRequest, path: &Path, immutable: bool) -> Option<HttpResponse> {
    let named = actix_files::NamedFile::open_async(path).await.ok()?;
    let mut resp = named
        .use_etag(immutable)
        .use_last_modified(false)
        .into_response(req);
    secure(&mut resp, immutable);
    Some(resp)
}

/// The default service: the app's files and routes, else the API's 404/405.
pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let path = req.path();
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    // The API's own paths (a documented one that fell through, e.g. `/metrics` moved to its
    // own listener) keep the API's problem+json answers.
    let api = path.starts_with("/v1/")
        || path == "/v1"
        || path == "/metrics"
        || !crate::docs::allowed_methods(path).is_empty();
    if !readable || api {
        return crate::docs::not_found(req).await;
    }
    let root = &state.config.web_dir;
    if let Some(f) = file_for(root, path) {
        let immutable = path.starts_with("/assets/");
        if let Some(resp) = file(&req, &f, immutable).await {
            return resp;
        }
    }
    // A client-side route (or `/`): the app's shell.
    if let Some(resp) = file(&req, &root.join("index.html"), false).await {
        return resp;
    }
    let mut resp = HttpResponse::build(StatusCode::NOT_FOUND)
        .content_type("text/plain; charset=utf-8")
        .body(
            "Peerbridge's API is running, but the web app is not built here.\n\
             Build it with `bash web/build` (or start with `bash serve`), or set \
             PEERBRIDGE_WEB_DIR to the built app.\n",
        );
    secure(&mut resp, false);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_inside_the_root_name_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("assets")).expect("mkdir");
        std::fs::write(dir.path().join("assets/app.js"), "x").expect("write");
        std::fs::write(dir.path().join(".secret"), "x").expect("write");
        let root = dir.path().join("assets").join("..");
        assert!(file_for(dir.path(), "/assets/app.js").is_some());
        assert!(file_for(dir.path(), "/assets/missing.js").is_none());
        assert!(file_for(dir.path(), "/assets").is_none(), "a directory");
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/.secret",
            "//etc/passwd",
        ] {
            assert!(file_for(dir.path(), bad).is_none(), "{bad}");
        }
        assert!(file_for(&root, "/assets/app.js").is_some());
    }
}
