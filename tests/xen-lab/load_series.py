#!/usr/bin/env python3
"""The exporter's scrapes taken in the lab while the DomU's writers ran (RESULT_DIR/load/),
as promtool `input_series`: every xen_vbd_* sample of one domain, so a rule test can evaluate
the rendered alert rules over real series. Two forms:
  --step S      in lab time, resampled onto a fixed step of S seconds (the last scrape at or
                before each step: what Prometheus would have had);
  --rule-time   in rule time, as compare.py feeds promtool: the time compression below.
usage: load_series.py RESULT_DIR [--domain labdomu] [--step 15 | --rule-time] [--folder load]
                      [--labels 'instance="lab",job="xen"']"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import parse_metrics, read  # noqa: E402


def scrapes(d, folder="load"):
    """[(uptime, samples)] of RESULT_DIR/<folder>/metrics-*.txt, in time order."""
    load = os.path.join(d, folder)
    out = []
    for f in sorted(os.listdir(load)) if os.path.isdir(load) else []:
        text = read(load, f) or ""
        up = re.match(r"# uptime ([0-9.]+)", text)
        samples = parse_metrics(text)
        if up and samples:
            out.append((float(up.group(1)), samples))
    return sorted(out, key=lambda s: s[0])


# Lab time to rule time. The lab's load lasts about a minute; the rule's windows are tens of
# minutes (5-minute rates, a 30-minute duty cycle, `for: 5m`). The scrapes are stretched by one
# factor, the same for every interval: the median interval between two scrapes becomes
# RULE_SECONDS_PER_SCRAPE_INTERVAL (a scrape every ~1 s in the lab, every ~4 s on a busy host,
# is a 1-minute scrape interval for the rule, so a 5-minute rate always spans a few scrapes).
# A counter's increase between two scrapes is scaled by the same stretch, so every rate (a
# queue depth, a service time) is the rate the lab measured. Because the factor is uniform, the
# share of the time the VBD was saturated is the same in lab time and in rule time: compare.py
# checks that.
RULE_SECONDS_PER_SCRAPE_INTERVAL = 60


def stretch(taken):
    """Rule seconds per lab second for the scrapes `taken` ([(uptime, samples)])."""
    gaps = sorted(b[0] - a[0] for a, b in zip(taken, taken[1:]) if b[0] > a[0])
    return RULE_SECONDS_PER_SCRAPE_INTERVAL / gaps[len(gaps) // 2] if gaps else 1.0


# promtool's input step in rule time: each scrape lands on the nearest step (`_` between
# scrapes: no sample, as between two real scrapes); a counter's increase is scaled by the
# rounded interval over the real one, so rounding moves a sample by at most half a step but
# never changes a rate.
RULE_GRID_SECONDS = 10


def rule_time_series(taken, domain, labels):
    """{series key: [(rule seconds, value)]} of every xen_vbd_* series of `domain` in the
    scrapes `taken` ([(uptime, samples)]), stretched into rule time (above); time 0 is the
    first scrape. Two scrapes rounding onto the same step keep the later one."""
    if not taken:
        return {}
    t0, k, slots = taken[0][0], stretch(taken), {}
    for up, samples in taken:
        slots[round((up - t0) * k / RULE_GRID_SECONDS)] = (up, samples)
    kept = sorted(slots.items())
    series = {}
    for _, (_, samples) in kept:
        for name, lab, _ in samples:
            if name.startswith("xen_vbd_") and lab.get("domain") == domain:
                key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "," + labels + "}"
                series.setdefault(key, (name, lab))
    out = {}
    for key, (name, lab) in sorted(series.items()):
        points, total, last = [], None, None
        for slot, (up, samples) in kept:
            v = [x for n, l, x in samples if n == name and l == lab]
            if not v:
                continue
            at = slot * RULE_GRID_SECONDS
            if name.endswith("_total"):
                if last is None:
                    total = v[0]
                else:
                    total += max(v[0] - last[2], 0.0) * (at - last[0]) / max(up - last[1], 1e-3)
                last = (at, up, v[0])
                points.append((at, total))
            else:
                points.append((at, v[0]))
        out[key] = points
    return out


def promtool_values(points, end):
    """[(rule seconds, value)] -> promtool `values` on RULE_GRID_SECONDS steps up to `end`."""
    at = {int(t // RULE_GRID_SECONDS): v for t, v in points}
    return " ".join(f"{at[i]:.6g}" if i in at else "_" for i in range(int(end // RULE_GRID_SECONDS) + 1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result_dir")
    p.add_argument("--domain", default="labdomu")
    p.add_argument("--step", type=float, default=15.0, help="seconds between input samples (the test's interval)")
    p.add_argument("--rule-time", action="store_true", help="stretched into rule time, as compare.py does")
    p.add_argument("--folder", default="load", help="load (the writers) or idle")
    p.add_argument("--labels", default='instance="xen-lab",job="xen"', help="labels added to every series")
    a = p.parse_args()
    taken = scrapes(a.result_dir, a.folder)
    if not taken:
        print(f"no scrapes in {a.result_dir}/{a.folder}", file=sys.stderr)
        return 1
    if a.rule_time:
        stretched = rule_time_series(taken, a.domain, a.labels)
        end = max((p[-1][0] for p in stretched.values() if p), default=0)
        print(f"# {len(taken)} scrapes from uptime {taken[0][0]:g} to {taken[-1][0]:g} s; one lab second = "
              f"{stretch(taken):.4g} s of rule time; step {RULE_GRID_SECONDS}s")
        print("input_series:")
        for key, points in stretched.items():
            print(f"  - series: '{key}'")
            print(f"    values: '{promtool_values(points, end)}'")
        return 0
    series = {}
    for _, samples in taken:
        for name, labels, _ in samples:
            if name.startswith("xen_vbd_") and labels.get("domain") == a.domain:
                key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "," + a.labels + "}"
                series.setdefault(key, (name, labels))
    start, end = taken[0][0], taken[-1][0]
    steps = int((end - start) // a.step) + 1
    print(f"# {len(taken)} scrapes from uptime {start:g} to {end:g} s, resampled every {a.step:g} s")
    print("input_series:")
    for key, (name, labels) in sorted(series.items()):
        values, at = [], 0
        for i in range(steps):
            t = start + i * a.step
            while at + 1 < len(taken) and taken[at + 1][0] <= t:
                at += 1
            v = [x for n, l, x in taken[at][1] if n == name and l == labels]
            values.append(f"{v[0]:g}" if v else "_")
        print(f"  - series: '{key}'")
        print(f"    values: '{' '.join(values)}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
