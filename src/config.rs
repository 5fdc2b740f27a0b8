//! The cluster's configuration: one TOML file (DESIGN.md §3) → a validated [`Config`].
//!
//! Every server reads the same file and is told its own name. The file is parsed into
//! private "raw" structs whose fields keep their position in the file
//! ([`toml::Spanned`]), checked in full, and converted into the plain public structs
//! the rest of the code uses (`client_port: u16`, `data_storage_bytes: u64`, …).
//! Every problem is reported with the file, the line and the field, and all problems
//! are reported at once so that an operator fixes the file in one pass.
//!
//! This module knows nothing of sockets, Raft or the store: it only says what the
//! array looks like. Command-line flags are applied by the binary.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Default `client-reconnect-window`: the seed's 120 seconds, long enough for a client
/// to ride out a failover or a restart of the server it was connected to.
pub const CLIENT_RECONNECT_WINDOW_MS_DEFAULT: u64 = 120_000;

/// Default `election-time`: the upper bound of the election timeout.
pub const ELECTION_TIME_MS_DEFAULT: u64 = 1_000;

/// Shortest `election-time`: below it, ordinary scheduling and fsync pauses would
/// look like a dead active and cause needless elections.
pub const ELECTION_TIME_MS_MIN: u64 = 100;

/// Longest `election-time`: beyond it a dead active leaves its stripe unavailable
/// for longer than any application server would wait.
pub const ELECTION_TIME_MS_MAX: u64 = 60_000;

/// Default `data-storage`: 4g, as the seed's examples (Redis units: 4 × 10^9 bytes).
pub const DATA_STORAGE_BYTES_DEFAULT: u64 = 4_000_000_000;

/// Smallest `data-storage` ("1m"): less cannot even hold the keyspace's own overhead.
pub const DATA_STORAGE_BYTES_MIN: u64 = 1_000_000;

/// Most stripes: each stripe needs at least one of the 16384 hash slots.
pub const STRIPES_MAX: usize = 16_384;

/// Longest name of a cluster, stripe, server or voter. Names appear in logs, in
/// `CLUSTER NODES` lines and on the command line; a bound keeps them readable.
pub const NAME_BYTES_MAX: usize = 64;

/// Default host of a server or voter: loopback, so nothing is exposed unless asked.
pub const HOST_DEFAULT: &str = "127.0.0.1";

/// The configuration used when `tandem server` is started without a file: the
/// development topology (one server, nothing on disk). [`Config::development`]
/// returns the same thing already parsed.
pub const DEVELOPMENT_TOML: &str = r#"[cluster]
name = "development"

[[stripe]]
name = "A"

[[stripe.server]]
name = "server1"
host = "127.0.0.1"
client-port = 9510
group-port = 9530
management-port = 9540
data = "data/server1"
data-storage = "4g"
restartable = false
"#;

// ---------------------------------------------------------------------------------
// The public, validated configuration.
// ---------------------------------------------------------------------------------

/// The whole array: its cluster-wide settings and its stripes in config order (the
/// order decides which hash slots each stripe owns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub cluster: Cluster,
    pub stripes: Vec<Stripe>,
}

/// `[cluster]`: settings shared by every server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// How long state bound to a client session (locks, group membership, the
    /// de-duplication record of its writes) outlives the client's disconnection.
    pub client_reconnect_window_ms: u64,
    /// Shared secret servers and voters present to each other on the group port.
    pub secret: Option<String>,
    /// Password clients must give with `AUTH` on the client port: the `default`
    /// ACL user's password until ACL sets that user.
    pub requirepass: Option<String>,
    /// Redis's `aclfile`: ACL users (`user <name> <rules…>` lines) loaded into the
    /// stripe at its first start (while no user was ever set), read by ACL LOAD and
    /// written by ACL SAVE. A path as given (relative: to the working directory).
    pub aclfile: Option<String>,
    /// Bearer token the management API's procedures (stop, failover, shutdown) require;
    /// `None`: procedures are refused over HTTP (the CLI still runs them).
    pub management_token: Option<String>,
    /// Accept procedures on a plain-HTTP management port bound beyond loopback (the
    /// token then crosses the network in clear). Default false.
    pub management_allow_plain_http: bool,
    /// TLS for servers that have a `tls-port` (Redis's `tls-*` names).
    pub tls: Tls,
    /// Redis's `protected-mode` (`server::protected`): while the `default` user has no
    /// password, clients from other hosts are refused with `-DENIED` (the array's own
    /// servers are let in). Default true, as in Redis: a host beyond loopback is
    /// written in the file on purpose, but a missing password is not.
    pub protected_mode: bool,
}

/// `[cluster]`'s `tls-*` fields: the files every server with a `tls-port` loads (paths
/// as given, relative ones against the server's working directory; each host may hold
/// its own certificate at the same path). Read at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// `tls-cert-file`: the server's certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// `tls-key-file`: the private key of that certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// `tls-ca-cert-file`: the CA certificates client certificates must chain to, PEM.
    pub ca_cert_file: Option<PathBuf>,
    /// `tls-group-ca-cert-file`: the CA members' certificates must chain to on the group
    /// ports and for forwarding, when it is not `tls-ca-cert-file` (members and clients
    /// then come from different CAs).
    pub group_ca_cert_file: Option<PathBuf>,
    /// `tls-auth-clients`: whether clients must present a certificate.
    pub auth_clients: TlsAuthClients,
    /// `tls-cluster`: the cluster port (slot-routing clients) speaks TLS too, with the
    /// same files. Default false.
    pub cluster: bool,
    /// `tls-group`: the group ports (Raft, probes, the CLI) speak mutual TLS only: each
    /// end presents the certificate of `tls-cert-file` and requires the other's to chain
    /// to `tls-ca-cert-file`, before the cluster-secret handshake runs inside it.
    pub group: bool,
    /// `tls-protocols`: the TLS versions offered and accepted (Redis's names); empty:
    /// TLS 1.2 and 1.3.
    pub protocols: Vec<TlsProtocol>,
    /// `tls-ciphers`: the TLS 1.2 cipher suites allowed, by OpenSSL's names (the
    /// client's preference picks among them); empty: all that Tandem has.
    pub ciphers: Vec<String>,
    /// `tls-ciphersuites`: the TLS 1.3 suites allowed, by their standard names; empty:
    /// all three.
    pub ciphersuites: Vec<String>,
    /// `tls-management`: every server's management port speaks HTTPS only, with the
    /// same certificate and key and no client certificate asked (browsers and
    /// Prometheus connect). Default false.
    pub management: bool,
}

/// A TLS version, as `tls-protocols` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProtocol {
    V12,
    V13,
}

/// The TLS 1.2 cipher suites Tandem has (rustls with ring), by OpenSSL's names: what
/// `tls-ciphers` may list. All are ECDHE with an AEAD, as rustls offers no others.
pub const TLS12_CIPHERS: &[&str] = &[
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// The TLS 1.3 suites, by their standard names (OpenSSL's too): what
/// `tls-ciphersuites` may list.
pub const TLS13_CIPHERSUITES: &[&str] = &["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"];

/// Redis's `tls-auth-clients`: `yes` (the default in Redis too) refuses a client without
/// a certificate signed by `tls-ca-cert-file`; `optional` accepts one without, but
/// verifies one that is given; `no` asks for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    No,
    Optional,
    #[default]
    Yes,
}

/// Shortest `management-token`: a token that can be guessed protects nothing.
pub const MANAGEMENT_TOKEN_BYTES_MIN: usize = 16;

/// `[[stripe]]`: one mirror group, one Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    pub name: String,
    /// Upper bound of the election timeout.
    pub election_time_ms: u64,
    pub servers: Vec<Server>,
    pub voters: Vec<Voter>,
}

/// `[[stripe.server]]`: a data-holding server of a stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub host: String,
    /// RESP clients connect here (Terracotta's tsa-port).
    pub client_port: u16,
    /// Servers and voters talk Raft here (tsa-group-port).
    pub group_port: u16,
    /// HTTP API, metrics and console.
    pub management_port: u16,
    /// Optional: the port for slot-routing (cluster) clients. `CLUSTER SLOTS | SHARDS
    /// | NODES` advertise it, and its connections are answered as a Redis Cluster
    /// node answers: `-MOVED` for another stripe's slot, and DBSIZE, KEYS, SCAN,
    /// RANDOMKEY and FLUSHALL for this server's stripe only (a cluster client asks
    /// every stripe itself). On `client-port` a plain client sees one database.
    pub cluster_port: Option<u16>,
    /// Optional: a TLS listener beside `client-port`, serving the same clients over
    /// TLS with `[cluster]`'s `tls-*` files.
    pub tls_port: Option<u16>,
    /// The server's data directory, as written in the file (a relative path is
    /// resolved against the server process's working directory). Never shared.
    pub data: PathBuf,
    /// Memory the data may use.
    pub data_storage_bytes: u64,
    /// Fast Restart: keep the Raft log and snapshots in `data` and fsync before
    /// acknowledging.
    pub restartable: bool,
}

/// `[[stripe.voter]]`: votes in the stripe's elections, holds no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub name: String,
    pub host: String,
    pub group_port: u16,
}

// ---------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------

/// Why a configuration could not be loaded, or a name could not be found in it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is in the message, not a `#[source]`: `{:#}` would print it twice.
    #[error("{path}: cannot read the config file: {error}")]
    Read { path: String, error: std::io::Error },
    /// The file is not TOML, or does not fit the schema (an unknown field, a
    /// missing one, a value of the wrong type).
    #[error("{path}:{line}: {message}")]
    Syntax { path: String, line: usize, message: String },
    /// The file fits the schema but breaks a rule; every broken rule is listed.
    #[error("{}", list_problems(.problems))]
    Invalid { problems: Vec<Problem> },
    #[error("no server named {name:?} in the config; the servers are: {}", .known.join(", "))]
    UnknownServer { name: String, known: Vec<String> },
    #[error("no voter named {name:?} in the config; the voters are: {}", list_or_none(.known))]
    UnknownVoter { name: String, known: Vec<String> },
}

/// One broken rule: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub line: usize,
    /// The field, as a path into the file: `stripe[0].server[1].client-port`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.path, self.line, self.field, self.message)
    }
}

fn list_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

// ---------------------------------------------------------------------------------
// Loading and looking up.
// ---------------------------------------------------------------------------------

impl Config {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: shown.clone(), error })?;
        Config::from_str(&text, &shown)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn from_str(text: &str, path: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        let mut checker = Checker { path, text, problems: Vec::new(), tls_group_line: None };
        let config = checker.convert(raw);
        checker.check_cluster_rules(&config);
        if checker.problems.is_empty() {
            Ok(config.into_config())
        } else {
            checker.problems.sort_by_key(|p| p.line);
            Err(ConfigError::Invalid { problems: checker.problems })
        }
    }

    /// The development topology: one stripe "A", one server "server1" on
    /// 127.0.0.1:9510 (group 9530, management 9540), nothing on disk.
    /// Equal to parsing [`DEVELOPMENT_TOML`].
    pub fn development() -> Config {
        Config {
            cluster: Cluster {
                name: "development".to_string(),
                client_reconnect_window_ms: CLIENT_RECONNECT_WINDOW_MS_DEFAULT,
                secret: None,
                requirepass: None,
                aclfile: None,
                management_token: None,
                management_allow_plain_http: false,
                tls: Tls::default(),
                protected_mode: true,
            },
            stripes: vec![Stripe {
                name: "A".to_string(),
                election_time_ms: ELECTION_TIME_MS_DEFAULT,
                servers: vec![Server {
                    name: "server1".to_string(),
                    host: HOST_DEFAULT.to_string(),
                    client_port: 9510,
                    group_port: 9530,
                    management_port: 9540,
                    cluster_port: None,
                    tls_port: None,
                    data: PathBuf::from("data/server1"),
                    data_storage_bytes: DATA_STORAGE_BYTES_DEFAULT,
                    restartable: false,
                }],
                voters: Vec::new(),
            }],
        }
    }

    /// The server called `name` and its stripe.
    pub fn server(&self, name: &str) -> Option<(&Stripe, &Server)> {
        self.stripes.iter().find_map(|stripe| Some((stripe, stripe.servers.iter().find(|s| s.name == name)?)))
    }

    /// As [`Config::server`], but a missing name is an error that lists the servers.
    pub fn require_server(&self, name: &str) -> Result<(&Stripe, &Server), ConfigError> {
        self.server(name).ok_or_else(|| ConfigError::UnknownServer {
            name: name.to_string(),
            known: self.stripes.iter().flat_map(|s| &s.servers).map(|s| s.name.clone()).collect(),
        })
    }

    /// The voter called `name` and its stripe.
    pub fn voter(&self, name: &str) -> Option<(&Stripe, &Voter)> {
        self.stripes.iter().find_map(|stripe| Some((stripe, stripe.voters.iter().find(|v| v.name == name)?)))
    }

    /// As [`Config::voter`], but a missing name is an error that lists the voters.
    pub fn require_voter(&self, name: &str) -> Result<(&Stripe, &Voter), ConfigError> {
        self.voter(name).ok_or_else(|| ConfigError::UnknownVoter {
            name: name.to_string(),
            known: self.stripes.iter().flat_map(|s| &s.voters).map(|v| v.name.clone()).collect(),
        })
    }
}

// ---------------------------------------------------------------------------------
// Sizes and durations.
// ---------------------------------------------------------------------------------

/// Parses a memory size as Redis's config does (so `CONFIG SET maxmemory` agrees
/// with Redis): a plain number of bytes, or a number with a unit, case-insensitive:
/// `b` = 1, `k` = 1000, `kb` = 1024, `m` = 1000², `mb` = 1024², `g` = 1000³,
/// `gb` = 1024³. `"4g"` is 4 000 000 000 bytes, `"4gb"` 4 GiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let bad = || format!("{text:?} is not a size: expected bytes or a number with k, kb, m, mb, g or gb (\"4g\", \"512mb\")");
    if digits.is_empty() {
        return Err(bad());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(bad()),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is too large a size"))?;
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large a size"))
}

/// Parses a duration into milliseconds: a whole number with a unit, `ms`, `s`, `m`
/// (minutes) or `h`, case-insensitive (`"500ms"`, `"120s"`, `"2m"`). A bare number is
/// refused: "10" could mean seconds or milliseconds, and guessing wrong by 1000× is
/// worse than asking.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let bad = || format!("{text:?} is not a duration: expected a whole number with ms, s, m or h (\"500ms\", \"120s\")");
    if digits.is_empty() {
        return Err(bad());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is too long a duration"))?;
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// Writes milliseconds back the way a person would write them in the file.
fn show_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A TOML or schema error, with its line and, where it can be told, the table it is
/// in (`stripe[0].server[1]: unknown field ...`).
fn syntax_error(text: &str, path: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map_or(1, |span| line_of(text, span.start));
    let message = error.message().trim();
    let message = match table_at(text, line) {
        Some(table) => format!("{table}: {message}"),
        None => message.to_string(),
    };
    ConfigError::Syntax { path: path.to_string(), line, message }
}

/// The table that line `line` belongs to, named as validation names fields
/// (`cluster`, `stripe[1]`, `stripe[1].server[0]`), found by reading the headers
/// above it. A hint only: the schema error itself comes from the TOML parser.
fn table_at(text: &str, line: usize) -> Option<String> {
    let mut table = None;
    let (mut stripe, mut server, mut voter) = (None::<usize>, 0usize, 0usize);
    for header in text.lines().take(line) {
        let header = header.split('#').next().unwrap_or("").trim();
        let next = |n: Option<usize>| n.map_or(0, |n| n + 1);
        table = match header {
            "[cluster]" => Some("cluster".to_string()),
            "[[stripe]]" => {
                stripe = Some(next(stripe));
                (server, voter) = (0, 0);
                stripe.map(|i| format!("stripe[{i}]"))
            }
            "[[stripe.server]]" => {
                server += 1;
                Some(format!("stripe[{}].server[{}]", stripe.unwrap_or(0), server - 1))
            }
            "[[stripe.voter]]" => {
                voter += 1;
                Some(format!("stripe[{}].voter[{}]", stripe.unwrap_or(0), voter - 1))
            }
            other if other.starts_with('[') => Some(other.to_string()),
            _ => table,
        };
    }
    table
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes().get(..end).map_or(1, |before| before.iter().filter(|&&b| b == b'\n').count() + 1)
}

// ---------------------------------------------------------------------------------
// The file as written: private structs that keep positions.
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: Spanned<RawCluster>,
    #[serde(default)]
    stripe: Vec<Spanned<RawStripe>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCluster {
    name: Spanned<String>,
    client_reconnect_window: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    requirepass: Option<Spanned<String>>,
    aclfile: Option<Spanned<String>>,
    management_token: Option<Spanned<String>>,
    management_allow_plain_http: Option<bool>,
    tls_cert_file: Option<Spanned<String>>,
    tls_key_file: Option<Spanned<String>>,
    tls_ca_cert_file: Option<Spanned<String>>,
    tls_group_ca_cert_file: Option<Spanned<String>>,
    tls_auth_clients: Option<Spanned<String>>,
    tls_cluster: Option<bool>,
    tls_group: Option<Spanned<bool>>,
    tls_protocols: Option<Spanned<String>>,
    tls_ciphers: Option<Spanned<String>>,
    tls_ciphersuites: Option<Spanned<String>>,
    protected_mode: Option<bool>,
    tls_management: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStripe {
    name: Spanned<String>,
    election_time: Option<Spanned<String>>,
    #[serde(default)]
    server: Vec<Spanned<RawServer>>,
    #[serde(default)]
    voter: Vec<Spanned<RawVoter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServer {
    name: Spanned<String>,
    host: Option<Spanned<String>>,
    // Ports are read as i64 so that 0 or 70000 earn our own message with the line,
    // not a bare "invalid value".
    client_port: Spanned<i64>,
    group_port: Spanned<i64>,
    management_port: Spanned<i64>,
    cluster_port: Option<Spanned<i64>>,
    tls_port: Option<Spanned<i64>>,
    data: Spanned<String>,
    // A string with a unit or a plain integer of bytes.
    data_storage: Option<Spanned<toml::Value>>,
    restartable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVoter {
    name: Spanned<String>,
    host: Option<Spanned<String>>,
    group_port: Spanned<i64>,
}

// ---------------------------------------------------------------------------------
// Checking: the converted values plus the line of every field a cross-check needs.
// ---------------------------------------------------------------------------------

/// A value with the line it came from and its field path.
#[derive(Clone)]
struct At<T> {
    value: T,
    line: usize,
    field: String,
}

struct CheckedServer {
    server: Server,
    name: At<String>,
    ports: Vec<At<u16>>,
    data: At<PathBuf>,
}

struct CheckedVoter {
    voter: Voter,
    name: At<String>,
    port: At<u16>,
}

struct CheckedStripe {
    stripe: Stripe,
    name: At<String>,
    servers: Vec<CheckedServer>,
    voters: Vec<CheckedVoter>,
}

struct Checked {
    cluster: Cluster,
    stripes: Vec<CheckedStripe>,
}

impl Checked {
    fn into_config(self) -> Config {
        let stripes = self
            .stripes
            .into_iter()
            .map(|s| Stripe {
                servers: s.servers.into_iter().map(|c| c.server).collect(),
                voters: s.voters.into_iter().map(|c| c.voter).collect(),
                ..s.stripe
            })
            .collect();
        Config { cluster: self.cluster, stripes }
    }
}

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
    /// Where `tls-group` was set, for the checks that need its files.
    tls_group_line: Option<usize>,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn fail(&mut self, line: usize, field: &str, message: String) {
        self.problems.push(Problem { path: self.path.to_string(), line, field: field.to_string(), message });
    }

    fn convert(&mut self, raw: RawConfig) -> Checked {
        let cluster_line = self.line(raw.cluster.span());
        let cluster = self.convert_cluster(raw.cluster.into_inner());
        if raw.stripe.is_empty() {
            self.fail(cluster_line, "stripe", "at least one [[stripe]] is required".to_string());
        }
        if raw.stripe.len() > STRIPES_MAX {
            self.fail(cluster_line, "stripe", format!("{} stripes; at most {STRIPES_MAX} (one hash slot each)", raw.stripe.len()));
        }
        let stripes = raw.stripe.into_iter().enumerate().map(|(i, s)| self.convert_stripe(i, s)).collect();
        Checked { cluster, stripes }
    }

    fn convert_cluster(&mut self, mut raw: RawCluster) -> Cluster {
        let tls = self.convert_tls(&mut raw);
        let name = self.name(raw.name, "cluster.name".to_string());
        let client_reconnect_window_ms = match raw.client_reconnect_window {
            None => CLIENT_RECONNECT_WINDOW_MS_DEFAULT,
            Some(text) => {
                let line = self.line(text.span());
                parse_duration_ms(text.get_ref()).unwrap_or_else(|message| {
                    self.fail(line, "cluster.client-reconnect-window", message);
                    CLIENT_RECONNECT_WINDOW_MS_DEFAULT
                })
            }
        };
        let secret = raw.secret.map(|s| self.not_empty(s, "cluster.secret"));
        let requirepass = raw.requirepass.map(|s| self.not_empty(s, "cluster.requirepass"));
        let aclfile = raw.aclfile.map(|s| self.not_empty(s, "cluster.aclfile"));
        let management_token = raw.management_token.map(|token| {
            let line = self.line(token.span());
            let token = token.into_inner();
            if token.len() < MANAGEMENT_TOKEN_BYTES_MIN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.fail(
                    line,
                    "cluster.management-token",
                    format!("must be at least {MANAGEMENT_TOKEN_BYTES_MIN} characters, without spaces or control characters"),
                );
            }
            token
        });
        Cluster {
            name: name.value,
            client_reconnect_window_ms,
            secret,
            requirepass,
            aclfile,
            management_token,
            management_allow_plain_http: raw.management_allow_plain_http.unwrap_or(false),
            tls,
            protected_mode: raw.protected_mode.unwrap_or(true),
        }
    }

    fn convert_tls(&mut self, raw: &mut RawCluster) -> Tls {
        let mut file = |text: Option<Spanned<String>>, field: &str| text.map(|t| PathBuf::from(self.not_empty(t, field)));
        let cert_file = file(raw.tls_cert_file.take(), "cluster.tls-cert-file");
        let key_file = file(raw.tls_key_file.take(), "cluster.tls-key-file");
        let ca_cert_file = file(raw.tls_ca_cert_file.take(), "cluster.tls-ca-cert-file");
        let group_ca_cert_file = file(raw.tls_group_ca_cert_file.take(), "cluster.tls-group-ca-cert-file");
        let auth_clients = match raw.tls_auth_clients.take() {
            None => TlsAuthClients::default(),
            Some(text) => match text.get_ref().as_str() {
                "no" => TlsAuthClients::No,
                "optional" => TlsAuthClients::Optional,
                "yes" => TlsAuthClients::Yes,
                other => {
                    let line = self.line(text.span());
                    self.fail(line, "cluster.tls-auth-clients", format!("{other:?} is not one of \"no\", \"optional\", \"yes\""));
                    // Reported once: no knock-on "needs tls-ca-cert-file" for a value that is not one.
                    TlsAuthClients::No
                }
            },
        };
        let protocols = match raw.tls_protocols.take() {
            None => Vec::new(),
            Some(text) => {
                let mut protocols = Vec::new();
                for word in text.get_ref().split_whitespace() {
                    let protocol = match word.to_ascii_lowercase().as_str() {
                        "tlsv1.2" => TlsProtocol::V12,
                        "tlsv1.3" => TlsProtocol::V13,
                        _ => {
                            let line = self.line(text.span());
                            let why = format!("{word:?} is not a TLS version Tandem speaks: list \"TLSv1.2\" and/or \"TLSv1.3\" (TLS 1.0 and 1.1 are not offered)");
                            self.fail(line, "cluster.tls-protocols", why);
                            continue;
                        }
                    };
                    if !protocols.contains(&protocol) {
                        protocols.push(protocol);
                    }
                }
                if protocols.is_empty() && text.get_ref().split_whitespace().next().is_none() {
                    let line = self.line(text.span());
                    self.fail(
                        line,
                        "cluster.tls-protocols",
                        "is empty: list \"TLSv1.2\" and/or \"TLSv1.3\", or leave it out for both".into(),
                    );
                }
                protocols
            }
        };
        let ciphers = self.cipher_list(raw.tls_ciphers.take(), "cluster.tls-ciphers", TLS12_CIPHERS);
        let ciphersuites = self.cipher_list(raw.tls_ciphersuites.take(), "cluster.tls-ciphersuites", TLS13_CIPHERSUITES);
        let group = match raw.tls_group.take() {
            Some(flag) => {
                self.tls_group_line = Some(self.line(flag.span()));
                *flag.get_ref()
            }
            None => false,
        };
        let management = match raw.tls_management.take() {
            Some(flag) if *flag.get_ref() => {
                if cert_file.is_none() || key_file.is_none() {
                    let line = self.line(flag.span());
                    let message = "tls-management = true needs cluster.tls-cert-file and cluster.tls-key-file (the certificate and key the management port presents, PEM)";
                    self.fail(line, "cluster.tls-management", message.to_string());
                }
                true
            }
            _ => false,
        };
        Tls {
            cert_file,
            key_file,
            ca_cert_file,
            group_ca_cert_file,
            auth_clients,
            cluster: raw.tls_cluster.unwrap_or(false),
            group,
            protocols,
            ciphers,
            ciphersuites,
            management,
        }
    }

    /// A colon-separated list of cipher names (OpenSSL's syntax), each one of `known`.
    fn cipher_list(&mut self, text: Option<Spanned<String>>, field: &str, known: &[&str]) -> Vec<String> {
        let Some(text) = text else { return Vec::new() };
        let mut names = Vec::new();
        for name in text.get_ref().split([':', ' ', ',']).filter(|n| !n.is_empty()) {
            match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(k) if !names.iter().any(|n: &String| n == k) => names.push(k.to_string()),
                Some(_) => {}
                None => {
                    let line = self.line(text.span());
                    self.fail(line, field, format!("{name:?} is not a cipher Tandem has; it has: {}", known.join(":")));
                }
            }
        }
        if names.is_empty() && !text.get_ref().split([':', ' ', ',']).any(|n| !n.is_empty()) {
            let line = self.line(text.span());
            self.fail(line, field, format!("is empty; leave it out to allow all of {}", known.join(":")));
        }
        names
    }

    fn not_empty(&mut self, text: Spanned<String>, field: &str) -> String {
        if text.get_ref().is_empty() {
            let line = self.line(text.span());
            self.fail(line, field, "must not be empty; leave the field out for none".to_string());
        }
        text.into_inner()
    }

    fn convert_stripe(&mut self, index: usize, raw: Spanned<RawStripe>) -> CheckedStripe {
        let line = self.line(raw.span());
        let raw = raw.into_inner();
        let prefix = format!("stripe[{index}]");
        let name = self.name(raw.name, format!("{prefix}.name"));
        let election_time_ms = self.election_time(raw.election_time, &prefix);
        if raw.server.is_empty() {
            self.fail(
                line,
                &format!("{prefix}.server"),
                format!("stripe {:?} has no [[stripe.server]]; at least one is required", name.value),
            );
        }
        let servers: Vec<CheckedServer> =
            raw.server.into_iter().enumerate().map(|(i, s)| self.convert_server(&format!("{prefix}.server[{i}]"), s)).collect();
        let voters: Vec<CheckedVoter> =
            raw.voter.into_iter().enumerate().map(|(i, v)| self.convert_voter(&format!("{prefix}.voter[{i}]"), v)).collect();
        let stripe = Stripe { name: name.value.clone(), election_time_ms, servers: Vec::new(), voters: Vec::new() };
        CheckedStripe { stripe, name, servers, voters }
    }

    fn election_time(&mut self, raw: Option<Spanned<String>>, prefix: &str) -> u64 {
        let Some(text) = raw else {
            return ELECTION_TIME_MS_DEFAULT;
        };
        let line = self.line(text.span());
        let field = format!("{prefix}.election-time");
        match parse_duration_ms(text.get_ref()) {
            Err(message) => self.fail(line, &field, message),
            Ok(ms) if !(ELECTION_TIME_MS_MIN..=ELECTION_TIME_MS_MAX).contains(&ms) => {
                let range = format!("{}..{}", show_ms(ELECTION_TIME_MS_MIN), show_ms(ELECTION_TIME_MS_MAX));
                self.fail(line, &field, format!("{} is out of range {range}", text.get_ref()));
            }
            Ok(ms) => return ms,
        }
        ELECTION_TIME_MS_DEFAULT
    }

    fn convert_server(&mut self, prefix: &str, raw: Spanned<RawServer>) -> CheckedServer {
        let raw = raw.into_inner();
        let name = self.name(raw.name, format!("{prefix}.name"));
        let host = self.host(raw.host, prefix);
        let mut ports = vec![
            self.port(raw.client_port, format!("{prefix}.client-port")),
            self.port(raw.group_port, format!("{prefix}.group-port")),
            self.management_port(raw.management_port, format!("{prefix}.management-port")),
        ];
        let cluster_port = raw.cluster_port.map(|p| self.port(p, format!("{prefix}.cluster-port")));
        let tls_port = raw.tls_port.map(|p| self.port(p, format!("{prefix}.tls-port")));
        let data_line = self.line(raw.data.span());
        let data = At { value: PathBuf::from(raw.data.get_ref()), line: data_line, field: format!("{prefix}.data") };
        if raw.data.get_ref().trim().is_empty() {
            self.fail(data_line, &data.field, "the data directory must not be empty".to_string());
        }
        let data_storage_bytes = self.data_storage(raw.data_storage, prefix);
        let server = Server {
            name: name.value.clone(),
            host,
            client_port: ports[0].value,
            group_port: ports[1].value,
            management_port: ports[2].value,
            cluster_port: cluster_port.as_ref().map(|p| p.value),
            tls_port: tls_port.as_ref().map(|p| p.value),
            data: data.value.clone(),
            data_storage_bytes,
            restartable: raw.restartable.unwrap_or(false),
        };
        ports.extend(cluster_port);
        ports.extend(tls_port);
        CheckedServer { server, name, ports, data }
    }

    fn convert_voter(&mut self, prefix: &str, raw: Spanned<RawVoter>) -> CheckedVoter {
        let raw = raw.into_inner();
        let name = self.name(raw.name, format!("{prefix}.name"));
        let host = self.host(raw.host, prefix);
        let port = self.port(raw.group_port, format!("{prefix}.group-port"));
        let voter = Voter { name: name.value.clone(), host, group_port: port.value };
        CheckedVoter { voter, name, port }
    }

    fn name(&mut self, raw: Spanned<String>, field: String) -> At<String> {
        let line = self.line(raw.span());
        let value = raw.into_inner();
        if value.is_empty() {
            self.fail(line, &field, "a name must not be empty".to_string());
        } else if value.len() > NAME_BYTES_MAX {
            self.fail(line, &field, format!("a name is at most {NAME_BYTES_MAX} bytes; this one has {}", value.len()));
        } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.fail(line, &field, format!("name {value:?} contains whitespace or control characters"));
        }
        At { value, line, field }
    }

    fn host(&mut self, raw: Option<Spanned<String>>, prefix: &str) -> String {
        let Some(raw) = raw else {
            return HOST_DEFAULT.to_string();
        };
        let line = self.line(raw.span());
        let host = raw.into_inner();
        if host.trim().is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.fail(line, &format!("{prefix}.host"), format!("{host:?} is not a host name or address"));
        }
        host
    }

    fn port(&mut self, raw: Spanned<i64>, field: String) -> At<u16> {
        let line = self.line(raw.span());
        let value = match u16::try_from(*raw.get_ref()) {
            Ok(port) if port != 0 => port,
            _ => {
                self.fail(line, &field, format!("port {} is out of range 1..=65535", raw.get_ref()));
                0
            }
        };
        At { value, line, field }
    }

    /// As [`Self::port`], but 0 is allowed: it turns the management port off.
    fn management_port(&mut self, raw: Spanned<i64>, field: String) -> At<u16> {
        if *raw.get_ref() == 0 {
            return At { value: 0, line: self.line(raw.span()), field };
        }
        self.port(raw, field)
    }

    fn data_storage(&mut self, raw: Option<Spanned<toml::Value>>, prefix: &str) -> u64 {
        let Some(raw) = raw else {
            return DATA_STORAGE_BYTES_DEFAULT;
        };
        let line = self.line(raw.span());
        let field = format!("{prefix}.data-storage");
        let parsed = match raw.get_ref() {
            toml::Value::String(text) => parse_size(text),
            toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("{n} is not a size: it is negative")),
            other => Err(format!("expected a size such as \"4g\" or a number of bytes, not a {}", other.type_str())),
        };
        match parsed {
            Err(message) => self.fail(line, &field, message),
            Ok(bytes) if bytes < DATA_STORAGE_BYTES_MIN => {
                self.fail(line, &field, format!("{bytes} bytes is less than the minimum of 1m ({DATA_STORAGE_BYTES_MIN} bytes)"));
            }
            Ok(bytes) => return bytes,
        }
        DATA_STORAGE_BYTES_DEFAULT
    }

    /// The rules that span servers: unique names, unique host:port pairs, data
    /// directories never shared.
    fn check_cluster_rules(&mut self, checked: &Checked) {
        self.check_secret(checked);
        self.check_cluster_ports(checked);
        self.check_tls(checked);
        self.check_unique_names(checked);
        self.check_unique_ports(checked);
        self.check_data_directories(checked);
    }

    /// In an array every server has a cluster port: slot-routing clients must be told
    /// apart from plain ones by where they connect (a cluster client's own
    /// connections say nothing about themselves), or one kind gets the other's
    /// answers (DBSIZE or SCAN counted once per stripe, `-MOVED` to a plain client).
    fn check_cluster_ports(&mut self, checked: &Checked) {
        if checked.stripes.len() < 2 {
            return;
        }
        for server in checked.stripes.iter().flat_map(|s| &s.servers) {
            if server.server.cluster_port.is_none() {
                self.fail(
                    server.name.line,
                    &server.name.field.replace(".name", ".cluster-port"),
                    format!(
                        "server {} has no cluster-port: in an array of {} stripes every server needs one (slot-routing clients connect there, plain clients on client-port)",
                        server.server.name,
                        checked.stripes.len()
                    ),
                );
            }
        }
    }

    /// A `tls-port` needs a certificate and its key; verifying clients needs the CA.
    /// (Whether the files exist and hold what they should is checked when a server
    /// loads them: they may live only on that server's host.)
    fn check_tls(&mut self, checked: &Checked) {
        let tls = &checked.cluster.tls;
        if let (true, Some(line)) = (tls.group, self.tls_group_line) {
            if tls.cert_file.is_none() || tls.key_file.is_none() || (tls.ca_cert_file.is_none() && tls.group_ca_cert_file.is_none()) {
                let message = "group ports over mutual TLS need cluster.tls-cert-file and cluster.tls-key-file (each member's certificate and key, PEM) and cluster.tls-group-ca-cert-file or cluster.tls-ca-cert-file (the CA every member's certificate must chain to)";
                self.fail(line, "cluster.tls-group", message.to_string());
            }
        }
        for server in checked.stripes.iter().flat_map(|s| &s.servers) {
            let tls_port = |p: &&At<u16>| p.field.ends_with(".tls-port") || (tls.cluster && p.field.ends_with(".cluster-port"));
            let Some(port) = server.ports.iter().find(tls_port) else { continue };
            let (line, field) = (port.line, port.field.clone());
            if tls.cert_file.is_none() || tls.key_file.is_none() {
                let message = "a tls-port (or a cluster-port with tls-cluster = true) needs cluster.tls-cert-file and cluster.tls-key-file (the server's certificate and its key, PEM)";
                self.fail(line, &field, message.to_string());
            }
            if tls.auth_clients != TlsAuthClients::No && tls.ca_cert_file.is_none() {
                let message = "cluster.tls-auth-clients is \"yes\" or \"optional\" (\"yes\" by default), so a TLS port needs cluster.tls-ca-cert-file to verify client certificates with; or set tls-auth-clients = \"no\"";
                self.fail(line, &field, message.to_string());
            }
        }
    }

    /// Members of a stripe prove the cluster secret to each other; without one, any
    /// process that can reach a group port could join the stripe or steer it.
    fn check_secret(&mut self, checked: &Checked) {
        if checked.cluster.secret.is_some() {
            return;
        }
        if let Some(stripe) = checked.stripes.iter().find(|s| s.servers.len() + s.voters.len() > 1) {
            self.fail(
                stripe.name.line,
                "cluster.secret",
                format!(
                    "stripe {} has more than one member, so the cluster needs a secret for its group ports (cluster.secret = \"...\")",
                    stripe.name.value
                ),
            );
        } else if let Some(second) = checked.stripes.get(1) {
            self.fail(
                second.name.line,
                "cluster.secret",
                format!(
                    "the array has {} stripes, so the cluster needs a secret: servers learn the other stripes' actives over their group ports (cluster.secret = \"...\")",
                    checked.stripes.len()
                ),
            );
        }
    }

    fn check_unique_names(&mut self, checked: &Checked) {
        // One namespace for stripes, servers and voters: `--name`, `--stripe` and the
        // console's labels must never be ambiguous.
        let mut seen: HashMap<&str, &At<String>> = HashMap::new();
        let names = checked
            .stripes
            .iter()
            .flat_map(|s| std::iter::once(&s.name).chain(s.servers.iter().map(|c| &c.name)).chain(s.voters.iter().map(|c| &c.name)));
        for name in names {
            if name.value.is_empty() {
                continue;
            }
            match seen.get(name.value.as_str()) {
                Some(first) => {
                    let message = format!("name {:?} is already used by {} (line {})", name.value, owner_of(&first.field), first.line);
                    self.fail(name.line, &name.field, message);
                }
                None => {
                    seen.insert(&name.value, name);
                }
            }
        }
    }

    fn check_unique_ports(&mut self, checked: &Checked) {
        let mut seen: HashMap<(String, u16), (&str, usize)> = HashMap::new();
        for stripe in &checked.stripes {
            let servers = stripe.servers.iter().flat_map(|s| s.ports.iter().map(move |p| (&s.server.name, &s.server.host, p)));
            let voters = stripe.voters.iter().map(|v| (&v.voter.name, &v.voter.host, &v.port));
            for (owner, host, port) in servers.chain(voters) {
                if port.value == 0 {
                    continue; // already reported as out of range, or a management port turned off
                }
                let key = (host_key(host), port.value);
                match seen.get(&key) {
                    Some(&(first, line)) => {
                        let message = format!("port {} is already used by {first} (line {line})", port.value);
                        self.fail(port.line, &port.field, message);
                    }
                    None => {
                        seen.insert(key, (owner, port.line));
                    }
                }
            }
        }
    }

    fn check_data_directories(&mut self, checked: &Checked) {
        let servers: Vec<&CheckedServer> = checked.stripes.iter().flat_map(|s| &s.servers).collect();
        for (i, server) in servers.iter().enumerate() {
            let mine = normalize(&server.data.value);
            let earlier = servers.iter().take(i).filter(|o| host_key(&o.server.host) == host_key(&server.server.host));
            for other in earlier {
                let theirs = normalize(&other.data.value);
                let clash = if mine == theirs {
                    "is also the data directory of"
                } else if mine.starts_with(&theirs) {
                    "is inside the data directory of"
                } else if theirs.starts_with(&mine) {
                    "contains the data directory of"
                } else {
                    continue;
                };
                let message = format!(
                    "{} {clash} {} (line {}); data directories are never shared",
                    server.data.value.display(),
                    other.server.name,
                    other.data.line
                );
                self.fail(server.data.line, &server.data.field, message);
                break;
            }
        }
    }
}

/// `stripe[0].server[1].name` → `stripe[0].server[1]`.
fn owner_of(field: &str) -> &str {
    field.strip_suffix(".name").unwrap_or(field)
}

/// Hosts compared for clashes: case-insensitive, and `localhost` is the loopback.
fn host_key(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host == "localhost" {
        HOST_DEFAULT.to_string()
    } else {
        host
    }
}

/// A path without `.` components or trailing slashes, so `./data/a/` equals `data/a`.
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_SERVERS_AND_VOTER: &str = r#"# A high-availability stripe and a scale stripe.
[cluster]
name = "demo"
client-reconnect-window = "2m"
secret = "s3cret"
requirepass = "pw"

[[stripe]]
name = "A"
election-time = "500ms"

[[stripe.server]]
name = "server1"
client-port = 9510
group-port = 9530
management-port = 9540
cluster-port = 9520
data = "data/server1"
data-storage = "512mb"
restartable = true

[[stripe.server]]
name = "server2"
host = "127.0.0.2"
client-port = 9510
group-port = 9530
management-port = 9540
cluster-port = 9520
data = "data/server2"
data-storage = 1073741824

[[stripe.voter]]
name = "voter1"
host = "127.0.0.1"
group-port = 9531

[[stripe]]
name = "B"

[[stripe.server]]
name = "server3"
client-port = 9511
group-port = 9532
management-port = 9541
cluster-port = 9521
data = "data/server3"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, "tandem.toml")
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems }) => problems.iter().map(Problem::to_string).collect(),
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    fn syntax(text: &str) -> String {
        match parse(text) {
            Err(e @ ConfigError::Syntax { .. }) => e.to_string(),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    /// A file with one server whose table is `server` (a TOML fragment).
    fn one_server(server: &str) -> String {
        // The secret takes the blank line's place: line numbers stay as written.
        format!("[cluster]\nname = \"c\"\nsecret = \"s\"\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\n{server}")
    }

    const SERVER1: &str = "name = \"server1\"\nclient-port = 9510\ngroup-port = 9530\nmanagement-port = 9540\ndata = \"data/server1\"\n";

    fn with_cluster_lines(lines: &str) -> String {
        one_server(SERVER1).replacen("secret = \"s\"\n", &format!("secret = \"s\"\n{lines}"), 1)
    }

    #[test]
    fn tls_versions_and_suites_are_read_and_checked_by_name() {
        let text = with_cluster_lines(
            "tls-protocols = \"TLSv1.3 tlsv1.2\"\ntls-ciphers = \"ECDHE-RSA-AES128-GCM-SHA256:ecdhe-ecdsa-aes256-gcm-sha384\"\ntls-ciphersuites = \"TLS_AES_128_GCM_SHA256\"\n",
        );
        let tls = parse(&text).unwrap().cluster.tls;
        assert_eq!(tls.protocols, [TlsProtocol::V13, TlsProtocol::V12]);
        assert_eq!(tls.ciphers, ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
        assert_eq!(tls.ciphersuites, ["TLS_AES_128_GCM_SHA256"]);

        let errors = problems(&with_cluster_lines("tls-protocols = \"TLSv1.1 TLSv1.2\"\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("tandem.toml:4: cluster.tls-protocols: \"TLSv1.1\" is not a TLS version"), "{errors:?}");
        let errors = problems(&with_cluster_lines("tls-ciphers = \"AES128-SHA\"\n"));
        assert!(
            errors[0].starts_with("tandem.toml:4: cluster.tls-ciphers: \"AES128-SHA\" is not a cipher Tandem has; it has: ECDHE-"),
            "{errors:?}"
        );
        let errors = problems(&with_cluster_lines("tls-ciphersuites = \"\"\n"));
        assert!(errors[0].starts_with("tandem.toml:4: cluster.tls-ciphersuites: is empty"), "{errors:?}");
    }

    #[test]
    fn tls_group_needs_the_certificate_its_key_and_the_ca() {
        let errors = problems(&with_cluster_lines("tls-group = true\ntls-cert-file = \"m.crt\"\ntls-key-file = \"m.key\"\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("tandem.toml:4: cluster.tls-group: group ports over mutual TLS need"), "{errors:?}");
        let text =
            with_cluster_lines("tls-group = true\ntls-cert-file = \"m.crt\"\ntls-key-file = \"m.key\"\ntls-ca-cert-file = \"ca.crt\"\n");
        assert!(parse(&text).unwrap().cluster.tls.group);
    }

    #[test]
    fn three_server_file_with_voter_is_read_in_full() {
        let config = parse(THREE_SERVERS_AND_VOTER).unwrap();
        assert_eq!(config.cluster.name, "demo");
        assert_eq!(config.cluster.client_reconnect_window_ms, 120_000);
        assert_eq!(config.cluster.secret.as_deref(), Some("s3cret"));
        assert_eq!(config.cluster.requirepass.as_deref(), Some("pw"));
        assert_eq!(config.stripes.len(), 2);
        let a = &config.stripes[0];
        assert_eq!((a.name.as_str(), a.election_time_ms), ("A", 500));
        assert_eq!(a.servers.len(), 2);
        assert_eq!(a.voters, vec![Voter { name: "voter1".into(), host: "127.0.0.1".into(), group_port: 9531 }]);
        let s1 = &a.servers[0];
        assert_eq!(s1.host, "127.0.0.1");
        assert_eq!((s1.client_port, s1.group_port, s1.management_port), (9510, 9530, 9540));
        assert_eq!(s1.data, PathBuf::from("data/server1"));
        assert_eq!(s1.data_storage_bytes, 512 << 20);
        assert!(s1.restartable);
        let s2 = &a.servers[1];
        assert_eq!((s2.host.as_str(), s2.data_storage_bytes, s2.restartable), ("127.0.0.2", 1 << 30, false));
        let b = &config.stripes[1];
        assert_eq!((b.name.as_str(), b.election_time_ms), ("B", ELECTION_TIME_MS_DEFAULT));
        assert_eq!(b.servers[0].data_storage_bytes, DATA_STORAGE_BYTES_DEFAULT);
        assert!(b.voters.is_empty());
    }

    #[test]
    fn defaults_apply_to_omitted_fields() {
        let config = parse(&one_server(SERVER1).replace("secret = \"s\"\n", "\n")).unwrap();
        assert_eq!(config.cluster.client_reconnect_window_ms, 120_000);
        assert_eq!(config.cluster.secret, None);
        assert_eq!(config.cluster.requirepass, None);
        assert_eq!(config.stripes[0].election_time_ms, 1_000);
        let server = &config.stripes[0].servers[0];
        assert_eq!(server.host, "127.0.0.1");
        assert_eq!(server.data_storage_bytes, 4_000_000_000);
        assert!(!server.restartable);
    }

    fn tls_server(cluster_tls: &str) -> String {
        format!(
            "[cluster]\nname = \"c\"\n{cluster_tls}[[stripe]]\nname = \"A\"\n[[stripe.server]]\nname = \"s1\"\nclient-port = 1\ntls-port = 2\ngroup-port = 3\nmanagement-port = 4\ndata = \"d\"\n"
        )
    }

    #[test]
    fn tls_fields_are_read_with_redis_names() {
        let text = tls_server(
            "tls-cert-file = \"s.crt\"\ntls-key-file = \"s.key\"\ntls-ca-cert-file = \"ca.crt\"\ntls-auth-clients = \"optional\"\n",
        );
        let config = parse(&text).unwrap();
        let tls = &config.cluster.tls;
        assert_eq!(tls.cert_file.as_deref(), Some(Path::new("s.crt")));
        assert_eq!(tls.key_file.as_deref(), Some(Path::new("s.key")));
        assert_eq!(tls.ca_cert_file.as_deref(), Some(Path::new("ca.crt")));
        assert_eq!(tls.auth_clients, TlsAuthClients::Optional);
        assert_eq!(config.server("s1").unwrap().1.tls_port, Some(2));
    }

    #[test]
    fn tls_port_without_files_or_ca_names_the_field() {
        let errors = problems(&tls_server(""));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("tandem.toml:8: stripe[0].server[0].tls-port: a tls-port (or a cluster-port with tls-cluster = true) needs cluster.tls-cert-file"), "{errors:?}");
        assert!(errors[1].contains("needs cluster.tls-ca-cert-file"), "{errors:?}");
        let errors = problems(&tls_server("tls-cert-file = \"s.crt\"\ntls-key-file = \"s.key\"\ntls-auth-clients = \"sometimes\"\n"));
        assert_eq!(errors, ["tandem.toml:5: cluster.tls-auth-clients: \"sometimes\" is not one of \"no\", \"optional\", \"yes\""]);
        let errors = problems(&tls_server("tls-cert-file = \"\"\ntls-key-file = \"s.key\"\ntls-auth-clients = \"no\"\n"));
        assert_eq!(errors, ["tandem.toml:3: cluster.tls-cert-file: must not be empty; leave the field out for none"]);
    }

    #[test]
    fn tls_management_needs_the_certificate_and_key() {
        let config = parse(&tls_server("tls-cert-file = \"s.crt\"\ntls-key-file = \"s.key\"\ntls-auth-clients = \"no\"\n")).unwrap();
        assert!(!config.cluster.tls.management, "off unless asked");
        let on = "tls-cert-file = \"s.crt\"\ntls-key-file = \"s.key\"\ntls-auth-clients = \"no\"\ntls-management = true\n";
        assert!(parse(&tls_server(on)).unwrap().cluster.tls.management);
        let text = "[cluster]\nname = \"c\"\ntls-management = true\n[[stripe]]\nname = \"A\"\n[[stripe.server]]\nname = \"s1\"\nclient-port = 1\ngroup-port = 3\nmanagement-port = 4\ndata = \"d\"\n";
        let errors = problems(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("tandem.toml:3: cluster.tls-management: tls-management = true needs cluster.tls-cert-file"),
            "{errors:?}"
        );
    }

    #[test]
    fn tls_cluster_needs_the_files_on_a_cluster_port() {
        let text = "[cluster]\nname = \"c\"\ntls-cluster = true\n[[stripe]]\nname = \"A\"\n[[stripe.server]]\nname = \"s1\"\nclient-port = 1\ngroup-port = 3\nmanagement-port = 4\ncluster-port = 5\ndata = \"d\"\n";
        let errors = problems(text);
        assert!(
            errors[0]
                .starts_with("tandem.toml:11: stripe[0].server[0].cluster-port: a tls-port (or a cluster-port with tls-cluster = true)"),
            "{errors:?}"
        );
        // Without a cluster port, tls-cluster asks for nothing.
        assert!(parse(&text.replace("cluster-port = 5\n", "")).unwrap().cluster.tls.cluster);
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let config = parse(include_str!("../tandem.example.toml")).unwrap();
        let (_, server) = config.server("server1").unwrap();
        assert!(server.restartable);
        assert_eq!(server.data_storage_bytes, 4 * 1024 * 1024 * 1024);
    }

    #[test]
    fn development_config_equals_its_embedded_toml() {
        assert_eq!(parse(DEVELOPMENT_TOML).unwrap(), Config::development());
        let dev = Config::development();
        let (stripe, server) = dev.server("server1").unwrap();
        assert_eq!(stripe.name, "A");
        assert_eq!((server.client_port, server.group_port, server.management_port), (9510, 9530, 9540));
    }

    #[test]
    fn server_and_voter_are_found_by_name_with_their_stripe() {
        let config = parse(THREE_SERVERS_AND_VOTER).unwrap();
        assert_eq!(config.server("server3").map(|(s, _)| s.name.as_str()), Some("B"));
        assert_eq!(config.voter("voter1").map(|(s, v)| (s.name.as_str(), v.group_port)), Some(("A", 9531)));
        assert!(config.server("voter1").is_none());
    }

    #[test]
    fn unknown_server_error_lists_the_known_names() {
        let config = parse(THREE_SERVERS_AND_VOTER).unwrap();
        let err = config.require_server("server9").unwrap_err();
        assert_eq!(err.to_string(), "no server named \"server9\" in the config; the servers are: server1, server2, server3");
        assert!(matches!(err, ConfigError::UnknownServer { ref known, .. } if known.len() == 3));
        let err = config.require_voter("v2").unwrap_err();
        assert_eq!(err.to_string(), "no voter named \"v2\" in the config; the voters are: voter1");
    }

    #[test]
    fn unknown_field_is_rejected_with_its_line() {
        let text = one_server(&format!("{SERVER1}clientport = 1\n"));
        let message = syntax(&text);
        assert!(message.starts_with("tandem.toml:13: stripe[0].server[0]: unknown field `clientport`"), "{message}");
    }

    #[test]
    fn unknown_cluster_field_is_rejected() {
        let message = syntax("[cluster]\nname = \"c\"\nreconnect = \"1s\"\n");
        assert!(message.starts_with("tandem.toml:3: cluster: unknown field `reconnect`"), "{message}");
    }

    #[test]
    fn missing_required_field_is_reported() {
        let text = one_server("name = \"server1\"\nclient-port = 9510\ngroup-port = 9530\ndata = \"d\"\n");
        let message = syntax(&text);
        assert!(message.contains("missing field `management-port`"), "{message}");
        assert!(message.starts_with("tandem.toml:7: stripe[0].server[0]: "), "{message}");
    }

    #[test]
    fn wrong_type_is_reported_with_its_line() {
        let text = one_server(&SERVER1.replace("client-port = 9510", "client-port = \"9510\""));
        assert!(syntax(&text).starts_with("tandem.toml:9: "), "{}", syntax(&text));
    }

    #[test]
    fn not_toml_is_a_syntax_error_with_its_line() {
        assert!(syntax("[cluster]\nname = \n").starts_with("tandem.toml:2: "));
    }

    #[test]
    fn port_out_of_range_names_field_and_line() {
        let text = one_server(&SERVER1.replace("group-port = 9530", "group-port = 70000"));
        assert_eq!(problems(&text), ["tandem.toml:10: stripe[0].server[0].group-port: port 70000 is out of range 1..=65535"]);
        let text = one_server(&SERVER1.replace("group-port = 9530", "group-port = 0"));
        assert_eq!(problems(&text), ["tandem.toml:10: stripe[0].server[0].group-port: port 0 is out of range 1..=65535"]);
    }

    #[test]
    fn two_servers_on_one_host_port_are_refused() {
        let second = "\n[[stripe.server]]\nname = \"server2\"\nclient-port = 9510\ngroup-port = 9531\nmanagement-port = 9541\ndata = \"data/server2\"\n";
        let text = one_server(&format!("{SERVER1}{second}"));
        assert_eq!(problems(&text), ["tandem.toml:16: stripe[0].server[1].client-port: port 9510 is already used by server1 (line 9)"]);
    }

    #[test]
    fn same_port_on_different_hosts_is_allowed_but_localhost_is_loopback() {
        let second = "\n[[stripe.server]]\nname = \"server2\"\nhost = \"127.0.0.2\"\nclient-port = 9510\ngroup-port = 9530\nmanagement-port = 9540\ndata = \"data/server2\"\n";
        assert!(parse(&one_server(&format!("{SERVER1}{second}"))).is_ok());
        let clash = second.replace("127.0.0.2", "LOCALHOST");
        assert_eq!(problems(&one_server(&format!("{SERVER1}{clash}"))).len(), 3);
    }

    #[test]
    fn one_server_cannot_use_a_port_twice() {
        let text = one_server(&SERVER1.replace("management-port = 9540", "management-port = 9530"));
        assert_eq!(
            problems(&text),
            ["tandem.toml:11: stripe[0].server[0].management-port: port 9530 is already used by server1 (line 10)"]
        );
    }

    #[test]
    fn voter_port_clashing_with_a_server_is_refused() {
        let voter = "\n[[stripe.voter]]\nname = \"voter1\"\ngroup-port = 9540\n";
        let text = one_server(&format!("{SERVER1}{voter}"));
        assert_eq!(problems(&text), ["tandem.toml:16: stripe[0].voter[0].group-port: port 9540 is already used by server1 (line 11)"]);
    }

    #[test]
    fn duplicate_names_are_refused_across_stripes_servers_and_voters() {
        let voter = "\n[[stripe.voter]]\nname = \"server1\"\ngroup-port = 9599\n";
        let text = one_server(&format!("{SERVER1}{voter}"));
        assert_eq!(
            problems(&text),
            ["tandem.toml:15: stripe[0].voter[0].name: name \"server1\" is already used by stripe[0].server[0] (line 8)"]
        );
        let text = one_server(&SERVER1.replace("\"server1\"", "\"A\""));
        assert_eq!(problems(&text), ["tandem.toml:8: stripe[0].server[0].name: name \"A\" is already used by stripe[0] (line 5)"]);
    }

    #[test]
    fn empty_and_spaced_names_are_refused() {
        let text = one_server(&SERVER1.replace("\"server1\"", "\"\""));
        assert_eq!(problems(&text), ["tandem.toml:8: stripe[0].server[0].name: a name must not be empty"]);
        let text = one_server(&SERVER1.replace("\"server1\"", "\"server 1\""));
        assert_eq!(
            problems(&text),
            ["tandem.toml:8: stripe[0].server[0].name: name \"server 1\" contains whitespace or control characters"]
        );
        let text = "[cluster]\nname = \"\"\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\n".to_string() + SERVER1;
        assert_eq!(problems(&text), ["tandem.toml:2: cluster.name: a name must not be empty"]);
    }

    #[test]
    fn a_stripe_of_several_members_needs_a_secret() {
        let voter = "\n[[stripe.voter]]\nname = \"voter1\"\ngroup-port = 9599\n";
        let text = one_server(&format!("{SERVER1}{voter}")).replace("secret = \"s\"\n", "\n");
        assert_eq!(
            problems(&text),
            ["tandem.toml:5: cluster.secret: stripe A has more than one member, so the cluster needs a secret for its group ports (cluster.secret = \"...\")"]
        );
    }

    #[test]
    fn a_cluster_port_is_optional_and_must_be_free() {
        assert_eq!(parse(&one_server(SERVER1)).unwrap().stripes[0].servers[0].cluster_port, None);
        let with = one_server(&SERVER1.replace("management-port = 9540\n", "management-port = 9540\ncluster-port = 9520\n"));
        assert_eq!(parse(&with).unwrap().stripes[0].servers[0].cluster_port, Some(9520));
        let clash = one_server(&SERVER1.replace("management-port = 9540\n", "management-port = 9540\ncluster-port = 9510\n"));
        assert_eq!(problems(&clash), ["tandem.toml:12: stripe[0].server[0].cluster-port: port 9510 is already used by server1 (line 9)"]);
    }

    /// Two stripes of one server each, both with cluster ports.
    fn two_stripes() -> String {
        let server1 = SERVER1.replace("management-port = 9540\n", "management-port = 9540\ncluster-port = 9520\n");
        let stripe_b = "\n[[stripe]]\nname = \"B\"\n\n[[stripe.server]]\nname = \"server2\"\nclient-port = 9512\ngroup-port = 9532\nmanagement-port = 9542\ncluster-port = 9522\ndata = \"./data/server2\"\n";
        one_server(&format!("{server1}{stripe_b}"))
    }

    #[test]
    fn an_array_of_several_stripes_needs_a_secret() {
        let text = two_stripes().replace("secret = \"s\"\n", "\n");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(": cluster.secret: the array has 2 stripes, so the cluster needs a secret"), "{found:?}");
        assert_eq!(parse(&two_stripes()).map(|c| c.stripes.len()).ok(), Some(2));
    }

    #[test]
    fn every_server_of_an_array_needs_a_cluster_port() {
        let text = two_stripes().replace("cluster-port = 9522\n", "");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(
                "stripe[1].server[0].cluster-port: server server2 has no cluster-port: in an array of 2 stripes every server needs one"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn shared_data_directory_is_refused() {
        let second = "\n[[stripe.server]]\nname = \"server2\"\nclient-port = 9511\ngroup-port = 9531\nmanagement-port = 9541\ndata = \"./data/server1/\"\n";
        let text = one_server(&format!("{SERVER1}{second}"));
        assert_eq!(
            problems(&text),
            ["tandem.toml:19: stripe[0].server[1].data: ./data/server1/ is also the data directory of server1 (line 12); data directories are never shared"]
        );
    }

    #[test]
    fn nested_data_directory_is_refused_but_other_hosts_may_reuse_paths() {
        let second = "\n[[stripe.server]]\nname = \"server2\"\nclient-port = 9511\ngroup-port = 9531\nmanagement-port = 9541\ndata = \"data/server1/inner\"\n";
        let text = one_server(&format!("{SERVER1}{second}"));
        assert_eq!(problems(&text).len(), 1);
        assert!(problems(&text)[0].contains("is inside the data directory of server1 (line 12)"));
        let elsewhere = second.replace("name = \"server2\"", "name = \"server2\"\nhost = \"10.0.0.2\"").replace("/inner", "");
        assert!(parse(&one_server(&format!("{SERVER1}{elsewhere}"))).is_ok());
    }

    #[test]
    fn config_without_stripes_is_refused() {
        assert_eq!(problems("[cluster]\nname = \"c\"\n"), ["tandem.toml:1: stripe: at least one [[stripe]] is required"]);
    }

    #[test]
    fn stripe_without_servers_is_refused() {
        let text = "[cluster]\nname = \"c\"\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.voter]]\nname = \"v\"\ngroup-port = 9531\n";
        let got = problems(text);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("tandem.toml:4: stripe[0].server: stripe \"A\" has no [[stripe.server]]"), "{got:?}");
    }

    #[test]
    fn election_time_out_of_range_is_refused() {
        let text = one_server(SERVER1).replace("name = \"A\"", "name = \"A\"\nelection-time = \"50ms\"");
        assert_eq!(problems(&text), ["tandem.toml:6: stripe[0].election-time: 50ms is out of range 100ms..60s"]);
        let text = one_server(SERVER1).replace("name = \"A\"", "name = \"A\"\nelection-time = \"2m\"");
        assert_eq!(problems(&text), ["tandem.toml:6: stripe[0].election-time: 2m is out of range 100ms..60s"]);
        let text = one_server(SERVER1).replace("name = \"A\"", "name = \"A\"\nelection-time = \"1\"");
        assert!(problems(&text)[0].starts_with("tandem.toml:6: stripe[0].election-time: \"1\" is not a duration"));
    }

    #[test]
    fn election_time_bounds_are_inclusive() {
        for bound in ["100ms", "60s", "1m"] {
            let text = one_server(SERVER1).replace("name = \"A\"", &format!("name = \"A\"\nelection-time = \"{bound}\""));
            assert!(parse(&text).is_ok(), "{bound}");
        }
    }

    #[test]
    fn data_storage_below_one_megabyte_is_refused() {
        let text = one_server(&format!("{SERVER1}data-storage = \"64k\"\n"));
        assert_eq!(
            problems(&text),
            ["tandem.toml:13: stripe[0].server[0].data-storage: 64000 bytes is less than the minimum of 1m (1000000 bytes)"]
        );
        assert!(parse(&one_server(&format!("{SERVER1}data-storage = \"1m\"\n"))).is_ok());
    }

    #[test]
    fn data_storage_of_the_wrong_kind_is_refused() {
        let text = one_server(&format!("{SERVER1}data-storage = \"4 apples\"\n"));
        assert!(problems(&text)[0].starts_with("tandem.toml:13: stripe[0].server[0].data-storage: \"4 apples\" is not a size"));
        let text = one_server(&format!("{SERVER1}data-storage = -5\n"));
        assert_eq!(problems(&text), ["tandem.toml:13: stripe[0].server[0].data-storage: -5 is not a size: it is negative"]);
        let text = one_server(&format!("{SERVER1}data-storage = true\n"));
        assert!(problems(&text)[0].contains("not a boolean"));
    }

    #[test]
    fn management_token_is_checked_and_port_zero_turns_management_off() {
        let with = |extra: &str| one_server(SERVER1).replace("secret = \"s\"\n", &format!("secret = \"s\"\n{extra}"));
        let config = parse(&with("management-token = \"0123456789abcdef\"\nmanagement-allow-plain-http = true\n")).unwrap();
        assert_eq!(config.cluster.management_token.as_deref(), Some("0123456789abcdef"));
        assert!(config.cluster.management_allow_plain_http);
        let config = parse(&one_server(SERVER1)).unwrap();
        assert_eq!((config.cluster.management_token, config.cluster.management_allow_plain_http), (None, false));
        assert_eq!(
            problems(&with("management-token = \"short\"\n")),
            ["tandem.toml:4: cluster.management-token: must be at least 16 characters, without spaces or control characters"]
        );
        let off = parse(&one_server(&SERVER1.replace("management-port = 9540", "management-port = 0"))).unwrap();
        assert_eq!(off.stripes[0].servers[0].management_port, 0);
    }

    #[test]
    fn bad_reconnect_window_and_empty_secret_are_refused() {
        let text =
            one_server(SERVER1).replace("name = \"c\"\nsecret = \"s\"", "name = \"c\"\nclient-reconnect-window = \"soon\"\nsecret = \"\"");
        let got = problems(&text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("tandem.toml:3: cluster.client-reconnect-window: \"soon\" is not a duration"));
        assert_eq!(got[1], "tandem.toml:4: cluster.secret: must not be empty; leave the field out for none");
    }

    #[test]
    fn every_problem_is_reported_sorted_by_line() {
        let text = one_server(&SERVER1.replace("9510", "0").replace("9540", "99999").replace("\"server1\"", "\"\""));
        let got = problems(&text);
        let lines: Vec<&str> = got.iter().map(|p| p.split(':').nth(1).unwrap_or("")).collect();
        assert_eq!(lines, ["8", "9", "11"]);
    }

    #[test]
    fn sizes_follow_redis_units() {
        assert_eq!(parse_size("4g"), Ok(4_000_000_000));
        assert_eq!(parse_size("4GB"), Ok(4 << 30));
        assert_eq!(parse_size("512m"), Ok(512_000_000));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("64Kb"), Ok(65_536));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100b"), Ok(100));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_are_refused_without_overflow() {
        for bad in ["", "g", "-1", "1.5g", "4 g", "4t", "4gbb", "k4"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551616").unwrap_err().contains("too large"));
        assert!(parse_size("18446744073709551615gb").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_ms("120s"), Ok(120_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("10S"), Ok(10_000));
        for bad in ["", "10", "s", "-1s", "1.5s", "10 s", "10sec", "1d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration_ms("18446744073709551615h").unwrap_err().contains("too long"));
    }

    #[test]
    fn syntax_errors_name_the_table_they_are_in() {
        let text = format!("{}\n[[stripe.voter]] # witness\nname = \"v\"\ngroup-port = 1\nport = 2\n", THREE_SERVERS_AND_VOTER);
        let message = syntax(&text);
        assert!(message.starts_with("tandem.toml:51: stripe[1].voter[0]: unknown field `port`"), "{message}");
    }

    #[test]
    fn line_numbers_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 400), 3);
    }

    #[test]
    fn from_file_reads_the_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.toml");
        std::fs::write(&path, THREE_SERVERS_AND_VOTER).unwrap();
        assert_eq!(Config::from_file(&path).unwrap().stripes.len(), 2);
        std::fs::write(&path, "[cluster]\nname = \"c\"\n").unwrap();
        let message = Config::from_file(&path).unwrap_err().to_string();
        assert!(message.starts_with(&format!("{}:1: stripe:", path.display())), "{message}");
        let missing = dir.path().join("missing.toml");
        assert!(Config::from_file(&missing).unwrap_err().to_string().contains("cannot read the config file"));
    }
}
