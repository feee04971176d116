//! The state every stage reads: the immutable [`Snapshot`] of one config
//! generation (`snapshot`), the [`Registry`] of backend state kept across reloads
//! (`registry`), and the compilation of a config into a snapshot (`build`).

mod build;
mod discovered;
mod edge;
mod registry;
mod shape;
mod snapshot;

pub use build::{health_params, udp_listeners, BuildError};
pub use discovered::{
    query, Discovered, Queried, RuntimeChanges, Source, SourceStats, Spec, ADMIN_API, EVENTS,
};
pub use registry::{byte_state, state_byte, Registry};
pub use shape::{Pages, Redirect, RouteShape, StaticFiles};
pub use snapshot::*;

/// The published snapshot: one `load()` per request or connection.
pub type Shared = std::sync::Arc<arc_swap::ArcSwap<Snapshot>>;
