//! Circuit limits: past `max_requests`, or past `max_connections` plus `max_pending`,
//! a request is answered `503` with `Retry-After` at once, and the pool serves again
//! when load falls.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::support::*;
use crate::support_health::*;

/// `GET path` on a client of its own, in the background.
fn background(f: &Fulcrum, path: &str) -> JoinHandle<Answer> {
    let url = format!("{}{path}", f.url("public"));
    tokio::spawn(async move { send(&client(), "GET", &url, "").await })
}

/// A request that must be refused without waiting for the held ones.
async fn refused_at_once(f: &Fulcrum, path: &str) -> Answer {
    let url = format!("{}{path}", f.url("public"));
    let r = tokio::time::timeout(Duration::from_secs(10), send(&client(), "GET", &url, ""))
        .await
        .expect("the request over the limit waited instead of being refused");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.retry_after.is_some(), "503 without Retry-After: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_requests_is_503_with_retry_after() {
    within(async {
        let a = Switchable::start("a").await;
        let f = Fulcrum::start(&pool_of(&[&a], "max_requests = 2"));
        let held = [background(&f, "/hold/1"), background(&f, "/hold/2")];
        until("two requests held", || a.held() == 2).await;
        refused_at_once(&f, "/").await;
        assert_eq!(
            a.requests(),
            2,
            "the request over the limit reached the backend"
        );
        a.release();
        for h in held {
            let r = h.await.unwrap();
            assert_eq!((r.status, r.backend.as_str()), (200, "a"), "{r:?}");
        }
        let (status, _, _) = get(&client(), &format!("{}/", f.url("public"))).await;
        assert_eq!(status, 200, "still refusing after the load fell");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_one_waits_and_the_next_is_503() {
    within(async {
        let a = Switchable::start("a").await;
        let f = Fulcrum::start(&pool_of(&[&a], "max_connections = 1\nmax_pending = 1"));
        let first = background(&f, "/hold/1");
        until("the first request held", || a.held() == 1).await;
        // Two more at once: whichever comes second finds the queue full. The order
        // is not ours to choose, so look at whichever finishes first.
        let mut second = background(&f, "/hold/2");
        let mut third = background(&f, "/hold/3");
        let (shed, mut waiting) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                r = &mut second => (r.unwrap(), third),
                r = &mut third => (r.unwrap(), second),
            }
        })
        .await
        .expect("neither request past the queue was refused at once");
        assert_eq!(shed.status, 503, "{shed:?}");
        assert!(
            shed.retry_after.is_some(),
            "503 without Retry-After: {shed:?}"
        );
        assert!(!waiting.is_finished(), "the queued request did not wait");
        assert_eq!(a.requests(), 1, "a second upstream connection was opened");
        a.release();
        let r = first.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = (&mut waiting).await.unwrap();
        assert_eq!(
            (r.status, r.backend.as_str()),
            (200, "a"),
            "the queued request: {r:?}"
        );
        assert_eq!(a.requests(), 2);
    })
    .await;
}
