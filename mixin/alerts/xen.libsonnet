// Alerts of the hypervisor side and of the exporter itself. Pages (critical) only where the
// product's promise is: storage saturated host-wide, a guest's disk stalled, the exporter gone.
// Everything else is a warning. Each alert's `# Threshold:` comment gives the source of its
// threshold (tools/check-dashboards.py requires one).
local a = import '../lib/alert.libsonnet';
{
  prometheusAlerts+:: {
    local c = $._config,
    local s(metric, extra='') = metric + '{' + c.xenExporterSelector + (if extra == '' then '' else ', ' + extra) + '}',
    local V = c.vbdLabels,
    local D = c.domainLabels,
    local H = c.hostLabels,
    local vbd = '{{ $labels.device }} of {{ $labels.domain }}',
    groups+: [
      {
        name: 'xen.alerts',
        rules: [
          # Threshold: a VBD saturated (backing queue depth >= 80 % of the ring's capacity on
          # blkback; ring occupancy >= 80 % or service time > 50 ms on tapdisk3; > 10 % of requests
          # and > 1/s finding the ring full where VBD_OO moves) more than half of 30 minutes. A duty
          # cycle, not `for: 15m` unbroken: a VBD saturated 75 % of two hours in bursts must fire.
          // The `fix` label says where the fix is: the guest set up fewer ring pages or queues
          // than the backend offers (guest), or it uses all of them (storage).
          a.new(c, 'XenVbdSaturated', c.warningSeverity,
            |||
              label_replace(
                (xen_vbd:saturated:duty_cycle > %(duty)g) * on (%(V)s) group_left (backend) %(info)s
                  and on (%(V)s) xen_vbd:ring_below_backend_offer:bool == 1,
                "fix", "guest", "", "")
              or
              label_replace(
                (xen_vbd:saturated:duty_cycle > %(duty)g) * on (%(V)s) group_left (backend) %(info)s
                  unless on (%(V)s) xen_vbd:ring_below_backend_offer:bool == 1,
                "fix", "storage", "", "")
            ||| % { duty: c.vbdDutyCycleRatio, V: V, info: s('xen_vbd_info') },
            c.vbdSaturatedFor,
            'VBD ' + vbd + ' saturated',
            'VBD ' + vbd + ' ({{ $labels.backend }}) was saturated {{ $value | humanizePercentage }} of the last '
            + c.vbdDutyCycleWindow + '. {{ if eq $labels.fix "guest" }}The guest uses fewer ring pages or queues than the backend offers: fix in the guest (more ring pages or queues in its blkfront).{{ else }}The guest already uses every ring page and queue the backend offers: the storage behind the VBD does not keep up; fix in the storage.{{ end }}',
            'domain', ['domain']) + { keep_firing_for: c.vbdSaturatedKeepFiringFor },
          # Threshold: 3 VBDs, or VBDs of 2 domains, of one Dom0 saturated (XenVbdSaturated's
          # duty cycle) at once for 5 minutes: several guests at once point at the shared storage or
          # at Dom0, not at one guest's workload. This is the page the product promises.
          a.new(c, 'XenHostStorageSaturated', c.criticalSeverity,
            |||
              xen_host:vbds_saturated:count >= %(vbds)g
              or
              (xen_host:vbds_saturated:count and on (%(H)s) xen_host:domains_saturated:count >= %(domains)g)
            ||| % { vbds: c.hostSaturatedVbds, domains: c.hostSaturatedDomains, H: H },
            c.hostStorageSaturatedFor,
            'Storage saturated host-wide',
            '{{ $value }} VBDs of {{ $labels.instance }} have been saturated most of the last ' + c.vbdDutyCycleWindow
            + ', across several domains: the storage behind them (or Dom0) does not keep up.',
            'host'),
          # Threshold: requests in flight on the VBD's backing device (or tapdisk3's ring) in every
          # sample of 5 minutes and not one completed, for 5 minutes more: the guest's disk hangs.
          # No counter moves in a stall, so only in-flight against completions can see it.
          a.new(c, 'XenVbdStalled', c.criticalSeverity,
            |||
              (
                min_over_time(%(inFlight)s[%(w)s]) > 0
                  and on (%(V)s)
                (increase(%(reads)s[%(w)s]) + increase(%(writes)s[%(w)s])) == 0
              )
              or
              (
                min_over_time(%(outstanding)s[%(w)s]) > 0
                  and on (%(V)s)
                (increase(%(tReads)s[%(w)s]) + increase(%(tWrites)s[%(w)s])) == 0
                  and on (%(V)s) %(tapdisk)s
              )
            ||| % {
              w: c.vbdStallWindow,
              V: V,
              inFlight: s('xen_vbd_backing_in_flight_requests'),
              reads: s('xen_vbd_backing_reads_completed_total'),
              writes: s('xen_vbd_backing_writes_completed_total'),
              outstanding: s('xen_vbd_ring_requests_outstanding'),
              tReads: s('xen_vbd_read_requests_total'),
              tWrites: s('xen_vbd_write_requests_total'),
              tapdisk: s('xen_vbd_info', 'backend="tapdisk3"'),
            },
            c.vbdStallFor,
            'VBD ' + vbd + ' stalled',
            '{{ $value }} requests of VBD ' + vbd + ' have been in flight for ' + c.vbdStallWindow
            + ' and none completed: the guest\'s disk hangs.',
            'domain', ['domain']),
          # Threshold: any VBD whose statistics libxenstat cannot read (Xen 4.13+ sets the error
          # flag) for 10 min. A VBD in hotplug/teardown is unreadable for seconds.
          a.new(c, 'XenVbdError', c.warningSeverity,
            '%s == 1' % s('xen_vbd_error'), c.vbdErrorFor,
            'Statistics of VBD ' + vbd + ' unreadable',
            'libxenstat reports an error reading the VBD\'s statistics for ' + c.vbdErrorFor + '; its counters are frozen.',
            'domain', ['domain']),
          # Threshold: a domain whose domid changed within 15 minutes (two xen_domain_info series
          # for one name): it was destroyed and created again (crash with on_crash=restart, a
          # reboot). xl's default on_crash is destroy/restart, so `crashed` rarely outlives a scrape.
          a.new(c, 'XenDomainRestarted', c.warningSeverity,
            'count by (%s) (last_over_time(%s[%s])) > 1'
            % [D, s('xen_domain_info', 'domain!="%s"' % c.dom0Name), c.domainRestartWindow],
            null,
            'Domain {{ $labels.domain }} restarted',
            'Domain {{ $labels.domain }} had {{ $value }} domids in the last ' + c.domainRestartWindow + ': it was destroyed and created again.',
            'domain', ['domain']),
          # Threshold: a domain seen in the last 30 minutes is gone while the exporter reads Xen:
          # destroyed, or migrated away. Expected after planned work; a warning, never a page.
          a.new(c, 'XenDomainVanished', c.warningSeverity,
            |||
              group by (%(D)s) (last_over_time(%(info)s[%(w)s]))
                unless on (%(D)s) %(info)s
                and on (%(H)s) %(up)s == 1
            ||| % { D: D, H: H, w: c.domainVanishedWindow, info: s('xen_domain_info'), up: s('xen_up') },
            null,
            'Domain {{ $labels.domain }} vanished',
            'Domain {{ $labels.domain }} existed in the last ' + c.domainVanishedWindow + ' and is gone now (destroyed or migrated away).',
            'host'),
          # Threshold: a domain in state dying for 10 min. Teardown takes seconds; a domain that
          # stays dying holds its memory (grants or pages still mapped by a backend in Dom0).
          a.new(c, 'XenDomainStuckDying', c.warningSeverity,
            '%s == 1' % s('xen_domain_state', 'state="dying"'), c.domainDyingFor,
            'Domain {{ $labels.domain }} stuck dying',
            'Domain {{ $labels.domain }} has been dying for ' + c.domainDyingFor + ': a backend still holds its pages.',
            'domain', ['domain']),
          # Threshold: a domain paused for 30 min. Pauses for save, migration or snapshots last
          # seconds to minutes; 30 min is a forgotten `xl pause` or a toolstack that died mid-way.
          a.new(c, 'XenDomainPaused', c.warningSeverity,
            '%s == 1' % s('xen_domain_state', 'state="paused"'), c.domainPausedFor,
            'Domain {{ $labels.domain }} paused',
            'Domain {{ $labels.domain }} has been paused for ' + c.domainPausedFor + '.',
            'domain', ['domain']),
          # Threshold: any domain reported crashed for 1 min (on_crash=preserve keeps it for
          # inspection; a crashed domain never recovers by itself).
          a.new(c, 'XenDomainCrashed', c.warningSeverity,
            '%s == 1' % s('xen_domain_state', 'state="crashed"'), c.domainCrashedFor,
            'Domain {{ $labels.domain }} crashed',
            'Xen reports domain {{ $labels.domain }} in state crashed.',
            'domain', ['domain']),
          # Threshold: Dom0 uses more than 90 % of its online VCPUs for 15 min. Dom0 runs every
          # blkback, netback and qemu of the host: when it is CPU-bound every guest's I/O waits.
          a.new(c, 'XenDom0CpuSaturated', c.warningSeverity,
            'xen_domain:cpu_usage_per_vcpu:ratio_rate5m{domain="%s"} > %g' % [c.dom0Name, c.dom0CpuRatio],
            c.dom0CpuFor,
            'Dom0 CPU saturated',
            'Dom0 has used {{ $value | humanizePercentage }} of its online VCPUs for ' + c.dom0CpuFor + '; every backend runs there.',
            'domain', ['domain']),
          # Threshold: all domains together use more than 90 % of the host's physical CPUs for
          # 30 min: VCPUs wait for a physical CPU (steal time in the guests).
          a.new(c, 'XenHostCpuSaturated', c.warningSeverity,
            'xen_host:cpu_usage:ratio_rate5m > %g' % c.hostCpuRatio, c.hostCpuFor,
            'Host CPU saturated',
            'Domains use {{ $value | humanizePercentage }} of the physical CPUs of {{ $labels.instance }}.',
            'host'),
          # Threshold: free memory in Xen below the memory of the largest guest (x 1) for 30 min:
          # that guest could not be restarted here after a crash, nor one like it migrated in. An
          # absolute headroom, not a percentage (packed hosts and Dom0 autoballoon sit at ~0 %).
          a.new(c, 'XenHostMemoryHeadroomLow', c.warningSeverity,
            '%s < on (%s) %g * xen_host:largest_guest_memory:bytes'
            % [s('xen_host_memory_free_bytes'), H, c.memoryHeadroomLargestGuests],
            c.memoryHeadroomFor,
            'Host memory headroom below the largest guest',
            'Only {{ $value | humanize1024 }}B free in Xen on {{ $labels.instance }}: less than the largest guest needs to be restarted or migrated in.',
            'host'),
          # Threshold: one domain issues more than half of the host's disk requests while a VBD of
          # another domain is saturated, for 10 min: the usual noisy neighbour on shared storage.
          a.new(c, 'XenNoisyNeighbour', c.warningSeverity,
            |||
              xen_domain:vbd_requests:share_rate5m > %g
                and on (%s) xen_domain:other_domains_saturated_vbds:count5m > 0
            ||| % [c.noisyNeighbourShare, D],
            c.noisyNeighbourFor,
            'Domain {{ $labels.domain }} dominates the disk I/O',
            '{{ $labels.domain }} issues {{ $value | humanizePercentage }} of the host\'s disk requests while another domain\'s VBD is saturated.',
            'noisy', ['domain']),
          # Threshold: netback stopped a vif's RX queue for 5 min, well past netback's own
          # rx_stall_timeout (60 s): the guest's receive path is dead, not merely busy.
          a.new(c, 'XenNetbackRxQueueStalled', c.warningSeverity,
            '%s == 1' % s('xen_vif_rx_queue_stalled'), c.netbackRxStalledFor,
            'Netback RX queue {{ $labels.queue }} of {{ $labels.device }} ({{ $labels.domain }}) stalled',
            'Netback has stopped the RX queue for ' + c.netbackRxStalledFor + ': the guest posts no receive buffers, packets to it are dropped.',
            'domain', ['domain']),
          # Threshold: a vif's TX ring more than 90 % full in every sample of 5 min, for 10 min
          # more: netback does not keep up with the guest's transmits (short peaks are normal).
          a.new(c, 'XenVifTxRingFull', c.warningSeverity,
            'min_over_time(xen_vif:ring_utilisation:ratio{direction="tx"}[5m]) > %g' % c.vifTxRingFullRatio,
            c.vifTxRingFullFor,
            'TX ring {{ $labels.queue }} of {{ $labels.device }} ({{ $labels.domain }}) full',
            'The netback TX ring has stayed at least {{ $value | humanizePercentage }} full: netback does not keep up with the guest\'s transmits.',
            'domain', ['domain']),
          # Threshold: a collector failing for 15 min; shorter gaps are single bad scrapes.
          a.new(c, 'XenCollectorFailing', c.warningSeverity,
            '%s == 0' % s('xen_exporter_collector_success'), c.collectorFailingFor,
            'xen_exporter collector {{ $labels.collector }} failing',
            'The collector has reported failure for ' + c.collectorFailingFor + '; its metrics are stale or missing.',
            'host'),
          # Threshold: target down 5 min, as node-mixin/kube-prometheus TargetDown. Without the
          # exporter nothing else on this host can alert: page.
          a.new(c, 'XenExporterDown', c.criticalSeverity,
            'up{%s} == 0' % c.xenExporterSelector, c.exporterDownFor,
            'xen_exporter down',
            'Prometheus cannot scrape xen_exporter on {{ $labels.instance }}; no Xen or latency alert can fire for it.',
            'host'),
          # Threshold: no target of the job at all for 15 min (`up == 0` cannot fire for a target
          # that service discovery lost): the whole fleet is unwatched.
          a.new(c, 'XenExporterAbsent', c.criticalSeverity,
            'absent(up{%s})' % c.xenExporterSelector, c.exporterAbsentFor,
            'No xen_exporter target ({{ $labels.job }}) is scraped',
            'Prometheus has no target matching ' + std.strReplace(c.xenExporterSelector, '"', "'") + ': no Xen or latency alert can fire.',
            'fleet', where=false),
          # Threshold: the last reload of the configuration or web configuration failed, for
          # 5 min: the exporter runs the old configuration and the next restart will fail.
          a.new(c, 'XenExporterReloadFailed', c.warningSeverity,
            |||
              label_replace(%s == 0, "file", "config", "", "")
              or
              label_replace(%s == 0, "file", "web-config", "", "")
            ||| % [s('xen_exporter_config_last_reload_successful'), s('xen_exporter_web_config_last_reload_successful')],
            c.reloadFailedFor,
            'xen_exporter {{ $labels.file }} reload failed',
            'The last reload of the exporter\'s {{ $labels.file }} file failed; it runs the previous one.',
            'host'),
          # Threshold: the exporter started more than 3 times in an hour: a crash loop (systemd
          # restarts it, so `up` barely drops).
          a.new(c, 'XenExporterRestarting', c.warningSeverity,
            'changes(%s[1h]) > %g' % [s('process_start_time_seconds'), c.exporterRestartsPerHour],
            null,
            'xen_exporter restarting',
            'xen_exporter restarted {{ $value }} times in the last hour.',
            'host'),
          # Threshold: the scrape, or one collector, took on average more than 80 % of the scrape
          # timeout (10 s) over 10 min, for 15 min: a little more and scrapes fail.
          a.new(c, 'XenExporterScrapeSlow', c.warningSeverity,
            |||
              avg_over_time(scrape_duration_seconds{%(sel)s}[10m]) > %(limit)g
              or
              max by (%(H)s, collector) (avg_over_time(%(collector)s[10m])) > %(limit)g
            ||| % {
              sel: c.xenExporterSelector,
              H: H,
              collector: s('xen_exporter_collector_duration_seconds'),
              limit: c.scrapeTimeoutSeconds * c.scrapeDurationRatio,
            },
            c.scrapeSlowFor,
            'xen_exporter scrape slow',
            'The scrape{{ with $labels.collector }} (collector {{ . }}){{ end }} takes {{ $value | humanizeDuration }}, near the ' + c.scrapeTimeoutSeconds + ' s timeout.',
            'host'),
        ],
      },
    ],
  },
}
