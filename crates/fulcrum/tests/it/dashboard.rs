//! The live dashboard at `/` on the admin listener: served without the token, and
//! opened in headless Chromium (driven over the DevTools protocol) while load runs,
//! to check that both backends show up with their state, that the figures move, and
//! that the drain and undrain buttons work, and that the certificates table lists
//! the served certificates, marking one about to expire.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use crate::support_tls::*;

const TOKEN: &str = "dashboard-token-0123456789";

/// Two backends behind pool `p`, and an admin listener that wants `TOKEN`.
async fn setup() -> (Backend, Backend, Fulcrum, SocketAddr) {
    setup_with("").await
}

/// `setup` with `extra` appended to the config.
async fn setup_with(extra: &str) -> (Backend, Backend, Fulcrum, SocketAddr) {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = format!(
        "{}\n[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{extra}",
        one_pool("round_robin", &[quoted(&a), quoted(&b)], "")
    );
    let f = Fulcrum::start(&config);
    let admin = f.admin_addr().await;
    (a, b, f, admin)
}

/// Sends an admin request; returns status, headers and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_served_without_token_but_the_api_is_not() {
    within(async {
        let (_a, _b, _f, admin) = setup().await;
        let (status, headers, body) = call(admin, "GET", "/", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'sha256-"), "{csp}");
        assert!(body.contains("data-polls"), "{body}");
        // The page holds no data: the API it calls still wants the token.
        let (status, _, _) = call(admin, "GET", "/api/pools", None).await;
        assert_eq!(status, 401);
        let (status, _, _) = call(admin, "GET", "/api/pools", Some(TOKEN)).await;
        assert_eq!(status, 200);
        let (status, headers, _) = call(admin, "POST", "/", None).await;
        assert_eq!(status, 405);
        assert_eq!(headers["allow"], "GET, HEAD");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_in_headless_chromium() {
    // Longer than `within`: each wait below may take up to TIMEOUT and say what it
    // waited for, and Chromium starts slowly on two busy cores.
    tokio::time::timeout(2 * TIMEOUT, async {
        let Some(mut browser) = Browser::launch().await else {
            return;
        };
        // An https listener with two certificates, so that the certificates table
        // has rows: one valid for years, one expiring in 5 days (marked).
        let dir = TempDir::new();
        let ca = Ca::new("Dashboard CA");
        let (cert, key) = ca.leaf(&["dash.test"], false).write(&dir, "dash");
        let (soon, soon_key) = ca.leaf_expiring(&["soon.test"], 5).write(&dir, "soon");
        let (a, b, f, admin) = setup_with(&format!(
            "\n[listeners.secure]\naddress = \"127.0.0.1:0\"\nprotocol = \"https\"\nhttp3 = true\n\
             tls = {{ certificates = [{{ cert = {cert:?}, key = {key:?} }}, \
             {{ cert = {soon:?}, key = {soon_key:?} }}] }}\n"
        ))
        .await;
        let (a, b) = (a.addr.to_string(), b.addr.to_string());

        // Steady load through the proxy until the end of the test, paced so that
        // Chromium keeps some CPU on a two-core machine.
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn({
            let (stop, url) = (stop.clone(), format!("{}/", f.url("public")));
            async move {
                let c = client();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (status, _, _) = get(&c, &url).await;
                    assert_eq!(status, 200);
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                sent
            }
        });

        // Without the token the page asks for it and shows no backend.
        browser.navigate(&format!("http://{admin}/")).await;
        browser
            .wait(
                "the token form",
                r#"document.getElementById("auth").dataset.open === "true""#,
            )
            .await;
        assert_eq!(browser.eval("document.querySelectorAll('tr[data-backend]').length").await, 0);

        // A token put in the fragment of the open page (a same-document navigation):
        // taken, dropped from the address bar, used.
        browser
            .navigate(&format!("http://{admin}/#token={TOKEN}"))
            .await;
        let row = |addr: &str| format!(r#"document.querySelector('tr[data-pool="p"][data-backend="{addr}"]')"#);
        let field = |addr: &str, f: &str| {
            format!(
                r#"{}.querySelector('[data-field="{f}"]').dataset.value"#,
                row(addr)
            )
        };
        browser
            .wait(
                "both backends with a rate",
                &format!(
                    "Number(document.body.dataset.polls) >= 2 && {0} !== null && {1} !== null \
                     && {2} !== '' && {3} !== ''",
                    row(&a),
                    row(&b),
                    field(&a, "rps"),
                    field(&b, "rps"),
                ),
            )
            .await;
        assert_eq!(browser.eval("location.hash").await, "");
        // The served certificates, with their days left; the one that expires in
        // 5 days is marked, the other (rcgen's default runs to 4096) is not.
        browser
            .wait(
                "the certificates table",
                r##"!document.getElementById("certs-box").hidden && document.querySelectorAll("#certs tr").length === 2"##,
            )
            .await;
        let rows = browser
            .eval(
                r##"Array.from(document.querySelectorAll("#certs tr"), tr => Array.from(tr.cells, td => td.textContent).join("|") + "|" + tr.dataset.soon).join("\n")"##,
            )
            .await;
        let rows: Vec<&str> = rows.as_str().unwrap().lines().collect();
        // The HTTP/3 listener shows apart, with its QUIC connections and streams.
        browser
            .wait(
                "the HTTP/3 table",
                r##"!document.getElementById("h3-box").hidden && document.querySelector('#h3 tr[data-listener="secure"]') !== null"##,
            )
            .await;
        assert!(rows[0].starts_with("secure|dash.test|4096-"), "{rows:?}");
        assert!(rows[0].ends_with("|false"), "{rows:?}");
        assert!(rows[1].starts_with("secure|soon.test|"), "{rows:?}");
        assert!(rows[1].ends_with("|4|true") || rows[1].ends_with("|5|true"), "{rows:?}");
        for addr in [&a, &b] {
            assert_eq!(browser.eval(&format!("{}.dataset.state", row(addr))).await, "up");
            assert_eq!(browser.eval(&field(addr, "state")).await, "up");
            let shown = browser
                .eval(&format!(r#"{}.querySelector(".state").textContent"#, row(addr)))
                .await;
            assert_eq!(shown, "up");
            assert_eq!(
                browser.eval(&format!(r#"{}.querySelector("button").textContent"#, row(addr))).await,
                "Drain"
            );
        }

        // The figures move while load runs: the request counter grows between two
        // reads, the rate is above zero, and the chart has points.
        let first: f64 = number(&browser.eval(&field(&a, "requests")).await);
        let polls: f64 = number(&browser.eval("document.body.dataset.polls").await);
        let later = browser
            .wait(
                "a later poll with more requests",
                &format!(
                    "Number(document.body.dataset.polls) > {polls} && Number({0}) > {first} && {0}",
                    field(&a, "requests")
                ),
            )
            .await;
        assert!(number(&later) > first, "{later} after {first}");
        for addr in [&a, &b] {
            let rps = number(&browser.eval(&field(addr, "rps")).await);
            assert!(rps > 0.0, "{addr}: {rps} req/s");
            let points = browser
                .eval(&format!(
                    r#"{}.querySelector('[data-field="rps-chart"] polyline').getAttribute("points")"#,
                    row(addr)
                ))
                .await;
            assert!(!points.as_str().unwrap().is_empty(), "{addr}: empty chart");
        }

        // Drain, then undrain, with the buttons (the drain asks to confirm: say yes).
        browser.eval("window.confirm = () => true; true").await;
        let button = format!(r#"{}.querySelector("button")"#, row(&b));
        browser.eval(&format!("{button}.click(); true")).await;
        browser
            .wait(
                "b shown draining",
                &format!(
                    r#"{}.dataset.state === "draining" && {button}.textContent === "Undrain""#,
                    row(&b)
                ),
            )
            .await;
        let (_, _, pools) = call(admin, "GET", "/api/pools/p", Some(TOKEN)).await;
        let pools: Value = serde_json::from_str(&pools).unwrap();
        let state = |pools: &Value, addr: &str| {
            pools["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["address"] == addr)
                .map(|x| x["state"].clone())
                .unwrap()
        };
        assert_eq!(state(&pools, &b), "draining");
        assert_eq!(state(&pools, &a), "up");
        browser.eval(&format!("{button}.click(); true")).await;
        browser
            .wait(
                "b shown up again",
                &format!(
                    r#"{}.dataset.state === "up" && {button}.textContent === "Drain""#,
                    row(&b)
                ),
            )
            .await;
        let message = browser.eval(r#"document.getElementById("message").textContent"#).await;
        assert!(
            message.as_str().unwrap().contains("undrain"),
            "{message}"
        );

        // A fresh tab opened on a link with the token works from the first poll.
        browser.eval("sessionStorage.clear(); true").await;
        browser.navigate("about:blank").await;
        browser
            .navigate(&format!("http://{admin}/#token={TOKEN}"))
            .await;
        browser
            .wait(
                "the first poll of a fresh page",
                &format!(
                    r#"Number(document.body.dataset.polls) >= 1 && location.hash === "" && {}.dataset.state === "up""#,
                    row(&a)
                ),
            )
            .await;

        stop.store(true, Ordering::Relaxed);
        let sent = load.await.unwrap();
        assert!(sent > 0);
        browser.close().await;
    })
    .await
    .expect("test timed out")
}

/// Takes the README's picture of the dashboard (run by `scripts/screenshot-dashboard`,
/// which says where with `FULCRUM_SCREENSHOT`): two pools of backends that differ in
/// speed and health, a load that rises and falls, one backend drained and one down,
/// then a PNG of the page after `FULCRUM_SCREENSHOT_SECONDS` (default 120) of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/dashboard.png; run by scripts/screenshot-dashboard"]
async fn screenshot() {
    let out = std::env::var("FULCRUM_SCREENSHOT").unwrap_or_else(|_| "dashboard.png".into());
    let secs: u64 = std::env::var("FULCRUM_SCREENSHOT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mut browser = Browser::launch().await.expect("chromium is needed");
    let web = [
        timed("web-1", 1, 4, 0).await,
        timed("web-2", 6, 30, 0).await,
        timed("web-3", 1, 6, 0).await,
    ];
    let api = [
        timed("api-1", 2, 10, 0).await,
        timed("api-2", 3, 12, 60).await,
    ];
    // A port nothing listens on: the health check takes it down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let list = |b: &[Backend]| b.iter().map(quoted).collect::<Vec<_>>().join(", ");
    let config = format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath_prefix = \"/api/\"\npool = \"api\"\n\n[[routes]]\npool = \"web\"\n\n\
         [pools.web]\nbalance = \"least_connections\"\nbackends = [{}]\ndrain_timeout = \"10m\"\n\n\
         [pools.api]\nbalance = \"round_robin\"\nbackends = [{}, \"{dead}\"]\n\
         health = {{ type = \"tcp\", interval = \"1s\", timeout = \"500ms\" }}\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        list(&web),
        list(&api),
    );
    let f = Fulcrum::start(&config);
    let admin = f.admin_addr().await;
    browser.navigate(&format!("http://{admin}/")).await;

    // Four clients whose pace rises and falls over a 40 s period, three requests in
    // four to the web pool.
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for n in 0..4u64 {
        let base = f.url("public");
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut i = n;
            while Instant::now() < until {
                i += 1;
                let path = if i % 4 == 0 { "/api/items" } else { "/" };
                let _ = c.get(format!("{base}{path}").parse().unwrap()).await;
                let phase = started.elapsed().as_secs_f64() * std::f64::consts::TAU / 40.0;
                let per_sec = 60.0 * (1.6 + phase.sin() + 0.3 * (3.1 * phase).sin());
                tokio::time::sleep(Duration::from_secs_f64(1.0 / per_sec.max(5.0))).await;
            }
        }));
    }
    // Drain one backend for the last part of the run.
    tokio::time::sleep_until((until - Duration::from_secs(secs / 4)).into()).await;
    let (status, _, body) = call(
        admin,
        "POST",
        &format!("/api/pools/web/backends/{}/drain", web[2].addr),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for c in clients {
        c.await.unwrap();
    }
    browser
        .wait(
            "a poll after the drain",
            r#"document.querySelector('tr[data-state="draining"]') !== null"#,
        )
        .await;
    let session = browser.session.clone();
    browser
        .send(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    let shot = browser
        .send(
            Some(&session),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        )
        .await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    std::fs::write(&out, &png).unwrap();
    let _ = writeln!(std::io::stderr(), "wrote {out} ({} bytes)", png.len());
    browser.close().await;
}

/// A backend that answers after `min_ms` to `max_ms` (spread evenly), with a 503 for
/// `errors_permille` of the requests.
async fn timed(name: &str, min_ms: u64, max_ms: u64, errors_permille: u64) -> Backend {
    let seed = Arc::new(std::sync::atomic::AtomicU64::new(0x9e37_79b9_7f4a_7c15));
    let name_s = name.to_owned();
    Backend::streaming(
        name,
        false,
        Arc::new(move |_, _req| {
            // xorshift: enough spread for a picture, no RNG crate.
            let mut x = seed.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seed.store(x, Ordering::Relaxed);
            let delay = min_ms + x % (max_ms - min_ms + 1);
            let status = if (x >> 32) % 1000 < errors_permille {
                503
            } else {
                200
            };
            let name = name_s.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                hyper::Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(name)).boxed())
                    .unwrap()
            })
        }),
    )
    .await
}

/// A JSON value the page gave as a number or a numeric string.
fn number(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Headless Chromium with one page, driven over the DevTools protocol; killed on drop.
pub struct Browser {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium; `None` (after saying so) when it is not installed and this is
    /// not CI, where `scripts/test-all` must have installed it.
    pub async fn launch() -> Option<Self> {
        let installed = Command::new("chromium")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium is not installed; scripts/test-all installs it (apt-get install chromium)"
            );
            // Straight to stderr, past the test harness's capture, so a skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: dashboard::live_in_headless_chromium needs chromium \
                 (scripts/test-all installs it: apt-get install chromium)"
            );
            return None;
        }
        let profile = TempDir::new();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            // Reads to the end, so Chromium never blocks on a full pipe.
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = tokio::task::spawn_blocking(move || rx.recv_timeout(TIMEOUT))
            .await
            .unwrap()
            .unwrap_or_else(|e| {
                panic!(
                    "no DevTools line from chromium ({e}):\n{}",
                    stderr.lock().unwrap().join("\n")
                )
            });
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .expect("DevTools connect timed out")
            .expect("DevTools connect");
        let mut browser = Self {
            child,
            stderr,
            ws,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser
            .send(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        Some(browser)
    }

    /// Sends one command (to the page's session unless `session` is `None`) and waits
    /// for its answer, passing over events.
    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_send(session, method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// As `send`, with a protocol error (such as a page between two documents) as `Err`.
    async fn try_send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.post(session, method, params).await;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap_or_else(|| panic!("DevTools closed:\n{}", self.log()))
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] != id {
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(e.clone());
            }
            return Ok(v["result"].clone());
        }
    }

    /// Sends one command without waiting for its answer; returns its id.
    async fn post(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut msg = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        self.next_id
    }

    /// Opens `url` in the page.
    pub async fn navigate(&mut self, url: &str) {
        let session = self.session.clone();
        let r = self
            .send(Some(&session), "Page.navigate", json!({ "url": url }))
            .await;
        assert!(r.get("errorText").is_none(), "navigate {url}: {r}");
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// As `eval`, with a protocol error or a thrown exception as `Err`.
    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let session = self.session.clone();
        let r = self
            .try_send(
                Some(&session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until it is truthy (a page still loading counts as
    /// not yet); returns its value.
    async fn wait(&mut self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.try_eval(expression).await.unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let body = self
                    .try_eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {what}; the page shows:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        // The answer may not come before the socket closes: wait for the exit instead.
        self.post(None, "Browser.close", json!({})).await;
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "chromium did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
