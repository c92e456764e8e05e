//! Address management for bridge networks: IPv4 subnets for new networks
//! from the default address pools, and container addresses (IPv4 and
//! IPv6) inside a network's subnet or --ip-range. netavark takes the
//! addresses we pick.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};

/// A `--default-address-pool base=10.78.0.0/15,size=24`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl Pool {
    pub fn parse(s: &str) -> Result<Pool> {
        let bad = || {
            Error::InvalidArgument(format!(
                "invalid default address pool {s:?}: expected base=<CIDR>,size=<prefix length>"
            ))
        };
        let mut base = None;
        let mut size = None;
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("base", v)) => base = Some(parse_subnet(v)?),
                Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let (base, size) = (base.ok_or_else(bad)?, size.ok_or_else(bad)?);
        if size < base.prefix_len() || size > 30 {
            return Err(bad());
        }
        Ok(Pool { base, size })
    }
}

/// A subnet in CIDR form whose host bits are zero (Docker's rule).
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid CIDR address: {s}")))?;
    if net.trunc() != net {
        return Err(Error::InvalidArgument(format!(
            "invalid subnet {s}: it should be {}",
            net.trunc()
        )));
    }
    Ok(net)
}

pub fn parse_addr(s: &str) -> Result<Ipv4Addr> {
    s.parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {s}")))
}

/// An IPv6 subnet as dockerd takes it: host bits may be set (it keeps the
/// text as given; addresses are picked in the network part).
pub fn parse_subnet6(s: &str) -> Result<Ipv6Net> {
    s.parse()
        .map_err(|_| Error::Internal(format!("Invalid subnet {s} : invalid CIDR address: {s}")))
}

pub fn parse_addr6(s: &str) -> Result<Ipv6Addr> {
    s.parse()
        .map_err(|_| Error::InvalidArgument(format!("invalid IPv6 address: {s}")))
}

/// Whether an address text is IPv6 (dockerd sorts IPAM configs by it).
pub fn is_v6(s: &str) -> bool {
    s.contains(':')
}

/// An --ip-range must lie inside its network's subnet (either family).
pub fn range_inside(subnet: ipnet::IpNet, range: ipnet::IpNet) -> Result<()> {
    if subnet.contains(&range.network()) && range.prefix_len() >= subnet.prefix_len() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "invalid network config: ip-range {range} is not inside subnet {subnet}"
    )))
}

pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet of the pools that overlaps none of `taken`.
pub fn next_subnet(pools: &[Pool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pools.iter().find_map(|p| {
        p.base
            .subnets(p.size)
            .ok()?
            .find(|s| !taken.iter().any(|t| overlaps(s, t)))
    })
}

/// Networks the host routes already (its own interfaces, other engines'
/// bridges, a dockerd's docker0), from /proc/net/route; the default route
/// is left out.
pub fn host_routes() -> Vec<Ipv4Net> {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None;
            }
            // The kernel prints the address's memory as a native (here
            // little-endian) u32: "0002000A" is 10.0.2.0.
            let dest = Ipv4Addr::from(dest.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            Ipv4Net::new(dest, prefix).ok().map(|n| n.trunc())
        })
        .collect()
}

/// The first free address of `range` (default: the whole subnet), never
/// the network, broadcast or gateway address.
pub fn allocate(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    gateway: Option<Ipv4Addr>,
    used: &HashSet<IpAddr>,
) -> Option<Ipv4Addr> {
    range
        .unwrap_or(subnet)
        .hosts()
        .filter(|a| subnet.contains(a) && *a != subnet.network() && *a != subnet.broadcast())
        .find(|a| Some(*a) != gateway && !used.contains(&IpAddr::V4(*a)))
}

/// The first free IPv6 address of `range` (default: the subnet), never
/// the subnet's first (all-zero host part) or the gateway: dockerd's
/// order, so a network without a given gateway has it on ::1 and its
/// first container on ::2.
pub fn allocate6(
    subnet: &Ipv6Net,
    range: Option<&Ipv6Net>,
    gateway: Option<Ipv6Addr>,
    used: &HashSet<IpAddr>,
) -> Option<Ipv6Addr> {
    let subnet = subnet.trunc();
    range
        .map(Ipv6Net::trunc)
        .unwrap_or(subnet)
        .hosts()
        .filter(|a| subnet.contains(a) && *a != subnet.network())
        .find(|a| Some(*a) != gateway && !used.contains(&IpAddr::V6(*a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_skip_taken_subnets() {
        let pools = vec![Pool::parse("base=10.78.0.0/15,size=24").unwrap()];
        let taken = vec![
            parse_subnet("10.78.0.0/24").unwrap(),
            parse_subnet("10.78.1.0/25").unwrap(),
        ];
        assert_eq!(
            next_subnet(&pools, &taken).unwrap().to_string(),
            "10.78.2.0/24"
        );
        assert!(Pool::parse("base=10.0.0.0/8").is_err());
        assert!(Pool::parse("base=10.0.0.0/16,size=8").is_err());
    }

    #[test]
    fn subnets_must_be_network_addresses() {
        assert!(parse_subnet("10.1.1.0/24").is_ok());
        let e = parse_subnet("10.1.1.5/24").unwrap_err().to_string();
        assert_eq!(e, "invalid subnet 10.1.1.5/24: it should be 10.1.1.0/24");
        assert!(parse_subnet("nonsense").is_err());
    }

    #[test]
    fn addresses_skip_gateway_and_used() {
        let net = parse_subnet("10.9.0.0/29").unwrap();
        let gw = Some(parse_addr("10.9.0.1").unwrap());
        let mut used = HashSet::new();
        assert_eq!(
            allocate(&net, None, gw, &used).unwrap().to_string(),
            "10.9.0.2"
        );
        used.insert(IpAddr::V4(parse_addr("10.9.0.2").unwrap()));
        assert_eq!(
            allocate(&net, None, gw, &used).unwrap().to_string(),
            "10.9.0.3"
        );
        for a in 3..=6 {
            used.insert(IpAddr::V4(Ipv4Addr::new(10, 9, 0, a)));
        }
        assert_eq!(allocate(&net, None, gw, &used), None);
        let range = parse_subnet("10.9.0.4/30").unwrap();
        let used = HashSet::new();
        assert_eq!(
            allocate(&net, Some(&range), gw, &used).unwrap().to_string(),
            "10.9.0.5"
        );
    }

    #[test]
    fn ipv6_addresses_follow_dockerd_order() {
        let net = parse_subnet6("2001:389::/64").unwrap();
        let mut used = HashSet::new();
        let gw = allocate6(&net, None, None, &used).unwrap();
        assert_eq!(gw.to_string(), "2001:389::1");
        assert_eq!(
            allocate6(&net, None, Some(gw), &used).unwrap().to_string(),
            "2001:389::2"
        );
        used.insert(IpAddr::V6("2001:389::2".parse().unwrap()));
        assert_eq!(
            allocate6(&net, None, Some(gw), &used).unwrap().to_string(),
            "2001:389::3"
        );
        let gw: Ipv6Addr = "2001:389::ffff".parse().unwrap();
        let range = parse_subnet6("2001:389::/96").unwrap();
        assert_eq!(
            allocate6(&net, Some(&range), Some(gw), &HashSet::new())
                .unwrap()
                .to_string(),
            "2001:389::1"
        );
        // Host bits in the subnet text are kept by dockerd, not refused.
        assert!(parse_subnet6("2001:393::1/64").is_ok());
        assert!(parse_addr6("zzz").is_err());
    }
}
