//! TLS on the tls-port (rustls, ring provider): loading `[cluster]`'s `tls-*` files
//! into a rustls server config, swapping it on SIGHUP, and the bounded handshake that
//! turns an accepted socket into a [`ClientStream`]. It knows nothing of commands:
//! after the handshake the connection is served exactly as a plain one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use tokio::net::TcpStream;

use super::stream::ClientStream;
use crate::config::{Tls, TlsAuthClients, TlsProtocol};

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
    #[error("{field}: {problem}")]
    Setting { field: &'static str, problem: String },
}

const CERT_FIELD: &str = "cluster.tls-cert-file";
const KEY_FIELD: &str = "cluster.tls-key-file";
const CA_FIELD: &str = "cluster.tls-ca-cert-file";
const GROUP_CA_FIELD: &str = "cluster.tls-group-ca-cert-file";

/// The TLS config new handshakes use; [`TlsAcceptor::reload`] replaces it, while
/// connections already established keep the session they made.
pub struct TlsAcceptor {
    files: Tls,
    // std RwLock, not tokio's: held only to clone or swap an Arc, never across an await.
    current: RwLock<Arc<ServerConfig>>,
    /// The files CONFIG SET tls-* last loaded ([`TlsAcceptor::reload_with`]), which
    /// SIGHUP then reads again; `None`: the config file's.
    set_files: RwLock<Option<Tls>>,
}

impl TlsAcceptor {
    /// Loads the files; an error stops the server's start.
    pub fn load(files: Tls) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsAcceptor { files, current: RwLock::new(config), set_files: RwLock::new(None) })
    }

    /// Reads the files again. On error the config in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        // The files' lock held throughout: a CONFIG SET meanwhile waits, not overtaken.
        let set_files = self.set_files.read().unwrap_or_else(|e| e.into_inner());
        let config = server_config(set_files.as_ref().unwrap_or(&self.files))?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// The files in use: the config file's, or those CONFIG SET last loaded.
    pub fn files(&self) -> Tls {
        self.set_files.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| self.files.clone())
    }

    /// Loads `files` instead (CONFIG SET tls-*): new handshakes use them, and SIGHUP
    /// reads them from then on. On error nothing changes.
    pub fn reload_with(&self, files: Tls) -> Result<(), TlsError> {
        let config = server_config(&files)?;
        // Both under the files' lock, so a SIGHUP reload in between reads one or the other.
        let mut set_files = self.set_files.write().unwrap_or_else(|e| e.into_inner());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        *set_files = Some(files);
        Ok(())
    }

    /// The TLS handshake on an accepted socket, bounded by `TLS_HANDSHAKE_MS_MAX`.
    /// A failed or slow handshake ends this socket only, logged at debug.
    pub async fn handshake(&self, socket: TcpStream, peer: std::net::SocketAddr) -> Option<ClientStream> {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        let accepting = tokio_rustls::TlsAcceptor::from(config).accept(socket);
        match tokio::time::timeout(Duration::from_millis(crate::limits::TLS_HANDSHAKE_MS_MAX), accepting).await {
            Ok(Ok(stream)) => Some(ClientStream::Tls(Box::new(tokio_rustls::TlsStream::Server(stream)))),
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
    server_config_asking(files, files.auth_clients, Trust::Clients)
}

/// Whose certificates a CA is asked to vouch for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Redis clients': `tls-ca-cert-file`.
    Clients,
    /// The members': `tls-group-ca-cert-file`, or else `tls-ca-cert-file`.
    Members,
}

/// The group port's side that accepts: the member's certificate, and a certificate from
/// the cluster's CA required of every caller (mutual TLS, whatever `tls-auth-clients`
/// says of Redis clients).
pub(crate) fn group_server_config(files: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_asking(files, TlsAuthClients::Yes, Trust::Members)
}

/// The group port's side that calls: presents the member's certificate and accepts a
/// peer whose chain ends at the cluster's CA. The peer's name is not matched against
/// its certificate: members are reached by the addresses in the config, which need not
/// be in their certificates, and who a peer is gets proven by the cluster-secret
/// handshake that runs inside the TLS session. The CA decides who may speak at all.
pub(crate) fn group_client_config(files: &Tls) -> Result<Arc<ClientConfig>, TlsError> {
    let (provider, versions) = provider(files)?;
    let cert_path = files.cert_file.as_deref().ok_or(TlsError::Missing { field: CERT_FIELD })?;
    let key_path = files.key_file.as_deref().ok_or(TlsError::Missing { field: KEY_FIELD })?;
    let certs = read_certs(CERT_FIELD, cert_path)?;
    let key = read_key(key_path)?;
    let (roots, field, ca_path) = ca_roots(files, Trust::Members)?;
    let chain =
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build().map_err(|e| content(field, ca_path, e.to_string()))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting { field: PROTOCOLS_FIELD, problem: e.to_string() })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
        .with_client_auth_cert(certs, key)
        .map_err(|e| key_error(e, key_path, cert_path))?;
    Ok(Arc::new(config))
}

const PROTOCOLS_FIELD: &str = "cluster.tls-protocols";

/// ring's suites and the TLS versions `tls-protocols`, `tls-ciphers` and
/// `tls-ciphersuites` allow, the listed suites first in their order.
pub(crate) fn provider(files: &Tls) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let all = std::mem::take(&mut provider.cipher_suites);
    let pick = |wanted: &[String], tls13: bool| {
        let of_version = all.iter().filter(move |s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)) == tls13);
        if wanted.is_empty() {
            return of_version.copied().collect::<Vec<_>>();
        }
        wanted.iter().filter_map(|w| of_version.clone().find(|s| suite_name(s.suite()) == Some(w.as_str())).copied()).collect()
    };
    let versions: Vec<&'static SupportedProtocolVersion> = if files.protocols.is_empty() {
        vec![&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        files
            .protocols
            .iter()
            .map(|p| match p {
                TlsProtocol::V12 => &rustls::version::TLS12,
                TlsProtocol::V13 => &rustls::version::TLS13,
            })
            .collect()
    };
    if versions.contains(&&rustls::version::TLS13) {
        provider.cipher_suites.extend(pick(&files.ciphersuites, true));
    }
    if versions.contains(&&rustls::version::TLS12) {
        provider.cipher_suites.extend(pick(&files.ciphers, false));
    }
    if provider.cipher_suites.is_empty() {
        return Err(TlsError::Setting { field: PROTOCOLS_FIELD, problem: "no cipher suite is left for the versions allowed".into() });
    }
    Ok((Arc::new(provider), versions))
}

/// A suite's name as `tls-ciphers` (OpenSSL's names, TLS 1.2) and `tls-ciphersuites`
/// (TLS 1.3) write it.
fn suite_name(suite: CipherSuite) -> Option<&'static str> {
    Some(match suite {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

/// Checks the peer's chain against the cluster's CA and its signatures, but not its
/// name (see [`group_client_config`]).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and expiry) before the name, so a name error means
        // the chain is good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn ca_roots(files: &Tls, trust: Trust) -> Result<(Arc<RootCertStore>, &'static str, &Path), TlsError> {
    let (field, ca_path) = match (trust, files.group_ca_cert_file.as_deref()) {
        (Trust::Members, Some(path)) => (GROUP_CA_FIELD, path),
        _ => (CA_FIELD, files.ca_cert_file.as_deref().ok_or(TlsError::Missing { field: CA_FIELD })?),
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(field, ca_path)? {
        roots.add(cert).map_err(|e| content(field, ca_path, format!("not a usable CA certificate: {e}")))?;
    }
    // A tls-port also admits the members' certificates: mirrors forward to it with theirs.
    if let (Trust::Clients, Some(members)) = (trust, files.group_ca_cert_file.as_deref()) {
        for cert in read_certs(GROUP_CA_FIELD, members)? {
            roots.add(cert).map_err(|e| content(GROUP_CA_FIELD, members, format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok((Arc::new(roots), field, ca_path))
}

fn key_error(e: rustls::Error, key_path: &Path, cert_path: &Path) -> TlsError {
    let why = match e {
        rustls::Error::InconsistentKeys(_) => "is not the private key of".to_string(),
        other => format!("cannot be used ({other}) with"),
    };
    content(KEY_FIELD, key_path, format!("{why} the certificate in {CERT_FIELD} {cert_path:?}"))
}

fn server_config_asking(files: &Tls, auth_clients: TlsAuthClients, trust: Trust) -> Result<Arc<ServerConfig>, TlsError> {
    let (provider, versions) = provider(files)?;
    let cert_path = files.cert_file.as_deref().ok_or(TlsError::Missing { field: CERT_FIELD })?;
    let key_path = files.key_file.as_deref().ok_or(TlsError::Missing { field: KEY_FIELD })?;
    let certs = read_certs(CERT_FIELD, cert_path)?;
    let key = read_key(key_path)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting { field: PROTOCOLS_FIELD, problem: e.to_string() })?;
    let builder = match auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        auth => {
            let (roots, field, ca_path) = ca_roots(files, trust)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == TlsAuthClients::Optional { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| content(field, ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // rustls checks that the key is the certificate's.
    let config = builder.with_single_cert(certs, key).map_err(|e| key_error(e, key_path, cert_path))?;
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

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(KEY_FIELD, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| content(KEY_FIELD, path, format!("no PEM private key in the file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_the_config_accepts_is_one_ring_has() {
        let suites: Vec<_> = rustls::crypto::ring::default_provider().cipher_suites.iter().filter_map(|s| suite_name(s.suite())).collect();
        for name in crate::config::TLS12_CIPHERS.iter().chain(crate::config::TLS13_CIPHERSUITES) {
            assert!(suites.contains(name), "{name} is accepted by the config but ring has no such suite: {suites:?}");
        }
        assert_eq!(suites.len(), crate::config::TLS12_CIPHERS.len() + crate::config::TLS13_CIPHERSUITES.len());
    }

    #[test]
    fn the_listed_suites_alone_and_in_their_order() {
        let files = Tls {
            protocols: vec![TlsProtocol::V12],
            ciphers: vec!["ECDHE-RSA-AES128-GCM-SHA256".into(), "ECDHE-ECDSA-AES256-GCM-SHA384".into()],
            ciphersuites: vec!["TLS_AES_128_GCM_SHA256".into()],
            ..Tls::default()
        };
        let (listed, versions) = provider(&files).unwrap();
        let names: Vec<_> = listed.cipher_suites.iter().filter_map(|s| suite_name(s.suite())).collect();
        assert_eq!(names, ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
        assert_eq!(versions.len(), 1);
        let both = provider(&Tls::default()).unwrap();
        assert_eq!(both.0.cipher_suites.len(), 9);
        assert_eq!(both.1.len(), 2);
    }
}
