//! `docker exec`: a process started in a running container.
//!
//! Each exec is a task of its own in berth-core (protocol 3, `exec_in`),
//! run by a shim of its own: the process is a child of that shim, not of
//! the engine or the core, so it survives engine restarts like the
//! container does, and its exit code is recorded by the core. The engine
//! keeps the Docker side (ExecConfig, events) in memory; the core knows
//! whether it runs and how it ended.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_proto::attach::AttachRequest;
use berth_proto::{CreateTaskRequest, TaskInfo, TaskStatus};
use bollard_stubs::models::{ExecInspectResponse, ProcessConfig};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::containers::record::Container;
use crate::containers::{fs::rootfs, oci::spec, oci::user, Containers};
use crate::error::{Error, Result};

/// `POST /containers/{id}/exec`'s body (Docker's ExecConfig), decoded by
/// `go_json` (nulls are zero values).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub detach_keys: String,
}

#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    /// Asked to start (it may have ended since).
    pub started: bool,
    /// Set when the core's exit event for it arrived.
    pub exit_code: Option<i32>,
}

#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Exec>>,
    /// Woken at every exec exit the monitor applies.
    exited: tokio::sync::Notify,
}

impl Execs {
    fn get(&self, id: &str) -> Option<Exec> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn is_exec(&self, id: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }
}

/// Docker clients send `null` for fields they leave unset.
fn no_such_exec(id: &str) -> Error {
    Error::NotFound(format!("No such exec instance: {id}"))
}

/// What a started exec needs next: its shim's attach socket, and whether
/// the stream is raw or multiplexed (the exec's terminal by default; the
/// start request's `Tty` decides, as in dockerd).
pub struct Started {
    pub attach_socket: String,
    pub tty: bool,
}

/// dockerd's refusals of an exec, at create and again at start: the
/// container must run and must not be paused.
fn exec_allowed(c: &Container) -> Result<()> {
    if !c.is_running() {
        return Err(Error::Conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    if c.state.status == "paused" {
        return Err(Error::Conflict(format!(
            "Container {} is paused, unpause the container before exec",
            c.id
        )));
    }
    Ok(())
}

impl Containers {
    /// `POST /containers/{id}/exec`
    pub async fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String> {
        let c = self.lookup(name).await?;
        exec_allowed(&c)?;
        if config.cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        self.core.needs(3, "exec")?;
        let id = crate::util::random_id();
        let command = config.cmd.join(" ");
        self.execs
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Exec {
                    id: id.clone(),
                    container_id: c.id.clone(),
                    config,
                    started: false,
                    exit_code: None,
                },
            );
        self.event(
            &c,
            &format!("exec_create: {command}"),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    /// Creates the exec's task (its shim, not yet its process). The caller
    /// attaches to [`Started::attach_socket`] and then calls [`Containers::exec_run`].
    pub async fn exec_prepare(&self, id: &str) -> Result<Started> {
        let exec = {
            let mut map = self.execs.map.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.get_mut(id).ok_or_else(|| no_such_exec(id))?;
            if e.started {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            e.started = true;
            e.clone()
        };
        let c = self.lookup(&exec.container_id).await?;
        exec_allowed(&c)?;
        let process = self.exec_process(&c, &exec.config)?;
        let req = CreateTaskRequest {
            log_max_size: 0,
            log_max_files: 0,
            log_format: String::new(),
            id: exec.id.clone(),
            spec: process,
            log_path: String::new(),
            stdin: exec.config.attach_stdin,
            stdin_once: true,
            tty: exec.config.tty,
            runtime: String::new(),
            restart: None,
            health: None,
            exec_in: Some(c.id.clone()),
            syslog: None,
            journald: None,
            fluentd: None,
            gelf: None,
        };
        let task = self.core.create_task(&req).await?;
        Ok(Started {
            attach_socket: task.attach_socket,
            tty: exec.config.tty,
        })
    }

    /// Starts the prepared exec's process.
    pub async fn exec_run(&self, id: &str) -> Result<TaskInfo> {
        let exec = self.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        let task = self.core.start_task(id).await?;
        if let Ok(c) = self.lookup(&exec.container_id).await {
            self.event(
                &c,
                &format!("exec_start: {}", exec.config.cmd.join(" ")),
                &[("execID", id.to_string())],
            );
        }
        Ok(task)
    }

    /// Connects to a prepared exec, starts it, and pumps its streams to
    /// `io` until it ends.
    pub async fn exec_attached<IO>(
        &self,
        id: &str,
        started: Started,
        console_size: Option<[u16; 2]>,
        io: IO,
    ) where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _active = self.streams.enter();
        let Some(exec) = self.execs.get(id) else {
            return;
        };
        let req = AttachRequest {
            stdin: exec.config.attach_stdin,
            stdout: exec.config.attach_stdout,
            stderr: exec.config.attach_stderr,
        };
        let conn = match crate::containers::io::attach::connect(&started.attach_socket, req).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(exec_id = %id, error = %e, "connecting to the exec's shim");
                return;
            }
        };
        if let Err(e) = self.exec_run(id).await {
            // As Docker does: the runtime's message on the stream, and
            // 127 (not found) or 126 (cannot run) as the exit code.
            tracing::info!(exec_id = %id, error = %e, "exec failed to start");
            let msg = e.to_string();
            let code = match crate::containers::lifecycle::exit_code_for_start_error(&msg) {
                0 => 126,
                c => c,
            };
            if let Some(x) = self
                .execs
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(id)
            {
                x.exit_code = Some(code);
            }
            self.execs.exited.notify_waiters();
            let text = format!("OCI runtime exec failed: {msg}: unknown\r\n");
            let mut io = io;
            let mut out = Vec::new();
            if !started.tty {
                out.extend_from_slice(&berth_proto::attach::frame_header(1, text.len()));
            }
            out.extend_from_slice(text.as_bytes());
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
            return;
        }
        if let Some([h, w]) = console_size {
            let _ = self.core.resize(id, h, w).await;
        }
        // The output ends when the process does; the exit reaches us a
        // moment later through the core's event stream (the monitor), and
        // clients ask for the exit code at once: close their stream only
        // then. Bounded, in case the event stream is down.
        let settled = async {
            let wait = async {
                loop {
                    let woken = self.execs.exited.notified();
                    if self.execs.get(id).is_none_or(|e| e.exit_code.is_some()) {
                        return;
                    }
                    woken.await;
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
        };
        // A terminal's input is scanned for the exec's detach keys (or the
        // default ctrl-p,ctrl-q): the client leaves, the process runs on.
        let detach = (started.tty && req.stdin)
            .then(|| {
                crate::containers::io::attach::DetachKeys::parse(&exec.config.detach_keys).ok()
            })
            .flatten();
        crate::containers::io::attach::pump_then(conn, io, started.tty, detach, settled).await;
    }

    /// The OCI process of an exec: the container's, with the exec's
    /// command, environment, user, working directory and terminal.
    fn exec_process(&self, c: &Container, exec: &ExecConfig) -> Result<Value> {
        let mut shaped = c.clone();
        shaped.config.entrypoint = None;
        // The init runs once, as the container's first process.
        shaped.host_config.init = None;
        if exec.privileged {
            // Every capability; the container's seccomp filter stays (runc
            // applies it to each process it starts in the container).
            shaped.host_config.privileged = Some(true);
        }
        shaped.config.cmd = Some(exec.cmd.clone());
        shaped.config.tty = Some(exec.tty);
        let mut env = c.config.env.clone().unwrap_or_default();
        for e in &exec.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        shaped.config.env = Some(env);
        if !exec.working_dir.is_empty() {
            shaped.config.working_dir = Some(exec.working_dir.clone());
        }
        let user_spec = if exec.user.is_empty() {
            c.config.user.clone().unwrap_or_default()
        } else {
            exec.user.clone()
        };
        let paths = self.paths(&c.id);
        if !rootfs::is_mountpoint(&paths.rootfs()) {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let resolved = user::resolve(&paths.rootfs(), &user_spec)?;
        let hostname = c
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| c.id[..12].to_string());
        let full = spec::build(
            &shaped,
            &paths,
            &hostname,
            &resolved,
            crate::containers::lifecycle::CGROUP_PARENT,
            spec::Borrowed {
                // The process runs under the container's limits.
                ulimits: self.defaults.ulimits_for(&c.host_config),
                ..Default::default()
            },
        )?;
        serde_json::to_value(full.process()).map_err(Error::internal)
    }

    /// `GET /exec/{id}/json`
    pub async fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let exec = self.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        let task = if exec.started {
            self.core.task(id).await.ok()
        } else {
            None
        };
        let running = task
            .as_ref()
            .is_some_and(|t| t.status == TaskStatus::Running);
        let exit_code = exec.exit_code.or_else(|| {
            task.as_ref().and_then(|t| {
                if t.status == TaskStatus::Stopped {
                    t.exit_code
                } else {
                    None
                }
            })
        });
        let cfg = &exec.config;
        Ok(ExecInspectResponse {
            id: Some(exec.id.clone()),
            running: Some(running),
            exit_code: exit_code.map(i64::from),
            process_config: Some(ProcessConfig {
                tty: Some(cfg.tty),
                entrypoint: Some(cfg.cmd.first().cloned().unwrap_or_default()),
                arguments: Some(cfg.cmd.iter().skip(1).cloned().collect()),
                privileged: Some(cfg.privileged),
                // dockerd writes the user only when one was given (omitempty).
                user: Some(cfg.user.clone()).filter(|u| !u.is_empty()),
            }),
            open_stdin: Some(cfg.attach_stdin),
            open_stderr: Some(cfg.attach_stderr),
            open_stdout: Some(cfg.attach_stdout),
            can_remove: Some(false),
            container_id: Some(exec.container_id.clone()),
            detach_keys: Some(cfg.detach_keys.clone()),
            pid: Some(task.as_ref().map(|t| i64::from(t.pid)).unwrap_or(0)),
        })
    }

    /// `POST /exec/{id}/resize`
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.execs.get(id).ok_or_else(|| no_such_exec(id))?;
        if !exec.started {
            return Err(Error::Conflict(format!("Exec {id} is not running")));
        }
        self.core.resize(id, height, width).await
    }

    /// The core saw an exec end: Docker's exec_die event.
    pub async fn exec_exited(&self, id: &str, code: i32) {
        if let Some(e) = self
            .execs
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            // A start failure recorded Docker's 127/126 already.
            e.exit_code.get_or_insert(code);
        }
        self.execs.exited.notify_waiters();
        let Some(exec) = self.execs.get(id) else {
            return;
        };
        if let Ok(c) = self.lookup(&exec.container_id).await {
            self.event(
                &c,
                "exec_die",
                &[
                    ("execID", id.to_string()),
                    ("exitCode", exec.exit_code.unwrap_or(code).to_string()),
                ],
            );
        }
    }

    /// Drops the execs of a removed container, in the engine and the core.
    pub async fn exec_forget_container(&self, container_id: &str) {
        let ids: Vec<String> = {
            let mut map = self.execs.map.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<String> = map
                .values()
                .filter(|e| e.container_id == container_id)
                .map(|e| e.id.clone())
                .collect();
            for id in &ids {
                map.remove(id);
            }
            ids
        };
        for id in ids {
            let _ = self.core.delete_task(&id).await;
        }
    }
}
