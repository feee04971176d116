//! Fulcrum: a reverse proxy and load balancer. This crate does the I/O, one module per
//! stage of the data path; every decision comes from `fulcrum_core`.
//!
//! ```text
//! client ─► listen/ ─► l7/ (h1 | h2) ─► route ─► balance ─► upstream/ ─► backend
//!                  └─► l4/ (tcp) ─────────────────► balance ─► upstream/ ─► backend
//! ```

pub mod access_log;
pub mod admin;
pub mod cert_tasks;
pub mod clock;
pub mod demo;
pub mod discover;
pub mod dns;
pub mod edge;
pub mod handover;
pub mod health;
pub mod http;
pub mod io;
pub mod l4;
pub mod l7;
pub mod listen;
pub mod notify;
pub mod reload;
pub mod server;
pub mod spans;
pub mod state;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod worker;

pub use server::{run, RunError};

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("FULCRUM_COMMIT");
/// The build date, `YYYY-MM-DD` (UTC; `SOURCE_DATE_EPOCH` when set).
pub const BUILD_DATE: &str = env!("FULCRUM_BUILD_DATE");
/// `fulcrum --version`'s text: version, commit and build date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FULCRUM_COMMIT"),
    ", built ",
    env!("FULCRUM_BUILD_DATE"),
    ")"
);
