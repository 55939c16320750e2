#!/bin/sh
# CI for mixin/, alerts/ and dashboards/: the mixin renders to exactly the committed files, a
# user's override of _config (mixin/tests/override.jsonnet) renders, passes promtool and changes
# what it should; rule syntax and promtool unit tests (a firing and a silent case per alert,
# recording rules by promql_expr_test), then the dashboards against Grafana's own JSON schema
# (committed, generated from @grafana/schema; no npm needed here) plus our own checks.
# The end-to-end part (real exporter, Prometheus, Alertmanager) is tests/e2e_alerts.rs.
#
# Installs what it needs: Debian jsonnet, prometheus (promtool), prometheus-alertmanager (amtool),
# python3-jsonschema, python3-yaml (pip install --user jsonschema pyyaml when python3 is not
# Debian's).
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v promtool >/dev/null || apt_install prometheus
command -v jsonnet >/dev/null || apt_install jsonnet
command -v amtool >/dev/null || apt_install prometheus-alertmanager
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
  apt_install python3-jsonschema python3-yaml
  python3 -c 'import jsonschema, yaml' 2>/dev/null \
    || python3 -m pip install --quiet --user jsonschema pyyaml
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The committed files are exactly what the mixin renders.
mixin/render.sh "$scratch/render"
for file in alerts/xen.yml alerts/latency.yml; do
  diff -u "$file" "$scratch/render/$file" \
    || { echo "$file is not what mixin/render.sh writes: run mixin/render.sh and commit" >&2; exit 1; }
done
committed=$(cd dashboards && ls *.json | sort | tr '\n' ' ')
rendered=$(cd "$scratch/render/dashboards" && ls *.json | sort | tr '\n' ' ')
[ "$committed" = "$rendered" ] \
  || { echo "dashboards/ has [$committed], the mixin renders [$rendered]" >&2; exit 1; }
for file in $rendered; do
  diff -u "dashboards/$file" "$scratch/render/dashboards/$file" >/dev/null \
    || { echo "dashboards/$file is not what mixin/render.sh writes: run mixin/render.sh" >&2; exit 1; }
done
# A user's override of _config: renders, passes promtool, and took effect.
mixin/render.sh "$scratch/override" mixin/tests/override.jsonnet
promtool check rules "$scratch/override"/alerts/*.yml
python3 mixin/tests/check_override.py "$scratch/override"
# The example Alertmanager configuration with the inhibitions in docs/alertmanager.md.
sed -n '/^```yaml alertmanager.yml$/,/^```$/p' docs/alertmanager.md | sed '1d;$d' > "$scratch/alertmanager.yml"
amtool check-config "$scratch/alertmanager.yml"

promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml
# Again with each file's alert group evaluated before its recording group: in Prometheus the
# groups run on their own timers, so an alert may read the recording rules' previous step.
# (The alert group is last in each file's group_eval_order; here it moves to the front.)
reversed_tests="$scratch/reversed"
mkdir -p "$reversed_tests"
for test in alerts/tests/*.yml; do
  reversed="$reversed_tests/$(basename "$test")"
  sed -E -e 's/^group_eval_order: \[([a-z]+\.recording(, [a-z]+\.[a-z]+)*), ([a-z]+)\.alerts\]$/group_eval_order: [\3.alerts, \1]/' \
    -e "s|^rule_files: \[\.\./|rule_files: [$(pwd)/alerts/|" "$test" > "$reversed"
  grep -q '^group_eval_order: \[[a-z]*\.alerts, ' "$reversed" \
    || { echo "$test: no group_eval_order [<name>.recording, ..., <name>.alerts] to reverse" >&2; exit 1; }
done
promtool test rules "$reversed_tests"/*.yml
python3 tools/check-dashboards.py
python3 tools/check-dashboards.py --self-test
