//! `/metrics` of the simulated host with its clock stopped is `tests/golden/metrics.txt`, line for
//! line, and passes `promtool check metrics`. After changing what is exported, run with
//! `UPDATE_GOLDEN=1`, review the diff and commit it (`scripts/test.sh` fails on an uncommitted one).
//!
//! The simulated host has no random seed: every number is a pure function of the guest's index
//! and the time since start, and the hidden test-only flag `--xen.simulated.frozen-at` stops that
//! time. What still depends on the run is left out or masked, by the lists below.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{tool, Exporter};

/// The simulated host of the golden file: three guests (Domain-0 in addition), the second one's
/// first disk in a VBD_OO storm since 30 minutes, seen one hour after start.
const ARGS: &[&str] = &[
    "--xen.source=simulated",
    "--xen.simulated.domains=3",
    "--xen.simulated.storm-domain=guest-0002",
    "--xen.simulated.storm-after=30m",
    "--xen.simulated.frozen-at=1h",
];

/// Families left out of the golden file (name prefixes), and why their values change per run.
/// Their names and HELP are still checked by `tests/metrics_doc.rs`.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "process_",
        "the exporter process's CPU, memory, descriptors and start time",
    ),
    (
        "xen_exporter_collector_duration_seconds",
        "how long the last collection took",
    ),
    (
        "xen_exporter_config_last_reload_success_timestamp_seconds",
        "the wall clock at start",
    ),
    (
        "xen_exporter_web_config_last_reload_success_timestamp_seconds",
        "the wall clock at start",
    ),
];

/// Labels of `xen_exporter_build_info` whose values are replaced by `masked`: they change with
/// every release, commit and toolchain. The family and its label names stay in the file.
const MASKED_BUILD_LABELS: &[&str] = &["version", "revision", "rustc"];

/// The metric family name a line of a 0.0.4 exposition is about.
fn line_name(line: &str) -> &str {
    let rest = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))
        .unwrap_or(line);
    let end = rest.find(['{', ' ']).unwrap_or(rest.len());
    &rest[..end]
}

/// `text` without the excluded families and with the build labels masked.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let name = line_name(line);
        if EXCLUDED.iter().any(|(prefix, _)| name.starts_with(prefix)) {
            continue;
        }
        if name == "xen_exporter_build_info" && !line.starts_with('#') {
            out.push_str(&mask_labels(line, MASKED_BUILD_LABELS));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `line` with the values of `labels` replaced by `masked` (values without quotes inside, as
/// build information is).
fn mask_labels(line: &str, labels: &[&str]) -> String {
    let mut line = line.to_owned();
    for label in labels {
        let key = format!("{label}=\"");
        if let Some(start) = line.find(&key).map(|at| at + key.len()) {
            if let Some(length) = line[start..].find('"') {
                line.replace_range(start..start + length, "masked");
            }
        }
    }
    line
}

/// `promtool check metrics` on `text`: its lint (units, `_total`, HELP) must find nothing.
fn promtool_check(promtool: &Path, text: &str, what: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success(),
        "promtool check metrics on {what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_match_the_golden_file() {
    let test = "metrics_match_the_golden_file";
    let exporter = Exporter::start(ARGS);
    let first = exporter.get("/metrics");
    assert_eq!(first.status, 200, "{}", exporter.logs());
    let text = first.text();
    let golden = normalise(&text);
    // The clock is stopped: a later scrape shows the very same host.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        normalise(&exporter.get("/metrics").text()),
        golden,
        "two scrapes of the frozen host differ"
    );
    for (prefix, _) in EXCLUDED {
        assert!(
            text.lines().any(|line| line.starts_with(prefix)),
            "{prefix} is excluded but not exported: drop it from EXCLUDED"
        );
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics.txt");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().expect("tests/golden")).expect("mkdir");
        std::fs::write(&path, &golden).expect("write the golden file");
        eprintln!("rewrote {}", path.display());
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if committed != golden {
        let (number, (want, got)) = committed
            .lines()
            .chain(std::iter::repeat("<end of file>"))
            .zip(golden.lines().chain(std::iter::repeat("<end of file>")))
            .enumerate()
            .find(|(_, (want, got))| want != got)
            .expect("the texts differ somewhere");
        panic!(
            "/metrics differs from {} at line {}:\n  golden: {want}\n  served: {got}\n\
             If the change is intended, rerun with UPDATE_GOLDEN=1 and commit the diff.",
            path.display(),
            number + 1
        );
    }

    let Some(promtool) = tool(test, "promtool") else {
        return;
    };
    promtool_check(&promtool, &text, "the served exposition");
    promtool_check(&promtool, &committed, "tests/golden/metrics.txt");
}

#[test]
fn build_labels_are_masked_and_other_lines_kept() {
    let line =
        r#"xen_exporter_build_info{version="0.1.0",revision="bbcb232ddf2e",rustc="1.95.0"} 1"#;
    assert_eq!(
        mask_labels(line, MASKED_BUILD_LABELS),
        r#"xen_exporter_build_info{version="masked",revision="masked",rustc="masked"} 1"#
    );
    let text = "# HELP process_open_fds x\nprocess_open_fds 3\nxen_up 1\n";
    assert_eq!(normalise(text), "xen_up 1\n");
}
