//! `xe-netsim` as a child process (inside a namespace via `ip netns exec`), for benchmarks and
//! tests that want the responder out of their own process. Drop stops it by PID.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{sys, Error, Netns};

/// How long the child may take to create its device and print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `xe-netsim` child.
pub struct ResponderProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ResponderProcess {
    /// Starts `binary` (the `xe-netsim` executable) with `args`, inside `netns` when given, and
    /// waits for its `ready` line.
    pub fn spawn(
        binary: &Path,
        netns: Option<&Netns>,
        args: &[&str],
    ) -> Result<ResponderProcess, Error> {
        let mut command = match netns {
            Some(netns) => netns.command(binary),
            None => Command::new(binary),
        };
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| Error::Child {
            reason: format!("cannot start {}: {source}", binary.display()),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Child {
            reason: "no stdout pipe".into(),
        })?;
        let lines = forward_lines(stdout);
        let mut process = ResponderProcess { child, lines };
        match process.lines.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.starts_with("ready ") => Ok(process),
            Ok(line) => Err(Error::Child {
                reason: format!("unexpected first line {line:?}"),
            }),
            Err(_) => {
                let _ = process.child.kill();
                let _ = process.child.wait();
                let mut stderr = String::new();
                if let Some(pipe) = process.child.stderr.as_mut() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                Err(Error::Child {
                    reason: format!("no ready line within {READY_TIMEOUT:?}: {}", stderr.trim()),
                })
            }
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, waits for exit and returns the `stats ...` line it printed.
    pub fn stop(mut self) -> Result<String, Error> {
        self.terminate();
        self.lines
            .recv_timeout(READY_TIMEOUT)
            .map_err(|_| Error::Child {
                reason: "no stats line after SIGTERM".into(),
            })
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = sys::kill(self.child.id(), libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

impl Drop for ResponderProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}
