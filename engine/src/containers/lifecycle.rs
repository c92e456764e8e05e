//! Start, stop, kill, wait and remove.

use std::time::Duration;

use berth_proto::shim::LOGGING_FAILED;
use berth_proto::CreateTaskRequest;
use tracing::{info, warn};

use crate::containers::record::{Container, State};
use crate::containers::{fs::rootfs, io, oci::spec, oci::user, Change, Containers};
use crate::core_client::CoreClient;
use crate::error::{Error, Result};

/// The cgroup parent of every container, like Docker's "/docker".
pub const CGROUP_PARENT: &str = "/berth";

/// The receiver a shipping log driver's shim sends to, if any.
enum Shipping {
    None,
    Syslog(berth_proto::shim::Syslog),
    Journald(berth_proto::shim::Journald),
    Fluentd(berth_proto::shim::Fluentd),
    Gelf(berth_proto::shim::Gelf),
}

/// What `POST /containers/{id}/wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    /// dockerd reads any other word as the default, `not-running`.
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            _ => Ok(WaitCondition::NotRunning),
        }
    }
}

/// Parses "KILL", "SIGKILL", "9" into a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::InvalidArgument(format!("Invalid signal: {s}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| Error::InvalidArgument(format!("Invalid signal: {s}")))
}

impl Containers {
    /// `POST /containers/{id}/start`
    pub async fn start(&self, name: &str) -> Result<()> {
        let id = self.lookup(name).await?.id;
        let lock = self.lock_of(&id);
        let guard = lock.lock().await;
        let mut c = self.lookup(&id).await?;
        if c.is_running() {
            return Err(Error::NotModified("container already started".into()));
        }
        match self.start_locked(&mut c).await {
            Ok(()) => {
                drop(guard);
                self.event(&c, "start", &[]);
                self.notify(Change::Started(c.id.clone()));
                Ok(())
            }
            Err(e) => {
                let paths = self.paths(&c.id);
                self.networks.leave(&c.id).await;
                let _ = rootfs::unmount_rootfs(&paths);
                self.release_mounts(&c.id).await;
                c.state.error = e.to_string();
                if c.state.exit_code == 0 {
                    c.state.exit_code = exit_code_for_start_error(&c.state.error);
                }
                let _ = self.save_state(&c).await;
                drop(guard);
                if c.auto_remove() {
                    let _ = self.remove(&c.id, true, true).await;
                }
                Err(e)
            }
        }
    }

    /// Where the shim sends each line for a shipping driver (none for the
    /// file drivers); the tag template is filled in now, as dockerd fills
    /// it when the container starts.
    fn shipping(&self, c: &Container) -> Result<Shipping> {
        let driver = c.log_driver();
        let since = match driver.as_str() {
            "syslog" | "journald" => 6,
            "fluentd" | "gelf" => 7,
            _ => return Ok(Shipping::None),
        };
        if self.core.version() < since {
            return Err(Error::InvalidArgument(format!(
                "the running berth-core speaks protocol version {}, which cannot send logs to {driver}; upgrade berth-core",
                self.core.version()
            )));
        }
        let opts = c.log_options();
        let facts = io::log_tag::Facts {
            id: &c.id,
            name: &c.name,
            image_id: &c.image_id,
            image_name: &c.image_ref,
        };
        let tag = io::log_tag::render(opts.get("tag").map_or("", String::as_str), &facts)?;
        let max_buffer = io::log_opts::max_buffer(&opts);
        Ok(match driver.as_str() {
            "journald" => Shipping::Journald(io::journald::settings(c, tag, max_buffer)?),
            "fluentd" => Shipping::Fluentd(io::fluentd::settings(c, &opts, tag, max_buffer)?),
            "gelf" => Shipping::Gelf(io::gelf::settings(c, &opts, tag, max_buffer)?),
            _ => Shipping::Syslog(io::syslog::target(&opts, tag)?),
        })
    }

    async fn start_locked(&self, c: &mut Container) -> Result<()> {
        let paths = self.paths(&c.id);
        // A task left from the previous run of this container is gone with it.
        match self.core.delete_task(&c.id).await {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.mount_rootfs(c).await?;
        let mut hostname = c
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| c.id[..12].to_string());
        let mode = crate::networks::sandbox::mode_of(c).to_string();
        let netns;
        let mut net_pending = None;
        let mut link_env = Vec::new();
        if let Some(donor) = mode.strip_prefix("container:") {
            // Its network namespace, name and name files are the donor's.
            let o = self.lookup(donor).await?;
            if o.id == c.id {
                return Err(Error::InvalidArgument(
                    "cannot join own network namespace".into(),
                ));
            }
            if !o.state.running || o.state.pid == 0 {
                return Err(Error::Conflict(format!(
                    "cannot join network namespace of a non running container: {}",
                    o.id
                )));
            }
            netns = Some(std::path::PathBuf::from(format!(
                "/proc/{}/ns/net",
                o.state.pid
            )));
            hostname = o
                .config
                .hostname
                .clone()
                .unwrap_or_else(|| o.id[..12].to_string());
            let from = self.paths(&o.id);
            std::fs::write(paths.file("hostname"), format!("{hostname}\n"))?;
            for f in ["hosts", "resolv.conf"] {
                std::fs::copy(from.file(f), paths.file(f))?;
            }
        } else {
            let linked = self.resolve_links(c).await?;
            link_env = linked.env;
            let joined = self.networks.join(c).await?;
            let hc = &c.host_config;
            let dns = self.networks.dns_of(c);
            rootfs::write_etc_files(
                &paths,
                &rootfs::EtcFiles {
                    hostname: &hostname,
                    extra_hosts: hc.extra_hosts.as_deref().unwrap_or_default(),
                    host_network: mode == "host",
                    ip: joined.as_ref().and_then(|j| j.ip.as_deref()),
                    ip6: joined.as_ref().and_then(|j| j.ip6.as_deref()),
                    gateway: joined
                        .as_ref()
                        .and_then(|j| j.gateway.as_deref())
                        .or(Some(self.networks.default_gateway())),
                    nameservers: joined
                        .as_ref()
                        .map(|j| j.nameservers.as_slice())
                        .unwrap_or_default(),
                    dns: &dns,
                    dns_search: self.defaults.dns_search_for(hc),
                    dns_options: self.defaults.dns_options_for(hc),
                    links: &linked.hosts,
                },
            )?;
            netns = joined.map(|j| {
                net_pending = j.pending;
                j.netns
            });
        }
        let mut resolved = user::resolve(&paths.rootfs(), c.config.user.as_deref().unwrap_or(""))?;
        for g in user::resolve_groups(&paths.rootfs(), c.host_config.group_add.as_deref())? {
            if g != resolved.gid && !resolved.additional_gids.contains(&g) {
                resolved.additional_gids.push(g);
            }
        }
        let mut borrowed = self.borrowed_namespaces(c).await?;
        let (user_mounts, _volume_hold) = self.prepare_mounts(c).await?;
        borrowed.user_mounts = user_mounts;
        borrowed.netns = netns;
        borrowed.link_env = link_env;
        borrowed.ulimits = self.defaults.ulimits_for(&c.host_config);
        let oci = spec::build(c, &paths, &hostname, &resolved, CGROUP_PARENT, borrowed)?;
        let local_log = c.log_format() == berth_proto::shim::LogFormat::Local;
        if local_log && self.core.version() < 5 {
            return Err(Error::InvalidArgument(format!(
                "the running berth-core speaks protocol version {}, which cannot write the local log format; upgrade berth-core",
                self.core.version()
            )));
        }
        let shipping = self.shipping(c)?;
        let log_path = match c.log_file(&paths) {
            None => String::new(),
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                p.display().to_string()
            }
        };
        if c.host_config.runtime.as_deref().unwrap_or("").is_empty() {
            // dockerd records the runtime a container first runs with.
            let chosen = self.default_runtime_name();
            if !chosen.is_empty() {
                c.host_config.runtime = Some(chosen);
                self.save_host_config(c).await?;
            }
        }
        let restart = c.restart_policy();
        let health = c.health_check();
        if (restart.is_some() || health.is_some()) && self.core.version() < 2 {
            return Err(Error::InvalidArgument(format!(
                "the running berth-core speaks protocol version {}, which cannot carry out restart policies or health checks; upgrade berth-core",
                self.core.version()
            )));
        }
        let starting = health.is_some().then(|| berth_proto::HealthState {
            status: "starting".into(),
            ..Default::default()
        });
        let mut req = CreateTaskRequest {
            restart,
            health,
            id: c.id.clone(),
            spec: serde_json::to_value(&oci).map_err(Error::internal)?,
            log_path,
            log_max_size: c.log_rotation().0,
            log_max_files: c.log_rotation().1,
            log_format: if local_log {
                "local".into()
            } else {
                String::new()
            },
            stdin: c.config.open_stdin.unwrap_or(false),
            stdin_once: c.config.stdin_once.unwrap_or(false),
            tty: c.tty(),
            runtime: self.runtime_for_core(c.host_config.runtime.as_deref().unwrap_or("")),
            exec_in: None,
            syslog: None,
            journald: None,
            fluentd: None,
            gelf: None,
        };
        match shipping {
            Shipping::None => {}
            Shipping::Syslog(s) => req.syslog = Some(s),
            Shipping::Journald(j) => req.journald = Some(j),
            Shipping::Fluentd(f) => req.fluentd = Some(f),
            Shipping::Gelf(g) => req.gelf = Some(g),
        }
        // netavark configures the namespace while the runtime creates the
        // container in it: the process runs only at start_task.
        let (created, net) = tokio::join!(self.core.create_task(&req), async {
            match net_pending {
                Some(p) => self.networks.finish_join(c, p).await,
                None => Ok(()),
            }
        });
        if let Err(e) = net {
            if created.is_ok() {
                let _ = self.core.delete_task(&c.id).await;
            }
            return Err(e);
        }
        let task = created.map_err(|e| match e {
            // The shim reached no log receiver: dockerd says so as it is.
            Error::Internal(m) if m.starts_with(LOGGING_FAILED) => Error::Internal(m),
            Error::Internal(m) => {
                let msg = format!("failed to create task for container: {m}: unknown");
                if exit_code_for_start_error(&m) != 0 {
                    Error::InvalidArgument(msg)
                } else {
                    Error::Internal(msg)
                }
            }
            other => other,
        })?;
        // Clients that attached before start are connected now, while the
        // process is created but has not run, so they miss no output.
        self.pending.connect_all(&c.id, &task.attach_socket).await;
        let task = self.core.start_task(&c.id).await?;
        c.state = State {
            status: "running".into(),
            running: true,
            pid: task.pid,
            exit_code: 0,
            error: String::new(),
            started_at: if task.started_at.is_empty() {
                crate::util::now_rfc3339()
            } else {
                task.started_at.clone()
            },
            finished_at: c.state.finished_at.clone(),
            oom_killed: false,
            restarting: false,
            restart_count: c.state.restart_count,
            manually_stopped: false,
            health: starting,
        };
        self.save_state(c).await?;
        info!(container_id = %c.id, pid = task.pid, "container started");
        // A process that exits at once is handled like any other: the
        // monitor applies its exit event (and AutoRemove) once we release
        // the container's lock, and it finds the container "running".
        Ok(())
    }

    /// The init pids of the containers whose PID or IPC namespace `c`
    /// joins (`--pid container:x`, `--ipc container:x`); they must run.
    async fn borrowed_namespaces(&self, c: &Container) -> Result<spec::Borrowed> {
        use crate::containers::oci::security::{ipc_mode, pid_mode, NamespaceMode};
        let mut out = spec::Borrowed::default();
        if c.host_config.ipc_mode.as_deref() == Some("shareable") {
            let size = c
                .host_config
                .shm_size
                .filter(|n| *n > 0)
                .unwrap_or(crate::containers::oci::security::DEFAULT_SHM_SIZE);
            out.shm = Some(rootfs::mount_shm(&self.paths(&c.id), size)?);
        }
        for (mode, what) in [
            (pid_mode(&c.host_config)?, "PID"),
            (ipc_mode(&c.host_config)?, "IPC"),
        ] {
            let NamespaceMode::Container(other) = mode else {
                continue;
            };
            let o = self.lookup(&other).await?;
            if o.id == c.id {
                return Err(Error::InvalidArgument(format!(
                    "cannot join own {what} namespace"
                )));
            }
            if !o.state.running || o.state.pid == 0 {
                return Err(Error::Conflict(format!(
                    "cannot join {what} of a non running container: {}",
                    o.id
                )));
            }
            let pid = Some(o.state.pid as i64);
            if what == "PID" {
                out.pid_of = pid;
                continue;
            }
            // Docker's rule: only a shareable donor's /dev/shm can be joined.
            let shm = self.paths(&o.id).file("shm");
            if o.host_config.ipc_mode.as_deref() != Some("shareable")
                || !rootfs::is_mountpoint(&shm)
            {
                return Err(Error::Conflict(format!(
                    "non-shareable IPC (hint: use IpcMode:shareable for the donor container {})",
                    o.id
                )));
            }
            out.ipc_of = pid;
            out.shm = Some(shm);
        }
        Ok(out)
    }

    /// Records an exit (the caller holds the container's lock). With
    /// `restarting` the core will start it again: the rootfs stays mounted.
    pub(crate) async fn apply_exit(
        &self,
        c: &mut Container,
        code: i32,
        finished_at: &str,
        oom: bool,
        restarting: bool,
    ) -> Result<()> {
        // The network goes first: a container shown as exited holds no
        // address, port or namespace any more.
        if !restarting {
            self.networks.leave(&c.id).await;
        }
        c.state.running = false;
        c.state.restarting = restarting;
        c.state.status = if restarting { "restarting" } else { "exited" }.into();
        c.state.pid = 0;
        c.state.exit_code = code;
        c.state.oom_killed = oom;
        c.state.finished_at = if finished_at.is_empty() {
            crate::util::now_rfc3339()
        } else {
            finished_at.to_string()
        };
        self.save_state(c).await?;
        if !restarting {
            if let Err(e) = rootfs::unmount_rootfs(&self.paths(&c.id)) {
                warn!(container_id = %c.id, error = %e, "unmounting rootfs after exit");
            }
            self.release_mounts(&c.id).await;
        }
        info!(container_id = %c.id, exit_code = code, restarting, "container exited");
        if oom {
            self.event(c, "oom", &[]);
        }
        self.event(c, "die", &[("exitCode", code.to_string())]);
        self.notify(Change::Exited(c.id.clone()));
        Ok(())
    }

    /// Waits (bounded) until `pred` holds for the container or it is gone.
    async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Container) -> bool,
    ) -> bool {
        let mut rx = self.subscribe();
        let check = || async {
            match self.lookup(id).await {
                Ok(c) => pred(&c),
                Err(_) => true,
            }
        };
        if check().await {
            return true;
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(ch) if ch.id() == id => {
                        if check().await {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if check().await {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Remembers that a user stopped the container and tells the core, so
    /// that its restart policy no longer applies.
    async fn mark_stopped(&self, c: &Container, signal: i32) -> Result<()> {
        let lock = self.lock_of(&c.id);
        {
            let _guard = lock.lock().await;
            if let Ok(mut now) = self.lookup(&c.id).await {
                now.state.manually_stopped = true;
                self.save_state(&now).await?;
            }
        }
        match self.core.kill(&c.id, signal, false, true).await {
            // Conflict: it exited meanwhile (or was waiting for a restart,
            // which the stop cancelled).
            Ok(()) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /containers/{id}/stop`
    pub async fn stop(&self, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = self.lookup(name).await?;
        if c.state.restarting {
            self.mark_stopped(&c, libc::SIGKILL).await?;
            self.wait_for(&c.id, Duration::from_secs(10), |c| {
                !c.state.restarting && !c.is_running()
            })
            .await;
            return Ok(());
        }
        if !c.is_running() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(c.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let secs = timeout.or(c.config.stop_timeout).unwrap_or(10);
        info!(container_id = %c.id, signal = sig, timeout = secs, "stopping container");
        self.mark_stopped(&c, sig).await?;
        let grace = if secs < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(secs as u64)
        };
        if !self.wait_for(&c.id, grace, |c| !c.is_running()).await {
            info!(container_id = %c.id, "container did not stop in time, killing it");
            self.kill_and_wait(&c).await?;
        }
        self.event(&c, "stop", &[]);
        Ok(())
    }

    async fn kill_and_wait(&self, c: &Container) -> Result<()> {
        match self.core.kill(&c.id, libc::SIGKILL, true, true).await {
            Ok(()) | Err(Error::Conflict(_)) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        if self
            .wait_for(&c.id, Duration::from_secs(30), |c| {
                !c.is_running() && !c.state.restarting
            })
            .await
        {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "container {} did not exit after SIGKILL",
                c.id
            )))
        }
    }

    /// `POST /containers/{id}/kill`
    pub async fn kill(&self, name: &str, signal: Option<&str>) -> Result<()> {
        let c = self.lookup(name).await.map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!("Cannot kill container: {name}: {m}")),
            other => other,
        })?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        if !c.is_running() && !c.state.restarting {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {name}: Container {} is not running",
                c.id
            )));
        }
        self.event(&c, "kill", &[("signal", sig.to_string())]);
        if sig == libc::SIGKILL {
            // Like Docker, SIGKILL returns once the container is gone, and
            // a killed container is not restarted.
            self.mark_stopped(&c, sig).await?;
            if self
                .wait_for(&c.id, Duration::from_secs(30), |c| {
                    !c.is_running() && !c.state.restarting
                })
                .await
            {
                return Ok(());
            }
            return Err(Error::Internal(format!(
                "container {} did not exit after SIGKILL",
                c.id
            )));
        }
        self.core.kill(&c.id, sig, false, false).await
    }

    /// `POST /containers/{id}/wait`: resolves to (exit code, error message).
    /// The container is looked up before anything is awaited, so a 404
    /// comes back as a status, not inside a 200 body.
    pub async fn wait(
        self: &std::sync::Arc<Self>,
        name: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = (i64, Option<String>)> + Send + 'static> {
        // Subscribed before looking: an exit applied in between is heard.
        let mut rx = self.subscribe();
        let c = self.lookup(name).await?;
        let this = self.clone();
        let id = c.id.clone();
        let already = match condition {
            WaitCondition::NotRunning => !c.is_running(),
            _ => false,
        };
        Ok(async move {
            if already {
                return (c.state.exit_code as i64, None);
            }
            let mut last = c;
            loop {
                match rx.recv().await {
                    Ok(Change::Exited(x)) if x == id => {
                        if let Ok(now) = this.lookup(&id).await {
                            last = now;
                        }
                        if condition != WaitCondition::Removed {
                            return (
                                last.state.exit_code as i64,
                                none_if_empty(&last.state.error),
                            );
                        }
                    }
                    Ok(Change::Removed { id: x, exit_code }) if x == id => {
                        match exit_code {
                            Some(code) => return (code, none_if_empty(&last.state.error)),
                            // Removed by the other berthd of a takeover, as
                            // its store shows, and this wait never saw the
                            // exit: the core's exit event, which reaches
                            // this berthd too, brings the code (see
                            // monitor::exited).
                            None if last.is_running() => {}
                            None => {
                                return (
                                    last.state.exit_code as i64,
                                    none_if_empty(&last.state.error),
                                )
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => match this
                        .lookup(&id)
                        .await
                    {
                        Ok(now) if !now.is_running() && condition != WaitCondition::Removed => {
                            return (now.state.exit_code as i64, none_if_empty(&now.state.error));
                        }
                        Ok(now) => last = now,
                        Err(_) => {
                            return (
                                last.state.exit_code as i64,
                                none_if_empty(&last.state.error),
                            )
                        }
                    },
                    Err(_) => {
                        return (
                            last.state.exit_code as i64,
                            Some("engine shutting down".into()),
                        )
                    }
                }
            }
        })
    }

    /// `DELETE /containers/{id}`
    /// With `remove_volumes` (`rm -v`, and `--rm` containers) its anonymous
    /// volumes go too.
    pub async fn remove(&self, name: &str, force: bool, remove_volumes: bool) -> Result<()> {
        let id = self.lookup(name).await?.id;
        // What was seen before taking the lock may be stale: a restart
        // policy (or the reconcile after a lost boot) can start the
        // container meanwhile. So check again under the lock, and kill again.
        for _ in 0..5 {
            let c = self.lookup(&id).await?;
            if c.is_running() || c.state.restarting {
                if !force {
                    return Err(Error::Conflict(format!(
                        "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                        c.name
                    )));
                }
                self.kill_and_wait(&c).await?;
            }
            let lock = self.lock_of(&id);
            let _guard = lock.lock().await;
            let c = match self.lookup(&id).await {
                // Its exit (ours, by the kill above) let AutoRemove remove
                // it first: removed is what was asked, as dockerd answers.
                Err(Error::NotFound(_)) if c.auto_remove() => return Ok(()),
                other => other?,
            };
            if !(c.is_running() || c.state.restarting) {
                return self.remove_locked(&c, remove_volumes).await;
            }
        }
        Err(Error::Conflict(format!(
            "cannot remove container {id}: it was started again each time it was stopped"
        )))
    }

    pub(crate) async fn remove_locked(&self, c: &Container, remove_volumes: bool) -> Result<()> {
        self.exec_forget_container(&c.id).await;
        match self.core.delete_task(&c.id).await {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let paths = self.paths(&c.id);
        self.networks.leave(&c.id).await;
        rootfs::unmount_rootfs(&paths)?;
        self.pending.drop_all(&c.id);
        if let Err(e) = std::fs::remove_dir_all(&paths.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e.into());
            }
        }
        let volumes: Vec<String> = self
            .store
            .container_mounts(&c.id)
            .await?
            .into_iter()
            .filter(|m| m.kind == "volume")
            .map(|m| m.source)
            .collect();
        self.store.delete_container(&c.id).await?;
        if remove_volumes {
            self.volumes.remove_anonymous(&volumes).await?;
        }
        self.forget_lock(&c.id);
        info!(container_id = %c.id, "container removed");
        self.event(c, "destroy", &[]);
        self.notify(Change::Removed {
            id: c.id.clone(),
            exit_code: Some(c.state.exit_code as i64),
        });
        Ok(())
    }

    pub fn core(&self) -> &CoreClient {
        &self.core
    }
}

fn none_if_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The exit code Docker records (and the CLI returns) for a failed start.
pub(crate) fn exit_code_for_start_error(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
