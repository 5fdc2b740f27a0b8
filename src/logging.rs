//! The process's log output: text for people, JSON for log shippers.
//!
//! Every line a server or voter writes names its stripe and itself, so that logs of
//! several members read side by side (or merged by a shipper) still say who spoke:
//! text lines start with `A/server1`, JSON objects carry `"stripe"` and `"server"`
//! (`"voter"` for a voter) next to `"level"` and `"fields"`. The names are known only
//! once the config is read, so lines written before that (and by the CLI's other
//! commands) carry none.
//!
//! Colours (ANSI escapes) are written only when the output is a terminal and
//! `NO_COLOR` is unset: a log file or journald gets plain text.
//!
//! This module knows nothing of what is logged; callers use `tracing` as usual.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal only).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `stripe`, `server` or `voter`,
    /// `fields` (with `message`), `target`.
    Json,
}

/// Who is writing: set once, when the process knows which member of the config it is.
static IDENTITY: OnceLock<Identity> = OnceLock::new();

#[derive(Debug, Clone)]
struct Identity {
    stripe: String,
    /// `server` or `voter`.
    role: &'static str,
    name: String,
}

/// Names this process in every log line from now on: a server (`voter` false) or a
/// voter of `stripe`. Later calls are ignored: a process is one member for its life.
pub fn set_member(stripe: &str, name: &str, voter: bool) {
    let role = if voter { "voter" } else { "server" };
    let _ = IDENTITY.set(Identity { stripe: stripe.to_string(), role, name: name.to_string() });
}

/// Whether colours belong on standard error: a terminal, and no `NO_COLOR`
/// (<https://no-color.org>).
pub fn stderr_wants_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber, writing to standard error. `filter` is used when
/// `RUST_LOG` is unset.
///
/// A line that cannot be written (standard error is a file on a full disk) is dropped.
/// tracing-subscriber's default reports such a failure with `eprintln!`, which panics
/// when standard error fails: in whichever task logged — the Raft core included — so a
/// full disk stopped members for good, where it must only refuse writes until space
/// returns (DESIGN §10).
pub fn init(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(stderr_wants_colour()).event_format(Named(format::Format::default())).init(),
        LogFormat::Json => builder.with_ansi(false).event_format(Named(format::Format::default().json())).init(),
    }
}

/// An event format that puts the member's names on every line around another format.
struct Named<F>(F);

impl<S, N> FormatEvent<S, N> for Named<format::Format<format::Full>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if let Some(me) = IDENTITY.get() {
            write!(writer, "{}/{} ", me.stripe, me.name)?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

impl<S, N> FormatEvent<S, N> for Named<format::Format<format::Json>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(me) = IDENTITY.get() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON format writes one object: put the names first inside it.
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{{}{}", names_json(me), rest),
            None => writer.write_str(&line),
        }
    }
}

/// `"stripe":"A","server":"server1",` with JSON string escaping.
fn names_json(me: &Identity) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!("\"stripe\":{},\"{}\":{},", quote(&me.stripe), me.role, quote(&me.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_json_members() {
        let me = Identity { stripe: "A".into(), role: "voter", name: "v\"1".into() };
        let object: serde_json::Value = serde_json::from_str(&format!("{{{}\"x\":1}}", names_json(&me))).expect("valid JSON");
        assert_eq!(object["stripe"], "A");
        assert_eq!(object["voter"], "v\"1");
    }
}
