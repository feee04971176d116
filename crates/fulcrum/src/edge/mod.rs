//! What the edge refuses before a request reaches a pool, with the state it needs
//! beyond one request: rate limiters (local tables, and the Redis fleet limiters
//! share), htpasswd users, the forward-auth client. The policy slot
//! (`l7::policy`) calls them in order; nothing here knows about client protocols.

pub mod basic;
pub mod forward_auth;
pub mod limits;
pub mod redis;
