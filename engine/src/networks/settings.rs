//! What a container's networking looks like to clients: inspect's
//! NetworkSettings, and `docker ps`'s networks and ports.
//!
//! bollard's `NetworkSettings` follows the newest API, which dropped the
//! top-level addresses (IPAddress, Gateway, MacAddress…) that API 1.50
//! still sends and scripts still read (`{{.NetworkSettings.IPAddress}}`),
//! so inspect's is Berth's own type; the endpoints are bollard's.

use std::collections::HashMap;

use bollard_stubs::models::{EndpointIpamConfig, EndpointSettings, PortSummary};
use serde::Serialize;

use super::sandbox::{iface_order, mode_of, Attachment, Sandbox};
use super::{ports, EndpointRecord, NetworkRecord, Networks};
use crate::containers::record::Container;
use crate::error::Result;

/// `NetworkSettings` of container inspect as dockerd writes it for API 1.50.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkSettings {
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    #[serde(rename = "Ports")]
    pub ports: bollard_stubs::models::PortMap,
    #[serde(rename = "HairpinMode")]
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    /// Always `null`: Berth gives no secondary addresses.
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    /// The default bridge's endpoint, for the fields below.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    #[serde(rename = "Networks")]
    pub networks: HashMap<String, EndpointSettings>,
}

/// A container's networking, for inspect and for `docker ps`.
pub struct Networking {
    pub settings: NetworkSettings,
    /// `docker ps`'s Ports.
    pub ports: Vec<PortSummary>,
}

impl Networking {
    /// `docker ps`'s Networks: dockerd's list copies each endpoint without
    /// its aliases.
    pub fn summary_networks(&self) -> HashMap<String, EndpointSettings> {
        let mut networks = self.settings.networks.clone();
        for ep in networks.values_mut() {
            ep.aliases = None;
        }
        networks
    }

    /// Whether the container is on a network named `wanted` or with an id
    /// that starts with it (ps's `network` filter).
    pub fn on_network(&self, wanted: &str) -> bool {
        self.settings.networks.iter().any(|(name, ep)| {
            name == wanted
                || ep
                    .network_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(wanted))
        })
    }
}

/// What the networking of containers is made of, read from the store once:
/// `docker ps` of many containers costs three queries, not three each.
pub struct NetworkView {
    /// Each container's endpoints, in interface order.
    endpoints: HashMap<String, Vec<(String, EndpointRecord)>>,
    sandboxes: HashMap<String, Sandbox>,
    networks: Vec<NetworkRecord>,
}

impl Networks {
    /// The view of every container (for listings).
    pub async fn view(&self) -> Result<NetworkView> {
        let mut endpoints: HashMap<String, Vec<(String, EndpointRecord)>> = HashMap::new();
        for (cid, nid, e) in self.store.endpoints::<EndpointRecord>().await? {
            endpoints.entry(cid).or_default().push((nid, e));
        }
        for eps in endpoints.values_mut() {
            eps.sort_by_key(|e| iface_order(&e.1.interface));
        }
        Ok(NetworkView {
            endpoints,
            sandboxes: self
                .store
                .sandboxes::<Sandbox>()
                .await?
                .into_iter()
                .collect(),
            networks: self.all().await?,
        })
    }

    /// NetworkSettings of container inspect, and the Networks and Ports of
    /// `docker ps`, for one container.
    pub async fn networking(&self, c: &Container) -> Result<Networking> {
        // A stopped container's sandbox is not looked at (see `networking`).
        let sandbox = if c.is_running() || c.state.restarting {
            self.sandbox(&c.id).await?
        } else {
            None
        };
        let view = NetworkView {
            endpoints: HashMap::from([(c.id.clone(), self.endpoints_of(&c.id).await?)]),
            sandboxes: sandbox.map(|sb| (c.id.clone(), sb)).into_iter().collect(),
            networks: self.all().await?,
        };
        Ok(view.networking(c))
    }
}

impl NetworkView {
    /// NetworkSettings of container inspect, and the Networks and Ports of
    /// `docker ps`.
    pub fn networking(&self, c: &Container) -> Networking {
        let no_endpoints = Vec::new();
        let eps = self.endpoints.get(&c.id).unwrap_or(&no_endpoints);
        let sb = self
            .sandboxes
            .get(&c.id)
            .filter(|_| c.is_running() || c.state.restarting);
        let all = &self.networks;
        let mut networks = HashMap::new();
        let mode = mode_of(c).to_string();
        let mut first: Option<Attachment> = None;
        for (nid, e) in eps {
            let n = all.iter().find(|n| &n.id == nid);
            // An endpoint whose network was removed: dockerd still lists
            // it, bare, by the name the network had.
            let name = match n {
                Some(n) => n.name.clone(),
                None if !e.network_name.is_empty() => e.network_name.clone(),
                None => continue,
            };
            let a = sb
                .and_then(|s| s.attachments.get(nid))
                .filter(|_| n.is_some());
            if first.is_none() {
                first = a.cloned();
            }
            let dns_names = if e.named && n.is_none_or(|n| n.dns) {
                dns_names(c, e)
            } else {
                Vec::new()
            };
            let present = |list: &Vec<String>| Some(list.clone()).filter(|l| !l.is_empty());
            let endpoint = EndpointSettings {
                ipam_config: ipam_config(e),
                links: present(&e.links),
                aliases: present(&e.aliases),
                // The address in use, else the one asked for.
                mac_address: Some(
                    a.map(|a| a.mac.clone())
                        .or_else(|| e.mac.clone())
                        .unwrap_or_default(),
                ),
                driver_opts: e.driver_opts.clone(),
                gw_priority: Some(0),
                network_id: Some(n.map(|n| n.id.clone()).unwrap_or_default()),
                endpoint_id: Some(a.map(|a| a.endpoint_id.clone()).unwrap_or_default()),
                gateway: Some(a.map(|a| a.gateway.clone()).unwrap_or_default()),
                ip_address: Some(a.map(|a| a.ip.clone()).unwrap_or_default()),
                ip_prefix_len: Some(a.map(|a| i64::from(a.prefix)).unwrap_or(0)),
                ipv6_gateway: Some(a.map(|a| a.gateway6.clone()).unwrap_or_default()),
                global_ipv6_address: Some(a.map(|a| a.ip6.clone()).unwrap_or_default()),
                global_ipv6_prefix_len: Some(a.map(|a| i64::from(a.prefix6)).unwrap_or(0)),
                dns_names: present(&dns_names),
            };
            networks.insert(name, endpoint);
        }
        if eps.is_empty() && (mode == "host" || mode == "none") {
            let n = all.iter().find(|n| n.name == mode);
            let bare = EndpointSettings {
                mac_address: Some(String::new()),
                gw_priority: Some(0),
                network_id: Some(n.map(|n| n.id.clone()).unwrap_or_default()),
                endpoint_id: Some(String::new()),
                gateway: Some(String::new()),
                ip_address: Some(String::new()),
                ip_prefix_len: Some(0),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                ..Default::default()
            };
            networks.insert(mode.clone(), bare);
        }
        let published = sb.map(|s| s.ports.clone()).unwrap_or_default();
        // A container that does not run has no ports, exposed ones
        // included (dockerd lists them only while it runs).
        let no_ports =
            mode.starts_with("container:") || mode == "host" || mode == "none" || sb.is_none();
        // The top-level fields are the default bridge's endpoint's.
        let bridge = first.as_ref().filter(|_| mode == "bridge");
        let from_bridge = |field: fn(&Attachment) -> String| bridge.map(field).unwrap_or_default();
        let settings = NetworkSettings {
            sandbox_id: if sb.is_some() {
                c.id.clone()
            } else {
                String::new()
            },
            sandbox_key: sb.map(|s| s.netns.clone()).unwrap_or_default(),
            ports: if no_ports {
                Default::default()
            } else {
                ports::settings(c, &published)
            },
            endpoint_id: from_bridge(|a| a.endpoint_id.clone()),
            gateway: from_bridge(|a| a.gateway.clone()),
            ip_address: from_bridge(|a| a.ip.clone()),
            ip_prefix_len: bridge.map(|a| i64::from(a.prefix)).unwrap_or(0),
            mac_address: from_bridge(|a| a.mac.clone()),
            networks,
            ..Default::default()
        };
        Networking {
            settings,
            ports: ports::summary(c, &published),
        }
    }
}

/// An endpoint's IPAMConfig as the client gave it (absent when it gave none).
fn ipam_config(e: &EndpointRecord) -> Option<EndpointIpamConfig> {
    if e.ipv4.is_none() && e.ipv6.is_none() && e.link_local_ips.is_empty() {
        return None;
    }
    Some(EndpointIpamConfig {
        ipv4_address: e.ipv4.clone(),
        ipv6_address: e.ipv6.clone(),
        link_local_ips: Some(e.link_local_ips.clone()).filter(|l| !l.is_empty()),
    })
}

/// The names aardvark-dns answers for `c` on a user-defined network.
fn dns_names(c: &Container, e: &EndpointRecord) -> Vec<String> {
    [c.name.clone(), c.id[..12].to_string()]
        .into_iter()
        .chain(e.aliases.iter().cloned())
        .collect()
}
