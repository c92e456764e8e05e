//! Tasks: one OCI bundle and one shim each, grouped in namespaces.
//!
//! A task's directory, `<state-dir>/tasks/<namespace>/<id>/`, is the whole
//! truth about it: `task.json` (this module's record), `bundle/config.json`,
//! and the shim's files (`shim.pid`, `init.pid`, sockets, `exit.json`). The
//! in-memory map is a cache rebuilt from those directories at start-up,
//! which is how a restarted core re-adopts running shims.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::{
    CreateTaskRequest, Event, EventKind, RestartPolicy, TaskInfo, TaskStatus, UpdateTaskRequest,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::event_log::EventLog;
use crate::pidfd::{self, PidFd};
use crate::runtimes::Runtimes;
use berth_proto::shim::{self as contract, files, sockets, Request};

use crate::{ids, shim, Error};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskRecord {
    id: String,
    namespace: String,
    status: TaskStatus,
    runtime: String,
    runtime_path: PathBuf,
    runtime_root: PathBuf,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    shim_pid: i32,
    /// Prefix of the shim's sockets, short enough for a unix socket path.
    #[serde(default)]
    socket_base: PathBuf,
    /// What the shim was started with, to start it again on a restart.
    #[serde(default)]
    log_path: String,
    #[serde(default)]
    log_max_size: u64,
    #[serde(default)]
    log_max_files: u32,
    #[serde(default)]
    log_format: String,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    stdin_once: bool,
    #[serde(default)]
    tty: bool,
    /// An exec task: the task whose container the process runs in.
    #[serde(default)]
    exec_in: Option<String>,
    #[serde(default)]
    restart: Option<RestartPolicy>,
    #[serde(default)]
    restart_count: u32,
    /// A user stopped the task: its restart policy no longer applies.
    #[serde(default)]
    stopped_by_user: bool,
    /// Exited, and waiting for its restart.
    #[serde(default)]
    restarting: bool,
    /// When the process last started, in seconds since the epoch (for back-off).
    #[serde(default)]
    started_unix: i64,
    #[serde(default)]
    health_check: Option<berth_proto::HealthCheck>,
    #[serde(default)]
    health: Option<berth_proto::HealthState>,
    #[serde(default)]
    started_at: String,
    #[serde(default)]
    finished_at: String,
    #[serde(default)]
    exit_code: Option<i32>,
    /// Frozen by `pause`; cleared by `resume` and at exit.
    #[serde(default)]
    paused: bool,
    /// The last exit was the kernel's OOM killer's doing.
    #[serde(default)]
    oom_killed: bool,
}

#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    shim: PathBuf,
    runtimes: Runtimes,
    events: Arc<EventLog>,
    tasks: Mutex<HashMap<(String, String), TaskRecord>>,
    /// Deletions still cleaning up in the background (runtime delete, task
    /// directory); a create of the same id waits for them.
    deleting: Mutex<HashMap<(String, String), tokio::task::JoinHandle<()>>>,
}

impl Tasks {
    pub fn new(
        state_dir: PathBuf,
        shim: PathBuf,
        runtimes: Runtimes,
        events: Arc<EventLog>,
    ) -> Tasks {
        Tasks {
            inner: Arc::new(Inner {
                root: state_dir.join("tasks"),
                shim,
                runtimes,
                events,
                tasks: Mutex::new(HashMap::new()),
                deleting: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn runtimes(&self) -> &Runtimes {
        &self.inner.runtimes
    }

    fn dir(&self, ns: &str, id: &str) -> PathBuf {
        self.inner.root.join(ns).join(id)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), TaskRecord>> {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, ns: &str, id: &str) -> Result<TaskRecord, Error> {
        ids::check("namespace", ns)?;
        ids::check("task id", id)?;
        self.map()
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Stores a whole record. Writing under the map's lock keeps the file
    /// and the map in the same order as the changes.
    fn save(&self, rec: &TaskRecord) {
        let mut map = self.map();
        self.write_record(rec);
        map.insert((rec.namespace.clone(), rec.id.clone()), rec.clone());
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
        let rec = map.get_mut(&(ns.to_string(), id.to_string()))?;
        let out = change(rec);
        let copy = rec.clone();
        self.write_record(&copy);
        Some((copy, out))
    }

    /// Writes task.json (write, then rename).
    fn write_record(&self, rec: &TaskRecord) {
        let dir = self.dir(&rec.namespace, &rec.id);
        let tmp = dir.join("task.json.tmp");
        let body = serde_json::to_vec_pretty(rec).unwrap_or_default();
        if let Err(e) =
            std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, dir.join("task.json")))
        {
            warn!(id = %rec.id, error = %e, "saving task record");
        }
    }

    fn info(&self, rec: &TaskRecord) -> TaskInfo {
        let attach = if rec.status == TaskStatus::Stopped {
            String::new()
        } else {
            contract::socket(&rec.socket_base, sockets::ATTACH)
                .display()
                .to_string()
        };
        TaskInfo {
            id: rec.id.clone(),
            namespace: rec.namespace.clone(),
            status: rec.status,
            pid: rec.pid,
            exit_code: rec.exit_code,
            started_at: rec.started_at.clone(),
            finished_at: rec.finished_at.clone(),
            oom_killed: rec.oom_killed,
            attach_socket: attach,
            runtime: rec.runtime.clone(),
            restart_count: rec.restart_count,
            restarting: rec.restarting,
            health: rec.health.clone(),
            exec_in: rec.exec_in.clone(),
            paused: rec.paused,
        }
    }

    pub fn list(&self, ns: &str) -> Result<Vec<TaskInfo>, Error> {
        ids::check("namespace", ns)?;
        let recs: Vec<TaskRecord> = self
            .map()
            .values()
            .filter(|r| r.namespace == ns)
            .cloned()
            .collect();
        Ok(recs.iter().map(|r| self.info(r)).collect())
    }

    pub fn inspect(&self, ns: &str, id: &str) -> Result<TaskInfo, Error> {
        Ok(self.info(&self.get(ns, id)?))
    }

    /// Writes the bundle and has a shim create the container (not started).
    pub async fn create(&self, ns: &str, req: CreateTaskRequest) -> Result<TaskInfo, Error> {
        ids::check("namespace", ns)?;
        ids::check("task id", &req.id)?;
        let (runtime, runtime_path, runtime_root) = self.inner.runtimes.resolve(&req.runtime)?;
        let key = (ns.to_string(), req.id.clone());
        let pending_delete = self
            .inner
            .deleting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if let Some(handle) = pending_delete {
            let _ = handle.await;
        }
        let dir = self.dir(ns, &req.id);
        // An exec task runs with its container's runtime.
        let (runtime, runtime_path, runtime_root) = match &req.exec_in {
            Some(parent) => {
                let p = self.get(ns, parent)?;
                if p.exec_in.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "task {parent} is an exec task"
                    )));
                }
                if p.status != TaskStatus::Running {
                    return Err(Error::FailedPrecondition(format!(
                        "task {parent} is not running"
                    )));
                }
                (p.runtime, p.runtime_path, p.runtime_root)
            }
            None => (runtime, runtime_path, runtime_root),
        };
        let mut rec = TaskRecord {
            id: req.id.clone(),
            namespace: ns.to_string(),
            status: TaskStatus::Created,
            runtime,
            runtime_path,
            runtime_root,
            pid: 0,
            shim_pid: 0,
            socket_base: self
                .inner
                .root
                .parent()
                .unwrap_or(&self.inner.root)
                .join("s")
                .join(format!("{:016x}", rand::random::<u64>())),
            log_path: req.log_path.clone(),
            log_max_size: req.log_max_size,
            log_max_files: req.log_max_files,
            log_format: req.log_format.clone(),
            stdin: req.stdin,
            stdin_once: req.stdin_once,
            tty: req.tty,
            exec_in: req.exec_in.clone(),
            restart: req.restart.filter(|r| *r != RestartPolicy::No),
            restart_count: 0,
            stopped_by_user: false,
            restarting: false,
            started_unix: 0,
            health_check: req.health.clone().filter(|h| !h.test.is_empty()),
            health: None,
            started_at: String::new(),
            finished_at: String::new(),
            exit_code: None,
            paused: false,
            oom_killed: false,
        };
        {
            let mut map = self.map();
            if map.contains_key(&key) {
                return Err(Error::AlreadyExists(req.id));
            }
            // Reserve the id so that a concurrent create of the same id fails.
            map.insert(key.clone(), rec.clone());
        }
        let result = self.create_in(&dir, &req, &mut rec).await;
        if let Err(e) = result {
            self.map().remove(&key);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.save(&rec);
        self.watch(rec.namespace.clone(), rec.id.clone(), rec.shim_pid);
        Ok(self.info(&rec))
    }

    async fn create_in(
        &self,
        dir: &Path,
        req: &CreateTaskRequest,
        rec: &mut TaskRecord,
    ) -> Result<(), Error> {
        let bundle = dir.join("bundle");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(&bundle)?;
        if !req.spec.is_object() {
            return Err(Error::InvalidArgument("spec must be a JSON object".into()));
        }
        // An exec task's "bundle" is its process.json.
        let name = if req.exec_in.is_some() {
            "process.json"
        } else {
            "config.json"
        };
        std::fs::write(
            bundle.join(name),
            serde_json::to_vec(&req.spec).unwrap_or_default(),
        )?;
        std::fs::create_dir_all(&rec.runtime_root)?;
        // Which runtime to ask for a delete, even when task.json is gone.
        std::fs::write(
            dir.join("runtime"),
            format!(
                "{}\n{}\n",
                rec.runtime_path.display(),
                rec.runtime_root.display()
            ),
        )?;
        self.spawn_shim(dir, rec).await
    }

    /// Starts the task's shim, which creates (not starts) the process.
    async fn spawn_shim(&self, dir: &Path, rec: &mut TaskRecord) -> Result<(), Error> {
        let _ = std::fs::remove_file(dir.join(files::EXIT));
        let exec_process = dir.join("bundle").join("process.json");
        let bundle_dir = dir.join("bundle");
        let args = contract::Args {
            // An exec's shim names the container it runs in.
            id: rec.exec_in.clone().unwrap_or_else(|| rec.id.clone()),
            exec: rec.exec_in.is_some(),
            state_dir: dir.to_path_buf(),
            bundle: if rec.exec_in.is_some() {
                exec_process
            } else {
                bundle_dir
            },
            runtime: rec.runtime_path.clone(),
            runtime_root: rec.runtime_root.clone(),
            log_path: rec.log_path.clone().into(),
            log_max_size: rec.log_max_size,
            log_max_files: rec.log_max_files,
            log_format: contract::LogFormat::parse(&rec.log_format)
                .map_err(Error::InvalidArgument)?,
            socket_base: rec.socket_base.clone(),
            stdin: rec.stdin,
            stdin_once: rec.stdin_once,
            tty: rec.tty,
        };
        let pid = shim::spawn(&self.inner.shim, &args).await?;
        rec.pid = pid as u32;
        rec.shim_pid = read_pid(&dir.join(files::SHIM_PID)).unwrap_or(0);
        Ok(())
    }

    pub async fn start(&self, ns: &str, id: &str) -> Result<TaskInfo, Error> {
        let rec = self.get(ns, id)?;
        match rec.status {
            TaskStatus::Created => {}
            TaskStatus::Running => {
                return Err(Error::FailedPrecondition(format!(
                    "task {id} is already running"
                )))
            }
            TaskStatus::Stopped => {
                return Err(Error::FailedPrecondition(format!("task {id} has exited")))
            }
        }
        shim::control(&rec.socket_base, Request::Start).await?;
        // An exec's process exists only now.
        let exec_pid = if rec.exec_in.is_some() {
            read_pid(&self.dir(ns, id).join(files::INIT_PID)).map(|p| p as u32)
        } else {
            None
        };
        // A very short process may have exited (and been recorded) already:
        // then it stays stopped, and its events stay in order.
        let events = &self.inner.events;
        let (rec, running) = self
            .update(ns, id, |r| {
                if r.started_at.is_empty() {
                    r.started_at = now();
                    r.started_unix = unix_now();
                }
                if let Some(pid) = exec_pid {
                    r.pid = pid;
                }
                if r.status != TaskStatus::Created {
                    return false;
                }
                r.status = TaskStatus::Running;
                events.append(ns, id, EventKind::Start, r.pid, None, r.started_at.clone());
                true
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if running {
            self.begin_health_checks(&rec.namespace, &rec.id, rec.pid, rec.health_check.clone());
        }
        Ok(self.info(&rec))
    }

    /// Signals the task; `stop` marks it stopped by a user (no more restarts).
    pub async fn kill(
        &self,
        ns: &str,
        id: &str,
        signal: i32,
        all: bool,
        stop: bool,
    ) -> Result<(), Error> {
        let mut rec = self.get(ns, id)?;
        if stop {
            let events = &self.inner.events;
            let (now, cancelled) = self
                .update(ns, id, |r| {
                    r.stopped_by_user = true;
                    // Waiting to be restarted: stopping cancels the restart
                    // and makes its last exit final.
                    let cancelled = r.restarting;
                    if cancelled {
                        r.restarting = false;
                        events.append(
                            ns,
                            id,
                            EventKind::Exit,
                            r.pid,
                            r.exit_code,
                            r.finished_at.clone(),
                        );
                    }
                    cancelled
                })
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            if cancelled {
                return Ok(());
            }
            rec = now;
        }
        if rec.status == TaskStatus::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "task {id} is not running"
            )));
        }
        shim::control(&rec.socket_base, Request::Kill { signal, all }).await?;
        // A frozen process cannot act on SIGKILL: thaw it so that it dies,
        // as Docker does when killing a paused container. Some runtimes
        // (runc 1.1) thaw it themselves, so a failed resume is no error.
        if rec.paused && signal == 9 {
            let rt = self.runtime_cli(&rec);
            let target = rec.id.clone();
            let _ = tokio::task::spawn_blocking(move || rt.resume(&target)).await;
            self.update(ns, id, |r| r.paused = false);
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws every process of a running task.
    pub async fn set_paused(&self, ns: &str, id: &str, paused: bool) -> Result<TaskInfo, Error> {
        let rec = self.get(ns, id)?;
        if rec.status != TaskStatus::Running {
            return Err(Error::FailedPrecondition(format!(
                "task {id} is not running"
            )));
        }
        if rec.exec_in.is_some() {
            return Err(Error::InvalidArgument(format!(
                "task {id} is an exec; pause the task it runs in"
            )));
        }
        let rt = self.runtime_cli(&rec);
        let target = rec.id.clone();
        tokio::task::spawn_blocking(move || {
            if paused {
                rt.pause(&target)
            } else {
                rt.resume(&target)
            }
        })
        .await
        .map_err(|e| Error::Runtime(e.to_string()))?
        .map_err(|e| Error::Runtime(e.to_string()))?;
        let (rec, ()) = self
            .update(ns, id, |r| {
                r.paused = paused && r.status == TaskStatus::Running
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(self.info(&rec))
    }

    /// Applies new limits (`runc update`) and/or a new restart policy.
    pub async fn update_task(
        &self,
        ns: &str,
        id: &str,
        req: UpdateTaskRequest,
    ) -> Result<TaskInfo, Error> {
        let rec = self.get(ns, id)?;
        if let Some(resources) = req
            .resources
            .filter(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        {
            if rec.status != TaskStatus::Running {
                return Err(Error::FailedPrecondition(format!(
                    "task {id} is not running"
                )));
            }
            let file = self.dir(ns, id).join("resources.json");
            std::fs::write(
                &file,
                serde_json::to_vec(&resources)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
            )?;
            let rt = self.runtime_cli(&rec);
            let target = rec.id.clone();
            tokio::task::spawn_blocking(move || rt.update(&target, &file))
                .await
                .map_err(|e| Error::Runtime(e.to_string()))?
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        let (rec, ()) = self
            .update(ns, id, |r| {
                if let Some(p) = req.restart {
                    r.restart = Some(p).filter(|p| *p != RestartPolicy::No);
                }
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(self.info(&rec))
    }

    fn runtime_cli(&self, rec: &TaskRecord) -> berth_runtime::Cli {
        berth_runtime::Cli::new(
            &rec.runtime_path,
            &rec.runtime_root,
            self.dir(&rec.namespace, &rec.id).join("runtime.log"),
        )
    }

    pub async fn resize(&self, ns: &str, id: &str, h: u16, w: u16) -> Result<(), Error> {
        let rec = self.get(ns, id)?;
        shim::control(&rec.socket_base, Request::Resize { rows: h, cols: w }).await
    }

    pub async fn close_stdin(&self, ns: &str, id: &str) -> Result<(), Error> {
        let rec = self.get(ns, id)?;
        shim::control(&rec.socket_base, Request::CloseStdin).await
    }

    /// Removes a stopped task; a created one that never started is killed first.
    pub async fn delete(&self, ns: &str, id: &str) -> Result<(), Error> {
        let rec = self.get(ns, id)?;
        match rec.status {
            TaskStatus::Running => {
                return Err(Error::FailedPrecondition(format!("task {id} is running")))
            }
            TaskStatus::Created => {
                // Never started: kill it and wait for its shim to go (by
                // pidfd, which cannot miss an exit that already happened).
                let _ = shim::control(&rec.socket_base, Request::KILL_ALL).await;
                if !self.shim_gone(rec.shim_pid, Duration::from_secs(10)).await {
                    warn!(%id, shim_pid = rec.shim_pid, "shim of a created task did not exit; killing it");
                    kill_pid(rec.shim_pid);
                    use berth_runtime::Runtime;
                    let rt = berth_runtime::Cli::new(
                        &rec.runtime_path,
                        &rec.runtime_root,
                        self.dir(ns, id).join("runtime.log"),
                    );
                    let _ = rt.kill(id, 9, true);
                    self.shim_gone(rec.shim_pid, Duration::from_secs(10)).await;
                }
                // Record the exit now if the watcher has not yet.
                self.on_shim_exit(ns, id);
            }
            TaskStatus::Stopped => {}
        }
        let key = (ns.to_string(), id.to_string());
        // A pending restart sees the task gone and gives up.
        self.map().remove(&key);
        // The runtime's delete and the directory removal run in the
        // background so that `docker run --rm` does not wait for them; a
        // create of the same id waits instead. The record goes first, so a
        // core that dies meanwhile does not resurrect the task.
        let dir = self.dir(ns, id);
        let _ = std::fs::remove_file(dir.join("task.json"));
        let handle = tokio::task::spawn_blocking(move || {
            use berth_runtime::Runtime;
            let rt = berth_runtime::Cli::new(
                &rec.runtime_path,
                &rec.runtime_root,
                dir.join("runtime.log"),
            );
            if let Err(e) = rt.delete(&rec.id) {
                tracing::debug!(id = %rec.id, error = %e, "runtime delete");
            }
            // A shim that was killed could not remove its sockets itself.
            for suffix in [sockets::ATTACH, sockets::CONTROL, sockets::TTY] {
                let _ = std::fs::remove_file(contract::socket(&rec.socket_base, suffix));
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(id = %rec.id, error = %e, "removing task directory");
            }
        });
        self.inner
            .deleting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, handle);
        self.inner
            .events
            .append(ns, id, EventKind::Delete, 0, None, now());
        Ok(())
    }

    pub(crate) fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// The runtime binary, its root and the task directory of a task whose
    /// process `pid` still runs; `None` once it stopped or was replaced.
    pub(crate) fn runtime_of_running(
        &self,
        ns: &str,
        id: &str,
        pid: u32,
    ) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let rec = self.get(ns, id).ok()?;
        (rec.status == TaskStatus::Running && rec.pid == pid).then(|| {
            (
                rec.runtime_path.clone(),
                rec.runtime_root.clone(),
                self.dir(ns, id),
            )
        })
    }

    /// Updates the health of process `pid` of a task; returns the new
    /// status when `update` says it changed.
    pub(crate) fn set_health(
        &self,
        ns: &str,
        id: &str,
        pid: u32,
        update: impl FnOnce(&mut berth_proto::HealthState) -> bool,
    ) -> Option<String> {
        // Read, change and store under the map's lock: an exit recorded
        // meanwhile must not be overwritten by a stale "running" record.
        let (rec, changed, status) = {
            let mut map = self.map();
            let rec = map.get_mut(&(ns.to_string(), id.to_string()))?;
            if rec.pid != pid || rec.status != TaskStatus::Running {
                return None;
            }
            let health = rec.health.get_or_insert_with(Default::default);
            let changed = update(health);
            let status = health.status.clone();
            (rec.clone(), changed, status)
        };
        self.write_record(&rec);
        changed.then_some(status)
    }

    /// Waits for deletions still cleaning up in the background (at shutdown).
    pub async fn drain_deletes(&self) {
        let handles: Vec<_> = self
            .inner
            .deleting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for h in handles {
            let _ = h.await;
        }
    }

    /// Waits (bounded) until the shim process has exited.
    async fn shim_gone(&self, shim_pid: i32, limit: Duration) -> bool {
        if shim_pid <= 0 {
            return true;
        }
        match PidFd::open(shim_pid) {
            Ok(fd) => tokio::time::timeout(limit, fd.exited()).await.is_ok(),
            Err(_) => true,
        }
    }

    /// Follows a shim until it exits, then records the container's exit.
    fn watch(&self, ns: String, id: String, shim_pid: i32) {
        let this = self.clone();
        tokio::spawn(async move {
            match PidFd::open(shim_pid) {
                Ok(fd) => {
                    if let Err(e) = fd.exited().await {
                        warn!(%id, error = %e, "waiting for shim");
                    }
                }
                Err(e) => info!(%id, error = %e, "shim already gone"),
            }
            this.on_shim_exit(&ns, &id);
        });
    }

    fn on_shim_exit(&self, ns: &str, id: &str) {
        let Ok(rec) = self.get(ns, id) else { return };
        if rec.status == TaskStatus::Stopped {
            return; // recorded already (delete and the watcher may both call this)
        }
        let dir = self.dir(ns, id);
        let (code, finished, oom) = match contract::Exit::read(&dir) {
            Some(exit) => (exit.exit_code, exit.finished_at, exit.oom_killed),
            None => {
                // The shim died without recording an exit (it was killed): the
                // container has lost its monitor, so stop it rather than leave
                // it running unobserved, as containerd does with a dead shim.
                warn!(%id, "shim exited without an exit file; stopping the container");
                let rt = berth_runtime::Cli::new(
                    &rec.runtime_path,
                    &rec.runtime_root,
                    dir.join("runtime.log"),
                );
                use berth_runtime::Runtime;
                let _ = rt.kill(id, 9, true);
                let _ = rt.delete(id);
                (255, now(), false)
            }
        };
        let events = &self.inner.events;
        let recorded = self.update(ns, id, |r| {
            if r.status == TaskStatus::Stopped {
                return false; // recorded by another caller meanwhile
            }
            r.status = TaskStatus::Stopped;
            r.paused = false;
            r.exit_code = Some(code);
            r.oom_killed = oom;
            r.finished_at = finished.clone();
            r.restarting = r
                .restart
                .is_some_and(|p| p.should_restart(code, r.restart_count, r.stopped_by_user));
            events.append_event(exit_event(r));
            true
        });
        let Some((rec, true)) = recorded else { return };
        let ran_for = unix_now() - rec.started_unix;
        info!(%id, exit_code = code, restarting = rec.restarting, "task exited");
        if rec.restarting {
            // Docker's back-off: 100 ms, doubling per restart, at most a
            // minute; back to 100 ms after a run of 10 s or more.
            let delay = if ran_for >= 10 {
                100
            } else {
                (100u64 << rec.restart_count.min(10)).min(60_000)
            };
            let this = self.clone();
            let (ns, id) = (ns.to_string(), id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                this.restart(&ns, &id).await;
            });
        }
    }

    /// Starts a task's process again after it exited, per its restart policy.
    async fn restart(&self, ns: &str, id: &str) {
        let Ok(mut rec) = self.get(ns, id) else {
            return;
        };
        if !rec.restarting || rec.stopped_by_user {
            return;
        }
        let dir = self.dir(ns, id);
        let result = async {
            use berth_runtime::Runtime;
            let rt = berth_runtime::Cli::new(
                &rec.runtime_path,
                &rec.runtime_root,
                dir.join("runtime.log"),
            );
            let _ = rt.delete(id);
            self.spawn_shim(&dir, &mut rec).await?;
            shim::control(&rec.socket_base, Request::Start).await
        }
        .await;
        // Record the outcome, unless the task was stopped or deleted while we
        // restarted it (then the new process goes too).
        let events = &self.inner.events;
        let new = rec.clone();
        let ok = result.is_ok();
        let recorded = self.update(ns, id, |r| {
            if !r.restarting || r.stopped_by_user {
                return false;
            }
            r.restarting = false;
            if ok {
                r.pid = new.pid;
                r.shim_pid = new.shim_pid;
                r.status = TaskStatus::Running;
                r.restart_count += 1;
                r.started_at = now();
                r.started_unix = unix_now();
                r.health = None;
                let mut ev = start_event(r);
                ev.restart_count = r.restart_count;
                events.append_event(ev);
            } else {
                events.append_event(exit_event(r));
            }
            true
        });
        match (recorded, result) {
            (Some((rec, true)), Ok(())) => {
                info!(%id, pid = rec.pid, restart_count = rec.restart_count, "task restarted");
                self.watch(ns.to_string(), id.to_string(), rec.shim_pid);
                self.begin_health_checks(
                    &rec.namespace,
                    &rec.id,
                    rec.pid,
                    rec.health_check.clone(),
                );
            }
            (Some((_, true)), Err(e)) => {
                warn!(%id, error = %e, "restarting task failed; giving up")
            }
            (_, Ok(())) => {
                let _ = shim::control(&rec.socket_base, Request::KILL_ALL).await;
            }
            (_, Err(_)) => {}
        }
    }

    /// Re-reads every task directory: running shims are watched again, exits
    /// that happened while the core was away are recorded now.
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
                let Some(rec) = std::fs::read(path.join("task.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<TaskRecord>(&b).ok())
                else {
                    // A create or a deletion that a core restart interrupted:
                    // nobody knows this task, so its shim (if any) and its
                    // runtime state go.
                    warn!(dir = %path.display(), "removing task directory without a record");
                    let id = entry.file_name().to_string_lossy().into_owned();
                    if let Some(shim_pid) = read_pid(&path.join(files::SHIM_PID)) {
                        if pidfd::is_process_of(shim_pid, "berth-shim")
                            && pidfd::is_process_of(shim_pid, &id)
                        {
                            kill_pid(shim_pid);
                        }
                    }
                    if let Ok(Some((runtime, root))) = leftover_runtime(&path) {
                        use berth_runtime::Runtime;
                        let rt = berth_runtime::Cli::new(runtime, root, path.join("runtime.log"));
                        let _ = rt.kill(&id, 9, true);
                        let _ = rt.delete(&id);
                    }
                    let _ = std::fs::remove_dir_all(&path);
                    continue;
                };
                self.map()
                    .insert((rec.namespace.clone(), rec.id.clone()), rec.clone());
                let alive = rec.shim_pid > 0
                    && pidfd::is_process_of(rec.shim_pid, "berth-shim")
                    && pidfd::is_process_of(rec.shim_pid, &rec.id);
                if rec.status == TaskStatus::Stopped && rec.restarting {
                    // The previous core died between an exit and its restart.
                    let this = self.clone();
                    let (ns, id) = (rec.namespace.clone(), rec.id.clone());
                    tokio::spawn(async move { this.restart(&ns, &id).await });
                    continue;
                }
                if rec.status == TaskStatus::Stopped {
                    continue;
                }
                if alive {
                    info!(id = %rec.id, shim_pid = rec.shim_pid, "re-adopted shim");
                    self.watch(rec.namespace.clone(), rec.id.clone(), rec.shim_pid);
                    if rec.status == TaskStatus::Running {
                        self.begin_health_checks(
                            &rec.namespace,
                            &rec.id,
                            rec.pid,
                            rec.health_check.clone(),
                        );
                    }
                } else {
                    self.on_shim_exit(&rec.namespace, &rec.id);
                }
            }
        }
    }
}

/// The runtime a half-deleted task used, from the shim's saved arguments.
fn leftover_runtime(dir: &Path) -> std::io::Result<Option<(PathBuf, PathBuf)>> {
    let Ok(text) = std::fs::read_to_string(dir.join("runtime")) else {
        return Ok(None);
    };
    let mut lines = text.lines();
    Ok(match (lines.next(), lines.next()) {
        (Some(bin), Some(root)) => Some((PathBuf::from(bin), PathBuf::from(root))),
        _ => None,
    })
}

fn exit_event(rec: &TaskRecord) -> Event {
    Event {
        seq: 0,
        epoch: String::new(),
        namespace: rec.namespace.clone(),
        id: rec.id.clone(),
        kind: EventKind::Exit,
        pid: rec.pid,
        exit_code: rec.exit_code,
        oom_killed: rec.oom_killed,
        time: rec.finished_at.clone(),
        restarting: rec.restarting,
        restart_count: rec.restart_count,
        health_status: String::new(),
    }
}

fn start_event(rec: &TaskRecord) -> Event {
    Event {
        kind: EventKind::Start,
        exit_code: None,
        time: rec.started_at.clone(),
        restarting: false,
        ..exit_event(rec)
    }
}

fn kill_pid(pid: i32) {
    let _ = crate::pidfd::kill(pid, libc::SIGKILL);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn now() -> String {
    berth_proto::timefmt::now()
}
