//! Fulcrum's integration tests: one binary, real sockets on port 0, real backends and
//! real clients, a timeout on every test.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod support_health;
mod support_stream;
mod support_tls;
mod support_wire;

mod access;
mod access_log;
mod acme;
mod admin;
mod balance;
mod balancers;
mod bodies;
mod check;
mod cli;
mod compress;
mod dashboard;
mod discovery;
mod edge_auth;
mod error_pages;
mod errors;
mod failover;
mod grpc;
mod grpc_interop;
mod handover;
mod health;
mod http1;
mod http2;
mod http3;
mod http3_early;
mod jwt;
mod lifecycle;
mod limits;
mod outlier;
mod passthrough;
mod proxy_protocol;
mod rate_limit;
mod rebind;
mod reload_stress;
mod retries;
mod routing;
mod schema;
mod shaping;
mod smuggling;
mod sse;
mod static_files;
mod sticky;
mod systemd;
mod tcp;
mod tcp_load;
mod timeouts;
mod tls;
mod udp;
mod websocket;
