//! `netdev::parse` (Dom0's `/proc/net/dev`) on (a) arbitrary text and (b) interfaces rendered
//! exactly as the kernel's `dev_seq_printf_stats` prints them.
//!
//! Invariants: never a panic; parsing is deterministic; every interface returned is a guest's
//! (its name parses back to the same kind, domid and devid); for kernel-rendered text, exactly the
//! guest interfaces come back, in order, with receive = the first four counters and transmit =
//! the 9th to 12th, whatever Dom0's own interfaces hold.
#![no_main]

use std::fmt::Write;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{guest_interface, parse_net_dev, VifKind};

#[derive(Debug, Arbitrary)]
enum Name {
    Vif(u32, u32),
    Tap(u32, u32),
    Emu(u32, u32),
    /// One of Dom0's own (never a guest's; letters only).
    Other(u8),
}

#[derive(Debug, Arbitrary)]
struct Interface {
    name: Name,
    counters: [u64; 16],
}

impl Interface {
    fn name(&self) -> String {
        match self.name {
            Name::Vif(d, n) => format!("vif{d}.{n}"),
            Name::Tap(d, n) => format!("tap{d}.{n}"),
            Name::Emu(d, n) => format!("vif{d}.{n}-emu"),
            Name::Other(seed) => ["lo", "eth0", "xenbr0", "ovs-system", "bond0", "xapi1"]
                [usize::from(seed) % 6]
                .to_owned(),
        }
    }
    fn guest(&self) -> Option<(VifKind, u32, u32)> {
        match self.name {
            Name::Vif(d, n) => Some((VifKind::Netback, d, n)),
            Name::Tap(d, n) => Some((VifKind::Tap, d, n)),
            Name::Emu(d, n) => Some((VifKind::Emu, d, n)),
            Name::Other(_) => None,
        }
    }
}

fn render(interfaces: &[Interface]) -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for interface in interfaces {
        let c = &interface.counters;
        let _ = writeln!(
            out,
            "{:>6}:{:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>7} {:>10}",
            interface.name(),
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]
        );
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(found) = parse_net_dev(&text) {
        for guest in &found {
            let name = guest.vif.interface_name(guest.domid);
            assert_eq!(
                guest_interface(&name),
                Some((guest.vif.kind, guest.domid, guest.vif.devid)),
                "{name}"
            );
        }
        assert_eq!(parse_net_dev(&text), Ok(found), "deterministic");
    }
    if let Ok(interfaces) = Vec::<Interface>::arbitrary(&mut Unstructured::new(data)) {
        let text = render(&interfaces);
        let found = parse_net_dev(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        let expected: Vec<_> = interfaces
            .iter()
            .filter_map(|interface| Some((interface.guest()?, interface.counters)))
            .collect();
        assert_eq!(found.len(), expected.len(), "{text}");
        for (guest, ((kind, domid, devid), c)) in found.iter().zip(expected) {
            let vif = &guest.vif;
            assert_eq!((vif.kind, guest.domid, vif.devid), (kind, domid, devid));
            assert_eq!(
                [vif.rx_bytes, vif.rx_packets, vif.rx_errors, vif.rx_drops],
                [c[0], c[1], c[2], c[3]]
            );
            assert_eq!(
                [vif.tx_bytes, vif.tx_packets, vif.tx_errors, vif.tx_drops],
                [c[8], c[9], c[10], c[11]]
            );
        }
    }
});
