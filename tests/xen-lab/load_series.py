#!/usr/bin/env python3
"""The exporter's scrapes taken in the lab while the DomU's writers ran (RESULT_DIR/load/),
as promtool `input_series`: every xen_vbd_* sample of one domain, resampled onto a fixed step
(the last scrape at or before each step: what Prometheus would have had), so a rule test can
evaluate the rendered alert rules over real series.
usage: load_series.py RESULT_DIR [--domain labdomu] [--step 15] [--labels 'instance="lab",job="xen"']"""
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result_dir")
    p.add_argument("--domain", default="labdomu")
    p.add_argument("--step", type=float, default=15.0, help="seconds between input samples (the test's interval)")
    p.add_argument("--labels", default='instance="xen-lab",job="xen"', help="labels added to every series")
    a = p.parse_args()
    taken = scrapes(a.result_dir)
    if not taken:
        print(f"no load scrapes in {a.result_dir}/load", file=sys.stderr)
        return 1
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
