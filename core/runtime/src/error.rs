use std::path::PathBuf;

/// Everything that can go wrong driving a runtime binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    /// The runtime ran and failed; `message` is its own explanation.
    #[error("runtime {command} failed (exit status {status}): {message}")]
    CommandFailed {
        command: &'static str,
        status: i32,
        message: String,
    },
    /// An attached `exec` outlived its deadline and was killed.
    #[error("timed out after {0:?}")]
    TimedOut(std::time::Duration),
    #[error("unexpected runtime output: {0}")]
    BadOutput(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
