//! The protocol between `berthd` (the engine) and `berth-core` (the supervisor).
//!
//! HTTP/1.1 with JSON bodies over the core's unix socket, so it can be read with
//! `curl --unix-socket`. Every path starts with `/v{N}` where N is the protocol
//! version the caller speaks; the core answers every version from
//! [`MIN_VERSION`] to [`VERSION`]. The written form is `api-spec/core.yaml`.
//!
//! Rules for changing this file: add fields with `#[serde(default)]`, never
//! rename or reuse one; retire a field by leaving it in place, documented as
//! retired. A change that old engines cannot ignore bumps [`VERSION`].

#![deny(unsafe_code)]

use serde::{Deserialize, Serialize};

pub mod attach;
pub mod cri_log;
pub mod json_log;
pub mod local_log;
pub mod locate;
pub mod notify;
pub mod os_error;
pub mod priority;
pub mod shim;
pub mod timefmt;

/// The protocol version this build speaks natively.
///
/// History: 1, the first. 2 adds restart policies and health checks carried
/// out by the core (`CreateTaskRequest::restart` and `health`,
/// `KillRequest::stop`, `Event::restarting`, `TaskInfo::restart_count` and
/// `health`, `EventKind::Health`). A version-1 engine never sends them and
/// is never sent `health` events. 3 adds exec tasks
/// (`CreateTaskRequest::exec_in`): a process started in a running task's
/// container by a shim of its own. 4 adds pause, resume and update of a
/// running task (`UpdateTaskRequest`, `TaskInfo::paused`). 5 adds the
/// `local` log format (`CreateTaskRequest::log_format`); an older core
/// would write json-file where the engine reads `local`. 6 adds sending
/// each line to syslog or journald (`CreateTaskRequest::syslog`,
/// `journald`), which an older core would drop. 7 adds the same for
/// fluentd and GELF receivers (`CreateTaskRequest::fluentd`, `gelf`). 8
/// adds the CRI's log format (`log_format` "cri"), which an older core
/// would refuse.
pub const VERSION: u32 = 8;
/// The oldest protocol version this build still serves (core) or accepts (engine).
pub const MIN_VERSION: u32 = 1;

/// `GET /handshake` (unversioned, so that any two builds can compare notes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    /// Oldest protocol version the core serves.
    pub min_version: u32,
    /// Newest protocol version the core serves.
    pub max_version: u32,
    /// The core's build version (crate version), for `docker info` and logs.
    pub core_version: String,
    /// "ok" when the core can run containers.
    pub health: String,
    /// The runtime the core uses when a request names none, as a name or path.
    pub default_runtime: String,
    /// Runtimes the core found working on this host, by name.
    #[serde(default)]
    pub runtimes: Vec<RuntimeInfo>,
    /// Identifies the core's event log; it changes when the log starts anew
    /// (for example after a reboot cleared the exec-root), which tells the
    /// engine that its stored cursor no longer applies.
    pub event_epoch: String,
    /// The core's process id: an upgrade knows by it that a new core serves.
    #[serde(default)]
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub name: String,
    pub path: String,
}

/// Picks the version both sides speak, or `None` when the ranges do not overlap.
pub fn negotiate(ours: (u32, u32), theirs: (u32, u32)) -> Option<u32> {
    let hi = ours.1.min(theirs.1);
    let lo = ours.0.max(theirs.0);
    (hi >= lo).then_some(hi)
}

/// `POST /v1/namespaces/{ns}/tasks`: write the bundle, start a shim and let it
/// run `<runtime> create`. The process is created but not started, so that
/// the caller can attach before any output is produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTaskRequest {
    pub id: String,
    /// The OCI runtime spec (config.json) as JSON; `root.path` must be absolute.
    pub spec: serde_json::Value,
    /// Where the shim appends the container's output, in Docker's json-file format.
    /// Empty: output is not logged (log driver "none").
    #[serde(default)]
    pub log_path: String,
    /// Since version 4: rotate the log when it reaches this many bytes
    /// (0: never), keeping at most `log_max_files` files in all (Docker's
    /// json-file `max-size` and `max-file`).
    #[serde(default)]
    pub log_max_size: u64,
    #[serde(default)]
    pub log_max_files: u32,
    /// Since version 5: how the log is written: "local" (see [`local_log`]),
    /// since version 8 "cri" (see [`cri_log`]), or, when empty, Docker's
    /// json-file.
    #[serde(default)]
    pub log_format: String,
    /// Keep a pipe to the process's stdin open for attach clients.
    #[serde(default)]
    pub stdin: bool,
    /// Close the process's stdin when the first attach client closes its input.
    #[serde(default)]
    pub stdin_once: bool,
    /// Allocate a terminal (the spec's `process.terminal` must agree).
    #[serde(default)]
    pub tty: bool,
    /// Runtime name (`runc`, `crun`) or absolute path; empty for the core's default.
    #[serde(default)]
    pub runtime: String,
    /// Since version 2: restart the process when it exits, per this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Since version 2: run this check inside the container while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Since version 3: an exec task. The process runs in this (running)
    /// task's container, and `spec` is an OCI *process* (config.json's
    /// `process`), not a whole spec. It starts on `start`, like a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_in: Option<String>,
    /// Since version 6: the shim also sends every line to this syslog
    /// receiver (Docker's syslog driver); `log_path` is then the local
    /// cache `docker logs` reads (dual logging), in the `local` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<shim::Syslog>,
    /// Since version 6: the same for journald (Docker's journald driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journald: Option<shim::Journald>,
    /// Since version 7: the same for a fluentd receiver (forward protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fluentd: Option<shim::Fluentd>,
    /// Since version 7: the same for a GELF receiver (Graylog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gelf: Option<shim::Gelf>,
}

/// A health check (Docker's HEALTHCHECK), run by the core with the
/// runtime's `exec`, so it goes on while the engine is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The command, as argv (CMD-SHELL already turned into `/bin/sh -c`).
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures that make the task unhealthy.
    pub retries: u32,
    /// Failures in this time after start do not count.
    #[serde(default)]
    pub start_period_ms: u64,
}

/// The outcome of the checks so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// starting, healthy or unhealthy
    pub status: String,
    pub failing_streak: u32,
    /// The last results, oldest first (at most five).
    #[serde(default)]
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// When the core restarts a task's process after it exits (Docker's
/// `--restart`). A task stopped with `KillRequest::stop` is not restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most `max_retries` times (0: no limit).
    OnFailure {
        #[serde(default)]
        max_retries: u32,
    },
}

impl RestartPolicy {
    /// Whether a process that exited with `code` after `restarts` restarts
    /// should be started again (`stopped`: a user stopped it).
    pub fn should_restart(self, code: i32, restarts: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (max_retries == 0 || restarts < max_retries)
            }
        }
    }
}

/// The state of one task as the core knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: String,
    pub namespace: String,
    pub status: TaskStatus,
    /// The container's init process as seen from the host, 0 when none.
    pub pid: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339 timestamps with nanoseconds, empty when not reached yet.
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    /// Set when the process was killed by the kernel's OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// The shim's attach socket (see [`attach`]); empty when the task has exited.
    #[serde(default)]
    pub attach_socket: String,
    /// The runtime that runs the task.
    #[serde(default)]
    pub runtime: String,
    /// Since version 2: how often the core restarted the process.
    #[serde(default)]
    pub restart_count: u32,
    /// Since version 2: stopped, and about to be started again by its policy.
    #[serde(default)]
    pub restarting: bool,
    /// Since version 2: results of the task's health check, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthState>,
    /// Since version 3: set on exec tasks, the task they run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_in: Option<String>,
    /// Since version 4: the task's processes are frozen (`pause`).
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Created,
    Running,
    Stopped,
}

/// `POST /v1/namespaces/{ns}/tasks/{id}/kill`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillRequest {
    pub signal: i32,
    /// Signal every process of the container, not only its init.
    #[serde(default)]
    pub all: bool,
    /// Since version 2: this is a user's stop; the restart policy no longer applies.
    #[serde(default)]
    pub stop: bool,
}

/// `POST /v4/namespaces/{ns}/tasks/{id}/update`: changes a task's limits
/// and restart policy. Absent fields are left as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateTaskRequest {
    /// OCI `linux.resources` as `runc update --resources` reads them; only
    /// the fields present change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<serde_json::Value>,
    /// The new restart policy (`No` clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
}

/// `POST /v1/namespaces/{ns}/tasks/{id}/resize`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeRequest {
    pub height: u16,
    pub width: u16,
}

/// One entry of the core's event log, streamed by
/// `GET /v1/events?after=SEQ` as JSON lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Increasing without gaps within one epoch; survives core restarts.
    pub seq: u64,
    pub epoch: String,
    pub namespace: String,
    pub id: String,
    pub kind: EventKind,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    /// Since version 2, on exit events: the core will start the task again.
    #[serde(default)]
    pub restarting: bool,
    /// Since version 2, on start events: how often the task was restarted.
    #[serde(default)]
    pub restart_count: u32,
    /// Since version 2, on health events: the new health status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Start,
    Exit,
    Delete,
    /// Since version 2: the health status changed.
    Health,
    /// A kind from a newer core.
    #[serde(other)]
    Unknown,
}

/// The body of every error answer from the core.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Error classes; the engine maps them onto Docker's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    Unavailable,
    Internal,
    /// A code from a newer core that this build does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::InvalidArgument => 400,
            ErrorCode::FailedPrecondition => 412,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    pub fn from_http_status(status: u16) -> Self {
        match status {
            404 => ErrorCode::NotFound,
            409 => ErrorCode::AlreadyExists,
            400 => ErrorCode::InvalidArgument,
            412 => ErrorCode::FailedPrecondition,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_highest_common_version() {
        assert_eq!(negotiate((1, 3), (2, 5)), Some(3));
        assert_eq!(negotiate((1, 1), (1, 2)), Some(1));
        assert_eq!(negotiate((3, 4), (1, 2)), None);
    }

    #[test]
    fn restart_policies_follow_docker() {
        let on_failure = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(on_failure.should_restart(1, 0, false));
        assert!(on_failure.should_restart(1, 1, false));
        assert!(!on_failure.should_restart(1, 2, false));
        assert!(!on_failure.should_restart(0, 0, false));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        let json = serde_json::to_string(&on_failure).unwrap();
        assert_eq!(json, r#"{"name":"on-failure","max_retries":2}"#);
    }

    #[test]
    fn version_1_requests_still_parse() {
        let req: CreateTaskRequest = serde_json::from_str(r#"{"id":"a","spec":{}}"#).unwrap();
        assert!(req.restart.is_none());
        let kill: KillRequest = serde_json::from_str(r#"{"signal":9}"#).unwrap();
        assert!(!kill.stop);
    }

    #[test]
    fn unknown_error_codes_from_newer_cores_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"quota_exceeded","message":"x"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unknown);
    }
}
