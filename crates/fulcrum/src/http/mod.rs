//! HTTP pieces shared by the client side (`l7`) and the backend side (`upstream`):
//! the request and response as the forward step sees them whatever the protocol,
//! bodies as frames between any source and sink, header-map conversions for
//! HTTP/2, and request-path errors. Imports only the ground below it.

pub mod body;
pub mod error;
pub mod fields;
pub mod message;

pub use error::{Failed, ProxyError, Side};
pub use message::{
    Asked, Edits, Head, Local, Plan, Request, Response, ResponseBody, Switch, Upgrade,
};
