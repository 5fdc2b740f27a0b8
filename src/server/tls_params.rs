//! The `tls-*` parameters of CONFIG GET and SET (Redis's names): their values start
//! as the config file's `[cluster]` tls-* and are kept with the other parameters
//! (`params`); setting them loads the files they name into this server's
//! [`super::tls::TlsAcceptor`]. Per server, as in Redis: each host has its own files,
//! and nothing is written to the stripe's log. It knows nothing of handshakes.

use super::Shared;

/// The TLS parameters CONFIG SET reloads the certificates for.
pub fn is_tls_param(name: &str) -> bool {
    ["tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-auth-clients"].iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// CONFIG GET's values of [`is_tls_param`]'s parameters for `files` (Redis shows a
/// file not set as "").
pub fn values(files: &crate::config::Tls) -> [(&'static str, String); 4] {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let auth = match files.auth_clients {
        crate::config::TlsAuthClients::No => "no",
        crate::config::TlsAuthClients::Optional => "optional",
        crate::config::TlsAuthClients::Yes => "yes",
    };
    [
        ("tls-cert-file", path(&files.cert_file)),
        ("tls-key-file", path(&files.key_file)),
        ("tls-ca-cert-file", path(&files.ca_cert_file)),
        ("tls-auth-clients", auth.to_string()),
    ]
}

/// After CONFIG SET changed tls-* parameters (`first`: the first of them named):
/// loads the files they now name, for new handshakes; connections already made keep
/// their session. On error the certificates in use stay and the caller puts the
/// parameters back; the error is Redis's, with what was wrong. A server without a TLS
/// port only keeps the values, as Redis does.
pub fn reload(shared: &Shared, first: &str) -> Result<(), String> {
    let Some(acceptor) = shared.tls.get() else { return Ok(()) };
    let file = |name: &str| shared.settings.param(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let auth_clients = match shared.settings.param("tls-auth-clients").as_deref() {
        Some("no") => crate::config::TlsAuthClients::No,
        Some("optional") => crate::config::TlsAuthClients::Optional,
        _ => crate::config::TlsAuthClients::Yes,
    };
    let files = crate::config::Tls {
        cert_file: file("tls-cert-file"),
        key_file: file("tls-key-file"),
        ca_cert_file: file("tls-ca-cert-file"),
        auth_clients,
        ..acceptor.files()
    };
    match acceptor.reload_with(files) {
        Ok(()) => {
            tracing::info!("CONFIG SET {first}: TLS certificates reloaded; new connections use them");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "CONFIG SET {first}: TLS certificates not reloaded; the previous ones stay in use");
            Err(format!("ERR CONFIG SET failed (possibly related to argument '{first}') - Unable to update TLS configuration: {e}"))
        }
    }
}
