#!/usr/bin/env bash
# A minimal Debian root file system for CI, made once with debootstrap and kept as a tarball;
# prints the tarball's path. The Docker image's base (.ci/docker.sh) and the chroot that installs
# the .deb (scripts/check-dist.sh) both start from it. The mirror is the one this machine's own
# apt sources name: the repository names none.
#
#   tarball=$(bash .ci/debian-rootfs.sh [SUITE])      # SUITE: bookworm (default)
#
# Environment:
#   XE_ROOTFS_CACHE  where the tarball is kept (default /var/cache/xen_exporter)
set -euo pipefail

suite=${1:-bookworm}
cache=${XE_ROOTFS_CACHE:-/var/cache/xen_exporter}
tarball=$cache/debian-$suite-minbase.tar
say() { printf 'debian-rootfs: %s\n' "$*" >&2; }

if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi

mirror() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { say "no Debian mirror in /etc/apt/sources.list{,.d}"; return 1; }
  echo "$uri"
}

command -v debootstrap >/dev/null || {
  say "debootstrap is not installed (bash scripts/install-deps.sh installs it)"
  exit 1
}
mkdir -p "$cache"
rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
chmod 0755 "$rootfs"
trap 'rm -rf "$rootfs" "$tarball.partial"' EXIT
say "debootstrap --variant=minbase $suite (once; kept in $tarball)"
debootstrap --variant=minbase "$suite" "$rootfs" "$(mirror)" >"$cache/debootstrap-$suite.log" 2>&1 || {
  tail -20 "$cache/debootstrap-$suite.log" >&2
  exit 1
}
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
echo "$tarball"
