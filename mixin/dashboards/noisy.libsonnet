// The noisy-neighbour dashboard: pick the victim domain; its VBDs' saturation, and each domain's
// share of the host's disk requests, bytes, network and CPU, also while the victim was saturated.
local d = import '../lib/dashboard.libsonnet';
{
  grafanaDashboards+:: {
    local c = $._config,
    local H = c.hostLabels,
    local HOST = 'job=~"$job", instance=~"$instance"',
    local VICTIM = HOST + ', domain=~"$domain"',
    local V = c.vbdLabels,
    local t = d.target,
    local tt = d.tableTarget,
    local domainLink = {
      targetBlank: false,
      title: 'Open the domain dashboard',
      url: '/d/' + c.dashboardUids.domain + '?${__url_time_range}&var-datasource=${datasource}&var-job=${job}&var-instance=${instance}&var-domain=${__value.raw}',
    },

    'xen-noisy-neighbour.json': d.new(
      c, 'noisy',
      "Who is hurting my guest? Pick the victim domain: its VBDs' saturation, and each domain's share of the host's disk requests, disk bytes, network and CPU, and which domains took the disk while the victim was saturated.",
      [
        d.datasourceVariable,
        d.queryVariable('job', 'Job', 'label_values(xen_up, job)'),
        d.queryVariable('instance', 'Host', 'label_values(xen_up{job=~"$job"}, instance)'),
        d.queryVariable('domain', 'Victim', 'label_values(xen_vbd_info{%s}, domain)' % HOST, sort=7),
      ],
      [
        d.timeseries('Victim: saturation duty cycle', "Share of the last %s each of the victim's VBDs was saturated (XenVbdSaturated above %g, dashed)." % [c.vbdDutyCycleWindow, c.vbdDutyCycleRatio],
                     [t('xen_vbd:saturated:duty_cycle{%s} * on (%s) group_left (backend) xen_vbd_info{%s}' % [VICTIM, V, VICTIM], '{{device}} ({{backend}})')],
                     unit='percentunit', max=1, threshold=c.vbdDutyCycleRatio),
        d.timeseries('Victim: IOPS and VBD_OO', "The victim's requests per second, and its full-ring events where VBD_OO moves.",
                     [
                       t('rate(xen_vbd_read_requests_total{%s}[$__rate_interval]) + rate(xen_vbd_write_requests_total{%s}[$__rate_interval])' % [VICTIM, VICTIM], '{{device}} IOPS'),
                       t('rate(xen_vbd_out_of_requests_total{%s}[$__rate_interval])' % VICTIM, '{{device}} VBD_OO/s'),
                     ]),
        d.table('Who is hurting $domain?',
                "Per domain: its average share of the host's disk requests during the moments the victim had a saturated VBD in the selected time range (0 when it never saturated), and its share now of disk requests, disk bytes, network bytes and CPU.",
                [
                  tt('sum_over_time((xen_domain:vbd_requests:share_rate5m{%s} * on (%s) group_left xen_domain:vbd_saturated:bool5m{%s})[$__range:$__interval]) / on (%s) group_left clamp_min(sum_over_time(xen_domain:vbd_saturated:bool5m{%s}[$__range:$__interval]), 1)'
                     % [HOST, H, VICTIM, H, VICTIM]),
                  tt('xen_domain:vbd_requests:share_rate5m{%s}' % HOST),
                  tt('xen_domain:vbd_bytes:share_rate5m{%s}' % HOST),
                  tt('xen_domain:vif_bytes:share_rate5m{%s}' % HOST),
                  tt('xen_domain:cpu_seconds:rate5m{%s} / on (%s) group_left xen_host_cpus{%s}' % [HOST, H, HOST]),
                ],
                [
                  ['Disk share while victim saturated', 'percentunit', [[null, 'transparent'], [c.noisyNeighbourShare, 'orange']]],
                  ['Disk requests share', 'percentunit'],
                  ['Disk bytes share', 'percentunit'],
                  ['Network share', 'percentunit'],
                  ['CPU share', 'percentunit'],
                ],
                overrides=[{ matcher: { id: 'byName', options: 'domain' }, properties: [{ id: 'links', value: [domainLink] }] }],
                sortBy='Disk share while victim saturated', h=10),
        d.timeseries('Share of host disk requests', "Each domain's share of all VBD requests on the host (5 minutes).",
                     [t('xen_domain:vbd_requests:share_rate5m{%s}' % HOST, '{{domain}}')], unit='percentunit', stack=true, max=1),
        d.timeseries('Share of host disk bytes', "Each domain's share of all bytes read and written on the host's VBDs (5 minutes).",
                     [t('xen_domain:vbd_bytes:share_rate5m{%s}' % HOST, '{{domain}}')], unit='percentunit', stack=true, max=1),
        d.timeseries('Share of host network bytes', "Each domain's share of all vif bytes on the host (5 minutes).",
                     [t('xen_domain:vif_bytes:share_rate5m{%s}' % HOST, '{{domain}}')], unit='percentunit', stack=true, max=1),
        d.timeseries('Share of host CPU', "Each domain's CPU use as a share of the host's physical CPUs (5 minutes).",
                     [t('xen_domain:cpu_seconds:rate5m{%s} / on (%s) group_left xen_host_cpus{%s}' % [HOST, H, HOST], '{{domain}}')], unit='percentunit', stack=true),
        d.timeseries('Host disk load', "All domains' disk requests per second (left) and bytes per second (right).",
                     [t('xen_host:vbd_requests:rate5m{%s}' % HOST, 'requests/s'), t('xen_host:vbd_bytes:rate5m{%s}' % HOST, 'bytes/s')],
                     overrides=[{ matcher: { id: 'byName', options: 'bytes/s' }, properties: [{ id: 'custom.axisPlacement', value: 'right' }, { id: 'unit', value: 'Bps' }] }]),
        d.timeseries('Saturated VBDs on the host', 'VBDs saturated now (the 5-minute signal) and over the duty-cycle threshold.',
                     [
                       t('sum by (job, instance) (xen_vbd:saturated:bool5m{%s})' % HOST, 'saturated now'),
                       t('xen_host:vbds_saturated:count{%s}' % HOST, 'over the duty cycle'),
                     ]),
      ],
      ['xen'],
    ),
  },
}
