// Alerts of the latency probes. The page is exchange-wide ("is it us or them"); one target's
// trouble is a warning (third-party hosts the operator does not control).
local a = import '../lib/alert.libsonnet';
{
  prometheusAlerts+:: {
    local c = $._config,
    local s(metric, extra='') = metric + '{' + c.xenExporterSelector + (if extra == '' then '' else ', ' + extra) + '}',
    local H = c.hostLabels,
    local X = '%s, %s' % [H, c.exchangeLabel],
    local to = ' to {{ $labels.target }} ({{ $labels.protocol }})',
    groups+: [
      {
        name: 'latency.alerts',
        rules: [
          # Threshold: at least half, and at least 2, of one exchange's targets degraded (median
          # RTT above twice its baseline and 5 ms above it, or > 5 % of probes lost on the path)
          # for 5 min. Many targets of one exchange at once is our side (uplink, Dom0, route),
          # not one peer: this is the latency page the product promises. It must fire before its
          # targets' own LatencyTargetUnreachable (10 min after 5 without a reply), which it
          # inhibits in Alertmanager: an outage of the exchange pages once and files no tickets.
          a.new(c, 'LatencyExchangeDegraded', c.criticalSeverity,
            |||
              latency:exchange_targets_degraded:ratio{%(ix)s!=""} >= %(share)g
                and on (%(X)s) latency:exchange_targets_degraded:count >= %(min)g
            ||| % { ix: c.exchangeLabel, share: c.exchangeDegradedShare, X: X, min: c.exchangeDegradedMinTargets },
            c.exchangeDegradedFor,
            'Latency or loss to exchange {{ $labels.%s }} degraded' % c.exchangeLabel,
            '{{ $value | humanizePercentage }} of the targets at {{ $labels.%s }} are above their RTT baseline or losing probes: the path from this host, not one peer.' % c.exchangeLabel,
            'latency'),
          # Threshold: median RTT of 5 min above twice the target's daily median and at least 5 ms
          # above it, for 15 min. Twice the baseline is smokeping's "latency doubled"; the 5 ms
          # floor keeps sub-millisecond paths (0.2 ms -> 0.5 ms on the exchange LAN) quiet.
          a.new(c, 'LatencyAboveBaseline', c.warningSeverity,
            |||
              latency:rtt_seconds:p50_rate5m > %(factor)g * last_over_time(latency:rtt_seconds:baseline_p50_1d[10m])
                and latency:rtt_seconds:p50_rate5m - last_over_time(latency:rtt_seconds:baseline_p50_1d[10m]) > %(floor)g
            ||| % { factor: c.latencyBaselineFactor, floor: c.latencyBaselineFloorSeconds },
            c.latencyAboveBaselineFor,
            'RTT' + to + ' above its baseline',
            'Median RTT to {{ $labels.target }} is {{ $value | humanizeDuration }}, more than twice its median of the last day.',
            'latency', ['target']),
          # Threshold: more than 5 % of probes lost for 10 min. Single lost probes are normal (ICMP
          # rate limiting); from a few percent TCP throughput collapses (Mathis: ~ 1/sqrt(loss)).
          a.new(c, 'LatencyPacketLoss', c.warningSeverity,
            'latency:loss:ratio_rate5m > %g' % c.latencyLossRatio, c.latencyLossFor,
            'Packet loss' + to,
            '{{ $value | humanizePercentage }} of probes to {{ $labels.target }} got no reply.',
            'latency', ['target']),
          # Threshold: not one reply for 5 min, and most probes failed by timeout or an unreachable
          # reply (the path), held for 10 min more: slower than LatencyExchangeDegraded, so an
          # exchange-wide outage is inhibited before any of its targets files a ticket. A TCP `refused`
          # (the path works), `socket` or `resolve` error is not the path: they stay silent here.
          a.new(c, 'LatencyTargetUnreachable', c.warningSeverity,
            |||
              %s == 0
                and latency:path_loss:ratio_rate5m > 0.5
            ||| % ('rate(%s[5m])' % s('latency_responses_total')),
            c.latencyUnreachableFor,
            'Target {{ $labels.target }} ({{ $labels.protocol }}) unreachable',
            'No reply from {{ $labels.target }} to any probe for at least 5 minutes: probes time out or come back unreachable.',
            'latency', ['target']),
          # Threshold: the prober sent no probe at all for 10 min while the exporter is scraped:
          # its probe threads stopped, so every latency alert is blind.
          a.new(c, 'LatencyProberStopped', c.warningSeverity,
            |||
              sum by (%(H)s) (rate(%(requests)s[5m])) == 0
                and on (%(H)s) up{%(sel)s} == 1
            ||| % { H: H, requests: s('latency_requests_total'), sel: c.xenExporterSelector },
            c.proberStoppedFor,
            'Latency prober stopped sending',
            'xen_exporter on {{ $labels.instance }} has sent no probe for ' + c.proberStoppedFor + '; latency alerts are blind.',
            'latency'),
          # Threshold: more than half of a target's host name lookups failed over an hour, for
          # 30 min: the prober keeps the last good address, which may be stale by now.
          a.new(c, 'LatencyDnsFailures', c.warningSeverity,
            'rate(%s[%s]) / (rate(%s[%s]) > 0) > %g'
            % [s('latency_dns_failures_total'), c.dnsFailureWindow, s('latency_dns_lookups_total'), c.dnsFailureWindow, c.dnsFailureRatio],
            c.dnsFailureFor,
            'DNS lookups of {{ $labels.target }} failing',
            '{{ $value | humanizePercentage }} of the lookups of {{ $labels.target }} failed over the last ' + c.dnsFailureWindow + '; it is probed at its last good address.',
            'latency', ['target']),
        ],
      },
    ],
  },
}
