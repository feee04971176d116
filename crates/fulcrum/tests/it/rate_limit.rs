//! Rate limits through the real proxy: a local limiter per key over HTTP/1.1 and
//! HTTP/2 (gRPC gets RESOURCE_EXHAUSTED), one limit held across the workers of a
//! process, a key flood within `max_keys`, and fleet limiters against a real
//! `redis-server`: two processes sharing one limit, and Redis killed and restarted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use crate::support::*;

type C = Client<HttpConnector, Full<Bytes>>;

/// One GET with `headers`; the status and the response's fields.
async fn ask(c: &C, url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap) {
    let (status, fields, _) = fetch(c, "GET", url, headers).await;
    (status, fields)
}

fn field<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

/// The admin's `/metrics` text.
pub async fn metrics(f: &Fulcrum) -> String {
    let url = format!("http://{}/metrics", f.admin_addr().await);
    let res = client().get(url.parse().unwrap()).await.unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The value of the sample line starting with `prefix` (0 when absent).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn limited_config(backend: &Backend, workers: usize, limits: &str, route: &str) -> String {
    format!(
        r#"workers = {workers}

[admin]
address = "127.0.0.1:0"

[listeners.public]
address = "127.0.0.1:0"

{limits}

[[routes]]
path_prefix = "/grpc."
rate_limit = ["per-user"]
pool = "h2"

[[routes]]
{route}
pool = "app"

[pools.app]
backends = ["{addr}"]

[pools.h2]
protocol = "h2c"
backends = ["{addr}"]
"#,
        addr = backend.addr
    )
}

async fn per_key_limit(c: C) {
    let b = Backend::start("app").await;
    let f = Fulcrum::start(&limited_config(
        &b,
        1,
        "[rate_limits.per-user]\nrate = \"3/m\"\nkey = \"header:x-user\"\n",
        "rate_limit = [\"per-user\"]",
    ));
    let url = format!("{}/", f.url("public"));
    for i in 0..3 {
        let (status, _) = ask(&c, &url, &[("x-user", "alice")]).await;
        assert_eq!(status, 200, "request {i} of alice's burst");
    }
    let (status, h) = ask(&c, &url, &[("x-user", "alice")]).await;
    assert_eq!(status, 429);
    // 3 a minute: the next one fits in 20 s.
    assert_eq!(field(&h, "retry-after"), "20");
    assert_eq!(field(&h, "ratelimit-policy"), "\"per-user\";q=3;w=60");
    assert_eq!(field(&h, "ratelimit"), "\"per-user\";r=0;t=20");
    // Another key has its own budget; a request without the key is not counted.
    assert_eq!(ask(&c, &url, &[("x-user", "bob")]).await.0, 200);
    for _ in 0..5 {
        assert_eq!(ask(&c, &url, &[]).await.0, 200);
    }
    // The limit held: the backend saw alice's three, bob's one and five unkeyed.
    assert_eq!(b.requests(), 9);
    let m = metrics(&f).await;
    assert_eq!(
        sample(
            &m,
            "fulcrum_rate_limit_requests_total{limiter=\"per-user\",result=\"limited\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "fulcrum_rate_limit_keys{limiter=\"per-user\"}"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_limit_gets_429_over_h1() {
    within(per_key_limit(client())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_limit_gets_429_over_h2() {
    within(per_key_limit(h2_client())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_over_the_limit_gets_resource_exhausted() {
    within(async {
        let b = Backend::start_h2("app").await;
        let f = Fulcrum::start(&limited_config(
            &b,
            1,
            "[rate_limits.per-user]\nrate = \"1/m\"\nkey = \"header:x-user\"\n",
            "",
        ));
        let c = h2_client();
        let url = format!("{}/grpc.health.v1.Health/Check", f.url("public"));
        let grpc = [("x-user", "carol"), ("content-type", "application/grpc")];
        assert_eq!(ask(&c, &url, &grpc).await.0, 200);
        let (status, h) = ask(&c, &url, &grpc).await;
        assert_eq!(status, 200, "gRPC errors travel in grpc-status");
        assert_eq!(field(&h, "grpc-status"), "8");
        assert_eq!(field(&h, "content-type"), "application/grpc");
        assert_eq!(field(&h, "retry-after"), "60");
        assert_eq!(b.requests(), 1);
    })
    .await;
}

/// Requests on fresh connections, so both workers take some: the limit is the
/// process's, not each worker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_limit_holds_across_the_workers_of_a_process() {
    within(async {
        let b = Backend::start("app").await;
        let f = Fulcrum::start(&limited_config(
            &b,
            2,
            "[rate_limits.per-user]\nrate = \"1/h\"\nburst = 40\nkey = \"global\"\n",
            "rate_limit = [\"per-user\"]",
        ));
        let url = format!("{}/", f.url("public"));
        let mut allowed = 0;
        for _ in 0..120 {
            let c = client();
            if ask(&c, &url, &[]).await.0 == 200 {
                allowed += 1;
            }
        }
        // Two tables of 40 would have let up to 80 through.
        assert_eq!(allowed, 40);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_keys_stays_within_max_keys() {
    within(async {
        let b = Backend::start("app").await;
        let f = Fulcrum::start(&limited_config(
            &b,
            1,
            "[rate_limits.per-user]\nrate = \"1/h\"\nkey = \"header:x-user\"\nmax_keys = 500\n",
            "rate_limit = [\"per-user\"]",
        ));
        let c = client();
        let url = format!("{}/", f.url("public"));
        for i in 0..5000 {
            let user = format!("user-{i}");
            assert_eq!(ask(&c, &url, &[("x-user", &user)]).await.0, 200);
        }
        let m = metrics(&f).await;
        let keys = sample(&m, "fulcrum_rate_limit_keys{limiter=\"per-user\"}");
        assert!((250.0..=500.0).contains(&keys), "{keys} keys held");
        // A recent key is still held and limited; the first ones were dropped.
        assert_eq!(ask(&c, &url, &[("x-user", "user-4999")]).await.0, 429);
        assert_eq!(ask(&c, &url, &[("x-user", "user-0")]).await.0, 200);
    })
    .await;
}

/// A `redis-server` of the test's own, on a unix socket in `dir` and, when `port`
/// is not 0, a loopback port.
struct Redis {
    child: Child,
}

impl Redis {
    fn start(dir: &TempDir, port: u16, password: Option<&str>) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .arg("--unixsocket")
            .arg(dir.path("redis.sock"))
            .args(["--unixsocketperm", "700"])
            .current_dir(&dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(pw) = password {
            cmd.args(["--requirepass", pw]);
        }
        let mut child = cmd
            .spawn()
            .expect("redis-server (Debian's redis-server package)");
        // "Ready to accept connections tcp", or "... ready to accept connections at
        // PATH" with no TCP port; read on a thread, so a silent server fails the test.
        let out = child.stdout.take().unwrap();
        let (ready, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = ready.send(());
                }
            }
        });
        seen.recv_timeout(TIMEOUT)
            .expect("redis-server did not get ready");
        Self { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `rediss://`: Redis over TLS (Debian's redis-server is built with it), the
/// server's certificate trusted through `SSL_CERT_FILE`, as an operator with a
/// private CA would do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_limit_over_tls() {
    within(async {
        let dir = TempDir::new();
        let ca = crate::support_tls::Ca::new("Redis CA");
        let (cert, key) = ca.leaf(&["localhost"], false).write(&dir, "redis");
        let ca_file = dir.path("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let out = child.stdout.take().unwrap();
        let (ready, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.to_ascii_lowercase().contains("ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        seen.recv_timeout(TIMEOUT).expect("redis-server did not get ready");
        let redis = Redis { child };
        let b = Backend::start("app").await;
        let limits = "[rate_limits.open]\nrate = \"1/h\"\nburst = 2\nkey = \"global\"\nscope = \"fleet\"\non_redis_error = \"deny\"\n\n\
                      [rate_limits.closed]\nrate = \"1/h\"\nkey = \"global\"\n";
        let f = Fulcrum::start_env(
            &fleet_config(&b, &format!("rediss://localhost:{port}"), limits),
            &[("SSL_CERT_FILE", ca_file.as_os_str())],
        );
        let c = client();
        let url = format!("{}/open", f.url("public"));
        // With on_redis_error = "deny", a 200 means Redis answered over TLS.
        let statuses = [ask(&c, &url, &[]).await.0, ask(&c, &url, &[]).await.0, ask(&c, &url, &[]).await.0];
        assert_eq!(statuses, [200, 200, 429]);
        let m = metrics(&f).await;
        assert_eq!(sample(&m, "fulcrum_redis_errors_total"), 0.0, "{m}");
        drop(redis);
    })
    .await;
}

/// A loopback port nobody holds at this moment.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fleet_config(backend: &Backend, url: &str, limits: &str) -> String {
    format!(
        r#"workers = 2

[admin]
address = "127.0.0.1:0"

[listeners.public]
address = "127.0.0.1:0"

[redis]
url = "{url}"
timeout = "500ms"

{limits}

[[routes]]
path = "/open"
rate_limit = ["open"]
pool = "app"

[[routes]]
path = "/closed"
rate_limit = ["closed"]
pool = "app"

[pools.app]
backends = ["{}"]
"#,
        backend.addr
    )
}

/// Two processes sharing one Redis (over TCP, with a password) hold one limit:
/// 20 a second with a burst of 20, hit from both sides at about 400 a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_fleet_limit() {
    within(async {
        let port = free_port();
        let dir = TempDir::new();
        let _redis = Redis::start(&dir, port, Some("s3cret"));
        let b = Backend::start("app").await;
        let limits = "[rate_limits.open]\nrate = \"20/s\"\nkey = \"global\"\nscope = \"fleet\"\n\n\
                      [rate_limits.closed]\nrate = \"20/s\"\nkey = \"global\"\nscope = \"fleet\"\n";
        let url = format!("redis://:s3cret@127.0.0.1:{port}/0");
        let one = Fulcrum::start(&fleet_config(&b, &url, limits));
        let two = Fulcrum::start(&fleet_config(&b, &url, limits));
        let run = Duration::from_secs(4);
        let hammer = |f: &Fulcrum| {
            let url = format!("{}/open", f.url("public"));
            tokio::spawn(async move {
                let c = client();
                let started = Instant::now();
                let mut allowed = 0u32;
                while started.elapsed() < run {
                    if ask(&c, &url, &[]).await.0 == 200 {
                        allowed += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                allowed
            })
        };
        let started = Instant::now();
        let (a, b2) = (hammer(&one), hammer(&two));
        let (a, b2) = (a.await.unwrap(), b2.await.unwrap());
        let secs = started.elapsed().as_secs_f64();
        let expected = 20.0 + 20.0 * secs;
        let total = f64::from(a + b2);
        assert!(
            (total - expected).abs() <= expected * 0.10,
            "{total} allowed ({a} + {b2}) in {secs:.2} s; expected {expected:.0} ± 10%"
        );
        assert!(
            a > 0 && b2 > 0,
            "both instances let some through: {a} / {b2}"
        );
        let m = metrics(&one).await;
        let calls = sample(&m, "fulcrum_redis_calls_total");
        assert!(calls > 0.0, "{m}");
        assert_eq!(
            sample(
                &m,
                "fulcrum_rate_limit_redis_failed_total{limiter=\"open\"}"
            ),
            0.0
        );
    })
    .await;
}

/// Redis is killed mid-run: the `allow` limiter fails open (counted, logged) and
/// the `deny` one refuses; once Redis is back, both limit again without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_as_configured_and_limits_resume_when_back() {
    within(async {
        let dir = TempDir::new();
        let mut redis = Redis::start(&dir, 0, None);
        let b = Backend::start("app").await;
        let limits = "[rate_limits.open]\nrate = \"1/h\"\nburst = 3\nkey = \"header:x-user\"\nscope = \"fleet\"\n\n\
                      [rate_limits.closed]\nrate = \"1/h\"\nburst = 3\nkey = \"header:x-user\"\nscope = \"fleet\"\non_redis_error = \"deny\"\n";
        let socket = dir.path("redis.sock");
        let f = Fulcrum::start(&fleet_config(&b, &format!("unix://{}", socket.display()), limits));
        let c = client();
        let open = format!("{}/open", f.url("public"));
        let closed = format!("{}/closed", f.url("public"));
        let user = |u: &'static str| [("x-user", u)];
        for url in [&open, &closed] {
            for i in 0..3 {
                assert_eq!(ask(&c, url, &user("a")).await.0, 200, "{url} {i}");
            }
            assert_eq!(ask(&c, url, &user("a")).await.0, 429, "{url}");
        }
        redis.stop();
        // A key the process holds no lease for must ask Redis, which is gone.
        for _ in 0..10 {
            assert_eq!(ask(&c, &open, &user("b")).await.0, 200, "fail open");
            assert_eq!(ask(&c, &closed, &user("b")).await.0, 429, "fail closed");
        }
        f.wait_line("rate limit: redis failed", 0).await;
        let m = metrics(&f).await;
        assert!(
            sample(&m, "fulcrum_rate_limit_redis_failed_total{limiter=\"open\"}") >= 10.0,
            "{m}"
        );
        assert!(sample(&m, "fulcrum_redis_errors_total") >= 1.0, "{m}");
        // Redis back (empty), on the same socket: limits resume without a reload.
        let _back = Redis::start(&dir, 0, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while ask(&c, &closed, &user("c")).await.0 != 200 {
            assert!(Instant::now() < deadline, "the deny limiter never let through again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut open_statuses = Vec::new();
        for _ in 0..5 {
            open_statuses.push(ask(&c, &open, &user("d")).await.0);
        }
        assert_eq!(open_statuses, [200, 200, 200, 429, 429]);
    })
    .await;
}
