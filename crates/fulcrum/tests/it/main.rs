//! Fulcrum's integration tests: one binary, real sockets on port 0, real backends and
//! real clients, a timeout on every test.

mod support;

mod balance;
mod http1;
