//! Stage 2. TLS termination for https listeners (certificates chosen by SNI,
//! reloaded when their files change, ALPN, client certificates) and TLS to
//! backends (re-encryption, mutual TLS). rustls with the ring provider only.

pub mod acme;
mod certs;
mod client;
mod server;
mod stream;

pub use certs::{describe, load, read_chain, subject, CertError, CertSet, Loaded, Resolver};
pub use client::{AnyCert, Upstream, UpstreamError};
pub use server::{accept, Accepted, Terminator};
pub use stream::{HandshakeError, Session, TlsConn};
