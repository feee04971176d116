//! Outlier detection: a backend answering 5xx in a row is ejected from real traffic,
//! within the pool's ejection limit, and comes back when its ejection ends.

use crate::support::*;
use crate::support_health::*;

/// No retries (so every 500 reaches the client as is), no active checks, no panic.
fn config(backends: &[&Switchable], outlier: &str) -> String {
    pool_of(
        backends,
        &format!("outlier = {outlier}\npanic_threshold = 0"),
    )
}

/// Sends GETs one at a time until `backend` has seen `n` requests (at most 20 sent);
/// returns the answers.
async fn until_reached(f: &Fulcrum, backend: &Switchable, n: usize) -> Vec<(u16, String)> {
    let c = client();
    let mut answers = Vec::new();
    while backend.requests() < n {
        assert!(
            answers.len() < 20,
            "{} never got {n} requests: {answers:?}",
            backend.name
        );
        let (status, name, _) = get(&c, &format!("{}/", f.url("public"))).await;
        answers.push((status, name));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_500s_in_a_row_eject_a_backend() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        a.set_mode(Mode::Fail500);
        let f = Fulcrum::start(&config(
            &[&a, &b],
            "{ consecutive_5xx = 3, max_ejection_percent = 50 }",
        ));
        // Sequential, so exactly the 500s that reached `a` reach the client.
        let answers = until_reached(&f, &a, 3).await;
        let errors = answers.iter().filter(|(s, _)| *s == 500).count();
        assert_eq!(errors, 3, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, n)| (*s, n.as_str()) == (500, "a") || (*s, n.as_str()) == (200, "b")),
            "{answers:?}"
        );
        f.wait_event("backend ejected", a.addr, 0).await;
        let all = f.log.all();
        let line = all
            .lines()
            .find(|l| is_event(l, "backend ejected", a.addr))
            .unwrap();
        assert!(token(line, "reason").is_some(), "no reason: {line}");
        let c = client();
        for i in 0..50 {
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(
                (status, backend.as_str()),
                (200, "b"),
                "request {i} after the ejection"
            );
        }
        assert_eq!(a.requests(), 3, "an ejected backend got requests");
        f.wait_state(a.addr, "ejected", 0).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejection_percent_keeps_a_failing_backend_in() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        a.set_mode(Mode::Fail500);
        b.set_mode(Mode::Fail500);
        // Both fail, but at most half the pool may be out: one stays, 500s and all.
        let f = Fulcrum::start(&config(
            &[&a, &b],
            "{ consecutive_5xx = 3, max_ejection_percent = 50 }",
        ));
        let c = client();
        let url = format!("{}/", f.url("public"));
        let mut first = Vec::new();
        while f.count_events("backend ejected", a.addr) + f.count_events("backend ejected", b.addr)
            == 0
        {
            assert!(first.len() < 20, "nothing ejected after {first:?}");
            first.push(get(&c, &url).await.0);
        }
        let (out, kept) = if f.count_events("backend ejected", a.addr) == 1 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let out_before = out.requests();
        for i in 0..20 {
            let (status, backend, _) = get(&c, &url).await;
            assert_eq!(
                (status, backend.as_str()),
                (500, kept.name.as_str()),
                "request {i}"
            );
        }
        assert_eq!(
            out.requests(),
            out_before,
            "the ejected backend got requests"
        );
        assert_eq!(
            f.count_events("backend ejected", kept.addr),
            0,
            "both ejected, past max_ejection_percent:\n{}",
            f.log.all()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_backend_returns_when_its_ejection_ends() {
    within(async {
        let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
        a.set_mode(Mode::Fail500);
        let f = Fulcrum::start(&config(
            &[&a, &b],
            "{ consecutive_5xx = 3, max_ejection_percent = 50, base_ejection_time = \"1s\" }",
        ));
        until_reached(&f, &a, 3).await;
        let skip = f.wait_event("backend ejected", a.addr, 0).await;
        a.set_mode(Mode::Healthy);
        f.wait_state(a.addr, "up", skip).await;
        let c = client();
        let before = a.requests();
        for i in 0..10 {
            let (status, _, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200, "request {i}");
        }
        // Round robin over two backends at full weight again.
        assert!(
            a.requests() - before >= 4,
            "a got {} of 10 after returning",
            a.requests() - before
        );
    })
    .await;
}
