// The xen_exporter monitoring mixin: prometheusAlerts, prometheusRules and grafanaDashboards,
// all driven by _config (config.libsonnet). Render with mixin/render.sh.
(import 'config.libsonnet')
+ (import 'rules/xen.libsonnet')
+ (import 'rules/latency.libsonnet')
+ (import 'alerts/xen.libsonnet')
+ (import 'alerts/latency.libsonnet')
+ (import 'dashboards/fleet.libsonnet')
+ (import 'dashboards/host.libsonnet')
+ (import 'dashboards/domain.libsonnet')
+ (import 'dashboards/latency.libsonnet')
+ (import 'dashboards/noisy.libsonnet')
