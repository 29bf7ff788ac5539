//! A headless Chromium for the console's end-to-end tests, driven over the W3C WebDriver protocol
//! (JSON over HTTP/1.1) by Debian's `chromedriver`; no WebDriver crate, no Node.js.
//!
//! One chromedriver per test binary, on a free loopback port, started on first use. It runs in a
//! process group of its own under a tiny `sh` that waits for the test binary's end (its stdin is
//! a pipe the binary never writes and never closes) and then kills the whole group, chromedriver
//! and every Chromium it started, also when a test panicked. Each [`Browser`] is one WebDriver
//! session (its own Chromium and profile), deleted when dropped.
//!
//! Chromium is always started as `/usr/lib/chromium/chromium` (not Debian's `/usr/bin/chromium`
//! launcher, which adds `--enable-remote-extensions` and loads extensions) with `--headless
//! --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
//! --disable-sync --no-first-run`: without them it reaches for the network, which is closed here.
//! A machine without `chromium` or `chromedriver` fails the test, saying what to install
//! (`.ci/run` installs both); nothing is skipped.
//!
//! Finding waits: [`Browser::find`] polls until the element is there or [`PATIENCE`] has passed,
//! then fails naming the selector, the page's URL and title, and a screenshot of it. Screenshots
//! go to `target/screenshots/<test>/<step>.png` (not committed): look at them.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a page element is waited for.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The flags every Chromium here runs with (the closed network needs them), plus a window size
/// for readable screenshots.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
];

/// W3C WebDriver's key of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary (`KAIGO_TEST_CHROMIUM` overrides).
fn chromium() -> PathBuf {
    std::env::var_os("KAIGO_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/chromium/chromium"))
}

/// The chromedriver of this test binary: its port, and the `sh` that kills its group on our exit.
struct Driver {
    port: u16,
    _watch: Mutex<Child>,
}

fn driver() -> u16 {
    static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();
    match DRIVER.get_or_init(start_driver) {
        Ok(d) => d.port,
        Err(e) => panic!("{e}"),
    }
}

fn start_driver() -> Result<Driver, String> {
    let missing = |what: &str| {
        format!(
            "{what} is missing: the console's browser tests need Debian's headless Chromium \
             (`apt-get install -y chromium chromium-driver`; `.ci/run` installs them)"
        )
    };
    if !chromium().is_file() {
        return Err(missing(&format!("Chromium ({})", chromium().display())));
    }
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        return Err(missing("chromedriver"));
    }
    // A free port: bound by us for a moment, then given to chromedriver.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port for chromedriver: {e}"))?
        .port();
    let log = screenshots_root().join(format!("chromedriver-{}.log", std::process::id()));
    std::fs::create_dir_all(screenshots_root()).map_err(|e| e.to_string())?;
    // `cat` ends when this process exits (its stdin's write end is ours alone); then the group
    // (sh, chromedriver, every Chromium) is killed.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(
            "chromedriver --port=\"$1\" --allowed-ips=127.0.0.1 >\"$2\" 2>&1 & \
             cat >/dev/null; kill -KILL -$$",
        )
        .arg("sh")
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let watch = cmd
        .spawn()
        .map_err(|e| format!("starting chromedriver: {e}"))?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(v) = call(port, "GET", "/status", None)
            && v["ready"] == true
        {
            break;
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "chromedriver did not get ready on 127.0.0.1:{port} within {PATIENCE:?}; \
                 its log ({}):\n{text}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Driver {
        port,
        _watch: Mutex::new(watch),
    })
}

/// `target/screenshots` of this checkout (or of `CARGO_TARGET_DIR`).
pub fn screenshots_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots")
}

/// One WebDriver command: `method path` with a JSON body, on its own connection. The answer's
/// `value`, or the WebDriver error (`error: message`).
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    // chromedriver keeps the connection open whatever `Connection` says: read by length.
    let body = read_answer(&mut s).map_err(|e| format!("{method} {path}: {e}"))?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        let msg = value["message"].as_str().unwrap_or("");
        let first = msg.lines().next().unwrap_or("");
        return Err(format!("{err}: {first}"));
    }
    Ok(value)
}

/// An HTTP/1.1 answer's body, read by `Content-Length` or chunk by chunk.
fn read_answer(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let mut more = |raw: &mut Vec<u8>| -> Result<(), String> {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("the connection closed mid-answer".into());
        }
        raw.extend_from_slice(&buf[..n]);
        Ok(())
    };
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        more(&mut raw)?;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let start = end + 4;
    if let Some(len) = header("content-length:") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len}"))?;
        while raw.len() < start + len {
            more(&mut raw)?;
        }
        return Ok(raw[start..start + len].to_vec());
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        // Until the last chunk (`0\r\n\r\n`).
        while !raw[start..].ends_with(b"0\r\n\r\n") {
            more(&mut raw)?;
        }
        return Ok(super::dechunk(&raw[start..]));
    }
    Err(format!("an answer without a length: {head}"))
}

/// A WebDriver command off the async runtime (the hub under test runs on it).
async fn send(port: u16, method: &str, path: String, body: Option<Value>) -> Result<Value, String> {
    let method = method.to_string();
    tokio::task::spawn_blocking(move || call(port, &method, &path, body.as_ref()))
        .await
        .map_err(|e| format!("the WebDriver call panicked: {e}"))?
}

/// One headless Chromium (a WebDriver session) of one test.
pub struct Browser {
    port: u16,
    session: String,
    test: String,
}

/// An element found on the current page.
#[derive(Clone, Debug)]
pub struct Element {
    id: String,
    css: String,
}

impl Browser {
    /// A new Chromium for `test` (the folder of its screenshots).
    pub async fn open(test: &str) -> Browser {
        let port = tokio::task::spawn_blocking(driver)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium().display().to_string(),
                "args": CHROMIUM_FLAGS,
            },
        }}});
        let v = send(port, "POST", "/session".into(), Some(caps))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_string();
        let dir = screenshots_root().join(test);
        let _ = std::fs::remove_dir_all(&dir);
        Browser {
            port,
            session,
            test: test.to_string(),
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        send(
            self.port,
            method,
            format!("/session/{}{path}", self.session),
            body,
        )
        .await
    }

    /// A test failure's text: what, where the page is, and a screenshot of it (kept).
    async fn failure(&self, what: String) -> String {
        let url = self.cmd("GET", "/url", None).await.unwrap_or_default();
        let title = self.cmd("GET", "/title", None).await.unwrap_or_default();
        let shot = match self.try_screenshot("failure").await {
            Ok(p) => p.display().to_string(),
            Err(e) => format!("none ({e})"),
        };
        let text = self
            .cmd("GET", "/source", None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let text: String = text.chars().take(3000).collect();
        format!(
            "{what}\n  page: {url} ({title})\n  screenshot: {shot}\n  source (first 3000 chars):\n{text}"
        )
    }

    /// Goes to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.cmd("POST", "/url", Some(json!({"url": url}))).await {
            panic!("{}", self.failure(format!("opening {url}: {e}")).await)
        }
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        match self.cmd("GET", "/url", None).await {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("the current URL: {e}"),
        }
    }

    /// The current page's title.
    pub async fn title(&self) -> String {
        match self.cmd("GET", "/title", None).await {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("the page title: {e}"),
        }
    }

    /// The current page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        match self.cmd("GET", "/source", None).await {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("the page source: {e}"),
        }
    }

    /// The elements matching `css` now (no waiting; empty when none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({"using": "css selector", "value": css});
        match self.cmd("POST", "/elements", Some(body)).await {
            Ok(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i[ELEMENT].as_str())
                .map(|id| Element {
                    id: id.to_string(),
                    css: css.to_string(),
                })
                .collect(),
            Ok(v) => panic!(
                "{}",
                self.failure(format!("`{css}`: unexpected answer {v}"))
                    .await
            ),
            Err(e) => panic!("{}", self.failure(format!("finding `{css}`: {e}")).await),
        }
    }

    /// The first element matching `css`, waited for (bounded).
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.failure(format!("no element `{css}` after {PATIENCE:?}"))
                        .await
                )
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether some element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// Fails the test when an element matches `css` now.
    pub async fn assert_absent(&self, css: &str, why: &str) {
        if self.has(css).await {
            panic!(
                "{}",
                self.failure(format!("`{css}` is on the page, but {why}"))
                    .await
            )
        }
    }

    /// Types `text` into the element `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        let path = format!("/element/{}", e.id);
        if let Err(err) = self
            .cmd("POST", &format!("{path}/clear"), Some(json!({})))
            .await
        {
            panic!("{}", self.failure(format!("clearing `{css}`: {err}")).await)
        }
        if let Err(err) = self
            .cmd(
                "POST",
                &format!("{path}/value"),
                Some(json!({"text": text})),
            )
            .await
        {
            panic!(
                "{}",
                self.failure(format!("typing into `{css}`: {err}")).await
            )
        }
    }

    /// Clicks the element `css` (a navigation it starts is waited for by chromedriver).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.click_element(&e).await
    }

    /// Clicks an element found before.
    pub async fn click_element(&self, e: &Element) {
        let path = format!("/element/{}/click", e.id);
        if let Err(err) = self.cmd("POST", &path, Some(json!({}))).await {
            panic!(
                "{}",
                self.failure(format!("clicking `{}`: {err}", e.css)).await
            )
        }
    }

    /// Submits the form `css` as its first submit button would (`requestSubmit`), and waits for
    /// the page it leads to (a new document, loaded).
    pub async fn submit(&self, css: &str) {
        let e = self.find(css).await;
        self.execute("window.__kaigoOldPage = true;", vec![]).await;
        self.execute("arguments[0].requestSubmit();", vec![e.reference()])
            .await;
        self.wait_new_page(&format!("the page after submitting `{css}`"))
            .await;
    }

    /// Waits (bounded) until the window holds a document loaded after the last `submit`.
    async fn wait_new_page(&self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        let script = "return !window.__kaigoOldPage && document.readyState === 'complete';";
        loop {
            // While the navigation runs, the script may fail: try again.
            let body = json!({"script": script, "args": []});
            if let Ok(Value::Bool(true)) = self.cmd("POST", "/execute/sync", Some(body)).await {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.failure(format!("timed out after {PATIENCE:?}: {what}"))
                        .await
                )
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page with `args`; its return value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        match self.cmd("POST", "/execute/sync", Some(body)).await {
            Ok(v) => v,
            Err(e) => panic!("{}", self.failure(format!("running `{script}`: {e}")).await),
        }
    }

    /// The rendered text of the element `css` (waited for).
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.text_of(&e).await
    }

    /// The rendered text of an element found before.
    pub async fn text_of(&self, e: &Element) -> String {
        match self
            .cmd("GET", &format!("/element/{}/text", e.id), None)
            .await
        {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(err) => panic!(
                "{}",
                self.failure(format!("the text of `{}`: {err}", e.css))
                    .await
            ),
        }
    }

    /// The attribute `name` of the element `css` (waited for); `None` when it has none.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        self.attribute_of(&e, name).await
    }

    /// The attribute `name` of an element found before.
    pub async fn attribute_of(&self, e: &Element, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", e.id);
        match self.cmd("GET", &path, None).await {
            Ok(Value::String(s)) => Some(s),
            Ok(_) => None,
            Err(err) => panic!(
                "{}",
                self.failure(format!("`{name}` of `{}`: {err}", e.css))
                    .await
            ),
        }
    }

    /// The browser's cookies for the current page, as WebDriver gives them (`name`, `value`,
    /// `httpOnly`, `secure`, `sameSite`, …).
    pub async fn cookies(&self) -> Vec<Value> {
        match self.cmd("GET", "/cookie", None).await {
            Ok(Value::Array(c)) => c,
            Ok(v) => panic!("cookies: unexpected answer {v}"),
            Err(e) => panic!("cookies: {e}"),
        }
    }

    /// Waits (bounded) until the current URL satisfies `done`; returns it.
    pub async fn wait_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.failure(format!("timed out after {PATIENCE:?}: {what}"))
                        .await
                )
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until the text of `css` satisfies `done`; returns it.
    pub async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                // The page may be replaced between finding and reading: try again then.
                if let Ok(Value::String(t)) = self
                    .cmd("GET", &format!("/element/{}/text", e.id), None)
                    .await
                    && done(&t)
                {
                    return t;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.failure(format!(
                        "timed out after {PATIENCE:?} on the text of `{css}`: {what}"
                    ))
                    .await
                )
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the window as `target/screenshots/<test>/<step>.png`; its path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        self.try_screenshot(step)
            .await
            .unwrap_or_else(|e| panic!("the screenshot of {step}: {e}"))
    }

    async fn try_screenshot(&self, step: &str) -> Result<PathBuf, String> {
        let dir = screenshots_root().join(&self.test);
        let path = dir.join(format!("{step}.png"));
        let png = match self.cmd("GET", "/screenshot", None).await? {
            Value::String(b64) => base64_decode(&b64).ok_or("not base64")?,
            v => return Err(format!("unexpected answer {v}")),
        };
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err("not a PNG".into());
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Element {
    /// The element as a WebDriver script argument.
    pub fn reference(&self) -> Value {
        json!({ ELEMENT: self.id })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closes this Chromium now (the group kill at exit is the backstop).
        let _ = call(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// Standard base64 (WebDriver's screenshots); `None` on a character outside the alphabet.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
