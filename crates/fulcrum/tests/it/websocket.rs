//! WebSocket through Fulcrum: a real tungstenite echo backend and real tungstenite
//! clients. The upgrade is a head exchange; after the `101` Fulcrum splices bytes, so
//! every frame kind, size and close code must arrive as sent, and only the route's
//! stream timeouts (never the HTTP keep-alive or upstream ones) may end a socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::*;

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames and messages up to 64 MiB: the 16 MB message must not hit a library limit.
fn big() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// A WebSocket echo server: every data message comes back as it came, a close is
/// answered with the same code and reason. Counts the sockets it accepted.
pub struct Echo {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    pub async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((io, _)) = l.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut ws) =
                        tokio_tungstenite::accept_async_with_config(io, Some(big())).await
                    else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        // tungstenite answers pings and closes by itself.
                        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    fn quoted(&self) -> String {
        format!("\"{}\"", self.addr)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pool over `backend`, with `listener` and `route` settings added.
fn config(backend: &Echo, listener: &str, route: &str) -> String {
    config_with(backend, listener, route, "")
}

/// As [`config`], with `pool` settings too.
fn config_with(backend: &Echo, listener: &str, route: &str, pool: &str) -> String {
    format!(
        "workers = 1\n\n[listeners.public]\naddress = \"127.0.0.1:0\"\n{listener}\n\n\
         [[routes]]\npool = \"p\"\n{route}\n\n[pools.p]\nbackends = [{}]\n{pool}\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        backend.quoted()
    )
}

async fn connect(f: &Fulcrum) -> Client {
    let url = format!("ws://{}/chat", f.addr("public"));
    let (ws, res) = tokio_tungstenite::connect_async_with_config(url, Some(big()), false)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    ws
}

/// Sends `m` and returns the next data message.
pub async fn echo(ws: &mut Client, m: Message) -> Message {
    ws.send(m).await.unwrap();
    loop {
        let m = ws.next().await.expect("socket ended").unwrap();
        if m.is_text() || m.is_binary() {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_kind_and_close_code_crosses_intact() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", ""));
        let mut ws = connect(&f).await;

        let text = Message::text("hello, ünïcödé");
        assert_eq!(echo(&mut ws, text.clone()).await, text);
        let bin = Message::binary((0..=255u8).collect::<Vec<_>>());
        assert_eq!(echo(&mut ws, bin.clone()).await, bin);

        // One text message in three frames: the backend reassembles it.
        for (data, op, fin) in [
            ("frag", OpCode::Data(Data::Text), false),
            ("men", OpCode::Data(Data::Continue), false),
            ("ted", OpCode::Data(Data::Continue), true),
        ] {
            ws.send(Message::Frame(Frame::message(data, op, fin)))
                .await
                .unwrap();
        }
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => assert_eq!(t.as_str(), "fragmented"),
            other => panic!("{other:?}"),
        }

        // A ping is answered by the backend's pong, through Fulcrum.
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
            other => panic!("{other:?}"),
        }

        ws.close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "done here".into(),
        }))
        .await
        .unwrap();
        let mut closed = None;
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(c)) = m {
                closed = c;
            }
        }
        let c = closed.expect("a close frame back");
        assert_eq!(c.code, CloseCode::Library(4001));
        assert_eq!(c.reason.as_str(), "done here");
        // The backend closed first, as RFC 6455 says; the client closes its end now.
        drop(ws);

        // One access log line for the socket, as a 101 with both byte counts.
        let line = f
            .wait_access_log(1)
            .into_iter()
            .find(|l| l["status"] == 101)
            .expect("a 101 line");
        assert!(line["bytes_in"].as_u64().unwrap() > 256, "{line}");
        assert!(line["bytes_out"].as_u64().unwrap() > 256, "{line}");
        assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixteen_megabyte_message_arrives_whole() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", ""));
        let mut ws = connect(&f).await;
        let data: Vec<u8> = (0..16_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        match echo(&mut ws, Message::binary(data.clone())).await {
            Message::Binary(got) => assert!(got[..] == data[..], "16 MB changed on the way"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sockets_echo_a_hundred_messages_each() {
    within(async {
        let b = Echo::start().await;
        let f = Arc::new(Fulcrum::start(&config(&b, "", "")));
        let mut tasks = Vec::new();
        for n in 0..500 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut ws = connect(&f).await;
                for i in 0..100 {
                    let m = Message::text(format!("socket {n} message {i}"));
                    assert_eq!(echo(&mut ws, m.clone()).await, m);
                }
                ws.close(None).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(b.accepted.load(Ordering::SeqCst), 500);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_outlives_the_http_timeouts() {
    within(async {
        let b = Echo::start().await;
        // Every HTTP timeout far shorter than the silence below.
        let f = Fulcrum::start(&config_with(
            &b,
            "keepalive_timeout = \"300ms\"\nclient_timeout = \"300ms\"\nheader_timeout = \"300ms\"",
            "",
            "upstream_timeout = \"300ms\"",
        ));
        let mut ws = connect(&f).await;
        assert_eq!(
            echo(&mut ws, Message::text("before")).await,
            Message::text("before")
        );
        // Measures a duration the proxy must survive, so it sleeps on purpose.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            echo(&mut ws, Message::text("after")).await,
            Message::text("after")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_stream_idle_timeout_closes_a_silent_socket() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", "stream_idle_timeout = \"300ms\""));
        let mut ws = connect(&f).await;
        assert_eq!(
            echo(&mut ws, Message::text("hi")).await,
            Message::text("hi")
        );
        // Fulcrum closes both sides; the client sees its socket end.
        while let Some(Ok(_)) = ws.next().await {}
        let line = f
            .wait_access_log(1)
            .into_iter()
            .find(|l| l["status"] == 101)
            .expect("a 101 line");
        assert_eq!(line["error"], "stream idle timeout", "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stream_duration_ends_a_busy_socket() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", "max_stream_duration = \"500ms\""));
        let mut ws = connect(&f).await;
        // Keeps talking: only the duration cap can end it.
        let mut ended = false;
        for i in 0..10_000 {
            let m = Message::text(format!("{i}"));
            if ws.send(m).await.is_err() {
                ended = true;
                break;
            }
            match ws.next().await {
                Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                _ => {
                    ended = true;
                    break;
                }
            }
        }
        assert!(ended, "the socket outlived max_stream_duration");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sockets_survive_a_reload_and_count_as_streams() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", ""));
        let mut sockets = Vec::new();
        for _ in 0..3 {
            sockets.push(connect(&f).await);
        }
        let admin = f.admin_addr().await;
        let metrics = || async move {
            let (status, _, body) = get(&client(), &format!("http://{admin}/metrics")).await;
            assert_eq!(status, 200);
            String::from_utf8_lossy(&body).into_owned()
        };
        let open = format!(
            "fulcrum_backend_open_streams{{pool=\"p\",backend=\"{}\"}} 3",
            b.addr
        );
        let body = metrics().await;
        assert!(body.contains(&open), "{open} not in\n{body}");

        // A reload with a change to the route: the sockets stay on their snapshot.
        let line = tokio::task::block_in_place(|| {
            f.reload(&config(&b, "", "stream_idle_timeout = \"2h\""))
        });
        assert!(line.contains("config reloaded"), "{line}");
        for (i, ws) in sockets.iter_mut().enumerate() {
            let m = Message::text(format!("after reload {i}"));
            assert_eq!(echo(ws, m.clone()).await, m);
        }
        // They end when their peers close them, and only then.
        for mut ws in sockets {
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        }
        let gone = format!(
            "fulcrum_backend_open_streams{{pool=\"p\",backend=\"{}\"}} 0",
            b.addr
        );
        let mut body = metrics().await;
        for _ in 0..200 {
            if body.contains(&gone) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            body = metrics().await;
        }
        assert!(body.contains(&gone), "{gone} not in\n{body}");
        assert!(
            body.contains("fulcrum_pool_stream_duration_seconds_count{pool=\"p\"} 3"),
            "{body}"
        );
    })
    .await;
}

/// An upgrade the route does not list goes on as a plain request: the backend never
/// sees `Upgrade`, and the client gets an ordinary response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_upgrade_is_not_passed_on() {
    within(async {
        let a = Backend::start("a").await;
        let f = Fulcrum::start(&one_pool("round_robin", &[quoted(&a)], ""));
        let answer = raw(
            f.addr("public"),
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade, close\r\nupgrade: h2c\r\n\r\n",
            Duration::from_secs(20),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(a.last_header("upgrade"), None);
        assert_eq!(a.last_header("connection"), None);
    })
    .await;
}

/// A backend that switches protocols without being asked, or to another protocol
/// than the one asked, gets the client a 502 and never a spliced connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_that_was_not_asked_for_is_a_502() {
    within(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut io, _)) = l.accept().await else { return };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 4096];
                    let _ = io.read(&mut buf).await;
                    let _ = io
                        .write_all(
                            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n",
                        )
                        .await;
                    let _ = io.read(&mut buf).await;
                });
            }
        });
        let f = Fulcrum::start(&one_pool(
            "round_robin",
            &[format!("\"{addr}\"")],
            "connect_attempts = 1",
        ));
        let plain = raw(
            f.addr("public"),
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            Duration::from_secs(20),
        );
        assert!(plain.starts_with("HTTP/1.1 502"), "{plain}");
        let other = raw(
            f.addr("public"),
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade, close\r\nupgrade: websocket\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            Duration::from_secs(20),
        );
        assert!(other.starts_with("HTTP/1.1 502"), "{other}");
    })
    .await;
}

/// A masked client frame (RFC 6455 §5.2).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads from `recv` until `got` holds at least `n` bytes.
async fn read_at_least(recv: &mut h2::RecvStream, got: &mut Vec<u8>, n: usize) {
    while got.len() < n {
        let data = recv.data().await.expect("stream ended").unwrap();
        let _ = recv.flow_control().release_capacity(data.len());
        got.extend_from_slice(&data);
    }
}

/// RFC 8441: an HTTP/2 client's extended CONNECT reaches an HTTP/1.1 WebSocket
/// backend as an upgrade, and frames cross both ways on the HTTP/2 stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_reaches_an_http1_backend() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", ""));
        let io = TcpStream::connect(f.addr("public")).await.unwrap();
        let (mut h2, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(conn);
        // The server's SETTINGS must have said it takes extended CONNECT.
        h2 = h2.ready().await.unwrap();
        until("extended CONNECT is enabled", || {
            h2.is_extended_connect_protocol_enabled()
        })
        .await;
        let req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{}/chat", f.addr("public")))
            .extension(h2::ext::Protocol::from_static("websocket"))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        let (res, mut send) = h2.send_request(req, false).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", f.wait_access_log(1));
        assert!(res.headers().get("sec-websocket-accept").is_none());
        let mut recv = res.into_body();

        send.send_data(client_frame(0x1, b"hello over h2").into(), false)
            .unwrap();
        let mut got = Vec::new();
        read_at_least(&mut recv, &mut got, 2 + 13).await;
        assert_eq!(&got[..2], &[0x81, 13]);
        assert_eq!(&got[2..15], b"hello over h2");
        got.drain(..15);

        // Close 1000: the backend answers with a close and ends the connection,
        // which ends the HTTP/2 stream.
        send.send_data(client_frame(0x8, &1000u16.to_be_bytes()).into(), true)
            .unwrap();
        read_at_least(&mut recv, &mut got, 4).await;
        assert_eq!(&got[..4], &[0x88, 2, 0x03, 0xe8]);
        while let Some(d) = recv.data().await {
            d.unwrap();
        }
        let line = f
            .wait_access_log(1)
            .into_iter()
            .find(|l| l["proto"] == "HTTP/2")
            .expect("an HTTP/2 line");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["error"], serde_json::Value::Null, "{line}");
        assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// A plain CONNECT (no `:protocol`) is still refused: Fulcrum is no open tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http2_connect_is_refused() {
    within(async {
        let b = Echo::start().await;
        let f = Fulcrum::start(&config(&b, "", ""));
        let io = TcpStream::connect(f.addr("public")).await.unwrap();
        let (h2, conn) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut h2 = h2.ready().await.unwrap();
        let req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("{}", b.addr))
            .body(())
            .unwrap();
        let (res, _send) = h2.send_request(req, false).unwrap();
        assert_eq!(res.await.unwrap().status(), 405);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 0);
    })
    .await;
}
