//! Shaping requests and responses at the edge, pure: the path's one normal form,
//! a route's rewrite, header rules and the placeholders their values use. The
//! runtime applies them in the forward step, the same way for every client protocol.

pub mod cors;
pub mod encoding;
pub mod files;
pub mod headers;
pub mod path;
pub mod rewrite;
pub mod template;
