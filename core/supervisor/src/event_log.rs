//! The core's event log: every start, exit and delete with a sequence number
//! that only grows, kept in `events.jsonl` in the state directory so that an
//! engine that was away (or a core that restarted) resumes exactly where it
//! left off. The `epoch` file names this log; a new log (after the exec-root
//! was wiped, as by a reboot) gets a new epoch. The file is rewritten with
//! the retained events once it holds twice as many: it lives on the
//! exec-root, a tmpfs, and a host that runs a million short containers
//! would otherwise keep a gigabyte of old events in memory.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use berth_proto::{Event, EventKind};
use tokio::sync::broadcast;

/// Events kept for replay; an engine further behind than this re-reads task
/// state instead (it does so at every connect anyway).
const RETAIN: usize = 10_000;

pub struct EventLog {
    epoch: String,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Event>,
    /// Set when this core hands the log to a successor: subscribers' streams
    /// end, and they subscribe again (to the successor) with their cursor.
    closed: tokio::sync::watch::Sender<bool>,
}

struct Inner {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Lines in the file (torn ones included).
    lines: usize,
    recent: std::collections::VecDeque<Event>,
    next_seq: u64,
}

impl Inner {
    /// Rewrites the file with the retained events once it holds twice as
    /// many lines; written aside and renamed, so a kill meanwhile leaves
    /// the old file or the new one.
    fn compact_if_due(&mut self) {
        if self.lines < 2 * RETAIN {
            return;
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let body: String = self
            .recent
            .iter()
            .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
            .collect();
        let rewritten = std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .and_then(|_| std::fs::File::options().append(true).open(&self.path));
        match rewritten {
            Ok(f) => {
                self.file = f;
                self.lines = self.recent.len();
            }
            Err(e) => tracing::warn!(error = %e, "compacting the event log"),
        }
    }
}

impl EventLog {
    pub fn open(state_dir: &Path) -> std::io::Result<EventLog> {
        let epoch_path = state_dir.join("epoch");
        let epoch = match std::fs::read_to_string(&epoch_path) {
            Ok(e) if !e.trim().is_empty() => e.trim().to_string(),
            _ => {
                let e = format!("{:016x}", rand::random::<u64>());
                std::fs::write(&epoch_path, &e)?;
                e
            }
        };
        let path = state_dir.join("events.jsonl");
        let mut recent = std::collections::VecDeque::new();
        let mut next_seq = 1;
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(&path) {
            lines = text.lines().count();
            // A line cut short by a kill during the write is skipped.
            for ev in text
                .lines()
                .filter_map(|l| serde_json::from_str::<Event>(l).ok())
            {
                next_seq = ev.seq + 1;
                recent.push_back(ev);
                if recent.len() > RETAIN {
                    recent.pop_front();
                }
            }
        }
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&path)?;
        let (live, _) = broadcast::channel(1024);
        let (closed, _) = tokio::sync::watch::channel(false);
        Ok(EventLog {
            epoch,
            inner: Mutex::new(Inner {
                path,
                file,
                lines,
                recent,
                next_seq,
            }),
            live,
            closed,
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The sequence number of the last event appended (0 for none).
    pub fn last_seq(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_seq
            - 1
    }

    /// Ends every subscriber's stream: another core continues this log.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`EventLog::close`] was called (at once if it was).
    pub fn on_close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Appends an event, assigning its sequence number, and publishes it.
    pub fn append(
        &self,
        namespace: &str,
        id: &str,
        kind: EventKind,
        pid: u32,
        exit_code: Option<i32>,
        time: String,
    ) -> Event {
        self.append_event(Event {
            seq: 0,
            epoch: String::new(),
            namespace: namespace.to_string(),
            id: id.to_string(),
            kind,
            pid,
            exit_code,
            oom_killed: false,
            time,
            restarting: false,
            restart_count: 0,
            health_status: String::new(),
        })
    }

    /// Appends a prepared event; its `seq` and `epoch` are assigned here.
    pub fn append_event(&self, mut ev: Event) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ev.seq = inner.next_seq;
        ev.epoch = self.epoch.clone();
        inner.next_seq += 1;
        let mut line = serde_json::to_string(&ev).unwrap_or_default();
        line.push('\n');
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "writing event log");
        }
        inner.lines += 1;
        inner.recent.push_back(ev.clone());
        if inner.recent.len() > RETAIN {
            inner.recent.pop_front();
        }
        inner.compact_if_due();
        let _ = self.live.send(ev.clone());
        ev
    }

    /// Events after `after` that are still retained, plus a receiver for the
    /// ones to come; taken under one lock so that nothing falls in between.
    pub fn subscribe(&self, after: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let backlog = inner
            .recent
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        (backlog, self.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_survives_reopen_and_replays_after_cursor() {
        let dir = std::env::temp_dir().join(format!("berth-evlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = EventLog::open(&dir).unwrap();
        let epoch = log.epoch().to_string();
        log.append("ns", "a", EventKind::Start, 10, None, "t".into());
        log.append("ns", "a", EventKind::Exit, 10, Some(3), "t".into());
        drop(log);
        let log = EventLog::open(&dir).unwrap();
        assert_eq!(log.epoch(), epoch);
        let ev = log.append("ns", "b", EventKind::Start, 11, None, "t".into());
        assert_eq!(ev.seq, 3);
        let (backlog, _) = log.subscribe(1);
        assert_eq!(
            backlog.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(backlog[0].exit_code, Some(3));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_stays_bounded_and_keeps_its_sequence() {
        let dir = std::env::temp_dir().join(format!("berth-evlog-bound-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = EventLog::open(&dir).unwrap();
        let total = 2 * RETAIN as u64 + 7;
        for i in 0..total {
            log.append(
                "ns",
                &format!("c{i}"),
                EventKind::Start,
                1,
                None,
                "t".into(),
            );
        }
        drop(log);
        let lines = std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 2 * RETAIN, "{lines} lines kept");
        let log = EventLog::open(&dir).unwrap();
        assert_eq!(
            log.append("ns", "next", EventKind::Start, 1, None, "t".into())
                .seq,
            total + 1
        );
        let (backlog, _) = log.subscribe(total - 2);
        assert_eq!(
            backlog.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            vec![
                format!("c{}", total - 2).as_str(),
                format!("c{}", total - 1).as_str(),
                "next"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
