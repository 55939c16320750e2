//! The task that reads every VM's `name_label` from XAPI on `xen.xapi.refresh_interval`, and
//! again at once when the configuration changes; it idles while the names are off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::jsonrpc::{XapiClient, XapiError};
use super::XapiNames;
use crate::config::Config;

/// One call's limit: XAPI answers a local call in milliseconds, or is stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer names are cut: a label value is not a document.
const MAX_NAME_CHARS: usize = 256;

/// Starts the refresher on the current runtime and returns the names it keeps.
pub fn spawn(config: watch::Receiver<Arc<Config>>) -> XapiNames {
    let names = XapiNames::default();
    tokio::spawn(run(names.clone(), config));
    names
}

async fn run(names: XapiNames, mut config: watch::Receiver<Arc<Config>>) {
    loop {
        let settings = config.borrow_and_update().xen.xapi.clone();
        if !settings.names {
            names.forget();
            if config.changed().await.is_err() {
                return;
            }
            continue;
        }
        let client = XapiClient::new(settings.socket.clone(), CALL_TIMEOUT);
        names.store(read_names(&client).await.map_err(|error| error.to_string()));
        tokio::select! {
            () = tokio::time::sleep(settings.refresh_interval.get()) => {}
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// Logs in (root on the local socket needs no password), reads the VMs, logs out.
async fn read_names(client: &XapiClient) -> Result<HashMap<String, String>, XapiError> {
    let agent = concat!("xen_exporter/", env!("CARGO_PKG_VERSION"));
    let session = client
        .call(
            "session.login_with_password",
            json!(["root", "", "1.0", agent]),
        )
        .await?;
    let records = client
        .call(
            "VM.get_all_records_where",
            json!([session, r#"field "is_a_template"="false""#]),
        )
        .await;
    // A session left behind is reaped by XAPI; a failed logout changes nothing here.
    let _ = client.call("session.logout", json!([session])).await;
    Ok(vm_names(&records?))
}

/// `name_label` by lower-case UUID of every VM record (ref → record) that is a guest: the
/// control domain keeps its own name, snapshots and templates run nowhere.
fn vm_names(records: &Value) -> HashMap<String, String> {
    let Some(records) = records.as_object() else {
        return HashMap::new();
    };
    let flag = |record: &Value, key: &str| record.get(key).and_then(Value::as_bool) == Some(true);
    records
        .values()
        .filter(|record| {
            !flag(record, "is_control_domain")
                && !flag(record, "is_a_template")
                && !flag(record, "is_a_snapshot")
        })
        .filter_map(|record| {
            let uuid = record.get("uuid")?.as_str()?.to_ascii_lowercase();
            let name = record.get("name_label")?.as_str()?;
            (!name.is_empty()).then(|| (uuid, name.chars().take(MAX_NAME_CHARS).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_only_with_their_names() {
        let records = json!({
            "OpaqueRef:a": {"uuid": "AAAA-1", "name_label": "web", "is_control_domain": false,
                            "is_a_template": false, "is_a_snapshot": false},
            "OpaqueRef:b": {"uuid": "bbbb-2", "name_label": "Control domain on host: h1",
                            "is_control_domain": true},
            "OpaqueRef:c": {"uuid": "cccc-3", "name_label": "web before upgrade",
                            "is_a_snapshot": true},
            "OpaqueRef:d": {"uuid": "dddd-4", "name_label": ""},
            "OpaqueRef:e": {"uuid": "eeee-5", "name_label": "x".repeat(1000)},
            "OpaqueRef:f": {"name_label": "no uuid"},
        });
        let names = vm_names(&records);
        assert_eq!(names.get("aaaa-1").map(String::as_str), Some("web"));
        assert_eq!(names.get("eeee-5").map(String::len), Some(MAX_NAME_CHARS));
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(vm_names(&json!(["not", "records"])).is_empty());
    }
}
