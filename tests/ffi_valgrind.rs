//! The FFI path under valgrind (memcheck): no invalid reads or writes and no leaked C memory
//! when snapshots are taken through the fake libxenstat (NULLs included), when loading fails,
//! and when libxenstore's `malloc`ed answers are freed. The test re-runs this binary's
//! `workload` test under valgrind.

#[path = "fake-libxenstat/fake.rs"]
mod fake;

use std::path::PathBuf;
use std::process::Command;

use netsim::skip;
use xen_exporter::testing::LibXenstat;
use xen_exporter::testing::XenSource;
use xenstat_sys::Libxenstat;

/// Set in the child run under valgrind.
const INNER: &str = "XE_FFI_UNDER_VALGRIND";

fn find_tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[test]
fn ffi_path_is_clean_under_valgrind() {
    let test = "ffi_path_is_clean_under_valgrind";
    if std::env::var_os(INNER).is_some() {
        return; // the inner run executes `workload` only
    }
    let Some(valgrind) = find_tool("valgrind") else {
        skip(test, "valgrind is not installed (apt-get install valgrind)");
        return;
    };
    let exe = std::env::current_exe().expect("path of this test binary");
    let output = Command::new(valgrind)
        .args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ])
        .arg(&exe)
        .args(["--exact", "workload", "--test-threads=1", "--nocapture"])
        .env(INNER, "1")
        .output()
        .expect("run valgrind");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("workload done"),
        "the workload did not run:\n{stdout}\n{stderr}"
    );
    assert!(
        output.status.success(),
        "valgrind found errors (exit {:?}):\n{stderr}",
        output.status.code()
    );
}

/// The FFI calls checked by valgrind; a no-op outside the valgrind run.
#[test]
fn workload() {
    if std::env::var_os(INNER).is_none() {
        return;
    }
    let plain = fake::build(&[]);
    let source = LibXenstat::open(Some(&plain.path), None).expect("fake opens");
    for _ in 0..3 {
        assert_eq!(source.snapshot().expect("snapshot").domains.len(), 2);
    }
    drop(source);

    let nulls = fake::build(&["FAKE_NULLS"]);
    let source = LibXenstat::open(Some(&nulls.path), None).expect("fake opens");
    assert_eq!(source.snapshot().expect("snapshot").domains.len(), 3);
    drop(source);

    let old = fake::build(&["FAKE_NO_VBD_ERROR"]);
    let host = LibXenstat::open(Some(&old.path), None)
        .expect("fake opens")
        .snapshot()
        .expect("snapshot");
    assert_eq!(host.domains[1].vbds[0].error, None);

    let no_hypervisor = fake::build(&["FAKE_INIT_FAIL"]);
    assert!(LibXenstat::open(Some(&no_hypervisor.path), None).is_err());
    let missing = fake::build(&["FAKE_NO_DOMAIN_SSID"]);
    assert!(Libxenstat::load(Some(&missing.path)).is_err());
    assert!(Libxenstat::load_first(&["libxenstat-none.so".to_owned()]).is_err());

    // The real Debian library, when installed: load, a failing xenstat_init, unload.
    if Libxenstat::load(None).is_ok() {
        assert!(LibXenstat::open(None, None).is_err());
    }
    println!("workload done");
}
