//! Certificates for TLS tests, made with the `openssl` CLI in a test's directory (a CA
//! `<ca>.crt` + `<ca>.key` and leaves it signs, `<name>.crt` + `<name>.key`), and the
//! TLS clients the tests use: Debian's `redis-cli --tls`, `openssl s_client`, and
//! rustls (a client that keeps one connection and counts every reply).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

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
    let usage = match usage {
        Usage::Server => "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        Usage::Client => "extendedKeyUsage=clientAuth\n",
        Usage::Member => "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    };
    sign(dir, ca, name, usage);
}

/// A server certificate `<name>.crt` + `<name>.key` signed by `ca`, for `localhost`
/// and each of `ips`.
pub fn make_server_cert(dir: &Path, ca: &str, name: &str, ips: &[&str]) {
    let sans: Vec<String> = std::iter::once("DNS:localhost".to_string()).chain(ips.iter().map(|ip| format!("IP:{ip}"))).collect();
    sign(dir, ca, name, &format!("subjectAltName={}\nextendedKeyUsage=serverAuth\n", sans.join(",")));
}

/// A key and a certificate for it with `extensions` (openssl's extfile lines), signed
/// by `ca`.
fn sign(dir: &Path, ca: &str, name: &str, extensions: &str) {
    let (crt, key, csr, ext) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    std::fs::write(dir.join(&ext), format!("basicConstraints=CA:FALSE\n{extensions}")).expect("write ext");
    let subject = format!("/CN={name}");
    let curve = "ec_paramgen_curve:prime256v1";
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", curve, "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
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

/// CA `ca`, a server certificate `server` and a client certificate `client`.
pub fn pki(dir: &Path) {
    make_ca(dir, "ca");
    make_leaf(dir, "ca", "server", Usage::Server);
    make_leaf(dir, "ca", "client", Usage::Client);
}

/// `redis-cli --tls -p port <extra> <args>`: its output (trimmed) and whether it succeeded.
pub fn redis_cli(dir: &Path, port: u16, extra: &[&str], args: &[&str]) -> (bool, String) {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .args(extra)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run redis-cli");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// A new TLS connection trusting `extra`'s CA answers PING.
pub fn pong(dir: &Path, port: u16, extra: &[&str]) -> bool {
    let (ok, text) = redis_cli(dir, port, extra, &["PING"]);
    ok && text == "PONG"
}

/// An `openssl s_client` session: a TLS connection that stays open across a reload.
pub struct SClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl SClient {
    pub fn connect(dir: &Path, port: u16, ca: &str) -> SClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", ca, "-connect", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_client");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        SClient { child, stdin, stdout }
    }

    /// Sends an inline command and reads one reply line.
    pub fn line(&mut self, command: &str) -> String {
        self.stdin.write_all(format!("{command}\r\n").as_bytes()).expect("write to s_client");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from s_client");
        line.trim_end().to_string()
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One rustls connection to 127.0.0.1:`port` trusting the CA file `ca`, speaking RESP
/// a reply line at a time; every read is bounded by `timeout`.
pub struct TlsConn {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl TlsConn {
    pub fn connect(ca: &Path, port: u16, timeout: Duration) -> std::io::Result<TlsConn> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(std::io::Error::other)? {
            roots.add(cert.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let socket = TcpStream::connect(("127.0.0.1", port))?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        Ok(TlsConn { stream: BufReader::new(rustls::StreamOwned::new(conn, socket)) })
    }

    /// Sends an inline command and reads one reply line (a bulk reply's `$n` line).
    pub fn line(&mut self, command: &str) -> std::io::Result<String> {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        stream.flush()?;
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(line.trim_end().to_string())
    }
}
