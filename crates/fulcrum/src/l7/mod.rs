//! Stage 3b. Client bytes → requests → the one forward step → responses → client
//! bytes. The client codecs (`h1` over `fulcrum_core::http1`, `h2` over the `h2`
//! crate, `h3` over `h3` and `quinn`) turn their protocol into an [`crate::http::Request`] and encode
//! what comes back; `forward` runs the same route, policies and backend stage for
//! all of them; `policy` is the ordered slot where edge policies plug in; `shaping` applies a
//! route's rewrite and header rules; `stream`
//! splices an upgraded HTTP/1.1 connection, `bridge` a WebSocket on an HTTP/2 or
//! HTTP/3 stream. Never picks a backend itself: that is
//! `upstream` with `fulcrum_core`'s balancers.

pub mod bridge;
pub mod files;
pub mod forward;
pub mod h1;
pub mod h2;
pub mod h3;
pub mod ids;
pub mod policy;
pub mod shaping;
pub mod stream;
