//! The other stripes of the array, as this server learns them (DESIGN.md §7): who is
//! active in each, and which of their servers answer. A task per other stripe asks
//! its members for their status over their group ports, with the cluster secret, as
//! `tandem status` does, and puts what it hears into the cluster view that routing
//! reads. It asks the known active alone a few times per election time, and every
//! member when none is known, when the active stops saying it is, and every fourth
//! round (for the health flags of `CLUSTER NODES`): a failover in another stripe is
//! in this server's view within about an election time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Shared;
use crate::cluster::view::Active;
use crate::replication::group;
use crate::replication::group_tls::GroupStream;
use crate::replication::stripe::{Member, ServerState};
use crate::replication::transport;
use crate::replication::wire::{Request, Response, StatusReport};

/// Shortest pause between two rounds of questions to one stripe.
const ROUND_MIN: Duration = Duration::from_millis(50);
/// Longest wait for one member's answer (a stopped process answers nothing).
const ANSWER_MAX: Duration = Duration::from_millis(500);
/// Every this many rounds, every member is asked, not only the active.
const FULL_ROUND_EVERY: u64 = 4;

/// One server of another stripe, as last heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMember {
    pub name: String,
    /// `Stopped` when it did not answer.
    pub state: ServerState,
}

/// What this server last heard from the other stripes' servers, by stripe position.
#[derive(Default)]
pub struct RemoteStates {
    by_stripe: Mutex<HashMap<usize, Vec<RemoteMember>>>,
}

impl RemoteStates {
    /// The members of `stripe` as last heard (empty before the first full round).
    pub fn of(&self, stripe: usize) -> Vec<RemoteMember> {
        self.by_stripe.lock().unwrap_or_else(|e| e.into_inner()).get(&stripe).cloned().unwrap_or_default()
    }

    fn set(&self, stripe: usize, members: Vec<RemoteMember>) {
        self.by_stripe.lock().unwrap_or_else(|e| e.into_inner()).insert(stripe, members);
    }
}

/// A fingerprint of the array a config describes: its stripes in order with their
/// members. Servers whose configs differ here would disagree on which stripe owns
/// a slot (and both accept the same key), so each says it in its status.
pub fn fingerprint(array: &[crate::replication::stripe::StripeLayout]) -> String {
    let mut text = String::new();
    for layout in array {
        text.push_str(&layout.stripe);
        for m in &layout.members {
            text.push('\0');
            text.push_str(&m.name);
        }
        text.push('\n');
    }
    crate::store::scripts::sha1_hex(text.as_bytes())
}

/// Why this server serves no slot right now: a server of another stripe reads
/// another array from its config. Keyed by the stripe that said so.
#[derive(Default)]
pub struct Mismatch {
    by_stripe: Mutex<HashMap<usize, String>>,
    /// `by_stripe` is not empty: every routed command asks, so without the lock.
    any: std::sync::atomic::AtomicBool,
}

impl Mismatch {
    /// A sentence naming one server whose config differs, if any does.
    pub fn reason(&self) -> Option<String> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.by_stripe.lock().unwrap_or_else(|e| e.into_inner()).values().next().cloned()
    }

    fn set(&self, stripe: usize, reason: Option<String>) {
        let mut map = self.by_stripe.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(reason) => {
                if map.insert(stripe, reason.clone()).is_none() {
                    tracing::error!(%reason, "the array's config differs between servers: this server serves no slot until they agree");
                }
            }
            None => {
                if map.remove(&stripe).is_some() {
                    tracing::info!("the array's config agrees again with the other stripe's servers");
                }
            }
        }
        self.any.store(!map.is_empty(), std::sync::atomic::Ordering::Release);
    }
}

/// Keeps `stripe`'s active (another stripe than this server's) current in the view.
pub async fn watch_stripe(shared: Arc<Shared>, stripe: usize) {
    let Some(layout) = shared.array.get(stripe).cloned() else { return };
    if layout.secret.is_none() {
        // The config refuses an array without a secret; a lone stripe never gets here.
        tracing::warn!(stripe = %layout.stripe, "no cluster.secret: this server cannot learn the stripe's active");
        return;
    }
    let me = group::identity(&layout, &shared.server_name);
    let own_host = shared.core.replica.group.layout.members.iter().find(|m| m.name == shared.server_name).map(|m| m.host.clone());
    let servers: Vec<Member> = layout.members.iter().filter(|m| !m.is_voter()).cloned().collect();
    let period = (shared.core.replica.election_time() / 4).max(ROUND_MIN);
    let answer_within = (shared.core.replica.election_time() / 2).clamp(ROUND_MIN, ANSWER_MAX);
    let mine = fingerprint(&shared.array);
    // One connection per server, kept from round to round.
    let mut links: Vec<Option<GroupStream>> = servers.iter().map(|_| None).collect();
    let mut round = 0u64;
    loop {
        let known = match shared.view().active(stripe) {
            Active::There { name, .. } => servers.iter().position(|m| &m.name == name),
            _ => None,
        };
        let full = known.is_none() || round.is_multiple_of(FULL_ROUND_EVERY);
        round += 1;
        let asking = |i: usize| full || Some(i) == known;
        let asked: Vec<&Member> = servers.iter().enumerate().filter(|(i, _)| asking(*i)).map(|(_, m)| m).collect();
        let answers = futures_util::future::join_all(
            links
                .iter_mut()
                .zip(&servers)
                .enumerate()
                .filter(|(i, _)| asking(*i))
                .map(|(_, (link, m))| status(link, &me, own_host.as_deref(), m, answer_within)),
        )
        .await;
        // Every server that answers must read the same array from its config.
        let differs = asked.iter().zip(&answers).find_map(|(m, a)| {
            a.as_ref().filter(|r| !r.array.is_empty() && r.array != mine).map(|_| {
                format!(
                    "server {} of stripe {} reads another array from its config (other stripes, order or servers) than server {}",
                    m.name, layout.stripe, shared.server_name
                )
            })
        });
        if differs.is_some() || answers.iter().any(|a| a.as_ref().is_some_and(|r| r.array == mine)) {
            shared.array_mismatch.set(stripe, differs);
        }
        let active = active_of(&asked, &answers);
        if !full && active.is_none() {
            // The active stopped saying it is: ask everyone now.
            round = 0;
            continue;
        }
        if full {
            let members = asked
                .iter()
                .zip(&answers)
                .map(|(m, a)| RemoteMember {
                    name: m.name.clone(),
                    state: a.as_ref().and_then(|r| ServerState::parse(&r.state)).unwrap_or(ServerState::Stopped),
                })
                .collect();
            shared.remote.set(stripe, members);
        }
        let now = match active {
            Some(m) => Active::There { name: m.name.clone(), client_addr: m.client_addr().unwrap_or_default() },
            None => Active::Unknown,
        };
        if *shared.view().active(stripe) != now {
            match &now {
                Active::There { name, client_addr } => {
                    tracing::info!(stripe = %layout.stripe, active = %name, %client_addr, "another stripe's active")
                }
                _ => tracing::warn!(stripe = %layout.stripe, "another stripe has no active this server can reach"),
            }
            shared.set_active(stripe, now);
        }
        tokio::time::sleep(period).await;
    }
}

/// `member`'s status, asked over `link`: the connection kept from the last round
/// (the group port serves any number of requests on one), or a new one. A kept
/// connection that fails (the server restarted, a link was cut) is replaced at once,
/// within the same `within`, so a server that is back is heard in this round; and no
/// round opens a connection (a handshake, a TLS one with `tls-group`) to a server
/// that answered the last.
async fn status(
    link: &mut Option<GroupStream>,
    me: &transport::Identity,
    own_host: Option<&str>,
    member: &Member,
    within: Duration,
) -> Option<StatusReport> {
    let deadline = tokio::time::Instant::now() + within;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let question = Request::Status.encode();
    let kept = link.is_some();
    for fresh in [false, true] {
        if fresh && !kept {
            return None;
        }
        if fresh || link.is_none() {
            *link = transport::connect(&member.group_addr(), own_host, me, 0, left()).await.ok();
        }
        let stream = link.as_mut()?;
        match transport::call(stream, &question, left()).await.map(|answer| Response::decode(&answer)) {
            Ok(Ok(Response::Status(report))) => return Some(report),
            // Answered, but not with a status: the connection is sound.
            Ok(Ok(_)) => return None,
            // A broken or half-read connection is not used again.
            Ok(Err(_)) | Err(_) => *link = None,
        }
    }
    None
}

/// The member that says it is ACTIVE-COORDINATOR; of two (one deposed and not yet
/// aware), the one with the later term.
fn active_of<'a>(asked: &[&'a Member], answers: &[Option<StatusReport>]) -> Option<&'a Member> {
    asked
        .iter()
        .zip(answers)
        .filter_map(|(m, a)| {
            a.as_ref().filter(|r| ServerState::parse(&r.state) == Some(ServerState::ActiveCoordinator)).map(|r| (*m, r.term))
        })
        .max_by_key(|(_, term)| *term)
        .map(|(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            host: "127.0.0.1".into(),
            group_port: 1,
            client_port: Some(2),
            cluster_port: None,
            data_storage_bytes: 0,
        }
    }

    fn report(state: ServerState, term: u64) -> Option<StatusReport> {
        Some(StatusReport { state: state.name().to_string(), term, ..StatusReport::default() })
    }

    #[test]
    fn the_active_is_the_one_saying_so_with_the_latest_term() {
        let (a, b, c) = (member("a"), member("b"), member("c"));
        let asked = [&a, &b, &c];
        let answers = [report(ServerState::ActiveCoordinator, 3), report(ServerState::ActiveCoordinator, 4), None];
        assert_eq!(active_of(&asked, &answers).map(|m| m.name.as_str()), Some("b"));
        let answers = [report(ServerState::PassiveStandby, 4), report(ServerState::Election, 5), None];
        assert_eq!(active_of(&asked, &answers), None);
        let answers = [report(ServerState::ActiveSuspended, 4), None, None];
        assert_eq!(active_of(&asked, &answers), None, "a suspended active serves nobody");
    }
}
