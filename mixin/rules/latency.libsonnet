// Recording rules of the latency probes. Every probe series carries `target`, `protocol` and the
// user's labels (ix, city, ...); these rules keep them all (no `by` over targets). Quantiles are
// recorded only while a target answers, so an outage leaves a gap, never NaN, and the 1-day
// baseline (its own group, every 5 minutes) stays a number through and after an outage.
{
  prometheusRules+:: {
    local c = $._config,
    local s(metric, extra='') = metric + '{' + c.xenExporterSelector + (if extra == '' then '' else ', ' + extra) + '}',
    local rate(metric, extra='') = 'rate(' + s(metric, extra) + '[5m])',
    local X = '%s, %s' % [c.hostLabels, c.exchangeLabel],
    local quantile(q) = |||
      histogram_quantile(%g, %s)
        and %s > 0
    ||| % [q, rate('latency_rtt_seconds_bucket'), rate('latency_rtt_seconds_count')],
    groups+: [
      {
        name: 'latency.recording',
        rules: [
          // RTT quantiles per target from the histogram, only when the target answered.
          { record: 'latency:rtt_seconds:p50_rate5m', expr: quantile(0.5) },
          { record: 'latency:rtt_seconds:p90_rate5m', expr: quantile(0.9) },
          { record: 'latency:rtt_seconds:p99_rate5m', expr: quantile(0.99) },
          // Share of probes without a reply (0..1), for targets probed in the window.
          {
            record: 'latency:loss:ratio_rate5m',
            expr: |||
              clamp_min(
                1 - %s / (%s > 0),
                0
              )
            ||| % [rate('latency_responses_total'), rate('latency_requests_total')],
          },
          // Share of probes that failed because the path is down (timeout, unreachable), not
          // because the target refused or the prober could not resolve or open a socket.
          {
            record: 'latency:path_loss:ratio_rate5m',
            expr: |||
              clamp_max(
                (
                  sum without (reason) (%s)
                    or %s * 0
                )
                  / (%s > 0),
                1
              )
            ||| % [
              rate('latency_errors_total', 'reason=~"%s"' % c.latencyPathErrorReasons),
              rate('latency_requests_total'),
              rate('latency_requests_total'),
            ],
          },
          // 1 while a target is degraded (RTT above its baseline, or losing probes on the path),
          // else 0: the exchange-wide page counts these per exchange.
          {
            record: 'latency:target_degraded:bool',
            expr: |||
              max without (signal) (
                label_replace(latency:path_loss:ratio_rate5m > bool %(loss)g, "signal", "loss", "", "")
                or
                label_replace(
                  (latency:rtt_seconds:p50_rate5m > bool %(factor)g * last_over_time(latency:rtt_seconds:baseline_p50_1d[10m]))
                    * (latency:rtt_seconds:p50_rate5m - last_over_time(latency:rtt_seconds:baseline_p50_1d[10m]) > bool %(floor)g),
                  "signal", "rtt", "", "")
              )
            ||| % { loss: c.latencyLossRatio, factor: c.latencyBaselineFactor, floor: c.latencyBaselineFloorSeconds },
          },
          // Per exchange (per prober): share and number of its targets degraded (a target is
          // degraded when any of its protocols is).
          {
            record: 'latency:exchange_targets_degraded:ratio',
            expr: |||
              sum by (%(X)s) (max by (%(X)s, target) (latency:target_degraded:bool))
                / count by (%(X)s) (max by (%(X)s, target) (latency:target_degraded:bool))
            ||| % { X: X },
          },
          {
            record: 'latency:exchange_targets_degraded:count',
            expr: 'sum by (%(X)s) (max by (%(X)s, target) (latency:target_degraded:bool))' % { X: X },
          },
        ],
      },
      {
        // The 1-day quantile reads ~5,760 samples per target: every 5 minutes is enough.
        name: 'latency.baseline',
        interval: '5m',
        rules: [
          // Per-target baseline: the median of the 5-minute medians over the last day (gaps
          // during outages are skipped, so it never turns NaN).
          {
            record: 'latency:rtt_seconds:baseline_p50_1d',
            expr: 'quantile_over_time(0.5, latency:rtt_seconds:p50_rate5m[1d])',
          },
        ],
      },
    ],
  },
}
