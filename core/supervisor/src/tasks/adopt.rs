//! A core that starts re-reads every task directory: running shims are
//! followed again, exits that happened while it was away are recorded, and
//! what a cut-short create or delete left behind is removed.

use std::path::{Path, PathBuf};

use berth_proto::shim::files;
use berth_proto::TaskStatus;
use tracing::{info, warn};

use super::record::TaskRecord;
use super::{blocking, key, Tasks, RUNTIME_LOG};
use crate::shim::read_pid;

/// The runtime binary and root of a task, written before its shim starts, so
/// that a task without a record can still be deleted from the runtime.
pub(super) const RUNTIME_FILE: &str = "runtime";

impl Tasks {
    pub async fn adopt_existing(&self) {
        let Ok(namespaces) = std::fs::read_dir(&self.inner.root) else {
            return;
        };
        for ns in namespaces.flatten() {
            let Ok(entries) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match TaskRecord::read(&path) {
                    Some(rec) => self.adopt(rec).await,
                    None => {
                        let id = entry.file_name().to_string_lossy().into_owned();
                        self.remove_unrecorded(&path, &id).await;
                    }
                }
            }
        }
    }

    async fn adopt(&self, rec: TaskRecord) {
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
        if self.inner.shims.is_shim_of(rec.shim_pid, &rec.id) {
            info!(id = %rec.id, shim_pid = rec.shim_pid, "re-adopted shim");
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
