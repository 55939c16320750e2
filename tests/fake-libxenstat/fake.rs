//! Builds the fake libxenstat (`fake_xenstat.c`) with the system C compiler, for the FFI tests
//! and the FFI benchmark. Include with `#[path = "fake-libxenstat/fake.rs"] mod fake;`.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

/// The C source, next to this file.
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-libxenstat/fake_xenstat.c")
}

/// A built fake library; the directory (and the `.so`) is removed on drop.
pub struct FakeLib {
    dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl FakeLib {
    /// A file in the library's directory (e.g. for `FAKE_LOG_PATH`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Compiles the fake with `-D<define>` for each entry of `defines` (e.g. `FAKE_NO_VBD_ERROR`).
/// Uses `$CC`, else `cc`. Panics with the compiler's output on failure: a test cannot go on.
pub fn build(defines: &[&str]) -> FakeLib {
    build_with(defines, |_| Vec::new())
}

/// Like [`build`], with extra defines computed from the output directory.
pub fn build_with(defines: &[&str], extra: impl FnOnce(&Path) -> Vec<String>) -> FakeLib {
    let dir = tempfile::Builder::new()
        .prefix("fake-libxenstat-")
        .tempdir()
        .expect("create a temporary directory");
    let path = dir.path().join("libxenstat-fake.so");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut command = Command::new(&compiler);
    command
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&path)
        .arg(source());
    for define in defines {
        command.arg(format!("-D{define}"));
    }
    for define in extra(dir.path()) {
        command.arg(format!("-D{define}"));
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("running the C compiler `{compiler}` failed: {err}"));
    assert!(
        output.status.success(),
        "building the fake libxenstat failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    FakeLib { dir, path }
}
