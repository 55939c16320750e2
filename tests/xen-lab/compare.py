#!/usr/bin/env python3
"""Compare the exporter's /metrics with xentop, xl, blkback sysfs and netback
debugfs captured in Dom0 at the same quiet moment; print a table and exit 1 on
any mismatch. usage: compare.py RESULT_DIR"""
import os
import re
import shutil
import sys

SECTOR = 512


def read(d, name):
    try:
        with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> list of (name, labels dict, float)."""
    out = []
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return out


def get(samples, name, **want):
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in want.items())]
    return vals[0] if len(vals) == 1 else (None if not vals else vals)


def parse_xentop(text):
    """xentop -b -i 1 -f -x -n -v -> {name: {...}} (vbds keyed by devno, nets by index)."""
    doms, cur = {}, None
    for line in (text or "").splitlines():
        f = line.split()
        if not f or f[0] == "NAME":
            continue
        if f[0] == "VCPUs(sec):":
            continue
        if f[0].startswith("Net") and "RX:" in f:
            rx, tx = f[f.index("RX:") + 1:f.index("TX:")], f[f.index("TX:") + 1:]
            num = lambda xs: [int(re.sub(r"\D", "", x)) for x in xs[:4]]
            cur["nets"][int(f[0][3:])] = {"rx": num(rx), "tx": num(tx)}
            continue
        if f[0] == "VBD":
            devno = int(f[2])
            # "VBD BlkBack 51712 [ca: 0]  OO: 0  RD: 515  WR: 512  RSECT: 65560  WSECT: 65536"
            cur["vbds"][devno] = {k: int(v) for k, v in re.findall(r"\b(OO|RD|WR|RSECT|WSECT):\s+(\d+)", line)}
            continue
        if len(f) >= 19:
            cur = {"state": f[1], "cpu": float(f[2]), "mem_k": int(f[4]),
                   "maxmem_k": None if f[6] == "no" else int(f[6]), "vcpus": int(f[8]),
                   "nets": {}, "vbds": {}}
            doms[f[0]] = cur
    return doms


def parse_xl_list(text):
    doms = {}
    for line in (text or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6:
            doms[f[0]] = {"id": int(f[1]), "mem_m": int(f[2]), "vcpus": int(f[3])}
    return doms


def parse_sysfs(text):
    """'vbd-<domid>-<devno> <stat> <value>' lines -> {(domid, devno): {stat: value}}."""
    out = {}
    for line in (text or "").splitlines():
        f = line.split()
        if len(f) == 3 and f[0].startswith("vbd-"):
            _, domid, devno = f[0].split("-")
            out.setdefault((int(domid), int(devno)), {})[f[1]] = int(f[2])
    return out


def parse_net_dev(text):
    out = {}
    for line in (text or "").splitlines():
        if ":" not in line:
            continue
        name, rest = line.split(":", 1)
        f = [int(x) for x in rest.split()]
        if len(f) >= 12:
            out[name.strip()] = {"rx": f[0:4], "tx": f[8:12]}  # bytes packets errs drop
    return out


def parse_debugfs(text):
    """netback io_ring_qN text -> {(vif, queue, dir): {entries, req_prod, req_cons, rsp_prod, rsp_pvt}}."""
    out, key, d = {}, None, None
    for line in (text or "").splitlines():
        m = re.match(r"== .*/(vif[0-9.]+)/io_ring_q(\d+)", line)
        if m:
            key = (m.group(1), m.group(2))
            continue
        m = re.match(r"(TX|RX): nr_ents (\d+)", line)
        if m and key:
            d = {"entries": int(m.group(2))}
            out[(key[0], key[1], m.group(1).lower())] = d
            continue
        m = re.match(r"req prod (\d+) \(-?\d+\) cons (\d+)", line)
        if m and d is not None:
            d["req_prod"], d["req_cons"] = int(m.group(1)), int(m.group(2))
            continue
        m = re.match(r"rsp prod (\d+) \(base\) pvt (\d+)", line)
        if m and d is not None:
            d["rsp_prod"], d["rsp_pvt"] = int(m.group(1)), int(m.group(2))
    return out


# /sys/block/<dev>/stat fields (Documentation/block/stat.rst) -> the exporter's backing series
BACKING = (
    ("xen_vbd_backing_reads_completed_total", 0, 1),
    ("xen_vbd_backing_read_time_seconds_total", 3, 1e-3),
    ("xen_vbd_backing_writes_completed_total", 4, 1),
    ("xen_vbd_backing_write_time_seconds_total", 7, 1e-3),
    ("xen_vbd_backing_in_flight_requests", 8, 1),
    ("xen_vbd_backing_io_time_seconds_total", 9, 1e-3),
    ("xen_vbd_backing_queue_time_seconds_total", 10, 1e-3),
)
# during the load, the backing device's queue depth must reach this share of the ring's capacity
# at least once in the scrapes: its requests in flight at a scrape, or its mean depth between two
# scrapes (d queue_time / dt, what the rule reads). The lab's disk is a dm-delay target, which
# (like dm-crypt and dm-thin: `accounts_remapped_io`) counts a request in flight only once it
# leaves the target, after the delay, while its time is counted from its arrival: the stat read
# every 0.1 s shows 0 in flight most of the time while the mean depth is ~60 (Little's law: ~570
# writes a second x ~105 ms).
LOAD_MIN_SHARE = 0.75


def parse_stat(text):
    f = (text or "").split()
    return [int(x) for x in f] if len(f) >= 11 else None


def load_rows(t, d, name, dev):
    """Scrapes taken while the DomU's writers ran: in flight near the ring's capacity."""
    load = os.path.join(d, "load")
    files = sorted(os.listdir(load)) if os.path.isdir(load) else []
    lab = dict(domain=name, device=dev)
    peak, capacity, oo, depth, samples, last = 0.0, None, [], 0.0, 0, None
    for f in files:
        text = read(load, f) or ""
        m = parse_metrics(text)
        up = re.match(r"# uptime ([0-9.]+)", text)
        flight = get(m, "xen_vbd_backing_in_flight_requests", **lab)
        if not isinstance(flight, float) or not up:
            continue
        samples += 1
        peak = max(peak, flight)
        cap = get(m, "xen_vbd_ring_capacity_requests", **lab)
        capacity = cap if isinstance(cap, float) else capacity
        o = get(m, "xen_vbd_out_of_requests_total", **lab)
        if isinstance(o, float):
            oo.append(o)
        q = get(m, "xen_vbd_backing_queue_time_seconds_total", **lab)
        now = float(up.group(1))
        if last and isinstance(q, float) and now > last[0]:
            depth = max(depth, (q - last[1]) / (now - last[0]))
        last = (now, q) if isinstance(q, float) else last
    direct = [parse_stat(line.split(None, 1)[1]) for line in (read(d, "load-stat.txt") or "").splitlines()
              if len(line.split(None, 1)) == 2]
    direct_peak = max((s[8] for s in direct if s), default=None)
    t.row(f"load: {name} {dev} scrapes with backing series", samples, ok=samples > 0)
    t.row(f"load: {name} {dev} peak queue depth (exporter: in flight / d queue_time dt) vs ring capacity",
          f"{peak:g} / {depth:.1f}", "",
          f"capacity {capacity:g}, backing stat peak in flight {direct_peak}" if capacity else None,
          ok=bool(capacity) and max(peak, depth) >= LOAD_MIN_SHARE * capacity)
    t.row(f"load: {name} {dev} VBD_OO during the load", (oo[-1] - oo[0]) if oo else None, "", "", ok=True)


def vbd_name(devno):
    """Xen virtual device number -> xvdX (major 202, 16 minors per disk)."""
    if devno >> 8 == 202:
        return "xvd" + chr(ord("a") + ((devno & 0xFF) >> 4))
    if devno & (1 << 28):
        return "xvd" + chr(ord("a") + ((devno & ~(1 << 28)) >> 8))
    return str(devno)


class Table:
    def __init__(self):
        self.rows, self.failed = [], 0

    def row(self, field, exporter, xentop="", sysfs="", ok=None):
        if ok is None:
            vals = [v for v in (exporter, xentop, sysfs) if v not in ("", None)]
            ok = len(vals) >= 2 and all(v == vals[0] for v in vals)
        self.failed += 0 if ok else 1
        fmt = lambda v: "-" if v in ("", None) else (f"{v:g}" if isinstance(v, float) else str(v))
        verdict = "ok" if ok else "MISMATCH"
        self.rows.append((field, fmt(exporter), fmt(xentop), fmt(sysfs), verdict))

    def print(self):
        head = ("field", "exporter", "xentop", "sysfs/debugfs", "verdict")
        w = [max(len(r[i]) for r in self.rows + [head]) for i in range(5)]
        for r in [head] + self.rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))


def timing(d, t):
    """xentop's own run time for one look at the host, next to the exporter's Xen collection
    (the sum of its parts' durations, probes left out), medians of three."""
    text = (read(d, "xentop-time.txt") or "").split("rc=")[0]
    xentop = sorted(float(x) for x in text.split() if re.fullmatch(r"\d+(\.\d+)?", x))
    ours = []
    for i in (1, 2, 3):
        parts = [v for n, l, v in parse_metrics(read(d, f"timing-metrics-{i}.txt"))
                 if n == "xen_exporter_collector_duration_seconds" and l.get("collector") != "probes"]
        if parts:
            ours.append(sum(parts))
    ours.sort()
    x_med = xentop[len(xentop) // 2] if xentop else None
    o_med = round(ours[len(ours) // 2], 4) if ours else None
    t.row("timing: Xen collection s, exporter (sum of parts) vs xentop -b -i 1", o_med, x_med, "",
          ok=o_med is not None and x_med is not None and o_med <= x_med)


def rule_params(rules):
    """From the rendered rules: the queue-depth share of ring capacity that counts as saturated,
    the duty-cycle window (minutes) and the share of it XenVbdSaturated needs."""
    text = read(os.path.dirname(rules), os.path.basename(rules)) or ""
    queue = re.search(r"backing_queue_depth_per_ring_capacity:ratio_rate5m > bool ([0-9.]+)", text)
    window = re.search(r"avg_over_time\(xen_vbd:saturated:bool5m\[(\d+)m\]\)", text)
    duty = re.search(r"\(xen_vbd:saturated:duty_cycle > ([0-9.]+)\)", text)
    if not (queue and window and duty):
        return None
    return float(queue.group(1)), int(window.group(1)), float(duty.group(1))


def saturated_share(queue, capacity, threshold, lo, hi):
    """Share of [lo, hi] during which the queue depth between two samples (the increase of the
    queue-time counter over the time between them) was above threshold x capacity.
    queue: [(time, queue seconds total)]. Returns (share, saturated time, covered time)."""
    sat = covered = 0.0
    for (t1, q1), (t2, q2) in zip(queue, queue[1:]):
        a, b = max(t1, lo), min(t2, hi)
        if b <= a or t2 <= t1:
            continue
        covered += b - a
        if (q2 - q1) / (t2 - t1) > threshold * capacity:
            sat += b - a
    return (sat / covered if covered else None), sat, covered


def promtool_test(rules, series, expr, eval_min, want):
    """Runs `expr` at eval_min (rule minutes) over `series` ({key: [(rule s, value)]}) against
    the rendered rules; returns (passed, promtool's complaint)."""
    import subprocess
    import tempfile
    from load_series import RULE_GRID_SECONDS, promtool_values
    end = max((p[-1][0] for p in series.values() if p), default=0)
    inputs = "\n".join(f"      - series: '{k}'\n        values: '{promtool_values(p, end)}'"
                       for k, p in series.items())
    test = f"""rule_files: [{rules}]
evaluation_interval: 1m
group_eval_order: [xen.recording, xen.alerts]
tests:
  - interval: {RULE_GRID_SECONDS}s
    input_series:
{inputs}
    promql_expr_test:
      - expr: {expr}
        eval_time: {eval_min}m
        exp_samples:
          - labels: '{{}}'
            value: {want}
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(test)
    run = subprocess.run([shutil.which("promtool"), "test", "rules", f.name], capture_output=True, text=True)
    if run.returncode == 0:
        os.unlink(f.name)
        return True, ""
    return False, f"{f.name}: " + " ".join((run.stdout + run.stderr).split())[-300:]


def saturation_rule(d, t):
    """The rendered per-VBD saturation alert (alerts/xen.yml; XENLAB_RULES=FILE evaluates another
    rendering), evaluated by promtool over the exporter's own scrapes stretched into rule time
    (load_series.py: one factor for the whole phase, the median interval between two scrapes
    becomes one rule minute, rates kept).
    Load: the DomU's writers keep the ring full until Dom0 took LOAD_HOLD_SCRAPES scrapes. The alert must be
    firing, with its condition true (not only held by keep_firing_for), at the end of the last
    saturated interval, and that instant must lie a whole duty-cycle window plus the 5-minute
    rate range after the first load scrape: the window the rule judged holds only real scrapes,
    no empty start. The saturated share of that window in the promtool input must equal the
    share the scrapes measured in lab time (uniform stretch; a step's rounding apart).
    Idle: over the 40 scrapes of the idle guest the alert never fires."""
    from load_series import rule_time_series, scrapes as load_scrapes, stretch
    repo = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    rules = os.environ.get("XENLAB_RULES") or os.path.join(repo, "alerts", "xen.yml")
    params = rule_params(rules)
    labels = 'instance="xen-lab",job="xen_exporter"'
    vbd = 'domain="labdomu",device="xvda"'
    firing = f'ALERTS{{alertname="XenVbdSaturated",alertstate="firing",{vbd}}}'
    for phase in ("load", "idle"):
        taken = load_scrapes(d, phase)
        row = f"rule: XenVbdSaturated over the {phase} scrapes"
        if not shutil.which("promtool") or len(taken) < 2 or not params:
            t.row(row, None, "", f"{len(taken)} scrapes, promtool {'found' if shutil.which('promtool') else 'missing'}"
                  f", rule parameters {'read' if params else 'not found'} in {rules}", ok=False)
            continue
        threshold, window_min, duty = params
        stretched = rule_time_series(taken, "labdomu", labels)
        end_min = int(max((p[-1][0] for p in stretched.values() if p), default=0) // 60)
        k = stretch(taken)
        span = f"{len(taken)} scrapes over {taken[-1][0] - taken[0][0]:.0f} s = {end_min} rule min"
        if not stretched:
            t.row(row, None, "", f"{span}; no xen_vbd_* series of labdomu in them", ok=False)
            continue
        if phase == "idle":
            ok, why = promtool_test(rules, stretched, f"count(max_over_time({firing}[{end_min + 1}m])) or vector(0)",
                                    end_min, 0)
            t.row(row + " (never fires)", "silent" if ok else "fired", "", span + (": " + why if why else ""), ok=ok)
            continue
        # the same queue-time counter, in lab seconds (the scrapes) and in rule seconds (the input)
        t0 = taken[0][0]
        lab_q, cap = [], None
        for up, samples in taken:
            q = get(samples, "xen_vbd_backing_queue_time_seconds_total", domain="labdomu", device="xvda")
            c = get(samples, "xen_vbd_ring_capacity_requests", domain="labdomu", device="xvda")
            cap = c if isinstance(c, float) else cap
            if isinstance(q, float):
                lab_q.append((up - t0, q))
        rule_q = next((p for k, p in stretched.items() if k.startswith("xen_vbd_backing_queue_time_seconds_total{")), [])
        if not cap or len(lab_q) < 2 or len(rule_q) < 2:
            t.row(row, None, "", f"{span}; no queue time or ring capacity for labdomu xvda", ok=False)
            continue
        # the check instant: the end of the last saturated interval, on a whole rule minute
        last_sat = max((t2 for (t1, q1), (t2, q2) in zip(rule_q, rule_q[1:])
                        if t2 > t1 and (q2 - q1) / (t2 - t1) > threshold * cap), default=None)
        need = window_min + 5
        if last_sat is None:
            t.row(row + " (fires)", None, "",
                  f"{span}; never saturated (queue depth > {threshold:g} x {cap:g})", ok=False)
            continue
        if last_sat // 60 < need:
            t.row(row + " (fires)", None, "",
                  f"{span}; saturated until rule minute {last_sat // 60:g}, "
                  f"the rule's window needs {need}: the load is too short", ok=False)
            continue
        at = int(last_sat // 60)
        lab_share, lab_sat, _ = saturated_share(lab_q, cap, threshold, (at - window_min) * 60 / k,
                                                at * 60 / k)
        rule_share, _, _ = saturated_share(rule_q, cap, threshold, (at - window_min) * 60, at * 60)
        whole, whole_sat, whole_cov = saturated_share(lab_q, cap, threshold, 0, lab_q[-1][0])
        # one grid step of rounding on each of the two sample times bounding a transition
        same = lab_share is not None and rule_share is not None and abs(lab_share - rule_share) <= 0.05
        t.row(f"load: labdomu xvda saturated share of the rule's {window_min}m window (scrapes vs promtool input)",
              None if rule_share is None else round(rule_share, 3), "",
              f"scrapes {lab_share:.3f} ({lab_sat:.1f} of {window_min * 60 / k:g} lab s); "
              f"whole load {whole_sat:.1f} of {whole_cov:.1f} s; depth > {threshold:g} x {cap:g}", ok=same)
        ok, why = promtool_test(
            rules, stretched,
            f"count({firing} and on (domain, device) xen_vbd:saturated:duty_cycle{{{vbd}}} > {duty:g}) or vector(0)",
            at, 1)
        t.row(row + " (fires)", "firing" if ok else "not firing", "",
              f"{span}; at rule minute {at} (lab s {at * 60 / k:.0f}), "
              f"window {window_min}m, duty > {duty:g}" + (": " + why if why else ""), ok=ok)


# The fake tapdisk3's disk: the second disk of the DomU, 202:16
VBD3_DEVNO, VBD3_DEVICE = 51728, "xvdb"


def xen_version(d):
    """(major, minor) from versions.txt (`xl info`), or None."""
    text = read(d, "versions.txt") or ""
    major = re.search(r"^xen_major\s*:\s*(\d+)", text, re.M)
    minor = re.search(r"^xen_minor\s*:\s*(\d+)", text, re.M)
    return (int(major.group(1)), int(minor.group(1))) if major and minor else None


def xentop_vbd(text, domain, devno):
    """The `VBD <type> <devno> ...` line of `domain` in xentop -x output -> (type, {OO, RD, ...})."""
    cur = None
    for line in (text or "").splitlines():
        f = line.split()
        if len(f) >= 19 and f[0] != "NAME":
            cur = f[0]
        elif cur == domain and len(f) >= 3 and f[0] == "VBD" and f[2] == str(devno):
            return f[1], {k: int(v) for k, v in re.findall(r"\b(OO|RD|WR|RSECT|WSECT):\s+(\d+)", line)}
    return None, {}


def vbd3_rows(d, t):
    """A helper in Dom0 played tapdisk3 for xvdb (backend/vbd3 keys, kthread-pid, a version-1
    stats file kept moving, then frozen): the exporter's numbers equal xentop's Tapdisk3 VBD
    (libxenstat >= 4.19 reads the same file) and the helper's own for what xentop drops."""
    helper = {}
    for line in (read(d, "vbd3-helper.txt") or "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            helper[k] = v
    frozen = "frozen" in (read(d, "vbd3-helper.txt") or "").split()
    t.row("vbd3: helper played tapdisk3 (sysfs device, frozen counters)",
          f"pid {helper.get('pid')}, {helper.get('updates')} updates", "",
          f"sysfs vbd3-*: {helper.get('sysfs')}",
          ok=frozen and helper.get("sysfs") == "yes" and int(helper.get("updates", 0)) > 1)
    if not frozen:
        return
    h = lambda k: float(helper[k]) if k in helper else None
    m = parse_metrics(read(d, "vbd3-metrics.txt"))
    name = "labdomu"
    lab = dict(domain=name, device=VBD3_DEVICE)
    t.row("vbd3: collector_success{tapdisk}", get(m, "xen_exporter_collector_success", collector="tapdisk"),
          ok=get(m, "xen_exporter_collector_success", collector="tapdisk") == 1)
    info = [l for n, l, v in m if n == "xen_vbd_info" and l.get("domain") == name and l.get("device") == VBD3_DEVICE]
    shown = info[0] if info else {}
    t.row(f"vbd3: {name} {VBD3_DEVICE} xen_vbd_info backend devno sr vdi",
          " ".join(str(shown.get(k))[:8] for k in ("backend", "devno", "sr_uuid", "vdi_uuid")), "",
          f"tapdisk3 {VBD3_DEVNO} {helper.get('sr_uuid', '')[:8]} {helper.get('vdi_uuid', '')[:8]}",
          ok=bool(info) and shown.get("backend") == "tapdisk3" and shown.get("devno") == str(VBD3_DEVNO)
          and shown.get("sr_uuid") == helper.get("sr_uuid") and shown.get("vdi_uuid") == helper.get("vdi_uuid"))

    # what libxenstat keeps: the submitted requests, sectors, OO (never written by tapdisk: 0)
    version = xen_version(d)
    kind, xt = xentop_vbd(read(d, "vbd3-xentop.txt"), name, VBD3_DEVNO)
    reads_vbd3 = version is not None and version >= (4, 19)
    if reads_vbd3:
        t.row(f"vbd3: xentop (Xen {version[0]}.{version[1]}) shows {name} {VBD3_DEVNO}", "", kind, "",
              ok=kind == "Tapdisk3")
    else:
        t.row(f"vbd3: xentop: skipped: Xen {'%d.%d' % version if version else '?'} libxenstat has no vbd3",
              "", kind or "no VBD line", "", ok=kind is None)
    for metric, xkey, hkey, mult in (
        ("xen_vbd_read_requests_submitted_total", "RD", "read_reqs_submitted", 1),
        ("xen_vbd_write_requests_submitted_total", "WR", "write_reqs_submitted", 1),
        ("xen_vbd_read_bytes_total", "RSECT", "read_sectors", SECTOR),
        ("xen_vbd_write_bytes_total", "WSECT", "write_sectors", SECTOR),
        ("xen_vbd_out_of_requests_total", "OO", "oo_reqs", 1),
    ):
        value, want = get(m, metric, **lab), h(hkey)
        seen = float(xt[xkey] * mult) if xkey in xt else None
        t.row(f"vbd3: {name} {VBD3_DEVICE} {metric}", value, seen if reads_vbd3 else "skipped",
              None if want is None else want * mult,
              ok=isinstance(value, float) and want is not None and value == want * mult
              and (not reads_vbd3 or seen == value))

    # what xentop drops: the helper's own numbers (times in microseconds)
    for metric, hkey, scale in (
        ("xen_vbd_read_requests_total", "read_reqs_completed", 1),
        ("xen_vbd_write_requests_total", "write_reqs_completed", 1),
        ("xen_vbd_read_time_seconds_total", "read_total_ticks", 1e-6),
        ("xen_vbd_write_time_seconds_total", "write_total_ticks", 1e-6),
        ("xen_vbd_io_errors_total", "io_errors", 1),
        ("xen_vbd_low_memory_mode", "flags", 1),
    ):
        value, want = get(m, metric, **lab), h(hkey)
        if want is not None and hkey == "flags":
            want = float(int(want) & 1)
        want = None if want is None else want * scale
        t.row(f"vbd3: {name} {VBD3_DEVICE} {metric} (xentop drops it)", value, "", want,
              ok=isinstance(value, float) and want is not None and abs(value - want) <= 1e-9 * max(1.0, want))
    # ring: one page (no ring-page-order from a frontend), tapback's limit, io_ring's indexes
    for metric, want in (
        ("xen_vbd_ring_pages", 1.0),
        ("xen_vbd_ring_max_pages", None if h("max_ring_page_order") is None else float(1 << int(h("max_ring_page_order")))),
        ("xen_vbd_ring_capacity_requests", h("ring_nr_ents")),
        ("xen_vbd_ring_requests_outstanding",
         None if h("ring_req_prod") is None else h("ring_req_prod") - h("ring_req_cons")),
    ):
        value = get(m, metric, **lab)
        t.row(f"vbd3: {name} {VBD3_DEVICE} {metric}", value, "", want,
              ok=isinstance(value, float) and value == want)
    age = get(m, "xen_vbd_ring_stats_age_seconds", **lab)
    t.row(f"vbd3: {name} {VBD3_DEVICE} xen_vbd_ring_stats_age_seconds (io_ring rewritten at the freeze)",
          age, "", "< 60", ok=isinstance(age, float) and 0 <= age < 60)

    # the counters moved while the helper ran: a scrape before the freeze saw fewer
    moving = parse_metrics(read(d, "vbd3-metrics-moving.txt"))
    before = get(moving, "xen_vbd_read_requests_total", **lab)
    after = get(m, "xen_vbd_read_requests_total", **lab)
    t.row(f"vbd3: {name} {VBD3_DEVICE} read requests moved (scrape before the freeze < after)",
          after, "", before, ok=isinstance(before, float) and isinstance(after, float) and 0 < before < after)
    # the helper gone (keys and files removed): no series of the disk remain
    gone = parse_metrics(read(d, "vbd3-metrics-after.txt"))
    left = [n for n, l, v in gone if l.get("domain") == name and l.get("device") == VBD3_DEVICE]
    t.row(f"vbd3: {name} {VBD3_DEVICE} series after the helper stopped", len(left),
          ok=bool(gone) and not left and get(gone, "xen_exporter_collector_success", collector="tapdisk") == 1)


def main(d):
    t = Table()
    m = parse_metrics(read(d, "snap-metrics.txt"))
    if not m:
        print(f"FAIL: no exporter scrape in {d}/snap-metrics.txt "
              f"({(read(d, 'snap-metrics.txt.err') or read(d, 'exporter.log') or '').strip()[:300]})")
        return 1
    xt = parse_xentop(read(d, "snap-xentop.txt"))
    before = read(d, "snap-xentop-before.txt")
    xt_before = parse_xentop(before) if before else xt
    xl = parse_xl_list(read(d, "snap-xl-list.txt"))
    sysfs = parse_sysfs(read(d, "snap-sysfs.txt"))
    netdev = parse_net_dev(read(d, "snap-proc-net-dev.txt"))
    netdev_text_before = read(d, "snap-proc-net-dev-before.txt")
    netdev_before = parse_net_dev(netdev_text_before) if netdev_text_before else netdev
    rings = parse_debugfs(read(d, "snap-debugfs.txt"))

    t.row("xen_up", get(m, "xen_up"), ok=get(m, "xen_up") == 1)
    for n, l, v in m:
        if n == "xen_exporter_collector_success":
            t.row(f"collector_success{{{l.get('collector')}}}", v, ok=v == 1)
    exp_doms = {l["domain"] for n, l, v in m if n == "xen_domain_info"}
    # every per-device row below needs the guest: without it the table would pass on Dom0 alone
    t.row("labdomu running at the snapshot", "labdomu" in exp_doms, "labdomu" in xt, "labdomu" in xl,
          ok="labdomu" in exp_doms and "labdomu" in xt and "labdomu" in xl)
    t.row("domains", " ".join(sorted(exp_doms)), " ".join(sorted(xt)), " ".join(sorted(xl)))

    for name, x in sorted(xt.items()):
        domid = xl.get(name, {}).get("id")
        t.row(f"{name} domid", get(m, "xen_domain_info", domain=name) and
              next((l.get("domid") for n, l, v in m if n == "xen_domain_info" and l.get("domain") == name), None),
              "", str(domid))
        t.row(f"{name} vcpus", get(m, "xen_domain_vcpus", domain=name), float(x["vcpus"]), float(xl.get(name, {}).get("vcpus", 0)))
        t.row(f"{name} memory_bytes", get(m, "xen_domain_memory_bytes", domain=name), float(x["mem_k"] * 1024))
        if x["maxmem_k"] is not None:
            t.row(f"{name} memory_max_bytes", get(m, "xen_domain_memory_max_bytes", domain=name), float(x["maxmem_k"] * 1024))
        # xentop prints whole seconds, before and after the scrape: the exporter's value must lie
        # between the two readings, within 1 s (under a loaded TCG guest they are seconds apart).
        cpu = get(m, "xen_domain_cpu_seconds_total", domain=name)
        lo = xt_before.get(name, x)["cpu"]
        hi = x["cpu"]
        t.row(f"{name} cpu_seconds (xentop before-1 .. after+1)", cpu, f"{lo}..{hi}",
              ok=isinstance(cpu, float) and lo - 1.0 <= cpu <= hi + 1.0)

        for devno, vb in sorted(x["vbds"].items()):
            dev = vbd_name(devno)
            s = sysfs.get((domid, devno), {})
            lab = dict(domain=name, device=dev)
            for metric, xkey, skey, mult in (
                ("xen_vbd_read_requests_total", "RD", "rd_req", 1),
                ("xen_vbd_write_requests_total", "WR", "wr_req", 1),
                ("xen_vbd_read_bytes_total", "RSECT", "rd_sect", SECTOR),
                ("xen_vbd_write_bytes_total", "WSECT", "wr_sect", SECTOR),
                ("xen_vbd_out_of_requests_total", "OO", "oo_req", 1),
            ):
                sv = s.get(skey)
                t.row(f"{name} {dev} {metric}", get(m, metric, **lab),
                      float(vb[xkey] * mult) if xkey in vb else None,
                      None if sv is None else float(sv * mult))
            t.row(f"{name} {dev} xen_vbd_ring_pages present", get(m, "xen_vbd_ring_pages", **lab),
                  ok=isinstance(get(m, "xen_vbd_ring_pages", **lab), float))
            # the backing loop device, read just before and after the scrape at the quiet moment
            backing = (read(d, "backing-device.txt") or "").split()
            info = [l.get("physical_device") for n, l, v in m if n == "xen_vbd_info"
                    and l.get("domain") == name and l.get("device") == dev]
            t.row(f"{name} {dev} xen_vbd_info physical_device", info[0] if info else None, "",
                  backing[1] if len(backing) == 2 else None)
            lo = parse_stat(read(d, "snap-blockstat-before.txt"))
            hi = parse_stat(read(d, "snap-blockstat.txt"))
            for metric, field, unit in BACKING:
                value = get(m, metric, **lab)
                a = None if lo is None else lo[field] * unit
                b = None if hi is None else hi[field] * unit
                shown = None if a is None or b is None else (a if a == b else f"{a:g}..{b:g}")
                t.row(f"{name} {dev} {metric}", value, "", shown,
                      ok=isinstance(value, float) and a is not None and b is not None
                      and min(a, b) - 1e-9 <= value <= max(a, b) + 1e-9)
            load_rows(t, d, name, dev)

        # Dom0 bridges the DomU with Open vSwitch (no Linux bridge): stock libxenstat loses every
        # vif there, so xentop shows no network; the exporter reads Dom0's /proc/net/dev itself.
        vifs = sorted(v for v in netdev if re.fullmatch(rf"vif{domid}\.\d+", v))
        if name != "Domain-0":
            t.row(f"{name} xentop networks (Open vSwitch: libxenstat loses them)", "",
                  float(len(x["nets"])), f"{len(vifs)} vif(s) in /proc/net/dev",
                  ok=not x["nets"] and bool(vifs))
        for vif in vifs:
            nd = netdev[vif]
            nd_before = netdev_before.get(vif, nd)
            # A guest link is never silent (ARP): a counter may move between two views.
            # /proc/net/dev is read before and after the scrape; the exporter's value must lie
            # between the two readings (equal when nothing moved). Dom0's view: receive is
            # what the guest sent (the bulk went guest -> Dom0).
            for i, what in enumerate(("bytes", "packets", "errors", "drops")):
                for direction in ("receive", "transmit"):
                    metric = f"xen_vif_{direction}_{what}_total"
                    side = "rx" if direction == "receive" else "tx"
                    lo, hi = float(nd_before[side][i]), float(nd[side][i])
                    value = get(m, metric, domain=name, device=vif)
                    t.row(f"{name} {vif} {metric}", value, "",
                          lo if lo == hi else f"{lo:g}..{hi:g}",
                          ok=isinstance(value, float) and lo <= value <= hi)
            qs = sorted({k for k in rings if k[0] == vif})
            t.row(f"{name} {vif} xen_vif_queues", get(m, "xen_vif_queues", domain=name, device=vif), "",
                  float(len({q for _, q, _ in qs})))
            for v, q, direction in qs:
                r = rings[(v, q, direction)]
                lab = dict(domain=name, device=vif, queue=q, direction=direction)
                t.row(f"{name} {vif} q{q} {direction} ring_entries", get(m, "xen_vif_ring_entries", **lab), "", float(r["entries"]))
                if "req_prod" in r:
                    t.row(f"{name} {vif} q{q} {direction} requests_outstanding",
                          get(m, "xen_vif_ring_requests_outstanding", **lab), "", float(r["req_prod"] - r["req_cons"]))

    # lifecycle: destroyed domain's series gone; recreated domain back under the same label
    after = parse_metrics(read(d, "metrics-after-destroy.txt"))
    gone = [n for n, l, v in after if l.get("domain") == "labdomu"]
    t.row("after destroy: labdomu series", len(gone), ok=bool(after) and not gone and get(after, "xen_up") == 1)
    again = parse_metrics(read(d, "metrics-recreated.txt"))
    newid = (read(d, "domid-2.txt") or "").strip()
    oldid = (read(d, "domid-1.txt") or "").strip()
    info = [l.get("domid") for n, l, v in again if n == "xen_domain_info" and l.get("domain") == "labdomu"]
    t.row(f"recreated labdomu domid (was {oldid})", info[0] if info else None, "", newid,
          ok=bool(info) and info[0] == newid and newid != oldid
          and get(again, "xen_domain_vcpus", domain="labdomu") is not None)
    vbd3_rows(d, t)
    timing(d, t)
    saturation_rule(d, t)
    t.print()
    print(f"\n{len(t.rows) - t.failed} ok, {t.failed} mismatched")
    return 1 if t.failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
