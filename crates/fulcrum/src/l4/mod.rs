//! Stage 3a. Accepted connection → a backend connection from the listener's pool →
//! bytes copied both ways. Owns layer-4 proxying: one pick per connection (through
//! the same balancers, health, slow start, circuit limits and connect retries as
//! HTTP), the byte splice with half-close and the idle timeout. Never reads what
//! the bytes mean.

mod splice;
pub mod tcp;

pub use splice::{splice, Ended, Spliced};
