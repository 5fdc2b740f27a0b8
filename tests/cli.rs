//! The `tandem` binary explains itself: help on every command and flag, the
//! topologies and the first command in `--help`, the build in `--version`, errors that
//! say where and what to do, and logs that suit a file or a log shipper.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tandem(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(support::binary()).args(args).output().expect("run tandem");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The subcommands listed under "Commands:" in `tandem --help`.
fn subcommands() -> Vec<String> {
    let (_, help, _) = tandem(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn help_names_the_topologies_and_the_first_command_to_try() {
    let (ok, help, _) = tandem(&["--help"]);
    assert!(ok);
    for word in ["development", "reliability", "high availability", "scale", "tandem server", "examples/config/", "docs/operations.md"] {
        assert!(help.contains(word), "`tandem --help` does not mention {word:?}:\n{help}");
    }
}

#[test]
fn every_subcommand_and_flag_has_help_text() {
    let commands = subcommands();
    for expected in ["server", "voter", "status", "stop", "failover", "shutdown", "clear-data", "demo", "check"] {
        assert!(commands.iter().any(|c| c == expected), "{expected} missing from `tandem --help`: {commands:?}");
    }
    let (_, top, _) = tandem(&["--help"]);
    for line in top.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1).take_while(|l| l.starts_with("  ")) {
        assert!(line.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2, "a subcommand without help: {line:?}");
    }
    for command in commands {
        let (ok, help, _) = tandem(&[&command, "--help"]);
        assert!(ok, "tandem {command} --help failed");
        let lines: Vec<&str> = help.lines().collect();
        let mut flags = 0;
        for (i, line) in lines.iter().enumerate() {
            let flag = line.trim_start();
            if !flag.starts_with('-') {
                continue;
            }
            flags += 1;
            // "--config <CONFIG>  The array's TOML config file …", or the text on the
            // next line, indented further (clap's layout for long help).
            let same_line = flag.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2;
            let next = lines.get(i + 1).copied().unwrap_or("");
            let next_line = next.len() - next.trim_start().len() > line.len() - flag.len() && !next.trim().is_empty();
            assert!(same_line || next_line, "`tandem {command}`: the flag {flag:?} has no help text");
        }
        assert!(flags > 0, "tandem {command} --help lists no flags");
    }
}

#[test]
fn version_names_the_build() {
    let (ok, out, _) = tandem(&["--version"]);
    assert!(ok);
    // build.rs gives the package (these tests included) the build it stamped.
    let build = env!("TANDEM_BUILD");
    assert_eq!(out.trim(), format!("tandem {} ({build})", env!("CARGO_PKG_VERSION")));
    match env!("TANDEM_BUILD_SOURCE") {
        // The commit checked out when the binary was built: HEAD, or one of its
        // ancestors after a commit made while the tests were building.
        "git" => {
            let commit = build.strip_prefix("commit ").unwrap_or_else(|| panic!("{build:?}"));
            assert!(commit.len() >= 12 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{build:?}");
            let known = Command::new("git")
                .args(["merge-base", "--is-ancestor", commit, "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("git merge-base");
            assert!(known.status.success(), "{commit} is not a commit of this branch's history");
        }
        "none" => assert_eq!(build, "unknown: not built from a git checkout"),
        // A packager's TANDEM_BUILD, as given.
        source => assert_eq!(source, "env"),
    }
}

#[test]
fn a_bad_config_names_file_line_field_and_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = "[cluster]\nname = \"x\"\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = 70000\ngroup-port = 1\nmanagement-port = 0\ndata = \"d\"\n";
    std::fs::write(&path, text).expect("write");
    let (ok, _, stderr) = tandem(&["server", "--config", path.to_str().expect("utf-8 path"), "--name", "server1"]);
    assert!(!ok);
    assert!(stderr.contains("bad.toml:9: stripe[0].server[0].client-port: port 70000 is out of range"), "{stderr}");
    assert!(stderr.contains("docs/configuration.md"), "the error says where to read on: {stderr}");
    let (ok, _, stderr) = tandem(&["server", "--config", path.to_str().expect("utf-8 path"), "--name", "nobody"]);
    assert!(!ok && stderr.contains("bad.toml:9"), "every problem of the file comes first: {stderr}");
    let (ok, _, stderr) = tandem(&["status", "--config", "/nonexistent/tandem.toml"]);
    assert!(!ok && stderr.contains("/nonexistent/tandem.toml: cannot read the config file"), "{stderr}");
    assert!(stderr.contains("--config"), "says what to give: {stderr}");
}

/// Starts a development server with `args`, stderr to a file, until its log has a
/// line with `until`; returns the log.
fn server_log(extra: &[&str], until: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let port = support::free_port().to_string();
    let mut args = vec!["server", "--port", &port];
    args.extend_from_slice(extra);
    let mut child = Command::new(support::binary())
        .args(&args)
        .current_dir(dir.path())
        .env("RUST_LOG", "info,openraft=error")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn tandem");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains(until) {
        std::thread::sleep(Duration::from_millis(50));
        text.clear();
        std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text)).expect("read log");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(until), "no {until:?} in the log within 20 s:\n{text}");
    text
}

#[test]
fn a_log_file_gets_no_colours_and_every_line_names_the_member() {
    let log = server_log(&[], "ACTIVE-COORDINATOR");
    assert!(!log.contains('\u{1b}'), "escape codes in a log written to a file:\n{log}");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.starts_with("A/server1 "), "a line that does not name its stripe and server: {line:?}");
    }
    assert!(log.lines().any(|l| l.contains("server state") && l.contains("state=ACTIVE-COORDINATOR")), "{log}");
}

#[test]
fn json_logs_are_one_object_a_line_with_stripe_and_server() {
    let log = server_log(&["--log-format", "json"], "ACTIVE-COORDINATOR");
    let mut states = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let object: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(object["stripe"], "A", "{line}");
        assert_eq!(object["server"], "server1", "{line}");
        assert!(object["level"].is_string() && object["timestamp"].is_string(), "{line}");
        if object["fields"]["message"] == "server state" {
            states.push(object["fields"]["state"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(states.iter().any(|s| s == "ACTIVE-COORDINATOR"), "no state change to ACTIVE-COORDINATOR logged: {states:?}\n{log}");
}

#[test]
fn failovers_and_refusals_get_a_log_line_naming_stripe_and_server() {
    use support::cluster::{wait_until, Cluster, Spec};
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let old = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let (ok, out) = cluster.ctl(&["failover", "--stripe", "A"]);
    assert!(ok, "{out}");
    let new = cluster.wait_stable(&everyone, Duration::from_secs(30));
    assert_ne!(old, new);
    // Refused: the new active is already the active.
    let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", &cluster.members[new].name]);
    assert!(!ok, "{out}");
    let line_of = |i: usize, message: &str| cluster.stderr(i).lines().find(|l| l.contains(message)).map(String::from).unwrap_or_default();
    let logged = wait_until(Duration::from_secs(10), || {
        !line_of(old, "failover: handed the active over").is_empty() && !line_of(new, "failover refused").is_empty()
    });
    assert!(logged, "{}", cluster.all_stderr());
    let handed = line_of(old, "failover: handed the active over");
    assert!(handed.starts_with(&format!("A/{} ", cluster.members[old].name)), "{handed}");
    assert!(handed.contains(&format!("to={}", cluster.members[new].name)), "{handed}");
    let refused = line_of(new, "failover refused");
    assert!(refused.starts_with(&format!("A/{} ", cluster.members[new].name)) && refused.contains("already the active"), "{refused}");
    let elected = line_of(new, "state=ACTIVE-COORDINATOR");
    assert!(elected.starts_with(&format!("A/{} ", cluster.members[new].name)), "the new active's state change: {elected:?}");
}
