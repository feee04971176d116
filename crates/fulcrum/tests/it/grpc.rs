//! gRPC through Fulcrum: a real tonic server (h2c, behind hyper) and a real tonic
//! client, with messages written by hand for prost so no protoc is needed. Every call
//! kind, an error with details in the trailers, a deadline Fulcrum enforces, a cancel
//! that reaches the server, and the gRPC statuses Fulcrum answers with itself.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::support::*;

/// The one message type both ways.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(uint32, tag = "2")]
    pub n: u32,
}

pub fn msg(text: &str, n: u32) -> Msg {
    Msg {
        text: text.into(),
        n,
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

/// What the server saw: calls started, and calls dropped before they finished
/// (a cancel that reached it).
#[derive(Default)]
struct Seen {
    started: AtomicUsize,
    cancelled: AtomicBool,
    /// What the health service answers for `test.Echo`: SERVING unless set.
    sick: AtomicBool,
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (status 1 = SERVING, 2 = NOT_SERVING).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `/grpc.health.v1.Health/Check`: `test.Echo` is SERVING unless `sick`; any other
/// service is NOT_FOUND, as the standard service answers.
struct Health(Arc<Seen>);

impl tonic::server::UnaryService<HealthCheckRequest> for Health {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<Result<Response<HealthCheckResponse>, Status>>;
    fn call(&mut self, req: Request<HealthCheckRequest>) -> Self::Future {
        let sick = self.0.sick.load(Ordering::SeqCst);
        let service = req.into_inner().service;
        Box::pin(async move {
            match service.as_str() {
                "test.Echo" => Ok(Response::new(HealthCheckResponse {
                    status: if sick { 2 } else { 1 },
                })),
                _ => Err(Status::not_found("unknown service")),
            }
        })
    }
}

/// Sets `cancelled` if dropped before `done`.
struct Guard(Arc<Seen>, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.store(true, Ordering::SeqCst);
        }
    }
}

/// `/test.Echo/Unary`: echoes; `fail` answers INVALID_ARGUMENT with details; `slow`
/// answers after 3 s; `hang` never answers.
struct Unary(Arc<Seen>);

impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = BoxFuture<Result<Response<Msg>, Status>>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        let seen = self.0.clone();
        Box::pin(async move {
            seen.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = Guard(seen, false);
            let m = req.into_inner();
            let out = match m.text.as_str() {
                "fail" => Err(Status::with_details(
                    Code::InvalidArgument,
                    "no such thing",
                    Bytes::from_static(b"\x08\x03details\xff"),
                )),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(Response::new(msg("slow", 0)))
                }
                "hang" => std::future::pending().await,
                text => {
                    let mut r = Response::new(msg(&format!("echo {text}"), m.n + 1));
                    r.metadata_mut()
                        .insert("x-served-by", "grpc-test".parse().unwrap());
                    Ok(r)
                }
            };
            guard.1 = true;
            out
        })
    }
}

/// `/test.Echo/Sum`: client streaming, answers the count and sum of `n`.
struct Sum;

impl tonic::server::ClientStreamingService<Msg> for Sum {
    type Response = Msg;
    type Future = BoxFuture<Result<Response<Msg>, Status>>;
    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut s = req.into_inner();
            let (mut count, mut sum) = (0u32, 0u32);
            while let Some(m) = s.message().await? {
                count += 1;
                sum += m.n;
            }
            Ok(Response::new(msg(&format!("{count}"), sum)))
        })
    }
}

/// `/test.Echo/Count`: server streaming, `n` messages numbered from 0.
struct Count;

impl tonic::server::ServerStreamingService<Msg> for Count {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Result<Response<MsgStream>, Status>>;
    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        let n = req.into_inner().n;
        Box::pin(async move {
            let s: MsgStream = Box::pin(tokio_stream::iter((0..n).map(|i| Ok(msg("item", i)))));
            Ok(Response::new(s))
        })
    }
}

/// `/test.Echo/Chat`: bidirectional, each message back with `n + 1`.
struct Chat;

impl tonic::server::StreamingService<Msg> for Chat {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Result<Response<MsgStream>, Status>>;
    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let s: MsgStream = Box::pin(req.into_inner().map(|m| m.map(|m| msg(&m.text, m.n + 1))));
            Ok(Response::new(s))
        })
    }
}

/// The test gRPC server on port 0 (HTTP/2 prior knowledge, as gRPC backends speak).
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = l.accept().await else {
                    return;
                };
                let seen = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let mut g =
                                    tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
                                let res = match req.uri().path() {
                                    "/test.Echo/Unary" => g.unary(Unary(seen), req).await,
                                    "/test.Echo/Sum" => g.client_streaming(Sum, req).await,
                                    "/test.Echo/Count" => g.server_streaming(Count, req).await,
                                    "/test.Echo/Chat" => g.streaming(Chat, req).await,
                                    "/grpc.health.v1.Health/Check" => {
                                        tonic::server::Grpc::new(ProstCodec::default())
                                            .unary(Health(seen), req)
                                            .await
                                    }
                                    _ => Status::unimplemented("no such method").into_http(),
                                };
                                Ok::<_, Infallible>(res)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
                });
            }
        });
        Self { addr, seen, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fulcrum routing `/test.Echo/` to an h2c pool over `backends`.
fn config(backends: &[String], pool: &str) -> String {
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath_prefix = \"/test.Echo/\"\npool = \"grpc\"\n\n\
         [pools.grpc]\nprotocol = \"h2c\"\nbackends = [{}]\n{pool}\n",
        backends.join(", ")
    )
}

async fn connect(f: &Fulcrum) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(f.url("public"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

pub fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/test.Echo/{method}")).unwrap()
}

async fn unary(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    req: Request<Msg>,
) -> Result<Response<Msg>, Status> {
    c.ready().await.unwrap();
    c.unary(req, path("Unary"), ProstCodec::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_kind_crosses_with_its_trailers() {
    within(async {
        let s = Server::start().await;
        let f = Fulcrum::start(&config(&[format!("\"{}\"", s.addr)], ""));
        let mut c = connect(&f).await;

        let r = unary(&mut c, Request::new(msg("hi", 41))).await.unwrap();
        assert_eq!(r.metadata().get("x-served-by").unwrap(), "grpc-test");
        assert_eq!(r.into_inner(), msg("echo hi", 42));

        c.ready().await.unwrap();
        let items = tokio_stream::iter((1..=100).map(|n| msg("part", n)));
        let r = c
            .client_streaming(
                Request::new(items),
                path("Sum"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.into_inner(), msg("100", 5050));

        c.ready().await.unwrap();
        let mut stream = c
            .server_streaming(
                Request::new(msg("", 500)),
                path("Count"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut i = 0;
        while let Some(m) = stream.message().await.unwrap() {
            assert_eq!(m, msg("item", i));
            i += 1;
        }
        assert_eq!(i, 500);

        // Bidirectional: each answer comes back before the next message is sent.
        c.ready().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut back = c
            .streaming(
                Request::new(out),
                path("Chat"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        for n in 0..50 {
            tx.send(msg("ping", n)).await.unwrap();
            assert_eq!(back.message().await.unwrap(), Some(msg("ping", n + 1)));
        }
        drop(tx);
        assert_eq!(back.message().await.unwrap(), None);

        // An error status with binary details, carried in the trailers.
        let err = unary(&mut c, Request::new(msg("fail", 0)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "no such thing");
        assert_eq!(err.details(), b"\x08\x03details\xff");
    })
    .await;
}

/// Sent by a raw HTTP/2 client, since tonic's client enforces `grpc-timeout` itself:
/// here only Fulcrum can end the call, with DEADLINE_EXCEEDED, long before the
/// backend would answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_is_enforced_by_fulcrum() {
    within(async {
        let s = Server::start().await;
        let f = Fulcrum::start(&config(&[format!("\"{}\"", s.addr)], ""));
        let io = tokio::net::TcpStream::connect(f.addr("public"))
            .await
            .unwrap();
        let (h2, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut h2 = h2.ready().await.unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}/test.Echo/Unary", f.addr("public")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "300m")
            .body(())
            .unwrap();
        let started = Instant::now();
        let (res, mut send) = h2.send_request(req, false).unwrap();
        let body = prost::Message::encode_to_vec(&msg("slow", 0));
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        send.send_data(framed.into(), true).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        // Trailers-only: the status is in the one HEADERS frame.
        assert_eq!(res.headers()["grpc-status"], "4", "{:?}", res.headers());
        assert_eq!(res.headers()["content-type"], "application/grpc");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(s.seen.started.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cancel_reaches_the_server() {
    within(async {
        let s = Server::start().await;
        let f = Fulcrum::start(&config(&[format!("\"{}\"", s.addr)], ""));
        let mut c = connect(&f).await;
        let call = tokio::spawn(async move {
            let _ = unary(&mut c, Request::new(msg("hang", 0))).await;
        });
        until("the server has the call", || {
            s.seen.started.load(Ordering::SeqCst) == 1
        })
        .await;
        // Dropping the call resets its HTTP/2 stream; Fulcrum resets the backend's.
        call.abort();
        until("the server saw the cancel", || {
            s.seen.cancelled.load(Ordering::SeqCst)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulcrum_answers_its_own_errors_as_grpc_statuses() {
    within(async {
        // A port nothing listens on: every connect is refused.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let f = Fulcrum::start(&config(&[format!("\"{dead}\"")], "connect_attempts = 1"));
        let mut c = connect(&f).await;
        let err = unary(&mut c, Request::new(msg("hi", 0))).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(!err.message().is_empty());

        // No route for the method: UNIMPLEMENTED.
        c.ready().await.unwrap();
        let err = c
            .unary::<Msg, Msg, _>(
                Request::new(msg("hi", 0)),
                PathAndQuery::from_static("/other.Service/Call"),
                ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
        let lines = f.wait_access_log(2);
        assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_health_probe_follows_the_served_status() {
    within(async {
        let s = Server::start().await;
        let f = Fulcrum::start(&config(
            &[format!("\"{}\"", s.addr)],
            // No panic mode: with its only backend down the pool has none.
            "connect_attempts = 1\npanic_threshold = 0\nhealth = { grpc = \"test.Echo\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }",
        ));
        f.wait_state(s.addr, "up", 0).await;
        let mut c = connect(&f).await;
        assert_eq!(
            unary(&mut c, Request::new(msg("hi", 1))).await.unwrap().into_inner(),
            msg("echo hi", 2)
        );
        let skip = f.log.len();
        s.seen.sick.store(true, Ordering::SeqCst);
        f.wait_state(s.addr, "down", skip).await;
        let err = unary(&mut c, Request::new(msg("hi", 1))).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        let skip = f.log.len();
        s.seen.sick.store(false, Ordering::SeqCst);
        f.wait_state(s.addr, "up", skip).await;

        // A service the backend does not know fails the check (NOT_FOUND).
        let g = Fulcrum::start(&config(
            &[format!("\"{}\"", s.addr)],
            "health = { grpc = \"other.Service\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }",
        ));
        g.wait_state(s.addr, "down", 0).await;
    })
    .await;
}
