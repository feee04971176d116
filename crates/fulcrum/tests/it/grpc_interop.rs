//! gRPC through Fulcrum against an implementation we did not write: a Python grpcio
//! (C-core) server behind Fulcrum over h2c, called by a grpcio client and by tonic.
//! C-core resets every call that arrives without `te: trailers`, which tonic never
//! checks: this is the test that catches a proxy dropping it. The scripts live in
//! `tests/it/grpcio/`; `scripts/test-all` installs grpcio from PyPI when missing.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use tonic::{Code, Request};
use tonic_prost::ProstCodec;

use crate::grpc::{msg, path, Msg};
use crate::support::*;

fn script(name: &str) -> String {
    format!("{}/tests/it/grpcio/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The grpcio server on 127.0.0.1:0; it exits when its stdin closes (on drop).
struct GrpcioServer {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

impl GrpcioServer {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/test-all installs grpcio)");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| {
                panic!("grpcio server did not start: {line:?} (is grpcio installed?)")
            })
            .parse()
            .unwrap();
        Self {
            child,
            _stdin: stdin,
            port,
        }
    }
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16) -> String {
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath_prefix = \"/test.Echo/\"\npool = \"grpc\"\n\n\
         [pools.grpc]\nprotocol = \"h2c\"\nbackends = [\"127.0.0.1:{port}\"]\n"
    )
}

#[test]
fn a_grpcio_client_reaches_a_grpcio_server_through_fulcrum() {
    let server = GrpcioServer::start();
    let f = Fulcrum::start(&config(server.port));
    let out = Command::new("python3")
        .arg(script("client.py"))
        .arg(f.addr("public").to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "grpcio client failed through Fulcrum:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("grpcio client: all passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_reaches_a_grpcio_server_through_fulcrum() {
    within(async {
        let server = GrpcioServer::start();
        let f = Fulcrum::start(&config(server.port));
        let channel = tonic::transport::Channel::from_shared(f.url("public"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = tonic::client::Grpc::new(channel);

        c.ready().await.unwrap();
        let r = c
            .unary(
                Request::new(msg("hi", 41)),
                path("Unary"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.into_inner(), msg("hi", 41));

        // Client streaming.
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

        // Server streaming.
        c.ready().await.unwrap();
        let mut s = c
            .server_streaming(
                Request::new(msg("x", 200)),
                path("Count"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m, msg("x", n));
            n += 1;
        }
        assert_eq!(n, 200);

        // Bidirectional, in lockstep. grpcio sends the response head with its first
        // message, and tonic waits for that head: the first ping goes before.
        c.ready().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(msg("ping", 0)).await.unwrap();
        let mut back = c
            .streaming(
                Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
                path("Chat"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        for n in 0..50 {
            assert_eq!(back.message().await.unwrap(), Some(msg("ping", n + 1)));
            if n + 1 < 50 {
                tx.send(msg("ping", n + 1)).await.unwrap();
            }
        }
        drop(tx);
        assert_eq!(back.message().await.unwrap(), None);

        // An error status with its metadata, carried in the trailers.
        c.ready().await.unwrap();
        let err = c
            .unary::<Msg, Msg, _>(
                Request::new(msg("fail", 0)),
                path("Unary"),
                ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), "bad input");
        assert_eq!(err.metadata().get("why").unwrap(), "because");

        // Deadlines are checked by the grpcio client above: tonic runs its own timer
        // on grpc-timeout, which would answer before Fulcrum or the server.
    })
    .await;
}
