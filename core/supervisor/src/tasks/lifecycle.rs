//! What callers ask of a task: create, start, signal, pause, update, resize,
//! close its stdin, delete.

use std::path::Path;
use std::time::Duration;

use berth_proto::shim::{self as contract, files, sockets, Request};
use berth_proto::{
    CreateTaskRequest, EventKind, RestartPolicy, TaskInfo, TaskStatus, UpdateTaskRequest,
};
use tracing::{debug, warn};

use super::record::{self, TaskRecord};
use super::{blocking, key, lock, now, unix_now, Tasks, RUNTIME_LOG};
use crate::shim::read_pid;
use crate::{ids, Error};

impl Tasks {
    /// Writes the bundle and has a shim create the container (not started).
    pub async fn create(&self, ns: &str, req: CreateTaskRequest) -> Result<TaskInfo, Error> {
        ids::check("namespace", ns)?;
        ids::check("task id", &req.id)?;
        let (runtime, runtime_path, runtime_root) = self.inner.runtimes.resolve(&req.runtime)?;
        let key = key(ns, &req.id);
        let pending_delete = lock(&self.inner.deleting).remove(&key);
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
            syslog: req.syslog.clone(),
            journald: req.journald.clone(),
            fluentd: req.fluentd.clone(),
            gelf: req.gelf.clone(),
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
        Ok(rec.info())
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
            dir.join(super::adopt::RUNTIME_FILE),
            format!(
                "{}\n{}\n",
                rec.runtime_path.display(),
                rec.runtime_root.display()
            ),
        )?;
        self.spawn_shim(dir, rec).await
    }

    /// Starts the task's shim, which creates (not starts) the process.
    pub(super) async fn spawn_shim(&self, dir: &Path, rec: &mut TaskRecord) -> Result<(), Error> {
        let _ = std::fs::remove_file(dir.join(files::EXIT));
        let bundle = dir.join("bundle");
        let args = contract::Args {
            // An exec's shim names the container it runs in.
            id: rec.exec_in.clone().unwrap_or_else(|| rec.id.clone()),
            exec: rec.exec_in.is_some(),
            state_dir: dir.to_path_buf(),
            bundle: if rec.exec_in.is_some() {
                bundle.join("process.json")
            } else {
                bundle
            },
            runtime: rec.runtime_path.clone(),
            runtime_root: rec.runtime_root.clone(),
            log_path: rec.log_path.clone().into(),
            log_max_size: rec.log_max_size,
            log_max_files: rec.log_max_files,
            log_format: contract::LogFormat::parse(&rec.log_format)
                .map_err(Error::InvalidArgument)?,
            syslog: rec.syslog.clone(),
            journald: rec.journald.clone(),
            fluentd: rec.fluentd.clone(),
            gelf: rec.gelf.clone(),
            socket_base: rec.socket_base.clone(),
            stdin: rec.stdin,
            stdin_once: rec.stdin_once,
            tty: rec.tty,
        };
        let spawned = self.inner.shims.spawn(&args).await?;
        rec.pid = spawned.init_pid as u32;
        rec.shim_pid = spawned.shim_pid;
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
        self.inner
            .shims
            .control(&rec.socket_base, Request::Start)
            .await?;
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
                events.append_event(r.start_event());
                true
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if running {
            self.begin_health_checks(&rec);
        }
        Ok(rec.info())
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
        self.inner
            .shims
            .control(&rec.socket_base, Request::Kill { signal, all })
            .await?;
        // A frozen process cannot act on SIGKILL: thaw it so that it dies,
        // as Docker does when killing a paused container. Some runtimes
        // (runc 1.1) thaw it themselves, so a failed resume is no error.
        if rec.paused && signal == 9 {
            let target = rec.id.clone();
            let _ = blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
                rt.resume(&target)
            })
            .await;
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
        let target = rec.id.clone();
        blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
            if paused {
                rt.pause(&target)
            } else {
                rt.resume(&target)
            }
        })
        .await?;
        let (rec, ()) = self
            .update(ns, id, |r| {
                r.paused = paused && r.status == TaskStatus::Running
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(rec.info())
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
            let target = rec.id.clone();
            blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
                rt.update(&target, &file)
            })
            .await?;
        }
        let (rec, ()) = self
            .update(ns, id, |r| {
                if let Some(p) = req.restart {
                    r.restart = Some(p).filter(|p| *p != RestartPolicy::No);
                }
            })
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(rec.info())
    }

    pub async fn resize(&self, ns: &str, id: &str, h: u16, w: u16) -> Result<(), Error> {
        let rec = self.get(ns, id)?;
        let request = Request::Resize { rows: h, cols: w };
        self.inner.shims.control(&rec.socket_base, request).await
    }

    pub async fn close_stdin(&self, ns: &str, id: &str) -> Result<(), Error> {
        let rec = self.get(ns, id)?;
        let request = Request::CloseStdin;
        self.inner.shims.control(&rec.socket_base, request).await
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
                let shims = &self.inner.shims;
                let _ = shims.control(&rec.socket_base, Request::KILL_ALL).await;
                if !self.shim_gone(rec.shim_pid, Duration::from_secs(10)).await {
                    warn!(%id, shim_pid = rec.shim_pid, "shim of a created task did not exit; killing it");
                    shims.kill(rec.shim_pid);
                    let target = id.to_string();
                    let _ = blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
                        rt.kill(&target, 9, true)
                    })
                    .await;
                    self.shim_gone(rec.shim_pid, Duration::from_secs(10)).await;
                }
                // Record the exit now if the watcher has not yet.
                self.on_shim_exit(ns, id).await;
            }
            TaskStatus::Stopped => {}
        }
        let key = key(ns, id);
        // A pending restart sees the task gone and gives up.
        self.map().remove(&key);
        // The runtime's delete and the directory removal run in the
        // background so that `docker run --rm` does not wait for them; a
        // create of the same id waits instead. The record goes first, so a
        // core that dies meanwhile does not resurrect the task.
        let dir = self.dir(ns, id);
        let _ = std::fs::remove_file(dir.join(record::FILE));
        let rt = self.runtime(&rec, RUNTIME_LOG);
        let handle = tokio::task::spawn_blocking(move || {
            if let Err(e) = rt.delete(&rec.id) {
                debug!(id = %rec.id, error = %e, "runtime delete");
            }
            // A shim that was killed could not remove its sockets itself.
            for suffix in [sockets::ATTACH, sockets::CONTROL, sockets::TTY] {
                let _ = std::fs::remove_file(contract::socket(&rec.socket_base, suffix));
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(id = %rec.id, error = %e, "removing task directory");
            }
        });
        lock(&self.inner.deleting).insert(key, handle);
        self.inner
            .events
            .append(ns, id, EventKind::Delete, 0, None, now());
        Ok(())
    }
}
