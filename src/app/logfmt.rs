//! A logfmt event formatter (`ts=… level=info msg="…" key=value`), the format exporter-toolkit's
//! `--log.format=logfmt` writes, so log pipelines that parse Prometheus components parse ours.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats one event as a logfmt line.
pub struct Logfmt;

/// Formats span fields as logfmt pairs.
pub struct LogfmtFields;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let timestamp = rfc3339_millis(std::time::SystemTime::now());
        write!(
            writer,
            "ts={timestamp} level={} caller={}",
            metadata.level().as_str().to_ascii_lowercase(),
            metadata.target()
        )?;
        let mut visitor = PairWriter::default();
        event.record(&mut visitor);
        if let Some(message) = visitor.message {
            write!(writer, " msg={}", quote(&message))?;
        }
        writer.write_str(&visitor.pairs)?;
        writeln!(writer)
    }
}

impl<'writer> FormatFields<'writer> for LogfmtFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = PairWriter::default();
        fields.record(&mut visitor);
        writer.write_str(visitor.pairs.trim_start())
    }
}

#[derive(Default)]
struct PairWriter {
    message: Option<String>,
    pairs: String,
}

impl Visit for PairWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl PairWriter {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            let _ = write!(self.pairs, " {}={}", field.name(), quote(&value));
        }
    }
}

/// Quotes a value when logfmt needs it (spaces, quotes, `=`, control characters, or empty), and
/// escapes inside the quotes as go-logfmt does: `\n`, `\r`, `\t`, `\"`, `\\` and `\u00XX` for
/// any other control character. No value can end the line or put a raw tab or escape sequence in
/// it, so a value (a host name, an error from a file) cannot forge a second log line.
fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RFC 3339 UTC timestamp with milliseconds, as Prometheus components write `ts=`.
fn rfc3339_millis(time: std::time::SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(quote("a\r\nb\tc"), "\"a\\r\\nb\\tc\"");
        assert_eq!(
            quote("bell\u{7}esc\u{1b}[31m"),
            "\"bell\\u0007esc\\u001b[31m\""
        );
        assert_eq!(quote("del\u{7f}"), "\"del\\u007f\"");
        assert_eq!(quote("back\\slash x"), "\"back\\\\slash x\"");
        assert_eq!(quote("ünïcode"), "ünïcode");
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_007);
        assert_eq!(rfc3339_millis(at), "2000-02-29T00:00:00.007Z");
        assert_eq!(
            rfc3339_millis(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    /// A value crafted to end the line and start a forged one stays inside one line.
    #[test]
    fn a_value_cannot_forge_a_log_line() {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(Logfmt)
            .fmt_fields(LogfmtFields)
            .finish();
        let forged = "x\r\nts=2000-01-01T00:00:00.000Z level=error msg=forged\tkey=v";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(host = forged, "lookup failed: {forged}");
        });
        let output = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        assert_eq!(output.matches('\n').count(), 1, "{output:?}");
        assert!(output.ends_with('\n'), "{output:?}");
        assert!(!output.contains(['\r', '\t']), "{output:?}");
        assert!(output.contains(" level=warn "), "{output:?}");
        assert!(
            output.contains(
                " host=\"x\\r\\nts=2000-01-01T00:00:00.000Z level=error msg=forged\\tkey=v\""
            ),
            "{output:?}"
        );
    }
}
