// A user's override of _config, as a user would write it in their own repository: other job
// selector, cluster label, severity names, thresholds and URLs. .ci/dashboards.sh renders it with
// mixin/render.sh, runs promtool on the result and mixin/tests/check_override.py on it.
(import '../mixin.libsonnet') + {
  _config+:: {
    xenExporterSelector: 'job="xen-prod", env="prod"',
    clusterLabel: 'fleet',
    exchangeLabel: 'exchange',
    criticalSeverity: 'page',
    warningSeverity: 'ticket',
    vbdDutyCycleRatio: 0.7,
    vbdDutyCycleWindow: '1h',
    vbdSaturatedFor: '10m',
    hostSaturatedVbds: 5,
    latencyLossRatio: 0.02,
    runbookURLPattern: 'https://wiki.example.invalid/ops/xen/%s',
    grafanaURL: 'https://grafana.ops.example.invalid',
    dashboardUids+: { host: 'my-xen-host' },
    dashboardTags: ['ops', 'xen_exporter'],
  },
}
