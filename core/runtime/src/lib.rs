//! The OCI runtime (runc or crun) driven through its standard command line.
//!
//! Synchronous on purpose: the shim, which has no async runtime, is the main
//! user. Every call runs the runtime binary with a private `--root` so that
//! Berth's containers never mix with another engine's, and with `--log` so that
//! the runtime's own errors do not end up in the container's output (in
//! detached mode the runtime hands its stdio to the container).

#![deny(unsafe_code)]

mod error;
mod hybrid;
pub mod probe;
mod wording;

pub use error::Error;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a shim needs from a runtime; a trait so that shim logic can be tested
/// with a recording fake.
pub trait Runtime {
    /// `create`: sets up the container and leaves its process waiting for `start`.
    fn create(&self, id: &str, opts: &CreateOpts) -> Result<(), Error>;
    fn start(&self, id: &str) -> Result<(), Error>;
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error>;
    /// `delete --force`: removes what the runtime keeps for a container.
    fn delete(&self, id: &str) -> Result<(), Error>;
}

/// Options of `create`; stdio is the caller's (see [`Cli::create_with_stdio`]).
#[derive(Debug, Clone)]
pub struct CreateOpts {
    pub bundle: PathBuf,
    pub pid_file: PathBuf,
    /// Set when the process gets a terminal: the runtime sends the pty master here.
    pub console_socket: Option<PathBuf>,
}

/// A runtime binary with its state root and log file.
#[derive(Debug, Clone)]
pub struct Cli {
    pub binary: PathBuf,
    /// `--root`: where the runtime keeps its per-container state.
    pub root: PathBuf,
    /// `--log`: the runtime writes its errors here, as JSON lines.
    pub log: PathBuf,
}

impl Cli {
    pub fn new(
        binary: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Cli {
            binary: binary.into(),
            root: root.into(),
            log: log.into(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        cmd
    }

    /// The command for `create` or `run`: the only ones that check the
    /// host's cgroup layout (see `hybrid.rs`).
    fn creating_command(&self) -> Command {
        let mut cmd = self.command();
        if hybrid::is_crun(&self.binary) && hybrid::host_is_hybrid_with_v2_controllers() {
            hybrid::hide_unified_cgroup(&mut cmd);
        }
        cmd
    }

    /// Runs a command with null stdio and turns a failure into an error that
    /// carries the runtime's own message.
    fn run(&self, mut cmd: Command, what: &'static str) -> Result<(), Error> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.finish(cmd, what)
    }

    fn finish(&self, mut cmd: Command, what: &'static str) -> Result<(), Error> {
        let out = cmd.output().map_err(|e| Error::Spawn {
            binary: self.binary.clone(),
            source: e,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let mut message = last_log_error(&self.log).unwrap_or_default();
        if message.is_empty() {
            message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        }
        Err(Error::CommandFailed {
            command: what,
            status: out.status.code().unwrap_or(-1),
            message: wording::docker_wording(&message),
        })
    }

    /// `create` with the given stdio, which the container's process inherits
    /// when it has no terminal.
    pub fn create_with_stdio(
        &self,
        id: &str,
        opts: &CreateOpts,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(), Error> {
        let mut cmd = self.creating_command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(&opts.bundle)
            .arg("--pid-file")
            .arg(&opts.pid_file);
        if let Some(sock) = &opts.console_socket {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(id).stdin(stdin).stdout(stdout).stderr(stderr);
        self.finish(cmd, "create")
    }

    /// `exec --detach`: starts the process described by `opts.bundle` (a
    /// process.json) in container `id`; returns once it runs. The process
    /// is re-parented to the caller if it is a subreaper.
    pub fn exec_detached_with_stdio(
        &self,
        id: &str,
        opts: &CreateOpts,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("exec")
            .arg("--detach")
            .arg("--process")
            .arg(&opts.bundle)
            .arg("--pid-file")
            .arg(&opts.pid_file);
        if let Some(sock) = &opts.console_socket {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(id).stdin(stdin).stdout(stdout).stderr(stderr);
        self.finish(cmd, "exec")
    }

    /// `pause`: freezes every process of the container (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("pause").arg(id);
        self.run(cmd, "pause")
    }

    /// `resume`: thaws what `pause` froze.
    pub fn resume(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("resume").arg(id);
        self.run(cmd, "resume")
    }

    /// `update --resources FILE`: applies OCI `linux.resources` (JSON in
    /// `resources_file`) to a running container's cgroup.
    pub fn update(&self, id: &str, resources_file: &Path) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("update")
            .arg("--resources")
            .arg(resources_file)
            .arg(id);
        self.run(cmd, "update")
    }

    pub fn state(&self, id: &str) -> Result<serde_json::Value, Error> {
        let mut cmd = self.command();
        cmd.arg("state").arg(id);
        let out = cmd.output().map_err(|e| Error::Spawn {
            binary: self.binary.clone(),
            source: e,
        })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                command: "state",
                status: out.status.code().unwrap_or(-1),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        serde_json::from_slice(&out.stdout).map_err(|e| Error::BadOutput(e.to_string()))
    }
}

impl Runtime for Cli {
    fn create(&self, id: &str, opts: &CreateOpts) -> Result<(), Error> {
        self.create_with_stdio(id, opts, Stdio::null(), Stdio::null(), Stdio::null())
    }

    fn start(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("start").arg(id);
        self.run(cmd, "start")
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("kill");
        if all {
            cmd.arg("--all");
        }
        cmd.arg(id).arg(signal.to_string());
        self.run(cmd, "kill")
    }

    fn delete(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("delete").arg("--force").arg(id);
        self.run(cmd, "delete")
    }
}

/// The last `"level":"error"` message in a runtime's JSON log, which is the
/// sentence worth showing a user ("exec: \"nosuch\": executable file not found").
pub fn last_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? == "error" {
            Some(v.get("msg")?.as_str()?.to_string())
        } else {
            None
        }
    })
}

/// Finds a runtime given by name (looked up on PATH) or by path.
pub fn resolve(name_or_path: &str) -> Option<PathBuf> {
    if name_or_path.contains('/') {
        let p = PathBuf::from(name_or_path);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name_or_path))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_of_the_runtime_log_is_the_message() {
        let dir = std::env::temp_dir().join(format!("berth-rt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"nosuch\\\": executable file not found in $PATH\"}\n{\"level\":\"info\",\"msg\":\"i\"}\n",
        )
        .unwrap();
        assert_eq!(
            last_log_error(&log).unwrap(),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_finds_binaries_on_path_and_rejects_missing_paths() {
        assert!(resolve("sh").is_some());
        assert!(resolve("/nonexistent/runc").is_none());
    }
}
