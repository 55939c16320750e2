//! Host placement: a device name and prefixes that no other test process on this machine is
//! using, so a responder can run in the host namespace with a route to its own prefix only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Prefix;

/// /24s of 198.18.0.0/15 to choose from (198.19.0.0/24 is the namespaced default, skipped).
const SLOTS: u32 = 510;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A free slot: device `xes<pid><n>`, `198.18.0.0/15`'s /24 number `slot` with `.1` as the
/// device address, and `fd00:198:18:<slot>::1/64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSlot {
    /// Device name.
    pub dev: String,
    /// IPv4 prefix with the device address.
    pub prefix4: Prefix,
    /// IPv6 prefix with the device address.
    pub prefix6: Prefix,
}

/// Picks a slot whose device and routes do not exist yet, starting from one derived from the
/// PID (two processes racing for the same slot is possible but needs the same PID modulo 510).
pub fn free_host_slot() -> HostSlot {
    let pid = std::process::id();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = host_slot(pid, n);
        if !in_use(&slot) || n >= SLOTS {
            return slot;
        }
    }
}

fn host_slot(pid: u32, n: u32) -> HostSlot {
    let index = (pid.wrapping_mul(7).wrapping_add(n)) % SLOTS + 1;
    let index = if index >= 256 { index + 1 } else { index };
    let second = 18 + u8::try_from(index >> 8).expect("index below 512");
    let third = u8::try_from(index & 0xff).expect("masked to a byte");
    let address4 = IpAddr::V4(Ipv4Addr::new(198, second, third, 1));
    let address6 = IpAddr::V6(Ipv6Addr::new(
        0xfd00,
        0x198,
        0x18,
        u16::try_from(index).unwrap_or(0),
        0,
        0,
        0,
        1,
    ));
    HostSlot {
        dev: format!("xes{}{}", pid % 1_000_000, n % 100),
        prefix4: Prefix::new(address4, 24).expect("24 fits IPv4"),
        prefix6: Prefix::new(address6, 64).expect("64 fits IPv6"),
    }
}

fn in_use(slot: &HostSlot) -> bool {
    let network = slot
        .prefix4
        .nth(0)
        .map(|n| format!("{n}/24"))
        .unwrap_or_default();
    let link = Command::new("ip")
        .args(["link", "show", "dev", &slot.dev])
        .output()
        .is_ok_and(|out| out.status.success());
    // Without a selector keyword `ip route show PREFIX` lists only routes for exactly PREFIX.
    let route = Command::new("ip")
        .args(["-4", "route", "show", &network])
        .output()
        .is_ok_and(|out| !out.stdout.is_empty());
    link || route
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_inside_198_18_0_0_15_and_skip_the_namespaced_default() {
        let range: Prefix = "198.18.0.0/15".parse().expect("valid");
        let default: Prefix = "198.19.0.0/24".parse().expect("valid");
        for n in 0..SLOTS {
            let slot = host_slot(12345, n);
            assert!(range.contains(slot.prefix4.address), "{slot:?}");
            assert!(!default.contains(slot.prefix4.address), "{slot:?}");
            assert!(slot.dev.len() <= 15, "{slot:?}");
        }
        assert_eq!(host_slot(0, 0).prefix4.to_string(), "198.18.1.1/24");
        assert_eq!(host_slot(0, 255).prefix4.to_string(), "198.19.1.1/24");
        assert_eq!(host_slot(0, 509).prefix4.to_string(), "198.19.255.1/24");
    }
}
