//! The latency monitor (LATENCY LATEST/HISTORY/RESET/GRAPH/DOCTOR): for each event
//! (`command`, `fast-command`, `expire-cycle`…) that took at least
//! `latency-monitor-threshold` ms, one sample per second (the worst of that second),
//! the last [`SAMPLES_MAX`] of them, and the worst ever.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::protocol::reply::Reply;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES_MAX: usize = 160;

#[derive(Default)]
struct Series {
    /// (unix seconds, ms), oldest first.
    samples: VecDeque<(u64, u64)>,
    max_ms: u64,
}

#[derive(Default)]
pub struct Latency {
    events: BTreeMap<&'static str, Series>,
}

impl Latency {
    pub fn add(&mut self, event: &'static str, ms: u64, unix_secs: u64) {
        let series = self.events.entry(event).or_default();
        series.max_ms = series.max_ms.max(ms);
        match series.samples.back_mut() {
            Some((secs, worst)) if *secs == unix_secs => *worst = (*worst).max(ms),
            _ => {
                series.samples.push_back((unix_secs, ms));
                if series.samples.len() > SAMPLES_MAX {
                    series.samples.pop_front();
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// LATENCY LATEST: `[event, time, latest ms, max ms]` per event.
    pub fn latest_reply(&self) -> Reply {
        Reply::Array(
            self.events
                .iter()
                .filter_map(|(name, s)| {
                    let (secs, ms) = s.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk_str(name),
                        Reply::Int(*secs as i64),
                        Reply::Int(*ms as i64),
                        Reply::Int(s.max_ms as i64),
                    ]))
                })
                .collect(),
        )
    }

    /// LATENCY HISTORY event: `[time, ms]` per sample; none for an unknown event.
    pub fn history_reply(&self, event: &str) -> Reply {
        let samples = self.events.get(event).map(|s| s.samples.iter().collect::<Vec<_>>()).unwrap_or_default();
        Reply::Array(samples.into_iter().map(|(secs, ms)| Reply::Array(vec![Reply::Int(*secs as i64), Reply::Int(*ms as i64)])).collect())
    }

    /// LATENCY RESET [event …]: how many events were cleared.
    pub fn reset(&mut self, events: &[String]) -> usize {
        if events.is_empty() {
            let count = self.events.len();
            self.events.clear();
            return count;
        }
        events.iter().filter(|e| self.events.remove(e.as_str()).is_some()).count()
    }

    /// LATENCY GRAPH event: the samples as text, one row per sample; `None` when
    /// the event has none.
    pub fn graph(&self, event: &str) -> Option<String> {
        let series = self.events.get(event).filter(|s| !s.samples.is_empty())?;
        let (low, high) = series.samples.iter().fold((u64::MAX, 0), |(lo, hi), (_, ms)| (lo.min(*ms), hi.max(*ms)));
        let mut out = format!("{event} - high {high} ms, low {low} ms (all time high {} ms)\n", series.max_ms);
        out.push_str(&"-".repeat(80));
        out.push('\n');
        for (secs, ms) in &series.samples {
            let bar = if high == 0 { 0 } else { (ms * 60).div_ceil(high) as usize };
            let _ = writeln!(out, "{secs:>10} {ms:>6} ms {}", "#".repeat(bar));
        }
        Some(out)
    }

    /// LATENCY DOCTOR's report, in Redis's voice.
    pub fn doctor(&self, threshold_ms: u64) -> String {
        if self.events.is_empty() && threshold_ms == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Tandem server. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n".to_string();
        }
        if self.events.is_empty() {
            return "Dave, no latency spike was observed during the lifetime of this Tandem server, not in the slightest bit. I honestly think you ought to sleep tonight.\n".to_string();
        }
        let mut out =
            String::from("Dave, I have observed latency spikes in this Tandem server. You don't mind talking about it, do you Dave?\n\n");
        for (i, (name, s)) in self.events.iter().enumerate() {
            let count = s.samples.len() as u64;
            let avg = s.samples.iter().map(|(_, ms)| ms).sum::<u64>() / count.max(1);
            let _ = writeln!(out, "{}. {name}: {count} latency spikes (average {avg}ms, worst all time {}ms).", i + 1, s.max_ms);
        }
        out.push_str("\nI have a few advices for you:\n\n- Check the slow log (SLOWLOG GET) for the commands that took longest, and avoid O(N) commands on big values.\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_the_worst_and_the_max_ever() {
        let mut latency = Latency::default();
        latency.add("command", 300, 10);
        latency.add("command", 250, 10);
        latency.add("command", 400, 11);
        latency.add("command", 100, 12);
        assert_eq!(
            latency.history_reply("command"),
            Reply::Array(vec![
                Reply::Array(vec![Reply::Int(10), Reply::Int(300)]),
                Reply::Array(vec![Reply::Int(11), Reply::Int(400)]),
                Reply::Array(vec![Reply::Int(12), Reply::Int(100)]),
            ])
        );
        assert_eq!(
            latency.latest_reply(),
            Reply::Array(vec![Reply::Array(vec![Reply::bulk(b"command"), Reply::Int(12), Reply::Int(100), Reply::Int(400)])])
        );
        for secs in 0..(SAMPLES_MAX as u64 * 2) {
            latency.add("command", 1, 100 + secs);
        }
        assert!(matches!(latency.history_reply("command"), Reply::Array(s) if s.len() == SAMPLES_MAX));
    }

    #[test]
    fn reset_names_events_and_counts_them() {
        let mut latency = Latency::default();
        latency.add("command", 300, 10);
        latency.add("fast-command", 300, 10);
        assert_eq!(latency.reset(&["blabla".to_string()]), 0);
        assert_eq!(latency.history_reply("blabla"), Reply::Array(vec![]));
        assert!(latency.graph("command").is_some_and(|g| g.starts_with("command - high 300 ms")));
        assert_eq!(latency.reset(&["command".to_string()]), 1);
        assert!(latency.graph("command").is_none());
        assert!(latency.doctor(200).contains("fast-command: 1 latency spikes"));
        assert_eq!(latency.reset(&[]), 1);
        assert!(latency.doctor(200).starts_with("Dave, no latency spike"));
        assert!(latency.doctor(0).starts_with("I'm sorry, Dave"));
    }
}
