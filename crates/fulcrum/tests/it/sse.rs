//! Server-sent events through Fulcrum: a real hyper backend whose event stream the
//! test feeds by hand, read by real HTTP/1.1 and HTTP/2 clients. Each event must reach
//! the client while the stream is still open (nothing buffered past one read), in
//! order, and a quiet stream lives by its route's `stream_idle_timeout`, not by the
//! pool's `upstream_timeout`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::*;
use crate::support_health::ChannelBody;

/// An event-stream backend: every request gets `200 text/event-stream` whose body is
/// fed through a sender handed to the test; the stream ends when the test drops it.
struct Events {
    addr: SocketAddr,
    streams: mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (give, streams) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = l.accept().await else {
                    return;
                };
                // As event-stream servers do: each event leaves when written.
                io.set_nodelay(true).unwrap();
                let give = give.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        let (tx, rx) = mpsc::channel(2048);
                        let _ = give.send(tx);
                        async move {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .header("cache-control", "no-cache")
                                .body(ChannelBody(rx))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            streams,
            task,
        }
    }

    /// The sender of the next stream a request opened.
    async fn next(&mut self) -> mpsc::Sender<Bytes> {
        self.streams.recv().await.unwrap()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Reads the body until `want` has arrived (or the stream ends); returns all of it.
async fn read_until(body: &mut Incoming, got: &mut Vec<u8>, want: &[u8]) -> bool {
    while !got.windows(want.len()).any(|w| w == want) {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    got.extend_from_slice(d);
                }
            }
            _ => return false,
        }
    }
    true
}

/// Time from the backend writing an event to the client reading it, on an open stream.
async fn first_event_latency(c: &Client, url: &str, events: &mut Events) -> Duration {
    // The response head comes when the first bytes do: send one event to open it.
    let res = c.get(url.parse().unwrap());
    let tx = async {
        let tx = events.next().await;
        tx.send(Bytes::from_static(b": open\n\n")).await.unwrap();
        tx
    };
    let (res, tx) = tokio::join!(res, tx);
    let mut body = res.unwrap().into_body();
    let mut got = Vec::new();
    assert!(read_until(&mut body, &mut got, b": open\n\n").await);
    let sent = Instant::now();
    tx.send(Bytes::from_static(b"data: first\n\n"))
        .await
        .unwrap();
    assert!(read_until(&mut body, &mut got, b"data: first\n\n").await);
    let took = sent.elapsed();
    // The stream is still open: the event came on its own, not with the end.
    assert!(!tx.is_closed());
    took
}

fn config(events: &Events, route: &str, pool: &str) -> String {
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npool = \"p\"\n{route}\n\n[pools.p]\nbackends = [\"{}\"]\n{pool}\n",
        events.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_reaches_the_client_while_the_stream_stays_open() {
    within(async {
        let mut events = Events::start().await;
        let f = Fulcrum::start(&config(&events, "", ""));
        let direct = format!("http://{}/events", events.addr);
        let proxied = format!("{}/events", f.url("public"));
        let (h1, h2) = (client(), h2_client());
        // Informative only (timing on two busy cores is no assertion): median of 5.
        let mut d = Vec::new();
        let mut p = Vec::new();
        let mut p2 = Vec::new();
        for _ in 0..5 {
            d.push(first_event_latency(&h1, &direct, &mut events).await);
            p.push(first_event_latency(&h1, &proxied, &mut events).await);
            p2.push(first_event_latency(&h2, &proxied, &mut events).await);
        }
        for v in [&mut d, &mut p, &mut p2] {
            v.sort();
        }
        println!(
            "sse: first event after write, median of 5: direct {:?}, through Fulcrum (HTTP/1.1) {:?}, (HTTP/2) {:?}",
            d[2], p[2], p2[2]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_arrive_in_order() {
    within(async {
        let mut events = Events::start().await;
        let f = Fulcrum::start(&config(&events, "", ""));
        for c in [client(), h2_client()] {
            let (mut body, tx) = open_after_first(&c, &f, &mut events).await;
            let mut got = Vec::new();
            for i in 0..1000 {
                tx.send(Bytes::from(format!("id: {i}\ndata: event {i}\n\n")))
                    .await
                    .unwrap();
            }
            drop(tx);
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    got.extend_from_slice(d);
                }
            }
            let text = String::from_utf8(got).unwrap();
            let expected: String = std::iter::once(": open\n\n".to_owned())
                .chain((0..1000).map(|i| format!("id: {i}\ndata: event {i}\n\n")))
                .collect();
            assert!(text == expected, "events lost or out of order");
        }
    })
    .await;
}

/// Opens a stream through Fulcrum, with a first comment so the head comes at once.
async fn open_after_first(
    c: &Client,
    f: &Fulcrum,
    events: &mut Events,
) -> (Incoming, mpsc::Sender<Bytes>) {
    let url = format!("{}/events", f.url("public"));
    let res = c.get(url.parse().unwrap());
    let tx = async {
        let tx = events.next().await;
        tx.send(Bytes::from_static(b": open\n\n")).await.unwrap();
        tx
    };
    let (res, tx) = tokio::join!(res, tx);
    let res = res.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    (res.into_body(), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_event_stream_lives_by_the_route_not_the_upstream_timeout() {
    within(async {
        let mut events = Events::start().await;
        // upstream_timeout far below the silence; the route's stream timeout above it.
        let f = Fulcrum::start(&config(
            &events,
            "stream_idle_timeout = \"30s\"",
            "upstream_timeout = \"200ms\"",
        ));
        for c in [client(), h2_client()] {
            let (mut body, tx) = open_after_first(&c, &f, &mut events).await;
            let mut got = Vec::new();
            assert!(read_until(&mut body, &mut got, b": open\n\n").await);
            // Measures a silence the proxy must survive, so it sleeps on purpose.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            tx.send(Bytes::from_static(b"data: late\n\n"))
                .await
                .unwrap();
            assert!(
                read_until(&mut body, &mut got, b"data: late\n\n").await,
                "the quiet stream was cut: {}",
                String::from_utf8_lossy(&got)
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_quiet_past_stream_idle_timeout_is_cut() {
    within(async {
        let mut events = Events::start().await;
        let f = Fulcrum::start(&config(&events, "stream_idle_timeout = \"300ms\"", ""));
        let (mut body, tx) = open_after_first(&client(), &f, &mut events).await;
        let mut got = Vec::new();
        assert!(read_until(&mut body, &mut got, b": open\n\n").await);
        // Nothing more is sent: Fulcrum ends the response, the client sees it end.
        let started = Instant::now();
        while let Some(Ok(_)) = body.frame().await {}
        assert!(started.elapsed() >= Duration::from_millis(250));
        drop(tx);
        let line = f.wait_access_log(1);
        assert!(line[0]["error"].as_str().is_some(), "{:?}", line[0]);
    })
    .await;
}
