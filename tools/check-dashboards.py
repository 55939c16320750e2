#!/usr/bin/env python3
"""Checks dashboards/*.json and alerts/*.yml beyond what promtool does.

1. Every dashboard validates against Grafana's own Dashboard schema
   (tools/grafana-schema/dashboard.schema.json, generated from the pinned @grafana/schema npm
   package; the import envelope `__inputs`/`__requires` is checked here, not by that schema).
2. Our checks the schema cannot express: schemaVersion >= 39, stable unique uids and titles,
   only timeseries/stat/table/heatmap panels (and rows), unique panel ids, a grid inside 24
   columns without overlaps, every target with a unique refId and the `${datasource}` variable,
   every `$variable` defined (before use, for chained variables), links to existing uids.
3. The dashboards and rule files are what mixin/render.sh writes (the mixin is their source).
4. alerts/metrics.txt lists exactly the metric names the dashboards and rules use; every
   recording rule a dashboard uses is defined in alerts/*.yml.
5. Every alert has severity critical or warning (the mixin's defaults), summary, description,
   an absolute runbook_url naming an existing docs/runbooks/ page, a dashboard_url to an
   existing dashboard, a `# Threshold:` comment above it in mixin/alerts/*.libsonnet, and in
   alerts/tests/ at least one firing and one silent case; every recording rule has a
   promql_expr_test.

    python3 tools/check-dashboards.py                  # check, exit 1 on any problem
    python3 tools/check-dashboards.py --write-metrics  # rewrite alerts/metrics.txt
    python3 tools/check-dashboards.py --self-test      # the checks catch broken dashboards

Needs python3 jsonschema and PyYAML (Debian: python3-jsonschema python3-yaml).
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tools/grafana-schema/dashboard.schema.json"
METRICS = ROOT / "alerts/metrics.txt"
DS_VARIABLE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "table", "heatmap"}
IMPORT_ENVELOPE = ("__inputs", "__requires", "__elements")
# Grafana's global variables a query or link may use.
BUILTIN_VARIABLES = {
    "__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
    "__url_time_range", "__value", "__from", "__to", "__dashboard", "__org", "__user",
    "__field", "__series", "__data", "__all_variables", "__timezone", "__name", "__all",
}
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "stdvar",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
}
# Series Prometheus makes itself; they are in metrics.txt but no exporter emits them.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "ALERTS"}
# Grafana's fields of a Prometheus annotation query, which the generated schema (written for the
# built-in Grafana annotations) does not list; the rest of each annotation is validated.
PROMETHEUS_ANNOTATION_KEYS = ("expr", "step", "titleFormat", "textFormat", "tagKeys", "useValueForTime")
SEVERITIES = ("critical", "warning")
RUNBOOK_PREFIX = "https://example.invalid/xen_exporter/blob/main/"


def variable_references(text):
    """Names of `$name`, `${name}`, `${name:format}` and `[[name]]` references in text."""
    names = set(re.findall(r"\$\{([A-Za-z0-9_.]+)(?::[^}]*)?\}", text))
    names |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    names |= set(re.findall(r"\[\[([A-Za-z0-9_]+)\]\]", text))
    return {name.split(".")[0] for name in names}


def promql_names(expr):
    """(metric names, recording rule names) an expression selects. A lexer-level extraction:
    strings, label matchers, ranges, grouping clauses, numbers and function calls removed."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?[0-9a-z]+|@\s*(?:start|end)\(\)|@\s*[0-9.]+", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", text)
    text = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", " ", text)
    text = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", text)
    metrics, records = set(), set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in PROMQL_WORDS:
            continue
        (records if ":" in name else metrics).add(name)
    return metrics, records


def variable_query_expr(query):
    """The PromQL inside a Grafana Prometheus variable query (label_values(expr, label))."""
    if isinstance(query, dict):
        query = query.get("query", "")
    match = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query, re.S)
    if match:
        return match.group(1)
    match = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    return match.group(1) if match else None


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


class Checker:
    def __init__(self):
        self.errors = []
        self.metrics = set()
        self.records_used = set()

    def error(self, where, message):
        self.errors.append(f"{where}: {message}")

    def check_dashboard(self, path, dashboard, validator, uids):
        where = path.relative_to(ROOT)
        # The import envelope: one Prometheus datasource input, used by the datasource variable.
        inputs = dashboard.get("__inputs", [])
        if not any(item.get("type") == "datasource" and item.get("pluginId") == "prometheus"
                   and item.get("name") == "DS_PROMETHEUS" for item in inputs):
            self.error(where, "__inputs needs the datasource input DS_PROMETHEUS (pluginId prometheus)")
        body = {key: value for key, value in dashboard.items() if key not in IMPORT_ENVELOPE}
        annotations = body.get("annotations", {}).get("list", [])
        for annotation in annotations:
            if "expr" in annotation:
                if annotation.get("datasource") != DS_VARIABLE:
                    self.error(where, f"annotation {annotation.get('name')!r}: datasource must be the variable")
                self.add_expr(where, f"annotation {annotation.get('name')!r}", annotation["expr"])
        body["annotations"] = {"list": [
            {key: value for key, value in annotation.items() if key not in PROMETHEUS_ANNOTATION_KEYS}
            for annotation in annotations
        ]}
        for problem in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            path_text = "/".join(str(part) for part in problem.absolute_path)
            self.error(where, f"schema: at /{path_text}: {problem.message}")

        if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < 39:
            self.error(where, "schemaVersion must be a number >= 39")
        uid = dashboard.get("uid", "")
        if not re.fullmatch(r"[a-z0-9-]{1,40}", uid or ""):
            self.error(where, f"uid {uid!r} must be a stable lowercase id of at most 40 characters")
        if dashboard.get("id") is not None:
            self.error(where, "id must be null (Grafana assigns it on import)")

        variables = dashboard.get("templating", {}).get("list", [])
        names = [variable.get("name") for variable in variables]
        if len(set(names)) != len(names):
            self.error(where, f"duplicate variable names in {names}")
        datasource = [v for v in variables if v.get("name") == "datasource"]
        if not datasource or datasource[0].get("type") != "datasource" \
                or datasource[0].get("query") != "prometheus":
            self.error(where, "needs a `datasource` variable of type datasource, query prometheus")
        elif datasource[0].get("current", {}).get("value") != "${DS_PROMETHEUS}":
            self.error(where, "the datasource variable's current value must be ${DS_PROMETHEUS}")
        defined = set()
        for variable in variables:
            name = variable.get("name")
            if variable.get("type") == "query":
                if variable.get("datasource") != DS_VARIABLE:
                    self.error(where, f"variable {name}: datasource must be the ${{datasource}} variable")
                query = variable.get("query", "")
                expr = variable_query_expr(query)
                if expr is None:
                    self.error(where, f"variable {name}: query must be label_values(expr, label)")
                else:
                    self.add_expr(where, f"variable {name}", expr)
                text = json.dumps(query)
                for ref in variable_references(text) - defined - BUILTIN_VARIABLES:
                    self.error(where, f"variable {name} uses ${ref}, not defined before it")
            defined.add(name)

        ids = []
        boxes = []
        for panel in all_panels(dashboard):
            title = panel.get("title", "?")
            ids.append(panel.get("id"))
            kind = panel.get("type")
            grid = panel.get("gridPos") or {}
            if kind == "row":
                boxes.append((title, grid))
                continue
            if kind not in PANEL_TYPES:
                self.error(where, f"panel {title!r}: type {kind!r} (use {sorted(PANEL_TYPES)})")
            if panel.get("datasource") != DS_VARIABLE:
                self.error(where, f"panel {title!r}: datasource must be the ${{datasource}} variable")
            targets = panel.get("targets") or []
            if not targets:
                self.error(where, f"panel {title!r}: no targets")
            refs = [item.get("refId") for item in targets]
            if not all(refs) or len(set(refs)) != len(refs):
                self.error(where, f"panel {title!r}: every target needs a unique refId, got {refs}")
            for item in targets:
                if item.get("datasource") != DS_VARIABLE:
                    self.error(where, f"panel {title!r} target {item.get('refId')}: datasource must be the variable")
                expr = item.get("expr", "")
                if not expr.strip():
                    self.error(where, f"panel {title!r} target {item.get('refId')}: empty expr")
                self.add_expr(where, f"panel {title!r}", expr)
            text = json.dumps(panel)
            for ref in variable_references(text) - defined - BUILTIN_VARIABLES:
                self.error(where, f"panel {title!r} uses ${ref}, which is not a variable")
            if panel.get("repeat") and panel["repeat"] not in defined:
                self.error(where, f"panel {title!r} repeats over undefined variable {panel['repeat']}")
            boxes.append((title, grid))
            for url in re.findall(r'"url": "([^"]*)"', text):
                self.check_link(where, f"panel {title!r}", url, uids)
        if len(set(ids)) != len(ids) or None in ids:
            self.error(where, f"panel ids must be unique and present: {ids}")
        self.check_grid(where, boxes)
        for link in dashboard.get("links", []):
            if link.get("type") == "link":
                self.check_link(where, f"link {link.get('title')!r}", link.get("url", ""), uids)
            for ref in variable_references(json.dumps(link)) - defined - BUILTIN_VARIABLES:
                self.error(where, f"link {link.get('title')!r} uses ${ref}, not a variable")

    def check_link(self, where, what, url, uids):
        match = re.match(r"/d/([^/?#]+)", url)
        if url.startswith("/") and not match:
            self.error(where, f"{what}: internal link {url!r} is not a /d/<uid> link")
        if match and match.group(1) not in uids:
            self.error(where, f"{what}: links to unknown dashboard uid {match.group(1)!r}")

    def check_grid(self, where, boxes):
        cells = {}
        for title, grid in boxes:
            try:
                x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
            except KeyError:
                self.error(where, f"panel {title!r}: gridPos needs x, y, w, h")
                continue
            if x < 0 or w <= 0 or x + w > 24:
                self.error(where, f"panel {title!r}: gridPos outside the 24 columns")
            for row in range(y, y + h):
                for column in range(x, x + w):
                    if (row, column) in cells:
                        self.error(where, f"panel {title!r} overlaps {cells[(row, column)]!r}")
                        return
                    cells[(row, column)] = title

    def add_expr(self, where, what, expr):
        metrics, records = promql_names(expr)
        self.metrics |= metrics
        self.records_used |= records


def rule_files():
    return sorted((ROOT / "alerts").glob("*.yml"))


def threshold_comments():
    """alert name -> the comment lines above its `a.new(c, 'Name', ...)` in the mixin."""
    comments = {}
    for path in sorted((ROOT / "mixin/alerts").glob("*.libsonnet")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            match = re.search(r"a\.new\(c, '([A-Za-z0-9]+)'", line)
            if not match:
                continue
            above = []
            for previous in reversed(lines[:index]):
                if not previous.strip().startswith(("#", "//")):
                    break
                above.append(previous)
            comments[match.group(1)] = above
    return comments


def check_rules(checker, uids):
    """Alert metadata, threshold comments and test coverage (item 5 above)."""
    alerts, records = set(), set()
    comments = threshold_comments()
    for path in rule_files():
        where = path.relative_to(ROOT)
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    records.add(rule["record"])
                    continue
                name = rule.get("alert", "?")
                alerts.add(name)
                if rule.get("labels", {}).get("severity") not in SEVERITIES:
                    checker.error(where, f"{name}: severity must be one of {SEVERITIES}")
                annotations = rule.get("annotations", {})
                for key in ("summary", "description", "runbook_url", "dashboard_url"):
                    if not annotations.get(key):
                        checker.error(where, f"{name}: annotation {key} missing")
                if "{{ $labels.instance }}" not in annotations.get("summary", "") \
                        and not rule["expr"].startswith("absent("):
                    checker.error(where, f"{name}: the summary must name the instance")
                runbook = annotations.get("runbook_url", "")
                page = runbook[len(RUNBOOK_PREFIX):] if runbook.startswith(RUNBOOK_PREFIX) else ""
                if page != f"docs/runbooks/{name}.md" or not (ROOT / page).is_file():
                    checker.error(where, f"{name}: runbook_url {runbook!r} is not an absolute link "
                                         f"to docs/runbooks/{name}.md (or the page is missing)")
                board = re.search(r"/d/([a-z0-9-]+)\?", annotations.get("dashboard_url", ""))
                if not board or board.group(1) not in uids:
                    checker.error(where, f"{name}: dashboard_url names no existing dashboard")
                if not any("Threshold:" in line for line in comments.get(name, [])):
                    checker.error("mixin/alerts/", f"{name}: needs a `# Threshold:` comment giving its source")
    firing, silent, tested_records = set(), set(), set()
    for path in sorted((ROOT / "alerts/tests").glob("*.yml")):
        for test in (yaml.safe_load(path.read_text()) or {}).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case.get("alertname"))
            for case in test.get("promql_expr_test", []):
                tested_records |= promql_names(case.get("expr", ""))[1]
    for name in sorted(alerts - firing):
        checker.error("alerts/tests/", f"{name}: no firing case")
    for name in sorted(alerts - silent):
        checker.error("alerts/tests/", f"{name}: no silent case")
    for name in sorted(records - tested_records):
        checker.error("alerts/tests/", f"recording rule {name}: no promql_expr_test")
    return alerts, records


# Broken variants of a good dashboard and the error each must produce (--self-test).
MUTATIONS = [
    ("misspelt top-level key", lambda d: d.update(refersh="1m"), "'refersh' was unexpected"),
    ("bad enum", lambda d: d.update(graphTooltip=5), "5 is not one of"),
    ("schemaVersion too old", lambda d: d.update(schemaVersion=30), "schemaVersion must be"),
    ("legacy graph panel", lambda d: first(d).update(type="graph"), "type 'graph'"),
    ("target without refId", lambda d: first(d)["targets"][0].pop("refId"), "unique refId"),
    ("hard-coded datasource",
     lambda d: first(d).update(datasource={"type": "prometheus", "uid": "abc"}),
     "must be the ${datasource} variable"),
    ("duplicate panel id", lambda d: d["panels"][2].update(id=d["panels"][1]["id"]),
     "panel ids must be unique"),
    ("undefined variable",
     lambda d: first(d)["targets"][0].update(expr=first(d)["targets"][0]["expr"] + ' + x{a="$nope"}'),
     "uses $nope"),
    ("link to unknown uid", lambda d: d["links"][0].update(url="/d/nope"), "unknown dashboard uid"),
    ("overlapping panels", lambda d: d["panels"][2].update(gridPos=dict(d["panels"][1]["gridPos"])),
     "overlaps"),
    ("no import input", lambda d: d.update(__inputs=[]), "DS_PROMETHEUS"),
]


def first(dashboard):
    """The first panel that is not a row."""
    return next(p for p in dashboard["panels"] if p["type"] != "row")


def self_test():
    """Each mutation of a valid dashboard is reported with its expected message."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    path = ROOT / "dashboards/xen-host.json"
    good = json.loads(path.read_text())
    uids = {json.loads(p.read_text())["uid"] for p in (ROOT / "dashboards").glob("*.json")}
    baseline = Checker()
    baseline.check_dashboard(path, json.loads(json.dumps(good)), validator, uids)
    failures = [f"the unchanged dashboard fails: {baseline.errors}"] if baseline.errors else []
    for name, mutate, expected in MUTATIONS:
        broken = json.loads(json.dumps(good))
        mutate(broken)
        checker = Checker()
        checker.check_dashboard(path, broken, validator, uids)
        if not any(expected in error for error in checker.errors):
            failures.append(f"{name}: expected {expected!r}, got {checker.errors}")
    for failure in failures:
        print(f"self-test: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"check-dashboards self-test: {len(MUTATIONS)} broken dashboards caught")
    return 0


def main():
    if "--self-test" in sys.argv[1:]:
        return self_test()
    write_metrics = "--write-metrics" in sys.argv[1:]
    checker = Checker()
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)

    with tempfile.TemporaryDirectory() as scratch:
        rendered = subprocess.run([str(ROOT / "mixin/render.sh"), scratch],
                                  capture_output=True, text=True)
        if rendered.returncode != 0:
            checker.error("mixin/", rendered.stderr.strip() or "mixin/render.sh failed")
        else:
            for path in sorted(Path(scratch).glob("*/*")):
                relative = path.relative_to(scratch)
                committed = ROOT / relative
                if not committed.is_file() or committed.read_text() != path.read_text():
                    checker.error(relative, "not what mixin/render.sh writes (run it and commit)")

    paths = sorted((ROOT / "dashboards").glob("*.json"))
    if not paths:
        checker.error("dashboards/", "no dashboards")
    dashboards = {}
    for path in paths:
        try:
            dashboards[path] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            checker.error(path.relative_to(ROOT), f"invalid JSON: {error}")
    uids = [d.get("uid") for d in dashboards.values()]
    titles = [d.get("title") for d in dashboards.values()]
    if len(set(uids)) != len(uids) or len(set(titles)) != len(titles):
        checker.error("dashboards/", f"uids and titles must be unique: {uids} {titles}")
    for path, dashboard in dashboards.items():
        checker.check_dashboard(path, dashboard, validator, set(uids))

    defined_records = set()
    for path in rule_files():
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    defined_records.add(rule["record"])
                metrics, records = promql_names(rule["expr"])
                checker.metrics |= metrics
                checker.records_used |= records
    alerts, _ = check_rules(checker, set(uids))
    for record in sorted(checker.records_used - defined_records):
        checker.error("alerts/", f"recording rule {record} is used but not defined")

    listed = [line.strip() for line in METRICS.read_text().splitlines()
              if line.strip() and not line.startswith("#")] if METRICS.exists() else []
    if write_metrics:
        METRICS.write_text("".join(f"{name}\n" for name in sorted(checker.metrics)))
        print(f"wrote {METRICS.relative_to(ROOT)}: {len(checker.metrics)} metric names")
    elif set(listed) != checker.metrics or listed != sorted(listed):
        missing = sorted(checker.metrics - set(listed))
        extra = sorted(set(listed) - checker.metrics)
        checker.error(METRICS.relative_to(ROOT),
                      f"not current (run tools/check-dashboards.py --write-metrics): "
                      f"missing {missing}, unused {extra}")

    for message in checker.errors:
        print(f"error: {message}", file=sys.stderr)
    if checker.errors:
        return 1
    print(f"check-dashboards: {len(dashboards)} dashboards, "
          f"{sum(1 for d in dashboards.values() for _ in all_panels(d))} panels, "
          f"{len(checker.metrics)} metric names, {len(defined_records)} recording rules, "
          f"{len(alerts)} alerts: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
