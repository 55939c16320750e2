#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, then lint, unit and
# integration tests (real Prometheus, promtool, Alertmanager, network namespaces), the portable
# release packages (built, symbol-checked, installed in a chroot and an empty root), alert rule
# tests and dashboard checks, then the real-Xen test: the exporter built here, inside a real Xen
# 4.17 and 4.20 Dom0 under qemu, compared with xentop, sysfs and debugfs (`make xen-lab`).
#
#   sudo bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; date +%s > /tmp/xen-exporter-step.start; }
started=$(date +%s)

step "install dependencies"
bash scripts/install-deps.sh

# Root runs every privileged test; as root, a test that would skip fails instead.
if [ "$(id -u)" -eq 0 ]; then export XE_REQUIRE_PRIVILEGED=1; fi

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --quiet

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

step "portable packages (glibc 2.17 binary, tarball, .deb, .rpm; e2e tests on the portable binary)"
bash scripts/dist.sh
bash scripts/check-dist.sh
# The end-to-end tests again, against what ships: the portable release binary.
XE_EXPORTER_BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/x86_64-unknown-linux-gnu/release/xen_exporter" \
  cargo nextest run --locked --no-fail-fast \
  --test http_endpoints --test prometheus_scrape --test config_errors --test web_tls

step "Docker image (hadolint, buildah build and smoke run) and systemd unit"
bash .ci/docker.sh

step "alert rules (promtool check + unit tests)"
bash .ci/dashboards.sh

step "real Xen under qemu: Xen 4.17 (bookworm Dom0) and Xen 4.20 (trixie Dom0)"
# The portable release binary, what ships: a debug build under software emulation took
# 10-16 s per scrape, too slow to sample the disk load the saturation rows need.
EXPORTER="${CARGO_TARGET_DIR:-$(pwd)/target}/x86_64-unknown-linux-gnu/release/xen_exporter" make xen-lab

step "generated files are current"
git diff --exit-code -- docs/ tests/golden/ || {
  echo "generated files changed: run the tests with UPDATE_DOCS=1 / UPDATE_GOLDEN=1 and commit" >&2
  exit 1
}

echo
echo "all tests passed in $(( $(date +%s) - started )) s"
