//! Fulcrum's decisions, apart from I/O: the config model and its validation, the
//! sans-I/O HTTP/1.1 codec, the route table and the balancers.
//!
//! Nothing here touches a socket, a clock or a global random source: time and
//! randomness come in as arguments, so every decision can be replayed in a test.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod balance;
pub mod client_hello;
pub mod config;
pub mod discover;
pub mod forward;
pub mod grpc;
pub mod health;
pub mod http1;
pub mod jwt;
pub mod limit;
pub mod proxy_protocol;
pub mod retry;
pub mod route;
pub mod shape;
pub mod udp;
