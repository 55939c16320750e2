#!/usr/bin/env bash
# Checks what scripts/dist.sh made in target/dist/, the way a host would meet it:
# 1. the tarball's contents, and that tarball, .deb and .rpm carry the same binary;
# 2. every versioned symbol of that binary: all GLIBC_x.y at most 2.17 (XCP-ng 8 / XenServer 8 /
#    CentOS 7), no other library than glibc's, unversioned references only weak ones;
# 3. the binary on this host: xen_up 0 without Xen, and Debian's real libxenstat loaded through
#    dlopen (--xen.source=libxenstat) failing to init with a logged reason, not a crash;
# 4. the .rpm with rpm itself: file list, config files, scriptlets, requires (glibc symbol
#    versions, rpm features CentOS 7's rpm 4.11 has), then installed with `rpm --root` into an
#    empty root (--nodeps --noscripts), verified and erased;
# 5. the .deb installed with dpkg in a minimal Debian chroot (debootstrap, cached by
#    .ci/debian-rootfs.sh): the installed binary runs the installed unit's ExecStartPre (the
#    configuration check) and ExecStart with the installed configuration, in a network namespace
#    of its own (the default configuration probes hosts on the internet: nothing leaves it),
#    serving /metrics on 127.0.0.1; then purged; then the .rpm installed in the same chroot with
#    its scriptlets (no systemd there: they must succeed anyway) and erased.
#
#   bash scripts/check-dist.sh          # as root (chroot, mounts, network namespace)
set -euo pipefail
cd "$(dirname "$0")/.."

max_glibc=2.17
target_dir=${CARGO_TARGET_DIR:-$(pwd)/target}
dist=$target_dir/dist
started=$(date +%s)
say() { printf 'check-dist: %s\n' "$*"; }
fail() {
  printf 'check-dist: FAIL: %s\n' "$*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root (chroot, mounts, network namespaces)"
for tool in objdump readelf rpm rpmbuild dpkg-deb debootstrap curl ip chroot python3 findmnt; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash scripts/install-deps.sh)"
done

# ---- the artefacts: one of each ----
one() {
  # shellcheck disable=SC2206 # $1 is a glob on purpose
  local found=("$dist"/$1)
  [ "${#found[@]}" -eq 1 ] && [ -f "${found[0]}" ] || fail "expected one $1 in $dist (bash scripts/dist.sh)"
  echo "${found[0]}"
}
tarball=$(one 'xen_exporter-*-linux-amd64.tar.gz')
deb=$(one 'xen-exporter_*_amd64.deb')
rpm_file=$(one 'xen_exporter-*.x86_64.rpm')
name=$(basename "$tarball" .tar.gz)
version=${name#xen_exporter-}
version=${version%-linux-amd64}
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match the artefacts"
say "xen_exporter $version: $(basename "$tarball") $(du -h "$tarball" | cut -f1)," \
  "$(basename "$deb") $(du -h "$deb" | cut -f1), $(basename "$rpm_file") $(du -h "$rpm_file" | cut -f1)"

work=$(mktemp -d)
netns=xe-check-dist-$$
root=$work/chroot
exporter=""
cleanup() {
  if [ -n "$exporter" ]; then kill "$exporter" 2>/dev/null || true; wait "$exporter" 2>/dev/null || true; fi
  ip netns del "$netns" 2>/dev/null || true
  for mount in "$root/sys" "$root/proc"; do
    if mountpoint -q "$mount" 2>/dev/null; then umount "$mount" || umount -l "$mount" || true; fi
  done
  # Never delete through a mount that is still there.
  if [ -d "$root" ] && [ -n "$(findmnt -rn -o TARGET | grep -F "$root/" || true)" ]; then
    echo "check-dist: mounts left under $root; not removing $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# ---- 1. tarball ----
mkdir -p "$work/tar"
tar -C "$work/tar" -xzf "$tarball"
expected_tar=(xen_exporter xen_exporter.yml LICENSE README.md CHANGELOG.md
  systemd/xen_exporter.service systemd/el7/xen_exporter.service
  docs/deployment.md docs/CONFIGURATION.md docs/METRICS.md
  examples/xen_exporter.yml examples/web-config.yml)
for file in "${expected_tar[@]}"; do
  [ -s "$work/tar/$name/$file" ] || fail "tarball: $name/$file missing"
done
dashboards=("$work/tar/$name"/dashboards/*.json)
rule_files=("$work/tar/$name"/alerts/*.yml)
[ -f "${dashboards[0]}" ] && [ -f "${rule_files[0]}" ] || fail "tarball: no dashboards or alerts"
binary=$work/tar/$name/xen_exporter
[ -x "$binary" ] || fail "tarball: xen_exporter is not executable"
for unit in xen_exporter.service el7/xen_exporter.service; do
  cmp -s "contrib/systemd/$unit" "$work/tar/$name/systemd/$unit" ||
    fail "tarball: systemd/$unit differs from contrib/systemd/$unit"
done
cmp -s "$binary" "$target_dir/x86_64-unknown-linux-gnu/release/xen_exporter" ||
  fail "tarball: its binary is not the one cargo zigbuild left in $target_dir (rerun dist.sh)"
say "tarball: ${#expected_tar[@]} files, ${#dashboards[@]} dashboards, ${#rule_files[@]} rule files;" \
  "binary $(du -h "$binary" | cut -f1)"

# ---- 2. symbol versions ----
# versioned_references BINARY: every versioned reference, as `VERSION symbol` (objdump -T's
# version column reads `(GLIBC_2.17)`).
versioned_references() {
  objdump -T "$1" | awk '$0 ~ /\*UND\*/ && $(NF-1) ~ /^\(.*\)$/ {v = $(NF-1); gsub(/[()]/, "", v); print v, $NF}' |
    sort -V
}
# too_new FILE: the references of FILE whose GLIBC_ version is newer than max_glibc.
too_new() {
  awk -v max="$max_glibc" '
    function newer(a, b,   x, y, i) {
      split(a, x, "."); split(b, y, ".")
      for (i = 1; i <= 3; i++) { if (x[i] + 0 > y[i] + 0) return 1; if (x[i] + 0 < y[i] + 0) return 0 }
      return 0
    }
    $1 ~ /^GLIBC_[0-9]/ { v = substr($1, 7); if (newer(v, max)) print }' "$1"
}
# The check must be able to fail: this host's own ls is linked against its glibc (2.34+).
versioned_references /usr/bin/ls >"$work/ls-versioned"
[ -n "$(too_new "$work/ls-versioned")" ] || fail "the symbol check finds nothing newer than $max_glibc in /usr/bin/ls"
objdump -T "$binary" >"$work/symbols"
versioned_references "$binary" >"$work/versioned"
[ -s "$work/versioned" ] || fail "objdump -T found no versioned symbols in $binary"
too_new=$(too_new "$work/versioned")
[ -z "$too_new" ] || fail "symbols newer than GLIBC_$max_glibc: $too_new"
others=$(awk '$1 !~ /^GLIBC_[0-9]/' "$work/versioned")
[ -z "$others" ] || fail "versioned symbols outside glibc (e.g. GCC_, GLIBCXX_): $others"
# A reference without a version binds to whatever the host has; only weak ones may (std looks
# up gettid, statx, getrandom and friends at run time and falls back when they are missing).
unversioned=$(awk '$0 ~ /\*UND\*/ && $(NF-1) !~ /^\(.*\)$/ {print $2 == "w" ? "weak " $NF : "strong " $NF}' "$work/symbols")
if grep -q '^strong' <<<"$unversioned"; then fail "unversioned non-weak references: $unversioned"; fi
needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for library in $needed; do
  case $library in
  libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux-x86-64.so.2) ;;
  *) fail "links $library: only glibc's libraries may be linked (libxenstat is dlopened)" ;;
  esac
done
max_found=$(awk '$1 ~ /^GLIBC_[0-9]/ {print $1}' "$work/versioned" | sort -uV | tail -1)
say "symbols: $(wc -l <"$work/versioned") versioned references, newest $max_found" \
  "($(awk -v m="$max_found" '$1 == m {print $2}' "$work/versioned" | tr '\n' ' ')), none outside glibc;" \
  "weak unversioned: $(awk '{print $2}' <<<"$unversioned" | tr '\n' ' ')"
say "symbols: versions by library: $(readelf -V "$binary" | awk '
  /File: / { for (i = 1; i < NF; i++) if ($i == "File:") file = $(i + 1) }
  /Name: / && file { for (i = 1; i < NF; i++) if ($i == "Name:") versions[file] = versions[file] " " $(i + 1) }
  END { for (file in versions) printf "%s:%s; ", file, versions[file] }')"

# ---- 3. the binary on this host, with and without Debian's libxenstat ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# run_and_scrape LOG PREFIX... -- ARGS...: starts PREFIX... BINARY-ARGS in the background, scrapes
# http://127.0.0.1:PORT/metrics (through PREFIX's network namespace if PREFIX enters one) until
# `want` matches, then stops it by PID. Sets `metrics`.
metrics=""
scrape_until() { # LOG PORT CURL-PREFIX WANT
  local log=$1 port=$2 curl_prefix=$3 want=$4 deadline=$((SECONDS + 60))
  metrics=""
  while [ $SECONDS -lt $deadline ]; do
    if metrics=$($curl_prefix curl --silent --fail --max-time 5 "http://127.0.0.1:$port/metrics") &&
      grep -qE "$want" <<<"$metrics"; then
      return 0
    fi
    kill -0 "$exporter" 2>/dev/null || { cat "$log" >&2; fail "the exporter exited; its log is above"; }
    sleep 0.2
  done
  cat "$log" >&2
  fail "no \"$want\" on 127.0.0.1:$port/metrics within 60 s; its log is above"
}
stop_exporter() {
  kill "$exporter"
  local status=0
  wait "$exporter" || status=$?
  exporter=""
  [ "$status" -eq 0 ] || fail "the exporter exited with status $status on SIGTERM"
}
printf 'probes:\n  targets: []\n' >"$work/no-probes.yml"
# awk reads all of ldconfig's output: exiting at the first match would SIGPIPE ldconfig (pipefail).
libxenstat=$(ldconfig -p | awk '/libxenstat\.so / && !found {print $NF; found = 1}')
[ -n "$libxenstat" ] || fail "Debian's libxenstat is not installed (libxen-dev; bash scripts/install-deps.sh)"
for source in auto libxenstat; do
  port=$(free_port)
  "$binary" --config.file="$work/no-probes.yml" --web.listen-address="127.0.0.1:$port" \
    --xen.source="$source" >"$work/host-$source.log" 2>&1 &
  exporter=$!
  scrape_until "$work/host-$source.log" "$port" "" '^xen_up 0$'
  grep -q "^xen_exporter_build_info{version=\"$version\"" <<<"$metrics" || fail "no build_info for $version"
  stop_exporter
  grep -q 'xenstat_init failed' "$work/host-$source.log" || {
    cat "$work/host-$source.log" >&2
    fail "--xen.source=$source: Debian's libxenstat ($libxenstat) was not loaded and called"
  }
  if grep -qiE 'panicked|segmentation' "$work/host-$source.log"; then cat "$work/host-$source.log" >&2; fail "crash"; fi
  say "host, --xen.source=$source: $libxenstat loaded, xenstat_init failed (no hypervisor) and logged; xen_up 0 served; clean exit"
done

# ---- 4. the .rpm, with rpm ----
rpmq() { rpm -qp "$@" "$rpm_file" 2>/dev/null; }
[ "$(rpmq --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{PAYLOADCOMPRESSOR}')" = "xen_exporter $version 1 x86_64 xz" ] ||
  fail "rpm: name/version/arch/payload: $(rpmq --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{PAYLOADCOMPRESSOR}')"
rpmq -l | sort >"$work/rpm-files"
{
  printf '%s\n' /etc/xen_exporter /etc/xen_exporter/xen_exporter.yml /usr/bin/xen_exporter \
    /usr/lib/systemd/system/xen_exporter.service /usr/share/xen_exporter \
    /usr/share/xen_exporter/alerts /usr/share/xen_exporter/dashboards \
    /usr/share/doc/xen_exporter /usr/share/doc/xen_exporter/examples
  for file in README.md CHANGELOG.md LICENSE deployment.md CONFIGURATION.md METRICS.md \
    examples/xen_exporter.yml examples/web-config.yml; do
    echo "/usr/share/doc/xen_exporter/$file"
  done
  for file in "$work/tar/$name"/dashboards/*.json "$work/tar/$name"/alerts/*.yml; do
    echo "/usr/share/xen_exporter/$(basename "$(dirname "$file")")/$(basename "$file")"
  done
} | sort >"$work/rpm-expected"
diff -u "$work/rpm-expected" "$work/rpm-files" || fail "rpm -qlp: the file list differs from the expected (above)"
# rpm 4.11 checks a package by its SHA1 header and MD5 digests: both must be there.
[ -n "$(rpmq --qf '%{SHA1HEADER}')" ] && [ -n "$(rpmq --qf '%{SIGMD5}')" ] || fail "rpm: no SHA1/MD5 digests for rpm 4.11"
[ "$(rpmq -c)" = /etc/xen_exporter/xen_exporter.yml ] || fail "rpm -qcp: config files: $(rpmq -c)"
# %config(noreplace): rpm's file flag bit 16 (RPMFILE_NOREPLACE) on the configuration file.
rpmq --qf '[%{FILEFLAGS} %{FILENAMES}\n]' | awk '$2 == "/etc/xen_exporter/xen_exporter.yml" && int($1 / 16) % 2 == 1 {ok = 1} END {exit !ok}' ||
  fail "rpm: /etc/xen_exporter/xen_exporter.yml is not %config(noreplace)"

# Maintainer scripts, both packages: systemd only (preset/enable, daemon-reload, stop/restart),
# nothing that adds a repository or fetches anything, and no start outside a running systemd.
check_scripts() { # WHAT FILE
  local what=$1 file=$2
  if grep -nE 'yum-config-manager|yum\.repos\.d|sources\.list|apt-key|rpm --import|curl|wget|gpg' "$file"; then
    fail "$what: the maintainer scripts touch repositories or the network (above)"
  fi
  # Every systemctl/deb-systemd-invoke call that needs a running systemd sits inside an `if`
  # whose condition is the guard (nesting followed by if/fi depth).
  awk -v what="$what" '
    { line = $0; sub(/^[ \t]+/, "", line) }
    line ~ /^if / { depth++; if (!guard && line ~ /\[ -d \/run\/systemd\/system \]/) guard = depth }
    line ~ /(systemctl|deb-systemd-invoke) [^|]*(start|stop|restart|daemon-reload|\$action)/ && !guard {
      print what ": unguarded: " $0; bad = 1 }
    line ~ /(^|[; \t])fi$/ { if (guard == depth) guard = 0; depth-- }
    END { exit bad }' "$file" || fail "$what: systemctl calls outside [ -d /run/systemd/system ]"
}
# The guard check must be able to fail.
# shellcheck disable=SC2016 # a shell script's text, not to expand here
printf 'if [ "$1" = configure ]; then\n  if [ -x /x ]; then :; fi\n  systemctl start xen_exporter.service\nfi\n' >"$work/bad-script"
if (check_scripts self-test "$work/bad-script") 2>/dev/null; then fail "the scriptlet guard check accepted an unguarded start"; fi
rpmq --scripts >"$work/rpm-scripts"
for scriptlet in 'postinstall scriptlet' 'preuninstall scriptlet' 'postuninstall scriptlet'; do
  grep -q "^$scriptlet (using /bin/sh)" "$work/rpm-scripts" || fail "rpm --scripts: no $scriptlet"
done
grep -q 'systemctl preset xen_exporter.service' "$work/rpm-scripts" || fail "rpm: %post does not preset the unit"
check_scripts rpm "$work/rpm-scripts"
rpmq --requires | sort -u >"$work/rpm-requires"
unexpected=$(awk -v max="$max_glibc" -v version="$version" '
  function newer(a, b,   x, y, i) {
    split(a, x, "."); split(b, y, ".")
    for (i = 1; i <= 3; i++) { if (x[i] + 0 > y[i] + 0) return 1; if (x[i] + 0 < y[i] + 0) return 0 }
    return 0
  }
  /^(\/bin\/sh|systemd)$/ { next }
  $0 == "config(xen_exporter) = " version "-1" { next }
  # rpm features CentOS 7 (rpm 4.11) reads; a newer build feature (zstd, rich dependencies)
  # would show here.
  /^rpmlib\((CompressedFileNames|FileDigests|PayloadFilesHavePrefix|PayloadIsXz)\)/ { next }
  /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2)\(/ {
    if (match($0, /GLIBC_[0-9.]+/)) { if (!newer(substr($0, RSTART + 6, RLENGTH - 6), max)) next }
    else next
  }
  { print }' "$work/rpm-requires")
[ -z "$unexpected" ] || fail "rpm -qp --requires: unexpected (a library, a newer glibc or rpm feature): $unexpected"
say "rpm: $(wc -l <"$work/rpm-files") files as expected, %config(noreplace) configuration," \
  "scriptlets systemd-only and guarded, $(wc -l <"$work/rpm-requires") requires all glibc <= $max_glibc," \
  "/bin/sh, systemd and rpm 4.11 features"

# Into an empty root: the files land, verify clean, erase leaves nothing. The database where an
# RPM system keeps it (Debian's rpm defaults to ~/.rpmdb).
rpm_in() { rpm --root "$1" --dbpath /var/lib/rpm "${@:2}"; }
rpm_root=$work/rpm-root
mkdir -p "$rpm_root"
rpm_in "$rpm_root" --initdb
# (Debian's rpm warns on stderr that it is not Debian's package manager: kept for failures.)
rpm_in "$rpm_root" -i --nodeps --noscripts "$rpm_file" 2>"$work/rpm-root.log" || {
  cat "$work/rpm-root.log" >&2
  fail "rpm --root $rpm_root -i --nodeps --noscripts"
}
for file in /usr/bin/xen_exporter /usr/lib/systemd/system/xen_exporter.service /etc/xen_exporter/xen_exporter.yml; do
  [ -s "$rpm_root$file" ] || fail "rpm --root: $file did not land"
done
cmp -s "$binary" "$rpm_root/usr/bin/xen_exporter" || fail "rpm: its binary differs from the tarball's"
cmp -s contrib/systemd/el7/xen_exporter.service "$rpm_root/usr/lib/systemd/system/xen_exporter.service" ||
  fail "rpm: its unit is not contrib/systemd/el7/xen_exporter.service"
verified=$(rpm_in "$rpm_root" -V --nodeps xen_exporter 2>&1) || fail "rpm -V after install: $verified"
landed=$(find "$rpm_root" -path "$rpm_root/var" -prune -o -type f -print | wc -l)
rpm_in "$rpm_root" -e --nodeps --noscripts xen_exporter 2>>"$work/rpm-root.log"
left=$(find "$rpm_root" -path "$rpm_root/var" -prune -o -type f -print)
[ -z "$left" ] || fail "rpm -e left files: $left"
say "rpm --root (empty root, --nodeps --noscripts): $landed files landed, rpm -V clean, binary and unit as built; erase leaves none"

# ---- 5. the .deb in a Debian chroot, run as the unit would run it ----
[ "$(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ')" = "Package: xen-exporter Version: $version-1 Architecture: amd64 " ] ||
  fail "deb control: $(dpkg-deb -f "$deb" Package Version Architecture)"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/xen_exporter/xen_exporter.yml ] ||
  fail "deb: conffiles is not /etc/xen_exporter/xen_exporter.yml"
for script in postinst prerm postrm; do
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$script" >"$work/deb-$script"
  check_scripts "deb $script" "$work/deb-$script"
done
rootfs_tar=$(bash .ci/debian-rootfs.sh bookworm)
mkdir -p "$root"
tar --numeric-owner -C "$root" -xf "$rootfs_tar"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
[ ! -e "$root/run/systemd/system" ] || fail "the chroot looks like a running systemd"
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i in the chroot"; }
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
[ "$(in_root dpkg-query -W -f='${Status} ${Version}' xen-exporter)" = "install ok installed $version-1" ] ||
  fail "dpkg: xen-exporter is not installed"
[ -z "$(in_root dpkg --verify xen-exporter)" ] || fail "dpkg --verify: $(in_root dpkg --verify xen-exporter)"
cmp -s "$binary" "$root/usr/bin/xen_exporter" || fail "deb: its binary differs from the tarball's"
cmp -s contrib/systemd/xen_exporter.service "$root/lib/systemd/system/xen_exporter.service" ||
  fail "deb: its unit is not contrib/systemd/xen_exporter.service"
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
in_root dpkg-query -W -f='${Conffiles}' xen-exporter | grep -q '^ /etc/xen_exporter/xen_exporter.yml ' ||
  fail "dpkg: /etc/xen_exporter/xen_exporter.yml is not a conffile"
enabled=no
if in_root sh -c 'command -v deb-systemd-helper' >/dev/null; then
  [ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/xen_exporter.service")" = /lib/systemd/system/xen_exporter.service ] ||
    fail "postinst did not enable xen_exporter.service (deb-systemd-helper is there)"
  enabled=yes
fi
say "deb: dpkg -i in a bookworm chroot: installed, dpkg --verify clean, conffile registered, enabled: $enabled, not started (no systemd)"

# The unit's own command lines, with XEN_EXPORTER_ARGS (the unit's EnvironmentFile variable)
# moving the listener to 127.0.0.1:PORT, in a network namespace with only loopback.
unit_line() { sed -n "s/^$1=//p" "$root/lib/systemd/system/xen_exporter.service"; }
ip netns add "$netns"
ip -n "$netns" link set lo up
port=$(ip netns exec "$netns" python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
args="--web.listen-address=127.0.0.1:$port"
read -r -a check_command <<<"$(unit_line ExecStartPre | sed "s|\$XEN_EXPORTER_ARGS|$args|")"
read -r -a start_command <<<"$(unit_line ExecStart | sed "s|\$XEN_EXPORTER_ARGS|$args|")"
[ "${start_command[0]}" = /usr/bin/xen_exporter ] && [ "${check_command[1]}" = --config.check ] ||
  fail "unexpected ExecStart/ExecStartPre in the installed unit"
check_output=$(ip netns exec "$netns" chroot "$root" "${check_command[@]}" 2>&1) ||
  fail "ExecStartPre (${check_command[*]}) failed in the chroot: $check_output"
ip netns exec "$netns" chroot "$root" "${start_command[@]}" >"$work/chroot.log" 2>&1 &
exporter=$!
# The installed configuration's probe targets are served (their lookups fail: no network).
scrape_until "$work/chroot.log" "$port" "ip netns exec $netns" 'target="nix"'
grep -q '^xen_up 0$' <<<"$metrics" || fail "chroot: no xen_up 0"
grep -q "^xen_exporter_build_info{version=\"$version\"" <<<"$metrics" || fail "chroot: no build_info for $version"
samples=$(grep -c -v '^#' <<<"$metrics")
stop_exporter
grep -q 'config=/etc/xen_exporter/xen_exporter.yml' "$work/chroot.log" ||
  fail "chroot: the exporter did not say it read /etc/xen_exporter/xen_exporter.yml"
say "deb: the installed unit's ExecStartPre ($check_output) and ExecStart ran in the chroot;" \
  "/metrics on 127.0.0.1:$port: $samples samples, xen_exporter_build_info $version, xen_up 0, the configured probe targets"
in_root dpkg --purge xen-exporter >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge"; }
for file in /usr/bin/xen_exporter /etc/xen_exporter/xen_exporter.yml /etc/systemd/system/multi-user.target.wants/xen_exporter.service; do
  [ ! -e "$root$file" ] && [ ! -L "$root$file" ] || fail "dpkg --purge left $file"
done
say "deb: dpkg --purge removed the files, the configuration and the enable link"

# The .rpm with its scriptlets, in the same chroot: no systemd, so only what is guarded may run.
rpm_in "$root" --initdb
rpm_in "$root" -i --nodeps "$rpm_file" >"$work/rpm-scripts.log" 2>&1 || {
  cat "$work/rpm-scripts.log" >&2
  fail "rpm -i with scriptlets in the chroot"
}
[ -x "$root/usr/bin/xen_exporter" ] || fail "rpm -i with scriptlets: no binary"
rpm_in "$root" -e --nodeps xen_exporter >>"$work/rpm-scripts.log" 2>&1 || {
  cat "$work/rpm-scripts.log" >&2
  fail "rpm -e with scriptlets in the chroot"
}
[ ! -e "$root/usr/bin/xen_exporter" ] || fail "rpm -e left the binary"
say "rpm: installed and erased with its scriptlets in the chroot (no systemd running): both succeed"

say "passed in $(($(date +%s) - started)) s"
