//! Records the git revision and the compiler version for `xen_exporter_build_info`.

use std::process::Command;

fn main() {
    let revision = std::env::var("XEN_EXPORTER_REVISION")
        .ok()
        .or_else(|| command_output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = command_output(&rustc, &["--version"])
        .and_then(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=XEN_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=XEN_EXPORTER_RUSTC={rustc_version}");
    println!("cargo:rerun-if-env-changed=XEN_EXPORTER_REVISION");
    // In a `git worktree`, .git is a file: a missing path would rerun this (and rebuild the
    // crate) on every cargo command, so ask git where HEAD and the branches really are.
    let git_dir =
        command_output("git", &["rev-parse", "--git-dir"]).unwrap_or_else(|| ".git".into());
    let common_dir = command_output("git", &["rev-parse", "--git-common-dir"])
        .unwrap_or_else(|| git_dir.clone());
    println!("cargo:rerun-if-changed={git_dir}/HEAD");
    // Only this branch's ref: other worktrees' commits must not rebuild this one.
    let branch = command_output("git", &["symbolic-ref", "-q", "HEAD"]);
    match branch {
        Some(branch) => println!("cargo:rerun-if-changed={common_dir}/{branch}"),
        None => println!("cargo:rerun-if-changed={common_dir}/refs/heads"),
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}
