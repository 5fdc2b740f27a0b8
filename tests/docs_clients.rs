//! docs/clients.md documents the `TANDEM.*` commands that exist, and only those: its
//! table is compared with the server's command table in both directions.

use std::collections::BTreeSet;

use tandem::commands::{self, flags};

/// Commands servers send each other or to themselves: not for clients, so not in the
/// client guide (each is explained in ARCHITECTURE.md).
const BETWEEN_SERVERS: &[&str] = &[
    "tandem.aclload",       // ACL LOAD's users, written to the log
    "tandem.asuser",        // a restricted user's script, wrapped by admission
    "tandem.asuser_ro",     // the same, read-only
    "tandem.scriptoom",     // a script proposed over maxmemory
    "tandem.session|renew", // each server renews its connections' sessions
];

fn guide() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/clients.md")).expect("docs/clients.md")
}

/// `tandem.x` and `tandem.x|sub` for every client command of the table.
fn client_commands() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for spec in commands::all().filter(|s| s.name.starts_with("tandem.") && !s.has(flags::INTERNAL)) {
        if spec.subcommands.is_empty() {
            out.insert(spec.name.to_string());
        }
        out.extend(spec.subcommands.iter().filter(|s| !s.has(flags::INTERNAL)).map(|s| s.name.to_string()));
    }
    out.retain(|name| !BETWEEN_SERVERS.contains(&name.as_str()));
    out
}

/// The commands of the guide's table: `TANDEM.X` rows, with `A | B arg | C` subcommands.
fn documented() -> BTreeSet<String> {
    let text = guide();
    let table = text.split("## The `TANDEM.*` commands").nth(1).expect("the TANDEM.* section");
    let mut out = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `TANDEM.")) {
        let cell = row.trim_start_matches("| `").split('`').next().unwrap_or("").replace("\\|", "|");
        let mut words = cell.split_whitespace();
        let name = words.next().unwrap_or("").to_lowercase();
        let rest: Vec<&str> = words.collect();
        // `TANDEM.SESSION OPEN | RESUME id | CLOSE [id]`: the first word of each alternative.
        let subs: Vec<String> = rest
            .join(" ")
            .split('|')
            .filter_map(|alt| alt.split_whitespace().next())
            .filter(|w| {
                w.chars().all(|c| c.is_ascii_uppercase() || c == '-') && commands::lookup_full(format!("{name}|{w}").as_bytes()).is_some()
            })
            .map(|w| format!("{name}|{}", w.to_lowercase()))
            .collect();
        if subs.is_empty() {
            out.insert(name);
        } else {
            out.extend(subs);
        }
    }
    out
}

#[test]
fn the_guide_lists_every_tandem_command_clients_can_send_and_no_other() {
    assert_eq!(documented(), client_commands(), "docs/clients.md's TANDEM.* table (left) vs the command table (right)");
}

#[test]
fn every_tandem_command_the_guide_names_exists() {
    let text = guide();
    for (at, _) in text.match_indices("TANDEM.") {
        let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_').collect();
        if name == "TANDEM." {
            continue; // "the `TANDEM.*` commands"
        }
        let spec = commands::lookup(name.to_lowercase().as_bytes());
        assert!(spec.is_some_and(|s| !s.has(flags::INTERNAL)), "docs/clients.md names {name}, which clients cannot send");
    }
}
