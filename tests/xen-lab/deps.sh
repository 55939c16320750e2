#!/bin/bash
#! Host prerequisites of the Xen lab (Debian host, root): debootstrap, busybox-static, qemu.
# Installs only missing packages (naming an installed one would upgrade it and
# its reverse dependencies). qemu-system-x86 is unpacked with dpkg -x when apt
# cannot install it next to a backported qemu-utils (Breaks qemu-system-common).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
export DEBIAN_FRONTEND=noninteractive
missing() { local p; for p in "$@"; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done; }
install_missing() {
  local m; m=$(missing "$@" | tr '\n' ' ')
  [ -z "${m// }" ] || apt-get install -y -q --no-install-recommends --no-remove $m
}
install_missing debootstrap e2fsprogs cpio gzip xz-utils zstd busybox-static bc tar python3
if command -v qemu-system-x86_64 >/dev/null || [ -x "$QEMU_DIR/usr/bin/qemu-system-x86_64" ]; then exit 0; fi
if apt-get install -s -q --no-install-recommends --no-remove qemu-system-x86 >/dev/null 2>&1; then
  apt-get install -y -q --no-install-recommends --no-remove qemu-system-x86
  exit 0
fi
QPKGS="qemu-system-x86 qemu-system-common qemu-system-data"
DEPS=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances $QPKGS | awk '/Depends:/ && $2 !~ /^</ {print $2}' | grep -v '^qemu-' | sort -u)
install_missing $DEPS
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
(cd "$T" && apt-get download $QPKGS)
rm -rf "$QEMU_DIR"; mkdir -p "$QEMU_DIR"
for d in "$T"/*.deb; do dpkg -x "$d" "$QEMU_DIR"; done
"$QEMU_DIR/usr/bin/qemu-system-x86_64" --version | sed -n 1p
