//! The shim's command line. Only berth-core calls the shim, so this is a
//! fixed set of `--key value` pairs and flags rather than a full CLI parser.

use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Args {
    pub id: String,
    /// The task's state directory (sockets, pid and exit files).
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// Empty: do not log.
    pub log_path: PathBuf,
    /// Rotate the log at this size (0: never), keeping this many files.
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub log_format: crate::log_writer::Format,
    /// Prefix of the shim's sockets (`.attach`, `.ctl`, `.tty` are appended).
    /// Kept apart from the state directory because a unix socket path must
    /// fit in 108 bytes, which a deep state directory does not.
    pub socket_base: PathBuf,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// Exec mode: `bundle` is a process.json to run in container `id` when
    /// started, instead of a bundle to create container `id` from.
    pub exec: bool,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = argv.iter();
        while let Some(key) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{key} needs a value"))
            };
            match key.as_str() {
                "--id" => a.id = value()?,
                "--state-dir" => a.state_dir = value()?.into(),
                "--bundle" => a.bundle = value()?.into(),
                "--runtime" => a.runtime = value()?.into(),
                "--runtime-root" => a.runtime_root = value()?.into(),
                "--log-path" => a.log_path = value()?.into(),
                "--log-format" => {
                    a.log_format = match value()?.as_str() {
                        "local" => crate::log_writer::Format::Local,
                        "json-file" => crate::log_writer::Format::JsonFile,
                        other => return Err(format!("unknown log format {other}")),
                    }
                }
                "--log-max-size" => {
                    a.log_max_size = value()?
                        .parse()
                        .map_err(|_| "--log-max-size needs a number")?
                }
                "--log-max-files" => {
                    a.log_max_files = value()?
                        .parse()
                        .map_err(|_| "--log-max-files needs a number")?
                }
                "--socket-base" => a.socket_base = value()?.into(),
                "--stdin" => a.stdin = true,
                "--stdin-once" => a.stdin_once = true,
                "--tty" => a.tty = true,
                "--exec" => a.exec = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if a.id.is_empty()
            || a.state_dir.as_os_str().is_empty()
            || a.bundle.as_os_str().is_empty()
            || a.runtime.as_os_str().is_empty()
        {
            return Err("--id, --state-dir, --bundle and --runtime are required".into());
        }
        if a.socket_base.as_os_str().is_empty() {
            a.socket_base = a.state_dir.join("sock");
        }
        if a.runtime_root.as_os_str().is_empty() {
            a.runtime_root = a.state_dir.join("runtime");
        }
        Ok(a)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn socket(&self, suffix: &str) -> PathBuf {
        let mut s = self.socket_base.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_required_and_flags() {
        let a = Args::parse(&v(&[
            "--id",
            "c1",
            "--state-dir",
            "/s",
            "--bundle",
            "/b",
            "--runtime",
            "/usr/sbin/runc",
            "--tty",
        ]))
        .unwrap();
        assert_eq!(a.id, "c1");
        assert!(a.tty && !a.stdin);
        assert_eq!(a.runtime_root, PathBuf::from("/s/runtime"));
    }

    #[test]
    fn rejects_missing_and_unknown() {
        assert!(Args::parse(&v(&["--id", "c1"])).is_err());
        assert!(Args::parse(&v(&["--bogus"])).is_err());
        assert!(Args::parse(&v(&["--id"])).is_err());
    }
}
