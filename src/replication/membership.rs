//! How a stripe forms and changes, with no operator step:
//!
//! - **First start.** The first server in config order (the founder) forms the
//!   stripe only when every configured member answers and none belongs to a formed
//!   stripe; it then makes all of them voters at once. Anything else (a member that
//!   is unreachable, or one that already holds the stripe) means the stripe exists
//!   or may exist, and the founder joins it instead: a wiped founder never forms a
//!   second stripe beside the first.
//! - **Joining.** A member with no Raft state (first start with an empty data
//!   directory, a hot swap, or any restart of a non-persistent server) has a node id
//!   never used before. It asks the active to add it; the active checks it
//!   (`data-storage` no smaller than its own), adds it as a learner, and once it has
//!   caught up makes it a voter in place of the old id of the same config entry. So
//!   a member that lost its state never votes until it holds the log again.
//! - **Voters** (witnesses) hold no data. One that wins an election (it may hold
//!   entries the surviving server lacks) stays active only until that server has
//!   caught up, then hands leadership over. It purges its log only behind what
//!   every data-holding voter has, as the active tells it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::{BasicNode, ChangeMembers, Instant as _};

use super::explain;
use super::group::{self, Group, Stop};
use super::stripe::{ServerState, STANDBY_LAG_MAX};
use super::wire::{Request, Response};

const DUTY_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often the active tells voters how far they may purge.
const PURGE_HINT_INTERVAL: Duration = Duration::from_secs(2);

/// [`PURGE_HINT_INTERVAL`], or in debug builds `TANDEM_PURGE_HINT_INTERVAL_MS`
/// (test-only: a test that must place a burst of writes between two hints, as
/// `tests/ha.rs`'s voter-purge regression does, lengthens it; the thresholds that
/// decide what is purged stay the real ones).
fn purge_hint_interval() -> Duration {
    #[cfg(debug_assertions)]
    {
        if let Some(ms) = std::env::var("TANDEM_PURGE_HINT_INTERVAL_MS").ok().and_then(|v| v.parse().ok()) {
            return Duration::from_millis(ms);
        }
    }
    PURGE_HINT_INTERVAL
}

/// Starts the background duties of a member of a stripe with more than one member.
pub fn spawn(group: Arc<Group>) {
    tokio::spawn(form_or_join(group.clone()));
    tokio::spawn(duties(group.clone()));
    tokio::spawn(log_state_changes(group));
}

/// Starts only the log of state changes: a lone server has no other duties.
pub fn spawn_state_log(group: Arc<Group>) {
    tokio::spawn(log_state_changes(group));
}

async fn probe(group: &Group, addr: &str) -> std::io::Result<Response> {
    group::request(&group.identity, Some(&group.me.host), addr, &Request::Probe, PROBE_TIMEOUT).await
}

/// Until this member belongs to a formed stripe: form it (founder, all members
/// fresh) or ask the active to be added.
async fn form_or_join(group: Arc<Group>) {
    let mut last_wait_log = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let m = group.metrics();
        if m.membership_config.membership().get_node(&group.node_id).is_some() {
            return;
        }
        let initialized = m.membership_config.membership().nodes().count() > 0;
        let others: Vec<_> = group.layout.members.iter().filter(|x| x.name != group.me.name).cloned().collect();
        let mut answers = Vec::new();
        for member in &others {
            answers.push((member.clone(), probe(&group, &member.group_addr()).await));
        }
        let active = answers.iter().find_map(|(member, a)| match a {
            Ok(Response::Probe { is_active: true, .. }) => Some(member.clone()),
            _ => None,
        });
        let all_fresh = answers.iter().all(|(_, a)| matches!(a, Ok(Response::Probe { initialized: false, .. })));
        if let Some(active) = active {
            let join =
                Request::Join { node_id: group.node_id, name: group.me.name.clone(), data_storage_bytes: group.me.data_storage_bytes };
            match group::request(&group.identity, Some(&group.me.host), &active.group_addr(), &join, PROBE_TIMEOUT * 5).await {
                Ok(Response::Done { ok: true, message }) => tracing::info!(active = %active.name, %message, "joining the stripe"),
                Ok(Response::Done { ok: false, message }) if message.starts_with("refused") => {
                    tracing::error!(active = %active.name, %message, "the stripe refused this server");
                    let _ = group.stop.send(Some(Stop::Refused(message)));
                    return;
                }
                Ok(Response::Done { message, .. } | Response::Error(message)) => {
                    tracing::info!(active = %active.name, %message, "join not accepted yet")
                }
                Ok(_) => tracing::info!(active = %active.name, "join not accepted yet: the active answered something else"),
                Err(e) => tracing::info!(active = %active.name, error = %e, "join request failed; retrying"),
            }
        } else if !initialized && group.me.name == group.layout.founder().name && all_fresh {
            let mut voters = BTreeMap::from([(group.node_id, BasicNode { addr: group.me.group_addr() })]);
            for (member, answer) in &answers {
                if let Ok(Response::Probe { node_id, data_storage_bytes, .. }) = answer {
                    if !member.is_voter() && *data_storage_bytes < group.me.data_storage_bytes {
                        tracing::error!(
                            server = %member.name,
                            their = data_storage_bytes,
                            ours = group.me.data_storage_bytes,
                            "a mirror's data-storage is smaller than this server's; the stripe is formed without it"
                        );
                        continue;
                    }
                    voters.insert(*node_id, BasicNode { addr: member.group_addr() });
                }
            }
            match group.raft.initialize(voters.clone()).await {
                Ok(()) => tracing::info!(members = voters.len(), "stripe formed: every member was fresh"),
                Err(e) => tracing::warn!(why = %explain::initialize(&e), "forming the stripe failed; retrying"),
            }
        } else if last_wait_log.elapsed() > Duration::from_secs(10) {
            last_wait_log = std::time::Instant::now();
            let unreachable: Vec<_> = answers.iter().filter(|(_, a)| a.is_err()).map(|(m, _)| m.name.clone()).collect();
            tracing::info!(?unreachable, "waiting for the stripe's active (or, on a first start, for every member)");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The active adds a new member as a learner (it becomes a voter once caught up).
pub async fn on_join(group: &Group, node_id: u64, name: &str, data_storage_bytes: u64) -> Response {
    if !group.is_active() {
        return Response::Done { ok: false, message: "not the active of the stripe".into() };
    }
    let Some(member) = group.layout.member(name) else {
        return Response::Done {
            ok: false,
            message: format!("refused: {name} is not a member of stripe {} in this config", group.layout.stripe),
        };
    };
    if !member.is_voter() && data_storage_bytes < group.me.data_storage_bytes {
        let message = format!(
            "refused: {name}'s data-storage ({data_storage_bytes} bytes) is smaller than the active {}'s ({} bytes); a mirror must be able to hold everything the active holds",
            group.me.name, group.me.data_storage_bytes
        );
        tracing::error!(server = name, "{message}");
        return Response::Done { ok: false, message };
    }
    let m = group.metrics();
    let membership = m.membership_config.membership();
    if membership.get_node(&node_id).is_some() {
        return Response::Done { ok: true, message: format!("{name} is a member; syncing") };
    }
    // Learners left by earlier incarnations of the same entry will never answer.
    let stale: BTreeSet<u64> = membership
        .nodes()
        .filter(|(id, n)| n.addr == member.group_addr() && !membership.get_joint_config().iter().any(|c| c.contains(id)))
        .map(|(id, _)| *id)
        .collect();
    if !stale.is_empty() {
        if let Err(e) = group.raft.change_membership(ChangeMembers::RemoveNodes(stale), false).await {
            let why = explain::membership_change(&e, |id| group.name_of(&m, id));
            return Response::Done {
                ok: false,
                message: format!("removing {name}'s earlier node ids from stripe {} first failed: {why}", group.layout.stripe),
            };
        }
    }
    match group.raft.add_learner(node_id, BasicNode { addr: member.group_addr() }, false).await {
        Ok(_) => {
            tracing::info!(server = name, node_id, "new member added as a learner; it becomes a voter once caught up");
            Response::Done { ok: true, message: format!("{name} added as node {node_id}; syncing") }
        }
        Err(e) => Response::Done {
            ok: false,
            message: format!(
                "adding {name} to stripe {} failed: {}",
                group.layout.stripe,
                explain::membership_change(&e, |id| group.name_of(&m, id))
            ),
        },
    }
}

/// Periodic work: the active promotes caught-up learners and tells voters how far
/// to purge; a voter that finds itself active hands over.
async fn duties(group: Arc<Group>) {
    let hint_interval = purge_hint_interval();
    let mut last_hint = std::time::Instant::now();
    loop {
        tokio::time::sleep(DUTY_INTERVAL).await;
        let m = group.metrics();
        if m.running_state.is_err() {
            return;
        }
        if !m.state.is_leader() {
            // A new active's first hint comes one interval after it took over, once
            // its replication progress has been rebuilt.
            last_hint = std::time::Instant::now();
            continue;
        }
        if group.witness {
            hand_over(&group).await;
            continue;
        }
        promote(&group).await;
        if last_hint.elapsed() >= hint_interval {
            last_hint = std::time::Instant::now();
            send_purge_hints(&group).await;
        }
    }
}

/// Makes one caught-up learner a voter, in place of older ids of its config entry.
async fn promote(group: &Group) {
    let m = group.metrics();
    let membership = m.membership_config.membership().clone();
    let configs = membership.get_joint_config();
    if configs.len() != 1 {
        return;
    }
    let voters = &configs[0];
    let last = m.last_log_index.unwrap_or(0);
    let Some(replication) = m.replication.as_ref() else { return };
    for (id, node) in membership.nodes() {
        if voters.contains(id) || group.layout.by_group_addr(&node.addr).is_none() {
            continue;
        }
        let Some(matched) = replication.get(id).cloned().flatten() else { continue };
        if last.saturating_sub(matched.index) > STANDBY_LAG_MAX {
            continue;
        }
        // A learner that stopped answering keeps its last matched index: never
        // swap a live voter for it.
        let heard = m.heartbeat.as_ref().and_then(|h| h.get(id).cloned().flatten()).map(|t| t.into_inner());
        if heard.is_none_or(|t| t.elapsed() >= group.election_time()) {
            continue;
        }
        let mut next: BTreeSet<u64> =
            voters.iter().copied().filter(|v| membership.get_node(v).is_none_or(|n| n.addr != node.addr)).collect();
        let replaced: Vec<u64> = voters.difference(&next).copied().collect();
        next.insert(*id);
        let name = group.name_of(&m, *id);
        match group.raft.change_membership(ChangeMembers::ReplaceAllVoters(next), false).await {
            Ok(_) => tracing::info!(server = %name, node_id = id, ?replaced, "caught up: now a voting member"),
            Err(e) => {
                tracing::warn!(server = %name, why = %explain::membership_change(&e, |id| group.name_of(&m, id)), "promotion to voter failed; will retry")
            }
        }
        return;
    }
}

async fn send_purge_hints(group: &Group) {
    let m = group.metrics();
    let membership = m.membership_config.membership();
    let Some(replication) = m.replication.as_ref() else { return };
    let mut floor = m.last_log_index.unwrap_or(0);
    let mut witnesses = Vec::new();
    for (id, node) in membership.nodes() {
        let Some(member) = group.layout.by_group_addr(&node.addr) else { continue };
        if member.is_voter() {
            witnesses.push(member.clone());
        } else if *id != m.id {
            // Learners count too: one may become a voter a little behind the log.
            match replication.get(id).cloned().flatten() {
                Some(l) => floor = floor.min(l.index),
                None => return,
            }
        }
    }
    // And a margin for a member promoted while up to STANDBY_LAG_MAX behind.
    let floor = floor.saturating_sub(STANDBY_LAG_MAX);
    for w in witnesses {
        let _ = group::request(&group.identity, Some(&group.me.host), &w.group_addr(), &Request::PurgeHint { index: floor }, PROBE_TIMEOUT)
            .await;
    }
}

/// On a voter: purge the log behind what every data-holding member has matched.
///
/// This hint is the only way a voter's log shrinks (openraft's own purge after a
/// snapshot is off on voters: `replica::raft_config`), so its memory is bounded by
/// the entries written since the slowest data-holding member (mirror or learner,
/// paused, lagging or dead) last matched, plus `STANDBY_LAG_MAX`. The trade-off: a
/// mirror that stays down keeps the voter's log growing with every write, because
/// if the active died the voter would be the only one left to bring that mirror
/// back by log (its snapshots hold no data). Replacing the dead mirror (hot swap,
/// or a restart that rejoins) moves the floor again; so does removing it.
pub async fn on_purge_hint(group: &Group, index: u64) {
    if !group.witness {
        return;
    }
    let m = group.metrics();
    let upto = index.min(m.last_applied.map_or(0, |l| l.index));
    if m.purged.map(|p| p.index) >= Some(upto) || upto < super::replica::PURGE_BATCH_ENTRIES {
        return;
    }
    if m.snapshot.map(|s| s.index) < Some(upto) {
        // A voter's snapshot copies nothing; it only lets the log be purged (by the
        // next hint: openraft purges nothing by itself after building it here).
        let _ = group.raft.trigger().snapshot().await;
        return;
    }
    // openraft purges up to `upto` exactly (never past the snapshot), regardless of
    // `max_in_snapshot_log_to_keep`.
    let _ = group.raft.trigger().purge_log(upto).await;
}

/// A voter that became active: once the most up-to-date server holds everything,
/// hand leadership to it.
async fn hand_over(group: &Group) {
    let m = group.metrics();
    let last = m.last_log_index.unwrap_or(0);
    let membership = m.membership_config.membership();
    let Some(replication) = m.replication.as_ref() else { return };
    let best = membership
        .nodes()
        .filter(|(id, node)| {
            **id != m.id
                && membership.get_joint_config().iter().all(|c| c.contains(id))
                && group.layout.by_group_addr(&node.addr).is_some_and(|x| !x.is_voter())
        })
        .filter_map(|(id, _)| Some((*id, replication.get(id).cloned().flatten()?.index)))
        .max_by_key(|(_, matched)| *matched);
    if let Some((id, matched)) = best {
        if matched >= last {
            tracing::info!(to = %group.name_of(&m, id), "this voter is active only to hand over: the server holds every entry now");
            let _ = group.raft.trigger().transfer_leader(id).await;
            // Give the transfer an election's time before trying again.
            tokio::time::sleep(group.election_time()).await;
        }
    }
}

/// `tandem failover`: on the active, hands leadership to a PASSIVE-STANDBY mirror
/// (the named one, or the most caught up) and waits until it has taken over.
pub async fn failover(group: &Group, to: Option<&str>) -> Response {
    let refused = |message: String| {
        tracing::warn!(to = ?to, why = %message, "failover refused");
        Response::Done { ok: false, message: format!("refused: {message}") }
    };
    if !group.is_active() {
        let m = group.metrics();
        let active = match m.current_leader {
            Some(id) => format!("the active is {}", group.name_of(&m, id)),
            None => "no active is known".to_string(),
        };
        return refused(format!("{} is not the active of stripe {} ({active})", group.me.name, group.layout.stripe));
    }
    let standbys = answering_standbys(group).await;
    let target = match to {
        Some(name) => match standbys.iter().find(|(_, n, _)| n == name) {
            Some(t) => t.clone(),
            None => return refused(why_not_a_failover_target(group, name).await),
        },
        None => match standbys.first() {
            Some(t) => t.clone(),
            None => return refused(format!("stripe {} has no PASSIVE-STANDBY mirror to hand over to", group.layout.stripe)),
        },
    };
    match hand_leadership(group, target.0).await {
        Ok(term) => {
            tracing::info!(to = %target.1, term, "failover: handed the active over");
            Response::Done { ok: true, message: format!("{} is now the active of stripe {} (term {term})", target.1, group.layout.stripe) }
        }
        Err(why) => {
            tracing::warn!(to = %target.1, %why, "failover failed");
            Response::Done { ok: false, message: format!("handing over to {} failed: {why}", target.1) }
        }
    }
}

/// Why `name` cannot take over from this active: it is this server, it is not a
/// server of the stripe (or does not exist), it is a voter, or it is not caught up.
async fn why_not_a_failover_target(group: &Group, name: &str) -> String {
    let stripe = &group.layout.stripe;
    if name == group.me.name {
        return format!("{name} is already the active of stripe {stripe}");
    }
    let Some(member) = group.layout.member(name) else {
        return format!("{name} is not a server of stripe {stripe}");
    };
    if member.is_voter() {
        return format!("{name} is a voter of stripe {stripe}: it holds no data and cannot become the active");
    }
    let state = match group::request(&group.identity, Some(&group.me.host), &member.group_addr(), &Request::Status, PROBE_TIMEOUT).await {
        Ok(Response::Status(report)) => report.state,
        _ => ServerState::Stopped.name().to_string(),
    };
    format!("{name} is not {} (it is {state}); only a caught-up mirror can take over", ServerState::PassiveStandby)
}

/// The caught-up mirrors that answer right now: the heartbeat metrics may still
/// count a mirror that stopped a moment ago.
async fn answering_standbys(group: &Group) -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    for standby in group.standbys() {
        let Some(member) = group.layout.member(&standby.1) else { continue };
        if let Ok(Response::Probe { node_id, .. }) = probe(group, &member.group_addr()).await {
            if node_id == standby.0 {
                out.push(standby);
            }
        }
    }
    out
}

async fn hand_leadership(group: &Group, to: u64) -> Result<u64, String> {
    group.raft.trigger().transfer_leader(to).await.map_err(|e| explain::fatal(&e))?;
    let deadline = group.election_time() * 3;
    group
        .raft
        .wait(Some(deadline))
        .metrics(|m| m.current_leader == Some(to), "the mirror takes over")
        .await
        .map(|m| m.current_term)
        .map_err(|e| explain::wait(&e, "the mirror taking over"))
}

/// The voting members other than this one that answer a probe now as the node the
/// stripe's membership names; with the voter sets (one, or two during a change).
async fn voters_answering(group: &Group) -> (Vec<BTreeSet<u64>>, BTreeSet<u64>) {
    let m = group.metrics();
    let membership = m.membership_config.membership().clone();
    let configs: Vec<BTreeSet<u64>> = membership.get_joint_config().to_vec();
    let others: BTreeSet<u64> = configs.iter().flatten().copied().filter(|id| *id != m.id).collect();
    // Probed together: a paused member takes a whole probe time to fail.
    let probes = others.iter().filter_map(|id| {
        let addr = membership.get_node(id)?.addr.clone();
        Some(async move { matches!(probe(group, &addr).await, Ok(Response::Probe { node_id, .. }) if node_id == *id).then_some(*id) })
    });
    let up = futures_util::future::join_all(probes).await.into_iter().flatten().collect();
    (configs, up)
}

/// Refuses (with the reason) when stopping this member would leave its stripe
/// without a quorum of voting members that answer: the stripe could then commit
/// nothing, whatever its active (so a stripe that has already lost its quorum
/// refuses too: stopping one more member keeps it so). A learner never refuses here.
async fn quorum_after_stop(group: &Group) -> Result<(), String> {
    let (configs, up) = voters_answering(group).await;
    let me = group.node_id;
    if !configs.iter().any(|c| c.contains(&me)) {
        return Ok(());
    }
    let m = group.metrics();
    for config in &configs {
        let remaining: Vec<u64> = config.iter().copied().filter(|id| *id != me && up.contains(id)).collect();
        if remaining.len() * 2 > config.len() {
            continue;
        }
        let silent: Vec<String> = config.iter().filter(|id| **id != me && !up.contains(id)).map(|id| group.name_of(&m, *id)).collect();
        let silent = if silent.is_empty() { String::new() } else { format!("; not answering: {}", silent.join(", ")) };
        return Err(format!(
            "stopping {} would leave stripe {} without a quorum: {} of its {} voting members would remain{silent}",
            group.me.name,
            group.layout.stripe,
            remaining.len(),
            config.len()
        ));
    }
    Ok(())
}

/// `tandem stop`: refuses unless forced when it would stop the stripe (an active
/// with no PASSIVE-STANDBY mirror) or leave it without a quorum; an active with a
/// mirror hands over first. Returns the answer and whether to stop.
pub async fn stop(group: &Group, force: bool) -> (Response, bool) {
    let refuse = |why: String| {
        tracing::warn!(%why, "stop refused");
        (Response::Done { ok: false, message: format!("refused: {why} (use --force to stop it anyway)") }, false)
    };
    let standby = if group.is_active() {
        let standbys = answering_standbys(group).await;
        match standbys.first() {
            None if !force => {
                return refuse(format!(
                    "{} is the active of stripe {} and no mirror is PASSIVE-STANDBY; stopping it would stop the stripe",
                    group.me.name, group.layout.stripe
                ))
            }
            first => first.cloned(),
        }
    } else {
        None
    };
    if !force {
        if let Err(why) = quorum_after_stop(group).await {
            return refuse(why);
        }
    }
    if let Some((id, name, _)) = standby {
        match hand_leadership(group, id).await {
            Ok(_) => tracing::info!(to = %name, "handed leadership over before stopping"),
            Err(why) if !force => return refuse(format!("handing over to {name} failed: {why}")),
            Err(why) => tracing::warn!(to = %name, %why, "handing over failed; stopping anyway (forced)"),
        }
    }
    tracing::info!(force, "stopping on request");
    (Response::Done { ok: true, message: format!("{} is stopping", group.me.name) }, true)
}

/// Logs every change of this member's state, and every change of term or active.
async fn log_state_changes(group: Arc<Group>) {
    // Woken by changes of state, term, active or membership only (the server half of
    // Raft's metrics), not by every entry committed and applied; by those too while
    // this member catches up, so the end of its catch-up is seen when it happens.
    let mut metrics = group.raft.server_metrics();
    let mut data = group.raft.data_metrics();
    let mut stopped = false;
    let mut last: Option<(ServerState, u64, Option<u64>)> = None;
    // The management API's events and metrics see every change logged here.
    let mut observer = crate::management::events::StateObserver::default();
    loop {
        let m = group.metrics();
        let now = (group.state(), m.current_term, m.current_leader);
        if last.as_ref() != Some(&now) {
            let active = m.current_leader.map(|id| group.name_of(&m, id));
            observer.seen(now.0, now.1, active.clone());
            match &last {
                Some((_, term, _)) if *term != now.1 => {
                    tracing::info!(term = now.1, active = ?active, state = %now.0, light = now.0.light(), "election: new term")
                }
                _ => {}
            }
            if last.as_ref().map(|l| l.0) != Some(now.0) || last.as_ref().map(|l| l.2) != Some(now.2) {
                tracing::info!(state = %now.0, light = now.0.light(), term = now.1, active = ?active, node_id = m.id, "server state");
            }
            last = Some(now);
        }
        if stopped {
            // Raft's core has stopped: what it last said (STOPPED) is logged above.
            return;
        }
        let catching_up = matches!(now.0, ServerState::Initializing | ServerState::PassiveUninitialized);
        // States also change with time (an active not heard from), not only with Raft's metrics.
        tokio::select! {
            changed = metrics.changed() => stopped = changed.is_err(),
            changed = data.changed(), if catching_up => stopped = changed.is_err(),
            _ = tokio::time::sleep(group.election_time() / 4) => {}
        }
    }
}
