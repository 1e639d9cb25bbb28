//! # karman-store
//!
//! The message store: commit log, consume queues, index, flush, recovery and retention.
//! It knows nothing about the network.
