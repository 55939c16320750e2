#!/bin/bash
#! Xen end-to-end lab: boot Xen + Debian Dom0 under qemu, run the exporter built
#! from this checkout next to xentop, compare on the host. One boot per suite.
# usage: tests/xen-lab/run.sh [--suite bookworm|trixie] [--out DIR]
# env:   EXPORTER=path (skip the cargo build)  LAB_PROFILE=release|debug
#        LAB_CACHE=/var/cache/xen-exporter-lab  XE_REQUIRE_PRIVILEGED=1 (skip = failure)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--suite bookworm|trixie] [--out DIR]" >&2; exit 2 ;;
  esac
done
export SUITE=${SUITE:-bookworm}
. "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot)"
command -v apt-get >/dev/null || skip "not a Debian host (apt-get missing)"
OUT=${OUT:-$LAB_CACHE/runs/$SUITE-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
T=$(date +%s)
lap() { local n; n=$(date +%s); echo "$1 $((n - T))s" >> "$OUT/phases.txt"; phase "$1 done in $((n - T))s"; T=$n; }

"$HERE/deps.sh" > "$OUT/deps.log" 2>&1 || { tail -n 20 "$OUT/deps.log"; skip "cannot install qemu/debootstrap (see $OUT/deps.log)"; }
lap deps
"$HERE/build-image.sh"
lap image

if [ -z "${EXPORTER:-}" ]; then
  # built here (bookworm glibc 2.36): the same dynamic binary runs on bookworm and trixie
  PROFILE=${LAB_PROFILE:-release}
  (cd "$REPO" && cargo build --bin xen_exporter $([ "$PROFILE" = release ] && echo --release))
  EXPORTER=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE/xen_exporter
fi
[ -x "$EXPORTER" ] || { echo "exporter binary $EXPORTER missing" >&2; exit 1; }
lap exporter-build

QEMU_BIN=$(command -v qemu-system-x86_64 || echo "$QEMU_DIR/usr/bin/qemu-system-x86_64")
QEMU_L=()
for d in "$QEMU_DIR/usr/share/qemu" /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do [ -d "$d" ] && QEMU_L+=(-L "$d"); done
W=$(mktemp -d "$CACHE_DIR/run.XXXXXX")
QPID=
cleanup() { if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/payload/bin"
cp -a "$HERE/payload/." "$W/payload/"
# the DomU's /init from this checkout, not the one baked into the cached initramfs
mkdir "$W/domu"
(cd "$W/domu" && zcat "$CACHE_DIR/domu-initrd.gz" | cpio -id --quiet)
install -m 0755 "$HERE/guest/domu-init" "$W/domu/init"
(cd "$W/domu" && find . | cpio -o -H newc --quiet) | gzip -1 > "$W/payload/domu-initrd.gz"
cp "$EXPORTER" "$W/payload/bin/xen_exporter"
: > "$W/payload/env.sh"
tar -cf "$W/payload.tar" -C "$W/payload" .
truncate -s 256M "$W/out.img"

BOOT=$CACHE_DIR/boot
XEN_ARGS="console=com1 com1=115200,8n1 console_timestamps=boot loglvl=all guest_loglvl=all dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=$DOM0_VCPUS"
DOM0_ARGS="root=/dev/vda rw console=hvc0 earlyprintk=xen init=/sbin/xenlab-init"
ACCEL=$QEMU_ACCEL; [ "$ACCEL" = tcg ] && ACCEL="tcg,thread=multi,tb-size=512"
rm -f "$OUT/serial.log"; mkdir -p "$OUT/result"
# multiboot: module command lines are comma-separated, so commas inside are doubled
timeout --foreground -k 10 "$RUN_TIMEOUT" "$QEMU_BIN" "${QEMU_L[@]}" \
  -machine q35 -accel "$ACCEL" -cpu "$QEMU_CPU" -m "$QEMU_MEM" -smp "$QEMU_SMP" \
  -display none -no-reboot -nic none -monitor none -serial "file:$OUT/serial.log" \
  -kernel "$BOOT/xen.elf" -append "$XEN_ARGS" \
  -initrd "$BOOT/vmlinuz ${DOM0_ARGS//,/,,},$BOOT/initrd-tiny.img" \
  -device virtio-rng-pci \
  -drive "file=$CACHE_DIR/dom0-root.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
  -drive "file=$W/payload.tar,format=raw,if=virtio,readonly=on" \
  -drive "file=$W/out.img,format=raw,if=virtio,cache=unsafe" &
QPID=$!
# Xen sometimes halts instead of powering off: stop qemu once the results are on disk
while kill -0 "$QPID" 2>/dev/null; do
  if grep -aq "XENLAB: results written" "$OUT/serial.log" 2>/dev/null; then
    for _ in $(seq 1 30); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
    kill "$QPID" 2>/dev/null || true; break
  fi
  sleep 1
done
wait "$QPID" || true; QPID=
lap boot
tar -xf "$W/out.img" -C "$OUT/result" 2>/dev/null || { echo "no results from Dom0; see $OUT/serial.log" >&2; exit 1; }
cat "$OUT/result/timings.txt" 2>/dev/null | sed 's/^/  dom0 /'
[ "$(cat "$OUT/result/run.rc" 2>/dev/null)" = "rc=0" ] || { echo "scenario failed: $(cat "$OUT/result/run.rc" 2>/dev/null)" >&2; exit 1; }
python3 "$HERE/compare.py" "$OUT/result"
