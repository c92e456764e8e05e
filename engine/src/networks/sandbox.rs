//! A container's network: its endpoints (which networks it joins, with
//! which aliases and requested address), and while it runs its sandbox: a
//! network namespace kept under `<exec-root>/netns/<id>` that netavark set
//! up. The sandbox is recorded (with the exact netavark options) so that
//! stop, disconnect and the next berthd's clean-up can undo it, whichever
//! berthd made it.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use bollard_stubs::models::{EndpointSettings, NetworkingConfig};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::netavark::{NetInfo, Options, PerNetwork};
use super::ports::{self, Published};
use super::{aardvark, direct};
use super::{ipam, EndpointRecord, NetworkRecord, Networks};
use crate::containers::record::Container;
use crate::error::{Error, Result};

/// A running container's network namespace and what is in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sandbox {
    pub netns: String,
    pub container_name: String,
    /// By network id.
    pub attachments: BTreeMap<String, Attachment>,
    pub ports: Vec<Published>,
}

/// One network's interface in a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub network_name: String,
    pub endpoint_id: String,
    pub interface: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    /// The IPv6 address, prefix length and gateway on an EnableIPv6
    /// network ("" and 0 elsewhere).
    #[serde(default)]
    pub ip6: String,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: String,
    pub mac: String,
    /// Names aardvark-dns answers for this container (besides its name).
    pub aliases: Vec<String>,
    /// Name servers for resolv.conf (aardvark-dns on the gateway).
    pub dns_servers: Vec<String>,
    /// The network as netavark set it up; teardown needs the same.
    pub info: NetInfo,
    /// Whether the published ports were set up on this network.
    pub with_ports: bool,
    /// The host's end of the interface when Berth made it itself
    /// (`direct`); empty when netavark did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_veth: String,
}

impl Attachment {
    fn per_network(&self) -> PerNetwork {
        PerNetwork {
            interface_name: self.interface.clone(),
            static_ips: std::iter::once(self.ip.clone())
                .chain(Some(self.ip6.clone()).filter(|a| !a.is_empty()))
                .collect(),
            aliases: self.aliases.clone(),
            static_mac: Some(self.mac.clone()).filter(|m| !m.is_empty()),
        }
    }
}

/// What the container's /etc files and spec need from its network.
#[derive(Debug, Default)]
pub struct Joined {
    pub netns: PathBuf,
    /// The addresses on its first network, for /etc/hosts.
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub gateway: Option<String>,
    /// aardvark-dns addresses (user-defined networks only).
    pub nameservers: Vec<String>,
    /// netavark's part, for `finish_join`.
    pub pending: Option<Pending>,
}

/// A sandbox recorded and its namespace made, not yet set up by netavark.
#[derive(Debug)]
pub struct Pending {
    opts: Options,
    plan: Vec<(NetworkRecord, EndpointRecord, Addresses)>,
    sandbox: Sandbox,
}

/// The addresses picked for one endpoint.
#[derive(Debug, Clone)]
struct Addresses {
    ip: String,
    /// Only on EnableIPv6 networks.
    ip6: Option<String>,
}

/// The container's network mode as Docker normalizes it.
pub fn mode_of(c: &Container) -> &str {
    match c.host_config.network_mode.as_deref().unwrap_or("") {
        "" | "default" => "bridge",
        m => m,
    }
}

impl Networks {
    /// Resolves a new container's network mode and endpoints (create):
    /// "host", "none" and "container:x" have none; anything else names the
    /// network of its first endpoint, and NetworkingConfig may add more.
    pub async fn plan_endpoints(
        &self,
        mode: &str,
        networking: Option<&NetworkingConfig>,
        name: &str,
    ) -> Result<(String, Vec<(NetworkRecord, EndpointRecord)>)> {
        let configs = networking
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        let mode = match mode {
            "" | "default" => "bridge",
            m => m,
        };
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            if mode.starts_with("container:") && mode.len() == "container:".len() {
                return Err(Error::InvalidArgument(
                    "invalid network mode: container: needs a container".into(),
                ));
            }
            if configs.keys().any(|k| k != mode && k != "default") {
                return Err(Error::InvalidArgument(format!(
                    "container cannot be connected to multiple networks with one of the networks in {mode} mode"
                )));
            }
            return Ok((mode.to_string(), Vec::new()));
        }
        let primary = self.get(mode).await?;
        if primary.driver != "bridge" {
            return Err(Error::InvalidArgument(format!(
                "network mode {mode:?} names a {} network; use --network {}",
                primary.driver, primary.name
            )));
        }
        let mut out: Vec<(NetworkRecord, EndpointRecord)> = Vec::new();
        let primary_cfg = configs
            .get(mode)
            .or_else(|| configs.get("default"))
            .or_else(|| configs.get(&primary.name))
            .or_else(|| configs.get(&primary.id))
            .cloned()
            .unwrap_or_default();
        out.push((
            primary.clone(),
            self.endpoint(&primary, &primary_cfg, "eth0", name)?,
        ));
        let mut others: Vec<(&String, &EndpointSettings)> = configs.iter().collect();
        others.sort_by_key(|(k, _)| k.to_string());
        for (key, cfg) in others {
            if key == "default" {
                continue;
            }
            let n = self.get(key).await?;
            if out.iter().any(|(o, _)| o.id == n.id) {
                continue;
            }
            if n.driver != "bridge" {
                return Err(Error::InvalidArgument(format!(
                    "container cannot be connected to multiple networks with one of the networks in {} mode",
                    n.name
                )));
            }
            let iface = format!("eth{}", out.len());
            out.push((n.clone(), self.endpoint(&n, cfg, &iface, name)?));
        }
        Ok((primary.name, out))
    }

    /// Checks one endpoint's settings against its network.
    fn endpoint(
        &self,
        n: &NetworkRecord,
        cfg: &EndpointSettings,
        interface: &str,
        container_name: &str,
    ) -> Result<EndpointRecord> {
        let aliases: Vec<String> = cfg
            .aliases
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.is_empty() && a != container_name)
            .collect();
        if !aliases.is_empty() && n.name == "bridge" {
            return Err(Error::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        for a in &aliases {
            if a.len() > 253 || a.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(Error::InvalidArgument(format!("invalid alias {a:?}")));
            }
        }
        let ipv4 = cfg
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv4_address.clone())
            .filter(|a| !a.is_empty());
        if let Some(ip) = &ipv4 {
            if n.name == "bridge" {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if !n.user_subnet {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
            let addr = ipam::parse_addr(ip)?;
            if !n.subnet().is_some_and(|s| s.contains(&addr)) || n.gateway() == Some(addr) {
                return Err(Error::InvalidArgument(format!(
                    "invalid IPv4 address {ip}: it is not a free address of network {}'s subnet {}",
                    n.name,
                    n.subnet.clone().unwrap_or_default()
                )));
            }
        }
        // An IPv6 address is only parsed here: dockerd checks it against
        // the network when the container starts (`prepare`).
        let ipv6 = cfg
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv6_address.clone())
            .filter(|a| !a.is_empty());
        if let Some(ip) = &ipv6 {
            ipam::parse_addr6(ip)?;
        }
        let mac = cfg.mac_address.clone().filter(|m| !m.is_empty());
        Ok(EndpointRecord {
            endpoint_id: crate::util::random_id(),
            aliases,
            ipv4,
            ipv6,
            mac,
            mac_from_config: false,
            interface: interface.to_string(),
            links: cfg.links.clone().unwrap_or_default(),
            network_name: n.name.clone(),
            named: false,
            link_local_ips: cfg
                .ipam_config
                .as_ref()
                .and_then(|i| i.link_local_ips.clone())
                .unwrap_or_default(),
            driver_opts: cfg.driver_opts.clone(),
        })
    }

    /// Records the endpoints planned at create.
    pub async fn attach_endpoints(
        &self,
        container_id: &str,
        endpoints: &[(NetworkRecord, EndpointRecord)],
    ) -> Result<()> {
        for (n, e) in endpoints {
            self.store.set_endpoint(container_id, &n.id, e).await?;
        }
        Ok(())
    }

    pub(super) async fn endpoints_of(
        &self,
        container_id: &str,
    ) -> Result<Vec<(String, EndpointRecord)>> {
        let mut eps: Vec<(String, EndpointRecord)> =
            self.store.container_endpoints(container_id).await?;
        eps.sort_by_key(|e| iface_order(&e.1.interface));
        Ok(eps)
    }

    /// The legacy links a container keeps on its user-defined networks
    /// (`child:alias`), by network id.
    pub async fn endpoint_links(&self, container_id: &str) -> Result<Vec<(String, Vec<String>)>> {
        Ok(self
            .endpoints_of(container_id)
            .await?
            .into_iter()
            .filter(|(_, e)| !e.links.is_empty())
            .map(|(nid, e)| (nid, e.links))
            .collect())
    }

    /// A renamed container's links on user-defined networks (`child:alias`
    /// in other containers' endpoints) follow its new name.
    pub async fn rename_link_child(&self, old: &str, new: &str) -> Result<()> {
        for (cid, nid, mut e) in self.store.endpoints::<EndpointRecord>().await? {
            let mut changed = false;
            for l in &mut e.links {
                let (child, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                if child.trim_start_matches('/') == old {
                    *l = format!("{new}:{alias}");
                    changed = true;
                }
            }
            if changed {
                self.store.set_endpoint(&cid, &nid, &e).await?;
            }
        }
        Ok(())
    }

    /// The container-level MAC address asked at create (Config.MacAddress).
    pub async fn requested_mac(&self, container_id: &str) -> Result<Option<String>> {
        Ok(self
            .endpoints_of(container_id)
            .await?
            .into_iter()
            .next()
            .and_then(|(_, e)| e.mac.filter(|_| e.mac_from_config)))
    }

    /// A running container's address on network `network_id`, or on the
    /// default bridge when None.
    pub async fn address_on(&self, container_id: &str, network_id: Option<&str>) -> Option<String> {
        let sb = self.sandbox(container_id).await.ok()??;
        sb.attachments
            .iter()
            .find(|(nid, a)| match network_id {
                Some(id) => *nid == id,
                None => a.network_name == "bridge",
            })
            .map(|(_, a)| a.ip.clone())
    }

    pub async fn sandbox(&self, container_id: &str) -> Result<Option<Sandbox>> {
        self.store.sandbox(container_id).await
    }

    /// Addresses in use in network `id`: running containers' and those
    /// other containers asked for with --ip.
    async fn used_addresses(&self, network_id: &str, except: &str) -> Result<HashSet<IpAddr>> {
        let mut used = HashSet::new();
        // Auxiliary addresses are the network's, never a container's.
        if let Ok(n) = self.get(network_id).await {
            used.extend(
                n.aux_addresses
                    .values()
                    .filter_map(|a| a.parse::<IpAddr>().ok()),
            );
        }
        for (cid, sb) in self.store.sandboxes::<Sandbox>().await? {
            if let Some(a) = sb.attachments.get(network_id) {
                if cid != except {
                    used.extend(a.ip.parse::<IpAddr>().ok());
                    used.extend(a.ip6.parse::<IpAddr>().ok());
                }
            }
        }
        for (cid, nid, e) in self.store.endpoints::<EndpointRecord>().await? {
            if nid == network_id && cid != except {
                let asked = e.ipv4.iter().chain(&e.ipv6);
                used.extend(asked.filter_map(|ip| ip.parse::<IpAddr>().ok()));
            }
        }
        Ok(used)
    }

    /// The aliases other containers' links on network `network_id` give
    /// the container named `name`. dockerd's DNS answers them only to the
    /// linking container; aardvark-dns has no such scope, so the whole
    /// network sees them (api-spec/divergences.md).
    async fn link_aliases(&self, network_id: &str, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (_, nid, e) in self.store.endpoints::<EndpointRecord>().await? {
            if nid != network_id {
                continue;
            }
            for l in &e.links {
                let (child, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                if child.trim_start_matches('/') == name && !out.iter().any(|a| a == alias) {
                    out.push(alias.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Picks the address of `c` in `n` and says how netavark should attach it.
    async fn prepare(
        &self,
        c: &Container,
        n: &NetworkRecord,
        e: &EndpointRecord,
    ) -> Result<(Addresses, PerNetwork)> {
        let subnet = n
            .subnet()
            .ok_or_else(|| Error::Internal(format!("network {} has no subnet", n.name)))?;
        let used = self.used_addresses(&n.id, &c.id).await?;
        let ip6 = self.pick_ipv6(n, e, &used)?;
        let ip = match &e.ipv4 {
            Some(ip) => {
                let a = ipam::parse_addr(ip)?;
                if used.contains(&IpAddr::V4(a)) {
                    return Err(address_in_use());
                }
                a
            }
            None => {
                let range = n.ip_range.as_deref().and_then(|r| r.parse().ok());
                ipam::allocate(&subnet, range.as_ref(), n.gateway(), &used).ok_or_else(|| {
                    Error::Forbidden(format!("no available IPv4 addresses on network {}", n.name))
                })?
            }
        };
        let mut aliases = Vec::new();
        if n.dns {
            aliases.push(c.id[..12].to_string());
            let linked = self.link_aliases(&n.id, &c.name).await?;
            for a in e.aliases.iter().chain(&linked) {
                if !aliases.contains(a) && *a != c.name {
                    aliases.push(a.clone());
                }
            }
        }
        let addresses = Addresses {
            ip: ip.to_string(),
            ip6: ip6.map(|a| a.to_string()),
        };
        let per = PerNetwork {
            interface_name: e.interface.clone(),
            static_ips: std::iter::once(addresses.ip.clone())
                .chain(addresses.ip6.clone())
                .collect(),
            aliases,
            static_mac: e.mac.clone(),
        };
        Ok((addresses, per))
    }

    /// The IPv6 address of `e` in `n`: none unless the network has
    /// EnableIPv6; the one asked with --ip6 if it is free and in the
    /// subnet, else the first free one. dockerd makes these checks at
    /// start, not at create.
    fn pick_ipv6(
        &self,
        n: &NetworkRecord,
        e: &EndpointRecord,
        used: &HashSet<IpAddr>,
    ) -> Result<Option<std::net::Ipv6Addr>> {
        if e.ipv6.is_some() {
            if n.name == "bridge" {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if n.subnet6.is_none() {
                return Err(Error::InvalidArgument(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
        }
        let Some(subnet) = n.subnet6() else {
            return Ok(None);
        };
        match &e.ipv6 {
            Some(ip) => {
                let a = ipam::parse_addr6(ip)?;
                if !subnet.contains(&a) {
                    return Err(Error::Internal(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets"
                    )));
                }
                if used.contains(&IpAddr::V6(a)) || n.gateway6() == Some(a) {
                    return Err(address_in_use());
                }
                Ok(Some(a))
            }
            None => {
                let range = n.ip_range6.as_deref().and_then(|r| r.parse().ok());
                ipam::allocate6(&subnet, range.as_ref(), n.gateway6(), used)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::Forbidden(format!(
                            "no available IPv6 addresses on network {}",
                            n.name
                        ))
                    })
            }
        }
    }

    /// Prepares the network of `c` before it starts: addresses and host
    /// ports picked and recorded, the namespace made (`finish_join` has
    /// netavark set it up). None when it has no network of its own (host,
    /// none, container:x).
    pub async fn join(&self, c: &Container) -> Result<Option<Joined>> {
        let eps = self.endpoints_of(&c.id).await?;
        if eps.is_empty() {
            return Ok(None);
        }
        // Left from a run that was not torn down (a crash): undo it first.
        self.leave(&c.id).await;
        let _alloc = self.alloc.lock().await;
        let all = self.all().await?;
        let mut opts = Options {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            networks: BTreeMap::new(),
            network_info: BTreeMap::new(),
            port_mappings: Vec::new(),
            dns_servers: self.dns_of(c),
        };
        let mut plan: Vec<(NetworkRecord, EndpointRecord, Addresses)> = Vec::new();
        for (nid, e) in &eps {
            let n = all.iter().find(|n| &n.id == nid).cloned().ok_or_else(|| {
                let name = if e.network_name.is_empty() {
                    nid
                } else {
                    &e.network_name
                };
                Error::NotFound(format!("network {name} not found"))
            })?;
            let (ip, per) = self.prepare(c, &n, e).await?;
            opts.networks.insert(n.id.clone(), per);
            opts.network_info.insert(n.id.clone(), n.netavark_info());
            plan.push((n, e.clone(), ip));
        }
        let mut taken = Vec::new();
        for (cid, sb) in self.store.sandboxes::<Sandbox>().await? {
            if cid != c.id {
                taken.extend(sb.ports);
            }
        }
        let published = ports::resolve(c, &self.default_bind_ip, &taken)?;
        opts.port_mappings = published.iter().map(Published::mapping).collect();

        let netns = self.netns_dir.join(&c.id);
        let mut sb = Sandbox {
            netns: netns.display().to_string(),
            container_name: c.name.clone(),
            attachments: BTreeMap::new(),
            ports: published,
        };
        let none = super::netavark::Status::default();
        for (n, e, ip) in &plan {
            sb.attachments
                .insert(n.id.clone(), attachment(n, e, ip, &opts, &none, true));
        }
        // Recorded before netavark runs, so that whatever it does can be
        // undone even if this berthd dies before it answers; from here on
        // the addresses and ports are taken.
        self.store.set_sandbox(&c.id, &sb).await?;
        drop(_alloc);
        if let Err(e) = super::netns::create(&netns) {
            self.leave(&c.id).await;
            return Err(e);
        }
        let first = sb
            .attachments
            .values()
            .min_by_key(|a| iface_order(&a.interface));
        // netavark reports aardvark-dns on each DNS network's gateway.
        let nameservers: Vec<String> = plan
            .iter()
            .filter(|(n, _, _)| n.dns)
            .filter_map(|(n, _, _)| n.gateway.clone())
            .collect();
        Ok(Some(Joined {
            netns,
            ip: first.map(|a| a.ip.clone()),
            ip6: first.map(|a| a.ip6.clone()).filter(|a| !a.is_empty()),
            gateway: first.map(|a| a.gateway.clone()),
            nameservers,
            pending: Some(Pending {
                opts,
                plan,
                sandbox: sb,
            }),
        }))
    }

    /// Second half of `join`: netavark configures the namespace (which
    /// may already be in use by the runtime creating the container: the
    /// process does not run before `start`). On failure the sandbox goes.
    pub async fn finish_join(&self, c: &Container, pending: Pending) -> Result<()> {
        let Pending {
            opts,
            plan,
            mut sandbox,
        } = pending;
        let netns = PathBuf::from(&sandbox.netns);
        let direct = self.direct_join(&netns, &opts, &plan).await;
        let status = match &direct {
            Some((nid, st, _)) => BTreeMap::from([(nid.clone(), st.clone())]),
            None => match self.netavark.setup(&netns, &opts).await {
                Ok(s) => s,
                Err(e) => {
                    self.leave(&c.id).await;
                    return Err(e);
                }
            },
        };
        for (n, e, ip) in &plan {
            let st = status.get(&n.id).cloned().unwrap_or_default();
            let mut a = attachment(n, e, ip, &opts, &st, true);
            if let Some((_, _, host_veth)) = direct.as_ref().filter(|(nid, _, _)| *nid == n.id) {
                a.host_veth = host_veth.clone();
            }
            sandbox.attachments.insert(n.id.clone(), a);
        }
        self.store.set_sandbox(&c.id, &sandbox).await?;
        for (n, e, _) in plan.iter().filter(|(_, e, _)| !e.named) {
            let e = EndpointRecord {
                named: true,
                ..e.clone()
            };
            self.store.set_endpoint(&c.id, &n.id, &e).await?;
        }
        for a in sandbox.attachments.values() {
            self.connect_event(&a.info.id, &a.network_name, &c.id, "connect");
        }
        info!(container_id = %c.id, networks = sandbox.attachments.len(), ports = sandbox.ports.len(), "network set up");
        Ok(())
    }

    /// Sets up a container's only network without netavark when that is
    /// all netavark would do (`direct`): no published ports, one IPv4
    /// bridge network already up on this host. The network's id, the
    /// status netavark would report and the host's end of the veth; None
    /// when netavark must do it (or this failed, undone, and netavark
    /// tries).
    async fn direct_join(
        &self,
        netns: &std::path::Path,
        opts: &Options,
        plan: &[(NetworkRecord, EndpointRecord, Addresses)],
    ) -> Option<(String, super::netavark::Status, String)> {
        let [(n, _, addresses)] = plan else {
            return None;
        };
        let per = opts.networks.get(&n.id)?;
        if !opts.port_mappings.is_empty()
            || n.driver != "bridge"
            || n.bridge.is_empty()
            || n.subnet6().is_some()
            || addresses.ip6.is_some()
        {
            return None;
        }
        let d = direct::Plan {
            network_id: n.id.clone(),
            bridge: n.bridge.clone(),
            internal: n.internal,
            interface: per.interface_name.clone(),
            ip: addresses.ip.clone(),
            prefix: n.subnet()?.prefix_len(),
            gateway: n.gateway.clone().unwrap_or_default(),
            mac: per.static_mac.clone().unwrap_or_else(direct::random_mac),
            mtu: n.options.get("com.docker.network.driver.mtu").cloned(),
            record: n.dns.then(|| aardvark::Record {
                container_id: opts.container_id.clone(),
                ipv4: addresses.ip.clone(),
                names: std::iter::once(opts.container_name.clone())
                    .chain(per.aliases.iter().cloned())
                    .collect(),
                upstream: opts.dns_servers.clone(),
            }),
        };
        let host_veth = direct::host_veth_name();
        let dir = self.netavark.aardvark_dir();
        let (ns, veth, plan2) = (netns.to_path_buf(), host_veth.clone(), d.clone());
        let done = self
            .netavark
            .with_host_lock(move || {
                if !direct::network_is_up(
                    &plan2.bridge,
                    &plan2.network_id,
                    plan2.record.is_some(),
                    &dir,
                ) {
                    return Ok(false);
                }
                direct::attach(&ns, &veth, &plan2, &dir).map(|()| true)
            })
            .await;
        match done {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                warn!(container_id = %opts.container_id, error = %e, "setting up the interface directly; netavark does it");
                return None;
            }
        }
        let status = super::netavark::Status {
            // netavark names the gateway, where aardvark-dns answers.
            dns_server_ips: d.record.as_ref().map(|_| vec![d.gateway.clone()]),
            dns_search_domains: None,
            interfaces: Some(BTreeMap::from([(
                d.interface.clone(),
                super::netavark::Interface {
                    mac_address: d.mac.clone(),
                },
            )])),
        };
        Some((n.id.clone(), status, host_veth))
    }

    /// Undoes an interface `direct_join` made; false when netavark must
    /// (the network's last DNS record, or this failed).
    async fn direct_leave(&self, container_id: &str, network_id: &str, a: &Attachment) -> bool {
        let dir = self.netavark.aardvark_dir();
        let (nid, cid, dns) = (
            network_id.to_string(),
            container_id.to_string(),
            a.info.dns_enabled,
        );
        let forgotten = self
            .netavark
            .with_host_lock(move || direct::forget_record(&nid, &cid, dns, &dir))
            .await;
        let veth = a.host_veth.clone();
        let done = match forgotten {
            Ok(true) => tokio::task::spawn_blocking(move || direct::delete_link(&veth))
                .await
                .map_err(Error::internal)
                .and_then(|r| r.map(|()| true)),
            other => other,
        };
        done.unwrap_or_else(|e| {
            warn!(container_id, error = %e, "removing the interface directly; netavark does it");
            false
        })
    }

    fn connect_event(
        &self,
        network_id: &str,
        network_name: &str,
        container_id: &str,
        action: &str,
    ) {
        let attrs = BTreeMap::from([
            ("container".to_string(), container_id.to_string()),
            ("name".to_string(), network_name.to_string()),
            ("type".to_string(), "bridge".to_string()),
        ]);
        self.events.emit("network", action, network_id, attrs);
    }

    /// Undoes the sandbox of a container that stopped (or is removed, or
    /// was left by a crashed engine). Errors are logged: whatever is left
    /// must not keep the container from stopping.
    pub async fn leave(&self, container_id: &str) {
        let sb = match self.sandbox(container_id).await {
            Ok(Some(sb)) => sb,
            Ok(None) => {
                let _ = super::netns::remove(&self.netns_dir.join(container_id));
                return;
            }
            Err(e) => {
                warn!(container_id, error = %e, "reading sandbox");
                return;
            }
        };
        let netns = PathBuf::from(&sb.netns);
        // Not after a lost boot (the namespace is gone): nothing is in use.
        if !is_keeper(container_id) && super::netns::is_kept(&netns) {
            self.keep_alive(container_id, &sb).await;
        }
        // Interfaces Berth made itself go without netavark; what that
        // cannot undo falls to netavark below.
        let mut for_netavark = sb.attachments.clone();
        for (nid, a) in sb
            .attachments
            .iter()
            .filter(|(_, a)| !a.host_veth.is_empty())
        {
            if self.direct_leave(container_id, nid, a).await {
                for_netavark.remove(nid);
            }
        }
        let opts = Options {
            container_id: container_id.to_string(),
            container_name: sb.container_name.clone(),
            networks: for_netavark
                .iter()
                .map(|(id, a)| (id.clone(), a.per_network()))
                .collect(),
            network_info: for_netavark
                .iter()
                .map(|(id, a)| (id.clone(), a.info.clone()))
                .collect(),
            port_mappings: sb.ports.iter().map(Published::mapping).collect(),
            dns_servers: Vec::new(),
        };
        if !super::netns::is_kept(&netns) {
            // The namespace is gone (a reboot-like loss of the exec-root).
            // netavark tears down inside one and stops at the first
            // interface it cannot delete, so give it a namespace with
            // stand-ins of the right names; it then removes the host side
            // (rules, DNS entries, the bridge once unused). Its bridge may
            // be gone too (another teardown saw it empty): netavark needs
            // one to remove the network's rules.
            let _ = super::netns::remove(&netns);
            if super::netns::create(&netns).is_ok() {
                for a in for_netavark.values() {
                    super::netns::add_stand_in(&netns, &a.interface);
                    super::netns::ensure_bridge(&a.info.network_interface);
                }
            }
        }
        if !opts.networks.is_empty() {
            if let Err(e) = self.netavark.teardown(&netns, &opts).await {
                warn!(container_id, error = %e, "tearing down the container's network");
            }
        }
        if let Err(e) = super::netns::remove(&netns) {
            warn!(container_id, error = %e, "removing the network namespace");
        }
        if let Err(e) = self.store.delete_sandbox(container_id).await {
            warn!(container_id, error = %e, "forgetting the sandbox");
        }
        if !is_keeper(container_id) {
            for a in sb.attachments.values() {
                self.connect_event(&a.info.id, &a.network_name, container_id, "disconnect");
            }
        }
        self.leaving.lock().await.remove(container_id);
        info!(container_id, "network torn down");
        // The shared chains go a little later, once no container has
        // started meanwhile (`run_sweeper`): sweeping after every exit would
        // cost the next start the chains' re-creation.
        self.sweep_soon.notify_one();
    }

    /// Before the last container of a network leaves: a keeper (an
    /// interface in an otherwise empty namespace) holds the network's
    /// bridge, chains and aardvark-dns, as Docker's bridge outlives its
    /// containers. netavark's teardown of a network's last interface, and
    /// the setup that makes the bridge again, cost ~200 ms; with a keeper a
    /// `docker run --rm` pays ~70 ms. Keepers go after two idle seconds
    /// (`run_sweeper`), with their network, and when berthd stops.
    async fn keep_alive(&self, leaving: &str, sb: &Sandbox) {
        // Containers stopped together leave at once: each counts the others
        // that are not leaving too, and says it is, in one step, so that
        // exactly one of them finds itself last.
        let others = {
            let mut gone = self.leaving.lock().await;
            let Ok(all) = self.store.sandboxes::<Sandbox>().await else {
                return;
            };
            gone.insert(leaving.to_string());
            all.into_iter()
                .filter(|(id, _)| !gone.contains(id))
                .map(|(_, sb)| sb)
                .collect::<Vec<Sandbox>>()
        };
        for (nid, a) in &sb.attachments {
            if others.iter().any(|o| o.attachments.contains_key(nid)) {
                continue;
            }
            let Ok(n) = self.get(nid).await else {
                continue;
            };
            if let Err(e) = self.add_keeper(&n).await {
                warn!(network = %a.network_name, error = %e, "keeping the network's bridge");
            }
        }
    }

    async fn add_keeper(&self, n: &NetworkRecord) -> Result<()> {
        let id = keeper_of(&n.id);
        let _alloc = self.alloc.lock().await;
        let subnet = n
            .subnet()
            .ok_or_else(|| Error::Internal(format!("network {} has no subnet", n.name)))?;
        let used = self.used_addresses(&n.id, &id).await?;
        let range = n.ip_range.as_deref().and_then(|r| r.parse().ok());
        let Some(ip) = ipam::allocate(&subnet, range.as_ref(), n.gateway(), &used) else {
            return Ok(()); // no room: the network just goes with its last container
        };
        let e = EndpointRecord {
            endpoint_id: String::new(),
            aliases: Vec::new(),
            ipv4: None,
            ipv6: None,
            mac: None,
            mac_from_config: false,
            interface: "eth0".into(),
            links: Vec::new(),
            link_local_ips: Vec::new(),
            driver_opts: None,
            network_name: n.name.clone(),
            named: true,
        };
        let opts = Options {
            container_id: id.clone(),
            container_name: id.clone(),
            networks: BTreeMap::from([(
                n.id.clone(),
                PerNetwork {
                    interface_name: "eth0".into(),
                    static_ips: vec![ip.to_string()],
                    aliases: Vec::new(),
                    static_mac: None,
                },
            )]),
            network_info: BTreeMap::from([(n.id.clone(), n.netavark_info())]),
            port_mappings: Vec::new(),
            dns_servers: Vec::new(),
        };
        let netns = self.netns_dir.join(&id);
        let none = super::netavark::Status::default();
        let sb = Sandbox {
            netns: netns.display().to_string(),
            container_name: id.clone(),
            attachments: BTreeMap::from([(
                n.id.clone(),
                attachment(
                    n,
                    &e,
                    &Addresses {
                        ip: ip.to_string(),
                        ip6: None,
                    },
                    &opts,
                    &none,
                    false,
                ),
            )]),
            ports: Vec::new(),
        };
        self.store.set_sandbox(&id, &sb).await?;
        drop(_alloc);
        let made = match super::netns::create(&netns) {
            Ok(()) => self.netavark.setup(&netns, &opts).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if made.is_err() {
            Box::pin(self.leave(&id)).await;
        }
        made
    }

    /// Removes the keepers of networks no container uses (`all`: every
    /// keeper, as when berthd stops).
    pub async fn drop_keepers(&self, all: bool) {
        let Ok(sandboxes) = self.store.sandboxes::<Sandbox>().await else {
            return;
        };
        let used: HashSet<&String> = sandboxes
            .iter()
            .filter(|(id, _)| !is_keeper(id))
            .flat_map(|(_, sb)| sb.attachments.keys())
            .collect();
        for (id, sb) in &sandboxes {
            if is_keeper(id) && (all || !sb.attachments.keys().any(|n| used.contains(n))) {
                Box::pin(self.leave(id)).await;
            }
        }
    }

    /// The keeper of network `id`, if it has one.
    pub async fn drop_keeper_of(&self, network_id: &str) {
        let id = keeper_of(network_id);
        if self.sandbox(&id).await.ok().flatten().is_some() {
            Box::pin(self.leave(&id)).await;
        }
    }

    /// Containers that have a sandbox, or at least a namespace file (a
    /// crash between making the namespace and recording it).
    pub async fn sandbox_ids(&self) -> Result<Vec<String>> {
        let mut ids = self.store.sandbox_ids().await?;
        if let Ok(dir) = std::fs::read_dir(&self.netns_dir) {
            for f in dir.flatten() {
                let id = f.file_name().to_string_lossy().into_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    /// `POST /networks/{id}/connect`
    pub async fn connect(
        &self,
        c: &Container,
        network: &str,
        cfg: &EndpointSettings,
    ) -> Result<()> {
        let n = self.get(network).await?;
        let mode = mode_of(c);
        if n.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(Error::Forbidden(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {mode})"
            )));
        }
        let eps = self.endpoints_of(&c.id).await?;
        if eps.iter().any(|(nid, _)| *nid == n.id) {
            // dockerd keeps the settings a stopped container has and
            // answers 200; a running one has a live endpoint.
            if !c.is_running() {
                return Ok(());
            }
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.name
            )));
        }
        let used: HashSet<String> = eps.iter().map(|(_, e)| e.interface.clone()).collect();
        let iface = (0..)
            .map(|i| format!("eth{i}"))
            .find(|i| !used.contains(i))
            .unwrap_or_default();
        let mut e = self.endpoint(&n, cfg, &iface, &c.name)?;
        e.named = true;
        if let Some(mut sb) = self.sandbox(&c.id).await?.filter(|_| c.is_running()) {
            let _alloc = self.alloc.lock().await;
            let (ip, per) = self.prepare(c, &n, &e).await?;
            let opts = Options {
                container_id: c.id.clone(),
                container_name: c.name.clone(),
                networks: BTreeMap::from([(n.id.clone(), per)]),
                network_info: BTreeMap::from([(n.id.clone(), n.netavark_info())]),
                port_mappings: Vec::new(),
                dns_servers: self.dns_of(c),
            };
            let status = self
                .netavark
                .setup(std::path::Path::new(&sb.netns), &opts)
                .await?;
            let st = status.get(&n.id).cloned().unwrap_or_default();
            sb.attachments
                .insert(n.id.clone(), attachment(&n, &e, &ip, &opts, &st, false));
            self.store.set_sandbox(&c.id, &sb).await?;
        }
        self.store.set_endpoint(&c.id, &n.id, &e).await?;
        self.connect_event(&n.id, &n.name, &c.id, "connect");
        Ok(())
    }

    /// The aardvark-dns servers of a running container's networks, first
    /// interface first: what its resolv.conf names.
    pub async fn nameservers_of(&self, container_id: &str) -> Result<Vec<String>> {
        let Some(sb) = self.sandbox(container_id).await? else {
            return Ok(Vec::new());
        };
        let mut attachments: Vec<&Attachment> = sb.attachments.values().collect();
        attachments.sort_by_key(|a| iface_order(&a.interface));
        let mut servers: Vec<String> = Vec::new();
        for s in attachments.iter().flat_map(|a| &a.dns_servers) {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        Ok(servers)
    }

    /// `POST /networks/{id}/disconnect`
    pub async fn disconnect(&self, c: &Container, network: &str) -> Result<()> {
        // dockerd looks for the name among the container's networks, not
        // the engine's: an unknown one is a 500 in those words, not a 404.
        let not_connected = || {
            Error::Internal(format!(
                "container {} is not connected to the network {network}",
                c.id
            ))
        };
        let n = match self.get(network).await {
            Ok(n) => n,
            Err(Error::NotFound(_)) => {
                // The endpoint of a network removed while the container
                // was not running: dropped by the name it had.
                let all = self.all().await?;
                let stale = self
                    .endpoints_of(&c.id)
                    .await?
                    .into_iter()
                    .find(|(nid, e)| {
                        e.network_name == network && !all.iter().any(|n| &n.id == nid)
                    });
                let Some((nid, _)) = stale else {
                    return Err(not_connected());
                };
                self.store.delete_endpoint(&c.id, &nid).await?;
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        if n.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let eps = self.endpoints_of(&c.id).await?;
        if !eps.iter().any(|(nid, _)| *nid == n.id) {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        }
        if let Some(mut sb) = self.sandbox(&c.id).await? {
            if let Some(a) = sb.attachments.remove(&n.id) {
                let opts = Options {
                    container_id: c.id.clone(),
                    container_name: c.name.clone(),
                    networks: BTreeMap::from([(n.id.clone(), a.per_network())]),
                    network_info: BTreeMap::from([(n.id.clone(), a.info.clone())]),
                    port_mappings: if a.with_ports {
                        sb.ports.iter().map(Published::mapping).collect()
                    } else {
                        Vec::new()
                    },
                    dns_servers: Vec::new(),
                };
                self.netavark
                    .teardown(std::path::Path::new(&sb.netns), &opts)
                    .await?;
                self.store.set_sandbox(&c.id, &sb).await?;
            }
        }
        self.store.delete_endpoint(&c.id, &n.id).await?;
        self.connect_event(&n.id, &n.name, &c.id, "disconnect");
        Ok(())
    }
}

/// Keepers are sandboxes of no container: `keeper-<network id>`.
pub fn is_keeper(id: &str) -> bool {
    id.starts_with("keeper-")
}

fn keeper_of(network_id: &str) -> String {
    format!("keeper-{network_id}")
}

pub(super) fn iface_order(iface: &str) -> u32 {
    iface.trim_start_matches("eth").parse().unwrap_or(u32::MAX)
}

fn address_in_use() -> Error {
    Error::Forbidden("Address already in use".into())
}

fn attachment(
    n: &NetworkRecord,
    e: &EndpointRecord,
    addresses: &Addresses,
    opts: &Options,
    st: &super::netavark::Status,
    with_ports: bool,
) -> Attachment {
    let mac = st
        .interfaces
        .as_ref()
        .and_then(|i| i.get(&e.interface))
        .map(|i| i.mac_address.clone())
        .unwrap_or_default();
    Attachment {
        network_name: n.name.clone(),
        endpoint_id: e.endpoint_id.clone(),
        interface: e.interface.clone(),
        ip: addresses.ip.clone(),
        prefix: n.subnet().map(|s| s.prefix_len()).unwrap_or(0),
        gateway: n.gateway.clone().unwrap_or_default(),
        ip6: addresses.ip6.clone().unwrap_or_default(),
        prefix6: match (&addresses.ip6, n.subnet6()) {
            (Some(_), Some(s)) => s.prefix_len(),
            _ => 0,
        },
        gateway6: match addresses.ip6 {
            Some(_) => n.gateway6.clone().unwrap_or_default(),
            None => String::new(),
        },
        mac,
        aliases: opts
            .networks
            .get(&n.id)
            .map(|p| p.aliases.clone())
            .unwrap_or_default(),
        dns_servers: if n.dns {
            st.dns_server_ips.clone().unwrap_or_default()
        } else {
            Vec::new()
        },
        info: n.netavark_info(),
        with_ports,
        host_veth: String::new(),
    }
}
