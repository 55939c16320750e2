#!/usr/bin/env bash
# Builds the release artefacts into target/dist/: the portable binary (glibc 2.17 and newer:
# CentOS/RHEL 7, XCP-ng 8, XenServer 8, every current Debian/Ubuntu), a tarball of it with the
# systemd units, configuration, dashboards, alerts and docs, a .deb (dpkg-deb) and an .rpm
# (rpmbuild). scripts/check-dist.sh checks and installs what this makes.
#
#   bash scripts/dist.sh
#
# The binary is built with cargo-zigbuild for x86_64-unknown-linux-gnu.2.17: zig links it against
# glibc 2.17's symbol versions, so it needs nothing newer from the host's glibc, and it stays a
# dynamic glibc executable that dlopens the host's libxenstat (a static musl binary could not).
# Installs what it needs on first use (idempotent): rpm (rpmbuild) from apt,
# cargo-zigbuild with cargo, zig from PyPI's ziglang package into a venv.
#
# Environment:
#   XE_DIST_STATE   where the zig venv lives (default /var/tmp/xen_exporter-dist)
#   CARGO_TARGET_DIR  as for cargo; the artefacts go to <target dir>/dist
set -euo pipefail
cd "$(dirname "$0")/.."

# Versions of the build tools, pinned so a release is built the same way every time.
zigbuild_version=0.24.1
ziglang_version=0.17.1
triple=x86_64-unknown-linux-gnu
glibc=2.17
state=${XE_DIST_STATE:-/var/tmp/xen_exporter-dist}
target_dir=${CARGO_TARGET_DIR:-$(pwd)/target}
dist=$target_dir/dist
say() { printf 'dist: %s\n' "$*"; }
started=$(date +%s)

# ---- tools ----
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for package in rpm python3-venv binutils; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(cargo-zigbuild --version 2>/dev/null | awk '{print $2}')" != "$zigbuild_version" ]; then
  say "installing cargo-zigbuild $zigbuild_version"
  cargo install --locked --quiet "cargo-zigbuild@$zigbuild_version"
fi
venv=$state/venv
if [ "$("$venv/bin/python3" -m ziglang version 2>/dev/null)" != "$ziglang_version" ]; then
  say "installing zig $ziglang_version (PyPI ziglang) into $venv"
  mkdir -p "$state"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ziglang_version"
fi
# The host triple is the target: rustup has its standard library already; say so if not.
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"

# ---- the binary ----
# cargo-zigbuild runs `python3 -m ziglang`: the venv's python3 first on PATH is the one it finds.
say "cargo zigbuild --release --target $triple.$glibc"
PATH="$venv/bin:$PATH" cargo zigbuild --release --locked --quiet \
  --target "$triple.$glibc" --bin xen_exporter
binary=$target_dir/$triple/release/xen_exporter
version=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "xen_exporter"))')
say "xen_exporter $version: $(du -h "$binary" | cut -f1) ($("$binary" --version 2>/dev/null || echo '?'))"
# Timestamps of every archive member: the last commit's, so the same tree packs the same way.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

rm -rf "$dist"
mkdir -p "$dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- what every package holds, by role ----
# The installed configuration is the embedded default (config/default.yml) under its own
# header: a packaged service behaves as the bare binary does until the operator edits it.
# installed_config DOCS: the file, pointing at the docs in DOCS.
installed_config() {
  cat <<EOF
# /etc/xen_exporter/xen_exporter.yml: the configuration the packaged service runs with (the unit
# passes --config.file). As installed it is the embedded default configuration. After editing:
#   xen_exporter --config.check --config.file=/etc/xen_exporter/xen_exporter.yml
#   systemctl reload xen_exporter
# Every key: $1/CONFIGURATION.md; examples in $1/examples/.
EOF
  # Drop the default's own opening comment (it speaks of being embedded), keep the rest as is.
  awk 'started || !/^#/ { started = 1; print }' config/default.yml
}
# stage ROOT UNIT_DIR UNIT DOCS: the file tree of a package under ROOT.
stage() {
  local root=$1 unit_dir=$2 unit=$3 doc=$1$4
  install -D -m 0755 "$binary" "$root/usr/bin/xen_exporter"
  install -D -m 0644 "$unit" "$root$unit_dir/xen_exporter.service"
  install -d -m 0755 "$root/etc/xen_exporter"
  installed_config "$4" >"$root/etc/xen_exporter/xen_exporter.yml"
  chmod 0644 "$root/etc/xen_exporter/xen_exporter.yml"
  install -d -m 0755 "$root/usr/share/xen_exporter/dashboards" "$root/usr/share/xen_exporter/alerts"
  install -m 0644 dashboards/*.json "$root/usr/share/xen_exporter/dashboards/"
  install -m 0644 alerts/*.yml "$root/usr/share/xen_exporter/alerts/"
  install -d -m 0755 "$doc/examples"
  install -m 0644 README.md CHANGELOG.md LICENSE docs/deployment.md docs/CONFIGURATION.md \
    docs/METRICS.md "$doc/"
  install -m 0644 examples/xen_exporter.yml examples/web-config.yml "$doc/examples/"
}
ls dashboards/*.json alerts/*.yml >/dev/null

# ---- tarball: unpack anywhere ----
name=xen_exporter-$version-linux-amd64
tree=$work/$name
install -D -m 0755 "$binary" "$tree/xen_exporter"
installed_config docs >"$tree/xen_exporter.yml"
install -D -m 0644 contrib/systemd/xen_exporter.service "$tree/systemd/xen_exporter.service"
install -D -m 0644 contrib/systemd/el7/xen_exporter.service "$tree/systemd/el7/xen_exporter.service"
install -d "$tree/dashboards" "$tree/alerts" "$tree/docs" "$tree/examples"
install -m 0644 dashboards/*.json "$tree/dashboards/"
install -m 0644 alerts/*.yml "$tree/alerts/"
install -m 0644 docs/deployment.md docs/CONFIGURATION.md docs/METRICS.md "$tree/docs/"
install -m 0644 examples/xen_exporter.yml examples/web-config.yml "$tree/examples/"
install -m 0644 README.md CHANGELOG.md LICENSE "$tree/"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$work" -czf "$dist/$name.tar.gz" "$name"
say "$name.tar.gz"

# ---- .deb: dpkg-deb on a staged tree; maintainer scripts in packaging/deb ----
# Debian package names take no underscore: the package is xen-exporter, all else xen_exporter.
deb_root=$work/deb
stage "$deb_root" /lib/systemd/system contrib/systemd/xen_exporter.service /usr/share/doc/xen-exporter
install -m 0644 packaging/deb/copyright "$deb_root/usr/share/doc/xen-exporter/copyright"
install -d -m 0755 "$deb_root/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$script" "$deb_root/DEBIAN/$script"
done
echo /etc/xen_exporter/xen_exporter.yml >"$deb_root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
sed -e "s/@VERSION@/$version-1/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  packaging/deb/control >"$deb_root/DEBIAN/control"
(cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
find "$deb_root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$dist/xen-exporter_${version}-1_amd64.deb" >/dev/null
say "xen-exporter_${version}-1_amd64.deb"

# ---- .rpm: rpmbuild packs a staged tree with the spec's file list and scriptlets ----
rpm_stage=$work/rpm-stage
stage "$rpm_stage" /usr/lib/systemd/system contrib/systemd/el7/xen_exporter.service /usr/share/doc/xen_exporter
rpmbuild -bb --quiet \
  --define "_topdir $work/rpmbuild" \
  --define "_rpmdir $work/rpms" \
  --define "xe_version $version" \
  --define "xe_stage $rpm_stage" \
  packaging/rpm/xen_exporter.spec >"$work/rpmbuild.log" 2>&1 || {
  cat "$work/rpmbuild.log" >&2
  exit 1
}
cp "$work/rpms/x86_64/xen_exporter-$version-1.x86_64.rpm" "$dist/"
say "xen_exporter-$version-1.x86_64.rpm"

(cd "$dist" && sha256sum -- * >SHA256SUMS)
say "done in $(($(date +%s) - started)) s:"
(cd "$dist" && ls -l -- *)
