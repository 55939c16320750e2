#!/usr/bin/env python3
"""Asserts that a rendering of mixin/tests/override.jsonnet (directory given as argument) took
every override: selectors, cluster and exchange labels in every aggregation, severity names,
thresholds and windows, runbook and dashboard URLs, dashboard uid and tags. Exits 1 naming each
rule or dashboard that did not."""

import json
import re
import sys
from pathlib import Path

import yaml

out = Path(sys.argv[1])
errors = []
rules = [rule for path in sorted((out / "alerts").glob("*.yml"))
         for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
raw_metric = re.compile(r"\b((?:xen|latency|process)_[a-z_]+|up|scrape_duration_seconds)\{([^}]*)\}")
for rule in rules:
    name = rule.get("alert") or rule.get("record")
    expr = rule["expr"]
    for metric, matchers in raw_metric.findall(expr):
        if 'job="xen-prod", env="prod"' not in matchers:
            errors.append(f"{name}: {metric}{{{matchers}}} lacks the overridden selector")
    if 'job="xen_exporter"' in expr:
        errors.append(f"{name}: the default selector is still there")
    for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
        labels = [label.strip() for label in clause.split(",")]
        if "instance" in labels and "fleet" not in labels:
            errors.append(f"{name}: aggregation ({clause}) drops the cluster label 'fleet'")
        if "cluster" in labels:
            errors.append(f"{name}: aggregation ({clause}) still names 'cluster'")
    if re.search(r"\bix\b", expr):
        errors.append(f"{name}: still groups by 'ix' instead of 'exchange'")
    if "alert" in rule:
        severity = rule["labels"]["severity"]
        if severity not in ("page", "ticket"):
            errors.append(f"{name}: severity {severity!r} is not page/ticket")
        annotations = rule["annotations"]
        if annotations["runbook_url"] != f"https://wiki.example.invalid/ops/xen/{name}":
            errors.append(f"{name}: runbook_url {annotations['runbook_url']}")
        if not annotations["dashboard_url"].startswith("https://grafana.ops.example.invalid/d/"):
            errors.append(f"{name}: dashboard_url {annotations['dashboard_url']}")
        if "$labels.fleet" not in annotations["summary"] and not rule["expr"].startswith("absent("):
            errors.append(f"{name}: summary lacks the cluster label 'fleet'")
by_name = {rule.get("alert") or rule.get("record"): rule for rule in rules}
expect = {
    "XenVbdSaturated": ["xen_vbd:saturated:duty_cycle > 0.7"],
    "XenHostStorageSaturated": [">= 5"],
    "LatencyPacketLoss": ["> 0.02"],
    "xen_vbd:saturated:duty_cycle": ["[1h]"],
}
for name, parts in expect.items():
    for part in parts:
        if part not in by_name[name]["expr"]:
            errors.append(f"{name}: {part!r} not in its expression")
if by_name["XenVbdSaturated"]["for"] != "10m":
    errors.append("XenVbdSaturated: for is not the overridden 10m")
if by_name["XenHostStorageSaturated"]["labels"]["severity"] != "page":
    errors.append("XenHostStorageSaturated: not severity page")
if "/d/my-xen-host?" not in by_name["XenHostStorageSaturated"]["annotations"]["dashboard_url"]:
    errors.append("XenHostStorageSaturated: dashboard_url does not use the overridden uid")
host = json.loads((out / "dashboards/xen-host.json").read_text())
if host["uid"] != "my-xen-host" or host["tags"][:2] != ["ops", "xen_exporter"]:
    errors.append(f"xen-host.json: uid {host['uid']}, tags {host['tags']}")
fleet = json.loads((out / "dashboards/xen-fleet.json").read_text())
if '"fleet=~\\"$cluster\\"' not in json.dumps(fleet) and 'fleet=~\\"$cluster\\"' not in json.dumps(fleet):
    errors.append("xen-fleet.json: the cluster variable does not select the 'fleet' label")
if not any(link["url"] == "/d/my-xen-host" for link in fleet["links"]):
    errors.append("xen-fleet.json: no link to the overridden host uid")
for error in errors:
    print(f"override: {error}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"override: {len(rules)} rules and the dashboards took every override")
