//! The web app is served by the server itself, on the API's origin, under a strict CSP: its
//! files (hashed assets cacheable for good, the rest never stored), its client-side routes
//! answered with `index.html`, nothing outside its directory, and the API's own 404s left
//! alone. Without a built app, `/` says how to build one.

use peerbridge_tests::{Backend, TestApp};

async fn get(base: &str, path: &str) -> reqwest::Response {
    reqwest::get(format!("{base}{path}"))
        .await
        .expect("request")
}

#[tokio::test]
async fn the_built_app_is_served_on_the_api_origin_with_a_strict_policy() {
    let web = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(web.path().join("assets")).expect("mkdir");
    std::fs::write(web.path().join("index.html"), "<div id=\"root\"></div>").expect("write");
    std::fs::write(web.path().join("assets/index-abc.js"), "console.log(1)").expect("write");
    std::fs::write(web.path().join("manifest.webmanifest"), "{}").expect("write");
    let outside = web.path().parent().expect("parent").join("outside.txt");
    std::fs::write(&outside, "secret").expect("write");
    let dir = web.path().to_string_lossy().into_owned();
    let app = TestApp::spawn_with(Backend::Sqlite, |raw| raw.web_dir = dir).await;

    for path in ["/", "/join", "/some/route"] {
        let r = get(&app.base, path).await;
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        for part in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
            "{csp}"
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(
            r.text().await.expect("body"),
            "<div id=\"root\"></div>",
            "{path}"
        );
    }
    let r = get(&app.base, "/assets/index-abc.js").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("type")
            .contains("javascript")
    );
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let r = get(&app.base, "/manifest.webmanifest").await;
    assert_eq!(r.text().await.expect("body"), "{}");

    // Nothing outside the directory, however the path is spelt (the shell answers instead).
    for path in [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/assets/..%2f..%2foutside.txt",
    ] {
        let r = get(&app.base, path).await;
        assert_ne!(r.text().await.expect("body"), "secret", "{path}");
    }
    // The API keeps its problem+json answers.
    let r = get(&app.base, "/v1/no-such-endpoint").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = reqwest::Client::new()
        .post(format!("{}/", app.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = get(&app.base, "/v1/me").await;
    assert_eq!(r.status(), 401, "the API is not shadowed by the app");
    let r = get(&app.base, "/readyz").await;
    assert_eq!(r.status(), 200, "health is not shadowed by the app");
}

#[tokio::test]
async fn without_a_built_app_the_root_says_how_to_build_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, |raw| {
        raw.web_dir = "/nonexistent/peerbridge-web".into()
    })
    .await;
    let r = get(&app.base, "/").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("content-security-policy"));
    assert!(r.text().await.expect("body").contains("web/build"));
}
