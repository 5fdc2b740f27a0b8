//! A small HTTP client for `tandem status --api URL`: one GET over HTTP/1.0 (the
//! server then sends the body whole and closes), bounded in time and size, and the
//! array's view rendered as the same table `tandem status` prints over the group port.
//! An `https://` URL (a port with `tls-management`) is checked against the
//! certificates the config names ([`trust`]).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::view::ClusterView;
use crate::config::Config;
use crate::replication::control::{no_active, opt, status_header, status_row, StatusTable};
use crate::replication::stripe::ServerState;

/// Largest answer read: a view of a big array is well under it.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an http://host:port or https://host:port URL")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: no answer within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: the answer is not what was expected: {why}")]
    Unreadable { url: String, why: String },
    #[error("{url}: {why}")]
    Tls { url: String, why: String },
}

/// A management URL taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    /// host:port
    authority: String,
    /// The path prefix, without a trailing slash.
    prefix: String,
}

/// `http[s]://host:port[/prefix]`.
fn split_url(url: &str) -> Result<Target, ClientError> {
    let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(ClientError::BadUrl(url.to_string())),
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || !authority.contains(':') {
        return Err(ClientError::BadUrl(url.to_string()));
    }
    Ok(Target { https, authority: authority.to_string(), prefix: path.trim_end_matches('/').to_string() })
}

/// The certificates an `https://` management URL must chain to, from the config: its
/// `tls-ca-cert-file`, else its `tls-cert-file` (a self-signed certificate, or a chain
/// file that holds its CA). Empty without a config or either file.
pub fn trust(config: Option<&Config>) -> Result<Vec<CertificateDer<'static>>, crate::server::tls::TlsError> {
    let Some(tls) = config.map(|c| &c.cluster.tls) else { return Ok(Vec::new()) };
    match (&tls.ca_cert_file, &tls.cert_file) {
        (Some(ca), _) => crate::server::tls::read_certs("cluster.tls-ca-cert-file", ca),
        (None, Some(cert)) => crate::server::tls::read_certs("cluster.tls-cert-file", cert),
        (None, None) => Ok(Vec::new()),
    }
}

/// GET `path` from the management port at `base`; the body of a 200. An `https://`
/// base is checked against `roots`.
pub async fn get(base: &str, path: &str, roots: &[CertificateDer<'static>]) -> Result<Vec<u8>, ClientError> {
    let target = split_url(base)?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let io = |source| ClientError::Io { url: url.clone(), source };
    let request_target = if target.prefix.is_empty() { path.to_string() } else { format!("/{}{path}", target.prefix) };
    let request = format!("GET {request_target} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n", target.authority);
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&target.authority).await.map_err(io)?;
        if !target.https {
            return exchange(stream, request.as_bytes()).await.map_err(io);
        }
        let connector = tls_connector(roots).map_err(|why| ClientError::Tls { url: url.clone(), why })?;
        let host = target.authority.rsplit_once(':').map_or(target.authority.as_str(), |(h, _)| h);
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string()).map_err(|e| ClientError::Tls {
            url: url.clone(),
            why: format!("{host:?} is not a name a certificate can be checked for: {e}"),
        })?;
        let stream = connector.connect(name, stream).await.map_err(|e| ClientError::Tls { url: url.clone(), why: e.to_string() })?;
        exchange(stream, request.as_bytes()).await.map_err(io)
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

/// Sends `request` and reads the answer until the server closes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream).take(RESPONSE_BYTES_MAX).read_to_end(&mut answer).await?;
    Ok(answer)
}

/// A TLS client (ring, as the server) that trusts `roots` and nothing else.
fn tls_connector(roots: &[CertificateDer<'static>]) -> Result<tokio_rustls::TlsConnector, String> {
    if roots.is_empty() {
        return Err(
            "an https:// URL needs --config, whose cluster.tls-ca-cert-file (or tls-cert-file) the certificate is checked against".into()
        );
    }
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `tandem status --api URL`: the view of the server at `base`, as a table.
pub async fn status_table(base: &str, roots: &[CertificateDer<'static>]) -> Result<StatusTable, ClientError> {
    let body = get(base, "/api/v1/cluster", roots).await?;
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
        let target = |https, authority: &str, prefix: &str| Target { https, authority: authority.into(), prefix: prefix.into() };
        assert_eq!(split_url("http://127.0.0.1:9540").unwrap(), target(false, "127.0.0.1:9540", ""));
        assert_eq!(split_url("http://h:1/tandem/").unwrap(), target(false, "h:1", "tandem"));
        assert_eq!(split_url("https://h:1").unwrap(), target(true, "h:1", ""));
        assert!(split_url("ftp://h:1").is_err());
        assert!(split_url("http://h").is_err());
    }
}
