# shellcheck shell=bash
#! Shared parameters of the Xen lab harness; sourced by every script here. Override via env.
: "${SUITE:=bookworm}"
case "$SUITE" in
  bookworm) : "${XEN_VER:=4.17}" ;;
  trixie)   : "${XEN_VER:=4.20}" ;;
  *) echo "xen-lab: unknown suite $SUITE (bookworm|trixie)" >&2; exit 2 ;;
esac
: "${LAB_CACHE:=/var/cache/xen-exporter-lab}"  # outside the clone: images survive checkouts
CACHE_DIR=$LAB_CACHE/$SUITE
QEMU_DIR=$LAB_CACHE/qemu                        # qemu unpacked with dpkg -x (shared by suites)
# the machine's own Debian mirror (never hard-coded)
mirror_from_sources() {
  local want=$1
  {
    awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /:\/\//) {print $i; break}}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
  } | if [ "$want" = security ]; then grep -m1 security; else grep -v security | grep -m1 debian; fi
}
: "${MIRROR:=$(mirror_from_sources main)}"
: "${SECURITY_MIRROR:=$(mirror_from_sources security)}"
: "${QEMU_MEM:=2048}" "${QEMU_SMP:=2}" "${DOM0_MEM:=768M}" "${DOM0_VCPUS:=2}" "${RUN_TIMEOUT:=900}"
# Xen cannot run under the kvm_pvm flavour of /dev/kvm; TCG needs -cpu qemu64
# (plain -cpu max crashes the PV Dom0 through SMAP)
: "${QEMU_ACCEL:=auto}"
if [ "$QEMU_ACCEL" = auto ]; then
  if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
    QEMU_ACCEL=kvm
  else
    QEMU_ACCEL=tcg
  fi
fi
if [ "$QEMU_ACCEL" = kvm ]; then : "${QEMU_CPU:=host}"; else : "${QEMU_CPU:=qemu64}"; fi

# skip: print SKIP; a skip is a failure when CI demands privileged tests
skip() {
  echo "SKIP xen-lab($SUITE): $*"
  [ "${XE_REQUIRE_PRIVILEGED:-0}" = 1 ] && { echo "FAIL: XE_REQUIRE_PRIVILEGED=1 forbids skipping" >&2; exit 1; }
  exit 0
}
phase() { echo "$(date -u +%T) [$SUITE] $*"; }
