//! Content negotiation: which exposition format and whether to gzip, from the request headers.

use crate::scrape::Format;

/// One media range or coding of an `Accept`/`Accept-Encoding` header with its quality.
fn entries(header: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    header.split(',').filter_map(|entry| {
        let mut parts = entry.split(';');
        let value = parts.next()?.trim().to_ascii_lowercase();
        if value.is_empty() {
            return None;
        }
        let quality = parts
            .filter_map(|parameter| parameter.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        Some((value, quality))
    })
}

/// Picks OpenMetrics when the scraper accepts it at least as much as the 0.0.4 text format;
/// otherwise (no header, `*/*`, `text/plain`) the 0.0.4 text format.
pub fn format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for (media, quality) in entries(accept) {
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
            "text/plain" | "text/*" | "*/*" => text = text.max(quality),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
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

    #[test]
    fn gzip_detection() {
        assert!(gzip(Some("gzip")));
        assert!(gzip(Some("deflate, gzip;q=0.5")));
        assert!(!gzip(Some("gzip;q=0")));
        assert!(!gzip(Some("br")));
        assert!(!gzip(None));
    }
}
