//! Published ports: -p host_ip:host_port:container_port/proto (the CLI
//! sends them as HostConfig.PortBindings), -P (every exposed port on a
//! random host port), and the host-port choice for "random" and ranges.
//! netavark turns the result into DNAT rules.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use bollard_stubs::models::{PortBinding, PortMap, PortSummary, PortSummaryTypeEnum};
use serde::{Deserialize, Serialize};

use super::netavark::PortMapping;
use crate::containers::record::Container;
use crate::error::{Error, Result};

/// A published port with its host port resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub container_port: u16,
    pub protocol: String,
    /// As shown by inspect: "0.0.0.0" for every address.
    pub host_ip: String,
    pub host_port: u16,
}

impl Published {
    pub fn mapping(&self) -> PortMapping {
        PortMapping {
            container_port: self.container_port,
            host_ip: if self.host_ip == "0.0.0.0" {
                String::new()
            } else {
                self.host_ip.clone()
            },
            host_port: self.host_port,
            protocol: self.protocol.clone(),
            range: 1,
        }
    }

    /// Whether this and `other` would take the same host socket.
    fn clashes(&self, other: &Published) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip == "0.0.0.0"
                || other.host_ip == "0.0.0.0")
    }
}

/// "80/tcp" (or "80") into (80, "tcp").
pub fn parse_key(key: &str) -> Result<(u16, String)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::InvalidArgument(format!("invalid proto: {proto}")));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("invalid containerPort: {port}")))?;
    Ok((port, proto))
}

/// One wanted publication before its host port is chosen.
#[derive(Debug, Clone)]
struct Wanted {
    container_port: u16,
    protocol: String,
    host_ip: String,
    /// 0..0 for "any"; lo..=hi for a range ("8000-8010").
    lo: u16,
    hi: u16,
}

fn wanted(c: &Container, default_ip: &str) -> Result<Vec<Wanted>> {
    let mut out = Vec::new();
    let bindings = c.host_config.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let (port, proto) = parse_key(key)?;
        for b in bindings[key].clone().unwrap_or_default() {
            let ip = b.host_ip.unwrap_or_default();
            let ip = if ip.is_empty() {
                default_ip.to_string()
            } else {
                ip
            };
            match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => {}
                // The CLI adds "::" twins of 0.0.0.0 only when asked; this
                // engine's networks are IPv4.
                Ok(IpAddr::V6(a)) if a.is_unspecified() => continue,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid host IP {ip:?}: only IPv4 addresses can publish ports here"
                    )))
                }
            }
            let hp = b.host_port.unwrap_or_default();
            let (lo, hi) = match hp.split_once('-') {
                _ if hp.is_empty() => (0, 0),
                Some((a, b)) => (parse_host_port(a)?, parse_host_port(b)?),
                None => {
                    let p = parse_host_port(&hp)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(Error::InvalidArgument(format!("invalid hostPort: {hp}")));
            }
            out.push(Wanted {
                container_port: port,
                protocol: proto.clone(),
                host_ip: ip,
                lo,
                hi,
            });
        }
    }
    if c.host_config.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<String> = c.config.exposed_ports.clone().unwrap_or_default();
        exposed.sort();
        for key in exposed {
            let (port, proto) = parse_key(&key)?;
            if out
                .iter()
                .any(|w| w.container_port == port && w.protocol == proto)
            {
                continue;
            }
            out.push(Wanted {
                container_port: port,
                protocol: proto,
                host_ip: default_ip.to_string(),
                lo: 0,
                hi: 0,
            });
        }
    }
    Ok(out)
}

fn parse_host_port(s: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("invalid hostPort: {s}")))
}

/// Whether the host lets us have that socket now (nothing listens there).
fn host_free(ip: &str, port: u16, proto: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let addr = SocketAddr::new(ip, port);
    match proto {
        "udp" => UdpSocket::bind(addr).is_ok(),
        _ => TcpListener::bind(addr).is_ok(),
    }
}

/// A random free port of the kernel's ephemeral range.
fn random_port(ip: &str, proto: &str) -> Option<u16> {
    let addr = SocketAddr::new(ip.parse().ok()?, 0);
    match proto {
        "udp" => UdpSocket::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
        _ => TcpListener::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

/// Chooses the host ports of `c`'s publications; `taken` are those of
/// the other running containers.
pub fn resolve(c: &Container, default_ip: &str, taken: &[Published]) -> Result<Vec<Published>> {
    let mut out: Vec<Published> = Vec::new();
    for w in wanted(c, default_ip)? {
        let free = |p: &Published, out: &[Published]| {
            !taken.iter().chain(out.iter()).any(|t| t.clashes(p))
                && host_free(&p.host_ip, p.host_port, &p.protocol)
        };
        let mut pick = |port: u16| Published {
            container_port: w.container_port,
            protocol: w.protocol.clone(),
            host_ip: w.host_ip.clone(),
            host_port: port,
        };
        let chosen = if w.lo == 0 {
            (0..20)
                .filter_map(|_| random_port(&w.host_ip, &w.protocol))
                .map(&mut pick)
                .find(|p| free(p, &out))
        } else {
            (w.lo..=w.hi).map(&mut pick).find(|p| free(p, &out))
        };
        match chosen {
            Some(p) => out.push(p),
            None if w.lo == w.hi && w.lo != 0 => {
                return Err(Error::Internal(format!(
                    "driver failed programming external connectivity on endpoint {}: Bind for {}:{} failed: port is already allocated",
                    c.name, w.host_ip, w.lo
                )))
            }
            None => {
                return Err(Error::Internal(format!(
                    "driver failed programming external connectivity on endpoint {}: no free host port for {}/{} in {}-{}",
                    c.name, w.container_port, w.protocol, w.lo, w.hi
                )))
            }
        }
    }
    Ok(out)
}

/// NetworkSettings.Ports: every exposed or published port, null when not
/// published (or not running).
pub fn settings(c: &Container, published: &[Published]) -> PortMap {
    let mut m = PortMap::new();
    let mut keys: HashSet<String> = c
        .config
        .exposed_ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(b) = &c.host_config.port_bindings {
        keys.extend(b.keys().cloned());
    }
    for k in keys {
        if let Ok((port, proto)) = parse_key(&k) {
            m.entry(format!("{port}/{proto}")).or_insert(None);
        }
    }
    for p in published {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let bindings = m.entry(key).or_insert(None).get_or_insert_with(Vec::new);
        bindings.push(PortBinding {
            host_ip: Some(p.host_ip.clone()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    m
}

/// `docker ps`'s Ports: published ones with their host side, exposed ones
/// without.
pub fn summary(c: &Container, published: &[Published]) -> Vec<PortSummary> {
    let kind = |proto: &str| {
        Some(match proto {
            "udp" => PortSummaryTypeEnum::UDP,
            "sctp" => PortSummaryTypeEnum::SCTP,
            _ => PortSummaryTypeEnum::TCP,
        })
    };
    let mut out: Vec<PortSummary> = published
        .iter()
        .map(|p| PortSummary {
            ip: Some(p.host_ip.clone()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            typ: kind(&p.protocol),
        })
        .collect();
    let mut exposed: Vec<(u16, String)> = c
        .config
        .exposed_ports
        .clone()
        .map(|e| e.iter().filter_map(|k| parse_key(k).ok()).collect())
        .unwrap_or_default();
    exposed.sort();
    for (port, proto) in exposed {
        if !published
            .iter()
            .any(|p| p.container_port == port && p.protocol == proto)
        {
            out.push(PortSummary {
                ip: None,
                private_port: port,
                public_port: None,
                typ: kind(&proto),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_like_docker() {
        assert_eq!(parse_key("80/tcp").unwrap(), (80, "tcp".into()));
        assert_eq!(parse_key("53/UDP").unwrap(), (53, "udp".into()));
        assert_eq!(parse_key("8080").unwrap(), (8080, "tcp".into()));
        assert!(parse_key("80/icmp").is_err());
        assert!(parse_key("0/tcp").is_err());
        assert!(parse_key("http/tcp").is_err());
    }

    #[test]
    fn all_addresses_clash_with_one() {
        let p = |ip: &str, port| Published {
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: ip.into(),
            host_port: port,
        };
        assert!(p("0.0.0.0", 80).clashes(&p("127.0.0.1", 80)));
        assert!(!p("127.0.0.2", 80).clashes(&p("127.0.0.1", 80)));
        assert!(!p("127.0.0.1", 81).clashes(&p("127.0.0.1", 80)));
    }
}
