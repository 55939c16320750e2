//! The simulator's one error type: each variant names the device, namespace or command involved.

use std::io;

/// Why the simulator or a namespace could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/net/tun` could not be opened or the device not created.
    #[error("cannot create TUN device {dev:?}: {source}{hint}", hint = tun_hint(source))]
    Tun {
        /// Requested device name.
        dev: String,
        /// The OS error.
        source: io::Error,
    },
    /// Entering or opening a network namespace failed.
    #[error("network namespace {name:?}: {source}")]
    Netns {
        /// Namespace name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// An external command (`ip ...`) could not run or failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
    /// A thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// Thread name.
        name: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The `xe-netsim` child did not report readiness.
    #[error("xe-netsim child: {reason}")]
    Child {
        /// What went wrong, with its output.
        reason: String,
    },
}

/// What to do about the usual TUN failures.
fn tun_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied => " (needs CAP_NET_ADMIN: run as root)",
        io::ErrorKind::NotFound => " (no /dev/net/tun: modprobe tun)",
        _ if source.raw_os_error() == Some(libc::EBUSY) => " (a device of that name exists)",
        _ => "",
    }
}
