// Everything a user may change without forking: selectors, the cluster label, thresholds,
// `for` durations, severity names, URLs, dashboard uids and tags. Override with
//   (import 'mixin.libsonnet') + { _config+:: { xenExporterSelector: 'job="xen-prod"' } }
{
  _config+:: {
    // Selects the xen_exporter targets (Xen and latency series come from the same exporter).
    xenExporterSelector: 'job="xen_exporter"',
    // The label that tells clusters/fleets apart. Every recording rule and every alert's
    // aggregation keeps it, so one global ruler (Thanos, Mimir) can evaluate all of them.
    clusterLabel: 'cluster',
    // The label of a latency target naming its exchange (LatencyExchangeDegraded groups by it).
    exchangeLabel: 'ix',
    // The domain that runs the backends.
    dom0Name: 'Domain-0',

    // Severity label values: most Alertmanager routing trees key on these two.
    criticalSeverity: 'critical',
    warningSeverity: 'warning',

    // Absolute URLs: alert annotations must be clickable in a pager.
    runbookURLPattern: 'https://example.invalid/xen_exporter/blob/main/docs/runbooks/%s.md',
    grafanaURL: 'https://grafana.example.invalid',

    // Per-VBD saturation: a VBD counts as saturated while any signal its backend has is past
    // its threshold (rate windows of 5 minutes):
    //  - blkback: average queue depth of the backing device >= this share of the ring capacity.
    //    Measured on the real Xen lab: 64 direct writers against a ring of 64 (2 queues x 32)
    //    kept 60 requests in flight at peaks but an average depth of 43-46 (0.67-0.72), the
    //    rest of the time spent in blkback and the guest; 0.8 would never see a full ring.
    vbdQueueDepthRatio: 0.6,
    //  - tapdisk3: average ring occupancy >= this share of the ring capacity,
    vbdRingOccupancyRatio: 0.8,
    //    or average service time per request above this (seconds);
    vbdServiceTimeSeconds: 0.05,
    //  - any backend where VBD_OO moves: more than this share of requests found the ring full
    //    and more than vbdOutOfRequestsPerSecond VBD_OO per second.
    vbdOutOfRequestsRatio: 0.1,
    vbdOutOfRequestsPerSecond: 1,
    // Duty cycle: XenVbdSaturated fires when a VBD was saturated more than this share of the
    // window (a bursty VBD saturated 75 % of two hours fires; 15 unbroken minutes are not needed).
    vbdDutyCycleWindow: '30m',
    vbdDutyCycleRatio: 0.5,
    vbdSaturatedFor: '5m',
    // ...and keeps firing over the dips between bursts (Prometheus >= 2.42).
    vbdSaturatedKeepFiringFor: '15m',
    // XenHostStorageSaturated (critical): at least this many VBDs, or VBDs of this many domains,
    // over the duty-cycle threshold on one Dom0 at once.
    hostSaturatedVbds: 3,
    hostSaturatedDomains: 2,
    hostStorageSaturatedFor: '5m',
    // XenVbdStalled (critical): requests in flight on the backing device and no completion.
    vbdStallWindow: '5m',
    vbdStallFor: '5m',
    vbdErrorFor: '10m',

    // Lifecycle and capacity.
    domainRestartWindow: '15m',
    domainVanishedWindow: '30m',
    domainDyingFor: '10m',
    domainPausedFor: '30m',
    domainCrashedFor: '1m',
    dom0CpuRatio: 0.9,
    dom0CpuFor: '15m',
    hostCpuRatio: 0.9,
    hostCpuFor: '30m',
    // Free memory in Xen must hold the largest guest this many times over (to restart it or
    // migrate one like it in); a share of total memory fires forever on packed hosts.
    memoryHeadroomLargestGuests: 1,
    memoryHeadroomFor: '30m',
    noisyNeighbourShare: 0.5,
    noisyNeighbourFor: '10m',
    vifTxRingFullRatio: 0.9,
    vifTxRingFullFor: '10m',
    netbackRxStalledFor: '5m',

    // Exporter and prober health.
    exporterDownFor: '5m',
    exporterAbsentFor: '15m',
    collectorFailingFor: '15m',
    reloadFailedFor: '5m',
    exporterRestartsPerHour: 3,
    // Prometheus's scrape_timeout for the exporter's job; the scrape and every collector should
    // stay below scrapeDurationRatio of it.
    scrapeTimeoutSeconds: 10,
    scrapeDurationRatio: 0.8,
    scrapeSlowFor: '15m',
    proberStoppedFor: '10m',
    dnsFailureRatio: 0.5,
    dnsFailureWindow: '1h',
    dnsFailureFor: '30m',

    // Latency.
    latencyBaselineFactor: 2,
    latencyBaselineFloorSeconds: 0.005,
    latencyAboveBaselineFor: '15m',
    latencyLossRatio: 0.05,
    latencyLossFor: '10m',
    // Only these error reasons mean the path is down (not `refused`, `socket`, `resolve`).
    latencyPathErrorReasons: 'timeout|unreachable',
    latencyUnreachableFor: '10m',
    // LatencyExchangeDegraded (critical): at least this share, and this many, of one exchange's
    // targets above their baseline or losing probes.
    exchangeDegradedShare: 0.5,
    exchangeDegradedMinTargets: 2,
    exchangeDegradedFor: '5m',

    // Dashboards.
    dashboardUids: {
      fleet: 'xen-exporter-fleet',
      host: 'xen-exporter-host',
      domain: 'xen-exporter-domain',
      latency: 'xen-exporter-latency',
      noisy: 'xen-exporter-noisy-neighbour',
    },
    dashboardTitles: {
      fleet: 'Xen fleet',
      host: 'Xen host',
      domain: 'Xen domain',
      latency: 'Latency',
      noisy: 'Xen noisy neighbour',
    },
    dashboardTags: ['xen_exporter'],
    dashboardRefresh: '1m',

    // Derived: label lists used in `by`/`on` clauses.
    hostLabels: '%s, job, instance' % self.clusterLabel,
    domainLabels: self.hostLabels + ', domain',
    vbdLabels: self.domainLabels + ', device',
  },
}
