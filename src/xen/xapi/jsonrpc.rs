//! One JSON-RPC call to XAPI over its local Unix socket (`POST /jsonrpc`), where XAPI trusts
//! root without a password (`Context.preauth` treats that socket as root's).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Larger answers are refused: a host's VM records are a few hundred KiB.
const MAX_ANSWER_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum XapiError {
    #[error("{path}: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{method}: no answer within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    #[error("{method}: HTTP: {reason}")]
    Http { method: String, reason: String },
    #[error("{method}: HTTP status {status}")]
    Status { method: String, status: u16 },
    #[error("{method}: not a JSON-RPC answer: {reason}")]
    Answer { method: String, reason: String },
    #[error("{method}: XAPI error {code} {data}")]
    Xapi {
        method: String,
        code: String,
        data: String,
    },
}

/// A client of one socket; every call is a new connection, as XAPI's own local tools do.
pub struct XapiClient {
    socket: PathBuf,
    timeout: Duration,
}

impl XapiClient {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    /// Calls `method` with `params` and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, XapiError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, params)).await {
            Ok(answer) => answer,
            Err(_) => Err(XapiError::Timeout {
                method: method.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(&self, method: &str, params: Value) -> Result<Value, XapiError> {
        check_socket(&self.socket)?;
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| XapiError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let http = |reason: String| XapiError::Http {
            method: method.to_owned(),
            reason,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| http(error.to_string()))?;
        let driver = tokio::spawn(connection);
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let request = hyper::Request::post("/jsonrpc")
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|error| http(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| http(error.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|error| http(error.to_string()))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(XapiError::Status {
                method: method.to_owned(),
                status: status.as_u16(),
            });
        }
        parse_answer(method, &bytes)
    }
}

/// XAPI's socket lives in a root-only directory; anything else there (a file, a socket of
/// another user) is not XAPI, and its names would be someone else's to choose.
fn check_socket(path: &Path) -> Result<(), XapiError> {
    let refuse = |reason: String| XapiError::Socket {
        path: path.to_owned(),
        reason,
    };
    let metadata = std::fs::symlink_metadata(path).map_err(|error| refuse(error.to_string()))?;
    if !metadata.file_type().is_socket() {
        return Err(refuse("not a socket".to_owned()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != 0 && metadata.uid() != euid {
        return Err(refuse(format!(
            "owned by uid {}, not root: refused",
            metadata.uid()
        )));
    }
    Ok(())
}

/// The `result` of a JSON-RPC answer (2.0, or XAPI's 1.0 style with `error: null`).
fn parse_answer(method: &str, bytes: &[u8]) -> Result<Value, XapiError> {
    let answer_error = |reason: String| XapiError::Answer {
        method: method.to_owned(),
        reason,
    };
    let mut answer: Value =
        serde_json::from_slice(bytes).map_err(|error| answer_error(error.to_string()))?;
    match answer.get("error") {
        None | Some(Value::Null) => {}
        Some(error) => {
            let code = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            let data = error.get("data").map(Value::to_string).unwrap_or_default();
            return Err(XapiError::Xapi {
                method: method.to_owned(),
                code,
                data,
            });
        }
    }
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(answer_error("neither result nor error".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_and_error_answers() {
        let ok = parse_answer("m", br#"{"jsonrpc":"2.0","result":"OpaqueRef:1","id":1}"#);
        assert_eq!(ok.ok(), Some(json!("OpaqueRef:1")));
        let failed = parse_answer(
            "VM.get_all_records_where",
            br#"{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:x"]},"id":1}"#,
        );
        let text = failed.err().map(|error| error.to_string());
        assert_eq!(
            text.as_deref(),
            Some(r#"VM.get_all_records_where: XAPI error SESSION_INVALID ["OpaqueRef:x"]"#)
        );
        let neither = parse_answer("m", br#"{"id":1}"#);
        assert!(matches!(neither, Err(XapiError::Answer { .. })));
        assert!(matches!(
            parse_answer("m", b"<html>"),
            Err(XapiError::Answer { .. })
        ));
    }

    #[test]
    fn a_plain_file_is_not_xapi() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("xapi");
        std::fs::write(&path, b"").expect("write");
        let refused = check_socket(&path).err().map(|error| error.to_string());
        assert_eq!(refused, Some(format!("{}: not a socket", path.display())));
        let missing = check_socket(&dir.path().join("absent"));
        assert!(matches!(missing, Err(XapiError::Socket { .. })));
    }
}
