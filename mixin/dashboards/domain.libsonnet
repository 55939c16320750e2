// The Xen domain dashboard: one domain's VCPUs, memory, vifs, and every VBD's load and
// saturation read the way its backend allows (backing-device queue depth against the ring's
// capacity on blkback, service time and ring occupancy on tapdisk3, VBD_OO where it moves).
local d = import '../lib/dashboard.libsonnet';
{
  grafanaDashboards+:: {
    local c = $._config,
    local H = c.hostLabels,
    local HOST = 'job=~"$job", instance=~"$instance"',
    local DOMAIN = HOST + ', domain=~"$domain"',
    local V = c.vbdLabels,
    local t = d.target,
    local tt = d.tableTarget,
    local dashed(regex) = {
      matcher: { id: 'byRegexp', options: regex },
      properties: [{ id: 'custom.lineStyle', value: { dash: [10, 10], fill: 'dash' } }],
    },
    local transmitBelow = [{
      matcher: { id: 'byRegexp', options: '.*transmit.*' },
      properties: [{ id: 'custom.transformType', value: 'negative-Y' }],
    }],
    // Adds the VBD's backend kind to a per-VBD series, for legends and tables.
    local withBackend(expr) = '%s * on (%s) group_left (backend) xen_vbd_info{%s}' % [expr, V, DOMAIN],

    'xen-domain.json': d.new(
      c, 'domain',
      "One Xen domain: per-VCPU CPU, memory, every vif's traffic, errors and drops, every VBD's IOPS, bytes and saturation (backing queue depth against the ring's capacity on blkback, service time and ring occupancy on tapdisk3, VBD_OO where it moves), and netback ring occupancy.",
      [
        d.datasourceVariable,
        d.queryVariable('job', 'Job', 'label_values(xen_up, job)'),
        d.queryVariable('instance', 'Host', 'label_values(xen_up{job=~"$job"}, instance)'),
        d.queryVariable('domain', 'Domain', 'label_values(xen_domain_info{%s}, domain)' % HOST, sort=7),
      ],
      [
        d.row('Domain'),
        d.stat('State', "Xen's state of the domain (xl list).", [t('xen_domain_state{%s} == 1' % DOMAIN, '{{state}}', instant=true)], textMode='name'),
        d.stat('VCPUs', 'VCPUs of the domain, online or not.', [t('xen_domain_vcpus{%s}' % DOMAIN)]),
        d.stat('Memory', 'Memory the domain has now.', [t('xen_domain_memory_bytes{%s}' % DOMAIN)], unit='bytes'),
        d.stat('Memory limit', 'Maximum memory of the domain (no value: unlimited).', [t('xen_domain_memory_max_bytes{%s}' % DOMAIN)], unit='bytes'),
        d.stat('CPU (of VCPUs)', 'Share of the online VCPUs used over 5 minutes.', [t('xen_domain:cpu_usage_per_vcpu:ratio_rate5m{%s}' % DOMAIN)],
               unit='percentunit', steps=[[null, 'green'], [0.8, 'orange'], [0.95, 'red']]),
        d.stat('Saturated VBDs', 'VBDs of this domain saturated more than half of the last ' + c.vbdDutyCycleWindow + ' (XenVbdSaturated).',
               [t('sum(xen_vbd:saturated:duty_cycle{%s} > bool %g)' % [DOMAIN, c.vbdDutyCycleRatio])], steps=[[null, 'green'], [1, 'red']]),
        d.table('Identity', 'domid, uuid and ssid (they change when the domain is re-created).',
                [tt('xen_domain_info{%s}' % DOMAIN)], [['info', 'short']], h=4, hide=['info']),
        d.row('CPU and memory'),
        d.timeseries('CPU per VCPU', 'CPU-seconds per second of each VCPU (1 = the VCPU ran all the time).',
                     [t('rate(xen_vcpu_cpu_seconds_total{%s}[$__rate_interval])' % DOMAIN, 'vcpu {{vcpu}}')], unit='percentunit', w=8),
        d.timeseries('CPU against VCPUs', 'CPU-seconds per second of the whole domain, its online VCPUs and all its VCPUs.',
                     [
                       t('rate(xen_domain_cpu_seconds_total{%s}[$__rate_interval])' % DOMAIN, 'used'),
                       t('sum(xen_vcpu_online{%s})' % DOMAIN, 'online VCPUs'),
                       t('xen_domain_vcpus{%s}' % DOMAIN, 'VCPUs'),
                     ], w=8),
        d.timeseries('Memory', 'Memory the domain has, and its limit.',
                     [t('xen_domain_memory_bytes{%s}' % DOMAIN, 'memory'), t('xen_domain_memory_max_bytes{%s}' % DOMAIN, 'limit')], unit='bytes', w=8),
        d.row('Disks: saturation'),
        d.timeseries('Queue depth against ring capacity',
                     "Requests queued per VBD against what its rings hold (dashed: queues x pages x 32). blkback: the backing device's average queue depth (weighted queue time per second) and its requests in flight; tapdisk3: requests outstanding on its ring. At the capacity the guest cannot queue more: the ring is full (VBD_OO no longer counts this on today's kernels).",
                     [
                       t(withBackend('xen_vbd:backing_queue_depth:rate5m{%s}' % DOMAIN), '{{device}} ({{backend}}) queue depth'),
                       t('xen_vbd_backing_in_flight_requests{%s}' % DOMAIN, '{{device}} in flight'),
                       t('xen_vbd_ring_requests_outstanding{%s}' % DOMAIN, '{{device}} ring occupancy'),
                       t('xen_vbd_ring_capacity_requests{%s}' % DOMAIN, '{{device}} capacity'),
                     ], overrides=[dashed('.* capacity')]),
        d.timeseries('Saturation duty cycle', 'Share of the last ' + c.vbdDutyCycleWindow + ' each VBD was saturated by its backend\'s signal; XenVbdSaturated fires above %g (dashed).' % c.vbdDutyCycleRatio,
                     [t(withBackend('xen_vbd:saturated:duty_cycle{%s}' % DOMAIN), '{{device}} ({{backend}})')],
                     unit='percentunit', max=1, threshold=c.vbdDutyCycleRatio),
        d.timeseries('Service time per request', "Average time a request took: the backing device's (blkback) or tapdisk3's own. tapdisk3 counts as saturated above %g s (dashed)." % c.vbdServiceTimeSeconds,
                     [t(withBackend('xen_vbd:service_time_seconds:rate5m{%s}' % DOMAIN), '{{device}} ({{backend}})')],
                     unit='s', threshold=c.vbdServiceTimeSeconds, w=8),
        d.timeseries('VBD_OO per request', 'Where VBD_OO moves (old kernels, blktap2): the share of requests that found the ring full; counts as saturated above %g (dashed). On today\'s blkback it stays near 0 even with a full ring.' % c.vbdOutOfRequestsRatio,
                     [t('xen_vbd:out_of_requests_per_request:rate5m{%s}' % DOMAIN, '{{device}}')],
                     unit='percentunit', threshold=c.vbdOutOfRequestsRatio, w=8),
        d.timeseries('VBD_OO', 'Times per second the backend found the ring full (xentop VBD_OO).',
                     [t('rate(xen_vbd_out_of_requests_total{%s}[$__rate_interval])' % DOMAIN, '{{device}}')], w=8),
        d.table('VBDs',
                "Every virtual disk: backend kind and backing device (major:minor), ring geometry (from xenstore) against the backend's offer, and libxenstat's error flag. 'Guest below offer' 1: the guest set up fewer ring pages or queues than the backend offers, so a full ring is fixed in the guest.",
                [tt('xen_vbd_info{%s}' % DOMAIN)] + [
                  tt('%s{%s} * on (%s) group_left (devno, backend, physical_device) xen_vbd_info{%s}' % [m, DOMAIN, V, DOMAIN])
                  for m in ['xen_vbd_ring_queues', 'xen_vbd_ring_max_queues', 'xen_vbd_ring_pages', 'xen_vbd_ring_max_pages',
                            'xen_vbd_ring_capacity_requests', 'xen_vbd:ring_below_backend_offer:bool', 'xen_vbd_error']
                ],
                [['info', 'short'], ['Queues', 'short'], ['Max queues', 'short'], ['Pages per ring', 'short'], ['Max pages', 'short'],
                 ['Capacity (requests)', 'short'], ['Guest below offer', 'short', [[null, 'transparent'], [1, 'orange']]], ['Error', 'short', [[null, 'transparent'], [1, 'red']]]],
                h=7, hide=['info', 'domain']),
        d.row('Disks: load'),
        d.timeseries('VBD IOPS', 'Read and write requests per second per virtual disk.',
                     [
                       t('rate(xen_vbd_read_requests_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} read'),
                       t('rate(xen_vbd_write_requests_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} write'),
                     ], unit='iops', w=8),
        d.timeseries('VBD throughput', 'Bytes read and written per second per virtual disk (sectors x 512).',
                     [
                       t('rate(xen_vbd_read_bytes_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} read'),
                       t('rate(xen_vbd_write_bytes_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} write'),
                     ], unit='Bps', w=8),
        d.timeseries('Flushes and discards', 'Flush (barrier) and discard requests per second per virtual disk.',
                     [
                       t('rate(xen_vbd_flush_requests_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} flush'),
                       t('rate(xen_vbd_discard_requests_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} discard'),
                     ], unit='iops', w=8),
        d.row('Network (Dom0 backend view: receive = sent by the guest)'),
        d.timeseries('vif throughput', 'Bytes per second per vif, as Dom0 sees them (transmit below zero).',
                     [
                       t('rate(xen_vif_receive_bytes_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} receive'),
                       t('rate(xen_vif_transmit_bytes_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} transmit'),
                     ], unit='Bps', min=null, overrides=transmitBelow, w=8),
        d.timeseries('vif packets', 'Packets per second per vif (transmit below zero).',
                     [
                       t('rate(xen_vif_receive_packets_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} receive'),
                       t('rate(xen_vif_transmit_packets_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} transmit'),
                     ], unit='pps', min=null, overrides=transmitBelow, w=8),
        d.timeseries('vif errors and drops', 'Errors and drops per second per vif.',
                     [
                       t('rate(xen_vif_receive_errors_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} receive errors'),
                       t('rate(xen_vif_transmit_errors_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} transmit errors'),
                       t('rate(xen_vif_receive_drops_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} receive drops'),
                       t('rate(xen_vif_transmit_drops_total{%s}[$__rate_interval])' % DOMAIN, '{{device}} transmit drops'),
                     ], unit='pps', w=8),
        d.row('Netback rings'),
        d.timeseries('Ring occupancy', 'Requests on each netback ring the backend has not consumed, as a share of the ring. TX near 100 %: netback does not keep up; RX near 0 %: the guest posts no receive buffers.',
                     [t('xen_vif:ring_utilisation:ratio{%s}' % DOMAIN, '{{device}} q{{queue}} {{direction}}')], unit='percentunit', max=1, w=8),
        d.timeseries('Responses not yet published', 'Responses netback produced but has not pushed to the guest (rsp_prod_pvt - rsp_prod).',
                     [t('xen_vif_ring_responses_unpublished{%s}' % DOMAIN, '{{device}} q{{queue}} {{direction}}')], w=8),
        d.timeseries('TX pending and dealloc', 'Guest TX requests netback holds (pending) and grants waiting to be unmapped (dealloc).',
                     [
                       t('xen_vif_tx_pending_requests{%s}' % DOMAIN, '{{device}} q{{queue}} pending'),
                       t('xen_vif_tx_dealloc_queue{%s}' % DOMAIN, '{{device}} q{{queue}} dealloc'),
                     ], w=8),
        d.timeseries('RX internal queue', "Bytes netback queued for the guest, against the queue's limit (dashed).",
                     [
                       t('xen_vif_rx_queue_bytes{%s}' % DOMAIN, '{{device}} q{{queue}}'),
                       t('xen_vif_rx_queue_max_bytes{%s}' % DOMAIN, '{{device}} q{{queue}} max'),
                     ], unit='bytes', overrides=[dashed('.* max')]),
        d.timeseries('vif queues and stalled RX queues', 'Netback queues per vif, and its RX queues netback stopped (1 each; see XenNetbackRxQueueStalled).',
                     [
                       t('xen_vif_queues{%s}' % DOMAIN, '{{device}} queues'),
                       t('xen_vif_rx_queue_stalled{%s}' % DOMAIN, '{{device}} q{{queue}} stalled'),
                     ]),
      ],
      ['xen'],
      annotations=[
        d.annotation('Domain created', 'xen_domain_info{%s} unless xen_domain_info{%s} offset 2m' % [DOMAIN, DOMAIN], '{{domain}} created', 'domid {{domid}}', 'green'),
        d.annotation('Domain destroyed', 'xen_domain_info{%s} offset 2m unless xen_domain_info{%s}' % [DOMAIN, DOMAIN], '{{domain}} destroyed', 'domid {{domid}}', 'red'),
      ],
    ),
  },
}
