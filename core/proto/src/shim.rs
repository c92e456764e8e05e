//! The contract between berth-core and a berth-shim, written once for both
//! sides: the shim's command line, its readiness line, the requests of its
//! control socket, the files of its task directory and its exit file.
//!
//! Only berth-core starts shims, and a shim outlives the core that started
//! it (a newer core adopts it), so every change here must stay readable by
//! the other side's older build: add flags and fields, never rename them.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Files of a task's state directory.
pub mod files {
    /// The container's exit, written by the shim once it is known.
    pub const EXIT: &str = "exit.json";
    /// The shim's own pid.
    pub const SHIM_PID: &str = "shim.pid";
    /// The container's init (or the exec's process) pid, as the runtime
    /// wrote it.
    pub const INIT_PID: &str = "init.pid";
}

/// Suffixes of the shim's sockets, appended to its `--socket-base`.
pub mod sockets {
    /// Attach sessions (berth_proto::attach framing).
    pub const ATTACH: &str = ".attach";
    /// One request line, one answer line: see [`super::Request`].
    pub const CONTROL: &str = ".ctl";
    /// The runtime's console socket (TTY containers).
    pub const TTY: &str = ".tty";
}

/// A shim socket's path: the base plus a suffix of [`sockets`]. (A unix
/// socket path must fit in 108 bytes, so the base is kept apart from the
/// possibly deep state directory.)
pub fn socket(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The log file format a shim writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Docker's json-file: one JSON object per line.
    #[default]
    JsonFile,
    /// Docker's `local` driver: length-prefixed protobuf records.
    Local,
    /// The CRI's: a text line an entry (see [`crate::cri_log`]).
    Cri,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::JsonFile => "json-file",
            LogFormat::Local => "local",
            LogFormat::Cri => "cri",
        }
    }

    /// The format of a driver name; "" (unset) is json-file.
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        match s {
            "" | "json-file" => Ok(LogFormat::JsonFile),
            "local" => Ok(LogFormat::Local),
            "cri" => Ok(LogFormat::Cri),
            other => Err(format!("unknown log format {other}")),
        }
    }
}

/// A syslog receiver the shim sends each line of output to, as Docker's
/// syslog driver does: one message a line, stdout at severity info,
/// stderr at err.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Syslog {
    /// `udp://host:port`, `tcp://host:port`, `tcp+tls://host:port`,
    /// `unix:///path` (a stream socket), `unixgram:///path`; empty: the
    /// host's own syslog socket (/dev/log). The port is always given.
    pub address: String,
    /// Docker's `syslog-format`: "" (its default, the BSD form without a
    /// host name), `rfc3164`, `rfc5424`, `rfc5424micro`.
    #[serde(default)]
    pub format: String,
    /// The facility's number (daemon: 3).
    pub facility: u8,
    /// The tag (application name), its template already filled in.
    pub tag: String,
    /// `mode=non-blocking`: messages the receiver has not taken wait up to
    /// this many bytes, and what does not fit is dropped; 0: blocking (the
    /// container's output waits for the receiver).
    #[serde(default)]
    pub max_buffer: u64,
    /// For `tcp+tls://`: how the receiver is trusted and who we are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SyslogTls>,
}

/// Docker's `syslog-tls-*` options: PEM files (empty: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogTls {
    /// The CA the receiver's certificate must chain to (empty: the
    /// host's CA bundle).
    #[serde(default)]
    pub ca_cert: String,
    /// A client certificate and its key, for receivers that ask for one.
    #[serde(default)]
    pub cert: String,
    #[serde(default)]
    pub key: String,
    /// Take any certificate (`syslog-tls-skip-verify`).
    #[serde(default)]
    pub skip_verify: bool,
}

/// A journald the shim sends each line to, as Docker's journald driver
/// does (its native protocol; see the shim's journald.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journald {
    /// The journal's native socket (`/run/systemd/journal/socket`).
    pub socket: String,
    /// Every entry's fields besides MESSAGE and PRIORITY, in order
    /// (CONTAINER_ID, CONTAINER_NAME, SYSLOG_IDENTIFIER, …).
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    /// As [`Syslog::max_buffer`].
    #[serde(default)]
    pub max_buffer: u64,
}

/// A fluentd receiver the shim sends each line to, as Docker's fluentd
/// driver does: the forward protocol's message mode, one
/// `[tag, time, record, {}]` a line (see the shim's fluentd.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fluentd {
    /// `tcp://host:port` or `unix:///path`.
    pub address: String,
    /// The tag, its template already filled in.
    pub tag: String,
    /// `fluentd-sub-second-precision`: times as the protocol's EventTime
    /// (seconds and nanoseconds) rather than whole seconds.
    #[serde(default)]
    pub sub_second: bool,
    /// `fluentd-async`: a start does not wait for the receiver; lines wait
    /// in a buffer of `max_buffer` bytes (what does not fit is dropped)
    /// while it is away.
    #[serde(default)]
    pub lazy: bool,
    /// `fluentd-retry-wait` in milliseconds: the first wait before dialling
    /// again, growing by half each time (at most a minute).
    #[serde(default)]
    pub retry_wait_ms: u64,
    /// `fluentd-max-retries`: dials before a message is given up.
    #[serde(default)]
    pub max_retries: u64,
    /// `fluentd-request-ack`: each message asks the receiver for an
    /// acknowledgement, and the next waits for it (one unacknowledged is
    /// sent again on a new connection).
    #[serde(default)]
    pub request_ack: bool,
    /// As [`Syslog::max_buffer`].
    #[serde(default)]
    pub max_buffer: u64,
    /// The record's fields besides `log`, `source` and the partial ones
    /// (`container_id`, `container_name`, the `labels`/`env` attributes).
    /// They travel in [`LOG_FIELDS_ENV`], not on the command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// A GELF receiver (Graylog) the shim sends each line to, as Docker's gelf
/// driver does (see the shim's gelf.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gelf {
    /// `udp://host:port` or `tcp://host:port`.
    pub address: String,
    /// The message's `host`: the machine's name.
    pub host: String,
    /// UDP only: "gzip" (dockerd's default), "zlib" or "none".
    #[serde(default)]
    pub compression: String,
    /// The deflate level, -1 (the library's default) to 9.
    #[serde(default)]
    pub level: i32,
    /// TCP only: tries to connect again after a failed send, and the
    /// seconds between them (dockerd's `gelf-tcp-max-reconnect`, 3, and
    /// `gelf-tcp-reconnect-delay`, 1).
    #[serde(default)]
    pub max_reconnect: u32,
    #[serde(default)]
    pub reconnect_delay_s: u32,
    /// As [`Syslog::max_buffer`].
    #[serde(default)]
    pub max_buffer: u64,
    /// The message's additional fields (`_container_id`, …, `_tag`, the
    /// attributes), sorted by name. In [`LOG_FIELDS_ENV`] for the shim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// The journald, fluentd or GELF fields reach the shim in its environment
/// (JSON), not on its command line: they may hold `env` values the user
/// chose to log, and a command line is readable by every user (and
/// recorded by journald in each entry's _CMDLINE), an environment only by
/// the shim's owner. The shim removes it once read, so the runtime it
/// starts does not inherit it.
pub const LOG_FIELDS_ENV: &str = "BERTH_LOG_FIELDS";

/// How a start that could not reach its log receiver fails, in dockerd's
/// words: the shim's message starts so, and the engine passes it on as is.
pub const LOGGING_FAILED: &str = "failed to initialize logging driver";

/// The shim's command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub id: String,
    /// The task's state directory (pid and exit files).
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// Empty: do not log.
    pub log_path: PathBuf,
    /// Rotate the log at this size (0: never), keeping this many files.
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub log_format: LogFormat,
    /// Where each line also goes (`--syslog-*`, `--journald-*`, and the
    /// two below).
    pub syslog: Option<Syslog>,
    pub journald: Option<Journald>,
    /// `--fluentd` and `--gelf`: their settings as JSON, fields apart.
    pub fluentd: Option<Fluentd>,
    pub gelf: Option<Gelf>,
    /// Prefix of the shim's sockets (see [`sockets`]).
    pub socket_base: PathBuf,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// Exec mode: `bundle` is a process.json to run in container `id` when
    /// started, instead of a bundle to create container `id` from.
    pub exec: bool,
}

impl Args {
    /// The arguments that start a shim with these settings.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut pair = |k: &str, v: &OsString| {
            out.push(k.into());
            out.push(v.clone());
        };
        pair("--id", &self.id.clone().into());
        pair("--state-dir", &self.state_dir.clone().into());
        pair("--bundle", &self.bundle.clone().into());
        pair("--runtime", &self.runtime.clone().into());
        pair("--runtime-root", &self.runtime_root.clone().into());
        pair("--socket-base", &self.socket_base.clone().into());
        if !self.log_path.as_os_str().is_empty() {
            pair("--log-path", &self.log_path.clone().into());
            pair("--log-format", &self.log_format.name().into());
            if self.log_max_size > 0 {
                pair("--log-max-size", &self.log_max_size.to_string().into());
                pair(
                    "--log-max-files",
                    &self.log_max_files.max(1).to_string().into(),
                );
            }
        }
        if let Some(s) = &self.syslog {
            pair("--syslog-address", &s.address.clone().into());
            pair("--syslog-format", &s.format.clone().into());
            pair("--syslog-facility", &s.facility.to_string().into());
            pair("--syslog-tag", &s.tag.clone().into());
            if s.max_buffer > 0 {
                pair("--syslog-max-buffer", &s.max_buffer.to_string().into());
            }
            if let Some(t) = &s.tls {
                pair("--syslog-tls-ca-cert", &t.ca_cert.clone().into());
                pair("--syslog-tls-cert", &t.cert.clone().into());
                pair("--syslog-tls-key", &t.key.clone().into());
                if t.skip_verify {
                    pair("--syslog-tls-skip-verify", &"true".into());
                }
            }
        }
        if let Some(j) = &self.journald {
            pair("--journald-socket", &j.socket.clone().into());
            if j.max_buffer > 0 {
                pair("--journald-max-buffer", &j.max_buffer.to_string().into());
            }
        }
        if let Some(f) = &self.fluentd {
            let bare = Fluentd {
                fields: Vec::new(),
                ..f.clone()
            };
            pair("--fluentd", &json(&bare).into());
        }
        if let Some(g) = &self.gelf {
            let bare = Gelf {
                fields: Vec::new(),
                ..g.clone()
            };
            pair("--gelf", &json(&bare).into());
        }
        for (on, flag) in [
            (self.exec, "--exec"),
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.tty, "--tty"),
        ] {
            if on {
                out.push(flag.into());
            }
        }
        out
    }

    /// What the shim's environment must hold besides its command line.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        match self.log_fields() {
            Some(fields) => vec![(LOG_FIELDS_ENV, json(fields))],
            None => Vec::new(),
        }
    }

    /// The fields of the driver that has them (at most one is set).
    fn log_fields(&self) -> Option<&Vec<(String, String)>> {
        self.journald
            .as_ref()
            .map(|j| &j.fields)
            .or(self.fluentd.as_ref().map(|f| &f.fields))
            .or(self.gelf.as_ref().map(|g| &g.fields))
    }

    /// Reads the shim's command line (without the program name) and the
    /// part of its settings in its environment.
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        Self::parse_with(argv, std::env::var(LOG_FIELDS_ENV).ok().as_deref())
    }

    /// [`Args::parse`], with the log fields given (the value of
    /// [`LOG_FIELDS_ENV`]).
    pub fn parse_with(argv: &[String], log_fields: Option<&str>) -> Result<Args, String> {
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
                "--log-format" => a.log_format = LogFormat::parse(&value()?)?,
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
                "--syslog-address" => a.syslog_mut().address = value()?,
                "--syslog-format" => a.syslog_mut().format = value()?,
                "--syslog-facility" => {
                    a.syslog_mut().facility = value()?
                        .parse()
                        .map_err(|_| "--syslog-facility needs a number")?
                }
                "--syslog-tag" => a.syslog_mut().tag = value()?,
                "--syslog-tls-ca-cert" => a.syslog_tls_mut().ca_cert = value()?,
                "--syslog-tls-cert" => a.syslog_tls_mut().cert = value()?,
                "--syslog-tls-key" => a.syslog_tls_mut().key = value()?,
                "--syslog-tls-skip-verify" => a.syslog_tls_mut().skip_verify = value()? == "true",
                "--syslog-max-buffer" => {
                    a.syslog_mut().max_buffer = value()?
                        .parse()
                        .map_err(|_| "--syslog-max-buffer needs a number")?
                }
                "--journald-socket" => a.journald_mut().socket = value()?,
                "--journald-max-buffer" => {
                    a.journald_mut().max_buffer = value()?
                        .parse()
                        .map_err(|_| "--journald-max-buffer needs a number")?
                }
                "--fluentd" => {
                    a.fluentd = Some(
                        serde_json::from_str(&value()?).map_err(|e| format!("--fluentd: {e}"))?,
                    )
                }
                "--gelf" => {
                    a.gelf =
                        Some(serde_json::from_str(&value()?).map_err(|e| format!("--gelf: {e}"))?)
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
        if let Some(fields) = log_fields {
            let fields: Vec<(String, String)> =
                serde_json::from_str(fields).map_err(|e| format!("{LOG_FIELDS_ENV}: {e}"))?;
            if let Some(j) = &mut a.journald {
                j.fields = fields;
            } else if let Some(f) = &mut a.fluentd {
                f.fields = fields;
            } else if let Some(g) = &mut a.gelf {
                g.fields = fields;
            }
        }
        if a.socket_base.as_os_str().is_empty() {
            a.socket_base = a.state_dir.join("sock");
        }
        if a.runtime_root.as_os_str().is_empty() {
            a.runtime_root = a.state_dir.join("runtime");
        }
        Ok(a)
    }

    fn syslog_mut(&mut self) -> &mut Syslog {
        self.syslog.get_or_insert_with(Syslog::default)
    }

    fn syslog_tls_mut(&mut self) -> &mut SyslogTls {
        self.syslog_mut().tls.get_or_insert_with(SyslogTls::default)
    }

    fn journald_mut(&mut self) -> &mut Journald {
        self.journald.get_or_insert_with(Journald::default)
    }

    /// A file of the task's state directory (see [`files`]).
    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn socket(&self, suffix: &str) -> PathBuf {
        socket(&self.socket_base, suffix)
    }
}

/// The line a shim writes on its stdout once the container exists (or
/// could not be made), before it detaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// The container's init pid.
    Ok(i32),
    Error(String),
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ready::Ok(pid) => write!(f, "ok {pid}"),
            Ready::Error(msg) => write!(f, "error {}", one_line(msg)),
        }
    }
}

impl Ready {
    /// None when the line is neither (the shim died before answering).
    pub fn parse(line: &str) -> Option<Ready> {
        if let Some(pid) = line.strip_prefix("ok ") {
            return pid.parse().ok().map(Ready::Ok);
        }
        line.strip_prefix("error ")
            .map(|m| Ready::Error(m.to_string()))
    }
}

/// A request on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Start the created container (or the exec's process).
    Start,
    /// Signal init, or with `all` every process of the container.
    Kill {
        signal: i32,
        all: bool,
    },
    Resize {
        rows: u16,
        cols: u16,
    },
    CloseStdin,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Start => write!(f, "start"),
            Request::Kill { signal, all: false } => write!(f, "kill {signal}"),
            Request::Kill { signal, all: true } => write!(f, "kill {signal} all"),
            Request::Resize { rows, cols } => write!(f, "resize {rows} {cols}"),
            Request::CloseStdin => write!(f, "close-stdin"),
        }
    }
}

impl Request {
    /// SIGKILL to every process of the container: how a task is ended
    /// when it must go.
    pub const KILL_ALL: Request = Request::Kill {
        signal: 9,
        all: true,
    };

    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["start"] => Ok(Request::Start),
            ["kill", sig] | ["kill", sig, "all"] => Ok(Request::Kill {
                signal: sig.parse().map_err(|_| format!("bad signal {sig}"))?,
                all: words.len() == 3,
            }),
            ["resize", rows, cols] => Ok(Request::Resize {
                rows: rows.parse().map_err(|_| "bad size".to_string())?,
                cols: cols.parse().map_err(|_| "bad size".to_string())?,
            }),
            ["close-stdin"] => Ok(Request::CloseStdin),
            _ => Err(format!("unknown request {line:?}")),
        }
    }
}

/// The control socket's answer line.
/// Settings as one JSON argument or variable (they serialise infallibly).
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub fn answer(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("error {}", one_line(e)),
    }
}

/// Reads an answer line back: Ok, or the shim's message.
pub fn parse_answer(line: &str) -> Result<(), String> {
    if line == "ok" {
        return Ok(());
    }
    Err(line
        .strip_prefix("error ")
        .unwrap_or("the shim closed the connection")
        .to_string())
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `exit.json`: the container's exit, written once by the shim, atomically
/// (a temporary name, then a rename), so that a core that was down when
/// the container exited still learns the real exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub exit_code: i32,
    /// RFC 3339, nanoseconds (`timefmt::now`).
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
}

impl Exit {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{}.tmp", files::EXIT));
        let mut body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        body.push(b'\n');
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, dir.join(files::EXIT))
    }

    /// None when the shim wrote none (it was killed) or it is unreadable.
    pub fn read(dir: &Path) -> Option<Exit> {
        let raw = std::fs::read(dir.join(files::EXIT)).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = Args {
            id: "c1".into(),
            state_dir: "/s".into(),
            bundle: "/b".into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: "/r".into(),
            log_path: "/l/c1-json.log".into(),
            log_max_size: 1024,
            log_max_files: 3,
            log_format: LogFormat::Local,
            syslog: Some(Syslog {
                address: String::new(),
                format: "rfc5424".into(),
                facility: 3,
                tag: "web {x}".into(),
                max_buffer: 1_000_000,
                tls: Some(SyslogTls {
                    ca_cert: "/c/ca.pem".into(),
                    cert: String::new(),
                    key: String::new(),
                    skip_verify: true,
                }),
            }),
            journald: Some(Journald {
                socket: "/run/systemd/journal/socket".into(),
                fields: vec![
                    ("CONTAINER_NAME".into(), "web".into()),
                    ("LABEL_X".into(), "a=b".into()),
                ],
                max_buffer: 0,
            }),
            fluentd: None,
            gelf: None,
            socket_base: "/run/x".into(),
            stdin: true,
            stdin_once: false,
            tty: true,
            exec: true,
        };
        let argv: Vec<String> = a
            .to_args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert!(!argv.iter().any(|s| s.contains("LABEL_X")));
        let env = a.environment();
        assert_eq!(env[0].0, LOG_FIELDS_ENV);
        assert_eq!(Args::parse_with(&argv, Some(&env[0].1)).unwrap(), a);
    }

    #[test]
    fn fluentd_and_gelf_round_trip_with_their_fields_apart() {
        let base = |fluentd, gelf| Args {
            id: "c1".into(),
            state_dir: "/s".into(),
            bundle: "/b".into(),
            runtime: "/rt".into(),
            runtime_root: "/r".into(),
            socket_base: "/x".into(),
            fluentd,
            gelf,
            ..Default::default()
        };
        let fields = vec![("container_id".to_string(), "SECRET".to_string())];
        for a in [
            base(
                Some(Fluentd {
                    address: "tcp://127.0.0.1:24224".into(),
                    tag: "web".into(),
                    sub_second: true,
                    retry_wait_ms: 1000,
                    max_retries: 5,
                    fields: fields.clone(),
                    ..Default::default()
                }),
                None,
            ),
            base(
                None,
                Some(Gelf {
                    address: "udp://127.0.0.1:12201".into(),
                    host: "vm".into(),
                    compression: "gzip".into(),
                    level: 1,
                    fields: fields.clone(),
                    ..Default::default()
                }),
            ),
        ] {
            let argv: Vec<String> = a
                .to_args()
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect();
            assert!(!argv.iter().any(|s| s.contains("SECRET")), "{argv:?}");
            let env = a.environment();
            assert_eq!(Args::parse_with(&argv, Some(&env[0].1)).unwrap(), a);
        }
    }

    #[test]
    fn args_defaults_and_refusals() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = Args::parse(&v(&[
            "--id",
            "c1",
            "--state-dir",
            "/s",
            "--bundle",
            "/b",
            "--runtime",
            "/rt",
        ]))
        .unwrap();
        assert_eq!(a.runtime_root, PathBuf::from("/s/runtime"));
        assert_eq!(a.socket(sockets::CONTROL), PathBuf::from("/s/sock.ctl"));
        assert!(Args::parse(&v(&["--id", "c1"])).is_err());
        assert!(Args::parse(&v(&["--bogus"])).is_err());
        assert!(Args::parse(&v(&["--id"])).is_err());
        assert!(LogFormat::parse("syslog").is_err());
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Start,
            Request::Kill {
                signal: 9,
                all: true,
            },
            Request::Kill {
                signal: 15,
                all: false,
            },
            Request::Resize { rows: 24, cols: 80 },
            Request::CloseStdin,
        ] {
            assert_eq!(Request::parse(&r.to_string()), Ok(r));
        }
        assert!(Request::parse("kill x").is_err());
        assert!(Request::parse("reboot").is_err());
    }

    #[test]
    fn answers_and_readiness_round_trip() {
        assert_eq!(parse_answer(&answer(&Ok(()))), Ok(()));
        let e = Err("not\nrunning".to_string());
        assert_eq!(parse_answer(&answer(&e)), Err("not running".into()));
        assert_eq!(
            Ready::parse(&Ready::Ok(1234).to_string()),
            Some(Ready::Ok(1234))
        );
        assert_eq!(
            Ready::parse(&Ready::Error("exec: nope".into()).to_string()),
            Some(Ready::Error("exec: nope".into()))
        );
        assert_eq!(Ready::parse(""), None);
    }

    #[test]
    fn exit_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("berth-proto-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Exit::read(&dir), None);
        let e = Exit {
            exit_code: 137,
            finished_at: "2026-12-06T16:00:00.000000001Z".into(),
            oom_killed: true,
        };
        e.write(&dir).unwrap();
        assert_eq!(Exit::read(&dir), Some(e));
        assert!(!dir.join("exit.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
