//! Certificates for TLS tests, made with the `openssl` CLI in a test's directory: a CA
//! (`<ca>.crt`, `<ca>.key`) and leaves it signs (`<name>.crt`, `<name>.key`).

use std::path::Path;
use std::process::Command;

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server's: for 127.0.0.1 and localhost.
    Server,
    /// A client's.
    Client,
    /// A member's on the group ports: both ends of a connection.
    Member,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`<ca>.crt`, `<ca>.key`) in `dir`.
pub fn make_ca(dir: &Path, ca: &str) {
    let (crt, key, subject) = (format!("{ca}.crt"), format!("{ca}.key"), format!("/CN={ca}"));
    let curve = "ec_paramgen_curve:prime256v1";
    openssl(
        dir,
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", curve, "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subject],
    );
}

/// A certificate `<name>.crt` + `<name>.key` signed by `ca`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, usage: Usage) {
    let (crt, key, csr, ext) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    let usage = match usage {
        Usage::Server => "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        Usage::Client => "extendedKeyUsage=clientAuth\n",
        Usage::Member => "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    };
    std::fs::write(dir.join(&ext), format!("basicConstraints=CA:FALSE\n{usage}")).expect("write ext");
    let subject = format!("/CN={name}");
    let curve = "ec_paramgen_curve:prime256v1";
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", curve, "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &["x509", "-req", "-in", &csr, "-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial", "-out", &crt, "-days", "2", "-extfile", &ext],
    );
}
