//! What a build tells its client, in either protocol. The Dockerfile
//! engine reports typed events (a step starts, was cached, printed output,
//! failed); the legacy `/build` stream turns them into Docker's JSON
//! messages ("Step 2/5 : RUN …", " ---> Using cache"), a BuildKit solve
//! into status vertexes (`[2/3] RUN …`, CACHED, log lines).

use std::sync::Arc;

use super::status::{Status, VertexHandle, STDERR, STDOUT};
use crate::error::Error;
use crate::images::progress::Progress;

pub enum Output {
    /// `POST /build`: the stream, or with `-q` held back and shown only
    /// when the build fails.
    Legacy {
        progress: Arc<Progress>,
        quiet: bool,
        held: String,
    },
    /// A BuildKit solve: the step being run is the open vertex.
    Status {
        status: Arc<Status>,
        current: Option<VertexHandle>,
    },
}

/// How one step is announced.
pub struct StepHeader<'a> {
    /// The legacy builder's line: `Step 2/5 : RUN make`.
    pub legacy: &'a str,
    /// BuildKit's vertex name (`[2/3] RUN make`), for the instructions
    /// that make one; ENV, LABEL and the like make none.
    pub vertex: Option<String>,
}

impl Output {
    pub fn legacy(progress: Arc<Progress>, quiet: bool) -> Output {
        Output::Legacy {
            progress,
            quiet,
            held: String::new(),
        }
    }

    pub fn status(status: Arc<Status>) -> Output {
        Output::Status {
            status,
            current: None,
        }
    }

    /// The output of a stage that runs beside others (BuildKit only): the
    /// same status, its own open vertex.
    pub fn fork(&self) -> Output {
        match self {
            Output::Status { status, .. } => Output::status(status.clone()),
            Output::Legacy {
                progress, quiet, ..
            } => Output::legacy(progress.clone(), *quiet),
        }
    }

    /// The legacy stream, for what only it carries (pull progress relayed,
    /// the built image's id).
    pub fn legacy_stream(&self) -> Option<&Arc<Progress>> {
        match self {
            Output::Legacy { progress, .. } => Some(progress),
            Output::Status { .. } => None,
        }
    }

    pub fn is_quiet(&self) -> bool {
        matches!(self, Output::Legacy { quiet: true, .. })
    }

    /// A line of the legacy builder's own (" ---> 3f2a…", "Removing
    /// intermediate container …"); BuildKit shows nothing for these.
    pub fn say(&mut self, text: &str) {
        if let Output::Legacy {
            progress,
            quiet,
            held,
        } = self
        {
            if *quiet {
                held.push_str(text);
            } else {
                progress.stream(text);
            }
        }
    }

    /// A warning of the Dockerfile (an unconsumed build arg, a parser
    /// note): a line of the legacy stream; BuildKit's form is not made yet.
    pub fn warn(&mut self, text: &str) {
        match self {
            Output::Legacy { .. } => self.say(&format!("{text}\n")),
            Output::Status { .. } => tracing::debug!(warning = text, "build warning"),
        }
    }

    /// The error of a RUN whose command exited non-zero, in each
    /// builder's words (BuildKit's as dockerd 20.10's prints them).
    pub fn command_failed(&self, cmdline: &str, code: i64) -> Error {
        let msg = match self {
            Output::Legacy { .. } => {
                format!("The command '{cmdline}' returned a non-zero code: {code}")
            }
            Output::Status { .. } => {
                format!("executor failed running [{cmdline}]: exit code: {code}")
            }
        };
        Error::CommandFailed(msg, code)
    }

    /// A step begins; the previous step's vertex, if still open, is done.
    pub fn step(&mut self, header: StepHeader<'_>) {
        match self {
            Output::Legacy { .. } => self.say(header.legacy),
            Output::Status { status, current } => {
                if let Some(v) = current.take() {
                    v.done();
                }
                *current = header.vertex.map(|name| status.vertex(&name));
            }
        }
    }

    /// A vertex of its own outside the steps (`[internal] load metadata
    /// for …`), done at once.
    pub fn internal(&mut self, name: &str) {
        if let Output::Status { status, .. } = self {
            status.vertex(name).done();
        }
    }

    /// The current step's result came from the cache.
    pub fn cached(&mut self, short_id: &str) {
        match self {
            Output::Legacy { .. } => {
                self.say(" ---> Using cache\n");
                self.say(&format!(" ---> {short_id}\n"));
            }
            Output::Status { current, .. } => {
                if let Some(v) = current.take() {
                    v.cached();
                }
            }
        }
    }

    /// Output of a RUN step's command.
    pub fn command_output(&mut self, stderr: bool, text: &str) {
        match self {
            // stderr wrapped in red as the classic builder shows it
            // (`ESC[91m` … `ESC[0m`, which clients look for).
            Output::Legacy { .. } if stderr => self.say(&format!("\x1b[91m{text}\x1b[0m")),
            Output::Legacy { .. } => self.say(text),
            Output::Status { current, .. } => {
                if let Some(v) = current {
                    v.log(if stderr { STDERR } else { STDOUT }, text.as_bytes());
                }
            }
        }
    }

    /// The build failed: the legacy stream ends with the error message
    /// (and what `-q` held back); BuildKit marks the step that failed.
    pub fn failed(&mut self, e: &Error) {
        match self {
            Output::Legacy {
                progress,
                quiet,
                held,
            } => {
                if *quiet && !held.is_empty() {
                    progress.stream(&std::mem::take(held));
                }
                match e {
                    Error::CommandFailed(msg, code) => progress.error_with_code(msg, *code),
                    other => progress.error(&other.to_string()),
                }
            }
            Output::Status { current, .. } => {
                if let Some(v) = current.take() {
                    v.error(&e.to_string());
                }
            }
        }
    }

    /// The last step is over.
    pub fn end_steps(&mut self) {
        if let Output::Status { current, .. } = self {
            if let Some(v) = current.take() {
                v.done();
            }
        }
    }
}
