//! Stage 4: the backend side of every request and connection. Owns the one attempt
//! loop (pick, admission and connection slots, connect, per-try timeout, outcome,
//! retry with budget and backoff), connecting (plain, TLS, PROXY header), the
//! per-worker keep-alive pools, the in-flight lease, passive health records, and
//! the two HTTP legs: `h1` (our codec) and `h2` (the `h2` crate). `l4`, `l7` and the
//! health probes use it; it imports nothing of theirs.

mod admission;
mod attempts;
mod connect;
pub mod h1;
pub mod h2;
mod lease;
mod passive;
mod sticky;

pub use crate::io::pool::{ConnKey, H1Pool, H2Pool};
pub use admission::{admit, conn_slot, ConnSlot, RequestSlot};
pub use attempts::{run, Attempts, Step, Tried};
pub use connect::{connect, connect_with, open, proxy_header};
pub use lease::Lease;
pub use passive::{observed, outcome};
pub use sticky::{now_unix, Pinned};
