//! The other servers, over the group port: this server asks each member of every
//! stripe for its report (its details, clients or events) with a
//! `Request::Management` carrying a [`Query`], and answers theirs the same way. Any
//! server therefore answers for the whole array. A member that does not answer is
//! shown red with the reason; a voter (which has no management port of its own)
//! answers the plain `Request::Status` that `tandem status` uses.

use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::events::Event;
use super::state::State;
use super::view::{self, ClientReport, ClusterView, MemberLag, ServerReport, StripeView};
use crate::replication::group;
use crate::replication::stripe::{Member, ServerState, StripeLayout};
use crate::replication::wire::{Request, Response, StatusReport};

/// How long one member may take to answer: a paused or cut-off member must not
/// hold up the view of the others (they are all asked at once).
pub const PEER_TIMEOUT: Duration = Duration::from_millis(1_000);

/// What one server asks another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Query {
    Server,
    Clients,
    Events { since: u64, limit: usize },
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Server(Box<ServerReport>),
    Clients(Vec<ClientReport>),
    Events(Vec<Event>),
    Error(String),
}

/// Most events one answer carries.
pub const EVENTS_PER_ANSWER_MAX: usize = super::events::EVENTS_MAX;

/// This server's answer to another's query (the group port's management hook).
pub fn answer(state: &State, query: &[u8]) -> Vec<u8> {
    let answer = match serde_json::from_slice::<Query>(query) {
        Ok(Query::Server) => Answer::Server(Box::new(state.local_report())),
        Ok(Query::Clients) => Answer::Clients(state.local_clients()),
        Ok(Query::Events { since, limit }) => Answer::Events(super::events::global().since(since, limit.min(EVENTS_PER_ANSWER_MAX))),
        Err(e) => Answer::Error(format!("unreadable management query: {e}")),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// Asks `member` of `layout` one query; the reason when it cannot be asked.
pub async fn ask(state: &State, layout: &StripeLayout, member: &Member, query: &Query) -> Result<Answer, String> {
    if layout.secret.is_none() {
        return Err("no cluster.secret: servers serve no group port".into());
    }
    let body = serde_json::to_vec(query).map_err(|e| e.to_string())?;
    let identity = group::identity(layout, &format!("management@{}", state.me()));
    match group::request(&identity, None, &member.group_addr(), &Request::Management { query: body }, PEER_TIMEOUT).await {
        Ok(Response::Management(bytes)) => serde_json::from_slice(&bytes).map_err(|e| format!("unreadable answer: {e}")),
        Ok(Response::Error(why)) => Ok(Answer::Error(why)),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

/// The report of one member, wherever it runs.
pub async fn report(state: &State, layout: &StripeLayout, member: &Member) -> ServerReport {
    if layout.stripe == state.stripe && member.name == state.me() {
        return state.local_report();
    }
    let unreachable = |why: String| ServerReport::unreachable(&member.name, &layout.stripe, member.is_voter(), &member.host, why);
    match ask(state, layout, member, &Query::Server).await {
        Ok(Answer::Server(report)) => *report,
        // A voter (or a server still loading its data) answers only `tandem status`.
        Ok(_) => status_report(state, layout, member).await.unwrap_or_else(unreachable),
        Err(why) => unreachable(why),
    }
}

async fn status_report(state: &State, layout: &StripeLayout, member: &Member) -> Result<ServerReport, String> {
    let identity = group::identity(layout, &format!("management@{}", state.me()));
    match group::request(&identity, None, &member.group_addr(), &Request::Status, PEER_TIMEOUT).await {
        Ok(Response::Status(s)) => Ok(from_status(layout, member, &s)),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

/// A report from what `tandem status` gets: state, Raft indexes, lags.
fn from_status(layout: &StripeLayout, member: &Member, s: &StatusReport) -> ServerReport {
    let mut report = ServerReport::empty(&member.name, &layout.stripe, member.is_voter(), &member.host);
    report.reachable = true;
    report.client_port = member.client_port;
    report.set_state(ServerState::parse(&s.state).unwrap_or(ServerState::Stopped));
    report.node_id = Some(s.node_id);
    report.term = Some(s.term);
    report.commit_index = s.commit_index;
    report.applied_index = s.applied_index;
    report.last_log_index = s.last_log_index;
    report.purged_index = s.purged_index;
    report.active = (!s.active.is_empty()).then(|| s.active.clone());
    report.members =
        s.members.iter().map(|m| MemberLag { name: m.name.clone(), node_id: m.node_id, voting: m.voting, lag: m.lag }).collect();
    report
}

/// The whole array: every member of every stripe asked at once.
pub async fn cluster(state: &State) -> ClusterView {
    let count = state.layouts.len();
    let stripes = join_all(state.layouts.iter().enumerate().map(|(i, layout)| stripe(state, layout, i, count))).await;
    ClusterView {
        name: state.options.config.cluster.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        answered_by: state.me().to_string(),
        time_ms: crate::clock::wall_ms(),
        stripes,
    }
}

async fn stripe(state: &State, layout: &StripeLayout, index: usize, count: usize) -> StripeView {
    let servers = join_all(layout.members.iter().map(|m| report(state, layout, m))).await;
    let mut view = StripeView {
        name: layout.stripe.clone(),
        slots: view::slot_ranges(index, count),
        active: None,
        term: None,
        commit_index: None,
        servers,
    };
    view::summarize(&mut view);
    view
}

/// The stripe `name` alone (its members asked at once).
pub async fn one_stripe(state: &State, name: &str) -> Option<StripeView> {
    let index = state.layouts.iter().position(|l| l.stripe == name)?;
    Some(stripe(state, &state.layouts[index], index, state.layouts.len()).await)
}

/// The member called `name` and its stripe's layout.
pub fn find<'a>(state: &'a State, name: &str) -> Option<(&'a StripeLayout, &'a Member)> {
    state.layouts.iter().find_map(|l| Some((l, l.member(name)?)))
}

/// The clients of server `name`.
pub async fn clients(state: &State, layout: &StripeLayout, member: &Member) -> Result<Vec<ClientReport>, String> {
    if member.name == state.me() {
        return Ok(state.local_clients());
    }
    match ask(state, layout, member, &Query::Clients).await? {
        Answer::Clients(list) => Ok(list),
        Answer::Error(why) => Err(why),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The events of server `name` after `since`.
pub async fn events(state: &State, layout: &StripeLayout, member: &Member, since: u64, limit: usize) -> Result<Vec<Event>, String> {
    if member.name == state.me() {
        return Ok(super::events::global().since(since, limit));
    }
    match ask(state, layout, member, &Query::Events { since, limit }).await? {
        Answer::Events(list) => Ok(list),
        Answer::Error(why) => Err(why),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The newest `limit` events of every server that answers, oldest first.
pub async fn all_events(state: &State, limit: usize) -> Vec<Event> {
    let members: Vec<(&StripeLayout, &Member)> =
        state.layouts.iter().flat_map(|l| l.members.iter().filter(|m| !m.is_voter()).map(move |m| (l, m))).collect();
    let lists = join_all(members.iter().map(|(l, m)| events(state, l, m, 0, limit))).await;
    let mut all: Vec<Event> = lists.into_iter().filter_map(Result::ok).flatten().collect();
    all.sort_by(|a, b| (a.time_ms, &a.server, a.seq).cmp(&(b.time_ms, &b.server, b.seq)));
    let skip = all.len().saturating_sub(limit);
    all.split_off(skip)
}
