//! netsim: an impaired-link simulator for tests. A TUN device whose userspace side answers ICMP
//! echo and TCP SYN for every address of its prefixes after a chosen delay, jitter and loss
//! (per destination address), plus network-namespace guards and a privilege check.
//!
//! ```no_run
//! use std::time::Duration;
//! if netsim::require_privileged("my_test") {
//!     let netns = netsim::Netns::for_test("my_test").unwrap();
//!     let responder = netsim::Responder::spawn(
//!         netsim::Options::default().netns(netns.name()).delay(Duration::from_millis(25)),
//!     ).unwrap();
//!     // probe 198.19.0.2 from inside the namespace: netns.command("ping") or netns.run(|| ...)
//!     println!("{}", responder.stats());
//! }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod command;
mod error;
pub mod host;
pub mod impair;
pub mod netns;
pub mod packet;
pub mod prefix;
pub mod privilege;
pub mod process;
pub mod responder;
mod stats;
mod sys;
pub mod timer;
mod tun;

pub use error::Error;
pub use impair::{Impairment, JitterDist, TargetSpec};
pub use netns::Netns;
pub use prefix::Prefix;
pub use privilege::{privileged_required, require_privileged, skip};
pub use process::ResponderProcess;
pub use responder::{Options, Responder};
pub use stats::{AddressCounts, Stats, TimerPrecision};
pub use sys::{block_termination_signals, set_realtime, wait_termination};
