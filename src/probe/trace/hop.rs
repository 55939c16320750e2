//! What one trace probe learns: which address answered it at which TTL, and how. Shared by the
//! ICMP receive thread, the UDP and TCP hop probes and the tracer.

use std::net::IpAddr;

use tokio::sync::mpsc;

/// How a hop answered a trace probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// A router on the way: ICMP time exceeded.
    TimeExceeded,
    /// The target itself: echo reply, UDP port unreachable, TCP SYN-ACK or reset.
    Reached,
    /// A router (or the target) said the destination cannot be reached: the trace ends there.
    Unreachable,
}

/// One answer to a trace probe sent with TTL / hop limit `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub ttl: u8,
    pub from: IpAddr,
    pub kind: AnswerKind,
}

/// Where the ICMP receive thread hands a trace's answers: never blocks that thread.
pub type Answers = mpsc::UnboundedSender<Answer>;
