//! Typed command headers (spec remoting.md §3) and their conversion to and from `extFields`.
//!
//! Struct names keep the Java class names so the reference can be grepped; fields are
//! snake_case with the wire key set by serde. A required Java field is a plain field (its
//! absence is an error naming the key); an optional one is an `Option` or has a default.

pub mod ext;

mod admin;
mod client;
mod namesrv;
mod offset;
mod pull;
mod send;

pub use admin::*;
pub use client::*;
pub use namesrv::*;
pub use offset::*;
pub use pull::*;
pub use send::*;
