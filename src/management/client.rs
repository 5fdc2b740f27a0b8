//! A small HTTP client for `tandem status --api URL`: one GET over HTTP/1.0 (the
//! server then sends the body whole and closes), bounded in time and size, and the
//! array's view rendered as the same table `tandem status` prints over the group port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::view::ClusterView;
use crate::replication::control::{no_active, opt, status_header, status_row, StatusTable};
use crate::replication::stripe::ServerState;

/// Largest answer read: a view of a big array is well under it.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an http://host:port URL")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: no answer within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: the answer is not what was expected: {why}")]
    Unreadable { url: String, why: String },
}

/// `http://host:port[/prefix]` → (host:port, prefix without a trailing slash).
fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::BadUrl(url.to_string()))?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || !authority.contains(':') {
        return Err(ClientError::BadUrl(url.to_string()));
    }
    Ok((authority.to_string(), path.trim_end_matches('/').to_string()))
}

/// GET `path` from the management port at `base`; the body of a 200.
pub async fn get(base: &str, path: &str) -> Result<Vec<u8>, ClientError> {
    let (authority, prefix) = split_url(base)?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let io = |source| ClientError::Io { url: url.clone(), source };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.map_err(io)?;
        let target = if prefix.is_empty() { path.to_string() } else { format!("/{prefix}{path}") };
        let request = format!("GET {target} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut answer = Vec::new();
        (&mut stream).take(RESPONSE_BYTES_MAX).read_to_end(&mut answer).await.map_err(io)?;
        Ok::<_, ClientError>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| ClientError::Timeout { url: url.clone() })??;
    let unreadable = |why: &str| ClientError::Unreadable { url: url.clone(), why: why.to_string() };
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| unreadable("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = answer[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| unreadable("no status line"))?;
    if status != 200 {
        return Err(ClientError::Status { url, status, body: String::from_utf8_lossy(&body).into_owned() });
    }
    Ok(body)
}

/// `tandem status --api URL`: the view of the server at `base`, as a table.
pub async fn status_table(base: &str) -> Result<StatusTable, ClientError> {
    let body = get(base, "/api/v1/cluster").await?;
    let view: ClusterView =
        serde_json::from_slice(&body).map_err(|e| ClientError::Unreadable { url: format!("{base}/api/v1/cluster"), why: e.to_string() })?;
    Ok(table(&view))
}

/// The same columns, and the same stripes without an active, as `tandem status`
/// over the group port.
pub fn table(view: &ClusterView) -> StatusTable {
    let mut out = status_header();
    for s in view.servers() {
        let role = if s.kind == "voter" { "voter" } else { "server" };
        let dash = |v: Option<u64>| if s.reachable { opt(v) } else { "-".to_string() };
        out.push_str(&status_row([
            &s.stripe,
            &s.name,
            role,
            &s.state,
            &s.light,
            &dash(s.term),
            &dash(s.commit_index),
            &dash(s.applied_index),
            &dash(s.lag),
            &dash(s.node_id),
            &dash(s.purged_index),
        ]));
    }
    let without_active = view
        .stripes
        .iter()
        .filter_map(|stripe| {
            let members: Vec<(&str, bool, ServerState)> = stripe
                .servers
                .iter()
                .map(|s| (s.name.as_str(), s.kind == "voter", s.server_state().unwrap_or(ServerState::Stopped)))
                .collect();
            no_active(&stripe.name, &members)
        })
        .collect();
    StatusTable { text: out, without_active }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_authority_and_prefix() {
        assert_eq!(split_url("http://127.0.0.1:9540").unwrap(), ("127.0.0.1:9540".into(), String::new()));
        assert_eq!(split_url("http://h:1/tandem/").unwrap(), ("h:1".into(), "tandem".into()));
        assert!(split_url("https://h:1").is_err());
        assert!(split_url("http://h").is_err());
    }
}
