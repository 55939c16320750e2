// Recording rules of the hypervisor side: per-VBD saturation signals (backing device queue depth
// for blkback, ring occupancy and service time for tapdisk3, VBD_OO where it moves), the duty
// cycle the alerts read, and the per-domain and per-host rates the dashboards read. Every rule
// keeps the cluster label, job and instance.
{
  prometheusRules+:: {
    local c = $._config,
    local s(metric, extra='') = metric + '{' + c.xenExporterSelector + (if extra == '' then '' else ', ' + extra) + '}',
    local rate(metric, extra='') = 'rate(' + s(metric, extra) + '[5m])',
    local V = c.vbdLabels,
    local D = c.domainLabels,
    local H = c.hostLabels,
    groups+: [
      {
        name: 'xen.recording',
        rules: [
          // Share of a VBD's requests that found the ring full (VBD_OO per request).
          {
            record: 'xen_vbd:out_of_requests_per_request:rate5m',
            expr: |||
              %s
                / clamp_min(%s + %s, 1e-9)
            ||| % [rate('xen_vbd_out_of_requests_total'), rate('xen_vbd_read_requests_total'), rate('xen_vbd_write_requests_total')],
          },
          // Average queue depth of the VBD's backing block device (Δ weighted queue time / Δt).
          {
            record: 'xen_vbd:backing_queue_depth:rate5m',
            expr: rate('xen_vbd_backing_queue_time_seconds_total'),
          },
          // Share of the time the backing device was busy (Δ io time / Δt; 1 = always busy).
          {
            record: 'xen_vbd:backing_utilisation:ratio_rate5m',
            expr: rate('xen_vbd_backing_io_time_seconds_total'),
          },
          // That queue depth against the requests the VBD's rings hold: 1 = the ring is full.
          {
            record: 'xen_vbd:backing_queue_depth_per_ring_capacity:ratio_rate5m',
            expr: |||
              xen_vbd:backing_queue_depth:rate5m
                / on (%s) (%s > 0)
            ||| % [V, s('xen_vbd_ring_capacity_requests')],
          },
          // Ring occupancy (tapdisk3's io_ring): requests outstanding against the ring capacity.
          {
            record: 'xen_vbd:ring_occupancy:ratio_avg5m',
            expr: |||
              avg_over_time(%s[5m])
                / on (%s) (%s > 0)
            ||| % [s('xen_vbd_ring_requests_outstanding'), V, s('xen_vbd_ring_capacity_requests')],
          },
          // Average service time per request: the backing device's (blkback), else tapdisk3's.
          {
            record: 'xen_vbd:service_time_seconds:rate5m',
            expr: |||
              (%s + %s)
                / (%s + %s > 0)
              or
              (%s + %s)
                / (%s + %s > 0)
            ||| % [
              rate('xen_vbd_backing_read_time_seconds_total'),
              rate('xen_vbd_backing_write_time_seconds_total'),
              rate('xen_vbd_backing_reads_completed_total'),
              rate('xen_vbd_backing_writes_completed_total'),
              rate('xen_vbd_read_time_seconds_total'),
              rate('xen_vbd_write_time_seconds_total'),
              rate('xen_vbd_read_requests_total'),
              rate('xen_vbd_write_requests_total'),
            ],
          },
          // 1 while a VBD is saturated by any signal its backend has, else 0 (every VBD with
          // counters gets a series). The `signal` label keeps the branches apart for `or`.
          {
            record: 'xen_vbd:saturated:bool5m',
            expr: |||
              max by (%(V)s) (
                label_replace(xen_vbd:backing_queue_depth_per_ring_capacity:ratio_rate5m > bool %(queue)g, "signal", "queue", "", "")
                or
                label_replace(xen_vbd:ring_occupancy:ratio_avg5m > bool %(ring)g, "signal", "ring", "", "")
                or
                label_replace(
                  (xen_vbd:service_time_seconds:rate5m > bool %(service)g)
                    and on (%(V)s) %(tapdisk)s,
                  "signal", "service", "", "")
                or
                label_replace(
                  (xen_vbd:out_of_requests_per_request:rate5m > bool %(ooRatio)g)
                    * (%(ooRate)s > bool %(ooPerSecond)g),
                  "signal", "oo", "", "")
              )
            ||| % {
              V: V,
              queue: c.vbdQueueDepthRatio,
              ring: c.vbdRingOccupancyRatio,
              service: c.vbdServiceTimeSeconds,
              tapdisk: s('xen_vbd_info', 'backend="tapdisk3"'),
              ooRatio: c.vbdOutOfRequestsRatio,
              ooRate: rate('xen_vbd_out_of_requests_total'),
              ooPerSecond: c.vbdOutOfRequestsPerSecond,
            },
          },
          // Share of the duty-cycle window the VBD was saturated (0..1).
          {
            record: 'xen_vbd:saturated:duty_cycle',
            expr: 'avg_over_time(xen_vbd:saturated:bool5m[%s])' % c.vbdDutyCycleWindow,
          },
          // 1 when the guest set up fewer ring pages or queues than the backend offers: a full
          // ring is then fixed in the guest (frontend), not in the storage.
          {
            record: 'xen_vbd:ring_below_backend_offer:bool',
            expr: |||
              max by (%(V)s) (
                (%(pages)s < bool on (%(V)s) %(maxPages)s)
                or
                label_replace(%(queues)s < bool on (%(V)s) %(maxQueues)s, "signal", "queues", "", "")
              )
            ||| % {
              V: V,
              pages: s('xen_vbd_ring_pages'),
              maxPages: s('xen_vbd_ring_max_pages'),
              queues: s('xen_vbd_ring_queues'),
              maxQueues: s('xen_vbd_ring_max_queues'),
            },
          },
          // VBDs and domains over the duty-cycle threshold, per host (0 when none).
          {
            record: 'xen_host:vbds_saturated:count',
            expr: 'sum by (%s) (xen_vbd:saturated:duty_cycle > bool %g)' % [H, c.vbdDutyCycleRatio],
          },
          {
            record: 'xen_host:domains_saturated:count',
            expr: 'sum by (%s) (max by (%s) (xen_vbd:saturated:duty_cycle > bool %g))' % [H, D, c.vbdDutyCycleRatio],
          },
          // Per-domain rates: the host and noisy-neighbour dashboards' tables and shares.
          {
            record: 'xen_domain:cpu_seconds:rate5m',
            expr: rate('xen_domain_cpu_seconds_total'),
          },
          {
            record: 'xen_domain:cpu_usage_per_vcpu:ratio_rate5m',
            expr: |||
              xen_domain:cpu_seconds:rate5m
                / on (%s) clamp_min(sum by (%s) (%s), 1)
            ||| % [D, D, s('xen_vcpu_online')],
          },
          {
            record: 'xen_domain:vbd_requests:rate5m',
            expr: 'sum by (%s) (%s + %s)' % [D, rate('xen_vbd_read_requests_total'), rate('xen_vbd_write_requests_total')],
          },
          {
            record: 'xen_domain:vbd_bytes:rate5m',
            expr: 'sum by (%s) (%s + %s)' % [D, rate('xen_vbd_read_bytes_total'), rate('xen_vbd_write_bytes_total')],
          },
          {
            record: 'xen_domain:vbd_out_of_requests:rate5m',
            expr: 'sum by (%s) (%s)' % [D, rate('xen_vbd_out_of_requests_total')],
          },
          {
            record: 'xen_domain:vif_bytes:rate5m',
            expr: 'sum by (%s) (%s + %s)' % [D, rate('xen_vif_receive_bytes_total'), rate('xen_vif_transmit_bytes_total')],
          },
          { record: 'xen_host:vbd_requests:rate5m', expr: 'sum by (%s) (xen_domain:vbd_requests:rate5m)' % H },
          { record: 'xen_host:vbd_bytes:rate5m', expr: 'sum by (%s) (xen_domain:vbd_bytes:rate5m)' % H },
          { record: 'xen_host:vif_bytes:rate5m', expr: 'sum by (%s) (xen_domain:vif_bytes:rate5m)' % H },
          // Host CPU used by all domains, as a share of the physical CPUs.
          {
            record: 'xen_host:cpu_usage:ratio_rate5m',
            expr: |||
              sum by (%s) (xen_domain:cpu_seconds:rate5m)
                / on (%s) clamp_min(%s, 1)
            ||| % [H, H, s('xen_host_cpus')],
          },
          // Memory of the largest guest (Dom0 excluded): what the host's free memory must hold.
          {
            record: 'xen_host:largest_guest_memory:bytes',
            expr: 'max by (%s) (%s)' % [H, s('xen_domain_memory_bytes', 'domain!="%s"' % c.dom0Name)],
          },
          // Each domain's share (0..1) of the host's disk requests, disk bytes and network bytes.
          {
            record: 'xen_domain:vbd_requests:share_rate5m',
            expr: 'xen_domain:vbd_requests:rate5m\n  / on (%s) group_left clamp_min(xen_host:vbd_requests:rate5m, 1e-9)\n' % H,
          },
          {
            record: 'xen_domain:vbd_bytes:share_rate5m',
            expr: 'xen_domain:vbd_bytes:rate5m\n  / on (%s) group_left clamp_min(xen_host:vbd_bytes:rate5m, 1e-9)\n' % H,
          },
          {
            record: 'xen_domain:vif_bytes:share_rate5m',
            expr: 'xen_domain:vif_bytes:rate5m\n  / on (%s) group_left clamp_min(xen_host:vif_bytes:rate5m, 1e-9)\n' % H,
          },
          // 1 while any VBD of the domain is saturated.
          {
            record: 'xen_domain:vbd_saturated:bool5m',
            expr: 'max by (%s) (xen_vbd:saturated:bool5m)' % D,
          },
          // Saturated VBDs of the *other* domains on the same host: host total minus the domain's own.
          {
            record: 'xen_domain:other_domains_saturated_vbds:count5m',
            expr: |||
              sum by (%s) (xen_vbd:saturated:bool5m)
                - on (%s) group_right
              sum by (%s) (xen_vbd:saturated:bool5m)
            ||| % [H, H, D],
          },
          // Netback ring occupancy (0..1): requests the backend has not consumed yet, per ring.
          {
            record: 'xen_vif:ring_utilisation:ratio',
            expr: '%s / (%s > 0)' % [s('xen_vif_ring_requests_outstanding'), s('xen_vif_ring_entries')],
          },
        ],
      },
    ],
  },
}
