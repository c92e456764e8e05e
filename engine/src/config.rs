//! berthd's flags, named and defaulted like dockerd's.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth: a Docker-compatible container engine"
)]
pub struct Config {
    /// Daemon socket to listen on (unix:///path).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/docker.sock"
    )]
    pub host: String,
    /// Root of persistent state: database, images, containers.
    #[arg(long, default_value = "/var/lib/berth")]
    pub data_root: PathBuf,
    /// Root of runtime state: sockets, task state of the core.
    #[arg(long, default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Path of the file that holds berthd's pid.
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// The core's socket (unix:///path); default <exec-root>/core.sock. When
    /// nothing answers there, berthd starts berth-core itself.
    #[arg(long)]
    pub core_address: Option<String>,
    /// Default OCI runtime for new containers (crun, runc or a path); default:
    /// the fastest installed runtime that works on this host.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Log level: debug, info, warn, error.
    #[arg(short = 'l', long, default_value = "info")]
    pub log_level: String,
    /// Group that owns the API socket; default: docker when it exists, else root.
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Take the API socket over from the berthd running with the same
    /// exec-root, which then stops accepting, drains and exits: an upgrade
    /// that refuses no connection.
    #[arg(long)]
    pub takeover: bool,
    /// Registry (host[:port] or CIDR) to speak plain HTTP to; registries on
    /// 127.0.0.0/8 always are. Repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Layers downloaded at once per pull.
    #[arg(long, default_value_t = 3)]
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push.
    #[arg(long, default_value_t = 5)]
    pub max_concurrent_uploads: usize,
    /// Newest engine–core protocol version to speak (default: this build's
    /// newest). For running an engine as an older one would, in tests.
    #[arg(long, hide = true)]
    pub core_protocol: Option<u32>,
}

impl Config {
    pub fn socket_path(&self) -> Result<PathBuf, String> {
        parse_unix(&self.host)
    }

    pub fn core_socket(&self) -> Result<PathBuf, String> {
        match &self.core_address {
            Some(a) => parse_unix(a),
            None => Ok(self.exec_root.join("core.sock")),
        }
    }

    pub fn core_state_dir(&self) -> PathBuf {
        self.exec_root.join("core")
    }
}

fn parse_unix(addr: &str) -> Result<PathBuf, String> {
    match addr.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ if addr.starts_with('/') => Ok(PathBuf::from(addr)),
        _ => Err(format!(
            "unsupported address {addr:?}: only unix:///absolute/path is supported"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_like_dockerd() {
        assert_eq!(
            parse_unix("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert!(parse_unix("tcp://0.0.0.0:2375").is_err());
        assert!(parse_unix("unix://relative").is_err());
    }
}
