//! Driving netavark, the network stack Podman uses: it creates the bridge,
//! the veth pair, addresses, routes, the iptables rules for NAT and
//! published ports, and starts aardvark-dns for name resolution. We hand it
//! JSON on stdin (its documented input: container id and name, the
//! networks with their subnets, static addresses, aliases, port mappings)
//! and read back what it configured.
//!
//! netavark does no address management: berthd picks every address
//! (`ipam`). Every call holds a host-wide lock, because iptables' shared
//! chains are shared with every other berthd on the host too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{Error, Result};

/// Taken (flock) around every netavark call and firewall sweep.
const HOST_LOCK: &str = "/run/lock/berth-netavark.lock";

/// netavark's description of one network. `name` is the network's id, not
/// its user-facing name: netavark names iptables chains after a hash of it,
/// and two engines' "bridge" networks must not share chains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetInfo {
    pub dns_enabled: bool,
    pub driver: String,
    pub id: String,
    pub internal: bool,
    pub ipv6_enabled: bool,
    pub name: String,
    pub network_interface: String,
    pub subnets: Vec<NetSubnet>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetSubnet {
    pub subnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A container's options on one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerNetwork {
    pub interface_name: String,
    pub static_ips: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_mac: Option<String>,
}

/// One published port (netavark's port mapping).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u16,
    /// "" means every address of the host.
    pub host_ip: String,
    pub host_port: u16,
    pub protocol: String,
    pub range: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    pub container_id: String,
    pub container_name: String,
    pub networks: BTreeMap<String, PerNetwork>,
    pub network_info: BTreeMap<String, NetInfo>,
    pub port_mappings: Vec<PortMapping>,
    /// Upstream name servers aardvark-dns asks for names it does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
}

/// What netavark reports per network.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Status {
    #[serde(default)]
    pub dns_server_ips: Option<Vec<String>>,
    #[serde(default)]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(default)]
    pub interfaces: Option<BTreeMap<String, Interface>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Interface {
    pub mac_address: String,
}

pub struct Netavark {
    binary: PathBuf,
    aardvark: PathBuf,
    /// netavark's --config: aardvark-dns's per-network files and pid.
    config_dir: PathBuf,
}

/// Debian installs netavark and aardvark-dns under /usr/lib/podman; other
/// distributions use /usr/libexec/podman.
fn find(name: &str) -> Option<PathBuf> {
    [
        "/usr/lib/podman",
        "/usr/libexec/podman",
        "/usr/local/lib/podman",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .chain(
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    )
    .find(|p| p.is_file())
}

impl Netavark {
    pub fn new(exec_root: &Path) -> Netavark {
        Netavark {
            binary: find("netavark").unwrap_or_else(|| PathBuf::from("/usr/lib/podman/netavark")),
            aardvark: find("aardvark-dns")
                .unwrap_or_else(|| PathBuf::from("/usr/lib/podman/aardvark-dns")),
            config_dir: exec_root.join("networks"),
        }
    }

    /// Runs `netavark setup <netns>`; the status per network name.
    pub async fn setup(&self, netns: &Path, opts: &Options) -> Result<BTreeMap<String, Status>> {
        let out = self.run("setup", netns, opts).await?;
        serde_json::from_slice(&out)
            .map_err(|e| Error::Internal(format!("reading netavark's answer: {e}")))
    }

    /// Runs `netavark teardown <netns>` with the options of the setup.
    pub async fn teardown(&self, netns: &Path, opts: &Options) -> Result<()> {
        self.run("teardown", netns, opts).await.map(|_| ())
    }

    /// aardvark-dns's directory: its pid file and one file of records per
    /// network, named after the network's id.
    pub fn aardvark_dir(&self) -> PathBuf {
        self.config_dir.join("aardvark-dns")
    }

    /// Runs `f` on a blocking thread with the host-wide lock held: Berth's
    /// own changes to the networks netavark set up (`direct`) must not
    /// interleave with a netavark run.
    pub async fn with_host_lock<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(move || {
            let _lock = HostLock::take()?;
            f()
        })
        .await
        .map_err(Error::internal)?
    }

    async fn run(&self, verb: &'static str, netns: &Path, opts: &Options) -> Result<Vec<u8>> {
        if !self.binary.is_file() {
            return Err(Error::Internal(format!(
                "netavark not found (looked for {}): install the netavark and aardvark-dns packages",
                self.binary.display()
            )));
        }
        std::fs::create_dir_all(&self.config_dir)?;
        let input = serde_json::to_vec(opts).map_err(Error::internal)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(&self.config_dir)
            .arg("--aardvark-binary")
            .arg(&self.aardvark)
            .arg(verb)
            .arg(netns)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let netns_shown = netns.display().to_string();
        tokio::task::spawn_blocking(move || {
            let _lock = HostLock::take()?;
            let began = std::time::Instant::now();
            let mut child = cmd
                .spawn()
                .map_err(|e| Error::Internal(format!("starting netavark: {e}")))?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(&input)
                .map_err(|e| Error::Internal(format!("writing to netavark: {e}")))?;
            let out = child
                .wait_with_output()
                .map_err(|e| Error::Internal(format!("waiting for netavark: {e}")))?;
            if !out.status.success() {
                // netavark answers {"error": "..."} on stdout.
                let msg = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
                return Err(Error::Internal(format!("netavark {verb}: {msg}")));
            }
            debug!(verb, netns = %netns_shown, ms = began.elapsed().as_millis() as u64, "netavark");
            Ok(out.stdout)
        })
        .await
        .map_err(Error::internal)?
    }

    /// Removes netavark's shared iptables chains (the port-forwarding and
    /// forward chains every network hooks into) once no network uses them,
    /// so that a host with no running container carries no rule of ours.
    /// netavark makes them again at the next setup.
    pub async fn sweep_firewall(&self) {
        let done = tokio::task::spawn_blocking(|| -> Result<()> {
            let _lock = HostLock::take()?;
            for tool in ["iptables", "ip6tables"] {
                sweep_table(tool);
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = done {
            warn!(error = %e, "sweeping netavark's firewall chains");
        }
    }
}

/// Shared chains of netavark 1.x, per table.
const SHARED: &[(&str, &[&str])] = &[
    (
        "nat",
        &[
            "NETAVARK-HOSTPORT-DNAT",
            "NETAVARK-HOSTPORT-MASQ",
            "NETAVARK-HOSTPORT-SETMARK",
        ],
    ),
    ("filter", &["NETAVARK_FORWARD", "NETAVARK_INPUT"]),
];

fn sweep_table(tool: &str) {
    let rules = |table: &str| -> Option<Vec<String>> {
        let out = Command::new(tool)
            .args(["-w", "-t", table, "-S"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
    };
    let mut all = Vec::new();
    for (table, _) in SHARED {
        match rules(table) {
            Some(r) => all.push((*table, r)),
            None => return,
        }
    }
    let shared: Vec<&str> = SHARED.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    // In use: a per-network chain exists, or a shared chain that networks
    // fill (DNAT, FORWARD) has a rule. The masquerade and mark chains hold
    // one fixed rule each.
    for (_, lines) in &all {
        for l in lines {
            let mut w = l.split_whitespace();
            let (Some(op), Some(chain)) = (w.next(), w.next()) else {
                continue;
            };
            if op == "-N" && chain.starts_with("NETAVARK") && !shared.contains(&chain) {
                return;
            }
            if op == "-A"
                && matches!(
                    chain,
                    "NETAVARK-HOSTPORT-DNAT" | "NETAVARK_FORWARD" | "NETAVARK_INPUT"
                )
            {
                return;
            }
        }
    }
    for (table, lines) in &all {
        let chains: Vec<&str> = SHARED
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, c)| c.to_vec())
            .unwrap_or_default();
        // First the jumps from the built-in chains, then the chains.
        for l in lines {
            let words: Vec<&str> = l.split_whitespace().collect();
            if words.first() == Some(&"-A")
                && !words[1].starts_with("NETAVARK")
                && chains.iter().any(|c| words.contains(c))
            {
                let _ = Command::new(tool)
                    .args(["-w", "-t", table, "-D"])
                    .args(unquote(&words[1..]))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for c in &chains {
            if lines.iter().any(|l| l == &format!("-N {c}")) {
                let _ = Command::new(tool)
                    .args(["-w", "-t", table, "-F", c])
                    .stderr(Stdio::null())
                    .status();
                let _ = Command::new(tool)
                    .args(["-w", "-t", table, "-X", c])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// `iptables -S` quotes comments ("netavark firewall plugin rules"); put
/// the quoted words back together as one argument.
fn unquote(words: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for w in words {
        match cur.as_mut() {
            Some(c) => {
                c.push(' ');
                c.push_str(w.trim_end_matches('"'));
                if w.ends_with('"') {
                    out.push(cur.take().unwrap_or_default());
                }
            }
            None if w.starts_with('"') && !(w.len() > 1 && w.ends_with('"')) => {
                cur = Some(w.trim_start_matches('"').to_string());
            }
            None => out.push(w.trim_matches('"').to_string()),
        }
    }
    out.extend(cur);
    out
}

/// An exclusive flock on HOST_LOCK, released on drop.
struct HostLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl HostLock {
    fn take() -> Result<HostLock> {
        if let Some(dir) = Path::new(HOST_LOCK).parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOST_LOCK)?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(HostLock)
            .map_err(|(_, e)| Error::Internal(format!("locking {HOST_LOCK}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_comments_stay_one_argument() {
        let line = r#"-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD"#;
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            unquote(&words[1..]),
            vec![
                "FORWARD",
                "-m",
                "comment",
                "--comment",
                "netavark firewall plugin rules",
                "-j",
                "NETAVARK_FORWARD"
            ]
        );
    }
}
