//! A small HTTP/3 load generator for `bench/h3.py` (h2load from Debian has no
//! HTTP/3): quinn and h3 on one current-thread runtime, so it can be pinned to one
//! CPU like wrk. The server's certificate is not verified (benchmarks use a
//! self-signed one); never point it at anything you need to trust.
//!
//! ```text
//! h3load URL [-c CONNS] [-m STREAMS] [-d SECONDS]     requests per second, p50, p99
//! h3load URL --download                               one GET, its bytes and time
//! h3load URL --hold N                                 N idle connections until stdin closes
//! --sni NAME                                          the TLS server name (default: the URL's host)
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

struct Args {
    url: http::Uri,
    conns: usize,
    streams: usize,
    seconds: f64,
    download: bool,
    hold: usize,
    sni: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        url: http::Uri::from_static("https://127.0.0.1/"),
        conns: 16,
        streams: 10,
        seconds: 10.0,
        download: false,
        hold: 0,
        sni: None,
    };
    let mut url = None;
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-c" => a.conns = value()?.parse().map_err(|e| format!("-c: {e}"))?,
            "-m" => a.streams = value()?.parse().map_err(|e| format!("-m: {e}"))?,
            "-d" => {
                a.seconds = value()?
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|e| format!("-d: {e}"))?
            }
            "--download" => a.download = true,
            "--hold" => a.hold = value()?.parse().map_err(|e| format!("--hold: {e}"))?,
            "--sni" => a.sni = Some(value()?),
            other => {
                url = Some(
                    other
                        .parse::<http::Uri>()
                        .map_err(|e| format!("{other}: {e}"))?,
                )
            }
        }
    }
    a.url = url.ok_or("usage: h3load URL [-c CONNS] [-m STREAMS] [-d SECONDS] [--download] [--hold N] [--sni NAME]")?;
    Ok(a)
}

type Send = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr, host: &str) -> Result<Send, String> {
    let conn = endpoint
        .connect(addr, host)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(send)
}

/// One GET: its status and body bytes.
async fn get(send: &mut Send, url: &http::Uri) -> Result<(u16, u64), String> {
    let req = http::Request::get(url.clone())
        .body(())
        .map_err(|e| e.to_string())?;
    let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
    stream.finish().await.map_err(|e| e.to_string())?;
    let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        bytes += chunk.remaining() as u64;
    }
    Ok((resp.status().as_u16(), bytes))
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    if let Err(e) = rt.block_on(run(a)) {
        eprintln!("h3load: {e}");
        std::process::exit(1);
    }
}

async fn run(a: Args) -> Result<(), String> {
    let host = a.url.host().ok_or("the URL has no host")?.to_owned();
    let port = a.url.port_u16().unwrap_or(443);
    let addr_host = host.clone();
    let host = a.sni.clone().unwrap_or(host);
    let addr = (addr_host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the host has no address")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(fulcrum::tls::AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse().map_err(|_| "bind")?)
        .map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

    if a.download {
        let mut send = connect(&endpoint, addr, &host).await?;
        let started = Instant::now();
        let (status, bytes) = get(&mut send, &a.url).await?;
        let secs = started.elapsed().as_secs_f64();
        println!("status={status} bytes={bytes} seconds={secs:.3}");
        return Ok(());
    }
    if a.hold > 0 {
        let mut held = Vec::with_capacity(a.hold);
        for _ in 0..a.hold {
            let mut send = connect(&endpoint, addr, &host).await?;
            get(&mut send, &a.url).await?;
            held.push(send);
        }
        println!("holding {}", held.len());
        // Until whoever started us closes stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.conns {
        let send = connect(&endpoint, addr, &host).await?;
        for _ in 0..a.streams {
            let (mut send, url) = (send.clone(), a.url.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match get(&mut send, &url).await {
                        Ok((200, _)) => {
                            ok += 1;
                            lat.push(t.elapsed().as_micros() as u32);
                        }
                        _ => errors += 1,
                    }
                }
                (ok, errors, lat)
            }));
        }
    }
    let started = Instant::now();
    let (mut ok, mut errors, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, e, l) = t.await.map_err(|e| e.to_string())?;
        ok += o;
        errors += e;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!(
        "requests={ok} errors={errors} seconds={secs:.3} rps={:.0} p50_ms={:.3} p99_ms={:.3}",
        ok as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
