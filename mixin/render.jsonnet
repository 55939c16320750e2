// What mixin/render.sh writes: the rule files Prometheus loads (one per side, its recording
// groups before its alert group) and the dashboards. `mixin` is a top-level argument so a test
// can render a user's override of _config (tests/override.jsonnet) the same way.
function(mixin=(import 'mixin.libsonnet'))
  local header = '# Generated from mixin/ by mixin/render.sh: edit the mixin, not this file.\n';
  local groups(prefix) =
    [g for g in mixin.prometheusRules.groups if std.startsWith(g.name, prefix + '.')]
    + [g for g in mixin.prometheusAlerts.groups if std.startsWith(g.name, prefix + '.')];
  local yaml(prefix) = header + std.manifestYamlDoc({ groups: groups(prefix) }, indent_array_in_object=true, quote_keys=false) + '\n';
  {
    'alerts/xen.yml': yaml('xen'),
    'alerts/latency.yml': yaml('latency'),
  } + {
    ['dashboards/' + name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
    for name in std.objectFields(mixin.grafanaDashboards)
  }
