//! The fakes the tasks' tests run over: shims in-process, a state
//! directory per test, and a core built as `berth-core` builds one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_proto::shim::{self as contract, files, Request};
use berth_proto::{CreateTaskRequest, Event, TaskStatus};
use berth_runtime::fake::Recording;
use berth_runtime::{CreateOpts, Runtime};
use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, watch};

use crate::event_log::EventLog;
use crate::runtimes::Runtimes;
use crate::shim::{Shims, Spawned};
use crate::tasks::{now, Tasks};
use crate::Error;

pub(super) const NS: &str = "test";

/// Shims as the real ones behave toward the core: a spawn has the runtime
/// create the container and writes `shim.pid`; `start` starts it (an exec
/// writes `init.pid`); a kill ends the process with 128 + signal and its
/// exit file. Tests end processes with [`FakeShims::exit`] or kill a shim
/// without an exit file with [`FakeShims::crash`].
pub(super) struct FakeShims {
    runtime: Recording,
    state: Mutex<ShimState>,
}

#[derive(Default)]
pub(super) struct ShimState {
    next_pid: i32,
    /// By socket prefix, which a task keeps across restarts.
    shims: HashMap<PathBuf, FakeShim>,
    pub(super) spawn_error: Option<String>,
}

struct FakeShim {
    args: contract::Args,
    shim_pid: i32,
    exited: watch::Sender<bool>,
}

impl FakeShim {
    fn is_of(&self, task: &str) -> bool {
        self.args.state_dir.ends_with(task)
    }

    fn alive(&self) -> bool {
        !*self.exited.borrow()
    }
}

impl FakeShims {
    pub(super) fn new(runtime: Recording) -> Arc<FakeShims> {
        Arc::new(FakeShims {
            runtime,
            state: Mutex::new(ShimState {
                next_pid: 1000,
                ..Default::default()
            }),
        })
    }

    pub(super) fn state(&self) -> MutexGuard<'_, ShimState> {
        self.state.lock().unwrap()
    }

    /// The live shim of `task`, with what `f` makes of it.
    fn with_live<T>(&self, task: &str, f: impl FnOnce(&FakeShim) -> T) -> Option<T> {
        let state = self.state();
        state
            .shims
            .values()
            .find(|s| s.is_of(task) && s.alive())
            .map(f)
    }

    /// The task's process exits with `code`, as the shim records it.
    pub(super) fn exit(&self, task: &str, code: i32) {
        self.with_live(task, |s| {
            contract::Exit {
                exit_code: code,
                finished_at: now(),
                oom_killed: false,
            }
            .write(&s.args.state_dir)
            .unwrap();
            s.exited.send_replace(true);
        })
        .unwrap_or_else(|| panic!("no live shim of {task}"));
    }

    /// The task's shim is killed: it leaves no exit file.
    pub(super) fn crash(&self, task: &str) {
        self.with_live(task, |s| s.exited.send_replace(true))
            .unwrap_or_else(|| panic!("no live shim of {task}"));
    }

    pub(super) fn alive(&self, task: &str) -> bool {
        self.with_live(task, |_| ()).is_some()
    }

    pub(super) fn args_of(&self, task: &str) -> contract::Args {
        self.with_live(task, |s| s.args.clone()).unwrap()
    }
}

impl Shims for FakeShims {
    fn spawn<'a>(&'a self, args: &'a contract::Args) -> BoxFuture<'a, Result<Spawned, Error>> {
        Box::pin(async move {
            if let Some(message) = self.state().spawn_error.clone() {
                return Err(Error::Runtime(message));
            }
            let opts = CreateOpts {
                bundle: args.bundle.clone(),
                pid_file: args.file(files::INIT_PID),
                console_socket: None,
            };
            self.runtime
                .create(&args.id, &opts)
                .map_err(|e| Error::Runtime(e.to_string()))?;
            let mut state = self.state();
            state.next_pid += 2;
            let (init_pid, shim_pid) = (state.next_pid, state.next_pid + 1);
            std::fs::write(args.file(files::SHIM_PID), shim_pid.to_string()).unwrap();
            let shim = FakeShim {
                args: args.clone(),
                shim_pid,
                exited: watch::channel(false).0,
            };
            state.shims.insert(args.socket_base.clone(), shim);
            Ok(Spawned { init_pid, shim_pid })
        })
    }

    fn control<'a>(
        &'a self,
        socket_base: &'a Path,
        request: Request,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let not_running = || Error::FailedPrecondition("container is not running".into());
            let args = match self.state().shims.get(socket_base) {
                Some(s) if s.alive() => s.args.clone(),
                _ => return Err(not_running()),
            };
            let task = args.state_dir.file_name().unwrap().to_string_lossy();
            let runtime_error = |e: berth_runtime::Error| Error::Runtime(e.to_string());
            match request {
                Request::Start => {
                    self.runtime.start(&args.id).map_err(runtime_error)?;
                    if args.exec {
                        std::fs::write(args.file(files::INIT_PID), "4242").unwrap();
                    }
                }
                Request::Kill { signal, all } => {
                    self.runtime
                        .kill(&args.id, signal, all)
                        .map_err(runtime_error)?;
                    self.exit(&task, 128 + signal);
                }
                Request::Resize { .. } | Request::CloseStdin => {}
            }
            Ok(())
        })
    }

    fn exited(&self, shim_pid: i32) -> BoxFuture<'static, ()> {
        let rx = self
            .state()
            .shims
            .values()
            .find(|s| s.shim_pid == shim_pid)
            .map(|s| s.exited.subscribe());
        Box::pin(async move {
            if let Some(mut rx) = rx {
                let _ = rx.wait_for(|exited| *exited).await;
            }
        })
    }

    fn is_shim_of(&self, shim_pid: i32, id: &str) -> bool {
        self.state()
            .shims
            .values()
            .any(|s| s.shim_pid == shim_pid && s.is_of(id) && s.alive())
    }

    fn is_a_shim(&self, shim_pid: i32) -> bool {
        self.state()
            .shims
            .values()
            .any(|s| s.shim_pid == shim_pid && s.alive())
    }

    fn kill(&self, shim_pid: i32) {
        let state = self.state();
        if let Some(s) = state.shims.values().find(|s| s.shim_pid == shim_pid) {
            s.exited.send_replace(true);
        }
    }
}

/// A state directory of its own, removed when the test ends.
pub(super) struct StateDir(pub(super) PathBuf);

impl StateDir {
    pub(super) fn new(test: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("berth-tasks-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A core over the fakes, as `berth-core` builds one.
pub(super) struct Core {
    pub(super) tasks: Tasks,
    pub(super) events: Arc<EventLog>,
}

impl Core {
    pub(super) fn open(dir: &StateDir, runtime: &Recording, shims: &Arc<FakeShims>) -> Core {
        let runtimes = Runtimes::only(&dir.0, "fake", Path::new("/fake/runc"));
        let events = Arc::new(EventLog::open(&dir.0).unwrap());
        let tasks = Tasks::new(
            dir.0.clone(),
            runtimes,
            Arc::new(runtime.clone()),
            shims.clone(),
            events.clone(),
        );
        Core { tasks, events }
    }

    pub(super) fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe(u64::MAX).1
    }

    pub(super) fn status(&self, id: &str) -> TaskStatus {
        self.tasks.inspect(NS, id).unwrap().status
    }
}

pub(super) struct Fixture {
    pub(super) core: Core,
    pub(super) runtime: Recording,
    pub(super) shims: Arc<FakeShims>,
    pub(super) dir: StateDir,
}

impl Fixture {
    pub(super) fn new(test: &str) -> Fixture {
        let dir = StateDir::new(test);
        let runtime = Recording::new();
        let shims = FakeShims::new(runtime.clone());
        Fixture {
            core: Core::open(&dir, &runtime, &shims),
            runtime,
            shims,
            dir,
        }
    }

    pub(super) async fn running(&self, req: CreateTaskRequest) {
        let id = req.id.clone();
        self.core.tasks.create(NS, req).await.unwrap();
        let info = self.core.tasks.start(NS, &id).await.unwrap();
        assert_eq!(info.status, TaskStatus::Running);
    }
}
