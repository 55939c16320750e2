//! Decides whether a test can run here: CAP_NET_ADMIN, `/dev/net/tun` and `ip` for network
//! tests, and [`skip`], the one way every test of the workspace says it cannot run.

const CAP_NET_ADMIN: u32 = 12;

/// Whether CI demands that every test runs (env `XE_REQUIRE_PRIVILEGED=1`).
pub fn privileged_required() -> bool {
    std::env::var("XE_REQUIRE_PRIVILEGED").is_ok_and(|value| value == "1")
}

/// `true` if namespaces and TUN devices can be made here. Otherwise prints
/// `SKIP <test>: <reason>` and returns `false`, or panics when `XE_REQUIRE_PRIVILEGED=1`.
pub fn require_privileged(test: &str) -> bool {
    let Some(reason) = missing_privilege() else {
        return true;
    };
    skip(test, &reason);
    false
}

/// Says that `test` cannot run here and why: prints `SKIP <test>: <reason>`, or panics when
/// `XE_REQUIRE_PRIVILEGED=1` (CI, where every test must run). Every skipping test of the
/// workspace (root, tools, libraries) goes through here, so none can ignore the variable.
pub fn skip(test: &str, reason: &str) {
    skip_unless_required(test, reason, privileged_required());
}

fn skip_unless_required(test: &str, reason: &str, required: bool) {
    if required {
        panic!("{test}: cannot run: {reason} (XE_REQUIRE_PRIVILEGED=1 forbids skipping)");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// Why network tests cannot run here, or `None` if they can.
pub fn missing_privilege() -> Option<String> {
    if !has_net_admin() {
        return Some("needs CAP_NET_ADMIN (root)".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("needs /dev/net/tun (modprobe tun)".into());
    }
    let ip_found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("ip").is_file()));
    if !ip_found {
        return Some("needs the ip tool (install iproute2)".into());
    }
    None
}

/// Whether the effective capability set holds CAP_NET_ADMIN (root normally does).
pub fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_cap_eff(&status))
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "XE_REQUIRE_PRIVILEGED=1 forbids skipping")]
    fn a_skip_fails_when_every_test_is_required() {
        skip_unless_required("a_skip_fails_when_every_test_is_required", "testing", true);
    }

    #[test]
    fn cap_eff_is_read_as_hex() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
