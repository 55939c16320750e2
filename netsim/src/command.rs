//! Runs the `ip` tool (iproute2) and turns a failure into an [`Error`] carrying its stderr.

use std::process::Command;

use crate::Error;

/// Runs `ip` with `args`, returning an error with the command line and stderr on failure.
pub fn run_ip(args: &[&str]) -> Result<(), Error> {
    let command_line = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| Error::Command {
            command: command_line.clone(),
            reason: format!("cannot run ip (install iproute2): {source}"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: command_line,
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// `ip` arguments prefixed with `-n NAME` when a namespace is given.
pub fn in_netns<'a>(netns: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = Vec::with_capacity(args.len() + 2);
    if let Some(name) = netns {
        all.extend(["-n", name]);
    }
    all.extend_from_slice(args);
    all
}
