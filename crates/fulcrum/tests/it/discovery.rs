//! Backends that come and go: names re-resolved from a real DNS server (Debian's
//! dnsmasq, on a loopback port) whose answers change during the test, SRV records
//! with priorities and weights, a dead resolver and an empty answer, two processes
//! fed the same answers, a backends file and the admin API's add and remove, each
//! under steady load.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::block_in_place;

use crate::support::*;
use crate::support_health::*;

/// dnsmasq answering for `fulcrum.test` from a hosts file (re-read on SIGHUP) and
/// `--srv-host` records; it can be killed and started again on its port.
struct Dns {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    srv: Vec<String>,
    log: Lines,
    _dir: TempDir,
}

fn dnsmasq() -> &'static str {
    if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dns {
    fn start(hosts: &str, srv: &[String]) -> Self {
        let dir = TempDir::new();
        let path = dir.path("hosts");
        std::fs::write(&path, hosts).unwrap();
        let mut dns = Self {
            child: None,
            port: 0,
            hosts: path,
            srv: srv.to_vec(),
            log: Lines::default(),
            _dir: dir,
        };
        // Another process may take the port between the probe and dnsmasq's bind.
        for _ in 0..20 {
            dns.port = free_port();
            if dns.spawn() {
                return dns;
            }
        }
        panic!("dnsmasq did not start:\n{}", dns.log.all());
    }

    /// Starts dnsmasq on `self.port`; whether it is answering.
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(dnsmasq());
        cmd.args([
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
        ])
        .args(["--pid-file=", "--user=root", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", "--no-resolv", "--no-hosts"])
        .args(["--local=/fulcrum.test/", "--local-ttl=1", "--neg-ttl=1"])
        .arg(format!("--port={}", self.port))
        .arg(format!("--addn-hosts={}", self.hosts.display()))
        .args(self.srv.iter().map(|s| format!("--srv-host={s}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base package)");
        let log = Lines::default();
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.push(line);
            }
            sink.push("<exited>".into());
        });
        let read = format!("read {}", self.hosts.display());
        let (_, line) = log.wait_match("dnsmasq reading its hosts file", 0, |l| {
            l.contains(&read) || l == "<exited>"
        });
        self.log = log;
        if line == "<exited>" {
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the hosts file and waits until dnsmasq has read it.
    fn set_hosts(&self, text: &str) {
        let read = format!("read {}", self.hosts.display());
        let skip = self.log.len();
        std::fs::write(&self.hosts, text).unwrap();
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.log.wait_for(&read, skip);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts dnsmasq again on the same port.
    fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "dnsmasq did not start again:\n{}",
            self.log.all()
        );
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` backends named `a`, `b`, ... on 127.0.0.2, 127.0.0.3, ... all on one port,
/// so one name with several A records reaches them all.
async fn on_one_port(n: usize) -> Vec<Backend> {
    'retry: loop {
        let first = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for i in 1..n {
            match TcpListener::bind(format!("127.0.0.{}:{port}", i + 2)).await {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'retry,
            }
        }
        return listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| Backend::named_on(l, &char::from(b'a' + i as u8).to_string()))
            .collect();
    }
}

/// A hosts file giving `name` the addresses of `backends`.
fn hosts(name: &str, backends: &[&Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("{} {name}\n", b.addr.ip()))
        .collect()
}

fn dns_config(dns: &Dns, pool: &str) -> String {
    format!(
        "workers = 1\nresolvers = [\"{}\"]\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [listeners.public]\naddress = \"127.0.0.1:0\"\n\n[[routes]]\npool = \"p\"\n\n[pools.p]\n{pool}\n",
        dns.resolver()
    )
}

async fn api(f: &Fulcrum, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let admin = f.admin_addr().await;
    let body: &'static str = Box::leak(body.to_owned().into_boxed_str());
    let a = send(&client(), method, &format!("http://{admin}{path}"), body).await;
    let json = serde_json::from_slice(&a.body).unwrap_or(serde_json::Value::Null);
    (a.status, json)
}

/// The pool's members as `(address, source, backup)`.
async fn members(f: &Fulcrum, pool: &str) -> Vec<(String, Option<String>, bool)> {
    let (status, v) = api(f, "GET", &format!("/api/pools/{pool}"), "").await;
    assert_eq!(status, 200, "{v}");
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["resolved"].as_str().unwrap().to_owned(),
                b["source"].as_str().map(str::to_owned),
                b["backup"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_added_and_removed_under_load_fail_nothing() {
    within(async {
        let b = on_one_port(3).await;
        let port = b[0].addr.port();
        let name = "api.fulcrum.test";
        let dns = Dns::start(&hosts(name, &[&b[0], &b[1]]), &[]);
        let f = Fulcrum::start(&dns_config(
            &dns,
            &format!(
                "backends = [\"{name}:{port}\"]\ndns = {{ min_ttl = \"1s\", max_ttl = \"1s\" }}"
            ),
        ));
        let source = format!("{name}:{port}");
        let mut got = members(&f, "p").await;
        got.sort();
        assert_eq!(
            got,
            vec![
                (b[0].addr.to_string(), Some(source.clone()), false),
                (b[1].addr.to_string(), Some(source.clone()), false),
            ]
        );
        let load = Load::start(format!("{}/", f.url("public")), 4);
        load.wait_served("a", 20).await;
        load.wait_served("b", 20).await;

        // A record appears: the new member gets traffic within TTL (1 s) + 1 s.
        let t0 = Instant::now();
        block_in_place(|| dns.set_hosts(&hosts(name, &[&b[0], &b[1], &b[2]])));
        load.wait_served("c", 1).await;
        let took = t0.elapsed();
        println!("the new member answered {took:?} after the record appeared");
        // TTL + 1 s is the goal; 3 s more for two busy cores.
        assert!(took < Duration::from_secs(5), "{took:?}");

        // A record goes away: that member is drained, the others carry on.
        let skip = f.log.len();
        block_in_place(|| dns.set_hosts(&hosts(name, &[&b[1], &b[2]])));
        f.wait_line("config rebuilt", skip).await;
        let total = load.tally().total;
        load.wait_total(total + 20).await;
        let a_then = load.tally().served_by("a");
        let total = load.tally().total;
        load.wait_total(total + 200).await;
        assert_eq!(
            load.tally().served_by("a"),
            a_then,
            "a drained member got new requests"
        );
        load.wait_served("c", 50).await;
        let tally = load.stop().await;
        println!(
            "requests {}, by backend {:?}",
            tally.total, tally.by_backend
        );
        assert_eq!(tally.failed(), 0, "{tally:?}");
        let metrics = crate::rate_limit::metrics(&f).await;
        assert!(
            metrics.contains(&format!(
                "fulcrum_discovery_members{{source=\"{source}\",pool=\"p\"}} 2"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains("fulcrum_pool_members{pool=\"p\"} 2"),
            "{metrics}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priorities_weights_and_backups_are_honoured() {
    within(async {
        let b = Switchable::start_n(3).await;
        let srv = "_http._tcp.api.fulcrum.test";
        // a and b serve at priority 10 with weights 3 and 1; c is a backup.
        let records: Vec<String> = [(0, 10, 3), (1, 10, 1), (2, 20, 5)]
            .iter()
            .map(|(i, prio, weight)| {
                format!("{srv},t.fulcrum.test,{},{prio},{weight}", b[*i].addr.port())
            })
            .collect();
        let dns = Dns::start("127.0.0.1 t.fulcrum.test\n", &records);
        let f = Fulcrum::start(&dns_config(
            &dns,
            &format!(
                "balance = \"weighted_round_robin\"\ndiscover = {{ srv = \"{srv}\" }}\n{}",
                "health = { path = \"/healthz\", interval = \"500ms\", timeout = \"500ms\", rise = 1, fall = 2 }"
            ),
        ));
        let mut got = members(&f, "p").await;
        got.sort();
        let want: Vec<_> = b
            .iter()
            .enumerate()
            .map(|(i, x)| (x.addr.to_string(), Some(srv.to_owned()), i == 2))
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
        let url = format!("{}/", f.url("public"));
        let c = client();
        // Once every member is checked: weights 3:1, nothing to the backup.
        until("every member is up", || {
            f.log.all().matches("to=up").count() >= 3
        })
        .await;
        let mut count = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..400 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!(status, 200);
            *count.entry(backend).or_default() += 1;
        }
        println!("{count:?}");
        assert_eq!(count.get("c"), None, "{count:?}");
        let a = count.get("a").copied().unwrap_or(0);
        assert!((290..=310).contains(&a), "{count:?}");

        // Both of priority 10 fail their checks: the backup serves alone.
        let skip = f.log.len();
        b[0].set_health(503);
        b[1].set_health(503);
        for x in &b[..2] {
            let what = format!("{} down", x.addr);
            let at = format!("@{}", x.addr);
            let log = f.log.clone();
            tokio::task::spawn_blocking(move || {
                log.wait_match(&what, skip, |l| {
                    l.contains("backend state changed") && l.contains(&at) && l.contains("to=down")
                })
            })
            .await
            .unwrap();
        }
        // The health task publishes every member's share in the pass that logs
        // the change: the backup may take a moment more than the log line.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while get(&c, &url).await.1 != "c" {
            assert!(
                std::time::Instant::now() < deadline,
                "the backup never served"
            );
        }
        for _ in 0..20 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!((status, backend.as_str()), (200, "c"));
        }
        // One comes back: the backup stands down.
        b[1].set_health(200);
        let at = format!("@{}", b[1].addr);
        let log = f.log.clone();
        tokio::task::spawn_blocking(move || {
            log.wait_match("b up again", skip, |l| {
                l.contains("backend state changed") && l.contains(&at) && l.contains("to=up")
            })
        })
        .await
        .unwrap();
        // The health task publishes within its tick: the first answers may still
        // come from c.
        let mut from_c = 0;
        for i in 0..40 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!(status, 200);
            if backend == "c" && i >= 20 {
                from_c += 1;
            }
        }
        assert_eq!(from_c, 0, "the backup kept serving while b was up");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_resolver_keeps_members_and_an_empty_answer_waits_out_the_grace() {
    within(async {
        let b = on_one_port(2).await;
        let port = b[0].addr.port();
        let name = "api.fulcrum.test";
        let mut dns = Dns::start(&hosts(name, &[&b[0], &b[1]]), &[]);
        let f = Fulcrum::start(&dns_config(
            &dns,
            &format!(
                "backends = [\"{name}:{port}\"]\n\
                 dns = {{ min_ttl = \"1s\", max_ttl = \"1s\", empty_grace = \"3s\" }}"
            ),
        ));
        let load = Load::start(format!("{}/", f.url("public")), 2);
        load.wait_served("a", 10).await;
        load.wait_served("b", 10).await;

        // The resolver dies: lookups fail, the members stay.
        let skip = f.log.len();
        block_in_place(|| dns.kill());
        f.wait_line("DNS lookup failed; the last good answer is kept", skip)
            .await;
        let seen = load.tally();
        load.wait_served("a", seen.served_by("a") + 10).await;
        load.wait_served("b", seen.served_by("b") + 10).await;
        let metrics = crate::rate_limit::metrics(&f).await;
        assert!(
            metrics.contains(&format!(
                "fulcrum_discovery_lookups_total{{source=\"{name}:{port}\",pool=\"p\",result=\"failed\"}}"
            )),
            "{metrics}"
        );

        // It comes back without the name: nothing changes within the grace...
        let skip = f.log.len();
        std::fs::write(&dns.hosts, "").unwrap();
        block_in_place(|| dns.restart());
        f.wait_line("DNS answer is empty; the members are kept", skip)
            .await;
        let held = Instant::now();
        let seen = load.tally();
        load.wait_total(seen.total + 50).await;
        let before = load.tally();
        assert_eq!(before.failed(), 0, "{before:?}");
        // ...and the members go once it has lasted the grace.
        let (at, _) = block_in_place(|| {
            f.log.wait_match("the members given up", skip, |l| {
                l.contains("DNS answer stayed empty; the name has no members")
            })
        });
        let waited = held.elapsed();
        f.wait_line("config rebuilt", at).await;
        println!("members kept {waited:?} after the first empty answer (grace 3 s)");
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        let tally = load.stop().await;
        let (status, _, _) = get(&client(), &format!("{}/", f.url("public"))).await;
        assert_eq!(status, 503, "{tally:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_fed_the_same_answers_map_keys_alike() {
    within(async {
        let b = on_one_port(4).await;
        let port = b[0].addr.port();
        let name = "api.fulcrum.test";
        let all: Vec<&Backend> = b.iter().collect();
        let dns = Dns::start(&hosts(name, &all), &[]);
        let pool = format!(
            "balance = \"ring_hash\"\nhash_key = \"header:x-user\"\nbackends = [\"{name}:{port}\"]\n"
        );
        let one = Fulcrum::start(&dns_config(&dns, &pool));
        let two = Fulcrum::start(&dns_config(&dns, &pool));
        let c = client();
        let mut used = std::collections::BTreeSet::new();
        for i in 0..40 {
            let user = format!("user-{i}");
            let mut picks = Vec::new();
            for f in [&one, &two] {
                let url = format!("{}/", f.url("public"));
                let (status, headers, _) = fetch(&c, "GET", &url, &[("x-user", &user)]).await;
                assert_eq!(status, 200);
                picks.push(headers["x-backend"].to_str().unwrap().to_owned());
            }
            assert_eq!(picks[0], picks[1], "{user} went to different backends");
            used.insert(picks[0].clone());
        }
        assert!(used.len() >= 3, "40 keys landed on {used:?}");
    })
    .await;
}

/// Writes `text` to `path` as tools do: a new file renamed over the old one.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backends_file_is_applied_live_under_load() {
    within(async {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let c = Backend::start("c").await;
        let dir = TempDir::new();
        let file = dir.path("backends.json");
        replace(&file, &format!("[\"{}\"]", a.addr));
        let f = Fulcrum::start(&format!(
            "workers = 1\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\ndiscover = {{ file = {:?} }}\n",
            file.display().to_string()
        ));
        let load = Load::start(format!("{}/", f.url("public")), 4);
        load.wait_served("a", 20).await;
        replace(&file, &format!("[\"{}\", {{\"address\": \"{}\", \"weight\": 2}}]", a.addr, b.addr));
        load.wait_served("b", 20).await;
        // Prometheus file_sd groups; a leaves.
        let skip = f.log.len();
        replace(
            &file,
            &format!("[{{\"targets\": [\"{}\", \"{}\"], \"labels\": {{\"job\": \"api\"}}}}]", b.addr, c.addr),
        );
        f.wait_line("config rebuilt", skip).await;
        let total = load.tally().total;
        load.wait_total(total + 20).await;
        let a_then = load.tally().served_by("a");
        load.wait_served("c", 20).await;
        // A broken file keeps the last good list.
        let skip = f.log.len();
        replace(&file, "[\"127.0.0.1\"");
        f.wait_line("backends file unusable; the last good list is kept", skip)
            .await;
        let seen = load.tally();
        load.wait_served("b", seen.served_by("b") + 20).await;
        load.wait_served("c", seen.served_by("c") + 20).await;
        let tally = load.stop().await;
        assert_eq!(tally.served_by("a"), a_then, "{tally:?}");
        assert_eq!(tally.failed(), 0, "{tally:?}");
        let mut got = members(&f, "p").await;
        got.sort();
        let source = Some(file.display().to_string());
        let mut want = vec![
            (b.addr.to_string(), source.clone(), false),
            (c.addr.to_string(), source, false),
        ];
        want.sort();
        assert_eq!(got, want);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_adds_and_removes_members_until_the_next_reload() {
    within(async {
        let a = Backend::start("a").await;
        let b = Backend::start("b").await;
        let config = format!(
            "workers = 1\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
             [[routes]]\npool = \"p\"\n\n[pools.p]\nbackends = [\"{}\"]\n",
            a.addr
        );
        let f = Fulcrum::start(&config);
        let load = Load::start(format!("{}/", f.url("public")), 4);
        load.wait_served("a", 20).await;

        let add = format!("{{\"address\": \"{}\", \"weight\": 2}}", b.addr);
        let (status, v) = api(&f, "POST", "/api/pools/p/backends", &add).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["backend"], b.addr.to_string());
        load.wait_served("b", 20).await;
        // Bad input: a JSON error with a 4xx.
        for (path, body, want) in [
            ("/api/pools/p/backends", add.as_str(), 409),
            ("/api/pools/nope/backends", add.as_str(), 404),
            ("/api/pools/p/backends", "{\"address\": \"api.internal:80\"}", 400),
            ("/api/pools/p/backends", "{\"address\": \"10.0.0.1:80\", \"weight\": 0}", 400),
            ("/api/pools/p/backends", "nonsense", 400),
        ] {
            let (status, v) = api(&f, "POST", path, body).await;
            assert_eq!(status, want, "{path} {body}: {v}");
            assert!(v["error"].is_string(), "{v}");
        }
        let (status, v) = api(&f, "DELETE", "/api/pools/p/backends/10.9.9.9:1", "").await;
        assert_eq!((status, v["error"].is_string()), (404, true), "{v}");

        // a is removed: drained, no new requests.
        let (status, v) = api(&f, "DELETE", &format!("/api/pools/p/backends/{}", a.addr), "").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["state"], "draining");
        let total = load.tally().total;
        load.wait_total(total + 20).await;
        let a_then = load.tally().served_by("a");
        let total = load.tally().total;
        load.wait_total(total + 200).await;
        assert_eq!(load.tally().served_by("a"), a_then);
        let got = members(&f, "p").await;
        assert_eq!(got, vec![(b.addr.to_string(), Some("admin-api".to_owned()), false)]);

        // A reload forgets both changes: the pool is the config's again.
        block_in_place(|| f.reload_ok(&config));
        let got = members(&f, "p").await;
        assert_eq!(got, vec![(a.addr.to_string(), None, false)]);
        let seen = load.tally();
        load.wait_served("a", seen.served_by("a") + 20).await;
        let tally = load.stop().await;
        assert_eq!(tally.failed(), 0, "{tally:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_refuses_the_config_at_check_and_reload() {
    within(async {
        let b = on_one_port(1).await;
        let port = b[0].addr.port();
        let dns = Dns::start(&hosts("api.fulcrum.test", &[&b[0]]), &[]);
        let good = dns_config(&dns, &format!("backends = [\"api.fulcrum.test:{port}\"]"));
        let bad = dns_config(&dns, "backends = [\"nope.fulcrum.test:80\"]");
        let dir = TempDir::new();
        let path = dir.path("bad.toml");
        std::fs::write(&path, &bad).unwrap();
        let (code, out) = block_in_place(|| check(&path));
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains("pools.p.backends: cannot resolve nope.fulcrum.test:80: no addresses"),
            "{out}"
        );
        let f = Fulcrum::start(&good);
        let c = client();
        let url = format!("{}/", f.url("public"));
        assert_eq!(get(&c, &url).await.1, "a");
        let line = block_in_place(|| f.reload(&bad));
        assert!(line.contains("reload failed"), "{line}");
        assert!(
            line.contains("cannot resolve nope.fulcrum.test:80"),
            "{line}"
        );
        assert_eq!(get(&c, &url).await.1, "a");
    })
    .await;
}
