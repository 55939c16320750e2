#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/*.json from the definitions below.

The JSON files are committed (importable as is); this script is their source, so panels stay
consistent (one datasource variable, unique ids, a grid without overlaps) and a reviewer reads
PromQL here instead of in 3000 lines of JSON. `tools/check-dashboards.py` fails when the
committed JSON differs from what this script writes.

    python3 dashboards/generate.py            # rewrite dashboards/*.json
    python3 dashboards/generate.py --check    # exit 1 if a file is not current

Only the standard library; panel types: timeseries, stat, table, heatmap (no legacy graph).
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "xen_exporter"

# Selectors shared by the Xen dashboards.
HOST = 'job=~"$job", instance=~"$instance"'
DOMAIN = HOST + ', domain=~"$domain"'

UIDS = {
    "host": "xen-exporter-host",
    "domain": "xen-exporter-domain",
    "latency": "xen-exporter-latency",
    "noisy": "xen-exporter-noisy-neighbour",
}
TITLES = {
    "host": "Xen host",
    "domain": "Xen domain",
    "latency": "Latency",
    "noisy": "Xen noisy neighbour",
}


def target(expr, legend="", instant=False, fmt="time_series"):
    """One Prometheus query; refIds are assigned by the panel."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def table_target(expr):
    return target(expr, instant=True, fmt="table")


def thresholds(*steps):
    """steps: (value, colour) with the first value None (-Infinity)."""
    return {
        "mode": "absolute",
        "steps": [{"color": colour, "value": value} for value, colour in steps],
    }


GREEN = ((None, "green"),)


class Dashboard:
    def __init__(self, key, description, variables, refresh="1m", time_from="now-6h"):
        self.key = key
        self.description = description
        self.variables = variables
        self.refresh = refresh
        self.time_from = time_from
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.line_height = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.line_height
            self.line_height = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.line_height = max(self.line_height, h)
        return pos

    def _id(self):
        panel_id = self.next_id
        self.next_id += 1
        return panel_id

    def row(self, title):
        if self.x:
            self.x = 24  # force a new line
        pos = self._place(24, 1)
        self.x = 24
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": pos,
                "id": self._id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )

    def panel(self, kind, title, description, targets, w, h, field=None, options=None,
              overrides=None, transformations=None, repeat=None, interval=None):
        for index, item in enumerate(targets):
            item["refId"] = chr(ord("A") + index)
        panel = {
            "datasource": DS,
            "description": description,
            "fieldConfig": {"defaults": field or {}, "overrides": overrides or []},
            "gridPos": self._place(w, h),
            "id": self._id(),
            "options": options or {},
            "targets": targets,
            "title": title,
            "type": kind,
        }
        if transformations:
            panel["transformations"] = transformations
        if repeat:
            panel["repeat"] = repeat
            panel["repeatDirection"] = "h"
            panel["maxPerRow"] = 2
        if interval:
            panel["interval"] = interval
        self.panels.append(panel)
        return panel

    def timeseries(self, title, description, targets, unit="short", w=12, h=8, stack=False,
                   minimum=0, overrides=None, threshold=None, maximum=None, repeat=None):
        custom = {
            "drawStyle": "line",
            "fillOpacity": 25 if stack else 8,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        }
        field = {"color": {"mode": "palette-classic"}, "custom": custom, "unit": unit}
        if minimum is not None:
            field["min"] = minimum
        if maximum is not None:
            field["max"] = maximum
        if threshold is not None:
            custom["thresholdsStyle"] = {"mode": "dashed"}
            field["thresholds"] = thresholds((None, "transparent"), (threshold, "red"))
        options = {
            "legend": {
                "calcs": ["mean", "max", "lastNotNull"],
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        return self.panel("timeseries", title, description, targets, w, h, field, options,
                          overrides, repeat=repeat)

    def stat(self, title, description, targets, unit="short", w=4, h=4, steps=GREEN,
             text_mode="auto", mappings=None):
        field = {"color": {"mode": "thresholds"}, "thresholds": thresholds(*steps), "unit": unit}
        if mappings:
            field["mappings"] = mappings
        options = {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": text_mode,
        }
        return self.panel("stat", title, description, targets, w, h, field, options)

    def table(self, title, description, targets, columns, w=24, h=9, overrides=None,
              sort_by=None, hide=()):
        """columns: refId -> (display name, unit) for the merged value fields; hide: display or
        label names of columns to leave out. Grafana's merge joins rows on equal label columns,
        so every query of a table must return the same label set (join info labels in PromQL)."""
        # Grafana names a table query's value field `Value #<refId>`, or `Value` when the panel
        # has one query; organize's exclude and rename take those original names.
        value_field = (lambda ref: "Value") if len(targets) == 1 else (lambda ref: f"Value #{ref}")
        rename = {value_field(ref): name for ref, (name, _) in columns.items()}
        original = {name: field for field, name in rename.items()}
        unit_overrides = [
            {
                "matcher": {"id": "byName", "options": name},
                "properties": [{"id": "unit", "value": unit}],
            }
            for name, unit in columns.values()
        ]
        excluded = {"Time": True, "__name__": True, "job": True, "instance": True}
        excluded.update({original.get(name, name): True for name in hide})
        transformations = [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": excluded, "indexByName": {}, "renameByName": rename},
            },
        ]
        options = {"cellHeight": "sm", "showHeader": True}
        if sort_by:
            options["sortBy"] = [{"desc": True, "displayName": sort_by}]
        return self.panel("table", title, description, targets, w, h,
                          {"custom": {"align": "auto"}, "unit": "short"}, options,
                          unit_overrides + (overrides or []), transformations)

    def heatmap(self, title, description, targets, w=12, h=8, repeat=None):
        options = {
            "calculate": False,
            "cellGap": 1,
            "color": {
                "exponent": 0.5,
                "fill": "dark-orange",
                "mode": "scheme",
                "reverse": False,
                "scale": "exponential",
                "scheme": "Spectral",
                "steps": 64,
            },
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "unit": "s"},
        }
        return self.panel("heatmap", title, description, targets, w, h, {}, options,
                          repeat=repeat)

    def links(self):
        return [
            {
                "asDropdown": False,
                "icon": "dashboard",
                "includeVars": True,
                "keepTime": True,
                "tags": [],
                "targetBlank": False,
                "title": TITLES[key],
                "tooltip": f"Open the {TITLES[key]} dashboard",
                "type": "link",
                "url": f"/d/{UIDS[key]}",
            }
            for key in UIDS
            if key != self.key
        ]

    def json(self):
        return {
            "__inputs": [
                {
                    "description": "Prometheus that scrapes xen_exporter",
                    "label": "Prometheus",
                    "name": "DS_PROMETHEUS",
                    "pluginId": "prometheus",
                    "pluginName": "Prometheus",
                    "type": "datasource",
                }
            ],
            "__requires": [
                {"id": "grafana", "name": "Grafana", "type": "grafana", "version": "11.0.0"},
                {"id": "prometheus", "name": "Prometheus", "type": "datasource",
                 "version": "1.0.0"},
            ]
            + [
                {"id": kind, "name": kind.capitalize(), "type": "panel", "version": ""}
                for kind in sorted({p["type"] for p in self.panels} - {"row"})
            ],
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": self.links(),
            "panels": self.panels,
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": [TAG, "xen" if self.key != "latency" else "latency"],
            "templating": {"list": self.variables},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": TITLES[self.key],
            "uid": UIDS[self.key],
            "version": 1,
            "weekStart": "",
        }


def datasource_variable():
    return {
        "current": {"selected": False, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def query_variable(name, label, query, multi=False, sort=1):
    variable = {
        "datasource": DS,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "sort": sort,
        "type": "query",
    }
    if multi:
        variable["allValue"] = ".+"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def xen_variables(domain_query=None, domain_multi=False, domain_label="Domain"):
    variables = [
        datasource_variable(),
        query_variable("job", "Job", "label_values(xen_up, job)"),
        query_variable("instance", "Host", 'label_values(xen_up{job=~"$job"}, instance)'),
    ]
    if domain_query:
        variables.append(query_variable("domain", domain_label, domain_query, domain_multi, 7))
    return variables


def domain_link(title="Open the domain dashboard"):
    """A data link on the `domain` column/series to the domain dashboard."""
    return {
        "targetBlank": False,
        "title": title,
        "url": f"/d/{UIDS['domain']}?${{__url_time_range}}&var-datasource=${{datasource}}"
        "&var-job=${job}&var-instance=${instance}&var-domain=${__value.raw}",
    }


def host_dashboard():
    d = Dashboard(
        "host",
        "One Xen host: CPU and memory, every domain's CPU, memory, disk and network, the "
        "domains that use most CPU or hit full VBD rings, and the exporter's health.",
        xen_variables(f'label_values(xen_domain_info{{{HOST}}}, domain)', domain_multi=True),
    )
    d.row("Host")
    d.stat("Xen", "1 when the exporter's last Xen snapshot succeeded (xen_up).",
           [target(f"xen_up{{{HOST}}}")], steps=((None, "red"), (1, "green")),
           mappings=[{"options": {"0": {"color": "red", "text": "down"},
                                  "1": {"color": "green", "text": "up"}}, "type": "value"}])
    d.stat("Xen version", "Version of the hypervisor.",
           [target(f"xen_version_info{{{HOST}}}", "{{version}}", instant=True)], text_mode="name")
    d.stat("Physical CPUs", "CPUs of the host (xl info nr_cpus).",
           [target(f"xen_host_cpus{{{HOST}}}")])
    d.stat("CPU clock", "CPU frequency of the host.",
           [target(f"xen_host_cpu_frequency_hertz{{{HOST}}}")], unit="hertz")
    d.stat("Domains", "Domains that exist now, Domain-0 included.",
           [target(f"xen_domains{{{HOST}}}")])
    d.stat("Memory free", "Share of the host's memory not given to any domain.",
           [target(f"xen_host_memory_free_bytes{{{HOST}}} / xen_host_memory_total_bytes{{{HOST}}}")],
           unit="percentunit", steps=((None, "red"), (0.02, "orange"), (0.1, "green")))
    d.timeseries(
        "Host CPU used by domains",
        "CPU time all domains used, as a share of the host's physical CPUs.",
        [target(f"sum by (job, instance) (rate(xen_domain_cpu_seconds_total{{{HOST}}}[$__rate_interval]))"
                f" / on (job, instance) xen_host_cpus{{{HOST}}}", "{{instance}}")],
        unit="percentunit", maximum=1)
    d.timeseries(
        "CPU by domain",
        "CPU-seconds per second each domain used (1 = one physical CPU busy).",
        [target(f"sum by (domain) (rate(xen_domain_cpu_seconds_total{{{DOMAIN}}}[$__rate_interval]))",
                "{{domain}}")],
        stack=True)
    d.timeseries(
        "Host memory",
        "Total memory, memory free in Xen, and memory given to domains.",
        [target(f"xen_host_memory_total_bytes{{{HOST}}}", "total"),
         target(f"xen_host_memory_free_bytes{{{HOST}}}", "free"),
         target(f"sum by (job, instance) (xen_domain_memory_bytes{{{HOST}}})", "domains")],
        unit="bytes")
    d.timeseries(
        "Memory by domain",
        "Memory each domain has now.",
        [target(f"xen_domain_memory_bytes{{{DOMAIN}}}", "{{domain}}")], unit="bytes", stack=True)
    d.row("Domains")
    d.table(
        "Domains",
        "Every domain over the last 5 minutes (recording rules). CPU is the share of the "
        "domain's online VCPUs; VBD_OO/s counts requests that found a VBD ring full. Click a "
        "domain to open its dashboard.",
        [table_target(f"xen_domain:cpu_usage_per_vcpu:ratio_rate5m{{{DOMAIN}}}"),
         table_target(f"xen_domain_vcpus{{{DOMAIN}}}"),
         table_target(f"xen_domain_memory_bytes{{{DOMAIN}}}"),
         table_target(f"xen_domain:vbd_requests:rate5m{{{DOMAIN}}}"),
         table_target(f"xen_domain:vbd_bytes:rate5m{{{DOMAIN}}}"),
         table_target(f"xen_domain:vbd_out_of_requests:rate5m{{{DOMAIN}}}"),
         table_target(f"xen_domain:vif_bytes:rate5m{{{DOMAIN}}}")],
        {"A": ("CPU (of VCPUs)", "percentunit"), "B": ("VCPUs", "short"),
         "C": ("Memory", "bytes"), "D": ("Disk IOPS", "iops"), "E": ("Disk throughput", "Bps"),
         "F": ("VBD_OO/s", "short"), "G": ("Network", "Bps")},
        overrides=[{"matcher": {"id": "byName", "options": "domain"},
                    "properties": [{"id": "links", "value": [domain_link()]}]}],
        sort_by="CPU (of VCPUs)")
    d.row("Top domains")
    d.timeseries(
        "Top 5 domains by VBD_OO",
        "Requests per second that found a VBD ring full (xentop VBD_OO), all disks of the domain.",
        [target(f"topk(5, xen_domain:vbd_out_of_requests:rate5m{{{DOMAIN}}})", "{{domain}}")],
        overrides=[{"matcher": {"id": "byName", "options": "domain"},
                    "properties": [{"id": "links", "value": [domain_link()]}]}])
    d.timeseries(
        "Top 5 domains by CPU",
        "CPU-seconds per second (1 = one physical CPU busy).",
        [target(f"topk(5, xen_domain:cpu_seconds:rate5m{{{DOMAIN}}})", "{{domain}}")])
    d.timeseries(
        "Top 5 domains by disk IOPS",
        "Read and write requests per second, all disks of the domain.",
        [target(f"topk(5, xen_domain:vbd_requests:rate5m{{{DOMAIN}}})", "{{domain}}")],
        unit="iops")
    d.timeseries(
        "Top 5 domains by network",
        "Bytes per second received plus transmitted on all vifs of the domain.",
        [target(f"topk(5, xen_domain:vif_bytes:rate5m{{{DOMAIN}}})", "{{domain}}")], unit="Bps")
    d.row("Exporter")
    d.stat("Scrape", "Prometheus's `up` for the exporter.",
           [target(f"up{{{HOST}}}")], steps=((None, "red"), (1, "green")),
           mappings=[{"options": {"0": {"color": "red", "text": "down"},
                                  "1": {"color": "green", "text": "up"}}, "type": "value"}])
    d.stat("Exporter version", "Build of xen_exporter.",
           [target(f"xen_exporter_build_info{{{HOST}}}", "{{version}}", instant=True)],
           text_mode="name")
    d.stat("Config reload",
           "1 when the last load of the configuration file (config) and of the web "
           "configuration file (web: TLS, users, headers, rate limit) succeeded.",
           [target(f"xen_exporter_config_last_reload_successful{{{HOST}}}", "config"),
            target(f"xen_exporter_web_config_last_reload_successful{{{HOST}}}", "web")],
           steps=((None, "red"), (1, "green")))
    d.stat("Exporter memory", "Resident memory of the exporter process.",
           [target(f"process_resident_memory_bytes{{{HOST}}}")], unit="bytes")
    d.stat("Exporter CPU", "CPU the exporter process uses (1 = one CPU).",
           [target(f"rate(process_cpu_seconds_total{{{HOST}}}[$__rate_interval])")],
           unit="percentunit")
    d.stat("Open files", "File descriptors the exporter has open.",
           [target(f"process_open_fds{{{HOST}}}")])
    d.timeseries(
        "Collector success",
        "1 when the collector's last run succeeded (xen_exporter_collector_success).",
        [target(f"xen_exporter_collector_success{{{HOST}}}", "{{collector}}")], maximum=1)
    d.timeseries(
        "Collector duration",
        "Time each collector took in the last scrape.",
        [target(f"xen_exporter_collector_duration_seconds{{{HOST}}}", "{{collector}}")], unit="s")
    return d


def domain_dashboard():
    d = Dashboard(
        "domain",
        "One Xen domain: per-VCPU CPU, memory, every vif's traffic, errors and drops, every VBD's "
        "IOPS, bytes and VBD_OO against its ring's capacity, and netback ring occupancy.",
        xen_variables(f'label_values(xen_domain_info{{{HOST}}}, domain)'),
    )
    d.row("Domain")
    d.stat("State", "Xen's state of the domain (xl list).",
           [target(f"xen_domain_state{{{DOMAIN}}} == 1", "{{state}}", instant=True)],
           text_mode="name")
    d.stat("VCPUs", "VCPUs of the domain, online or not.", [target(f"xen_domain_vcpus{{{DOMAIN}}}")])
    d.stat("Memory", "Memory the domain has now.",
           [target(f"xen_domain_memory_bytes{{{DOMAIN}}}")], unit="bytes")
    d.stat("Memory limit", "Maximum memory of the domain (no value: unlimited).",
           [target(f"xen_domain_memory_max_bytes{{{DOMAIN}}}")], unit="bytes")
    d.stat("CPU (of VCPUs)", "Share of the online VCPUs used over 5 minutes.",
           [target(f"xen_domain:cpu_usage_per_vcpu:ratio_rate5m{{{DOMAIN}}}")],
           unit="percentunit", steps=((None, "green"), (0.8, "orange"), (0.95, "red")))
    d.stat("RX queues stalled", "Netback RX queues of this domain's vifs that netback stopped.",
           [target(f"sum(xen_vif_rx_queue_stalled{{{DOMAIN}}})")],
           steps=((None, "green"), (1, "red")))
    d.table("Identity", "domid, uuid and ssid (they change when the domain is re-created).",
            [table_target(f"xen_domain_info{{{DOMAIN}}}")], {"A": ("info", "short")}, h=4,
            hide=("info",))
    d.row("CPU and memory")
    d.timeseries(
        "CPU per VCPU",
        "CPU-seconds per second of each VCPU (1 = the VCPU ran all the time).",
        [target(f"rate(xen_vcpu_cpu_seconds_total{{{DOMAIN}}}[$__rate_interval])", "vcpu {{vcpu}}")],
        unit="percentunit", w=8)
    d.timeseries(
        "CPU against VCPUs",
        "CPU-seconds per second of the whole domain, its online VCPUs and all its VCPUs.",
        [target(f"rate(xen_domain_cpu_seconds_total{{{DOMAIN}}}[$__rate_interval])", "used"),
         target(f"sum(xen_vcpu_online{{{DOMAIN}}})", "online VCPUs"),
         target(f"xen_domain_vcpus{{{DOMAIN}}}", "VCPUs")], w=8)
    d.timeseries(
        "Memory",
        "Memory the domain has, and its limit.",
        [target(f"xen_domain_memory_bytes{{{DOMAIN}}}", "memory"),
         target(f"xen_domain_memory_max_bytes{{{DOMAIN}}}", "limit")], unit="bytes", w=8)
    d.row("Network (Dom0 backend view: receive = sent by the guest)")
    transmit_below = [{"matcher": {"id": "byRegexp", "options": ".*transmit.*"},
                       "properties": [{"id": "custom.transformType", "value": "negative-Y"}]}]
    d.timeseries(
        "vif throughput",
        "Bytes per second per vif, as Dom0 sees them (transmit below zero).",
        [target(f"rate(xen_vif_receive_bytes_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} receive"),
         target(f"rate(xen_vif_transmit_bytes_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} transmit")],
        unit="Bps", minimum=None, overrides=transmit_below, w=8)
    d.timeseries(
        "vif packets",
        "Packets per second per vif (transmit below zero).",
        [target(f"rate(xen_vif_receive_packets_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} receive"),
         target(f"rate(xen_vif_transmit_packets_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} transmit")],
        unit="pps", minimum=None, overrides=transmit_below, w=8)
    d.timeseries(
        "vif errors and drops",
        "Errors and drops per second per vif.",
        [target(f"rate(xen_vif_receive_errors_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} receive errors"),
         target(f"rate(xen_vif_transmit_errors_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} transmit errors"),
         target(f"rate(xen_vif_receive_drops_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} receive drops"),
         target(f"rate(xen_vif_transmit_drops_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} transmit drops")],
        unit="pps", w=8)
    d.row("Disks")
    d.timeseries(
        "VBD IOPS",
        "Read and write requests per second per virtual disk.",
        [target(f"rate(xen_vbd_read_requests_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} read"),
         target(f"rate(xen_vbd_write_requests_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} write")],
        unit="iops", w=8)
    d.timeseries(
        "VBD throughput",
        "Bytes read and written per second per virtual disk (sectors x 512).",
        [target(f"rate(xen_vbd_read_bytes_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} read"),
         target(f"rate(xen_vbd_write_bytes_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} write")],
        unit="Bps", w=8)
    d.timeseries(
        "Flushes and discards",
        "Flush (barrier) and discard requests per second per virtual disk.",
        [target(f"rate(xen_vbd_flush_requests_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} flush"),
         target(f"rate(xen_vbd_discard_requests_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} discard")],
        unit="iops", w=8)
    capacity_right = [{"matcher": {"id": "byRegexp", "options": ".*capacity.*"},
                       "properties": [{"id": "custom.axisPlacement", "value": "right"},
                                      {"id": "unit", "value": "short"},
                                      {"id": "custom.lineStyle",
                                       "value": {"dash": [10, 10], "fill": "dash"}}]}]
    d.timeseries(
        "VBD_OO against ring capacity",
        "Requests per second that found the VBD's shared ring full (xentop VBD_OO), and the "
        "ring's capacity in requests (queues x pages x 32, right axis). A ring that holds more "
        "requests saturates later.",
        [target(f"rate(xen_vbd_out_of_requests_total{{{DOMAIN}}}[$__rate_interval])", "{{device}} VBD_OO/s"),
         target(f"xen_vbd_ring_capacity_requests{{{DOMAIN}}}", "{{device}} capacity")],
        overrides=capacity_right)
    d.timeseries(
        "Requests finding the ring full",
        "VBD_OO per request over 5 minutes; XenVbdRingSaturated fires above 10 % (dashed).",
        [target(f"xen_vbd:out_of_requests_per_request:rate5m{{{DOMAIN}}}", "{{device}}")],
        unit="percentunit", threshold=0.1)
    d.table(
        "VBDs",
        "Every virtual disk: backend, ring geometry (from xenstore) and libxenstat's error flag.",
        [table_target(f"xen_vbd_info{{{DOMAIN}}}")]
        + [table_target(f"{metric}{{{DOMAIN}}} * on (job, instance, domain, device) "
                        f"group_left (devno, backend) xen_vbd_info{{{DOMAIN}}}")
           for metric in ("xen_vbd_ring_queues", "xen_vbd_ring_pages", "xen_vbd_ring_max_pages",
                          "xen_vbd_ring_capacity_requests", "xen_vbd_error")],
        {"A": ("info", "short"), "B": ("Queues", "short"), "C": ("Pages per ring", "short"),
         "D": ("Max pages", "short"), "E": ("Capacity (requests)", "short"),
         "F": ("Error", "short")}, h=7, hide=("info", "domain"))
    d.row("Netback rings")
    d.timeseries(
        "Ring occupancy",
        "Requests on each netback ring the backend has not consumed, as a share of the ring. TX "
        "near 100 %: netback does not keep up; RX near 0 %: the guest posts no receive buffers.",
        [target(f"xen_vif:ring_utilisation:ratio{{{DOMAIN}}}", "{{device}} q{{queue}} {{direction}}")],
        unit="percentunit", maximum=1, w=8)
    d.timeseries(
        "Responses not yet published",
        "Responses netback produced but has not pushed to the guest (rsp_prod_pvt - rsp_prod).",
        [target(f"xen_vif_ring_responses_unpublished{{{DOMAIN}}}", "{{device}} q{{queue}} {{direction}}")],
        w=8)
    d.timeseries(
        "TX pending and dealloc",
        "Guest TX requests netback holds (pending) and grants waiting to be unmapped (dealloc).",
        [target(f"xen_vif_tx_pending_requests{{{DOMAIN}}}", "{{device}} q{{queue}} pending"),
         target(f"xen_vif_tx_dealloc_queue{{{DOMAIN}}}", "{{device}} q{{queue}} dealloc")], w=8)
    d.timeseries(
        "RX internal queue",
        "Bytes netback queued for the guest, against the queue's limit (dashed).",
        [target(f"xen_vif_rx_queue_bytes{{{DOMAIN}}}", "{{device}} q{{queue}}"),
         target(f"xen_vif_rx_queue_max_bytes{{{DOMAIN}}}", "{{device}} q{{queue}} max")],
        unit="bytes",
        overrides=[{"matcher": {"id": "byRegexp", "options": ".* max"},
                    "properties": [{"id": "custom.lineStyle",
                                    "value": {"dash": [10, 10], "fill": "dash"}}]}])
    d.timeseries(
        "vif queues and stalled RX queues",
        "Netback queues per vif, and its RX queues netback stopped (1 each; see "
        "XenNetbackRxQueueStalled).",
        [target(f"xen_vif_queues{{{DOMAIN}}}", "{{device}} queues"),
         target(f"xen_vif_rx_queue_stalled{{{DOMAIN}}}", "{{device}} q{{queue}} stalled")])
    return d


def latency_dashboard():
    probe = 'job=~"$job", instance=~"$instance", target=~"$target", protocol=~"$protocol"'
    tcp = 'job=~"$job", instance=~"$instance", target=~"$target", protocol="tcp"'
    legend = "{{target}} {{protocol}} {{ix}} {{city}} {{org}}"
    variables = [
        datasource_variable(),
        query_variable("job", "Job", "label_values(latency_requests_total, job)"),
        query_variable("instance", "Prober", 'label_values(latency_requests_total{job=~"$job"}, instance)'),
        query_variable("target", "Target",
                       'label_values(latency_requests_total{job=~"$job", instance=~"$instance"}, target)',
                       multi=True),
        query_variable("protocol", "Protocol",
                       'label_values(latency_requests_total{job=~"$job", instance=~"$instance", '
                       'target=~"$target"}, protocol)', multi=True),
    ]
    d = Dashboard(
        "latency",
        "Smokeping-style latency from the Xen host: RTT distribution (heatmap of the histogram) "
        "with quantile lines, loss, jitter and TCP connect time per target, with the target's "
        "labels (ix, city, org).",
        variables, refresh="30s", time_from="now-3h",
    )
    d.table(
        "Targets",
        "Every probed target over the last 5 minutes: median and 99th percentile RTT, loss, "
        "jitter, and the labels it was configured with.",
        [table_target(f"latency_target_info{{{probe}}}")]
        + [table_target(f"{metric}{{{probe}}} * on (job, instance, target, protocol) "
                        f"group_left (address) latency_target_info{{{probe}}}")
           for metric in ("latency:rtt_seconds:p50_rate5m", "latency:rtt_seconds:p99_rate5m",
                          "latency:loss:ratio_rate5m", "latency_jitter_seconds")],
        {"A": ("info", "short"), "B": ("RTT p50", "s"), "C": ("RTT p99", "s"),
         "D": ("Loss", "percentunit"), "E": ("Jitter", "s")}, h=8, hide=("info",),
        sort_by="RTT p50")
    d.row("RTT per target")
    d.heatmap(
        "RTT distribution: $target",
        "Replies per RTT bucket over time (latency_rtt_seconds histogram); a cell's colour is "
        "how many replies took that long.",
        [target(f"sum by (le) (rate(latency_rtt_seconds_bucket{{{probe}}}[$__rate_interval]))",
                "{{le}}", fmt="heatmap")],
        repeat="target")
    d.timeseries(
        "RTT quantiles: $target",
        "Median, 90th and 99th percentile and mean RTT from the histogram.",
        [target(f"histogram_quantile(0.5, sum by (le, target, protocol) (rate(latency_rtt_seconds_bucket{{{probe}}}[$__rate_interval])))",
                "{{protocol}} p50"),
         target(f"histogram_quantile(0.9, sum by (le, target, protocol) (rate(latency_rtt_seconds_bucket{{{probe}}}[$__rate_interval])))",
                "{{protocol}} p90"),
         target(f"histogram_quantile(0.99, sum by (le, target, protocol) (rate(latency_rtt_seconds_bucket{{{probe}}}[$__rate_interval])))",
                "{{protocol}} p99"),
         target(f"sum by (target, protocol) (rate(latency_rtt_seconds_sum{{{probe}}}[$__rate_interval]))"
                f" / sum by (target, protocol) (rate(latency_rtt_seconds_count{{{probe}}}[$__rate_interval]))",
                "{{protocol}} mean")],
        unit="s", repeat="target")
    d.row("Loss, jitter, TCP")
    d.timeseries(
        "Packet loss",
        "Share of probes without a reply (LatencyPacketLoss fires above 5 %, dashed).",
        [target(f"1 - rate(latency_responses_total{{{probe}}}[$__rate_interval])"
                f" / rate(latency_requests_total{{{probe}}}[$__rate_interval])", legend)],
        unit="percentunit", maximum=1, threshold=0.05)
    d.timeseries(
        "Jitter",
        "Interarrival jitter of the replies (RFC 3550).",
        [target(f"latency_jitter_seconds{{{probe}}}", legend)], unit="s")
    d.timeseries(
        "TCP connect time",
        "Median and 99th percentile time to a completed TCP handshake.",
        [target(f"histogram_quantile(0.5, rate(latency_rtt_seconds_bucket{{{tcp}}}[$__rate_interval]))",
                "{{target}} p50"),
         target(f"histogram_quantile(0.99, rate(latency_rtt_seconds_bucket{{{tcp}}}[$__rate_interval]))",
                "{{target}} p99")],
        unit="s")
    d.timeseries(
        "Median RTT against baseline",
        "5-minute median RTT and its median over the last day; LatencyAboveBaseline fires when "
        "the first stays above twice the second (and 5 ms above it) for 15 minutes.",
        [target(f"latency:rtt_seconds:p50_rate5m{{{probe}}}", legend + " p50"),
         target(f"latency:rtt_seconds:baseline_p50_1d{{{probe}}}", legend + " baseline")],
        unit="s")
    d.timeseries(
        "Probe errors",
        "Failed probes per second by reason (timeout, refused, unreachable, send, ...); zero "
        "lines for targets without errors.",
        [target(f"sum by (target, protocol, reason) (rate(latency_errors_total{{{probe}}}[$__rate_interval]))"
                f" or sum by (target, protocol) (rate(latency_requests_total{{{probe}}}[$__rate_interval])) * 0"
                f" unless on (target, protocol) sum by (target, protocol) (latency_errors_total{{{probe}}})",
                "{{target}} {{protocol}} {{reason}}")],
        unit="reqps")
    d.timeseries(
        "Duplicates and reply TTL",
        "Duplicate replies per second (left), and the TTL of the last reply (right): a TTL "
        "change means the path changed.",
        [target(f"rate(latency_duplicates_total{{{probe}}}[$__rate_interval])"
                f" or rate(latency_requests_total{{{probe}}}[$__rate_interval]) * 0",
                "{{target}} {{protocol}} duplicates"),
         target(f"latency_reply_ttl{{{probe}}}", "{{target}} {{protocol}} TTL")],
        overrides=[{"matcher": {"id": "byRegexp", "options": ".* TTL"},
                    "properties": [{"id": "custom.axisPlacement", "value": "right"}]}])
    return d


def noisy_dashboard():
    victim = HOST + ', domain=~"$domain"'
    d = Dashboard(
        "noisy",
        "Who is hurting my guest? Pick the victim domain: its VBD ring saturation, and each "
        "domain's share of the host's disk requests, disk bytes, network and CPU, and which "
        "domains took the disk while the victim's ring was full.",
        xen_variables(f'label_values(xen_vbd_info{{{HOST}}}, domain)', domain_label="Victim"),
    )
    d.timeseries(
        "Victim: requests finding the ring full",
        "VBD_OO per request of the victim's disks over 5 minutes (XenVbdRingSaturated above "
        "10 %, dashed).",
        [target(f"xen_vbd:out_of_requests_per_request:rate5m{{{victim}}}", "{{device}}")],
        unit="percentunit", threshold=0.1)
    d.timeseries(
        "Victim: VBD_OO and IOPS",
        "The victim's full-ring events and requests per second.",
        [target(f"rate(xen_vbd_out_of_requests_total{{{victim}}}[$__rate_interval])", "{{device}} VBD_OO/s"),
         target(f"rate(xen_vbd_read_requests_total{{{victim}}}[$__rate_interval])"
                f" + rate(xen_vbd_write_requests_total{{{victim}}}[$__rate_interval])", "{{device}} IOPS")],
        unit="short")
    d.table(
        "Who is hurting $domain?",
        "Per domain: its average share of the host's disk requests during the moments the "
        "victim had a saturated VBD ring in the selected time range (0 when it never "
        "saturated), and its share now of disk requests, disk bytes, network bytes and CPU.",
        [table_target(
            f"sum_over_time((xen_domain:vbd_requests:share_rate5m{{{HOST}}}"
            f" * on (job, instance) group_left xen_domain:vbd_saturated:bool5m{{{victim}}})[$__range:$__interval])"
            f" / on (job, instance) group_left"
            f" clamp_min(sum_over_time(xen_domain:vbd_saturated:bool5m{{{victim}}}[$__range:$__interval]), 1)"),
         table_target(f"xen_domain:vbd_requests:share_rate5m{{{HOST}}}"),
         table_target(f"xen_domain:vbd_bytes:share_rate5m{{{HOST}}}"),
         table_target(f"xen_domain:vif_bytes:share_rate5m{{{HOST}}}"),
         table_target(f"xen_domain:cpu_seconds:rate5m{{{HOST}}} / on (job, instance) group_left xen_host_cpus{{{HOST}}}")],
        {"A": ("Disk share while victim saturated", "percentunit"),
         "B": ("Disk requests share", "percentunit"), "C": ("Disk bytes share", "percentunit"),
         "D": ("Network share", "percentunit"), "E": ("CPU share", "percentunit")},
        overrides=[{"matcher": {"id": "byName", "options": "domain"},
                    "properties": [{"id": "links", "value": [domain_link()]}]}],
        sort_by="Disk share while victim saturated", h=10)
    d.timeseries(
        "Share of host disk requests",
        "Each domain's share of all VBD requests on the host (5 minutes).",
        [target(f"xen_domain:vbd_requests:share_rate5m{{{HOST}}}", "{{domain}}")],
        unit="percentunit", stack=True, maximum=1)
    d.timeseries(
        "Share of host disk bytes",
        "Each domain's share of all bytes read and written on the host's VBDs (5 minutes).",
        [target(f"xen_domain:vbd_bytes:share_rate5m{{{HOST}}}", "{{domain}}")],
        unit="percentunit", stack=True, maximum=1)
    d.timeseries(
        "Share of host network bytes",
        "Each domain's share of all vif bytes on the host (5 minutes).",
        [target(f"xen_domain:vif_bytes:share_rate5m{{{HOST}}}", "{{domain}}")],
        unit="percentunit", stack=True, maximum=1)
    d.timeseries(
        "Share of host CPU",
        "Each domain's CPU use as a share of the host's physical CPUs (5 minutes).",
        [target(f"xen_domain:cpu_seconds:rate5m{{{HOST}}} / on (job, instance) group_left xen_host_cpus{{{HOST}}}",
                "{{domain}}")],
        unit="percentunit", stack=True)
    d.timeseries(
        "Host disk load",
        "All domains' disk requests per second (left) and bytes per second (right).",
        [target(f"xen_host:vbd_requests:rate5m{{{HOST}}}", "requests/s"),
         target(f"xen_host:vbd_bytes:rate5m{{{HOST}}}", "bytes/s")],
        overrides=[{"matcher": {"id": "byName", "options": "bytes/s"},
                    "properties": [{"id": "custom.axisPlacement", "value": "right"},
                                   {"id": "unit", "value": "Bps"}]}])
    d.timeseries(
        "Saturated VBDs on the host",
        "VBDs that meet XenVbdRingSaturated's condition now (before its 15 minutes).",
        [target(f"sum by (job, instance) (xen_vbd:saturated:bool5m{{{HOST}}})", "{{instance}}")])
    return d


DASHBOARDS = {
    "xen-host.json": host_dashboard,
    "xen-domain.json": domain_dashboard,
    "latency.json": latency_dashboard,
    "xen-noisy-neighbour.json": noisy_dashboard,
}


def render(build):
    return json.dumps(build().json(), indent=2, sort_keys=True) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"dashboards not current (run python3 dashboards/generate.py): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
