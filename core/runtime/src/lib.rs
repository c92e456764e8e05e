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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(feature = "fake")]
pub mod fake;

/// Every call Berth makes of an OCI runtime; a trait so that the shim and
/// the supervisor can be tested with a recording fake (`fake`, behind the
/// `fake` feature). Synchronous, as the runtime is a command that runs and
/// exits; async callers run these on a blocking thread.
pub trait Runtime: Send + Sync {
    /// `create`: sets up the container and leaves its process waiting for `start`.
    fn create(&self, id: &str, opts: &CreateOpts) -> Result<(), Error>;
    fn start(&self, id: &str) -> Result<(), Error>;
    /// `exec` of `argv` in the container, attached, for at most `timeout`
    /// (health checks): its exit code and its stdout followed by its stderr.
    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput, Error>;
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error>;
    /// `pause`: freezes every process of the container (cgroup freezer).
    fn pause(&self, id: &str) -> Result<(), Error>;
    /// `resume`: thaws what `pause` froze.
    fn resume(&self, id: &str) -> Result<(), Error>;
    /// `update --resources FILE`: applies OCI `linux.resources` (JSON in
    /// `resources_file`) to a running container's cgroup.
    fn update(&self, id: &str, resources_file: &Path) -> Result<(), Error>;
    fn state(&self, id: &str) -> Result<State, Error>;
    /// `delete --force`: removes what the runtime keeps for a container.
    fn delete(&self, id: &str) -> Result<(), Error>;
}

/// Opens a runtime binary with its state root and log file. The supervisor
/// is handed one, so that its tests can hand it a fake instead.
pub trait Factory: Send + Sync {
    fn open(&self, binary: &Path, root: &Path, log: &Path) -> Box<dyn Runtime>;
}

/// The real thing: [`Cli`] over the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliFactory;

impl Factory for CliFactory {
    fn open(&self, binary: &Path, root: &Path, log: &Path) -> Box<dyn Runtime> {
        Box::new(Cli::new(binary, root, log))
    }
}

/// What an attached `exec` left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// Its stdout, then its stderr.
    pub output: Vec<u8>,
}

/// `state`: what the runtime says of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    pub pid: i32,
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
}

impl Runtime for Cli {
    fn pause(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("pause").arg(id);
        self.run(cmd, "pause")
    }

    fn resume(&self, id: &str) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("resume").arg(id);
        self.run(cmd, "resume")
    }

    fn update(&self, id: &str, resources_file: &Path) -> Result<(), Error> {
        let mut cmd = self.command();
        cmd.arg("update")
            .arg("--resources")
            .arg(resources_file)
            .arg(id);
        self.run(cmd, "update")
    }

    fn state(&self, id: &str) -> Result<State, Error> {
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
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| Error::BadOutput(e.to_string()))?;
        Ok(State {
            status: v["status"].as_str().unwrap_or_default().to_string(),
            pid: v["pid"].as_i64().unwrap_or(0) as i32,
        })
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput, Error> {
        let mut cmd = self.command();
        cmd.arg("exec").arg(id).args(argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::Spawn {
            binary: self.binary.clone(),
            source: e,
        })?;
        // Each pipe is read to its end on a thread of its own; the deadline
        // is kept while waiting for them, so that the child (owned here)
        // can be killed when it passes.
        let (tx, rx) = mpsc::channel();
        let pipes: [(usize, Option<Box<dyn Read + Send>>); 2] = [
            (0, child.stdout.take().map(|p| Box::new(p) as _)),
            (1, child.stderr.take().map(|p| Box::new(p) as _)),
        ];
        for (slot, pipe) in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf);
                }
                let _ = tx.send((slot, buf));
            });
        }
        let deadline = Instant::now() + timeout;
        let mut outputs = [Vec::new(), Vec::new()];
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((slot, buf)) => outputs[slot] = buf,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::TimedOut(timeout));
                }
            }
        }
        let status = child.wait()?;
        let [mut output, stderr] = outputs;
        output.extend_from_slice(&stderr);
        Ok(ExecOutput {
            exit_code: status.code().unwrap_or(1),
            output,
        })
    }
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

    /// A stand-in runtime binary: `exec <id> <argv…>` runs argv on the host.
    fn script_runtime(dir: &Path) -> Cli {
        let bin = dir.join("runtime");
        std::fs::write(
            &bin,
            "#!/bin/sh\nwhile [ \"$1\" != exec ]; do shift; done\nshift 2\nexec \"$@\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Cli::new(bin, dir.join("root"), dir.join("log.json"))
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn exec_gives_exit_code_and_stdout_then_stderr() {
        let dir = std::env::temp_dir().join(format!("berth-rt-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = script_runtime(&dir);
        let out = rt
            .exec(
                "c1",
                &argv(&["sh", "-c", "echo err >&2; echo out; exit 3"]),
                Duration::from_secs(30),
            )
            .unwrap();
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.output, b"out\nerr\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exec_past_its_deadline_is_killed() {
        let dir = std::env::temp_dir().join(format!("berth-rt-timeout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = script_runtime(&dir);
        let started = Instant::now();
        let err = rt
            .exec("c1", &argv(&["sleep", "30"]), Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, Error::TimedOut(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_finds_binaries_on_path_and_rejects_missing_paths() {
        assert!(resolve("sh").is_some());
        assert!(resolve("/nonexistent/runc").is_none());
    }
}
