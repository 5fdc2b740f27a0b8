//! Counting what clients run (`server::stats`), and the commands that read it back:
//! SLOWLOG and LATENCY. The pipeline calls [`Connection::record_run`] after a local
//! run and [`Connection::record_blocking`] when a blocking command starts; server
//! commands are counted by `server_command`, EXEC's commands by EXEC.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::text;
use crate::clock::wall_ms;
use crate::commands::{args::*, flags, unknown_subcommand, Srv};
use crate::protocol::reply::Reply;
use crate::server::connection::Connection;
use crate::server::request::Request;
use crate::server::stats::{Caller, Served};

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Status((*l).into())).collect())
}

impl Connection {
    fn caller(&self) -> Caller<'_> {
        Caller { addr: &self.session.info.addr, name: &self.session.info.name }
    }

    /// One command this server served: counted, and logged if slow.
    pub(super) fn record_served(&self, request: &Request, elapsed: Duration, failed: bool) {
        self.record_served_all(std::iter::once((request, elapsed, failed)));
    }

    /// Commands this server served, with their time and whether they failed: counted
    /// together (one lock of the counters; the clock is read only for a slow-log or
    /// latency entry), then shown to monitors in order.
    fn record_served_all<'r>(&self, served: impl Iterator<Item = (&'r Request, Duration, bool)> + Clone) {
        let all = served.clone().map(|(request, elapsed, failed)| Served {
            name: request.spec.name,
            args: &request.args,
            elapsed,
            failed,
            fast: request.spec.has(flags::FAST),
            // EXEC is not logged: the commands it ran are, one by one.
            skip_slowlog: request.srv() == Some(Srv::Exec),
        });
        self.shared.core.stats.served_all(all, &self.caller(), || wall_ms() / 1000);
        if self.shared.monitors.any() {
            for (request, _, _) in served {
                // Admin commands are not shown to monitors (Redis's rule: they may carry secrets).
                if !request.spec.has(flags::ADMIN) {
                    let line = crate::server::monitor::line(crate::clock::wall_us(), &self.session.info.addr, &request.args);
                    self.shared.monitors.feed(&line);
                }
            }
        }
    }

    /// A local run of store commands (one proposal or one read batch): each command
    /// is counted with an equal share of the run's time.
    pub(in crate::server) fn record_run(&self, run: &[Request], replies: &[Reply], elapsed: Duration) {
        crate::management::metrics::global().record_run(run, replies, elapsed);
        let share = elapsed / (run.len().max(1) as u32);
        self.record_served_all(run.iter().zip(replies).map(|(request, reply)| (request, share, matches!(reply, Reply::Error(_)))));
        if run.iter().any(|r| r.spec.has(flags::SCRIPT)) {
            self.record_script_calls();
        }
    }

    /// The commands this client's scripts called (recorded where they ran): counted
    /// as calls (INFO commandstats, as Redis counts them) and shown to monitors after
    /// the script's own line, as `[0 lua]`.
    pub(in crate::server) fn record_script_calls(&self) {
        // Not waiting for a script that holds the store now: the calls stay until
        // this client's next script run takes them.
        self.shared.core.show_script_calls.store(self.shared.monitors.any(), std::sync::atomic::Ordering::Relaxed);
        let calls = match self.shared.core.replica.store.try_lock() {
            Ok(mut store) => store.script_calls.remove(&self.session.info.id),
            Err(_) => None,
        };
        let Some(calls) = calls else { return };
        self.shared.core.stats.script_calls(&calls.counts);
        for code in &calls.errors {
            self.shared.core.stats.error_reply(code);
        }
        for args in &calls.shown {
            let line = crate::server::monitor::line(crate::clock::wall_us(), "lua", args);
            self.shared.monitors.feed(&line);
        }
    }

    /// A blocking command as it starts: one call (its wait is not its latency).
    pub(in crate::server) fn record_blocking(&mut self, request: &Request) {
        self.session.blocking_call = Some(request.spec.name);
        crate::management::metrics::global().record_command(request.spec);
        let served = Served {
            name: request.spec.name,
            args: &request.args,
            elapsed: Duration::ZERO,
            failed: false,
            fast: false,
            skip_slowlog: true,
        };
        self.shared.core.stats.served(&served, &self.caller(), wall_ms() / 1000);
        if self.shared.monitors.any() {
            let line = crate::server::monitor::line(crate::clock::wall_us(), &self.session.info.addr, &request.args);
            self.shared.monitors.feed(&line);
        }
    }

    /// A blocking command once answered: the slow log, with the time it ran (it was
    /// counted when it started).
    pub(in crate::server) fn slowlog_blocking(&self, args: &[Bytes], ran: Duration) {
        self.shared.core.stats.slowlog_only(args, ran, &self.caller(), wall_ms() / 1000);
    }

    /// The commands EXEC ran (`replies`: theirs, in order), each counted as a call
    /// with a share of the transaction's time; the errors among their replies count
    /// in errorstats like any other reply.
    pub(super) fn record_transaction(&self, cmds: &[Request], replies: &[Reply], elapsed: Duration) {
        let share = elapsed / (cmds.len().max(1) as u32);
        for (request, reply) in cmds.iter().zip(replies) {
            let failed = if let Reply::Error(text) = reply {
                self.shared.core.stats.error_reply(text);
                true
            } else {
                false
            };
            self.record_served(request, share, failed);
        }
        if cmds.iter().any(|r| r.spec.has(flags::SCRIPT)) {
            self.record_script_calls();
        }
    }

    /// SLOWLOG GET [count] | LEN | RESET | HELP.
    pub(super) fn slowlog(&mut self, args: &[Bytes]) -> Reply {
        let stats = &self.shared.core.stats;
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "get" if args.len() <= 3 => {
                let count = match args.get(2) {
                    None => Some(10),
                    Some(arg) => match parse_i64(arg) {
                        Some(-1) => None,
                        None => return Reply::err("ERR count should be greater than or equal to -1"),
                        Some(n) if n < -1 => return Reply::err("ERR count should be greater than or equal to -1"),
                        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    },
                };
                stats.slowlog().get_reply(count)
            }
            "len" => Reply::Int(stats.slowlog().len() as i64),
            "reset" => {
                stats.slowlog().reset();
                Reply::ok()
            }
            "help" => help(SLOWLOG_HELP),
            _ => unknown_subcommand("slowlog", &args[1]),
        }
    }

    /// LATENCY LATEST | HISTORY event | RESET [event …] | GRAPH event | DOCTOR |
    /// HISTOGRAM [command …] | HELP.
    pub(super) fn latency(&mut self, args: &[Bytes]) -> Reply {
        let stats = &self.shared.core.stats;
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "latest" => stats.latency().latest_reply(),
            "history" => stats.latency().history_reply(&text(&args[2])),
            "reset" => {
                let events: Vec<String> = args[2..].iter().map(|a| text(a)).collect();
                Reply::Int(stats.latency().reset(&events) as i64)
            }
            "graph" => {
                let event = text(&args[2]);
                match stats.latency().graph(&event) {
                    Some(graph) => Reply::Verbatim(Bytes::from(graph)),
                    None => Reply::error(format!("ERR No samples available for event '{event}'")),
                }
            }
            "doctor" => {
                let threshold = stats.latency_threshold_ms.load(Ordering::Relaxed);
                Reply::Verbatim(Bytes::from(stats.latency().doctor(threshold)))
            }
            "histogram" => stats.histogram_reply(&args[2..]),
            "help" => help(LATENCY_HELP),
            _ => unknown_subcommand("latency", &args[1]),
        }
    }

    /// Applies the parameters the statistics follow after CONFIG SET.
    pub(super) fn configure_stats(&self) {
        let settings = &self.shared.settings;
        let stats = &self.shared.core.stats;
        let int = |name: &str| settings.param(name).and_then(|v| v.parse::<i64>().ok());
        if let Some(us) = int("slowlog-log-slower-than") {
            stats.slowlog_slower_than_us.store(us, Ordering::Relaxed);
        }
        if let Some(len) = int("slowlog-max-len") {
            let len = usize::try_from(len).unwrap_or(0);
            stats.slowlog_len_max.store(len, Ordering::Relaxed);
            stats.slowlog().truncate(len);
        }
        if let Some(ms) = int("latency-monitor-threshold") {
            stats.latency_threshold_ms.store(u64::try_from(ms).unwrap_or(0), Ordering::Relaxed);
        }
        stats.latency_tracking.store(settings.param("latency-tracking").is_none_or(|v| v == "yes"), Ordering::Relaxed);
    }

    /// `latency-tracking-info-percentiles` as numbers.
    pub(super) fn info_percentiles(&self) -> Vec<f64> {
        let value = self.shared.settings.param("latency-tracking-info-percentiles").unwrap_or_default();
        value.split_ascii_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}
