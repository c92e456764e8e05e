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
    /// Where to listen: unix:///path (one; default /run/berth/docker.sock)
    /// and tcp://host:port (any number, mutual TLS required). Repeatable.
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Serve TCP over TLS. `--tls=false` is the explicit (and loudly
    /// warned about) way to serve TCP without it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Serve TCP over TLS and accept only clients with a certificate signed
    /// by --tlscacert.
    #[arg(long)]
    pub tlsverify: bool,
    /// CA that client certificates must be signed by (default ~/.docker/ca.pem).
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// The server's certificate (default ~/.docker/cert.pem).
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// The server's private key (default ~/.docker/key.pem).
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
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
    /// Another OCI runtime containers may name (`--runtime NAME`):
    /// name=path, like dockerd's --add-runtime. Repeatable.
    #[arg(long = "add-runtime")]
    pub runtimes: Vec<String>,
    /// The arguments of those runtimes (daemon.json's `runtimeArgs`), by
    /// name; only from the configuration file, as in dockerd.
    #[arg(skip)]
    pub runtime_args: std::collections::BTreeMap<String, Vec<String>>,
    /// The keys the configuration file set (a reload keeps the current
    /// value of some keys the file no longer names, as dockerd does).
    #[arg(skip)]
    pub file_keys: std::collections::BTreeSet<String>,
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
    /// A pull-through mirror of Docker Hub (http:// or https:// URL), tried
    /// before it for docker.io images, as dockerd's --registry-mirror.
    /// Repeatable.
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Layers downloaded at once per pull.
    #[arg(long, default_value_t = 3)]
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push.
    #[arg(long, default_value_t = 5)]
    pub max_concurrent_uploads: usize,
    /// Name of the default bridge network's Linux bridge (dockerd: -b;
    /// Docker's is docker0, so the two never share one).
    #[arg(short = 'b', long = "bridge", default_value = "berth0")]
    pub bridge: String,
    /// The default bridge's gateway address and subnet, like dockerd's
    /// --bip. Chosen outside Docker's default pools (172.17.0.0/12 and
    /// 192.168.0.0/16) so a dockerd on the same host never clashes.
    #[arg(long, default_value = "10.77.0.1/16")]
    pub bip: String,
    /// Where user-defined networks get their subnets: base=CIDR,size=N,
    /// like dockerd's flag. Repeatable; default base=10.78.0.0/15,size=24.
    #[arg(long = "default-address-pool")]
    pub default_address_pools: Vec<String>,
    /// Name servers for containers that name none (--dns), like dockerd's
    /// --dns. On user-defined networks they are aardvark-dns's upstreams.
    /// Repeatable.
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// DNS search domains for containers that name none (--dns-search),
    /// like dockerd's --dns-search. Repeatable.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// resolv.conf options for containers that name none (--dns-option),
    /// like dockerd's --dns-opt. Repeatable.
    #[arg(long = "dns-opt")]
    pub dns_opts: Vec<String>,
    /// Size of /dev/shm for containers that give none (--shm-size), like
    /// dockerd's --default-shm-size: bytes with an optional unit (64M).
    #[arg(long, default_value = "64M")]
    pub default_shm_size: String,
    /// A ulimit for containers that do not set it: name=soft[:hard], like
    /// dockerd's --default-ulimit. Repeatable.
    #[arg(long = "default-ulimit")]
    pub default_ulimits: Vec<String>,
    /// Labels of this daemon (key=value), shown by `docker info`, like
    /// dockerd's --label. Repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Seconds a stopping berthd (SIGTERM) waits for open requests before
    /// it exits anyway, like dockerd's --shutdown-timeout. Containers keep
    /// running either way.
    #[arg(long, default_value_t = 15)]
    pub shutdown_timeout: u64,
    /// dockerd's `features` (name: on or off); only from the configuration
    /// file, as in dockerd 20.10. `buildkit: false` makes `/_ping` offer
    /// the legacy builder (Builder-Version 1), as dockerd's does; other
    /// names are kept and switch nothing.
    #[arg(skip)]
    pub features: std::collections::BTreeMap<String, bool>,
    /// Host address of published ports that name none (-p 80, -P), like
    /// dockerd's --ip.
    #[arg(long, default_value = "0.0.0.0")]
    pub ip: String,
    /// Logging driver of containers that name none (json-file, local or
    /// none), like dockerd's --log-driver.
    #[arg(long, default_value = "json-file")]
    pub log_driver: String,
    /// Options of that driver (key=value, repeatable), like dockerd's
    /// --log-opt; a container of that driver gets those it does not set.
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Serve Prometheus metrics on this address (ip:port) at /metrics,
    /// plain HTTP, like dockerd's --metrics-addr; none by default.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// The Kubernetes CRI (runtime.v1) on this unix socket. By default
    /// `cri.sock` beside the API's unix socket (`/run/berth/cri.sock` for
    /// the default `/run/berth/docker.sock`); an empty value serves none.
    #[arg(long)]
    pub cri_socket: Option<String>,
    /// Where the CRI's pods find their network configuration (CNI), as
    /// containerd's `conf_dir`: the first loadable file is the network.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugins are (a `:`-separated list): kubelets' usual
    /// place, then Debian's (containernetworking-plugins).
    #[arg(long, default_value = "/opt/cni/bin:/usr/lib/cni")]
    pub cni_bin_dir: String,
    /// dockerd's daemon.json, for the settings berthd has (default
    /// /etc/berth/daemon.json; a missing default file is fine). A setting
    /// may be given as a flag or in the file, not both.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Check the flags and the configuration file, say "configuration OK"
    /// and exit (as dockerd --validate).
    #[arg(long)]
    pub validate: bool,
    /// Newest engine–core protocol version to speak (default: this build's
    /// newest). For running an engine as an older one would, in tests.
    #[arg(long, hide = true)]
    pub core_protocol: Option<u32>,
}

impl Config {
    /// Where the CRI is served, if anywhere (see `cri_socket`).
    pub fn cri_socket_path(&self) -> Option<PathBuf> {
        match &self.cri_socket {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(PathBuf::from(p)),
            None => Some(self.socket_path().ok()?.with_file_name("cri.sock")),
        }
    }

    /// The unix socket: the one -H names, or the default. berthd always
    /// has one (even with only tcp:// hosts given, unlike dockerd): the
    /// takeover on upgrade and the handover of connections go through it.
    pub fn socket_path(&self) -> Result<PathBuf, String> {
        let unix: Vec<&String> = self
            .hosts
            .iter()
            .filter(|h| !h.starts_with("tcp://"))
            .collect();
        match unix.as_slice() {
            [] => Ok(PathBuf::from("/run/berth/docker.sock")),
            [one] => parse_unix(one),
            _ => Err("only one unix socket can be given with -H".into()),
        }
    }

    /// The tcp:// hosts, as host:port.
    pub fn tcp_hosts(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter_map(|h| h.strip_prefix("tcp://"))
            .map(|h| h.trim_end_matches('/').to_string())
            .collect()
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
            "unsupported address {addr:?}: use unix:///absolute/path or tcp://host:port"
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

    #[test]
    fn the_cri_socket_sits_beside_the_api_socket_unless_told() {
        let config = |args: &[&str]| {
            Config::try_parse_from([&["berthd"], args].concat()).expect("flags parse")
        };
        assert_eq!(
            config(&[]).cri_socket_path(),
            Some(PathBuf::from("/run/berth/cri.sock"))
        );
        assert_eq!(
            config(&["-H", "unix:///tmp/b/docker.sock"]).cri_socket_path(),
            Some(PathBuf::from("/tmp/b/cri.sock"))
        );
        assert_eq!(
            config(&["--cri-socket", "/run/k/cri.sock"]).cri_socket_path(),
            Some(PathBuf::from("/run/k/cri.sock"))
        );
        assert_eq!(config(&["--cri-socket", ""]).cri_socket_path(), None);
    }
}
