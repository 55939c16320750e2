#!/usr/bin/env python3
"""Plays tapdisk3 (and tapback) for one extra disk of a running DomU, in the lab's Dom0.

A real tapdisk3 serves a `vbd3` backend from user space: tapback writes the backend's keys and
`kthread-pid` (the tapdisk's pid) to xenstore, tapdisk keeps a version-1 `struct stats` (96 bytes,
host order, in a 4096-byte 0600 file of a 0700 directory) at /dev/shm/td3-<pid>/vbd-<domid>-<devid>
updated in place, and the ring indexes in /dev/shm/vbd3-<domid>-<devid>/io_ring (8 bytes of zlib
crc32, then text) at most every 5 s (blktap 3.55 drivers/tapdisk-metrics.c, td-req.c, td-blkif.c;
see the project's research notes). This process does the same with made-up, moving counters: it
is the tapdisk, so `kthread-pid` is its own pid.

No guest driver talks to it: the kernel's xenbus backend bus only needs `frontend` (an existing
node) and `frontend-id` to list the device as /sys/bus/xen-backend/devices/vbd3-<domid>-<devid>;
nothing binds `vbd3`, so no ring is ever mapped. The frontend node is written without a `state`
key, which the guest's xenbus ignores (not XenbusStateInitialising).

Signals: SIGUSR1 freezes the counters and writes them (key=value) to --state; SIGTERM removes
the keys and files and exits. It freezes by itself after --max-updates.
usage: fake-tapdisk3.py --domid D [--devid 51728] --state FILE [--shm /dev/shm] [--every 0.5]
"""
import argparse
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

# struct stats, version 1: u32 version, u32 pad, then 11 u64 (blktap tapdisk-metrics-stats.h)
STATS = struct.Struct("=II11Q")
FIELDS = ("oo_reqs", "read_reqs_submitted", "read_reqs_completed", "read_sectors",
          "read_total_ticks", "write_reqs_submitted", "write_reqs_completed", "write_sectors",
          "write_total_ticks", "io_errors", "flags")
LOW_MEMORY_MODE = 1
PAGE = 4096
MAX_RING_PAGE_ORDER = 3      # tapback's MAX_RING_PAGE_ORDER
RING_ENTRIES = 32            # one ring page (the frontend sets no ring-page-order)
# XAPI's params of a vbd3 backend: /dev/sm/backend/<SR uuid>/<VDI uuid>
SR_UUID = "5f1e3a52-7a0e-4c39-9d4b-0a2e4c1b7d10"
VDI_UUID = "0b6f2c1e-3d4a-4f5b-8c9d-1e2f3a4b5c6d"


def log(msg):
    print(f"{time.monotonic():.2f} fake-tapdisk3[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def xs(*args):
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)


class Tapdisk:
    def __init__(self, a):
        self.a, self.pid = a, os.getpid()
        self.backend = f"/local/domain/0/backend/vbd3/{a.domid}/{a.devid}"
        self.frontend = f"/local/domain/{a.domid}/device/vbd3/{a.devid}"
        self.td_dir = os.path.join(a.shm, f"td3-{self.pid}")
        self.stats_path = os.path.join(self.td_dir, f"vbd-{a.domid}-{a.devid}")
        self.ring_dir = os.path.join(a.shm, f"vbd3-{a.domid}-{a.devid}")
        self.c = dict.fromkeys(FIELDS, 0)
        self.ring = None
        self.ticks = 0
        self.frozen = False
        self.ring_written = 0.0

    def start(self):
        # tapdisk: td_metrics_start (0700 dir), shm_create (O_EXCL, 0600, one page, mmap)
        os.mkdir(self.td_dir, 0o700)
        os.chmod(self.td_dir, 0o700)
        fd = os.open(self.stats_path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, PAGE)
        self.map = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)
        self.publish()
        # td-blkif.c: the vbd3-* directory is made S_IRUSR|S_IWUSR (no search bit)
        os.mkdir(self.ring_dir, 0o600)
        os.chmod(self.ring_dir, 0o600)
        self.write_io_ring()
        # xenopsd's keys and tapback's, in one transaction; state 1 (Initialising) is what
        # the kernel's bus wants to see to list a new device
        xs("xenstore-write", f"{self.frontend}/backend", self.backend,
           f"{self.frontend}/backend-id", "0")
        xs("xenstore-write",
           f"{self.backend}/frontend", self.frontend,
           f"{self.backend}/frontend-id", str(self.a.domid),
           f"{self.backend}/online", "1",
           f"{self.backend}/removable", "0",
           f"{self.backend}/type", "vhd",
           f"{self.backend}/mode", "w",
           f"{self.backend}/dev", "xvdb",
           f"{self.backend}/params", f"/dev/sm/backend/{SR_UUID}/{VDI_UUID}",
           f"{self.backend}/max-ring-page-order", str(MAX_RING_PAGE_ORDER),
           f"{self.backend}/kthread-pid", str(self.pid),
           f"{self.backend}/state", "1")
        dev = f"/sys/bus/xen-backend/devices/vbd3-{self.a.domid}-{self.a.devid}"
        for _ in range(100):
            if os.path.isdir(dev):
                break
            time.sleep(0.1)
        self.sysfs = os.path.isdir(dev)
        log(f"{dev} {'present' if self.sysfs else 'MISSING'}")
        xs("xenstore-write", f"{self.backend}/state", "4")  # tapback: Connected

    def step(self):
        """One moment of made-up traffic: reads of 4 KiB, writes of 8 KiB, one empty barrier
        per tick (submitted, never completed), two reads left in flight, an I/O error every 4th
        tick, low-memory mode from the 4th tick on."""
        c, i = self.c, self.ticks
        c["read_reqs_submitted"] += 5
        c["read_reqs_completed"] = c["read_reqs_submitted"] - 2
        c["read_sectors"] += 5 * 8
        c["read_total_ticks"] += 5 * (150 + 10 * (i % 7))
        c["write_reqs_submitted"] += 4
        c["write_reqs_completed"] += 3
        c["write_sectors"] += 3 * 16
        c["write_total_ticks"] += 3 * (400 + 25 * (i % 5))
        if i % 4 == 3:
            c["io_errors"] += 1
        if i == 3:
            c["flags"] |= LOW_MEMORY_MODE
        self.ticks += 1
        self.publish()
        if time.monotonic() - self.ring_written >= 5:
            self.write_io_ring()

    def publish(self):
        self.map[0:STATS.size] = STATS.pack(1, 0, *(self.c[f] for f in FIELDS))

    def write_io_ring(self):
        # requests the guest has put on the ring: all submitted ones plus 3 not taken yet
        taken = self.c["read_reqs_submitted"] + self.c["write_reqs_submitted"]
        done = self.c["read_reqs_completed"] + self.c["write_reqs_completed"]
        self.ring = dict(nr_ents=RING_ENTRIES, req_prod=taken + 3, req_cons=taken,
                         req_event=taken + 4, rsp_prod=done, rsp_pvt=done, rsp_event=done + 1)
        r = self.ring
        text = (f"nr_ents {r['nr_ents']}\n"
                f"req prod {r['req_prod']} cons {r['req_cons']} event {r['req_event']}\n"
                f"rsp prod {r['rsp_prod']} pvt {r['rsp_pvt']} event {r['rsp_event']}\n").encode()
        tmp = os.path.join(self.ring_dir, "io_ring~")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        os.write(fd, struct.pack("=Q", zlib.crc32(text)) + text)
        os.close(fd)
        os.rename(tmp, os.path.join(self.ring_dir, "io_ring"))
        self.ring_written = time.monotonic()

    def freeze(self):
        if self.frozen:
            return
        self.write_io_ring()
        self.frozen = True
        lines = [f"pid={self.pid}", f"domid={self.a.domid}", f"devid={self.a.devid}",
                 f"sysfs={'yes' if self.sysfs else 'no'}", f"updates={self.ticks}",
                 f"max_ring_page_order={MAX_RING_PAGE_ORDER}", f"sr_uuid={SR_UUID}",
                 f"vdi_uuid={VDI_UUID}"]
        lines += [f"{f}={self.c[f]}" for f in FIELDS]
        lines += [f"ring_{k}={v}" for k, v in self.ring.items()]
        with open(self.a.state + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\nfrozen\n")
        os.rename(self.a.state + ".tmp", self.a.state)
        log(f"frozen after {self.ticks} updates")

    def stop(self):
        subprocess.run(["xenstore-rm", self.backend], stdin=subprocess.DEVNULL)
        subprocess.run(["xenstore-rm", self.frontend], stdin=subprocess.DEVNULL)
        for path in (self.stats_path, os.path.join(self.ring_dir, "io_ring")):
            try:
                os.unlink(path)
            except OSError:
                pass
        for path in (self.td_dir, self.ring_dir):
            try:
                os.rmdir(path)
            except OSError:
                pass
        log("stopped")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--domid", type=int, required=True)
    p.add_argument("--devid", type=int, default=51728)  # 202:16 = xvdb
    p.add_argument("--state", required=True)
    p.add_argument("--shm", default="/dev/shm")
    p.add_argument("--every", type=float, default=0.5)
    p.add_argument("--max-updates", type=int, default=600)
    a = p.parse_args()
    td = Tapdisk(a)
    want = {"freeze": False, "stop": False}
    signal.signal(signal.SIGUSR1, lambda *_: want.update(freeze=True))
    signal.signal(signal.SIGTERM, lambda *_: want.update(stop=True))
    try:
        td.start()
        with open(a.state, "w") as f:
            f.write(f"pid={td.pid}\nsysfs={'yes' if td.sysfs else 'no'}\nready\n")
        while not want["stop"]:
            if want["freeze"] or td.ticks >= a.max_updates:
                td.freeze()
            if not td.frozen:
                td.step()
            time.sleep(a.every)
    finally:
        td.stop()


if __name__ == "__main__":
    main()
