#!/bin/bash
#! Build (or reuse) the cached Dom0 image, boot files and DomU initramfs for one suite.
# Cache: $LAB_CACHE/$SUITE/{boot/,dom0-root.img,domu-initrd.gz}, keyed on the
# candidate versions of the Xen and kernel packages (boot/versions.key): when
# the mirror moves to a new version the image is rebuilt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ -n "$MIRROR" ] || { echo "build-image: no Debian mirror in the apt sources; set MIRROR" >&2; exit 2; }
ROOT=$CACHE_DIR/rootfs BOOT=$CACHE_DIR/boot IMG=$CACHE_DIR/dom0-root.img
# openvswitch-switch: the DomU's vif is bridged by Open vSwitch, as on XCP-ng (no Linux bridge)
# dmsetup: the DomU's disk is a dm-delay target over a loop device (storage slower than the guest)
PKGS="xen-utils-$XEN_VER xenstore-utils linux-image-amd64 busybox iproute2 kmod procps e2fsprogs util-linux tar curl openvswitch-switch dmsetup"
mkdir -p "$CACHE_DIR"

# A package added to PKGS goes into the cached tree and the image is made again (a minute),
# instead of a whole rebuild from debootstrap.
if [ -s "$BOOT/versions.key" ] && [ -s "$IMG" ] && [ "${LAB_REBUILD:-0}" != 1 ] \
   && [ "$(cat "$CACHE_DIR/packages.key" 2>/dev/null || true)" != "$PKGS" ] && [ -x "$ROOT/usr/bin/apt-get" ]; then
  phase "packages changed: installing into the cached tree"
  mount -t proc proc "$ROOT/proc"
  trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS >"$CACHE_DIR/apt.log" 2>&1 \
    || { tail -20 "$CACHE_DIR/apt.log"; exit 1; }
  chroot "$ROOT" apt-get clean
  umount "$ROOT/proc"; trap - EXIT
  install -m 0755 "$HERE/guest/dom0-init" "$ROOT/sbin/xenlab-init"
  rm -f "$IMG"; truncate -s 2G "$IMG"
  mkfs.ext4 -q -F -L xenlab-dom0 -E root_owner=0:0 -d "$ROOT" "$IMG"
  echo "$PKGS" > "$CACHE_DIR/packages.key"
fi

if [ -s "$BOOT/versions.key" ] && [ -s "$IMG" ] && [ -s "$CACHE_DIR/domu-initrd.gz" ] \
   && [ "${LAB_REBUILD:-0}" != 1 ] && [ "$(cat "$BOOT/versions.key")" = "$(cat "$BOOT/versions.current" 2>/dev/null || true)" ]; then
  # the cheap check: re-resolve versions inside the existing tree
  if [ -x "$ROOT/usr/bin/apt-get" ] && mount -t proc proc "$ROOT/proc" 2>/dev/null; then
    chroot "$ROOT" apt-get update -qq >/dev/null 2>&1 || true
    NOW=$(chroot "$ROOT" apt-cache policy "xen-hypervisor-$XEN_VER-amd64" linux-image-amd64 | awk '/Candidate/ {print $2}' | tr '\n' ' ')
    umount "$ROOT/proc"
    if [ "$NOW" = "$(cat "$BOOT/versions.key")" ]; then phase "image cached ($NOW)"; exit 0; fi
    phase "versions moved: $(cat "$BOOT/versions.key") -> $NOW; rebuilding"
  else
    phase "image cached (cannot re-check versions)"; exit 0
  fi
fi

phase "debootstrap $SUITE"
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  rm -rf "$ROOT"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE_DIR/debootstrap.log"; exit 1; }
fi
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
# -updates and -security: the hypervisor and the tools must be the same Xen build
cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${SECURITY_MIRROR:-${MIRROR%/debian}/debian-security} $SUITE-security main
SRC
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
# no initramfs-tools: the Dom0 boots from the tiny initrd built below
phase "apt install $PKGS"
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS >"$CACHE_DIR/apt.log" 2>&1 \
  || { tail -20 "$CACHE_DIR/apt.log"; exit 1; }
rm -rf "$ROOT/tmp/xenhv"; mkdir -p "$ROOT/tmp/xenhv"
chroot "$ROOT" sh -c "cd /tmp/xenhv && apt-get download -q xen-hypervisor-$XEN_VER-amd64" >/dev/null
KEY=$(chroot "$ROOT" apt-cache policy "xen-hypervisor-$XEN_VER-amd64" linux-image-amd64 | awk '/Candidate/ {print $2}' | tr '\n' ' ')
chroot "$ROOT" apt-get clean
umount "$ROOT/proc"; trap - EXIT

install -m 0755 "$HERE/guest/dom0-init" "$ROOT/sbin/xenlab-init"
echo "/dev/vda / ext4 defaults 0 1" > "$ROOT/etc/fstab"
echo xenlab-dom0 > "$ROOT/etc/hostname"

rm -rf "$BOOT"; mkdir -p "$BOOT"
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
echo "$KVER" > "$BOOT/kver"
cp "$ROOT/boot/vmlinuz-$KVER" "$BOOT/vmlinuz"
X=$(mktemp -d)
dpkg -x "$ROOT"/tmp/xenhv/xen-hypervisor-*.deb "$X"
# qemu's multiboot loader wants the uncompressed ELF32 image
zcat "$X/boot/xen-$XEN_VER-amd64.gz" > "$BOOT/xen.elf"
rm -rf "$X" "$ROOT/tmp/xenhv"
chroot "$ROOT" dpkg-query -W linux-image-amd64 "xen-utils-$XEN_VER" "libxenstat4.*" 2>/dev/null > "$BOOT/versions" || true

# module from the Dom0 kernel tree, decompressed (trixie ships .ko.xz)
MD=$ROOT/lib/modules/$KVER
modpath() { awk -F: -v n="/$1.ko" '{f=$1; sub(/\.(xz|zst|gz)$/, "", f)} substr(f, length(f)-length(n)+1)==n {print $1; exit}' "$MD/modules.dep"; }
copymod() {  # $1 = path relative to $MD, $2 = destination dir
  local b; b=$(basename "$1")
  case "$1" in
    *.xz) xz -dc "$MD/$1" > "$2/${b%.xz}"; echo "${b%.xz}" ;;
    *.zst) zstd -qdc "$MD/$1" > "$2/${b%.zst}"; echo "${b%.zst}" ;;
    *) cp "$MD/$1" "$2/$b"; echo "$b" ;;
  esac
}

phase "tiny Dom0 initrd"
W=$(mktemp -d)
mkdir -p "$W/bin" "$W/lib/modules"
cp /bin/busybox "$W/bin/busybox"; ln -s busybox "$W/bin/sh"
declare -A seen=(); order=()
add() {
  [ -n "${seen[$1]:-}" ] && return 0; seen[$1]=1
  local d; for d in $(awk -v m="$1:" '$1==m {for (i=2;i<=NF;i++) print $i}' "$MD/modules.dep"); do add "$d"; done
  order+=("$1")
}
for name in crc32c_generic virtio_pci virtio_blk ext4; do
  p=$(modpath "$name"); [ -n "$p" ] && add "$p"   # absent = built in (trixie: virtio_pci)
done
: > "$W/modules.list"
for m in "${order[@]}"; do copymod "$m" "$W/lib/modules" >> "$W/modules.list"; done
install -m 0755 "$HERE/guest/dom0-tiny-init" "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet) | gzip -9 > "$BOOT/initrd-tiny.img"
rm -rf "$W"

phase "DomU initramfs"
W=$(mktemp -d)
mkdir -p "$W"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$W/bin/busybox"; ln -s busybox "$W/bin/sh"
for name in xen-blkfront xen-netfront; do copymod "$(modpath "$name")" "$W/lib/modules" >/dev/null; done
install -m 0755 "$HERE/guest/domu-init" "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet) | gzip -9 > "$CACHE_DIR/domu-initrd.gz"
rm -rf "$W"

phase "ext4 image"
rm -f "$IMG"; truncate -s 2G "$IMG"
mkfs.ext4 -q -F -L xenlab-dom0 -E root_owner=0:0 -d "$ROOT" "$IMG"
echo "$KEY" > "$BOOT/versions.key"; cp "$BOOT/versions.key" "$BOOT/versions.current"
echo "$PKGS" > "$CACHE_DIR/packages.key"
phase "image ready: $KEY"
