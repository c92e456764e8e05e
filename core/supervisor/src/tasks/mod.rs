//! Tasks: one OCI bundle and one shim each, grouped in namespaces.
//!
//! A task's directory, `<state-dir>/tasks/<namespace>/<id>/`, is the whole
//! truth about it: `task.json` ([`record`]), `bundle/config.json`, and the
//! shim's files (`shim.pid`, `init.pid`, sockets, `exit.json`). The
//! in-memory map is a cache rebuilt from those directories at start-up
//! ([`adopt`]), which is how a restarted core re-adopts running shims.
//!
//! The modules follow a task's life: [`lifecycle`] (create, start, signals,
//! pause, update, delete), [`exits`] (an exit recorded, a restart with
//! back-off), [`health`] (the check loop) and [`adopt`]. Shims are reached
//! through [`Shims`] and the OCI runtime through a [`Factory`], both given
//! to [`Tasks::new`], so the unit tests (`tests.rs`) run every transition
//! over fakes.

mod adopt;
mod exits;
mod health;
mod lifecycle;
mod record;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_proto::TaskInfo;
use berth_runtime::{Factory, Runtime};

use crate::event_log::EventLog;
use crate::runtimes::Runtimes;
use crate::shim::Shims;
use crate::{ids, Error};

pub use adopt::Vouched;
use record::TaskRecord;

type Key = (String, String);

#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    shims: Arc<dyn Shims>,
    runtimes: Runtimes,
    runtime: Arc<dyn Factory>,
    events: Arc<EventLog>,
    tasks: Mutex<HashMap<Key, TaskRecord>>,
    /// Deletions still cleaning up in the background (runtime delete, task
    /// directory); a create of the same id waits for them.
    deleting: Mutex<HashMap<Key, tokio::task::JoinHandle<()>>>,
    /// Set once another core took these tasks over (see [`Tasks::retire`]).
    /// Background work (exits, restarts, health results) holds it for
    /// reading while it changes anything, so retiring waits for work in
    /// progress and nothing starts afterwards.
    retired: tokio::sync::RwLock<bool>,
}

impl Tasks {
    pub fn new(
        state_dir: PathBuf,
        runtimes: Runtimes,
        runtime: Arc<dyn Factory>,
        shims: Arc<dyn Shims>,
        events: Arc<EventLog>,
    ) -> Tasks {
        Tasks {
            inner: Arc::new(Inner {
                root: state_dir.join("tasks"),
                shims,
                runtimes,
                runtime,
                events,
                tasks: Mutex::new(HashMap::new()),
                deleting: Mutex::new(HashMap::new()),
                retired: tokio::sync::RwLock::new(false),
            }),
        }
    }

    pub fn runtimes(&self) -> &Runtimes {
        &self.inner.runtimes
    }

    pub fn list(&self, ns: &str) -> Result<Vec<TaskInfo>, Error> {
        ids::check("namespace", ns)?;
        Ok(self
            .map()
            .values()
            .filter(|r| r.namespace == ns)
            .map(TaskRecord::info)
            .collect())
    }

    pub fn inspect(&self, ns: &str, id: &str) -> Result<TaskInfo, Error> {
        Ok(self.get(ns, id)?.info())
    }

    /// Waits for deletions still cleaning up in the background (at shutdown).
    pub async fn drain_deletes(&self) {
        let handles: Vec<_> = lock(&self.inner.deleting).drain().map(|(_, h)| h).collect();
        for h in handles {
            let _ = h.await;
        }
    }

    /// Gives the tasks up to another core: waits for the background work
    /// that is changing something, lets no more start, and waits for the
    /// deletions still cleaning up. Exits that happen from now on are left
    /// to the successor, which finds them when it adopts the tasks. The
    /// API's requests are held off by the caller (`serving`), not here.
    pub async fn retire(&self) {
        *self.inner.retired.write().await = true;
        let deleting = lock(&self.inner.deleting).len();
        let started = std::time::Instant::now();
        self.drain_deletes().await;
        tracing::info!(
            deleting,
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "deletions finished"
        );
    }

    /// Runs background work (an exit being recorded, a restart, a health
    /// result) unless the tasks were given up; `None` then. Only spawned
    /// tasks call this, never code that an API request runs: those are
    /// held off by the caller, and taking the lock twice could deadlock
    /// behind a waiting [`Tasks::retire`].
    async fn in_background<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        let retired = self.inner.retired.read().await;
        if *retired {
            return None;
        }
        Some(work.await)
    }

    fn dir(&self, ns: &str, id: &str) -> PathBuf {
        self.inner.root.join(ns).join(id)
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Key, TaskRecord>> {
        lock(&self.inner.tasks)
    }

    fn get(&self, ns: &str, id: &str) -> Result<TaskRecord, Error> {
        ids::check("namespace", ns)?;
        ids::check("task id", id)?;
        self.map()
            .get(&key(ns, id))
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Stores a whole record. Writing under the map's lock keeps the file
    /// and the map in the same order as the changes.
    fn save(&self, rec: &TaskRecord) {
        let mut map = self.map();
        rec.write(&self.dir(&rec.namespace, &rec.id));
        map.insert(key(&rec.namespace, &rec.id), rec.clone());
    }

    /// Changes a record in place under the map's lock and stores it, so that
    /// concurrent changes (a start and the exit of a very short process)
    /// cannot overwrite each other. `None` when the task is gone.
    fn update<T>(
        &self,
        ns: &str,
        id: &str,
        change: impl FnOnce(&mut TaskRecord) -> T,
    ) -> Option<(TaskRecord, T)> {
        let mut map = self.map();
        let rec = map.get_mut(&key(ns, id))?;
        let out = change(rec);
        let copy = rec.clone();
        copy.write(&self.dir(ns, id));
        Some((copy, out))
    }

    /// The task's runtime, logging into `log` in the task's directory.
    fn runtime(&self, rec: &TaskRecord, log: &str) -> Box<dyn Runtime> {
        self.inner.runtime.open(
            &rec.runtime_path,
            &rec.runtime_root,
            &self.dir(&rec.namespace, &rec.id).join(log),
        )
    }
}

/// The runtime's own log in a task directory (its error messages).
const RUNTIME_LOG: &str = "runtime.log";

/// Runs runtime calls on a blocking thread: each is a command run to its end.
async fn blocking<T: Send + 'static>(
    rt: Box<dyn Runtime>,
    call: impl FnOnce(&dyn Runtime) -> Result<T, berth_runtime::Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || call(rt.as_ref()))
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?
        .map_err(|e| Error::Runtime(e.to_string()))
}

fn key(ns: &str, id: &str) -> Key {
    (ns.to_string(), id.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now() -> String {
    berth_proto::timefmt::now()
}
