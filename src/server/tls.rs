//! TLS on the tls-port (rustls, ring provider): loading `[cluster]`'s `tls-*` files
//! into a rustls server config, swapping it on SIGHUP, and the bounded handshake that
//! turns an accepted socket into a [`ClientStream`]. It knows nothing of commands:
//! after the handshake the connection is served exactly as a plain one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use super::stream::ClientStream;
use crate::config::{Tls, TlsAuthClients};

/// Why the `tls-*` files could not be made into a TLS config. Each names the config
/// field and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field} is not set")]
    Missing { field: &'static str },
    #[error("{field} = {path:?}: cannot read the file: {error}")]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{field} = {path:?}: {problem}")]
    Content { field: &'static str, path: PathBuf, problem: String },
}

const CERT_FIELD: &str = "cluster.tls-cert-file";
const KEY_FIELD: &str = "cluster.tls-key-file";
const CA_FIELD: &str = "cluster.tls-ca-cert-file";

/// The TLS config new handshakes use; [`TlsAcceptor::reload`] replaces it, while
/// connections already established keep the session they made.
pub struct TlsAcceptor {
    files: Tls,
    // std RwLock, not tokio's: held only to clone or swap an Arc, never across an await.
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsAcceptor {
    /// Loads the files; an error stops the server's start.
    pub fn load(files: Tls) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor { files, current: RwLock::new(config) })
    }

    /// Reads the files again. On error the config in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// The TLS handshake on an accepted socket, bounded by `TLS_HANDSHAKE_MS_MAX`.
    /// A failed or slow handshake ends this socket only, logged at debug.
    pub async fn handshake(&self, socket: TcpStream, peer: std::net::SocketAddr) -> Option<ClientStream> {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        let accepting = tokio_rustls::TlsAcceptor::from(config).accept(socket);
        match tokio::time::timeout(Duration::from_millis(crate::limits::TLS_HANDSHAKE_MS_MAX), accepting).await {
            Ok(Ok(stream)) => Some(ClientStream::Tls(Box::new(stream))),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed; connection closed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, timeout_ms = crate::limits::TLS_HANDSHAKE_MS_MAX, "TLS handshake timed out; connection closed");
                None
            }
        }
    }

    /// The TLS config new handshakes use now, for a listener that makes its own
    /// handshakes (the management port's HTTPS).
    pub(crate) fn current_config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads the certificates on every SIGHUP, for the life of the process.
    pub fn reload_on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(acceptor) = weak.upgrade() else { return };
                match acceptor.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded; new connections use them"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: TLS certificates not reloaded; the previous ones stay in use"),
                }
            }
        });
        Ok(())
    }
}

fn server_config(files: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_path = files.cert_file.as_deref().ok_or(TlsError::Missing { field: CERT_FIELD })?;
    let key_path = files.key_file.as_deref().ok_or(TlsError::Missing { field: KEY_FIELD })?;
    let certs = read_certs(CERT_FIELD, cert_path)?;
    let key = read_key(key_path)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Content { field: CERT_FIELD, path: cert_path.to_path_buf(), problem: e.to_string() })?;
    let builder = match files.auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        auth => {
            let ca_path = files.ca_cert_file.as_deref().ok_or(TlsError::Missing { field: CA_FIELD })?;
            let mut roots = RootCertStore::empty();
            for cert in read_certs(CA_FIELD, ca_path)? {
                roots.add(cert).map_err(|e| content(CA_FIELD, ca_path, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == TlsAuthClients::Optional { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| content(CA_FIELD, ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // rustls checks that the key is the certificate's.
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => "is not the private key of".to_string(),
            other => format!("cannot be used ({other}) with"),
        };
        content(KEY_FIELD, key_path, format!("{why} the certificate in {CERT_FIELD} {cert_path:?}"))
    })?;
    Ok(Arc::new(config))
}

fn content(field: &'static str, path: &Path, problem: String) -> TlsError {
    TlsError::Content { field, path: path.to_path_buf(), problem }
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read { field, path: path.to_path_buf(), error })
}

pub(crate) fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let certs = certs.map_err(|e| content(field, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(content(field, path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_string()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(KEY_FIELD, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| content(KEY_FIELD, path, format!("no PEM private key in the file: {e}")))
}
