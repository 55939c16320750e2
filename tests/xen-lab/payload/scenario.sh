#!/bin/bash
# Lab scenario, run in Dom0 by /sbin/xenlab-init (cwd /lab). $1 = output dir.
# One boot does every check: DomU workload (64 parallel O_DIRECT writers, sampled
# while they run), quiet-moment snapshot (exporter scrape + xentop + xl + blkback
# sysfs + netback debugfs + the backing loop device's stat), idle scrapes, destroy, re-create.
# The DomU's vif is on an Open vSwitch bridge, as on XCP-ng: no Linux bridge in Dom0.
OUT=${1:-/lab/out}; mkdir -p "$OUT"
[ -f /lab/env.sh ] && . /lab/env.sh
: "${DOMU_VCPUS:=2}" "${DOMU_MEM:=128}" "${DOMU_DISK_MB:=256}" "${DOMU_IO_MB:=256}" "${DOMU_IO_JOBS:=64}"
# the DomU's writers keep the ring full (first boot only) until Dom0 has taken LOAD_HOLD_SCRAPES
# scrapes of the load (enough for XenVbdSaturated's duty cycle: compare.py makes the interval
# between two scrapes one rule minute), at most DOMU_IO_HOLD_S seconds
: "${DOMU_IO_HOLD_S:=300}" "${LOAD_HOLD_SCRAPES:=45}"
# while the DomU's writers run: the loop device's stat read every ~0.1 s, the exporter scraped
# every LOAD_SCRAPE_EVERY reads, at most LOAD_SAMPLES scrapes; the sampling ends after 30 reads
# in a row without a request in flight
: "${LOAD_SCRAPE_EVERY:=2}" "${LOAD_SAMPLES:=200}"
: "${BULK_KB:=4096}" "${DOMU_WAIT:=600}" "${LISTEN:=127.0.0.1:9417}"
# the DomU's disk: a loop device behind a dm-delay target adding DISK_DELAY_MS to every request,
# so that its 64 writers keep the ring full for every pass, whatever the host's speed (over a
# bare loop device only the first pass is slow: its rewrites land in Dom0's page cache)
: "${DISK_DELAY_MS:=100}"
BR=xenbr0
EXPORTER=/lab/bin/xen_exporter
up() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "$(up) $*" | tee -a "$OUT/timings.txt"; }
# cap FILE CMD: output of CMD (through bash) into $OUT/FILE
# every step is bounded: a hung tool must not cost the whole boot
cap() { local f=$1; shift; timeout -k 5 "${STEP_TIMEOUT:-30}" bash -c "$*" < /dev/null > "$OUT/$f" 2>&1; echo "rc=$?" >> "$OUT/$f.rc"; mark "  $f"; }
scrape() { mark "  scrape $1"; curl -sS --max-time 20 "http://$LISTEN/metrics" > "$OUT/$1" 2>"$OUT/$1.err" || echo "scrape failed" >> "$OUT/$1.err"; }
stats() { for d in /sys/bus/xen-backend/devices/vbd-*; do [ -d "$d/statistics" ] || continue; for f in "$d"/statistics/*; do echo "$(basename "$d") $(basename "$f") $(cat "$f")"; done; done; }
debugfs() { for f in /sys/kernel/debug/xen-netback/*/io_ring_q*; do echo "== $f"; cat "$f"; done; }
export -f stats debugfs

mark "scenario start"
modprobe -a xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop openvswitch dm-delay 2>&1
mount -t debugfs none /sys/kernel/debug 2>/dev/null
export XENCONSOLED_ARGS="--log=guest"
/etc/init.d/xen start > "$OUT/xen-start.txt" 2>&1
mark "xen daemons up"
cap versions.txt 'xl info | grep -E "^xen_(major|minor|extra)|^release"; ls /usr/lib/x86_64-linux-gnu/libxenstat* /usr/lib/libxenstat* 2>/dev/null; xentop -h 2>&1 | head -40'

# Open vSwitch without systemd: its database, then the switch daemon, then the bridge.
mkdir -p /var/run/openvswitch /var/log/openvswitch /etc/openvswitch
rm -f /etc/openvswitch/conf.db
ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote=punix:/var/run/openvswitch/db.sock --pidfile --detach \
  --log-file=/var/log/openvswitch/ovsdb-server.log /etc/openvswitch/conf.db
ovs-vsctl --no-wait init
ovs-vswitchd --pidfile --detach --log-file=/var/log/openvswitch/ovs-vswitchd.log
ovs-vsctl add-br "$BR" && ip addr add 10.99.0.1/24 dev "$BR" && ip link set "$BR" up
cap ovs.txt 'ovs-vsctl show; ls -d /sys/class/net/*/bridge 2>&1'
mark "open vswitch up"
truncate -s "${DOMU_DISK_MB}M" /var/lib/xen/domu-disk.img
LOOP=$(losetup -f --show /var/lib/xen/domu-disk.img)
# the slow device: no udev here, so its node is /dev/<dm-N> (devtmpfs), found through sysfs
dmsetup create --noudevsync xenlab-slow \
  --table "0 $(blockdev --getsz "$LOOP") delay $LOOP 0 $DISK_DELAY_MS" > "$OUT/dmsetup.txt" 2>&1
BACKING=$LOOP
for b in /sys/block/dm-*; do
  [ "$(cat "$b/dm/name" 2>/dev/null)" = xenlab-slow ] && BACKING=/dev/$(basename "$b")
done
[ "$BACKING" = "$LOOP" ] && mark "WARNING: no dm-delay device, the DomU's disk is $LOOP"
LOOPN=$(basename "$BACKING")   # the backing device whose stat the exporter must equal
echo "$LOOPN $(cat /sys/block/$LOOPN/dev)" > "$OUT/backing-device.txt"
cap dm-table.txt "dmsetup table; ls -l $BACKING; cat /sys/block/$LOOPN/queue/nr_requests 2>&1"
cat > /lab/domu.cfg <<CFG
name    = "labdomu"
type    = "pv"
kernel  = "/boot/vmlinuz-$(uname -r)"
ramdisk = "/lab/domu-initrd.gz"
extra   = "console=hvc0 loglevel=4 xenlab_io_mb=$DOMU_IO_MB xenlab_io_jobs=$DOMU_IO_JOBS xenlab_bulk_kb=$BULK_KB xenlab_io_hold_s=$DOMU_IO_HOLD_S"
memory  = $DOMU_MEM
vcpus   = $DOMU_VCPUS
disk    = [ 'phy:$BACKING,xvda,w' ]
vif     = [ 'mac=00:16:3e:0a:63:02,bridge=$BR,script=vif-openvswitch' ]
on_crash = "preserve"
CFG

if [ -x "$EXPORTER" ]; then
  "$EXPORTER" --web.listen-address="$LISTEN" --xen.source=libxenstat \
    --path.sysfs=/sys --path.procfs=/proc --path.debugfs=/sys/kernel/debug --log.level=debug \
    > "$OUT/exporter.log" 2>&1 &
  EXPID=$!
  for i in $(seq 1 100); do curl -s -o /dev/null "http://$LISTEN/metrics" && break; sleep 0.2; done
  mark "exporter up (pid $EXPID)"
  scrape metrics-dom0-only.txt
else
  echo "no exporter binary in payload" > "$OUT/exporter.log"
fi

# guest -> Dom0 bulk sink (each connection's bytes discarded)
# (busybox nc closes the connection at EOF on its stdin: feed it one that stays open)
# (its fds must not hold the init's console pipe open after the scenario ends)
( while true; do sleep 600 | busybox nc -l -p 5001 || sleep 0.2; done ) < /dev/null > /dev/null 2>&1 &
SINK=$!

start_domu() {  # waits for the DomU's "io-done" line on its console
  rm -f /var/log/xen/console/guest-labdomu.log
  xl create /lab/domu.cfg > "$OUT/xl-create-$1.txt" 2>&1
  for i in $(seq 1 "$DOMU_WAIT"); do
    grep -q "DOMU: io-done" /var/log/xen/console/guest-labdomu.log 2>/dev/null && return 0
    xl list labdomu >/dev/null 2>&1 || return 1
    sleep 1
  done
  return 1
}

# The load: while the DomU's writers run, the loop device's stat (load-stat.txt: uptime, then
# its fields) and, about every LOAD_SCRAPE_EVERY reads, the exporter's scrape (load/). A fork
# costs a lot in a PV Dom0 under TCG and starved the hotplug script (`block add` timed out):
# until the writers start and between scrapes only bash builtins run (read -t on a pipe that
# never speaks is the sleep).
load_sampler() {
  mkdir -p "$OUT/load"
  local k=0 n=0 stat now quiet=0 nap
  exec {nap}<> <(:)
  while read -r stat < "/sys/block/$LOOPN/stat"; do
    set -- $stat
    [ "${5:-0}" -gt 0 ] && break      # writes completed: the DomU's disk phase began
    read -t 0.5 -u "$nap" || true
  done
  while [ "$k" -lt "$LOAD_SAMPLES" ] && [ "$quiet" -lt 30 ]; do
    read -r now _ < /proc/uptime
    read -r stat < "/sys/block/$LOOPN/stat"
    echo "$now $stat" >> "$OUT/load-stat.txt"
    set -- $stat
    if [ "${9:-0}" -eq 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    n=$((n + 1))
    if [ $((n % LOAD_SCRAPE_EVERY)) -eq 1 ] && [ -x "$EXPORTER" ]; then
      { echo "# uptime $now"; curl -sS --max-time 10 "http://$LISTEN/metrics"; } \
        > "$OUT/load/metrics-$(printf %03d "$k").txt" 2>&1
      k=$((k + 1))
      # enough load scrapes: the DomU's poller connects here and its writers stop after their pass
      [ "$k" -eq "$LOAD_HOLD_SCRAPES" ] && { timeout 300 busybox nc -l -p 5002 < /dev/null > /dev/null 2>&1 & }
    fi
    read -t 0.1 -u "$nap" || true
  done
}

mark "domu create #1"
load_sampler & SAMPLER=$!
start_domu 1 || mark "WARNING: DomU #1 did not finish its workload"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
mark "load samples: $(ls "$OUT/load" 2>/dev/null | wc -l) scrapes, $(wc -l < "$OUT/load-stat.txt" 2>/dev/null) stat reads"
cp /var/log/xen/console/guest-labdomu.log "$OUT/domu-console-1.txt" 2>/dev/null
mark "domu #1 io-done"
kill "$SINK" 2>/dev/null  # its sleep/nc children exit with the sink's next connection or the power-off
sleep 2   # quiet: the guest only sleeps now (IPv6 off, no pings)

# ---- the quiet moment: every view back to back ----
mark "snapshot start"
cap snap-proc-net-dev-before.txt 'cat /proc/net/dev'
cap snap-sysfs-before.txt stats
cap snap-blockstat-before.txt "cat /sys/block/$LOOPN/stat"
# CPU time keeps running between two views; xentop on both sides of the scrape brackets it.
cap snap-xentop-before.txt 'xentop -b -i 1 -f -x -n -v'
[ -x "$EXPORTER" ] && scrape snap-metrics.txt
cap snap-xentop.txt 'xentop -b -i 1 -f -x -n -v'
cap snap-blockstat.txt "cat /sys/block/$LOOPN/stat"
cap snap-xl-list.txt 'xl list'
cap snap-sysfs.txt stats
cap snap-debugfs.txt debugfs
cap snap-proc-net-dev.txt 'cat /proc/net/dev'
mark "snapshot end"
# how long xentop takes for one look at the host, next to the exporter's collection time
cap xentop-time.txt 'TIMEFORMAT=%R; for i in 1 2 3; do time xentop -b -i 1 -f -x -n -v > /dev/null; done'
if [ -x "$EXPORTER" ]; then
  for i in 1 2 3; do scrape timing-metrics-$i.txt; done
  # the guest idle: the saturation rule must stay silent over these
  mkdir -p "$OUT/idle"
  for i in $(seq 1 40); do
    { echo "# uptime $(cut -d' ' -f1 /proc/uptime)"; curl -sS --max-time 10 "http://$LISTEN/metrics"; } \
      > "$OUT/idle/metrics-$(printf %03d "$i").txt" 2>&1
    sleep 0.5
  done
  mark "idle scrapes done"
fi
# ---- vbd3: a helper plays tapdisk3 for a second disk of the DomU (xvdb) ----
# Both suites run it: the exporter finds the disk in sysfs either way; only Xen >= 4.19's
# libxenstat (trixie) reads vbd3 stats, so bookworm's xentop shows nothing for it.
vbd3_phase() {
  local domid pid i
  domid=$(xl domid labdomu 2>/dev/null) || { mark "vbd3: no labdomu"; return; }
  python3 /lab/fake-tapdisk3.py --domid "$domid" --devid 51728 --state "$OUT/vbd3-helper.txt" \
    < /dev/null > /dev/null 2> "$OUT/vbd3-helper.log" &
  pid=$!
  for i in $(seq 1 120); do grep -qx ready "$OUT/vbd3-helper.txt" 2>/dev/null && break; sleep 0.5; done
  mark "vbd3: helper $pid $(tr '\n' ' ' < "$OUT/vbd3-helper.txt" 2>/dev/null)"
  sleep 2
  [ -x "$EXPORTER" ] && scrape vbd3-metrics-moving.txt   # while the counters move
  sleep 2
  kill -USR1 "$pid"
  for i in $(seq 1 60); do grep -qx frozen "$OUT/vbd3-helper.txt" 2>/dev/null && break; sleep 0.5; done
  mark "vbd3: counters frozen"
  cap vbd3-xentop.txt 'xentop -b -i 1 -f -x -n -v'
  [ -x "$EXPORTER" ] && scrape vbd3-metrics.txt
  cap vbd3-xenstore.txt "xenstore-ls -f /local/domain/0/backend/vbd3; ls /sys/bus/xen-backend/devices; ls -lR /dev/shm"
  kill "$pid"; wait "$pid" 2>/dev/null
  [ -x "$EXPORTER" ] && scrape vbd3-metrics-after.txt    # the disk is gone
  mark "vbd3: helper stopped"
}
vbd3_phase

cap xl-list-long.txt 'xl list -l'
cap xenstore-backend.txt 'xenstore-ls -f /local/domain/0/backend'

DOMID1=$(xl domid labdomu)
echo "$DOMID1" > "$OUT/domid-1.txt"
timeout 60 xl destroy labdomu > "$OUT/xl-destroy.txt" 2>&1
sleep 1
[ -x "$EXPORTER" ] && scrape metrics-after-destroy.txt
cap xl-list-after-destroy.txt 'xl list'
mark "domu destroyed"

sed -i 's/xenlab_io_hold_s=[0-9]*/xenlab_io_hold_s=0/' /lab/domu.cfg  # the re-created DomU: one pass
mark "domu create #2"
start_domu 2 || mark "WARNING: DomU #2 did not finish its workload"
xl domid labdomu > "$OUT/domid-2.txt"
[ -x "$EXPORTER" ] && scrape metrics-recreated.txt
cap xentop-recreated.txt 'xentop -b -i 1 -f -x -n -v'
mark "domu #2 up"
xl destroy labdomu >/dev/null 2>&1
[ -n "${EXPID:-}" ] && kill "$EXPID" 2>/dev/null
cap dmesg.txt dmesg
tail -n 40 "$OUT/exporter.log"
mark "scenario end"
