//! The files in `examples/` are what users copy: each config loads with the server's
//! own loader and has the shape its topology promises, each is started by the
//! operations guide (which tests/docs_operations.rs runs: the members start, an active
//! is elected, writes work), and the systemd units pass `systemd-analyze verify`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tandem::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> Config {
    let path = repo().join("examples/config").join(name);
    Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn there_is_one_example_config_per_topology_and_no_other() {
    let expected: BTreeSet<String> = [
        "development.toml",
        "reliability.toml",
        "ha-3-servers.toml",
        "ha-2-servers-voter.toml",
        "scale-2-stripes.toml",
        "secure-3-servers.toml",
    ]
    .map(String::from)
    .into();
    assert_eq!(files("examples/config"), expected);
}

#[test]
fn development_example_is_one_server_in_memory() {
    let config = example("development.toml");
    assert_eq!(config.stripes.len(), 1);
    let servers = &config.stripes[0].servers;
    assert_eq!(servers.len(), 1);
    assert!(!servers[0].restartable, "development keeps data in memory only");
    assert_eq!(servers[0].client_port, Config::development().stripes[0].servers[0].client_port, "the port `tandem server` uses");
}

#[test]
fn reliability_example_is_one_server_with_fast_restart() {
    let config = example("reliability.toml");
    assert_eq!(config.stripes.len(), 1);
    let servers = &config.stripes[0].servers;
    assert_eq!((servers.len(), config.stripes[0].voters.len()), (1, 0));
    assert!(servers[0].restartable);
}

#[test]
fn ha_examples_are_three_members_that_persist() {
    for (file, servers, voters) in [("ha-3-servers.toml", 3, 0), ("ha-2-servers-voter.toml", 2, 1)] {
        let config = example(file);
        assert_eq!(config.stripes.len(), 1, "{file}");
        let stripe = &config.stripes[0];
        assert_eq!((stripe.servers.len(), stripe.voters.len()), (servers, voters), "{file}");
        assert!(stripe.servers.iter().all(|s| s.restartable), "{file}: every server keeps its data");
        assert!(config.cluster.secret.is_some(), "{file}");
    }
}

#[test]
fn scale_example_is_two_stripes_that_each_fail_over() {
    let config = example("scale-2-stripes.toml");
    assert_eq!(config.stripes.len(), 2);
    for stripe in &config.stripes {
        assert!(stripe.servers.len() + stripe.voters.len() >= 3, "stripe {} cannot fail over", stripe.name);
        assert!(stripe.servers.iter().all(|s| s.cluster_port.is_some() && s.restartable));
    }
}

#[test]
fn secure_example_encrypts_every_port_and_asks_every_caller_who_it_is() {
    let config = example("secure-3-servers.toml");
    let tls = &config.cluster.tls;
    assert!(tls.group && tls.management, "group and management ports under TLS");
    assert!(tls.cert_file.is_some() && tls.key_file.is_some() && tls.ca_cert_file.is_some());
    assert!(config.cluster.aclfile.is_some() && config.cluster.secret.is_some() && config.cluster.management_token.is_some());
    let stripe = &config.stripes[0];
    assert_eq!(stripe.servers.len(), 3);
    assert!(stripe.servers.iter().all(|s| s.tls_port.is_some() && s.restartable), "every server has a tls-port");
}

/// The fenced block of `kind` that follows the heading `heading` in `text`.
fn block_after(text: &str, heading: &str, kind: &str) -> String {
    let at = text.find(heading).unwrap_or_else(|| panic!("no heading {heading:?}"));
    let open = format!("```{kind}\n");
    let start = text[at..].find(&open).unwrap_or_else(|| panic!("no {kind} block after {heading:?}")) + at + open.len();
    let end = text[start..].find("```").expect("a closed block") + start;
    text[start..end].to_string()
}

/// The README's "Secure it" shows the whole secure example and the guide's users file,
/// as they are: the guide's test runs both.
#[test]
fn the_readme_shows_the_secure_example_and_its_users_as_they_are() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let guide = std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md");
    let example = std::fs::read_to_string(repo().join("examples/config/secure-3-servers.toml")).expect("example");
    let shown = block_after(&readme, "## Secure it", "toml");
    let settings = |text: &str| {
        text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(settings(&shown), settings(&example), "README.md's config vs examples/config/secure-3-servers.toml");
    let users = block_after(&readme, "## Secure it", "text");
    let heredoc =
        guide.split("cat > users.acl <<'ACL'\n").nth(1).and_then(|rest| rest.split("ACL\n").next()).expect("the guide writes users.acl");
    assert_eq!(users, heredoc, "README.md's users.acl vs the one docs/operations.md runs with");
}

/// Every member of every example is started, as shown, by docs/operations.md, so the
/// guide's test runs every example as real processes (and, through `tandem status
/// --wait` and `redis-cli`, checks that an active is elected and writes work).
#[test]
fn the_operations_guide_starts_every_member_of_every_example() {
    let guide = std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md");
    for file in files("examples/config") {
        let config = example(&file);
        for stripe in &config.stripes {
            let members = stripe.servers.iter().map(|s| ("server", &s.name)).chain(stripe.voters.iter().map(|v| ("voter", &v.name)));
            for (role, name) in members {
                let line = format!("tandem {role} --config examples/config/{file} --name {name} &");
                assert!(guide.lines().any(|l| l.trim() == line), "docs/operations.md never runs `{line}`");
            }
        }
    }
}

/// `systemd-analyze verify` of a unit, with its ExecStart pointed at this build's
/// binary (verify refuses a command that does not exist); returns what it said about
/// the unit.
fn verify_unit(template: &Path, instance: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(template).expect("unit file");
    let name = template.file_name().expect("name").to_string_lossy().replace("@.", &format!("@{instance}."));
    let unit = dir.path().join(&name);
    std::fs::write(&unit, text.replace("/usr/local/bin/tandem", env!("CARGO_BIN_EXE_tandem"))).expect("write unit");
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("run systemd-analyze");
    let stem = name.split('@').next().unwrap_or_default().to_string();
    // Only what concerns this unit: verify may also warn about the machine's own units.
    let said: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains(&stem)).map(String::from).collect();
    (out.status.success(), said.join("\n"))
}

fn require_systemd_analyze() {
    let found = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "systemd-analyze is needed to check examples/systemd/: install systemd (bash scripts/test-deps.sh does)");
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    require_systemd_analyze();
    let units = files("examples/systemd");
    assert_eq!(units, ["tandem-voter@.service", "tandem@.service"].map(String::from).into());
    for unit in units {
        let (ok, said) = verify_unit(&repo().join("examples/systemd").join(&unit), "member1");
        assert!(ok && said.is_empty(), "systemd-analyze verify {unit}:\n{said}");
    }
}

#[test]
fn systemd_analyze_verify_catches_a_bad_unit() {
    require_systemd_analyze();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("tandem@.service");
    let good = std::fs::read_to_string(repo().join("examples/systemd/tandem@.service")).expect("unit");
    std::fs::write(&bad, good.replace("TimeoutStopSec=60", "TimeoutStopSecs=60")).expect("write");
    let (_, said) = verify_unit(&bad, "member1");
    assert!(said.contains("TimeoutStopSecs"), "a misspelt key went unnoticed: {said:?}");
}

#[test]
fn systemd_units_run_the_commands_the_binary_has() {
    for (unit, role) in [("tandem@.service", "server"), ("tandem-voter@.service", "voter")] {
        let text = std::fs::read_to_string(repo().join("examples/systemd").join(unit)).expect("unit");
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
        let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
        assert_eq!(args.first(), Some(&role), "{unit}");
        // The binary accepts exactly these flags (an instance name in place of %i).
        let args: Vec<String> = args.iter().map(|a| a.replace("%i", "member1")).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_tandem")).args(&args).output().expect("run tandem");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("/etc/tandem/tandem.toml: cannot read the config file"),
            "{unit}: `tandem {}` said {stderr}",
            args.join(" ")
        );
    }
}
