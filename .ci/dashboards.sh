#!/bin/sh
# CI for alerts/ and dashboards/: rule syntax and promtool unit tests (a firing and a silent case
# per alert, recording rules by promql_expr_test), then the dashboards against Grafana's own JSON
# schema (committed, generated from @grafana/schema; no npm needed here) plus our own checks.
# The end-to-end part (real exporter, Prometheus, Alertmanager) is tests/e2e_alerts.rs.
#
# Installs what it needs: Debian prometheus (promtool), python3-jsonschema, python3-yaml
# (pip install --user jsonschema pyyaml when python3 is not Debian's).
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v promtool >/dev/null || apt_install prometheus
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
  apt_install python3-jsonschema python3-yaml
  python3 -c 'import jsonschema, yaml' 2>/dev/null \
    || python3 -m pip install --quiet --user jsonschema pyyaml
fi

promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml
# Again with each file's alert group evaluated before its recording group: in Prometheus the
# groups run on their own timers, so an alert may read the recording rules' previous step.
reversed_tests=$(mktemp -d)
trap 'rm -rf "$reversed_tests"' EXIT
for test in alerts/tests/*.yml; do
  reversed="$reversed_tests/$(basename "$test")"
  sed -E -e 's/^group_eval_order: \[([a-z]+)\.recording, ([a-z]+)\.alerts\]$/group_eval_order: [\2.alerts, \1.recording]/' \
    -e "s|^rule_files: \[\.\./|rule_files: [$(pwd)/alerts/|" "$test" > "$reversed"
  grep -q '^group_eval_order: \[[a-z]*\.alerts, ' "$reversed" \
    || { echo "$test: no group_eval_order [<name>.recording, <name>.alerts] to reverse" >&2; exit 1; }
done
promtool test rules "$reversed_tests"/*.yml
python3 tools/check-dashboards.py
python3 tools/check-dashboards.py --self-test
