//! docs/operations.md is run, not only read: every `sh` block of the guide runs, in
//! order, against real servers started from `examples/config/`, so a command the
//! guide shows cannot stop working unnoticed.
//!
//! Each `## ` section with `sh` blocks is one bash script (`set -euo pipefail`), run in
//! a fresh directory holding a copy of `examples/config/` in which the one address the
//! files and the guide use, 127.0.0.1, is replaced by a loopback address of the
//! section's own (127.0.N.1, N picked at random among those where every port of the
//! examples is free): the fixed ports of the examples then clash with nothing else on
//! the machine. That substitution is the only change. `tandem` on the PATH is
//! this build's binary. A line ending in `# → TEXT` must print TEXT (lines joined by
//! spaces). Servers started with `&` are killed with the script's process group when
//! the section ends, whatever happened. `TANDEM_DOCS_VERBOSE=1` prints every section's
//! output (commands, their output, the servers' logs) even when it passes.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A section that takes longer has hung (every wait in the guide has its own, shorter, deadline).
const SECTION_DEADLINE: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fenced block: its info string and its lines.
struct Block {
    lang: String,
    lines: Vec<String>,
}

/// The guide's sections in order: title and fenced blocks.
fn sections(text: &str) -> Vec<(String, Vec<Block>)> {
    let mut out: Vec<(String, Vec<Block>)> = vec![(String::from("(top)"), Vec::new())];
    let mut open: Option<Block> = None;
    for line in text.lines() {
        if let Some(block) = open.as_mut() {
            if line.starts_with("```") {
                let block = open.take().expect("open block");
                out.last_mut().expect("a section").1.push(block);
            } else {
                block.lines.push(line.to_string());
            }
        } else if let Some(lang) = line.strip_prefix("```") {
            open = Some(Block { lang: lang.trim().to_string(), lines: Vec::new() });
        } else if let Some(title) = line.strip_prefix("## ") {
            out.push((title.to_string(), Vec::new()));
        }
    }
    assert!(open.is_none(), "docs/operations.md ends inside a code block");
    out
}

/// One command line of the guide as bash runs it: `cmd   # → want` becomes a check.
fn script_line(line: &str) -> String {
    match line.split_once("# →") {
        Some((command, want)) => {
            let quote = |s: &str| format!("'{}'", s.trim().replace('\'', "'\\''"));
            format!("expect_output {} {}", quote(want), quote(command))
        }
        None => line.to_string(),
    }
}

const PRELUDE: &str = r#"set -euo pipefail
expect_output() {
  local want=$1 command=$2 got
  got=$(eval "$command" | tr '\n' ' ' | sed 's/ *$//')
  if [ "$got" != "$want" ]; then
    echo "docs/operations.md: \`$command\` printed \"$got\", the guide says \"$want\"" >&2
    return 1
  fi
}
set -x
"#;

/// Every port the example configs use.
fn example_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples/config")).expect("examples/config") {
        let config = tandem::config::Config::from_file(entry.expect("entry").path()).expect("a valid example");
        for stripe in &config.stripes {
            for s in &stripe.servers {
                ports.extend([s.client_port, s.group_port, s.management_port]);
                ports.extend(s.cluster_port);
                ports.extend(s.tls_port);
            }
            ports.extend(stripe.voters.iter().map(|v| v.group_port));
        }
    }
    ports.retain(|p| *p != 0);
    ports
}

/// Loopback addresses handed out in this process (sections run side by side).
static TAKEN: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// A loopback address 127.0.N.1 (N from 100 to 249, at random: another test run on
/// the same machine, from another checkout, may be using one) on which every port
/// of the examples is free right now.
fn pick_host() -> Result<String, String> {
    let ports = example_ports();
    for _ in 0..50 {
        let octet = 100 + rand::random::<u8>() % 150;
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if taken.contains(&octet) {
            continue;
        }
        let host = format!("127.0.{octet}.1");
        if ports.iter().all(|p| std::net::TcpListener::bind((host.as_str(), *p)).is_ok()) {
            taken.push(octet);
            return Ok(host);
        }
    }
    Err("no loopback address 127.0.100-249.1 had every port of the examples free".into())
}

/// Runs one section's blocks as one script; returns its combined output on failure.
fn run_section(title: &str, blocks: &[&Block]) -> Result<Duration, String> {
    let host = pick_host()?;
    let dir = tempfile::Builder::new().prefix("tandem-docs-").tempdir().map_err(|e| e.to_string())?;
    let examples = dir.path().join("examples/config");
    std::fs::create_dir_all(&examples).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(repo().join("examples/config")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        std::fs::write(examples.join(path.file_name().expect("file name")), text.replace("127.0.0.1", &host)).map_err(|e| e.to_string())?;
    }
    let mut script = String::from(PRELUDE);
    for block in blocks {
        for line in &block.lines {
            script.push_str(&script_line(&line.replace("127.0.0.1", &host)));
            script.push('\n');
        }
    }
    let log = dir.path().join("output.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem")).parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "info,openraft=error")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting bash: {e}"))?;
    let pgid = child.id() as i32;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > SECTION_DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    // The servers the section started in the background share its process group.
    // SAFETY: kill(2) with a negative pid signals that process group only; no memory is involved.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    if std::env::var_os("TANDEM_DOCS_VERBOSE").is_some() {
        eprintln!("--- section \"{title}\":\n{output}");
    }
    match status {
        Some(s) if s.success() => Ok(took),
        Some(s) => Err(format!("section \"{title}\" failed ({s}) after {took:?}:\n{}", tail(&output, 120))),
        None => Err(format!("section \"{title}\" still ran after {SECTION_DEADLINE:?}:\n{}", tail(&output, 120))),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md")
}

#[test]
fn every_command_in_the_operations_guide_runs_as_shown() {
    for (tool, package) in [("redis-cli", "redis-tools"), ("curl", "curl")] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
            "the guide's commands use {tool}: install {package} (bash scripts/test-deps.sh does)"
        );
    }
    let sections = sections(&guide());
    let runnable: Vec<(String, Vec<&Block>)> = sections
        .iter()
        .map(|(title, blocks)| (title.clone(), blocks.iter().filter(|b| b.lang == "sh").collect::<Vec<_>>()))
        .filter(|(_, blocks)| !blocks.is_empty())
        .collect();
    assert!(runnable.len() >= 5, "the guide lost its runnable sections: {}", runnable.len());
    // Two sections at a time: each starts up to six debug-build processes on a
    // machine that may have two cores.
    let mut failures = Vec::new();
    for pair in runnable.chunks(2) {
        let results: Vec<(String, Result<Duration, String>)> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                pair.iter().map(|(title, blocks)| (title.clone(), scope.spawn(move || run_section(title, blocks)))).collect();
            handles.into_iter().map(|(title, h)| (title, h.join().unwrap_or_else(|_| Err("the runner panicked".into())))).collect()
        });
        for (title, result) in results {
            match result {
                Ok(took) => eprintln!("docs/operations.md: \"{title}\" ran in {took:?}"),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Commands shown anywhere else in the guide (a `text` block, say) would not run:
/// every command line lives in an `sh` block, and every block says what it is.
#[test]
fn the_guide_shows_commands_only_in_blocks_that_run() {
    for (title, blocks) in sections(&guide()) {
        for block in blocks {
            assert!(
                matches!(block.lang.as_str(), "sh" | "text" | "toml"),
                "section \"{title}\": a code block marked {:?}; use sh (run by this test), text or toml",
                block.lang
            );
            if block.lang != "sh" {
                for line in &block.lines {
                    let first = line.split_whitespace().next().unwrap_or("");
                    assert!(
                        !matches!(first, "tandem" | "redis-cli" | "curl" | "cargo" | "$"),
                        "section \"{title}\": the command {line:?} is in a {} block, which is not run",
                        block.lang
                    );
                }
            }
        }
    }
}

#[test]
fn expected_outputs_become_checks() {
    assert_eq!(script_line("redis-cli get k   # → it's"), "expect_output 'it'\\''s' 'redis-cli get k'");
    assert_eq!(script_line("tandem status --config x.toml"), "tandem status --config x.toml");
}
