#!/usr/bin/env bash
# Installs everything the test suite needs on a Debian/Ubuntu machine with a Rust toolchain.
# Idempotent: re-running installs nothing new. Needs root (or sudo) for apt.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  prometheus                    # promtool + a real server for scrape, alert and dashboard tests
  prometheus-alertmanager       # alert delivery end to end
  prometheus-smokeping-prober   # peer for the probe benchmark
  prometheus-blackbox-exporter  # peer for the probe benchmark
  prometheus-node-exporter      # peer for the footprint benchmark
  libxen-dev gcc libc6-dev valgrind  # the real libxenstat, the fake one built by the tests, leak checks
  iproute2 iputils-ping         # network namespaces and TUN routes for the probe tests (ip, ss)
  util-linux                    # setpriv: the unprivileged (DGRAM) probe tests
  curl jq procps ca-certificates
  inotify-tools util-linux      # inotifywait: the exporter never writes to debugfs; setpriv drops root's DAC override
  python3 python3-venv          # dashboard schema checks, hadolint from PyPI
  python3-jsonschema python3-yaml  # tools/check-dashboards.py (Grafana schema, rule checks)
  jsonnet                       # renders mixin/ into alerts/*.yml and dashboards/*.json
  buildah                       # Docker image build and smoke run without a daemon
  debootstrap binutils systemd  # the image's local Debian base, strip, systemd-analyze (.ci/docker.sh)
  rpm                           # rpmbuild and rpm: the .rpm (scripts/dist.sh, scripts/check-dist.sh)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# cargo-zigbuild and zig (PyPI ziglang, in a venv) for the portable release binary: scripts/dist.sh
# installs its pinned versions itself.
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true
echo "install-deps: done"
