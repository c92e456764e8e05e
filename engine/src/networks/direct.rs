//! A container's interface on a bridge network that netavark has already
//! set up on this host, made by Berth itself. When another container (or
//! the network's keeper) is attached, the bridge, its address, the
//! network's firewall chains, forwarding and aardvark-dns are all there;
//! what a container without published ports adds is a veth pair, its
//! address and default route, and a DNS record. netavark would also check
//! every firewall rule of the network again, with one iptables process per
//! rule: 60–90 ms per container under the host-wide lock, which made
//! parallel starts (`compose up`) and stops wait on each other. Here it is
//! two `ip -batch` runs and a line in aardvark-dns's file, ~5 ms.
//!
//! What is made is what netavark 1.4 makes (same interface names inside,
//! addresses, `proto static metric 100` default route, IPv6 autoconf off,
//! the DNS line), so netavark's own teardown of such an interface works
//! too and a network's last interface still goes through netavark, which
//! then removes the bridge and chains. The host side is named as Docker
//! names it, `veth` and seven hex digits.
//!
//! Everything here runs with netavark's host-wide lock held.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sched::{setns, CloneFlags};

use super::aardvark;
use crate::error::{Error, Result};

/// What one interface needs (IPv4 networks only: see `Networks::direct_plan`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub network_id: String,
    pub bridge: String,
    /// Internal networks get no default route.
    pub internal: bool,
    pub interface: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
    pub mtu: Option<String>,
    /// The DNS record on networks with aardvark-dns.
    pub record: Option<aardvark::Record>,
}

/// A name for the host's end: Docker's form, `veth` and seven hex digits.
pub fn host_veth_name() -> String {
    format!("veth{:07x}", rand::random::<u32>() & 0x0fff_ffff)
}

/// A random unicast, locally administered MAC address, as the kernel picks
/// for a veth that netavark makes.
pub fn random_mac() -> String {
    let mut b: [u8; 6] = rand::random();
    b[0] = (b[0] & 0xfe) | 0x02;
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether netavark has the network up: its bridge has interfaces attached
/// (netavark removes the bridge with the last one) and, with DNS,
/// aardvark-dns serves it.
pub fn network_is_up(bridge: &str, network_id: &str, dns: bool, aardvark_dir: &Path) -> bool {
    let attached = std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    attached && (!dns || aardvark::serves(aardvark_dir, network_id))
}

/// Makes the interface inside the namespace at `netns`, its host end
/// `host_veth` on the bridge, and the DNS record. Undone on failure.
pub fn attach(netns: &Path, host_veth: &str, plan: &Plan, aardvark_dir: &Path) -> Result<()> {
    let mtu = plan
        .mtu
        .as_deref()
        .map(|m| format!(" mtu {m}"))
        .unwrap_or_default();
    ip_batch(&format!(
        "link add {host_veth}{mtu} master {bridge} up type veth peer name {iface} address {mac}{mtu} netns {netns}\n",
        bridge = plan.bridge,
        iface = plan.interface,
        mac = plan.mac,
        netns = netns.display(),
    ))?;
    let inside = inside(netns, plan);
    let dns = match (&inside, &plan.record) {
        (Ok(()), Some(r)) => aardvark::add(aardvark_dir, &plan.network_id, r),
        _ => Ok(()),
    };
    if let Err(e) = inside.and(dns) {
        let _ = delete_link(host_veth);
        return Err(e);
    }
    Ok(())
}

/// The namespace's side: addresses, links up, the default route.
fn inside(netns: &Path, plan: &Plan) -> Result<()> {
    let mut batch = format!(
        "addr add {ip}/{prefix} dev {iface}\nlink set {iface} up\nlink set lo up\n",
        ip = plan.ip,
        prefix = plan.prefix,
        iface = plan.interface,
    );
    if !plan.internal && !plan.gateway.is_empty() {
        batch.push_str(&format!(
            "route add default via {gw} dev {iface} proto static metric 100\n",
            gw = plan.gateway,
            iface = plan.interface,
        ));
    }
    let autoconf = format!("/proc/sys/net/ipv6/conf/{}/autoconf", plan.interface);
    in_netns(netns, move || {
        // Addresses are only those configured, as netavark has it; a
        // kernel without IPv6 has no such file.
        match std::fs::write(&autoconf, "0") {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Internal(format!("writing {autoconf}: {e}")))
            }
            _ => {}
        }
        ip_batch(&batch)
    })
}

/// Removes the container's DNS record (under the host-wide lock, as
/// aardvark-dns's files are netavark's too). False, with nothing changed,
/// when it is the network's last: the caller then has netavark tear the
/// interface down, which stops the network's DNS.
pub fn forget_record(
    network_id: &str,
    container_id: &str,
    dns: bool,
    aardvark_dir: &Path,
) -> Result<bool> {
    if !dns {
        return Ok(true);
    }
    aardvark::remove(aardvark_dir, network_id, container_id)
}

/// Deletes the host's end of an interface (its peer goes with it); one
/// already gone (its namespace was lost) is fine. Needs no lock: the
/// kernel's deletion (~15 ms, mostly waiting for RCU) should not hold up
/// netavark's runs.
pub fn delete_link(name: &str) -> Result<()> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    ip_batch(&format!("link del {name}\n"))
}

/// Runs `ip -batch -` with these commands.
fn ip_batch(commands: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Internal(format!("starting ip: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(commands.as_bytes())
        .map_err(|e| Error::Internal(format!("writing to ip: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Internal(format!("waiting for ip: {e}")))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "ip: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs `f` on a thread that joined the namespace at `netns` (setns moves
/// only the calling thread; processes it starts are born inside).
fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = std::fs::File::open(netns)?;
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Internal(format!("joining the network namespace: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| Error::Internal("network namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_have_dockers_and_the_kernels_form() {
        let v = host_veth_name();
        assert_eq!(v.len(), "veth".len() + 7);
        assert!(v["veth".len()..].chars().all(|c| c.is_ascii_hexdigit()));
        for _ in 0..64 {
            let mac = random_mac();
            let first = u8::from_str_radix(&mac[..2], 16).unwrap();
            assert_eq!(first & 0x03, 0x02, "{mac}: unicast, locally administered");
            assert_eq!(mac.split(':').count(), 6);
        }
    }
}
