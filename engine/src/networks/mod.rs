//! Networks: the predefined `bridge`, `host` and `none`, and user-defined
//! bridge networks with their own subnet, gateway, --ip-range, internal
//! flag and name resolution (aardvark-dns). The records live in SQLite; the
//! bridges, veths and firewall rules are made by netavark when the first
//! container of a network starts and go with the last one (`sandbox`).

pub mod aardvark;
pub mod direct;
pub mod ipam;
pub mod netavark;
pub mod netns;
pub mod ports;
pub mod sandbox;
pub mod settings;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard_stubs::models::{
    ConfigReference, EndpointResource, Ipam, IpamConfig, NetworkCreateRequest,
    NetworkCreateResponse, NetworkInspect,
};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::error::{Error, Result};
use crate::filters::networks::{NetworkFacts, NetworkFilter};
use crate::filters::PruneFilter;
use crate::store::Store;
use ipam::Pool;

/// Networks every engine has, which cannot be created or removed.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// One network, as stored (JSON in the `networks` table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// bridge, host or null
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// IPv4 subnet (CIDR); bridge networks only.
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
    /// Whether the user chose the subnet (only then may containers pick
    /// their address with --ip, as in Docker).
    #[serde(default)]
    pub user_subnet: bool,
    /// The Linux bridge.
    #[serde(default)]
    pub bridge: String,
    /// Name resolution between its containers (user-defined networks).
    #[serde(default)]
    pub dns: bool,
    /// A subnet given without a gateway: dockerd picks the first address
    /// but shows only what was given.
    #[serde(default)]
    pub gateway_implied: bool,
    /// IPAM AuxiliaryAddresses: names for addresses no container gets.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    /// IPAM Options, kept to be shown as given.
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// EnableIPv6: containers get an address of `subnet6` besides their
    /// IPv4 one.
    #[serde(default)]
    pub ipv6: bool,
    /// The IPv6 IPAM config, as given. dockerd keeps (and shows) one even
    /// without EnableIPv6; containers then get no IPv6 address.
    #[serde(default)]
    pub subnet6: Option<String>,
    /// Given, or the subnet's first address (then `gateway6_implied`).
    #[serde(default)]
    pub gateway6: Option<String>,
    #[serde(default)]
    pub gateway6_implied: bool,
    #[serde(default)]
    pub ip_range6: Option<String>,
}

impl NetworkRecord {
    pub fn is_predefined(&self) -> bool {
        PREDEFINED.contains(&self.name.as_str())
    }

    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.subnet.as_deref().and_then(|s| s.parse().ok())
    }

    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway.as_deref().and_then(|s| s.parse().ok())
    }

    /// The IPv6 subnet containers get addresses of: only with EnableIPv6.
    pub fn subnet6(&self) -> Option<Ipv6Net> {
        self.subnet6
            .as_deref()
            .filter(|_| self.ipv6)
            .and_then(|s| s.parse::<Ipv6Net>().ok())
            .map(|n| n.trunc())
    }

    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.gateway6.as_deref().and_then(|s| s.parse().ok())
    }

    /// netavark's view of it.
    pub fn netavark_info(&self) -> netavark::NetInfo {
        netavark::NetInfo {
            dns_enabled: self.dns,
            driver: "bridge".into(),
            id: self.id.clone(),
            internal: self.internal,
            ipv6_enabled: self.subnet6().is_some(),
            name: self.id.clone(),
            network_interface: self.bridge.clone(),
            subnets: self
                .subnet
                .iter()
                .map(|s| netavark::NetSubnet {
                    subnet: s.clone(),
                    // Internal networks keep the gateway address on the
                    // bridge, where aardvark-dns answers; netavark adds no
                    // default route and no masquerading for them.
                    gateway: self.gateway.clone(),
                })
                .chain(self.subnet6().map(|s| netavark::NetSubnet {
                    subnet: s.to_string(),
                    gateway: self.gateway6.clone(),
                }))
                .collect(),
            options: self
                .options
                .get("com.docker.network.driver.mtu")
                .map(|m| BTreeMap::from([("mtu".to_string(), m.clone())]))
                .unwrap_or_default(),
        }
    }

    /// The document of `docker network inspect` and `ls` (Containers is
    /// filled in by the caller).
    pub fn document(&self) -> NetworkInspect {
        let entry = |subnet: &String, range: &Option<String>, gateway: Option<&String>, v6| {
            // Each family's auxiliary addresses go with its subnet.
            let aux: HashMap<String, String> = self
                .aux_addresses
                .iter()
                .filter(|(_, a)| ipam::is_v6(a) == v6)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            IpamConfig {
                subnet: Some(subnet.clone()),
                ip_range: range.clone(),
                gateway: gateway.cloned(),
                auxiliary_addresses: Some(aux).filter(|a| !a.is_empty()),
            }
        };
        let v4 = self.subnet.iter().map(|s| {
            let gateway = self.gateway.as_ref().filter(|_| !self.gateway_implied);
            entry(s, &self.ip_range, gateway, false)
        });
        let v6 = self.subnet6.iter().map(|s| {
            let gateway = self.gateway6.as_ref().filter(|_| !self.gateway6_implied);
            entry(s, &self.ip_range6, gateway, true)
        });
        let map = |m: &BTreeMap<String, String>| m.clone().into_iter().collect();
        NetworkInspect {
            name: Some(self.name.clone()),
            id: Some(self.id.clone()),
            created: Some(self.created.clone()),
            scope: Some("local".into()),
            driver: Some(self.driver.clone()),
            enable_ipv4: Some(true),
            enable_ipv6: Some(self.ipv6),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(v4.chain(v6).collect()),
                options: self.ipam_options.as_ref().map(map),
            }),
            internal: Some(self.internal),
            attachable: Some(self.attachable),
            ingress: Some(false),
            config_from: Some(ConfigReference {
                network: Some(String::new()),
            }),
            config_only: Some(false),
            options: Some(map(&self.options)),
            labels: Some(map(&self.labels)),
            ..Default::default()
        }
    }
}

/// Container endpoint settings kept per (container, network).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub endpoint_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// --ip
    #[serde(default)]
    pub ipv4: Option<String>,
    /// --ip6 (checked against the network at start, as dockerd does)
    #[serde(default)]
    pub ipv6: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// The MAC came from the container-level Config.MacAddress (which
    /// inspect shows back below API 1.44).
    #[serde(default)]
    pub mac_from_config: bool,
    /// eth0, eth1, ... in the order networks were joined.
    pub interface: String,
    /// Legacy links on a user-defined network (`child:alias`).
    #[serde(default)]
    pub links: Vec<String>,
    /// IPAMConfig.LinkLocalIPs as given (shown; not assigned, see
    /// api-spec/divergences.md).
    #[serde(default)]
    pub link_local_ips: Vec<String>,
    /// The endpoint's DriverOpts, kept to be shown as given.
    #[serde(default)]
    pub driver_opts: Option<std::collections::HashMap<String, String>>,
    /// The network's name when the endpoint was made: a removed network
    /// leaves its endpoints in created containers, shown and
    /// disconnectable by that name (as in dockerd).
    #[serde(default)]
    pub network_name: String,
    /// The endpoint got its DNS names (at a start or a connect): from then
    /// on inspect shows DNSNames, and below API 1.45 the short container
    /// id among the Aliases, as dockerd adds it then.
    #[serde(default)]
    pub named: bool,
}

pub struct Networks {
    store: Store,
    events: Arc<crate::events::Events>,
    netavark: netavark::Netavark,
    netns_dir: PathBuf,
    bridge_name: String,
    bridge_subnet: Ipv4Net,
    bridge_gateway: Ipv4Addr,
    bridge_gateway_text: String,
    pools: Vec<Pool>,
    /// dockerd's --ip: the host address of -p/-P without one.
    pub default_bind_ip: String,
    /// dockerd's --dns: name servers of containers that name none.
    pub default_dns: Vec<String>,
    /// Held while addresses and host ports are picked and recorded, so two
    /// starts never pick the same one.
    alloc: tokio::sync::Mutex<()>,
    /// Containers whose sandbox is being undone: for the choice of the
    /// network's last container, which leaves a keeper (`keep_alive`).
    leaving: tokio::sync::Mutex<std::collections::HashSet<String>>,
    /// Poked when a sandbox goes; see `run_sweeper`.
    pub(crate) sweep_soon: tokio::sync::Notify,
}

fn pool_overlaps() -> Error {
    Error::Forbidden("Pool overlaps with other one on this address space".into())
}

fn invalid_gateway(g: &str) -> Error {
    Error::Internal(format!("invalid gateway address {g} in Ipam configuration"))
}

fn gateway_out_of_range(g: &str) -> Error {
    Error::Internal(format!(
        "failed to allocate gateway ({g}): Requested address is out of range"
    ))
}

/// A network's IPv6 part, checked.
#[derive(Default)]
struct Ipv6Config {
    subnet: Option<String>,
    gateway: Option<String>,
    gateway_implied: bool,
    ip_range: Option<String>,
    aux_addresses: BTreeMap<String, String>,
}

/// Checks the IPv6 IPAM config of a new network against the networks
/// there are, in dockerd's order and words.
fn ipv6_config(
    cfg: &bollard_stubs::models::IpamConfig,
    all: &[NetworkRecord],
) -> Result<Ipv6Config> {
    let text = cfg.subnet.clone().unwrap_or_default();
    let subnet = ipam::parse_subnet6(&text)?.trunc();
    let overlapping = all
        .iter()
        .filter_map(|n| n.subnet6.as_deref()?.parse::<Ipv6Net>().ok())
        .any(|t| ipam::overlaps6(&t.trunc(), &subnet));
    if overlapping {
        return Err(pool_overlaps());
    }
    let (gateway, gateway_implied) = match cfg.gateway.as_deref().filter(|g| !g.is_empty()) {
        Some(g) => {
            let a = g.parse::<Ipv6Addr>().map_err(|_| invalid_gateway(g))?;
            if !subnet.contains(&a) {
                return Err(gateway_out_of_range(g));
            }
            (a, false)
        }
        None => (
            ipam::allocate6(&subnet, None, None, &Default::default())
                .ok_or_else(|| Error::InvalidArgument(format!("subnet {subnet} has no room")))?,
            true,
        ),
    };
    let ip_range = match cfg.ip_range.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            ipam::range_inside(subnet.into(), ipam::parse_subnet6(r)?.into())?;
            Some(r.to_string())
        }
        None => None,
    };
    let mut aux_addresses = BTreeMap::new();
    for (key, addr) in cfg.auxiliary_addresses.clone().unwrap_or_default() {
        if !addr.parse::<Ipv6Addr>().is_ok_and(|a| subnet.contains(&a)) {
            return Err(Error::Forbidden(format!(
                "auxiliary address: ({key}:{addr}) must belong to the master pool: {text}"
            )));
        }
        aux_addresses.insert(key, addr);
    }
    Ok(Ipv6Config {
        subnet: Some(text),
        gateway: Some(gateway.to_string()),
        gateway_implied,
        ip_range,
        aux_addresses,
    })
}

fn no_such_network(name: &str) -> Error {
    Error::NotFound(format!("network {name} not found"))
}

impl Networks {
    pub fn new(
        store: Store,
        events: Arc<crate::events::Events>,
        exec_root: &Path,
        config: &crate::config::Config,
    ) -> Result<Networks> {
        let bip: ipnet::Ipv4Net = config.bip.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "invalid --bip {:?}: expected an address with a prefix length, like 10.77.0.1/16",
                config.bip
            ))
        })?;
        let mut pools = config
            .default_address_pools
            .iter()
            .map(|p| Pool::parse(p))
            .collect::<Result<Vec<_>>>()?;
        if pools.is_empty() {
            pools.push(Pool::parse("base=10.78.0.0/15,size=24")?);
        }
        if config.bridge.is_empty() || config.bridge.len() > 15 {
            return Err(Error::InvalidArgument(format!(
                "invalid --bridge {:?}: an interface name of 1 to 15 characters",
                config.bridge
            )));
        }
        for d in &config.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::InvalidArgument(format!(
                    "invalid --dns {d:?}: an IP address"
                )));
            }
        }
        if config.ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "invalid --ip {:?}",
                config.ip
            )));
        }
        Ok(Networks {
            store,
            events,
            netavark: netavark::Netavark::new(exec_root),
            netns_dir: exec_root.join("netns"),
            bridge_name: config.bridge.clone(),
            bridge_subnet: bip.trunc(),
            bridge_gateway: bip.addr(),
            bridge_gateway_text: bip.addr().to_string(),
            pools,
            default_bind_ip: config.ip.clone(),
            default_dns: config.dns.clone(),
            alloc: tokio::sync::Mutex::new(()),
            leaving: Default::default(),
            sweep_soon: tokio::sync::Notify::new(),
        })
    }

    /// Runs for berthd's life: two seconds after a sandbox went (and none
    /// came meanwhile), removes the keepers of networks without containers
    /// and then, with no sandbox left, netavark's shared iptables chains, so
    /// that a host without running containers carries no rule of ours.
    pub async fn run_sweeper(self: Arc<Self>) {
        loop {
            self.sweep_soon.notified().await;
            while tokio::time::timeout(
                std::time::Duration::from_secs(2),
                self.sweep_soon.notified(),
            )
            .await
            .is_ok()
            {}
            self.drop_keepers(false).await;
            self.sweep_if_unused().await;
        }
    }

    /// Removes netavark's shared chains when no sandbox of ours is left.
    pub async fn sweep_if_unused(&self) {
        if self
            .store
            .sandbox_ids()
            .await
            .map(|s| s.is_empty())
            .unwrap_or(false)
        {
            self.netavark.sweep_firewall().await;
        }
    }

    /// The name servers of `c`: its --dns, else berthd's --dns.
    pub fn dns_of(&self, c: &crate::containers::record::Container) -> Vec<String> {
        match c.host_config.dns.as_deref() {
            Some(d) if !d.is_empty() => d.to_vec(),
            _ => self.default_dns.clone(),
        }
    }

    /// The default bridge's gateway: what `--add-host x:host-gateway`
    /// means.
    pub fn default_gateway(&self) -> &str {
        self.bridge_gateway_text.as_str()
    }

    /// Makes sure the predefined networks exist, and that `bridge` matches
    /// this start's --bridge and --bip.
    pub async fn init(&self) -> Result<()> {
        let all = self.all().await?;
        for name in PREDEFINED {
            let mut rec = match all.iter().find(|n| n.name == name) {
                Some(r) => r.clone(),
                None => NetworkRecord {
                    id: crate::util::random_id(),
                    name: name.into(),
                    driver: match name {
                        "bridge" => "bridge",
                        "host" => "host",
                        _ => "null",
                    }
                    .into(),
                    created: crate::util::now_rfc3339(),
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    user_subnet: false,
                    bridge: String::new(),
                    dns: false,
                    gateway_implied: false,
                    aux_addresses: BTreeMap::new(),
                    ipam_options: None,
                    ipv6: false,
                    subnet6: None,
                    gateway6: None,
                    gateway6_implied: false,
                    ip_range6: None,
                },
            };
            if name == "bridge" {
                rec.subnet = Some(self.bridge_subnet.to_string());
                rec.gateway = Some(self.bridge_gateway.to_string());
                rec.bridge = self.bridge_name.clone();
                rec.options = BTreeMap::from([
                    (
                        "com.docker.network.bridge.default_bridge".into(),
                        "true".into(),
                    ),
                    ("com.docker.network.bridge.enable_icc".into(), "true".into()),
                    (
                        "com.docker.network.bridge.enable_ip_masquerade".into(),
                        "true".into(),
                    ),
                    (
                        "com.docker.network.bridge.name".into(),
                        self.bridge_name.clone(),
                    ),
                ]);
            }
            // A start that finds the record as it would write it (every
            // restart and takeover) writes nothing: a write transaction and
            // its sync, while the berthd being replaced serves, for nothing.
            let stored = all.iter().find(|n| n.name == name);
            if stored
                .is_some_and(|s| serde_json::to_value(s).ok() == serde_json::to_value(&rec).ok())
            {
                continue;
            }
            if !self.store.insert_network(&rec.id, &rec.name, &rec).await? {
                self.store.update_network(&rec.id, &rec).await?;
            }
        }
        Ok(())
    }

    pub async fn all(&self) -> Result<Vec<NetworkRecord>> {
        self.store.networks().await
    }

    /// By full name, full id, or unique id prefix (Docker's order).
    pub async fn get(&self, name: &str) -> Result<NetworkRecord> {
        let all = self.all().await?;
        if let Some(n) = all.iter().find(|n| n.name == name || n.id == name) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&NetworkRecord> = if name.is_empty() {
            Vec::new()
        } else {
            all.iter().filter(|n| n.id.starts_with(name)).collect()
        };
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(no_such_network(name)),
            _ => Err(Error::InvalidArgument(format!(
                "network {name} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ))),
        }
    }

    fn event(&self, action: &str, n: &NetworkRecord, extra: &[(&str, &str)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.to_string());
        }
        self.events.emit("network", action, &n.id, attrs);
    }

    /// `POST /networks/create`
    pub async fn create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let name = req.name.clone();
        // dockerd takes any name (spaces, slashes): it is only a label,
        // never a path; netavark and the bridge know the network by id.
        if name.is_empty() {
            return Err(Error::InvalidArgument(format!("invalid name: {name}")));
        }
        let driver = req
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "bridge".into());
        match driver.as_str() {
            "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            other => return Err(Error::NotFound(format!("plugin \"{other}\" not found"))),
        }
        if req
            .scope
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != "local")
        {
            return Err(Error::InvalidArgument(format!(
                "scope {:?} is not supported: only local networks exist here",
                req.scope.unwrap_or_default()
            )));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        if let Some(d) = ipam
            .driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "default")
        {
            return Err(Error::NotFound(format!("plugin \"{d}\" not found")));
        }
        // dockerd sorts the IPAM configs by their subnet's family; a
        // config without a subnet counts as IPv4.
        let (v6_configs, configs): (Vec<_>, Vec<_>) = ipam
            .config
            .clone()
            .unwrap_or_default()
            .into_iter()
            .partition(|c| c.subnet.as_deref().is_some_and(ipam::is_v6));
        let ipv6 = req.enable_ipv6 == Some(true);
        if ipv6 && v6_configs.is_empty() {
            // dockerd 20.10 has no default IPv6 pools.
            return Err(Error::NotFound(
                "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network".into(),
            ));
        }
        if configs.len() > 1 || v6_configs.len() > 1 {
            return Err(Error::Forbidden(
                "bridge driver doesn't support multiple subnets".into(),
            ));
        }
        let options: BTreeMap<String, String> = req
            .options
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let bridge_opt = options.get("com.docker.network.bridge.name").cloned();
        if let Some(b) = &bridge_opt {
            if b.is_empty() || b.len() > 15 || b.contains('/') || b.contains(char::is_whitespace) {
                return Err(Error::InvalidArgument(format!("invalid bridge name {b:?}")));
            }
        }

        let _alloc = self.alloc.lock().await;
        let all = self.all().await?;
        if all.iter().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let mut taken: Vec<Ipv4Net> = all.iter().filter_map(|n| n.subnet()).collect();
        let (subnet, user_subnet) = match configs.first().and_then(|c| c.subnet.clone()) {
            Some(s) => {
                let s = ipam::parse_subnet(&s)?;
                if taken.iter().any(|t| ipam::overlaps(t, &s)) {
                    return Err(pool_overlaps());
                }
                (s, true)
            }
            None => {
                taken.extend(ipam::host_routes());
                let s = ipam::next_subnet(&self.pools, &taken).ok_or_else(|| {
                    Error::Forbidden(
                        "all predefined address pools have been fully subnetted".into(),
                    )
                })?;
                (s, false)
            }
        };
        let cfg = configs.first().cloned().unwrap_or_default();
        if cfg.subnet.is_none() && (cfg.gateway.is_some() || cfg.ip_range.is_some()) {
            return Err(Error::InvalidArgument(
                "invalid network config: a gateway or ip-range needs a subnet".into(),
            ));
        }
        let v6 = match v6_configs.first() {
            Some(c) => Some(ipv6_config(c, &all)?),
            None => None,
        };
        let gateway = match cfg.gateway.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => {
                let g = g.parse::<Ipv4Addr>().map_err(|_| invalid_gateway(g))?;
                if !subnet.contains(&g) {
                    return Err(gateway_out_of_range(&g.to_string()));
                }
                g
            }
            None => subnet
                .hosts()
                .next()
                .ok_or_else(|| Error::InvalidArgument(format!("subnet {subnet} has no room")))?,
        };
        let ip_range = match cfg.ip_range.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => {
                let r = ipam::parse_subnet(r)?;
                ipam::range_inside(subnet.into(), r.into())?;
                Some(r.to_string())
            }
            None => None,
        };
        let mut aux_addresses = BTreeMap::new();
        for (key, addr) in cfg.auxiliary_addresses.clone().unwrap_or_default() {
            let a = ipam::parse_addr(&addr)?;
            if !subnet.contains(&a) {
                return Err(Error::Forbidden(format!(
                    "failed to allocate secondary ip address ({key}:{addr}): no available IPv4 addresses on this network's address pools"
                )));
            }
            aux_addresses.insert(key, addr);
        }
        let v6 = v6.unwrap_or_default();
        aux_addresses.extend(v6.aux_addresses);
        let id = crate::util::random_id();
        let rec = NetworkRecord {
            ipv6,
            subnet6: v6.subnet,
            gateway6: v6.gateway,
            gateway6_implied: v6.gateway_implied,
            ip_range6: v6.ip_range,
            gateway_implied: user_subnet && cfg.gateway.as_deref().is_none_or(str::is_empty),
            aux_addresses,
            ipam_options: ipam.options.clone().map(|o| o.into_iter().collect()),
            bridge: bridge_opt.unwrap_or_else(|| format!("br-{}", &id[..12])),
            id: id.clone(),
            name: name.clone(),
            driver,
            created: crate::util::now_rfc3339(),
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            options,
            subnet: Some(subnet.to_string()),
            gateway: Some(gateway.to_string()),
            ip_range,
            user_subnet,
            dns: true,
        };
        if all.iter().any(|n| n.bridge == rec.bridge) {
            return Err(Error::Conflict(format!(
                "bridge name {} is used by another network",
                rec.bridge
            )));
        }
        if !self.store.insert_network(&rec.id, &rec.name, &rec).await? {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        info!(network = %name, id = %id, subnet = %subnet, "network created");
        self.event("create", &rec, &[]);
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    /// Ids of the containers attached to network `id` right now (running
    /// ones: a stopped container holds no address), with their sandbox
    /// attachment.
    async fn active(&self, id: &str) -> Result<Vec<(String, sandbox::Attachment)>> {
        let mut out = Vec::new();
        for (cid, sb) in self.store.sandboxes::<sandbox::Sandbox>().await? {
            if sandbox::is_keeper(&cid) {
                continue;
            }
            if let Some(a) = sb.attachments.get(id) {
                out.push((cid, a.clone()));
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`
    pub async fn inspect(&self, name: &str) -> Result<NetworkInspect> {
        let n = self.get(name).await?;
        let mut doc = n.document();
        let mut containers = HashMap::new();
        for (cid, a) in self.active(&n.id).await? {
            let cname = self
                .store
                .container(&cid)
                .await?
                .map(|c| c.name)
                .unwrap_or_default();
            let ipv6 = if a.ip6.is_empty() {
                String::new()
            } else {
                format!("{}/{}", a.ip6, a.prefix6)
            };
            let endpoint = EndpointResource {
                name: Some(cname),
                endpoint_id: Some(a.endpoint_id),
                mac_address: Some(a.mac),
                ipv4_address: Some(format!("{}/{}", a.ip, a.prefix)),
                ipv6_address: Some(ipv6),
            };
            containers.insert(cid, endpoint);
        }
        doc.containers = Some(containers);
        Ok(doc)
    }

    /// Ids of the networks some container (running or not) is connected to.
    async fn networks_in_use(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .store
            .endpoints::<EndpointRecord>()
            .await?
            .into_iter()
            .map(|(_, nid, _)| nid)
            .collect())
    }

    /// `GET /networks`
    pub async fn list(&self, filters: &NetworkFilter) -> Result<Vec<NetworkInspect>> {
        let used = self.networks_in_use().await?;
        let mut out = Vec::new();
        for n in self.all().await? {
            let labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
            let facts = NetworkFacts {
                name: &n.name,
                id: &n.id,
                driver: &n.driver,
                labels: &labels,
                builtin: n.is_predefined(),
            };
            let dangling = !n.is_predefined() && !used.contains(&n.id);
            if filters.matches(&facts) && filters.dangling.is_none_or(|d| d == dangling) {
                out.push(n.document());
            }
        }
        Ok(out)
    }

    /// `DELETE /networks/{id}`
    pub async fn remove(&self, name: &str) -> Result<()> {
        let n = self.get(name).await?;
        if n.is_predefined() {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.active(&n.id).await?.is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.drop_keeper_of(&n.id).await;
        self.store.delete_network(&n.id).await?;
        info!(network = %n.name, "network removed");
        self.event("destroy", &n, &[]);
        Ok(())
    }

    /// `POST /networks/prune`: user-defined networks no container uses.
    pub async fn prune(&self, filters: &PruneFilter) -> Result<Vec<String>> {
        let used = self.networks_in_use().await?;
        let mut deleted = Vec::new();
        for n in self.all().await? {
            let labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
            if n.is_predefined() || used.contains(&n.id) || !filters.matches(&n.created, &labels) {
                continue;
            }
            self.drop_keeper_of(&n.id).await;
            self.store.delete_network(&n.id).await?;
            self.event("destroy", &n, &[]);
            deleted.push(n.name);
        }
        Ok(deleted)
    }
}
