//! Legacy links (`--link name:alias`, `HostConfig.Links`), as dockerd keeps
//! them.
//!
//! On the default bridge a link is stored in the parent's HostConfig as
//! `/<child>:/<parent>/<alias>`; at start the parent gets a hosts line for
//! the child and the child's address, ports and environment as
//! `<ALIAS>_…` variables, and the child answers to `<parent>/<alias>` as a
//! second name. On a user-defined network a link is only a name for the
//! child seen from the parent: dockerd moves it to the endpoint's `Links`
//! (`child:alias`) and its DNS answers it to the parent alone. aardvark-dns
//! has no names scoped to one container: the child gets the alias on the
//! whole network when it joins, and a parent started after its child also
//! gets a hosts line for it (the child's DNS entry was written before the
//! link existed).

use std::collections::HashMap;

use bollard_stubs::models::HostConfig;

use crate::containers::record::Container;
use crate::containers::Containers;
use crate::error::{Error, Result};
use crate::networks::{EndpointRecord, NetworkRecord};

impl Containers {
    /// Create's part: every link names an existing container; on the
    /// default bridge HostConfig keeps them in the stored form, on a
    /// user-defined network they move to the first endpoint.
    pub(super) async fn plan_links(
        &self,
        parent: &str,
        hc: &mut HostConfig,
        endpoints: &mut [(NetworkRecord, EndpointRecord)],
    ) -> Result<()> {
        let asked = hc.links.take().unwrap_or_default();
        if asked.is_empty() {
            return Ok(());
        }
        let mode = hc.network_mode.as_deref().unwrap_or("");
        if mode == "host" || mode.starts_with("container:") {
            let kind = if mode == "host" {
                "host type networking"
            } else {
                "container type network"
            };
            return Err(Error::InvalidArgument(format!(
                "conflicting options: {kind} can't be used with links. This would result in undefined behavior"
            )));
        }
        let mut stored = Vec::new();
        for l in &asked {
            let (name, alias) = parse_request(l)?;
            let child = self.lookup(&name).await.map_err(|e| match e {
                Error::NotFound(m) => {
                    Error::InvalidArgument(format!("could not get container for {name}: {m}"))
                }
                other => other,
            })?;
            stored.push(Link {
                child: child.name,
                parent: parent.to_string(),
                alias,
            });
        }
        match endpoints.first_mut() {
            Some((n, e)) if n.name != "bridge" => {
                e.links = stored
                    .iter()
                    .map(|l| format!("{}:{}", l.child, l.alias))
                    .collect();
            }
            _ => hc.links = Some(stored.iter().map(Link::stored).collect()),
        }
        Ok(())
    }
}

impl Containers {
    /// The child a link name (`parent/alias`) stands for, as dockerd
    /// resolves such names wherever a container is named.
    pub(super) async fn link_target(&self, name: &str) -> Result<Option<Container>> {
        let Some((parent, alias)) = name.trim_start_matches('/').rsplit_once('/') else {
            return Ok(None);
        };
        let Some(id) = self.store.container_id_by_name(parent).await? else {
            return Ok(None);
        };
        let Some(row) = self.store.container(&id).await? else {
            return Ok(None);
        };
        let parent = Container::from_row(row);
        for l in of(&parent).into_iter().filter(|l| l.alias == alias) {
            if let Some(id) = self.store.container_id_by_name(&l.child).await? {
                if let Some(row) = self.store.container(&id).await? {
                    return Ok(Some(Container::from_row(row)));
                }
            }
        }
        Ok(None)
    }

    /// `DELETE /containers/{parent}/{alias}?link=1`: the parent forgets
    /// the link; the child is left alone.
    pub async fn remove_link(&self, name: &str) -> Result<()> {
        let trimmed = name.trim_start_matches('/');
        let Some((parent_name, alias)) = trimmed.rsplit_once('/') else {
            // A plain name is the container's own, not a link.
            self.lookup(name).await?;
            return Err(Error::Internal(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        };
        if self.link_target(trimmed).await?.is_none() {
            return Err(Error::no_such_container(trimmed));
        }
        let mut parent = self.lookup(parent_name).await?;
        let links: Vec<String> = of(&parent)
            .into_iter()
            .filter(|l| l.alias != alias)
            .map(|l| l.stored())
            .collect();
        parent.host_config.links = Some(links).filter(|l| !l.is_empty());
        self.save_host_config(&parent).await
    }
}

impl Containers {
    /// A rename's part: links name their child and parent by name, and
    /// dockerd shows (and resolves) them by the names they have now.
    pub(super) async fn rename_in_links(&self, old: &str, new: &str) -> Result<()> {
        let rename = |n: &str| {
            if n == old {
                new.to_string()
            } else {
                n.to_string()
            }
        };
        for row in self.store.containers().await? {
            let mut c = Container::from_row(row);
            let links = of(&c);
            let renamed: Vec<Link> = links
                .iter()
                .map(|l| Link {
                    child: rename(&l.child),
                    parent: rename(&l.parent),
                    alias: l.alias.clone(),
                })
                .collect();
            if renamed != links {
                c.host_config.links = Some(renamed.iter().map(Link::stored).collect());
                self.save_host_config(&c).await?;
            }
        }
        self.networks.rename_link_child(old, new).await
    }
}

/// What a starting container gets from its links.
#[derive(Debug, Default)]
pub struct Linked {
    /// Lines for its /etc/hosts.
    pub hosts: String,
    pub env: Vec<String>,
}

impl Containers {
    /// Start's part: every child must run; its address, ports and
    /// environment go into the parent's hosts file and variables.
    pub(super) async fn resolve_links(&self, c: &Container) -> Result<Linked> {
        let mut out = Linked::default();
        for l in of(c) {
            let not_running = || {
                Error::Internal(format!(
                    "Cannot link to a non running container: /{} AS {}",
                    l.child,
                    l.path()
                ))
            };
            let child = self.lookup(&l.child).await.map_err(|_| not_running())?;
            if !child.is_running() {
                return Err(not_running());
            }
            let Some(ip) = self.networks.address_on(&child.id, None).await else {
                continue; // not on the bridge: nothing to reach it by
            };
            out.hosts.push_str(&hosts_line(&l.alias, &ip, &child));
            out.env.extend(env(&l, &ip, &child));
        }
        // User-defined networks: a name for the child, nothing more.
        for (network_id, links) in self.networks.endpoint_links(&c.id).await? {
            for l in links {
                let Some((name, alias)) = l.split_once(':') else {
                    continue;
                };
                let Ok(child) = self.lookup(name).await else {
                    continue;
                };
                if let Some(ip) = self.networks.address_on(&child.id, Some(&network_id)).await {
                    out.hosts.push_str(&hosts_line(alias, &ip, &child));
                }
            }
        }
        Ok(out)
    }
}

/// One link of a parent container to a child container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The child's name (without the leading slash).
    pub child: String,
    /// The parent's name.
    pub parent: String,
    pub alias: String,
}

impl Link {
    /// The form HostConfig.Links keeps: `/child:/parent/alias`.
    pub fn stored(&self) -> String {
        format!("/{}:/{}/{}", self.child, self.parent, self.alias)
    }

    /// Reads the stored form back (None for anything else).
    pub fn parse_stored(s: &str) -> Option<Link> {
        let (child, path) = s.split_once(':')?;
        let (parent, alias) = path.strip_prefix('/')?.split_once('/')?;
        Some(Link {
            child: child.strip_prefix('/')?.to_string(),
            parent: parent.to_string(),
            alias: alias.to_string(),
        })
    }

    /// The child's second name, as `ps` and lookups know it.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.parent, self.alias)
    }
}

/// A link as a client writes it: `name` or `name:alias` (each may carry a
/// leading slash and the alias a parent path, which dockerd drops).
pub fn parse_request(s: &str) -> Result<(String, String)> {
    if s.is_empty() {
        return Err(Error::InvalidArgument(
            "empty string specified for links".into(),
        ));
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (name, alias) = match parts.as_slice() {
        [name] => (*name, *name),
        [name, alias] => (*name, *alias),
        _ => return Err(Error::InvalidArgument(format!("bad format for links: {s}"))),
    };
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(Error::InvalidArgument(format!("bad format for links: {s}")));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// The links a container keeps in HostConfig (default bridge only).
pub fn of(c: &Container) -> Vec<Link> {
    c.host_config
        .links
        .iter()
        .flatten()
        .filter_map(|l| Link::parse_stored(l))
        .collect()
}

/// Every container's link names (`/parent/alias`), by child name: the
/// extra names `ps` shows.
pub fn names_by_child<'a>(
    all: impl IntoIterator<Item = &'a Container>,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for c in all {
        for l in of(c) {
            out.entry(l.child.clone()).or_default().push(l.path());
        }
    }
    out
}

/// The parent's hosts line for a child: `ip alias id12 name` (the name
/// only when the alias is not already it).
pub fn hosts_line(alias: &str, ip: &str, child: &Container) -> String {
    let mut line = format!("{ip}\t{alias} {}", child.short_id());
    if alias != child.name {
        line.push(' ');
        line.push_str(&child.name);
    }
    line.push('\n');
    line
}

/// The variables a link gives the parent, as dockerd writes them:
/// `<ALIAS>_NAME`, one group per exposed port (and per run of three or
/// more consecutive port numbers, `_START`/`_END`), `<ALIAS>_PORT` for the lowest
/// port, and the child's own environment as `<ALIAS>_ENV_<NAME>` (but its
/// HOME and PATH).
pub fn env(link: &Link, ip: &str, child: &Container) -> Vec<String> {
    let prefix = link.alias.to_uppercase().replace('-', "_");
    let mut out = vec![format!("{prefix}_NAME={}", link.path())];
    // (port, protocol) by number, tcp before another protocol of the
    // same number (dockerd's order).
    let mut ports: Vec<(u16, String)> = child
        .config
        .exposed_ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            Some((port.parse().ok()?, proto.to_lowercase()))
        })
        .collect();
    ports.sort_by_key(|(n, proto)| (*n, proto != "tcp", proto.clone()));
    ports.dedup();
    if let Some((port, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{port}"));
    }
    // Runs of three or more consecutive numbers (whatever the protocol)
    // get _START/_END variables, named after the run's first port.
    let mut i = 0;
    while i < ports.len() {
        let mut j = i;
        while j + 1 < ports.len() && ports[j + 1].0 <= ports[j].0 + 1 {
            j += 1;
        }
        if j > i + 1 {
            let ((first, p), (last, q)) = (&ports[i], &ports[j]);
            let (up, uq) = (p.to_uppercase(), q.to_uppercase());
            out.push(format!(
                "{prefix}_PORT_{first}_{up}_START={p}://{ip}:{first}"
            ));
            out.push(format!("{prefix}_PORT_{first}_{up}_ADDR={ip}"));
            out.push(format!("{prefix}_PORT_{first}_{up}_PROTO={p}"));
            out.push(format!("{prefix}_PORT_{first}_{up}_PORT_START={first}"));
            out.push(format!("{prefix}_PORT_{first}_{uq}_END={q}://{ip}:{last}"));
            out.push(format!("{prefix}_PORT_{first}_{uq}_PORT_END={last}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (port, proto) in &ports {
        let key = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
        out.push(format!("{key}={proto}://{ip}:{port}"));
        out.push(format!("{key}_ADDR={ip}"));
        out.push(format!("{key}_PORT={port}"));
        out.push(format!("{key}_PROTO={proto}"));
    }
    for var in child.config.env.iter().flatten() {
        if let Some((name, value)) = var.split_once('=') {
            if name != "HOME" && name != "PATH" {
                out.push(format!("{prefix}_ENV_{name}={value}"));
            }
        }
    }
    // A variable the ranges and single ports both write appears once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|v| seen.insert(v.split('=').next().unwrap_or("").to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(ports: &[&str], env: &[&str]) -> Container {
        let mut c = Container {
            id: "d83877bff02871f52a5bbb86599a2c0b28bb176160847b56d55d74a62264318e".into(),
            name: "lk1".into(),
            ..Container::default()
        };
        c.config.exposed_ports = Some(ports.iter().map(|p| p.to_string()).collect());
        c.config.env = Some(env.iter().map(|p| p.to_string()).collect());
        c
    }

    #[test]
    fn requests_parse_like_dockerd() {
        assert_eq!(parse_request("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(parse_request("/db:x").unwrap(), ("db".into(), "x".into()));
        assert_eq!(
            parse_request("/db:/p/x").unwrap(),
            ("db".into(), "x".into())
        );
        assert_eq!(
            parse_request("a:b:c").unwrap_err().to_string(),
            "bad format for links: a:b:c"
        );
        assert_eq!(
            parse_request("").unwrap_err().to_string(),
            "empty string specified for links"
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let l = Link {
            child: "lk1".into(),
            parent: "app".into(),
            alias: "db".into(),
        };
        assert_eq!(l.stored(), "/lk1:/app/db");
        assert_eq!(Link::parse_stored("/lk1:/app/db"), Some(l));
        assert_eq!(Link::parse_stored("lk1:db"), None);
    }

    fn env_of(l: &Link, c: &Container) -> Vec<String> {
        env(l, "10.0.0.4", c)
    }

    #[test]
    fn environment_as_dockerd_writes_it() {
        let l = Link {
            child: "rng".into(),
            parent: "p".into(),
            alias: "my-db".into(),
        };
        let c = child(
            &["8000/tcp", "8001/tcp", "8002/tcp", "9000/tcp", "53/udp"],
            &["FOO=b=c", "HOME=/x", "PATH=/bin", "EMPTY="],
        );
        let env = env_of(&l, &c);
        for want in [
            "MY_DB_NAME=/p/my-db",
            "MY_DB_PORT=udp://10.0.0.4:53",
            "MY_DB_PORT_8000_TCP_START=tcp://10.0.0.4:8000",
            "MY_DB_PORT_8000_TCP_PORT_START=8000",
            "MY_DB_PORT_8000_TCP_END=tcp://10.0.0.4:8002",
            "MY_DB_PORT_8000_TCP_PORT_END=8002",
            "MY_DB_PORT_8000_TCP_ADDR=10.0.0.4",
            "MY_DB_PORT_8001_TCP=tcp://10.0.0.4:8001",
            "MY_DB_PORT_9000_TCP_PORT=9000",
            "MY_DB_PORT_53_UDP_PROTO=udp",
            "MY_DB_ENV_FOO=b=c",
            "MY_DB_ENV_EMPTY=",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} missing from {env:?}");
        }
        assert!(!env
            .iter()
            .any(|e| e.contains("_ENV_HOME") || e.contains("_ENV_PATH")));
        assert!(!env
            .iter()
            .any(|e| e.starts_with("MY_DB_PORT_9000_TCP_START")));
        // Two consecutive ports are no range (dockerd wants three).
        let c = child(&["8000/tcp", "8001/tcp"], &[]);
        assert!(!env_of(&l, &c).iter().any(|e| e.contains("_START")));
    }

    #[test]
    fn hosts_line_names_the_child_once() {
        let c = child(&[], &[]);
        assert_eq!(
            hosts_line("db", "10.0.0.2", &c),
            "10.0.0.2\tdb d83877bff028 lk1\n"
        );
        assert_eq!(
            hosts_line("lk1", "10.0.0.2", &c),
            "10.0.0.2\tlk1 d83877bff028\n"
        );
    }
}
