//! The decisions of the one forward step that every client protocol feeds: the
//! request target and the open-proxy guard, the forwarding-header rules, the
//! client-certificate header, request IDs and trace context, and the admission
//! limit. Pure: the I/O crate's codecs
//! (HTTP/1.1, HTTP/2, later HTTP/3) call these, so a rule exists once.

mod admission;
mod client;
mod fields;
mod headers;
mod identity;
mod target;
mod trace;

pub use admission::admission_limit;
pub use client::client_address;
pub use fields::{FieldList, Fields};
pub use headers::{
    is_hop_by_hop, request_fields, response_fields, same_name, Forwarded, Hop, Value,
};
pub use identity::{with_identity, Identity};
pub use target::{parse_target, Target, TargetError};
pub use trace::{
    hex_into, parse_http_url, sampled_by_ratio, valid_request_id, HttpUrl, TraceParent,
    MAX_REQUEST_ID, TRACEPARENT_LEN,
};
