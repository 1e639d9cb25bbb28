//! karman-client against the real Karman broker and NameServer, in-process (issue 6's
//! "Done when"): the broker issue's interop scenarios with karman-client on both sides,
//! transactions, and the rebalance test. One test binary, one module per scenario; every
//! test starts its own cluster (`harness::Cluster`) on ephemeral loopback ports.
//!
//! | module | what it proves |
//! |---|---|
//! | `send` | sync, async, oneway and batch sends reach a push consumer once, where and with the ids the sends returned; a batch over 4 MiB is split, bodies over 4 KiB travel compressed |
//! | `clustering` | two members split the queues and get each message once; broadcasting members each get all, and resume from their offset file |
//! | `retry` | RECONSUME_LATER once ⇒ redelivered with reconsumeTimes 1; past maxReconsumeTimes ⇒ `%DLQ%<group>`; `ack_index` retries only a batch's tail |
//! | `delay` | delay level 2 in [5 s, 7 s]; timer messages (three ways) for now+3 s in [3 s, 5 s] |
//! | `filter` | `TagA \|\| TagB` and `a > 5 AND b = 'x'` deliver exactly the matching messages |
//! | `order` | queue selector + orderly listener keep send order per order id; SUSPEND retries in place, then the DLQ |
//! | `pull` | lite pull from explicit offsets; commits survive consumer and broker restarts; subscribe mode, alone and with two members |
//! | `query` | by key, by offset id and by unique key |
//! | `malformed` | what karman-client can provoke gets Java's code and a telling remark, and the broker keeps serving |
//! | `transaction` | commit once, rollback never, UNKNOW settled by check-back, a new member answers the check |
//! | `rebalance` | three members join and leave while messages flow: orderly ones never consume a queue at once, none loses a message (seeded: `KARMAN_SEED`) |
//! | `restart` | a running producer and consumer ride through a broker restart |
//! | `admin` | the admin API's bodies decode and say what the broker has |
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
