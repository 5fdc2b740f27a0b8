//! Certificates for TLS tests, made with the `openssl` CLI in a test's directory: a CA
//! and server certificates it signs, for the addresses the test's servers use.
//! (tests/tls.rs keeps its own copies of these helpers for now.)

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`<ca>.crt`, `<ca>.key`) in `dir`, valid for two days.
pub fn make_ca(dir: &Path, ca: &str) {
    let (crt, key, subject) = (format!("{ca}.crt"), format!("{ca}.key"), format!("/CN={ca}"));
    let args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key, "-out", &crt];
    openssl(dir, &[&args[..], &["-days", "2", "-subj", &subject]].concat());
}

/// A server certificate `<name>.crt` + `<name>.key` signed by `ca`, for `localhost`
/// and each of `ips`.
pub fn make_server_cert(dir: &Path, ca: &str, name: &str, ips: &[&str]) {
    let (crt, key, csr, ext) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    let sans: Vec<String> = std::iter::once("DNS:localhost".to_string()).chain(ips.iter().map(|ip| format!("IP:{ip}"))).collect();
    let text = format!("basicConstraints=CA:FALSE\nsubjectAltName={}\nextendedKeyUsage=serverAuth\n", sans.join(","));
    std::fs::write(dir.join(&ext), text).expect("write ext");
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject],
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &["x509", "-req", "-in", &csr, "-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial", "-out", &crt, "-days", "2", "-extfile", &ext],
    );
}

/// An HTTPS client (reqwest, rustls) that trusts the CA certificate at `ca_file` only.
pub fn https_client(ca_file: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca_file).expect("read the CA certificate");
    let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("an HTTPS client")
}
