//! `netback::parse_io_ring` on (a) arbitrary text and (b) queue state rendered exactly as the
//! kernel's `xenvif_read_io_ring` prints it (Linux drivers/net/xen-netback/xenbus.c).
//!
//! Invariants: never a panic; a parsed ring never has more requests or responses in flight than
//! slots; for kernel-rendered text, every field comes back exactly, in-flight counts are the
//! wrapping `producer - consumer`, and a difference larger than the ring is an error.
#![no_main]

use std::fmt::Write;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{parse_io_ring, ParseError};

/// The indexes of one ring as they sit in the shared page and in netback's private state.
#[derive(Debug, Arbitrary)]
struct Ring {
    connected: bool,
    entries: u32,
    req_cons: u32,
    req_in_flight: u32,
    req_event: u32,
    rsp_prod: u32,
    rsp_in_flight: u32,
    rsp_event: u32,
    /// When set, the in-flight counts are folded into `0..=entries` (a healthy ring); otherwise
    /// they are whatever the guest scribbled.
    healthy: bool,
}

impl Ring {
    fn in_flight(&self, raw: u32) -> u32 {
        if self.healthy {
            (u64::from(raw) % (u64::from(self.entries) + 1)) as u32
        } else {
            raw
        }
    }
    fn req_prod(&self) -> u32 {
        self.req_cons
            .wrapping_add(self.in_flight(self.req_in_flight))
    }
    fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod
            .wrapping_add(self.in_flight(self.rsp_in_flight))
    }
    fn possible(&self) -> bool {
        self.in_flight(self.req_in_flight) <= self.entries
            && self.in_flight(self.rsp_in_flight) <= self.entries
    }

    /// The kernel's two index lines (`%u (%d)` pairs, relative to `rsp_prod`).
    fn render(&self, out: &mut String, name: &str) {
        let rel = |index: u32| index.wrapping_sub(self.rsp_prod) as i32;
        let (req_prod, pvt) = (self.req_prod(), self.rsp_prod_pvt());
        let _ = write!(out, "{name}: nr_ents {}\n", self.entries);
        let _ = write!(
            out,
            "req prod {} ({}) cons {} ({}) event {} ({})\n",
            req_prod,
            rel(req_prod),
            self.req_cons,
            rel(self.req_cons),
            self.req_event,
            rel(self.req_event)
        );
        let _ = write!(
            out,
            "rsp prod {} (base) pvt {} ({}) event {} ({})\n",
            self.rsp_prod,
            pvt,
            rel(pvt),
            self.rsp_event,
            rel(self.rsp_event)
        );
    }
}

/// One queue's state, the inputs of `xenvif_read_io_ring`.
#[derive(Debug, Arbitrary)]
struct Queue {
    id: u16,
    tx: Ring,
    rx: Ring,
    pending_prod: u32,
    pending_cons: u32,
    nr_pending_reqs: u32,
    dealloc_prod: u32,
    dealloc_cons: u32,
    napi_state: u64,
    napi_weight: i32,
    tx_queue_len: u32,
    timer_pending: bool,
    credit_bytes: u64,
    credit_usec: u64,
    remaining_credit: u64,
    expires: u64,
    now: u64,
    rx_queue_len: u32,
    rx_queue_max: u32,
    rx_pkts: u32,
    stopped: bool,
}

impl Queue {
    fn render(&self) -> String {
        let mut out = String::new();
        if self.tx.connected {
            let _ = write!(out, "Queue {}\n", self.id);
            self.tx.render(&mut out, "TX");
            let _ = write!(
                out,
                "pending prod {} pending cons {} nr_pending_reqs {}\n",
                self.pending_prod, self.pending_cons, self.nr_pending_reqs
            );
            let _ = write!(
                out,
                "dealloc prod {} dealloc cons {} dealloc_queue {}\n\n",
                self.dealloc_prod,
                self.dealloc_cons,
                self.dealloc_prod.wrapping_sub(self.dealloc_cons)
            );
        }
        if self.rx.connected {
            self.rx.render(&mut out, "RX");
            out.push('\n');
        }
        let _ = write!(
            out,
            "NAPI state: {:x} NAPI weight: {} TX queue len {}\n\
             Credit timer_pending: {}, credit: {}, usec: {}\n\
             remaining: {}, expires: {}, now: {}\n",
            self.napi_state,
            self.napi_weight,
            self.tx_queue_len,
            i32::from(self.timer_pending),
            self.credit_bytes,
            self.credit_usec,
            self.remaining_credit,
            self.expires,
            self.now
        );
        let _ = write!(
            out,
            "\nRx internal queue: len {} max {} pkts {} {}\n",
            self.rx_queue_len,
            self.rx_queue_max,
            self.rx_pkts,
            if self.stopped { "stopped" } else { "running" }
        );
        out
    }
}

fn check_kernel_rendered(queue: &Queue) {
    let text = queue.render();
    let parsed = parse_io_ring(&text);
    if !queue.tx.connected || !queue.rx.connected {
        // Missing, or wrong in the ring that is there: an error either way.
        assert!(
            parsed.is_err(),
            "a queue without both rings must not parse: {parsed:?}\n{text}"
        );
        return;
    }
    if !queue.tx.possible() || !queue.rx.possible() {
        assert!(
            matches!(parsed, Err(ParseError::ImpossibleIndexes { .. })),
            "more in flight than slots must be an error: {parsed:?}\n{text}"
        );
        return;
    }
    let q = match parsed {
        Ok(q) => q,
        Err(error) => panic!("kernel text must parse: {error}\n{text}"),
    };
    assert_eq!(q.id, u32::from(queue.id));
    for (got, ring) in [(&q.tx, &queue.tx), (&q.rx, &queue.rx)] {
        assert_eq!(got.entries, ring.entries, "{text}");
        assert_eq!(
            got.requests_outstanding,
            ring.req_prod().wrapping_sub(ring.req_cons),
            "{text}"
        );
        assert_eq!(
            got.responses_unconsumed,
            ring.rsp_prod_pvt().wrapping_sub(ring.rsp_prod),
            "{text}"
        );
    }
    assert_eq!(q.tx_pending_requests, queue.nr_pending_reqs);
    assert_eq!(
        q.tx_dealloc_queue,
        queue.dealloc_prod.wrapping_sub(queue.dealloc_cons)
    );
    assert_eq!(q.rx_queue_length, queue.rx_queue_len);
    assert_eq!(q.rx_queue_max, queue.rx_queue_max);
    assert_eq!(q.rx_queue_stopped, queue.stopped);
    assert_eq!(q.credit_bytes, queue.credit_bytes);
    assert_eq!(q.credit_remaining_bytes, queue.remaining_credit);
    assert_eq!(q.credit_period, Duration::from_micros(queue.credit_usec));
}

fuzz_target!(|data: &[u8]| {
    // (a) Whatever the file holds: no panic, and nothing bigger than the ring gets out.
    let text = String::from_utf8_lossy(data);
    if let Ok(q) = parse_io_ring(&text) {
        for ring in [&q.tx, &q.rx] {
            assert!(ring.requests_outstanding <= ring.entries, "{q:?}");
            assert!(ring.responses_unconsumed <= ring.entries, "{q:?}");
        }
        assert_eq!(parse_io_ring(&text), Ok(q), "parsing is deterministic");
    }
    // (b) The same bytes as the kernel's inputs.
    if let Ok(queue) = Queue::arbitrary(&mut Unstructured::new(data)) {
        check_kernel_rendered(&queue);
    }
});
