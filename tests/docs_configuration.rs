//! docs/configuration.md cannot drift from the config parser: its field tables list
//! exactly the fields the parser accepts (asked of the parser itself, through the
//! "unknown field …, expected one of …" it answers), and each documented default is
//! what the parser does when the field is left out.

use std::collections::BTreeSet;

use tandem::config::{Config, ConfigError};

/// One row of a field table: the table it belongs to, the field, the default column.
#[derive(Debug)]
struct Row {
    table: String,
    field: String,
    default: String,
}

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).expect("docs/configuration.md")
}

/// Rows of the tables under "### `[cluster]`", "### `[[stripe]]`", … .
fn documented_rows() -> Vec<Row> {
    let mut table = None;
    let mut rows = Vec::new();
    for line in doc().lines() {
        if let Some(title) = line.strip_prefix("### ") {
            table = title.trim().strip_prefix('`').and_then(|t| t.strip_suffix('`')).map(|t| t.trim_matches(['[', ']']).to_string());
        } else if let (Some(table), Some(rest)) = (&table, line.strip_prefix("| `")) {
            let cols: Vec<&str> = rest.split(" | ").collect();
            let field = cols[0].trim_end_matches('`').to_string();
            rows.push(Row { table: table.clone(), field, default: cols.get(2).expect("a default column").trim().to_string() });
        }
    }
    rows
}

fn documented_tables() -> BTreeSet<String> {
    documented_rows().into_iter().map(|r| r.table).collect()
}

fn documented_fields(table: &str) -> BTreeSet<String> {
    documented_rows().into_iter().filter(|r| r.table == table).map(|r| r.field).collect()
}

/// A config with every required field and nothing else (a voter needs the secret).
struct Parts {
    cluster: Vec<(&'static str, String)>,
    stripe: Vec<(&'static str, String)>,
    server: Vec<(&'static str, String)>,
    voter: Option<Vec<(&'static str, String)>>,
}

fn base(with_voter: bool) -> Parts {
    let s = |v: &str| v.to_string();
    let mut cluster = vec![("name", s("\"docs\""))];
    if with_voter {
        cluster.push(("secret", s("\"docs-secret\"")));
    }
    Parts {
        cluster,
        stripe: vec![("name", s("\"A\""))],
        server: vec![
            ("name", s("\"server1\"")),
            ("client-port", s("7001")),
            ("group-port", s("7002")),
            ("management-port", s("7003")),
            ("data", s("\"data/server1\"")),
        ],
        voter: with_voter.then(|| vec![("name", s("\"voter1\"")), ("group-port", s("7004"))]),
    }
}

impl Parts {
    fn table(&mut self, table: &str) -> &mut Vec<(&'static str, String)> {
        match table {
            "cluster" => &mut self.cluster,
            "stripe" => &mut self.stripe,
            "stripe.server" => &mut self.server,
            "stripe.voter" => self.voter.as_mut().expect("a voter in this config"),
            other => panic!("docs/configuration.md documents a table {other:?} the test does not know"),
        }
    }

    fn render(&self, top: &str) -> String {
        let lines = |fields: &[(&str, String)]| fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>();
        let mut text = format!(
            "{top}[cluster]\n{}\n[[stripe]]\n{}\n[[stripe.server]]\n{}",
            lines(&self.cluster),
            lines(&self.stripe),
            lines(&self.server)
        );
        if let Some(voter) = &self.voter {
            text.push_str(&format!("\n[[stripe.voter]]\n{}", lines(voter)));
        }
        text
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, "test.toml")
}

/// The fields the parser accepts in `table` ("" for the top level), from its answer
/// to an unknown one.
fn accepted_fields(table: &str) -> BTreeSet<String> {
    let bogus = ("bogus-field-for-the-docs-test", "1".to_string());
    let text = if table.is_empty() {
        base(true).render("bogus-field-for-the-docs-test = 1\n")
    } else {
        let mut parts = base(true);
        parts.table(table).push(bogus);
        parts.render("")
    };
    let message = match parse(&text) {
        Err(ConfigError::Syntax { message, .. }) => message,
        other => panic!("an unknown field in {table:?} was not a schema error: {other:?}"),
    };
    let expected = message.split_once("expected").map(|(_, list)| list).unwrap_or_else(|| panic!("no list of fields in {message:?}"));
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_documented_tables_are_the_ones_the_parser_reads() {
    let top = accepted_fields("");
    let stripe_subtables: BTreeSet<String> =
        accepted_fields("stripe").difference(&documented_fields("stripe")).map(|t| format!("stripe.{t}")).collect();
    let mut expected: BTreeSet<String> = top;
    expected.extend(stripe_subtables);
    assert_eq!(documented_tables(), expected, "tables in docs/configuration.md vs the parser");
}

#[test]
fn every_field_the_parser_accepts_is_documented_and_no_other() {
    for (table, subtables) in
        [("cluster", &[][..]), ("stripe", &["server", "voter"][..]), ("stripe.server", &[][..]), ("stripe.voter", &[][..])]
    {
        let mut accepted = accepted_fields(table);
        for sub in subtables {
            assert!(accepted.remove(*sub), "{table} has no sub-table {sub}");
        }
        assert_eq!(documented_fields(table), accepted, "[{table}] fields in docs/configuration.md (left) vs the parser (right)");
    }
}

#[test]
fn documented_defaults_are_what_the_parser_does() {
    let rows = documented_rows();
    assert!(rows.len() >= 20, "only {} rows found in docs/configuration.md", rows.len());
    for row in rows {
        let (table, field) = (row.table.as_str(), row.field.as_str());
        let where_ = format!("[{table}] {field}, documented default {:?}", row.default);
        // Leaving a field out of a config that needs nothing else (no voter: the secret is optional).
        let mut without = base(table == "stripe.voter");
        without.table(table).retain(|(k, _)| *k != field);
        let omitted = parse(&without.render(""));
        match row.default.as_str() {
            "required" => match omitted {
                Err(ConfigError::Syntax { message, .. }) => {
                    assert!(message.contains(&format!("missing field `{field}`")), "{where_}: {message}")
                }
                other => panic!("{where_}: leaving it out gave {other:?}"),
            },
            "none" => {
                assert!(omitted.is_ok(), "{where_}: leaving it out gave {omitted:?}");
            }
            literal => {
                let value = literal
                    .strip_prefix('`')
                    .and_then(|v| v.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("{where_}: a default is `required`, `none`, or a TOML value in backticks"));
                let mut with = base(table == "stripe.voter");
                with.table(table).retain(|(k, _)| *k != field);
                with.table(table).push((leak(field), value.to_string()));
                let given = parse(&with.render("")).unwrap_or_else(|e| panic!("{where_}: writing the default gave {e}"));
                assert_eq!(omitted.unwrap_or_else(|e| panic!("{where_}: leaving it out gave {e}")), given, "{where_}");
            }
        }
    }
}

fn leak(field: &str) -> &'static str {
    Box::leak(field.to_string().into_boxed_str())
}

#[test]
fn the_test_would_see_a_field_missing_from_the_docs() {
    // The parser's answer is what the documentation is compared with: make sure it is
    // read, not assumed (a known field of each table is in it).
    assert!(accepted_fields("cluster").contains("management-allow-plain-http"));
    assert!(accepted_fields("stripe.server").contains("cluster-port"));
    assert!(accepted_fields("stripe.voter").contains("group-port"));
    assert!(accepted_fields("").contains("cluster"));
}
