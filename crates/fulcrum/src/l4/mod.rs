//! Stage 3a. Accepted connection → a backend connection from the listener's pool →
//! bytes copied both ways. Owns layer-4 proxying: one pick per connection (through
//! the same balancers, health, slow start, circuit limits and connect retries as
//! HTTP), the byte splice with half-close and the idle timeout. For UDP, datagram
//! from a client address → its session's backend, and replies back: one pick per
//! session, sessions bounded and expiring. For TLS passthrough, the ClientHello's
//! server name picks the pool; beyond that peek, never reads what the bytes mean.

pub mod passthrough;
pub mod tcp;
pub mod udp;
