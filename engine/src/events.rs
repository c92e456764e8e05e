//! Docker's event stream (`GET /events`): what happened to containers, as
//! `{Type, Action, Actor{ID, Attributes}, scope, time, timeNano}` objects.
//!
//! A ring of the most recent events serves `--since` replay, a broadcast
//! channel the followers. Every event is also appended to
//! `<data-root>/events.jsonl`, read back at start, so replay reaches across
//! engine restarts; the file is rewritten with the ring once it holds four
//! times what the ring does. Events of what happened while berthd was down
//! (exits, restarts) come from the core's event log when it reconnects.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events kept for replay.
const RECENT: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The action, id and image again, in the fields of API 1.21: dockerd
    /// still sends them with container events (image events without
    /// `from`), and `docker events --format '{{.ID}}'` reads `id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
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
    recent: Mutex<Recent>,
}

struct Recent {
    ring: VecDeque<Event>,
    /// The journal, and how many lines it has.
    file: Option<(PathBuf, std::fs::File)>,
    lines: usize,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            live: broadcast::channel(RECENT).0,
            recent: Mutex::new(Recent {
                ring: VecDeque::new(),
                file: None,
                lines: 0,
            }),
        }
    }
}

impl Events {
    /// Events journaled in `path`: the last ones written are replayable.
    pub fn open(path: &Path) -> std::io::Result<Events> {
        let mut ring = VecDeque::new();
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                lines += 1;
                // A torn last line (a crash mid-write) is skipped.
                if let Ok(e) = serde_json::from_str::<Event>(line) {
                    ring.push_back(e);
                    if ring.len() > RECENT {
                        ring.pop_front();
                    }
                }
            }
        }
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)?;
        let events = Events::default();
        *events.recent.lock().unwrap_or_else(|p| p.into_inner()) = Recent {
            ring,
            file: Some((path.to_path_buf(), file)),
            lines,
        };
        Ok(events)
    }

    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let legacy = kind == "container" || kind == "image";
        let ev = Event {
            status: if legacy { action.into() } else { String::new() },
            id: if legacy { id.into() } else { String::new() },
            from: match kind {
                "container" => attributes.get("image").cloned().unwrap_or_default(),
                _ => String::new(),
            },
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
        crate::metrics::METRICS.event();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.ring.push_back(ev.clone());
        if recent.ring.len() > RECENT {
            recent.ring.pop_front();
        }
        recent.journal(&ev);
        let _ = self.live.send(ev);
    }

    /// Clients following the events now (`docker info`'s NEventsListener).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
    }

    /// Retained events at or after `since_nanos`, and a receiver for what
    /// follows, taken together so that nothing falls in between.
    pub fn subscribe(&self, since_nanos: Option<i128>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let backlog = match since_nanos {
            Some(s) => recent
                .ring
                .iter()
                .filter(|e| e.time_nano as i128 >= s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (backlog, self.live.subscribe())
    }
}

impl Recent {
    /// Appends one line; past four rings' worth, rewrites the file with
    /// the ring (write, then rename).
    fn journal(&mut self, ev: &Event) {
        let Some((path, file)) = &mut self.file else {
            return;
        };
        let line = serde_json::to_string(ev).unwrap_or_default() + "\n";
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "writing the event journal");
        }
        self.lines += 1;
        if self.lines < 4 * RECENT {
            return;
        }
        let tmp = path.with_extension("jsonl.tmp");
        let body: String = self
            .ring
            .iter()
            .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
            .collect();
        let rewritten = std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &*path))
            .and_then(|_| std::fs::File::options().append(true).open(&*path));
        match rewritten {
            Ok(f) => {
                *file = f;
                self.lines = self.ring.len();
            }
            Err(e) => tracing::warn!(error = %e, "compacting the event journal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_a_reopen_and_the_journal_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("berth-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        {
            let ev = Events::open(&path).unwrap();
            for i in 0..(4 * RECENT + 10) {
                ev.emit("container", "start", &format!("c{i}"), BTreeMap::new());
            }
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * RECENT, "{lines} lines kept");
        let again = Events::open(&path).unwrap();
        let (backlog, _) = again.subscribe(Some(0));
        assert_eq!(backlog.len(), RECENT);
        assert_eq!(
            backlog.last().unwrap().actor.id,
            format!("c{}", 4 * RECENT + 9)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn container_and_image_events_carry_dockerds_old_fields_first() {
        let ev = Events::default();
        let (_, mut rx) = ev.subscribe(None);
        let attrs = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        ev.emit("container", "die", "abc", attrs("image", "busybox"));
        ev.emit("image", "tag", "sha256:1", attrs("name", "x:latest"));
        ev.emit("network", "create", "n1", attrs("name", "x"));
        let keys = |e: Event| -> Vec<String> {
            let v = serde_json::to_value(&e).unwrap();
            v.as_object().unwrap().keys().cloned().collect()
        };
        // The order is dockerd's (status, id, from, Type, ...), as written.
        let c = rx.try_recv().unwrap();
        assert_eq!(
            (c.status.as_str(), c.id.as_str(), c.from.as_str()),
            ("die", "abc", "busybox")
        );
        assert!(serde_json::to_string(&c)
            .unwrap()
            .starts_with(r#"{"status":"die","id":"abc","from":"busybox","Type""#));
        assert_eq!(
            keys(rx.try_recv().unwrap()).len(),
            8,
            "image: status and id, no from"
        );
        assert!(!keys(rx.try_recv().unwrap()).contains(&"status".to_string()));
    }
}
