//! The console's live feed: while anyone watches, once a second this server gathers
//! the whole array's view and recent events (asking the other servers over the group
//! port) and pushes it to every watcher as a server-sent event. One gathering serves
//! all watchers; with none, nothing is gathered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as Extract;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

use super::events::Event;
use super::state::State;
use super::view::ClusterView;

/// How often the view is gathered while someone watches.
pub const LIVE_PERIOD: Duration = Duration::from_millis(1_000);

/// Events each push carries (the newest, across the array).
pub const LIVE_EVENTS: usize = 100;

/// Watchers at once: each holds a connection; more are refused.
pub const WATCHERS_MAX: usize = 64;

/// One push.
#[derive(Debug, Serialize)]
pub struct Frame {
    pub cluster: ClusterView,
    pub events: Vec<Event>,
}

/// The latest frame, for every watcher.
pub struct Feed {
    tx: watch::Sender<Option<Arc<String>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { tx: watch::channel(None).0 }
    }
}

impl Feed {
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<String>>> {
        self.tx.subscribe()
    }
}

/// Gathers and pushes frames while anyone watches; also samples the ops/s rate.
pub async fn run(state: Arc<State>) {
    let feed = &state.feed;
    let mut tick = tokio::time::interval(LIVE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = super::until_stopped(&mut shutdown) => return,
        }
        state.tick();
        if feed.watchers() == 0 {
            continue;
        }
        let (cluster, events) = tokio::join!(super::peer::cluster(&state), super::peer::all_events(&state, LIVE_EVENTS));
        match serde_json::to_string(&Frame { cluster, events }) {
            Ok(text) => {
                feed.tx.send_replace(Some(Arc::new(text)));
            }
            Err(e) => tracing::warn!(error = %e, "management: a live frame could not be encoded"),
        }
    }
}

/// `GET /api/v1/live`: the feed as server-sent events (`event: view`).
pub async fn handler(
    Extract(state): Extract<Arc<State>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, super::error::ApiError> {
    let feed = &state.feed;
    if feed.watchers() >= WATCHERS_MAX {
        return Err(super::error::ApiError::Unavailable(format!("at most {WATCHERS_MAX} live watchers at once")));
    }
    let mut rx = feed.subscribe();
    // A watcher gets the latest frame at once, if there is one.
    rx.mark_changed();
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold((rx, shutdown), |(mut rx, mut shutdown)| async move {
        loop {
            tokio::select! {
                changed = rx.changed() => changed.ok()?,
                _ = super::until_stopped(&mut shutdown) => return None,
            }
            let frame = rx.borrow_and_update().clone();
            if let Some(text) = frame {
                return Some((Ok(SseEvent::default().event("view").data(text.as_str())), (rx, shutdown)));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
