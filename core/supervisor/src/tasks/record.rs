//! `task.json`: what the core keeps of one task, and what it tells of it.

use std::path::{Path, PathBuf};

use berth_proto::shim::{self as contract, sockets};
use berth_proto::{Event, EventKind, RestartPolicy, TaskInfo, TaskStatus};
use serde::{Deserialize, Serialize};
use tracing::warn;

pub(super) const FILE: &str = "task.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TaskRecord {
    pub id: String,
    pub namespace: String,
    pub status: TaskStatus,
    pub runtime: String,
    pub runtime_path: PathBuf,
    pub runtime_root: PathBuf,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub shim_pid: i32,
    /// Prefix of the shim's sockets, short enough for a unix socket path.
    #[serde(default)]
    pub socket_base: PathBuf,
    /// What the shim was started with, to start it again on a restart.
    #[serde(default)]
    pub log_path: String,
    #[serde(default)]
    pub log_max_size: u64,
    #[serde(default)]
    pub log_max_files: u32,
    #[serde(default)]
    pub log_format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<contract::Syslog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journald: Option<contract::Journald>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fluentd: Option<contract::Fluentd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gelf: Option<contract::Gelf>,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub tty: bool,
    /// An exec task: the task whose container the process runs in.
    #[serde(default)]
    pub exec_in: Option<String>,
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    #[serde(default)]
    pub restart_count: u32,
    /// A user stopped the task: its restart policy no longer applies.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Exited, and waiting for its restart.
    #[serde(default)]
    pub restarting: bool,
    /// When the process last started, in seconds since the epoch (for back-off).
    #[serde(default)]
    pub started_unix: i64,
    #[serde(default)]
    pub health_check: Option<berth_proto::HealthCheck>,
    #[serde(default)]
    pub health: Option<berth_proto::HealthState>,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Frozen by `pause`; cleared by `resume` and at exit.
    #[serde(default)]
    pub paused: bool,
    /// The last exit was the kernel's OOM killer's doing.
    #[serde(default)]
    pub oom_killed: bool,
}

impl TaskRecord {
    /// Writes `task.json` into the task directory `dir` (write, then rename).
    pub fn write(&self, dir: &Path) {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        if let Err(e) =
            std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, dir.join(FILE)))
        {
            warn!(id = %self.id, error = %e, "saving task record");
        }
    }

    /// None when there is no record (a create or delete was cut short).
    pub fn read(dir: &Path) -> Option<TaskRecord> {
        let raw = std::fs::read(dir.join(FILE)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    pub fn info(&self) -> TaskInfo {
        let attach = if self.status == TaskStatus::Stopped {
            String::new()
        } else {
            contract::socket(&self.socket_base, sockets::ATTACH)
                .display()
                .to_string()
        };
        TaskInfo {
            id: self.id.clone(),
            namespace: self.namespace.clone(),
            status: self.status,
            pid: self.pid,
            exit_code: self.exit_code,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            oom_killed: self.oom_killed,
            attach_socket: attach,
            runtime: self.runtime.clone(),
            restart_count: self.restart_count,
            restarting: self.restarting,
            health: self.health.clone(),
            exec_in: self.exec_in.clone(),
            paused: self.paused,
        }
    }

    /// The event of this record's last exit.
    pub fn exit_event(&self) -> Event {
        Event {
            seq: 0,
            epoch: String::new(),
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            kind: EventKind::Exit,
            pid: self.pid,
            exit_code: self.exit_code,
            oom_killed: self.oom_killed,
            time: self.finished_at.clone(),
            restarting: self.restarting,
            restart_count: self.restart_count,
            health_status: String::new(),
        }
    }

    /// The event of this record's last start.
    pub fn start_event(&self) -> Event {
        Event {
            kind: EventKind::Start,
            exit_code: None,
            time: self.started_at.clone(),
            restarting: false,
            ..self.exit_event()
        }
    }
}
