//! karman-client against the real Karman broker and NameServer, in-process (issue 6's
//! "Done when"): the broker issue's interop scenarios with karman-client on both sides,
//! transactions, and the rebalance test. One test binary, one module per scenario; every
//! test starts its own cluster (`harness::Cluster`) on ephemeral loopback ports.
//!
//! `cargo test -p karman-client --test e2e [name]`. On failure each test prints its nodes'
//! logs; `KARMAN_TEST_LOG` filters them, `RUST_LOG` shows the client's.

mod harness;

mod admin;
mod clustering;
mod delay;
mod filter;
mod malformed;
mod order;
mod pull;
mod query;
mod rebalance;
mod restart;
mod retry;
mod send;
mod transaction;
