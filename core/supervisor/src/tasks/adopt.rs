//! A core that starts re-reads every task directory: running shims are
//! followed again, exits that happened while it was away are recorded, and
//! what a cut-short create or delete left behind is removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_proto::shim::files;
use berth_proto::TaskStatus;
use tracing::{debug, info, warn};

use super::record::TaskRecord;
use super::{blocking, key, Tasks, RUNTIME_LOG};
use crate::shim::{read_pid, Shims};

/// The runtime binary and root of a task, written before its shim starts, so
/// that a task without a record can still be deleted from the runtime.
pub(super) const RUNTIME_FILE: &str = "runtime";

/// Shims checked to be the shims of their tasks before a takeover froze
/// the running core (task id and shim pid): checking a command line costs
/// tens of microseconds a task, which a successor spends before requests
/// are held rather than while they are.
#[derive(Debug, Default)]
pub struct Vouched(HashSet<(String, i32)>);

impl Vouched {
    /// Reads the task records under `state_dir` as they are now (the
    /// running core still owns them, nothing is changed) and checks the
    /// shims of those that run.
    pub fn census(state_dir: &Path, shims: &dyn Shims) -> Vouched {
        let mut found = HashSet::new();
        for dir in task_dirs(&state_dir.join("tasks")) {
            if let Some(rec) = TaskRecord::read(&dir) {
                if rec.status != TaskStatus::Stopped && shims.is_shim_of(rec.shim_pid, &rec.id) {
                    found.insert((rec.id, rec.shim_pid));
                }
            }
        }
        Vouched(found)
    }
}

/// Every task directory below `root` (one folder per namespace).
fn task_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(namespaces) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    namespaces
        .flatten()
        .filter_map(|ns| std::fs::read_dir(ns.path()).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .collect()
}

impl Tasks {
    pub async fn adopt_existing(&self) {
        self.adopt_vouched(&Vouched::default()).await;
    }

    /// [`Tasks::adopt_existing`], trusting what `vouched` checked already
    /// as long as the pid still is a shim.
    pub async fn adopt_vouched(&self, vouched: &Vouched) {
        let started = std::time::Instant::now();
        let dirs = task_dirs(&self.inner.root);
        for path in &dirs {
            match TaskRecord::read(path) {
                Some(rec) => self.adopt(rec, vouched).await,
                None => {
                    let id = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.remove_unrecorded(path, &id).await;
                }
            }
        }
        // A takeover holds the API's requests for this long (and more).
        info!(
            tasks = dirs.len(),
            vouched = vouched.0.len(),
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "adopted the tasks found"
        );
    }

    async fn adopt(&self, rec: TaskRecord, vouched: &Vouched) {
        self.map().insert(key(&rec.namespace, &rec.id), rec.clone());
        if rec.status == TaskStatus::Stopped {
            if rec.restarting {
                // The previous core died between an exit and its restart.
                let this = self.clone();
                tokio::spawn(async move {
                    let restart = this.restart(&rec.namespace, &rec.id);
                    this.in_background(restart).await
                });
            }
            return;
        }
        let shims = &self.inner.shims;
        let alive = if vouched.0.contains(&(rec.id.clone(), rec.shim_pid)) {
            shims.is_a_shim(rec.shim_pid)
        } else {
            shims.is_shim_of(rec.shim_pid, &rec.id)
        };
        if alive {
            debug!(id = %rec.id, shim_pid = rec.shim_pid, "re-adopted shim");
            self.watch(rec.namespace.clone(), rec.id.clone(), rec.shim_pid);
            if rec.status == TaskStatus::Running {
                self.begin_health_checks(&rec);
            }
        } else {
            self.on_shim_exit(&rec.namespace, &rec.id).await;
        }
    }

    /// A create or a deletion that a core restart interrupted: nobody knows
    /// this task, so its shim (if any) and its runtime state go.
    async fn remove_unrecorded(&self, dir: &Path, id: &str) {
        warn!(dir = %dir.display(), "removing task directory without a record");
        if let Some(shim_pid) = read_pid(&dir.join(files::SHIM_PID)) {
            if self.inner.shims.is_shim_of(shim_pid, id) {
                self.inner.shims.kill(shim_pid);
            }
        }
        if let Some((runtime, root)) = leftover_runtime(dir) {
            let rt = self
                .inner
                .runtime
                .open(&runtime, &root, &dir.join(RUNTIME_LOG));
            let target = id.to_string();
            let _ = blocking(rt, move |rt| {
                let _ = rt.kill(&target, 9, true);
                rt.delete(&target)
            })
            .await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The runtime a half-created or half-deleted task used.
fn leftover_runtime(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(dir.join(RUNTIME_FILE)).ok()?;
    let mut lines = text.lines();
    Some((PathBuf::from(lines.next()?), PathBuf::from(lines.next()?)))
}
