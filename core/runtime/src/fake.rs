//! A runtime that runs nothing and records every call, for unit tests of
//! the code that drives a runtime (the supervisor's tasks and health checks).
//!
//! One [`Recording`] is both the [`Factory`] and every runtime it opens, so a
//! test sees the calls of all of them in order, whichever binary or root
//! they were opened with. Calls succeed unless a test scripted a failure;
//! `exec` answers with scripted results, exit code 0 when none is left.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{CreateOpts, Error, ExecOutput, Factory, Runtime, State};

/// One call of a runtime, with what a test would check of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create { id: String },
    Start { id: String },
    Exec { id: String, argv: Vec<String> },
    Kill { id: String, signal: i32, all: bool },
    Pause { id: String },
    Resume { id: String },
    Update { id: String, resources: String },
    State { id: String },
    Delete { id: String },
}

impl Call {
    /// The command's name, as a runtime's command line spells it.
    pub fn command(&self) -> &'static str {
        match self {
            Call::Create { .. } => "create",
            Call::Start { .. } => "start",
            Call::Exec { .. } => "exec",
            Call::Kill { .. } => "kill",
            Call::Pause { .. } => "pause",
            Call::Resume { .. } => "resume",
            Call::Update { .. } => "update",
            Call::State { .. } => "state",
            Call::Delete { .. } => "delete",
        }
    }
}

#[derive(Default)]
struct Script {
    calls: Vec<Call>,
    /// Commands that fail from now on, with the runtime's message.
    failing: Vec<(&'static str, String)>,
    exec_results: VecDeque<Result<ExecOutput, Error>>,
}

#[derive(Clone, Default)]
pub struct Recording {
    script: Arc<Mutex<Script>>,
}

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.script().calls.clone()
    }

    /// The names of the calls so far (`["kill", "delete"]`), for short asserts.
    pub fn commands(&self) -> Vec<&'static str> {
        self.script().calls.iter().map(Call::command).collect()
    }

    /// Makes `command` fail with `message` until [`Recording::heal`].
    pub fn fail(&self, command: &'static str, message: &str) {
        self.script().failing.push((command, message.to_string()));
    }

    pub fn heal(&self) {
        self.script().failing.clear();
    }

    /// The result of the next `exec` (queued after earlier ones).
    pub fn answer_exec(&self, result: Result<ExecOutput, Error>) {
        self.script().exec_results.push_back(result);
    }

    fn record(&self, call: Call) -> Result<(), Error> {
        let mut script = self.script();
        let command = call.command();
        script.calls.push(call);
        match script.failing.iter().find(|(c, _)| *c == command) {
            Some((_, message)) => Err(Error::CommandFailed {
                command,
                status: 1,
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl Factory for Recording {
    fn open(&self, _binary: &Path, _root: &Path, _log: &Path) -> Box<dyn Runtime> {
        Box::new(self.clone())
    }
}

impl Runtime for Recording {
    fn create(&self, id: &str, _opts: &CreateOpts) -> Result<(), Error> {
        self.record(Call::Create { id: id.into() })
    }

    fn start(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Start { id: id.into() })
    }

    fn exec(&self, id: &str, argv: &[String], _timeout: Duration) -> Result<ExecOutput, Error> {
        self.record(Call::Exec {
            id: id.into(),
            argv: argv.to_vec(),
        })?;
        self.script()
            .exec_results
            .pop_front()
            .unwrap_or(Ok(ExecOutput::default()))
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        self.record(Call::Kill {
            id: id.into(),
            signal,
            all,
        })
    }

    fn pause(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Pause { id: id.into() })
    }

    fn resume(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Resume { id: id.into() })
    }

    fn update(&self, id: &str, resources_file: &Path) -> Result<(), Error> {
        let resources = std::fs::read_to_string(resources_file).unwrap_or_default();
        self.record(Call::Update {
            id: id.into(),
            resources,
        })
    }

    fn state(&self, id: &str) -> Result<State, Error> {
        self.record(Call::State { id: id.into() })?;
        Ok(State {
            status: "running".into(),
            pid: 0,
        })
    }

    fn delete(&self, id: &str) -> Result<(), Error> {
        self.record(Call::Delete { id: id.into() })
    }
}
