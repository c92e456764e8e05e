//! Docker's event stream (`GET /events`): what happened to containers, as
//! `{Type, Action, Actor{ID, Attributes}, scope, time, timeNano}` objects.
//!
//! Events live in memory: a ring of the most recent ones for `--since`
//! replay and a broadcast channel for followers. (Replay across engine
//! restarts is future work: the core's persistent event log already keeps
//! the exits and restarts.)

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for replay.
const RECENT: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

pub struct Events {
    live: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            live: broadcast::channel(RECENT).0,
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let ev = Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back(ev.clone());
        if recent.len() > RECENT {
            recent.pop_front();
        }
        let _ = self.live.send(ev);
    }

    /// Retained events at or after `since_nanos`, and a receiver for what
    /// follows, taken together so that nothing falls in between.
    pub fn subscribe(&self, since_nanos: Option<i128>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let backlog = match since_nanos {
            Some(s) => recent
                .iter()
                .filter(|e| e.time_nano as i128 >= s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (backlog, self.live.subscribe())
    }
}
