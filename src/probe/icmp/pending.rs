//! Echo requests in flight on one socket: matching replies to them (sequence + token + source),
//! counting duplicates, expiring the unanswered, and computing a reply's RTT. No I/O.
//!
//! The timeout is judged on when a reply *arrived* (the kernel's stamp), not on when the
//! receive thread got to it: a reply that arrived in time counts however late the thread ran,
//! and one that arrived after its deadline is a timeout even if read before the next sweep.
//! Likewise a request's departure is the kernel's transmit stamp when the device gave one,
//! not our stamp before `sendto`, so a sender held up between the two adds nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// When a probe left: both clocks, read *before* the send system call.
#[derive(Debug, Clone, Copy)]
pub struct SendStamp {
    pub monotonic: Instant,
    pub wall: SystemTime,
}

impl SendStamp {
    pub fn now() -> SendStamp {
        SendStamp {
            monotonic: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// One request in flight.
#[derive(Debug)]
pub struct Entry<T> {
    pub token: u64,
    pub address: IpAddr,
    pub sent: SendStamp,
    /// The kernel's transmit stamp (wall clock), once the error queue handed it back.
    pub transmitted: Option<SystemTime>,
    pub deadline: Instant,
    /// Set by the first reply; later ones are duplicates until the entry expires.
    pub answered: bool,
    /// Who to tell (the target's series).
    pub owner: T,
}

/// What a reply turned out to be.
#[derive(Debug)]
pub enum Match<'a, T> {
    /// The first reply to a request in flight, within its timeout: the RTT.
    Answered(&'a T, Duration),
    /// The first reply, but it arrived after the request's deadline: a timeout.
    Late(&'a T),
    /// Another reply to a request already answered (and not yet expired).
    Duplicate(&'a T),
    /// Not ours, or too late: its request already expired.
    Unknown,
}

/// Above this many requests in flight a reply does not look for the next deadline (a sweep
/// every few milliseconds comes anyway at such rates); below it, an answered request wakes no
/// one at its deadline.
const RECOMPUTE_LIMIT: usize = 256;

/// The requests in flight on one socket, by sequence number.
#[derive(Debug)]
pub struct Pending<T> {
    entries: HashMap<u16, Entry<T>>,
    /// No unanswered entry's deadline is earlier (it may be earlier than every deadline left,
    /// after a removal): the receive thread sleeps until then, not for a fixed tick. Answered
    /// entries (kept to recognise duplicates) wait for a sweep that comes anyway.
    earliest: Option<Instant>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            earliest: None,
        }
    }
}

impl<T> Pending<T> {
    /// Adds a request; returns the entry it displaced if the sequence number wrapped onto one
    /// still in flight (65,536 requests within one timeout), which then counts as lost.
    pub fn insert(&mut self, seq: u16, entry: Entry<T>) -> Option<Entry<T>> {
        self.earliest = Some(
            self.earliest
                .map_or(entry.deadline, |d| d.min(entry.deadline)),
        );
        self.entries.insert(seq, entry)
    }

    /// When the next unanswered request may expire, `None` when none is in flight. Never later
    /// than the earliest such deadline; it can be earlier (a woken thread then finds nothing).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest
    }

    /// Removes a request whose send failed.
    pub fn remove(&mut self, seq: u16) -> Option<Entry<T>> {
        self.entries.remove(&seq)
    }

    /// Removes a request still waiting for its reply, if it went to `address` (an ICMP
    /// unreachable quoting it arrived).
    pub fn remove_unanswered(&mut self, seq: u16, address: IpAddr) -> Option<Entry<T>> {
        let entry = self.entries.get(&seq)?;
        if entry.answered || entry.address != address {
            return None;
        }
        self.entries.remove(&seq)
    }

    /// Records when the kernel sent request `seq`, if it is ours (`token`) and still waiting;
    /// false when it is not.
    pub fn transmitted(&mut self, seq: u16, token: u64, at: SystemTime) -> bool {
        match self.entries.get_mut(&seq) {
            Some(entry) if entry.token == token && !entry.answered => {
                entry.transmitted = Some(at);
                true
            }
            _ => false,
        }
    }

    /// Whether request `seq`, ours by `token`, is still waiting for its transmit stamp.
    pub fn awaits_transmit_stamp(&self, seq: u16, token: u64) -> bool {
        self.entries
            .get(&seq)
            .is_some_and(|entry| entry.token == token && entry.transmitted.is_none())
    }

    /// Matches a reply. `token` is `None` for payloads too short to carry one; `source` is the
    /// reply's sender when the socket told us; `received` and `kernel` are as for [`rtt`].
    pub fn reply(
        &mut self,
        seq: u16,
        token: Option<u64>,
        source: Option<IpAddr>,
        received: SendStamp,
        kernel: Option<SystemTime>,
    ) -> Match<'_, T> {
        let (answered_before, deadline) = match self.entries.get_mut(&seq) {
            None => return Match::Unknown,
            Some(entry) => {
                if token.is_some_and(|token| token != entry.token)
                    || source.is_some_and(|source| source != entry.address)
                {
                    return Match::Unknown;
                }
                // Answered either way: a late reply is one timeout, not one now and one at
                // the sweep.
                (std::mem::replace(&mut entry.answered, true), entry.deadline)
            }
        };
        if !answered_before
            && self.earliest == Some(deadline)
            && self.entries.len() <= RECOMPUTE_LIMIT
        {
            self.earliest = self.unanswered_deadline();
        }
        let entry = self.entries.get(&seq).expect("the entry was found above");
        if answered_before {
            return Match::Duplicate(&entry.owner);
        }
        // Late is judged on when the reply arrived, counted from our send stamp as the
        // deadline is, not on the RTT: with a transmit stamp the RTT leaves out the wait before
        // the device, and a reply that arrived after the deadline would count or not depending
        // on whether the sweep came first.
        let arrived = rtt(entry.sent, None, received, kernel);
        if entry.sent.monotonic + arrived > entry.deadline {
            return Match::Late(&entry.owner);
        }
        Match::Answered(
            &entry.owner,
            rtt(entry.sent, entry.transmitted, received, kernel),
        )
    }

    /// Removes every request whose deadline passed; returns the ones never answered (lost).
    pub fn expire(&mut self, now: Instant) -> Vec<Entry<T>> {
        let expired: Vec<u16> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let lost = expired
            .into_iter()
            .filter_map(|seq| self.entries.remove(&seq))
            .filter(|entry| !entry.answered)
            .collect();
        self.earliest = self.unanswered_deadline();
        lost
    }

    fn unanswered_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|entry| !entry.answered)
            .map(|entry| entry.deadline)
            .min()
    }

    /// How many requests are in the table, answered or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is in flight (a closing socket's thread ends then).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How far the wall clock may drift from the monotonic clock between send and receive before
/// the kernel's (wall-clock) receive stamp is distrusted: NTP slews far slower than this, so a
/// larger difference means the clock was stepped.
pub const CLOCK_STEP_TOLERANCE: Duration = Duration::from_micros(200);

/// A reply's RTT. `sent` is both clocks read before `sendto`, `transmitted` the kernel's
/// transmit stamp (`SO_TIMESTAMPING`, wall clock) when the device gave one; `kernel` is the
/// kernel's receive stamp (`SO_TIMESTAMPNS`, wall clock) when the socket gave one, `received`
/// both clocks read right after `recvmsg` returned.
///
/// Kernel stamps are preferred: they are taken as the packet leaves and as it arrives, without
/// the scheduling delays of our threads. They are used only if the wall clock ran in step with
/// the monotonic clock from the send to the receive (no clock step) and they fall in order
/// (our send stamp, transmit, receive, our receive stamp); otherwise the monotonic difference
/// is used. Each is taken no earlier than the packet left and no later than the reply arrived,
/// so an RTT never comes out below the path's true delay.
pub fn rtt(
    sent: SendStamp,
    transmitted: Option<SystemTime>,
    received: SendStamp,
    kernel: Option<SystemTime>,
) -> Duration {
    let monotonic = received.monotonic.saturating_duration_since(sent.monotonic);
    let Some(kernel) = kernel else {
        return monotonic;
    };
    let Ok(wall) = received.wall.duration_since(sent.wall) else {
        return monotonic;
    };
    if wall.abs_diff(monotonic) > CLOCK_STEP_TOLERANCE {
        return monotonic;
    }
    let kernel_rtt = match kernel.duration_since(sent.wall) {
        Ok(kernel_rtt) if kernel_rtt <= wall => kernel_rtt,
        _ => return monotonic,
    };
    let departure = transmitted.filter(|transmitted| *transmitted >= sent.wall);
    match departure.map(|departure| kernel.duration_since(departure)) {
        Some(Ok(on_the_wire)) => on_the_wire,
        _ => kernel_rtt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: u64, address: &str, deadline: Instant) -> Entry<&'static str> {
        Entry {
            token,
            address: address.parse().expect("address"),
            sent: SendStamp::now(),
            transmitted: None,
            deadline,
            answered: false,
            owner: "target",
        }
    }

    /// A reply read now, without a kernel stamp.
    fn reply_now<'a>(
        pending: &'a mut Pending<&'static str>,
        seq: u16,
        token: Option<u64>,
        source: Option<IpAddr>,
    ) -> Match<'a, &'static str> {
        pending.reply(seq, token, source, SendStamp::now(), None)
    }

    #[test]
    fn first_reply_matches_then_duplicates_then_expiry_forgets() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.insert(5, entry(99, "10.0.0.1", now + Duration::from_secs(1)));
        assert!(matches!(
            reply_now(
                &mut pending,
                5,
                Some(99),
                Some("10.0.0.1".parse().expect("ip"))
            ),
            Match::Answered(..)
        ));
        assert!(matches!(
            reply_now(&mut pending, 5, Some(99), None),
            Match::Duplicate(_)
        ));
        // Answered entries expire silently: they are not lost.
        assert!(pending.expire(now + Duration::from_secs(2)).is_empty());
        assert!(pending.is_empty());
        assert!(matches!(
            reply_now(&mut pending, 5, Some(99), None),
            Match::Unknown
        ));
    }

    #[test]
    fn wrong_token_or_source_is_not_ours() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.insert(1, entry(7, "10.0.0.1", now + Duration::from_secs(1)));
        // Another pinger's reply with our sequence number (surge-ping #73).
        assert!(matches!(
            reply_now(&mut pending, 1, Some(8), None),
            Match::Unknown
        ));
        assert!(matches!(
            reply_now(
                &mut pending,
                1,
                Some(7),
                Some("10.0.0.2".parse().expect("ip"))
            ),
            Match::Unknown
        ));
        assert!(matches!(
            reply_now(&mut pending, 2, Some(7), None),
            Match::Unknown
        ));
        // Still in flight: the right reply matches.
        assert!(matches!(
            reply_now(&mut pending, 1, Some(7), None),
            Match::Answered(..)
        ));
        // No token (short payload): sequence and source decide.
        pending.insert(3, entry(0, "10.0.0.3", now + Duration::from_secs(1)));
        assert!(matches!(
            reply_now(&mut pending, 3, None, None),
            Match::Answered(..)
        ));
    }

    #[test]
    fn an_unreachable_removes_only_the_unanswered_request_to_that_address() {
        let now = Instant::now();
        let mut pending = Pending::default();
        let later = now + Duration::from_secs(1);
        pending.insert(1, entry(1, "10.0.0.1", later));
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(pending.remove_unanswered(1, other).is_none());
        let to: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(matches!(
            reply_now(&mut pending, 1, Some(1), None),
            Match::Answered(..)
        ));
        assert!(pending.remove_unanswered(1, to).is_none());
        pending.insert(2, entry(2, "10.0.0.1", later));
        assert_eq!(pending.remove_unanswered(2, to).map(|e| e.token), Some(2));
        assert!(pending.remove_unanswered(3, to).is_none());
    }

    #[test]
    fn unanswered_requests_expire_at_their_deadline() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.insert(1, entry(1, "10.0.0.1", now + Duration::from_millis(100)));
        pending.insert(2, entry(2, "10.0.0.1", now + Duration::from_millis(300)));
        assert!(pending.expire(now + Duration::from_millis(50)).is_empty());
        let lost = pending.expire(now + Duration::from_millis(100));
        assert_eq!(lost.iter().map(|e| e.token).collect::<Vec<_>>(), [1]);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_the_requests_left() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut pending = Pending::default();
        assert_eq!(pending.next_deadline(), None);
        pending.insert(1, entry(1, "10.0.0.1", now + ms(300)));
        pending.insert(2, entry(2, "10.0.0.1", now + ms(100)));
        pending.insert(3, entry(3, "10.0.0.1", now + ms(200)));
        assert_eq!(pending.next_deadline(), Some(now + ms(100)));
        pending.expire(now + ms(150));
        assert_eq!(pending.next_deadline(), Some(now + ms(200)));
        pending.expire(now + ms(300));
        assert_eq!(pending.next_deadline(), None);
    }

    /// An answered request is kept to recognise duplicates, but nobody needs to wake at its
    /// deadline: the next deadline is the next unanswered request's.
    #[test]
    fn an_answered_request_is_no_deadline_to_wake_for() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut pending = Pending::default();
        pending.insert(1, entry(1, "10.0.0.1", now + ms(100)));
        pending.insert(2, entry(2, "10.0.0.1", now + ms(200)));
        assert!(matches!(
            reply_now(&mut pending, 1, Some(1), None),
            Match::Answered(..)
        ));
        assert_eq!(pending.next_deadline(), Some(now + ms(200)));
        assert!(matches!(
            reply_now(&mut pending, 2, Some(2), None),
            Match::Answered(..)
        ));
        assert_eq!(pending.next_deadline(), None);
        assert!(matches!(
            reply_now(&mut pending, 1, Some(1), None),
            Match::Duplicate(_)
        ));
    }

    #[test]
    fn sequence_wrap_onto_a_live_request_returns_the_displaced_one() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.insert(1, entry(1, "10.0.0.1", now));
        let displaced = pending
            .insert(1, entry(2, "10.0.0.1", now))
            .expect("displaced");
        assert_eq!(displaced.token, 1);
    }

    fn stamp(monotonic: Instant, wall: SystemTime) -> SendStamp {
        SendStamp { monotonic, wall }
    }

    #[test]
    fn kernel_stamp_is_used_when_clocks_agree() {
        let mono = Instant::now();
        let wall = SystemTime::now();
        let ms = Duration::from_millis;
        let sent = stamp(mono, wall);
        let received = stamp(mono + ms(26), wall + ms(26));
        assert_eq!(rtt(sent, None, received, Some(wall + ms(25))), ms(25));
        assert_eq!(rtt(sent, None, received, None), ms(26));
        // A kernel stamp after our own receive stamp is impossible: distrust it.
        assert_eq!(rtt(sent, None, received, Some(wall + ms(27))), ms(26));
    }

    #[test]
    fn the_transmit_stamp_leaves_out_a_sender_held_up_before_sendto() {
        let mono = Instant::now();
        let wall = SystemTime::now();
        let ms = Duration::from_millis;
        let sent = stamp(mono, wall);
        let received = stamp(mono + ms(31), wall + ms(31));
        // Our stamp, then 5 ms until the device sent it, then a 25 ms path.
        let transmitted = Some(wall + ms(5));
        assert_eq!(
            rtt(sent, transmitted, received, Some(wall + ms(30))),
            ms(25)
        );
        // A transmit stamp before our own send stamp is not this request's: ignore it.
        let before = Some(wall - ms(1));
        assert_eq!(rtt(sent, before, received, Some(wall + ms(30))), ms(30));
        // Nor one after the reply arrived.
        let after = Some(wall + ms(30) + Duration::from_nanos(1));
        assert_eq!(rtt(sent, after, received, Some(wall + ms(30))), ms(30));
        // Without the receive stamp the clocks cannot be mixed: monotonic, from our stamp.
        assert_eq!(rtt(sent, transmitted, received, None), ms(31));
        // A clock step voids both kernel stamps.
        let stepped = stamp(mono + ms(31), wall + ms(21));
        assert_eq!(rtt(sent, transmitted, stepped, Some(wall + ms(20))), ms(31));
    }

    #[test]
    fn a_transmit_stamp_is_kept_only_for_our_request_still_waiting() {
        let now = Instant::now();
        let at = SystemTime::now();
        let mut pending = Pending::default();
        pending.insert(3, entry(30, "10.0.0.1", now + Duration::from_secs(1)));
        assert!(!pending.transmitted(3, 31, at), "another pinger's token");
        assert!(!pending.transmitted(4, 30, at), "no such request");
        assert!(pending.awaits_transmit_stamp(3, 30));
        assert!(pending.transmitted(3, 30, at));
        assert!(!pending.awaits_transmit_stamp(3, 30));
        assert!(matches!(
            reply_now(&mut pending, 3, Some(30), None),
            Match::Answered(..)
        ));
        assert!(!pending.transmitted(3, 30, at), "already answered");
    }

    #[test]
    fn clock_step_falls_back_to_the_monotonic_clock() {
        let mono = Instant::now();
        let wall = SystemTime::now();
        let ms = Duration::from_millis;
        let sent = stamp(mono, wall);
        // The wall clock was stepped back 10 ms between send and receive: the kernel stamp
        // would give 15 ms for a 25 ms path.
        let received = stamp(mono + ms(26), wall + ms(16));
        assert_eq!(rtt(sent, None, received, Some(wall + ms(15))), ms(26));
        // Stepped back past the send: no wall difference at all.
        let received = stamp(mono + ms(26), wall - ms(100));
        assert_eq!(rtt(sent, None, received, Some(wall - ms(101))), ms(26));
        // Stepped forward.
        let received = stamp(mono + ms(26), wall + ms(1026));
        assert_eq!(rtt(sent, None, received, Some(wall + ms(1025))), ms(26));
    }

    #[test]
    fn the_timeout_is_judged_on_when_a_reply_arrived_not_when_it_was_read() {
        let ms = Duration::from_millis;
        let mono = Instant::now();
        let wall = SystemTime::now();
        let sent = stamp(mono, wall);
        let request = |token| Entry {
            token,
            address: "10.0.0.1".parse().expect("address"),
            sent,
            transmitted: None,
            deadline: mono + ms(40),
            answered: false,
            owner: "target",
        };
        let mut pending = Pending::default();
        pending.insert(1, request(1));
        pending.insert(2, request(2));
        // Arrived after 39 ms, read after 55 ms (the receive thread was held up): in time.
        let held_up = stamp(mono + ms(55), wall + ms(55));
        assert!(matches!(
            pending.reply(1, Some(1), None, held_up, Some(wall + ms(39))),
            Match::Answered(_, rtt) if rtt == ms(39)
        ));
        // Arrived after 41 ms and read at once, before any sweep: a timeout ...
        let at_once = stamp(mono + ms(41), wall + ms(41));
        assert!(matches!(
            pending.reply(2, Some(2), None, at_once, Some(wall + ms(41))),
            Match::Late(_)
        ));
        // ... counted once: the sweep does not report it lost again.
        assert!(pending.expire(mono + ms(100)).is_empty());
        assert!(pending.is_empty());
    }

    /// Found by the fuzz target's invariant "late exactly when it arrived after the deadline"
    /// (fuzz/fuzz_targets/icmp_pending.rs): with a transmit stamp, lateness was judged on the
    /// RTT, which leaves out the wait before the device, so a reply that arrived after the
    /// deadline counted as answered if read before the sweep and as lost if after it.
    #[test]
    fn a_reply_after_the_deadline_is_late_even_with_a_transmit_stamp() {
        let ms = Duration::from_millis;
        let mono = Instant::now();
        let wall = SystemTime::now();
        let mut pending = Pending::default();
        pending.insert(
            1,
            Entry {
                token: 1,
                address: "10.0.0.1".parse().expect("address"),
                sent: stamp(mono, wall),
                transmitted: None,
                deadline: mono + ms(40),
                answered: false,
                owner: "target",
            },
        );
        // The device sent it 10 ms after our stamp; the reply took 35 ms and arrived at 45 ms.
        assert!(pending.transmitted(1, 1, wall + ms(10)));
        let read = stamp(mono + ms(46), wall + ms(46));
        assert!(matches!(
            pending.reply(1, Some(1), None, read, Some(wall + ms(45))),
            Match::Late(_)
        ));
    }
}
