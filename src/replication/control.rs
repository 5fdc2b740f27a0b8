//! The operator's procedures over the group port (DESIGN.md §6, §9): `tandem
//! status`, `stop`, `failover` and `shutdown`. The CLI reads the same config file
//! as the servers and proves the cluster secret like a member.

use std::time::{Duration, Instant};

use super::group;
use super::stripe::{Member, ServerState, StripeLayout};
use super::wire::{Request, Response, StatusReport};
use crate::config::Config;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const CLI_NAME: &str = "tandem-cli";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
}

fn layouts(config: &Config) -> Vec<StripeLayout> {
    config.stripes.iter().map(|s| StripeLayout::from_config(config, s)).collect()
}

fn require_secret(layout: &StripeLayout) -> Result<(), ControlError> {
    if layout.secret.is_none() {
        return Err(ControlError::Usage(format!(
            "stripe {} has no cluster.secret: its servers serve no group port, so they cannot be managed remotely",
            layout.stripe
        )));
    }
    Ok(())
}

async fn ask(layout: &StripeLayout, member: &Member, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    group::request(&group::identity(layout, CLI_NAME), None, &member.group_addr(), req, timeout).await
}

/// Every member's own report; `Err` for members that do not answer.
pub async fn collect(config: &Config) -> Vec<(StripeLayout, Member, Result<StatusReport, String>)> {
    let mut out = Vec::new();
    for layout in layouts(config) {
        for member in &layout.members {
            let report = match ask(&layout, member, &Request::Status, CALL_TIMEOUT).await {
                Ok(Response::Status(s)) => Ok(s),
                Ok(_) => Err("it answered with something other than its status".to_string()),
                Err(e) => Err(e.to_string()),
            };
            out.push((layout.clone(), member.clone(), report));
        }
    }
    out
}

fn is_active_report(s: &StatusReport) -> bool {
    ServerState::parse(&s.state) == Some(ServerState::ActiveCoordinator)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// What `tandem status` shows: one line per server and voter, and the stripes that
/// have no active (the CLI then exits non-zero).
pub struct StatusTable {
    pub text: String,
    /// One sentence per stripe with no server in ACTIVE-COORDINATOR.
    pub without_active: Vec<String>,
}

/// `tandem status`: one line per server and voter.
pub async fn status_table(config: &Config) -> StatusTable {
    let rows = collect(config).await;
    let mut out = format!(
        "{:<10} {:<14} {:<6} {:<22} {:<7} {:>6} {:>10} {:>10} {:>8} {:>20} {:>10}\n",
        "STRIPE", "SERVER", "ROLE", "STATE", "LIGHT", "TERM", "COMMIT", "APPLIED", "LAG", "NODE", "PURGED"
    );
    for (layout, member, report) in &rows {
        let role = if member.is_voter() { "voter" } else { "server" };
        match report {
            Ok(s) => {
                // Lag as the active sees it.
                let lag = rows
                    .iter()
                    .filter_map(|(l, _, r)| r.as_ref().ok().filter(|r| l.stripe == layout.stripe && is_active_report(r)))
                    .flat_map(|r| r.members.iter())
                    .find(|m| m.name == member.name && m.node_id == s.node_id)
                    .and_then(|m| m.lag);
                out.push_str(&format!(
                    "{:<10} {:<14} {:<6} {:<22} {:<7} {:>6} {:>10} {:>10} {:>8} {:>20} {:>10}\n",
                    layout.stripe,
                    member.name,
                    role,
                    s.state,
                    s.light,
                    s.term,
                    opt(s.commit_index),
                    opt(s.applied_index),
                    opt(lag),
                    s.node_id,
                    opt(s.purged_index)
                ));
            }
            Err(_) => out.push_str(&format!(
                "{:<10} {:<14} {:<6} {:<22} {:<7} {:>6} {:>10} {:>10} {:>8} {:>20} {:>10}\n",
                layout.stripe,
                member.name,
                role,
                ServerState::Stopped.name(),
                ServerState::Stopped.light(),
                "-",
                "-",
                "-",
                "-",
                "-",
                "-"
            )),
        }
    }
    StatusTable { text: out, without_active: stripes_without_active(&rows) }
}

/// A sentence for each stripe where no server is ACTIVE-COORDINATOR (a voter that
/// leads only to hand over serves no client, so it does not count).
fn stripes_without_active(rows: &[(StripeLayout, Member, Result<StatusReport, String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stripes: Vec<&str> = rows.iter().map(|(l, _, _)| l.stripe.as_str()).collect();
    stripes.dedup();
    for stripe in stripes {
        let members: Vec<(&Member, ServerState)> = rows
            .iter()
            .filter(|(l, _, _)| l.stripe == stripe)
            .map(|(_, m, r)| (m, r.as_ref().ok().and_then(|r| ServerState::parse(&r.state)).unwrap_or(ServerState::Stopped)))
            .collect();
        if members.iter().any(|(m, state)| !m.is_voter() && *state == ServerState::ActiveCoordinator) {
            continue;
        }
        let states: Vec<String> = members.iter().map(|(m, state)| format!("{} is {state}", m.name)).collect();
        out.push(format!("stripe {stripe} has no active: {}", states.join(", ")));
    }
    out
}

fn find(config: &Config, name: &str) -> Result<(StripeLayout, Member), ControlError> {
    for layout in layouts(config) {
        if let Some(m) = layout.member(name) {
            let m = m.clone();
            return Ok((layout, m));
        }
    }
    Err(ControlError::Usage(format!("no server or voter named {name:?} in the config")))
}

fn done(answer: std::io::Result<Response>, who: &str) -> Result<String, ControlError> {
    match answer {
        Ok(Response::Done { ok: true, message }) => Ok(message),
        Ok(Response::Done { ok: false, message }) => Err(ControlError::Refused(message)),
        Ok(Response::Error(why)) => Err(ControlError::Refused(format!("{who} could not do it: {why}"))),
        Ok(_) => Err(ControlError::Refused(format!("{who} answered with something other than a result (is it the same version?)"))),
        Err(e) => Err(ControlError::Refused(format!("{who} did not answer: {e}"))),
    }
}

/// `tandem stop --name X [--force]`.
pub async fn stop(config: &Config, name: &str, force: bool) -> Result<String, ControlError> {
    let (layout, member) = find(config, name)?;
    require_secret(&layout)?;
    // Probing the other members (for the quorum) and handing over may take an
    // election and a probe time or two.
    let timeout = Duration::from_millis(layout.election_time_ms * 4).max(CALL_TIMEOUT * 2) + CALL_TIMEOUT * 2;
    let message = done(ask(&layout, &member, &Request::Stop { force }, timeout).await, name)?;
    wait_unreachable(&layout, &member, Duration::from_secs(30)).await?;
    Ok(message)
}

async fn wait_unreachable(layout: &StripeLayout, member: &Member, within: Duration) -> Result<(), ControlError> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ask(layout, member, &Request::Status, Duration::from_millis(500)).await.is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ControlError::Refused(format!("{} accepted to stop but still answers after {} s", member.name, within.as_secs())))
}

/// `tandem failover --stripe A [--to server2]`.
pub async fn failover(config: &Config, stripe: &str, to: Option<&str>) -> Result<String, ControlError> {
    let layout = layouts(config)
        .into_iter()
        .find(|l| l.stripe == stripe)
        .ok_or_else(|| ControlError::Usage(format!("no stripe named {stripe:?} in the config")))?;
    require_secret(&layout)?;
    let active = active_of(&layout).await?;
    let timeout = Duration::from_millis(layout.election_time_ms * 4).max(CALL_TIMEOUT * 2);
    done(ask(&layout, &active, &Request::Failover { to: to.map(str::to_string) }, timeout).await, &active.name)
}

async fn active_of(layout: &StripeLayout) -> Result<Member, ControlError> {
    for member in &layout.members {
        if let Ok(Response::Status(s)) = ask(layout, member, &Request::Status, CALL_TIMEOUT).await {
            if is_active_report(&s) {
                return Ok(member.clone());
            }
        }
    }
    Err(ControlError::Refused(format!("stripe {} has no active right now", layout.stripe)))
}

/// `tandem shutdown`: every stripe's mirrors and voters first, then its active, so
/// the last to stop holds the newest log and any start order after is safe.
pub async fn shutdown(config: &Config) -> Result<Vec<String>, ControlError> {
    let mut said = Vec::new();
    for layout in layouts(config) {
        require_secret(&layout)?;
        let mut actives = Vec::new();
        for member in &layout.members {
            match ask(&layout, member, &Request::Status, CALL_TIMEOUT).await {
                Ok(Response::Status(s)) if is_active_report(&s) => actives.push(member.clone()),
                Ok(_) => {
                    let message = stop_one(&layout, member).await?;
                    said.push(format!("{}: {message}", member.name));
                }
                Err(_) => said.push(format!("{}: not running", member.name)),
            }
        }
        for member in actives {
            let message = stop_one(&layout, &member).await?;
            said.push(format!("{}: {message}", member.name));
        }
    }
    Ok(said)
}

async fn stop_one(layout: &StripeLayout, member: &Member) -> Result<String, ControlError> {
    let message = done(ask(layout, member, &Request::Stop { force: true }, CALL_TIMEOUT * 2).await, &member.name)?;
    wait_unreachable(layout, member, Duration::from_secs(30)).await?;
    Ok(message)
}
