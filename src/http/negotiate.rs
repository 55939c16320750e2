//! Content negotiation: which exposition format and whether to gzip, from the request headers.

use crate::scrape::Format;

/// One media range or coding of an `Accept`/`Accept-Encoding` header with its quality.
fn entries(header: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    entries_with_parameters(header).map(|(value, quality, _)| (value, quality))
}

/// Each entry's value, quality and whether it names the delimited `MetricFamily` protobuf
/// (`proto=io.prometheus.client.MetricFamily;encoding=delimited`, what Prometheus asks for).
fn entries_with_parameters(header: &str) -> impl Iterator<Item = (String, f32, bool)> + '_ {
    header.split(',').filter_map(|entry| {
        let mut parts = entry.split(';');
        let value = parts.next()?.trim().to_ascii_lowercase();
        if value.is_empty() {
            return None;
        }
        let mut quality = 1.0;
        let mut proto = false;
        let mut delimited = false;
        for parameter in parts {
            let Some((name, parameter_value)) = parameter.split_once('=') else {
                continue;
            };
            let parameter_value = parameter_value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "q" => quality = parameter_value.parse::<f32>().unwrap_or(quality),
                "proto" => proto = parameter_value == "io.prometheus.client.MetricFamily",
                "encoding" => delimited = parameter_value == "delimited",
                _ => {}
            }
        }
        Some((value, quality, proto && delimited))
    })
}

/// Picks the format the scraper prefers: the Prometheus protobuf (only when asked for by name,
/// as Prometheus does for native histograms), OpenMetrics, or the 0.0.4 text format (no header,
/// `*/*`, `text/plain`). On equal quality protobuf wins over OpenMetrics, which wins over text.
pub fn format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut protobuf = 0.0f32;
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for (media, quality, metric_family) in entries_with_parameters(accept) {
        match media.as_str() {
            "application/vnd.google.protobuf" if metric_family => protobuf = protobuf.max(quality),
            "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
            "text/plain" | "text/*" | "*/*" => text = text.max(quality),
            _ => {}
        }
    }
    if protobuf > 0.0 && protobuf >= openmetrics && protobuf >= text {
        Format::Protobuf
    } else if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Whether the client accepts a gzip-encoded response.
pub fn gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|header| {
        entries(header)
            .any(|(coding, quality)| (coding == "gzip" || coding == "*") && quality > 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_accept_header_gets_openmetrics() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(format(Some(accept)), Format::OpenMetrics);
    }

    #[test]
    fn plain_clients_get_text() {
        assert_eq!(format(None), Format::Text);
        assert_eq!(format(Some("*/*")), Format::Text);
        assert_eq!(format(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(
            format(Some("application/openmetrics-text;q=0.2,text/plain;q=0.9")),
            Format::Text
        );
        assert_eq!(
            format(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    /// Prometheus 2.42 with `--enable-feature=native-histograms`, and 2.49+ with
    /// `scrape_protocols: [PrometheusProto, ...]`.
    #[test]
    fn prometheus_asking_for_protobuf_gets_it() {
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(format(Some(native)), Format::Protobuf);
        let protocols = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(format(Some(protocols)), Format::Protobuf);
    }

    /// Protobuf only when named with the delimited MetricFamily encoding, and preferred.
    #[test]
    fn other_protobuf_requests_get_text() {
        for accept in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;q=0.9",
        ] {
            assert_eq!(format(Some(accept)), Format::Text, "{accept}");
        }
    }

    #[test]
    fn gzip_detection() {
        assert!(gzip(Some("gzip")));
        assert!(gzip(Some("deflate, gzip;q=0.5")));
        assert!(!gzip(Some("gzip;q=0")));
        assert!(!gzip(Some("br")));
        assert!(!gzip(None));
    }
}
