//! A corpus of bad configuration files: each gives its exact message and exit status 2, before
//! any port is bound. The first line of each file is `# expect: <the exact stderr line>`;
//! `UPDATE_EXPECTED=1` rewrites those lines from what the binary prints (review the diff).

mod common;

use std::path::Path;
use std::process::Command;

const CORPUS: &str = "tests/fixtures/bad-configs";

#[test]
fn every_bad_config_fails_with_its_exact_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yml"))
        .collect();
    names.sort();
    let update = std::env::var("UPDATE_EXPECTED").is_ok_and(|value| value == "1");
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).expect("read corpus file");
        let text = String::from_utf8_lossy(&bytes);
        let first_line = text.lines().next().unwrap_or_default();
        let expected = first_line
            .strip_prefix("# expect: ")
            .expect("first line is '# expect: ...'")
            .to_owned();
        let port = common::free_port();
        let output = run_with_deadline(
            Command::new(common::exporter_binary())
                .current_dir(&dir)
                .arg(format!("--config.file={name}"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let error_line = stderr
            .lines()
            .find(|line| line.starts_with("error: "))
            .unwrap_or("")
            .to_owned();
        if update && error_line != expected {
            let rest = &bytes[first_line.len()..];
            let mut rewritten = format!("# expect: {error_line}").into_bytes();
            rewritten.extend_from_slice(rest);
            std::fs::write(&path, rewritten).expect("rewrite corpus file");
            continue;
        }
        if output.status.code() != Some(2) {
            failures.push(format!(
                "{name}: exit status {:?}, want 2",
                output.status.code()
            ));
        }
        if error_line != expected {
            failures.push(format!("{name}:\n   got: {error_line}\n  want: {expected}"));
        }
        if stderr.contains("msg=listening") {
            failures.push(format!("{name}: bound a port before failing"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        names.len() >= 30,
        "the corpus must hold at least 30 bad files, has {}",
        names.len()
    );
}

#[test]
fn missing_config_file_exits_2() {
    let output = Command::new(common::exporter_binary())
        .arg("--config.file=/nonexistent/xen_exporter.yml")
        .output()
        .expect("run exporter");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: /nonexistent/xen_exporter.yml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn config_check_accepts_the_examples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("examples/ is missing");
    };
    let mut checked = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_some_and(|extension| extension == "yml")
            && !path.to_string_lossy().contains("web-config")
        {
            let output = Command::new(common::exporter_binary())
                .arg(format!("--config.file={}", path.display()))
                .arg("--config.check")
                .output()
                .expect("run exporter");
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no example configs found");
}

/// 100,000 nested `[` (200 KB) took the YAML parser 44 s to reject; the limit on nesting refuses
/// it before parsing. The issue makes 1 s the bound; the check itself takes milliseconds.
#[test]
fn deeply_nested_config_is_refused_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, want) in [
        (
            "deep-flow.yml",
            format!("xen: {}\n", "[".repeat(100_000)),
            "deep-flow.yml:1:68: nested deeper than 64 levels: not a configuration file",
        ),
        (
            "deep-mapping.yml",
            format!("xen:\n  rings: {}\n", "{a: ".repeat(50_000)),
            "deep-mapping.yml:2:",
        ),
        ("deep-block.yml", "- ".repeat(100_000), "deep-block.yml:1:"),
        (
            "huge.yml",
            format!("{}xen: {{}}\n", "# padding\n".repeat(300_000)),
            "huge.yml: larger than 2097152 bytes: not a configuration file",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        let started = std::time::Instant::now();
        let output = Command::new(common::exporter_binary())
            .arg(format!("--config.file={}", path.display()))
            .arg("--config.check")
            .output()
            .expect("run exporter");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("deeper than 64") != name.starts_with("huge"),
            "{name}: {stderr}"
        );
        assert!(
            elapsed < std::time::Duration::from_secs(1),
            "{name}: took {elapsed:?} to be refused"
        );
    }
}

/// A configuration that never ends (a device) is refused after the limit, not read forever.
#[test]
fn endless_config_file_is_refused() {
    let output = Command::new(common::exporter_binary())
        .arg("--config.file=/dev/zero")
        .arg("--config.check")
        .output()
        .expect("run exporter");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: /dev/zero: larger than 2097152 bytes: not a configuration file"
    );
}

/// Runs the exporter; one that is still running after 10 s (it accepted the file and serves) is
/// killed and reported through its exit status.
fn run_with_deadline(command: &mut Command) -> std::process::Output {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run exporter");
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let output = child.wait_with_output().expect("exporter output");
    drop(killer);
    output
}
