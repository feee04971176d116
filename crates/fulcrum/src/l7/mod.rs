//! Stage 3b. Client bytes → HTTP requests → backend responses → client bytes.
//! Owns HTTP/1.1 (over `fulcrum_core::http1`) and HTTP/2 (`h2`) serving, limits and
//! timeouts, error statuses and the access log line. Never picks a backend itself:
//! that is `route` and `balance` in fulcrum-core.

pub mod body;
pub mod error;
pub mod h1;
pub mod h2;
pub mod h2_ws;
pub mod proxy;
pub mod stream;
pub mod upstream_h1;
