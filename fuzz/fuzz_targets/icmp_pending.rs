//! `pending::Pending` and `pending::rtt`: the requests in flight on one ICMP socket, driven by
//! any sequence of sends, transmit stamps, replies (ours, duplicated, forged, late), unreachables,
//! failed sends, sweeps, clock steps, checked against a model of the same socket.
//!
//! Invariants: never a panic; every match agrees with the model (a reply is ours only by
//! sequence, token and source); every request ends exactly once (answered, late, lost at the
//! sweep, unreachable/failed send, or displaced by a wrapped sequence), and a duplicate only
//! follows an answer; `awaits_transmit_stamp` is the model's; an RTT is exact when the wall
//! clock was not stepped during the request (the kernel's arrival minus the transmit stamp, or
//! minus our send stamp without one, or our two stamps without a kernel stamp), never more than
//! our two monotonic stamps apart plus `CLOCK_STEP_TOLERANCE`, and never below the true delay by
//! more than the steps' total size; a reply is late exactly when it arrived after the deadline
//! (without a clock step).
#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::icmp::{Entry, Match, Pending, SendStamp, CLOCK_STEP_TOLERANCE};

#[derive(Debug, Arbitrary)]
enum Op {
    /// A probe sends: sequence (few values, so they collide), token, target, timeout.
    Send {
        seq: u8,
        token: u8,
        to: u8,
        timeout_ms: u16,
    },
    /// Time passes (µs).
    Advance(u32),
    /// The wall clock is stepped (µs, either way).
    Step(i32),
    /// The error queue hands back a request's transmit stamp, taken now.
    Transmitted { seq: u8, token: u8 },
    /// A reply is read now; it arrived `ago` µs earlier (not before the request left).
    Reply {
        seq: u8,
        token: Option<u8>,
        source: Option<u8>,
        ago: u32,
        kernel: bool,
    },
    /// An unreachable quoting request `seq` to `to`.
    Unreachable { seq: u8, to: u8 },
    /// The send of `seq` failed.
    SendFailed { seq: u8 },
    /// The receive thread's sweep.
    Expire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Answered,
    Late,
    Lost,
    Removed,
    Displaced,
}

/// The model's request in flight.
#[derive(Debug, Clone)]
struct Model {
    owner: usize,
    token: u64,
    to: u8,
    sent: u64,
    transmitted: Option<u64>,
    deadline: u64,
    answered: bool,
}

fn seq(raw: u8) -> u16 {
    // 0 and 65535 included: the sequence space's edges.
    u16::from(raw % 8).wrapping_sub(1)
}

fn address(raw: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, raw % 3])
}

struct Clocks {
    mono: Instant,
    wall: SystemTime,
    /// (from µs, wall offset µs) in order: the wall clock's steps.
    offsets: Vec<(u64, i64)>,
}

impl Clocks {
    fn offset_at(&self, at: u64) -> i64 {
        self.offsets
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map_or(0, |(_, offset)| *offset)
    }
    fn wall(&self, at: u64) -> SystemTime {
        let micros = i64::try_from(at).expect("µs fit") + self.offset_at(at);
        if micros >= 0 {
            self.wall + Duration::from_micros(micros as u64)
        } else {
            self.wall - Duration::from_micros(micros.unsigned_abs())
        }
    }
    fn stamp(&self, at: u64) -> SendStamp {
        SendStamp {
            monotonic: self.mono + Duration::from_micros(at),
            wall: self.wall(at),
        }
    }
    /// The total size of the steps in `[from, to]` (a step at `from` may have come after the
    /// event there: counted, to be safe).
    fn stepped(&self, from: u64, to: u64) -> u64 {
        let mut total = 0;
        let mut previous = self
            .offsets
            .iter()
            .rev()
            .find(|(at, _)| *at < from)
            .map_or(0, |(_, offset)| *offset);
        for (at, offset) in &self.offsets {
            if *at >= from && *at <= to {
                total += offset.abs_diff(previous);
                previous = *offset;
            }
        }
        total
    }
}

fn base() -> (Instant, SystemTime) {
    static BASE: OnceLock<Instant> = OnceLock::new();
    // A wall clock far from the epoch, so steps back never go before it.
    (
        *BASE.get_or_init(Instant::now),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
}

fn run(ops: Vec<Op>) {
    let (mono, wall) = base();
    let mut clocks = Clocks {
        mono,
        wall,
        offsets: Vec::new(),
    };
    let mut now: u64 = 0;
    let mut pending: Pending<usize> = Pending::default();
    let mut model: HashMap<u16, Model> = HashMap::new();
    let mut ends: Vec<Vec<End>> = Vec::new();
    let tolerance = CLOCK_STEP_TOLERANCE.as_micros() as u64;
    let end = |ends: &mut Vec<Vec<End>>, owner: usize, how: End| ends[owner].push(how);
    for op in ops {
        match op {
            Op::Send {
                seq: raw,
                token,
                to,
                timeout_ms,
            } => {
                let seq = seq(raw);
                let owner = ends.len();
                ends.push(Vec::new());
                let timeout = u64::from(timeout_ms) * 1000;
                let displaced = pending.insert(
                    seq,
                    Entry {
                        token: u64::from(token),
                        address: address(to),
                        sent: clocks.stamp(now),
                        transmitted: None,
                        deadline: mono + Duration::from_micros(now + timeout),
                        answered: false,
                        owner,
                    },
                );
                let before = model.insert(
                    seq,
                    Model {
                        owner,
                        token: u64::from(token),
                        to: to % 3,
                        sent: now,
                        transmitted: None,
                        deadline: now + timeout,
                        answered: false,
                    },
                );
                assert_eq!(
                    displaced.as_ref().map(|e| e.owner),
                    before.as_ref().map(|m| m.owner)
                );
                if let Some(before) = before.filter(|before| !before.answered) {
                    end(&mut ends, before.owner, End::Displaced);
                }
            }
            Op::Advance(micros) => now += u64::from(micros),
            Op::Step(micros) => {
                let offset = clocks.offset_at(now) + i64::from(micros);
                // Steps at one instant replace each other.
                clocks.offsets.retain(|(from, _)| *from < now);
                clocks.offsets.push((now, offset));
            }
            Op::Transmitted { seq: raw, token } => {
                let seq = seq(raw);
                let token = u64::from(token);
                let ours = model
                    .get(&seq)
                    .is_some_and(|m| m.token == token && !m.answered);
                assert_eq!(pending.transmitted(seq, token, clocks.wall(now)), ours);
                if ours {
                    if let Some(m) = model.get_mut(&seq) {
                        m.transmitted = Some(now);
                    }
                }
            }
            Op::Reply {
                seq: raw,
                token,
                source,
                ago,
                kernel,
            } => {
                let seq = seq(raw);
                let token = token.map(u64::from);
                let source = source.map(address);
                let entry = model.get(&seq).cloned();
                // It arrived after the request left (and after the device sent it).
                let left = entry
                    .as_ref()
                    .map_or(0, |m| m.transmitted.unwrap_or(m.sent));
                let arrived = now.saturating_sub(u64::from(ago)).max(left.min(now));
                let kernel_stamp = kernel.then(|| clocks.wall(arrived));
                let got = pending.reply(seq, token, source, clocks.stamp(now), kernel_stamp);
                let Some(m) = entry.filter(|m| {
                    token.is_none_or(|token| token == m.token)
                        && source.is_none_or(|source| source == address(m.to))
                }) else {
                    assert!(
                        matches!(got, Match::Unknown),
                        "{got:?} for a reply not ours"
                    );
                    continue;
                };
                if m.answered {
                    assert!(
                        matches!(got, Match::Duplicate(&owner) if owner == m.owner),
                        "{got:?}"
                    );
                    assert!(
                        matches!(ends[m.owner].as_slice(), [End::Answered] | [End::Late]),
                        "a duplicate follows an answer"
                    );
                    continue;
                }
                // What the RTT must be without a clock step: the best stamps we have.
                let exact = match (kernel, m.transmitted) {
                    (true, Some(transmitted)) => arrived - transmitted,
                    (true, None) => arrived - m.sent,
                    (false, _) => now - m.sent,
                };
                // When it arrived, from our send stamp, by the best stamps we have.
                let judged = if kernel {
                    arrived - m.sent
                } else {
                    now - m.sent
                };
                let true_delay = arrived - m.transmitted.unwrap_or(m.sent);
                let stepped = clocks.stepped(m.sent, now);
                match got {
                    Match::Answered(&owner, rtt) => {
                        assert_eq!(owner, m.owner);
                        let rtt = rtt.as_micros() as u64;
                        if stepped == 0 {
                            assert_eq!(rtt, exact, "no step: the RTT is exact");
                        }
                        assert!(
                            rtt <= now - m.sent + tolerance,
                            "{rtt} µs longer than measured"
                        );
                        assert!(
                            rtt + stepped >= true_delay,
                            "{rtt} µs is below the path's {true_delay} µs by more than the steps ({stepped} µs)"
                        );
                        assert!(m.sent + rtt <= m.deadline, "an answer in time");
                        if stepped == 0 {
                            assert!(m.sent + judged <= m.deadline, "answered, yet arrived late");
                        }
                        end(&mut ends, m.owner, End::Answered);
                    }
                    Match::Late(&owner) => {
                        assert_eq!(owner, m.owner);
                        if stepped == 0 {
                            assert!(m.sent + judged > m.deadline, "late only after the deadline");
                        }
                        end(&mut ends, m.owner, End::Late);
                    }
                    other => panic!("{other:?} for our first reply"),
                }
                if let Some(m) = model.get_mut(&seq) {
                    m.answered = true;
                }
            }
            Op::Unreachable { seq: raw, to } => {
                let seq = seq(raw);
                let removed = pending.remove_unanswered(seq, address(to));
                let expected = model
                    .get(&seq)
                    .filter(|m| !m.answered && m.to == to % 3)
                    .map(|m| m.owner);
                assert_eq!(removed.map(|e| e.owner), expected);
                if let Some(owner) = expected {
                    model.remove(&seq);
                    end(&mut ends, owner, End::Removed);
                }
            }
            Op::SendFailed { seq: raw } => {
                let seq = seq(raw);
                let removed = pending.remove(seq).map(|e| e.owner);
                let expected = model.remove(&seq);
                assert_eq!(removed, expected.as_ref().map(|m| m.owner));
                if let Some(m) = expected.filter(|m| !m.answered) {
                    end(&mut ends, m.owner, End::Removed);
                }
            }
            Op::Expire => expire(&mut pending, &mut model, &mut ends, mono, now),
        }
        for (seq, m) in &model {
            assert_eq!(
                pending.awaits_transmit_stamp(*seq, m.token),
                m.transmitted.is_none()
            );
        }
    }
    // Every request ends exactly once, at the latest at the sweep after its deadline.
    expire(&mut pending, &mut model, &mut ends, mono, now + 100_000_000);
    assert!(model.is_empty());
    for (owner, how) in ends.iter().enumerate() {
        assert_eq!(how.len(), 1, "request {owner} ended {how:?}");
    }
}

fn expire(
    pending: &mut Pending<usize>,
    model: &mut HashMap<u16, Model>,
    ends: &mut [Vec<End>],
    mono: Instant,
    now: u64,
) {
    let mut lost: Vec<usize> = pending
        .expire(mono + Duration::from_micros(now))
        .into_iter()
        .map(|e| e.owner)
        .collect();
    lost.sort_unstable();
    let mut expected = Vec::new();
    model.retain(|_, m| {
        if m.deadline > now {
            return true;
        }
        if !m.answered {
            expected.push(m.owner);
        }
        false
    });
    expected.sort_unstable();
    assert_eq!(lost, expected, "lost at the sweep");
    for owner in lost {
        ends[owner].push(End::Lost);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) {
        run(ops);
    }
});
