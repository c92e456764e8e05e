//! One core's hold on a state directory: the lock that makes it the only
//! core there, the event log and the tasks. A core opens one at start; it
//! gives it up when another core takes over (`handover`), and opens a new
//! one if that successor fails before it serves, exactly as a restarted
//! core would: the state directory holds everything.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::info;

use crate::event_log::EventLog;
use crate::runtimes::Runtimes;
use crate::tasks::{Tasks, Vouched};

#[derive(Clone)]
pub struct Generation {
    pub tasks: Tasks,
    pub events: Arc<EventLog>,
    /// The state directory's lock; dropped (released) on retirement.
    lock: Arc<Mutex<Option<File>>>,
}

/// What a generation is opened from; kept for the whole life of the process.
#[derive(Clone)]
pub struct Setup {
    pub state_dir: PathBuf,
    pub runtimes: Runtimes,
    pub shim: PathBuf,
}

impl Setup {
    pub fn shims(&self) -> crate::shim::Processes {
        crate::shim::Processes {
            binary: self.shim.clone(),
        }
    }
}

impl Generation {
    /// Takes the state directory's lock, opens the event log and adopts the
    /// tasks found there (following their shims, recording exits that
    /// happened meanwhile).
    pub async fn open(setup: &Setup) -> anyhow::Result<Generation> {
        Generation::open_vouched(setup, &Vouched::default()).await
    }

    /// [`Generation::open`] after a census of the shims (a takeover's,
    /// taken before the running core froze).
    pub async fn open_vouched(setup: &Setup, vouched: &Vouched) -> anyhow::Result<Generation> {
        let lock = crate::lock::exclusive(&setup.state_dir.join("core.lock")).map_err(|e| {
            anyhow::anyhow!(
                "another berth-core is using {}: {e}",
                setup.state_dir.display()
            )
        })?;
        let events = Arc::new(EventLog::open(&setup.state_dir)?);
        let tasks = Tasks::new(
            setup.state_dir.clone(),
            setup.runtimes.clone(),
            Arc::new(berth_runtime::CliFactory),
            Arc::new(setup.shims()),
            events.clone(),
        );
        tasks.adopt_vouched(vouched).await;
        Ok(Generation {
            tasks,
            events,
            lock: Arc::new(Mutex::new(Some(lock))),
        })
    }

    /// Gives everything up for a successor: background work stops, the
    /// event log's subscribers are cut off, and the lock is released.
    /// Returns the last event's sequence number, which the successor's log
    /// must continue. Requests must already be held off.
    pub async fn retire(&self) -> u64 {
        let started = std::time::Instant::now();
        self.tasks.retire().await;
        self.events.close();
        let last = self.events.last_seq();
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        info!(
            last_event = last,
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "gave the tasks up"
        );
        last
    }
}
