//! The documentation stands alone: every link in the README, ARCHITECTURE.md,
//! examples/README.md and docs/ points at a file of the repository that exists (and at a heading that
//! exists, when it names one), or at a public web address. Nothing points outside the
//! repository on the reader's disk.

use std::path::{Component, Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md"), repo().join("ARCHITECTURE.md"), repo().join("examples/README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

/// The targets of `[text](target)` links outside code blocks and inline code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Inline code may show link-like text: drop it.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

/// `path` without `.` and `..`, or None if `..` climbs above the start.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

#[test]
fn every_link_stays_in_the_repository_and_resolves() {
    let root = repo();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("read");
        let shown = doc.strip_prefix(&root).unwrap_or(&doc).display().to_string();
        for link in links(&text) {
            checked += 1;
            if link.starts_with("https://") || link.starts_with("http://") {
                let host = link.split('/').nth(2).unwrap_or("");
                assert!(
                    !host.starts_with("127.") && !host.starts_with("localhost"),
                    "{shown}: {link} is a local address, not a public reference"
                );
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { doc.clone() } else { doc.parent().expect("dir").join(file) };
            let resolved = resolve(&target).unwrap_or_else(|| panic!("{shown}: {link} climbs out of the filesystem"));
            assert!(resolved.starts_with(&root), "{shown}: {link} points outside the repository");
            assert!(resolved.exists(), "{shown}: {link} points at a file that does not exist");
            if !fragment.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                assert!(anchors(&resolved).iter().any(|a| a == fragment), "{shown}: {link}: no heading #{fragment} there");
            }
        }
    }
    assert!(checked > 30, "only {checked} links found: is the link parser still reading them?");
}

#[test]
fn the_readme_starts_with_the_two_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = "# Tandem\n\n```sh\ncargo run --release -- server          # a development server on 127.0.0.1:9510 (try: redis-cli -p 9510 ping)\nbash scripts/test.sh                   # installs test peers (redis-server, PHP, HAProxy, redis-py…), then every test\n```\n";
    assert!(readme.starts_with(start), "the README must open with its two commands, unchanged");
    assert!(readme.contains("cargo install --path ."), "the README says how to install");
}

#[test]
fn the_link_reader_finds_links_and_skips_code() {
    let text = "see [a](x.md) and `[b](y.md)`\n```\n[c](z.md)\n```\n[d](w.md#h)";
    assert_eq!(links(text), vec!["x.md", "w.md#h"]);
    assert_eq!(anchor("What the errors mean"), "what-the-errors-mean");
    assert_eq!(resolve(Path::new("/r/docs/../x")), Some(PathBuf::from("/r/x")));
}
