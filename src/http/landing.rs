//! The landing page at `/`: what this exporter is, its version, links, and what is enabled.

use std::sync::Arc;

use crate::scrape::collector::ScrapeCollector;

/// The landing page's sources. What is enabled is asked of the collectors at every request, so
/// the page shows the configuration in force (after a reload too) and sockets opened since.
pub struct Landing {
    pub telemetry_path: String,
    pub collectors: Vec<Arc<dyn ScrapeCollector>>,
}

impl Landing {
    /// The page as it is now.
    pub fn page(&self) -> String {
        render(&LandingInfo {
            telemetry_path: self.telemetry_path.clone(),
            enabled: self
                .collectors
                .iter()
                .map(|collector| (collector.name().to_owned(), collector.describe()))
                .collect(),
        })
    }
}

/// What the landing page shows.
#[derive(Debug, Clone, Default)]
pub struct LandingInfo {
    pub telemetry_path: String,
    /// `(name, description)` lines under "Enabled", e.g. `("xen", "libxenstat (libxenstat.so.4.17)")`.
    pub enabled: Vec<(String, String)>,
}

/// Renders the landing page.
pub fn render(info: &LandingInfo) -> String {
    let mut enabled = String::new();
    for (name, description) in &info.enabled {
        enabled.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(name),
            escape(description)
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>xen_exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 50em; }}
th {{ text-align: left; padding-right: 1em; }}
</style>
</head>
<body>
<h1>xen_exporter</h1>
<p>Prometheus exporter for Xen Dom0: what xentop shows for every domain (CPU, memory, network,
VBD I/O and VBD_OO), I/O ring statistics, and continuous ICMP/TCP latency probes.</p>
<p>Version {version} (revision {revision}, rustc {rustc})</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
<h2>Enabled</h2>
<table>
{enabled}</table>
</body>
</html>
"#,
        version = crate::app::build_info::VERSION,
        revision = escape(crate::app::build_info::REVISION),
        rustc = escape(crate::app::build_info::RUSTC),
        path = escape(&info.telemetry_path),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_the_telemetry_path_and_escapes() {
        let page = render(&LandingInfo {
            telemetry_path: "/metrics".into(),
            enabled: vec![("xen".into(), "simulated <8 domains>".into())],
        });
        assert!(page.contains(r#"<a href="/metrics">Metrics</a>"#));
        assert!(page.contains("simulated &lt;8 domains&gt;"));
        assert!(page.contains(crate::app::build_info::VERSION));
    }
}
