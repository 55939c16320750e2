// One alerting rule with the annotations every alert carries: a summary naming the instance and
// the cluster, an absolute runbook_url from the pattern, and a dashboard_url that opens the
// right dashboard on the right host (`vars`: more of the alert's labels as dashboard variables).
{
  new(config, name, severity, expr, forDuration, summary, description, dashboard, vars=[], where=true)::
    local c = config;
    {
      alert: name,
      expr: expr,
      [if forDuration != null then "for"]: forDuration,
      labels: { severity: severity },
      annotations: {
        summary: summary
                 + (if where then ' on {{ $labels.instance }}{{ with $labels.%s }} ({{ . }}){{ end }}' % c.clusterLabel else ''),
        description: description,
        runbook_url: c.runbookURLPattern % name,
        dashboard_url: c.grafanaURL + '/d/' + c.dashboardUids[dashboard]
                       + '?var-job={{ $labels.job }}&var-instance={{ $labels.instance }}'
                       + std.join('', ['&var-%s={{ $labels.%s }}' % [v, v] for v in vars]),
      },
    },
}
