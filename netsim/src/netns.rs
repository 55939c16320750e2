//! Network namespaces for tests: create one (`ip netns add`), run code or commands inside it,
//! set its sysctls, and delete it when the guard drops.

use std::path::PathBuf;
use std::process::Command;

use crate::command::run_ip;
use crate::{sys, Error};

/// A named network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up. A leftover namespace of the same name (a
    /// crashed earlier run of the same test and PID) is deleted first.
    pub fn create(name: &str) -> Result<Netns, Error> {
        if netns_path(name).exists() {
            let _ = run_ip(&["netns", "delete", name]);
        }
        run_ip(&["netns", "add", name])?;
        let netns = Netns {
            name: name.to_owned(),
        };
        run_ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// Creates `xe-<test>-<pid>`, the naming the project's tests use. First deletes leftovers
    /// of that naming whose process is gone (a test killed before its guards ran).
    pub fn for_test(test: &str) -> Result<Netns, Error> {
        sweep_leftovers();
        Netns::create(&test_netns_name(test))
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec <name> <program>`);
    /// `ip` execs the program, so the child's PID is the program's PID.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `f` on a new thread that has entered the namespace, and returns its result. Sockets
    /// created inside `f` stay in the namespace wherever they are used later.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, Error> {
        let path = self.path();
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("netsim-netns".into())
                .spawn_scoped(scope, || {
                    sys::enter_netns(&path)?;
                    Ok(f())
                })
                .map_err(|source| Error::Thread {
                    name: "netsim-netns",
                    source,
                })?;
            match thread.join() {
                Ok(result) => result.map_err(|source| Error::Netns {
                    name: self.name.clone(),
                    source,
                }),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Sets a network sysctl inside the namespace, e.g. `net.ipv4.ping_group_range`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))?
            .map_err(|source| Error::Netns {
                name: self.name.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    format!("write {}: {source}", path.display()),
                ),
            })
    }

    /// Writes `/etc/netns/<name>/<file>` (e.g. `hosts`, `resolv.conf`), which `ip netns exec`
    /// bind-mounts over `/etc/<file>` for commands from [`Netns::command`]. The file is
    /// rewritten in place, never replaced, so a command already running sees the new contents
    /// (a hostname whose address changes). Removed with the namespace.
    pub fn write_etc(&self, file: &str, contents: &str) -> Result<(), Error> {
        let dir = etc_dir(&self.name);
        let path = dir.join(file);
        let io_error = |source: std::io::Error| Error::Netns {
            name: self.name.clone(),
            source: std::io::Error::new(
                source.kind(),
                format!("write {}: {source}", path.display()),
            ),
        };
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut handle| std::io::Write::write_all(&mut handle, contents.as_bytes()))
            .map_err(io_error)
    }

    /// Lets every group open unprivileged ICMP (DGRAM) sockets in the namespace.
    pub fn allow_ping_group(&self) -> Result<(), Error> {
        self.set_sysctl("net.ipv4.ping_group_range", "0 2147483647")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let etc = etc_dir(&self.name);
        if etc.exists() {
            if let Err(error) = std::fs::remove_dir_all(&etc) {
                eprintln!("netsim: remove {}: {error}", etc.display());
            }
        }
        if let Err(error) = run_ip(&["netns", "delete", &self.name]) {
            eprintln!("netsim: {error}");
        }
    }
}

/// `xe-<test>-<pid>` with characters `ip netns` dislikes replaced.
pub fn test_netns_name(test: &str) -> String {
    let test: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("xe-{test}-{}", std::process::id())
}

/// Deletes `xe-*-<pid>` namespaces (and their /etc/netns files) whose PID no longer runs.
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for name in entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
    {
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        if run_ip(&["netns", "delete", &name]).is_ok() {
            let _ = std::fs::remove_dir_all(etc_dir(&name));
        }
    }
}

/// The PID at the end of a test namespace name `xe-<test>-<pid>`.
fn leftover_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("xe-")?;
    let (_, pid) = rest.rsplit_once('-')?;
    pid.parse().ok()
}

fn etc_dir(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name)
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_yield_their_pid() {
        assert_eq!(leftover_pid("xe-probe_icmp-4242"), Some(4242));
        assert_eq!(leftover_pid("xe-a-b-7"), Some(7));
        assert_eq!(leftover_pid("xe-nopid"), None);
        assert_eq!(leftover_pid("other-12"), None);
        assert_eq!(
            leftover_pid(&test_netns_name("x")),
            Some(std::process::id())
        );
    }

    #[test]
    fn test_names_carry_the_pid_and_only_safe_characters() {
        let name = test_netns_name("probe::icmp loss");
        assert_eq!(name, format!("xe-probe--icmp-loss-{}", std::process::id()));
    }
}
