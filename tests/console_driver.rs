//! The console tests' browser (tests/common/browser.rs) proven on a tiny page of the test's own,
//! before any console page is involved: a real headless Chromium opens the page, reads text and
//! attributes, types into a form, clicks, submits, sees a cookie the server set, watches a value
//! that the page's own JavaScript refreshes from a JSON endpoint, and saves screenshots.

mod common;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::browser::{Browser, screenshots_root};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>driver check</title></head>
<body>
<h1 id="heading">見出し</h1>
<ul><li>one</li><li>two</li><li>three</li></ul>
<p id="live" data-count="0">0</p>
<form id="greet-form" method="post" action="/greet">
  <input id="name" name="name" type="text" value="typed over">
  <button id="send" type="submit">Send</button>
</form>
<form id="other-form" method="post" action="/greet">
  <input type="hidden" name="name" value="submitted">
</form>
<script>
  setInterval(async () => {
    const r = await fetch('/count.json');
    const n = (await r.json()).n;
    const p = document.getElementById('live');
    p.textContent = String(n);
    p.dataset.count = String(n);
  }, 200);
</script>
</body></html>"#;

/// A tiny site: `/` (the form page), `POST /greet` (echoes the name, sets a cookie),
/// `/count.json` (a counter that goes up on every read).
async fn serve_page() -> SocketAddr {
    let count = Arc::new(AtomicU64::new(0));
    let server = HttpServer::new(move || {
        let count = count.clone();
        App::new()
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(FORM_PAGE)
                }),
            )
            .route(
                "/greet",
                web::post().to(|form: web::Form<HashMap<String, String>>| async move {
                    let name = form.get("name").cloned().unwrap_or_default();
                    let escaped = name.replace('&', "&amp;").replace('<', "&lt;");
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .insert_header((
                            "Set-Cookie",
                            "driver_check=1; Path=/; HttpOnly; SameSite=Strict",
                        ))
                        .body(format!(
                            "<!doctype html><title>greeted</title>\
                             <p id=\"greeting\" data-name=\"{escaped}\">Hello, {escaped}</p>"
                        ))
                }),
            )
            .route(
                "/count.json",
                web::get().to(move || {
                    let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                    async move { HttpResponse::Ok().json(serde_json::json!({ "n": n })) }
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("bind the test page");
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_reads_types_clicks_submits_and_takes_screenshots() {
    let addr = serve_page().await;
    let b = Browser::open("driver-check").await;
    let home = format!("http://{addr}/");
    b.goto(&home).await;
    assert_eq!(b.url().await, home);
    assert_eq!(b.title().await, "driver check");
    assert_eq!(b.text("#heading").await, "見出し");
    assert_eq!(b.find_all("li").await.len(), 3);
    assert!(!b.has("#greeting").await, "not on the form page");
    assert_eq!(
        b.attribute("#name", "value").await.as_deref(),
        Some("typed over")
    );
    assert_eq!(b.attribute("#name", "data-none").await, None);

    // The page's own script refreshes #live from /count.json.
    let live = b
        .wait_text("#live", "the page's script counted", |t| {
            t.parse::<u64>().is_ok_and(|n| n >= 2)
        })
        .await;
    assert!(live.parse::<u64>().unwrap() >= 2);
    assert_eq!(
        b.execute("return 6 * 7;", vec![]).await,
        serde_json::json!(42)
    );
    let first = b.screenshot("form").await;

    b.type_into("#name", "Sakura 131011:0000100001").await;
    b.click("#send").await;
    let url = b
        .wait_url("the form went to /greet", |u| u.ends_with("/greet"))
        .await;
    assert_eq!(url, format!("http://{addr}/greet"));
    assert_eq!(b.text("#greeting").await, "Hello, Sakura 131011:0000100001");
    assert_eq!(
        b.attribute("#greeting", "data-name").await.as_deref(),
        Some("Sakura 131011:0000100001")
    );
    let cookies = b.cookies().await;
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "driver_check")
        .unwrap_or_else(|| panic!("the server's cookie: {cookies:?}"));
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    let second = b.screenshot("greeted").await;

    // A form without a button, submitted as a script would.
    b.goto(&home).await;
    b.submit("#other-form").await;
    assert_eq!(
        b.wait_text("#greeting", "the second form answered", |t| t
            .contains("submitted"))
            .await,
        "Hello, submitted"
    );

    for shot in [&first, &second] {
        let png = std::fs::read(shot).expect("the screenshot was written");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", shot.display());
        assert!(png.len() > 1000, "{} is a real picture", shot.display());
        assert!(shot.starts_with(screenshots_root().join("driver-check")));
    }
    assert_ne!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
        "two different pages make two different pictures"
    );
}
