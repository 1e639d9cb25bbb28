//! JSON bodies (spec remoting.md §4), in both the standard and the fastjson dialect.
//!
//! Body structs declare their fields in alphabetical order, which is the order fastjson
//! writes bean properties in; missing fields take Java's defaults and unknown ones are
//! ignored, as fastjson does.

pub mod admin;
pub mod consumer;
pub mod fastjson;
pub mod heartbeat;
pub mod route;

pub use admin::*;
pub use consumer::*;
pub use heartbeat::*;
pub use route::*;
