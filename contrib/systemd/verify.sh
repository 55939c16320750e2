#!/usr/bin/env bash
# Checks the systemd units without a running systemd:
# - xen_exporter.service (the .deb's and the tarball's, systemd 247+): `systemd-analyze verify`
#   (syntax, known settings) and the offline security analysis, which must stay at or below
#   THRESHOLD (the exposure level systemd prints, 0-10, times ten: 25 = 2.5; the unit scores 2.0);
# - el7/xen_exporter.service (the .rpm's, systemd 219: CentOS 7, XCP-ng 8, XenServer 8):
#   `systemd-analyze verify`, and every setting is one systemd 219 knows, with a value it takes
#   (systemd-219.directives). The check is shown to fail on the newer unit.
#
#   bash contrib/systemd/verify.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
threshold=${THRESHOLD:-25}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints `unit:line: Section.Key=value: reason` for every setting not in the list (or with a
# value the list's pattern refuses); exits 1 if there was one.
check_directives() {
  awk -v list="$1" '
    BEGIN {
      while ((getline line < list) > 0) {
        if (line ~ /^[ \t]*(#|$)/) continue
        split(line, field, /[ \t]+/)
        known[field[1]] = 1
        pattern[field[1]] = field[2]
      }
    }
    /^[ \t]*([#;]|$)/ { next }
    /^\[.*\]$/ { section = substr($0, 2, length($0) - 2); next }
    {
      key = $0; sub(/=.*/, "", key); gsub(/[ \t]/, "", key)
      value = $0; sub(/^[^=]*=[ \t]*/, "", value)
      name = section "." key
      if (!(name in known)) {
        printf "%s:%d: %s=: not a setting systemd 219 knows\n", FILENAME, FNR, name; bad = 1
      } else if (pattern[name] != "" && value !~ ("^(" pattern[name] ")$")) {
        printf "%s:%d: %s=%s: systemd 219 takes only %s\n", FILENAME, FNR, name, value, pattern[name]; bad = 1
      }
    }
    END { exit bad }
  ' "$2"
}

# verify insists that the binaries the unit runs exist; the installed path does not exist here.
for unit in xen_exporter.service el7/xen_exporter.service; do
  mkdir -p "$work/$(dirname "$unit")"
  sed 's|/usr/bin/xen_exporter|/bin/true|g' "$here/$unit" >"$work/$unit"
  systemd-analyze verify "$work/$unit"
  echo "systemd unit $unit: verify clean"
done

systemd-analyze security --offline=true --no-pager --threshold="$threshold" \
  "$work/xen_exporter.service" | tail -1
echo "systemd unit xen_exporter.service: exposure within $(awk "BEGIN {print $threshold / 10}")"

check_directives "$here/systemd-219.directives" "$here/el7/xen_exporter.service"
echo "systemd unit el7/xen_exporter.service: every setting is known to systemd 219"
# The check must be able to fail: the systemd 247 unit has settings 219 does not know.
if refused=$(check_directives "$here/systemd-219.directives" "$here/xen_exporter.service"); then
  echo "systemd-219 check accepted xen_exporter.service, which has settings from 231 and later" >&2
  exit 1
fi
grep -q 'Service.ProtectKernelTunables=: not a setting' <<<"$refused"
grep -q 'Service.ProtectSystem=strict: systemd 219 takes only' <<<"$refused"
echo "systemd-219 check refuses xen_exporter.service ($(wc -l <<<"$refused") settings)"
