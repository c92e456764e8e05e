//! Pod sandboxes: what a pod's containers will share, held without a
//! process. The network, IPC and UTS namespaces are kept by bind mounts
//! under `<exec-root>/pods/<id>/` (as CRI-O's pinned namespaces, no pause
//! container), the network set up in it by the node's CNI plugins; the
//! record is a row of the `pods` table, so a pod outlives the berthd that
//! made it and comes back, with its namespaces, after a restart or an
//! upgrade.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::cni::{self, Attachment, Cni, NetworkList};
use super::proto;
use crate::containers::names::Picks;
use crate::containers::oci::security::{sysctl_namespace, SysctlNamespace};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::networks::netns::{self, Kind};

/// The interface a pod's network gets, as kubelets expect.
const IFNAME: &str = "eth0";

/// A pod as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pod {
    pub id: String,
    pub metadata: Metadata,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub ready: bool,
    pub hostname: String,
    pub log_directory: String,
    pub namespaces: Namespaces,
    /// Kept namespace files (none where the pod uses the node's).
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The network list the pod was attached with and the last plugin's
    /// result; `None` once detached (or never attached: host network).
    pub network: Option<Attached>,
    /// Its addresses while attached (a stopped pod shows none, as
    /// containerd's).
    pub ips: Vec<String>,
    pub port_mappings: Vec<PortMapping>,
    pub dns: Dns,
    /// Set in its namespaces when it was made.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
}

/// Which namespaces the pod's containers share with the node (`NODE`)
/// rather than with each other (`POD`), as NamespaceMode values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct Namespaces {
    pub network: i32,
    pub pid: i32,
    pub ipc: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attached {
    pub list: NetworkList,
    pub result: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: String,
    pub container_port: i32,
    pub host_port: i32,
    pub host_ip: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

const NODE: i32 = proto::NamespaceMode::Node as i32;

impl Pod {
    /// The name no two pods may share, as containerd makes it.
    pub fn reserved_name(&self) -> String {
        let m = &self.metadata;
        format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
    }

    fn host_network(&self) -> bool {
        self.namespaces.network == NODE
    }

    pub fn state(&self) -> proto::PodSandboxState {
        if self.ready {
            proto::PodSandboxState::SandboxReady
        } else {
            proto::PodSandboxState::SandboxNotready
        }
    }

    fn matches(&self, filter: &proto::PodSandboxFilter) -> bool {
        (filter.id.is_empty() || self.id.starts_with(&filter.id))
            && filter
                .state
                .as_ref()
                .is_none_or(|s| s.state == self.state() as i32)
            && filter
                .label_selector
                .iter()
                .all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// The CNI arguments kubelets' runtimes pass (plugins such as portmap
    /// and host-local read them; `IgnoreUnknown` keeps others quiet).
    fn attachment<'a>(
        &'a self,
        netns: &'a std::path::Path,
        args: &'a [(&'a str, &'a str)],
        capabilities: &'a Map<String, Value>,
    ) -> Attachment<'a> {
        Attachment {
            container_id: &self.id,
            netns,
            ifname: IFNAME,
            args,
            capabilities,
        }
    }

    /// What the plugins that declare them get in `runtimeConfig`.
    fn capabilities(&self) -> Map<String, Value> {
        let mut caps = Map::new();
        let ports: Vec<Value> = self
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": p.protocol, "hostIP": p.host_ip})
            })
            .collect();
        caps.insert("portMappings".into(), Value::Array(ports));
        caps.insert(
            "dns".into(),
            json!({"servers": self.dns.servers, "searches": self.dns.searches, "options": self.dns.options}),
        );
        caps
    }
}

/// The pods of this berthd: the store, the node's CNI, and the names
/// runs in progress hold.
pub struct Pods {
    engine: Arc<Engine>,
    cni: Cni,
    dir: PathBuf,
    picks: Picks,
}

impl Pods {
    pub fn new(engine: Arc<Engine>) -> Pods {
        let cni = Cni {
            conf_dir: engine.config.cni_conf_dir.clone(),
            bin_dirs: std::env::split_paths(&engine.config.cni_bin_dir).collect(),
        };
        let dir = engine.config.exec_root.join("pods");
        Pods {
            engine,
            cni,
            dir,
            picks: Picks::default(),
        }
    }

    /// The node's pod network, if one is configured (NetworkReady).
    pub fn network(&self) -> Option<NetworkList> {
        self.cni.network()
    }

    /// RunPodSandbox: keeps the pod's namespaces, attaches its network,
    /// stores it ready; its id. Whatever was made is undone on failure.
    pub async fn run(&self, req: proto::RunPodSandboxRequest) -> Result<String> {
        let config = req.config.unwrap_or_default();
        let Some(meta) = config.metadata.filter(|m| !m.name.is_empty()) else {
            return Err(Error::InvalidArgument(
                "sandbox config must include metadata".into(),
            ));
        };
        if !req.runtime_handler.is_empty() {
            return Err(Error::NotFound(format!(
                "failed to get sandbox runtime: no runtime for {:?} is configured",
                req.runtime_handler
            )));
        }
        let linux = config.linux.unwrap_or_default();
        let ns = linux
            .security_context
            .and_then(|s| s.namespace_options)
            .unwrap_or_default();
        let mut pod = Pod {
            id: crate::util::random_id(),
            metadata: Metadata {
                name: meta.name,
                uid: meta.uid,
                namespace: meta.namespace,
                attempt: meta.attempt,
            },
            labels: config.labels.into_iter().collect(),
            annotations: config.annotations.into_iter().collect(),
            runtime_handler: req.runtime_handler,
            created_at: super::now_nanos(),
            ready: false,
            hostname: config.hostname,
            log_directory: config.log_directory,
            namespaces: Namespaces {
                network: ns.network,
                pid: ns.pid,
                ipc: ns.ipc,
            },
            net: None,
            ipc: None,
            uts: None,
            network: None,
            ips: Vec::new(),
            port_mappings: config
                .port_mappings
                .iter()
                .map(|p| PortMapping {
                    protocol: proto::Protocol::try_from(p.protocol)
                        .unwrap_or(proto::Protocol::Tcp)
                        .as_str_name()
                        .to_lowercase(),
                    container_port: p.container_port,
                    host_port: p.host_port,
                    host_ip: p.host_ip.clone(),
                })
                .collect(),
            dns: config
                .dns_config
                .map(|d| Dns {
                    servers: d.servers,
                    searches: d.searches,
                    options: d.options,
                })
                .unwrap_or_default(),
            sysctls: linux.sysctls.into_iter().collect(),
        };
        let name = pod.reserved_name();
        // Held from here until stored: a second run of the same pod at
        // once fails now rather than after both made namespaces.
        let Some(_pick) = self.picks.take(name.clone()) else {
            return Err(reserved(&name, "another run in progress"));
        };
        if let Some(other) = self.engine.store.pod_id_by_name(&name).await? {
            return Err(reserved(&name, &other));
        }
        if let Err(e) = self.make(&mut pod).await {
            self.unmake(&mut pod).await;
            return Err(e);
        }
        pod.ready = true;
        if !self.engine.store.insert_pod(&pod.id, &name, &pod).await? {
            self.unmake(&mut pod).await;
            return Err(reserved(&name, "another pod"));
        }
        info!(pod = %pod.id, name = %name, ips = ?pod.ips, "pod sandbox ready");
        Ok(pod.id)
    }

    /// The namespaces and the network of a new pod.
    async fn make(&self, pod: &mut Pod) -> Result<()> {
        let dir = self.dir.join(&pod.id);
        if pod.namespaces.ipc != NODE {
            let path = dir.join("ipc");
            netns::keep(&path, Kind::Ipc, None)?;
            pod.ipc = Some(path);
        }
        if !pod.host_network() {
            // A pod on the node's network has the node's name too.
            let path = dir.join("uts");
            let hostname = Some(pod.hostname.as_str()).filter(|h| !h.is_empty());
            netns::keep(&path, Kind::Uts, hostname)?;
            pod.uts = Some(path);
            netns::create(&dir.join("net"))?;
            pod.net = Some(dir.join("net"));
        }
        // Before any plugin runs, as a pause container's would be.
        self.set_sysctls(pod)?;
        if pod.host_network() {
            return Ok(());
        }

        let Some(list) = self.cni.network() else {
            return Err(Error::Internal(
                "failed to setup network for sandbox: cni plugin not initialized".into(),
            ));
        };
        let path = dir.join("net");
        let (args, caps) = (pod_args(pod), pod.capabilities());
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let at = pod.attachment(&path, &args, &caps);
        let loopback = NetworkList::loopback();
        self.cni
            .add(&loopback, &Attachment { ifname: "lo", ..at })
            .await?;
        // Recorded before the node's network answers: a plugin that fails
        // half way is still asked to undo its part.
        pod.network = Some(Attached {
            list: list.clone(),
            result: Value::Null,
        });
        let at = pod.attachment(&path, &args, &caps);
        let result = self.cni.add(&list, &at).await.map_err(|e| {
            Error::Internal(format!(
                "failed to setup network for sandbox {:?}: {e}",
                pod.id
            ))
        })?;
        pod.ips = cni::addresses(&result, IFNAME);
        pod.network = Some(Attached { list, result });
        Ok(())
    }

    /// The pod's sysctls, each in the namespace it belongs to, which must
    /// be the pod's own (runc's rule for a pause container).
    fn set_sysctls(&self, pod: &Pod) -> Result<()> {
        for (key, value) in &pod.sysctls {
            let (kind, path, what) = match sysctl_namespace(key) {
                Some(SysctlNamespace::Net) => (Kind::Net, &pod.net, "network"),
                Some(SysctlNamespace::Ipc) => (Kind::Ipc, &pod.ipc, "IPC"),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "sysctl {key:?} is not in a separate kernel namespace"
                    )))
                }
            };
            let Some(path) = path else {
                return Err(Error::InvalidArgument(format!(
                    "sysctl {key:?} not allowed in host {what} namespace"
                )));
            };
            netns::set_sysctl(path, kind, key, value)?;
        }
        Ok(())
    }

    /// Detaches the pod's network (CNI DEL) and releases its network
    /// namespace: what a stop does.
    async fn detach(&self, pod: &mut Pod) -> Result<()> {
        if let (Some(attached), Some(net)) = (&pod.network, &pod.net) {
            let args = pod_args(pod);
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let caps = pod.capabilities();
            let result = Some(&attached.result).filter(|r| !r.is_null());
            let at = pod.attachment(net, &args, &caps);
            self.cni
                .del(&attached.list, result, &at)
                .await
                .map_err(|e| {
                    Error::Internal(format!(
                        "failed to destroy network for sandbox {:?}: {e}",
                        pod.id
                    ))
                })?;
        }
        pod.network = None;
        pod.ips.clear();
        if let Some(net) = pod.net.take() {
            netns::remove(&net)?;
        }
        Ok(())
    }

    /// Undoes a pod's making, as far as it went (a failed run).
    async fn unmake(&self, pod: &mut Pod) {
        if let Err(e) = self.detach(pod).await {
            warn!(pod = %pod.id, error = %e, "undoing a pod's network");
        }
        self.release(pod);
    }

    /// Releases the IPC and UTS namespaces and the pod's directory.
    fn release(&self, pod: &mut Pod) {
        for path in [pod.net.take(), pod.ipc.take(), pod.uts.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = netns::remove(&path) {
                warn!(pod = %pod.id, error = %e, "releasing a pod namespace");
            }
        }
        let _ = std::fs::remove_dir(self.dir.join(&pod.id));
    }

    /// The pod `id` names (whole, or a prefix of one pod's id only).
    pub async fn get(&self, id: &str) -> Result<Pod> {
        if let Some(pod) = self.engine.store.pod::<Pod>(id).await? {
            return Ok(checked(pod));
        }
        let mut found = self
            .all()
            .await?
            .into_iter()
            .filter(|p| !id.is_empty() && p.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(pod), None) => Ok(pod),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "sandbox id {id:?} is ambiguous"
            ))),
            _ => Err(Error::NotFound(format!(
                "an error occurred when try to find sandbox {id:?}: not found"
            ))),
        }
    }

    pub async fn list(&self, filter: Option<proto::PodSandboxFilter>) -> Result<Vec<Pod>> {
        let filter = filter.unwrap_or_default();
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|p| p.matches(&filter))
            .collect())
    }

    async fn all(&self) -> Result<Vec<Pod>> {
        let pods = self.engine.store.pods::<Pod>().await?;
        Ok(pods.into_iter().map(checked).collect())
    }

    /// StopPodSandbox: the pod's network goes, the pod stays (not ready).
    /// Again on a stopped pod is fine.
    pub async fn stop(&self, id: &str) -> Result<()> {
        let mut pod = self.get(id).await?;
        let outcome = self.detach(&mut pod).await;
        pod.ready = false;
        self.engine.store.update_pod(&pod.id, &pod).await?;
        outcome?;
        info!(pod = %pod.id, "pod sandbox stopped");
        Ok(())
    }

    /// RemovePodSandbox: stops the pod if it is not, releases what it
    /// kept and forgets it. An unknown pod is already removed.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let mut pod = match self.get(id).await {
            Ok(pod) => pod,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if pod.network.is_some() || pod.net.is_some() {
            self.stop(&pod.id).await?;
            pod = self.get(&pod.id).await?;
        }
        self.release(&mut pod);
        self.engine.store.delete_pod(&pod.id).await?;
        info!(pod = %pod.id, "pod sandbox removed");
        Ok(())
    }
}

/// A pod as it stands: one whose kept namespaces are gone (the host
/// rebooted, emptying the exec-root) is not ready, whatever its record
/// says, so a kubelet makes it anew.
fn checked(mut pod: Pod) -> Pod {
    let kept = [&pod.net, &pod.ipc, &pod.uts]
        .into_iter()
        .flatten()
        .all(|path| netns::is_kept(path));
    pod.ready &= kept;
    pod
}

fn reserved(name: &str, by: &str) -> Error {
    Error::Conflict(format!(
        "failed to reserve sandbox name {name:?}: name {name:?} is reserved for {by:?}"
    ))
}

/// `CNI_ARGS` of a pod.
fn pod_args(pod: &Pod) -> Vec<(&'static str, String)> {
    vec![
        ("IgnoreUnknown", "1".into()),
        ("K8S_POD_NAMESPACE", pod.metadata.namespace.clone()),
        ("K8S_POD_NAME", pod.metadata.name.clone()),
        ("K8S_POD_INFRA_CONTAINER_ID", pod.id.clone()),
        ("K8S_POD_UID", pod.metadata.uid.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], ready: bool) -> Pod {
        Pod {
            id: "abcdef".into(),
            metadata: Metadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            },
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            runtime_handler: String::new(),
            created_at: 0,
            ready,
            hostname: String::new(),
            log_directory: String::new(),
            namespaces: Namespaces::default(),
            net: None,
            ipc: None,
            uts: None,
            network: None,
            ips: vec![],
            port_mappings: vec![],
            dns: Dns::default(),
            sysctls: BTreeMap::new(),
        }
    }

    #[test]
    fn the_reserved_name_is_containerds() {
        assert_eq!(pod(&[], true).reserved_name(), "web_default_u1_2");
    }

    #[test]
    fn filters_take_an_id_prefix_a_state_and_every_selected_label() {
        let p = pod(&[("app", "web"), ("tier", "front")], true);
        let filter = |id: &str, state: Option<proto::PodSandboxState>, sel: &[(&str, &str)]| {
            proto::PodSandboxFilter {
                id: id.into(),
                state: state.map(|s| proto::PodSandboxStateValue { state: s as i32 }),
                label_selector: sel
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        };
        assert!(p.matches(&filter("", None, &[])));
        assert!(p.matches(&filter("abc", None, &[])));
        assert!(!p.matches(&filter("abd", None, &[])));
        assert!(p.matches(&filter("", Some(proto::PodSandboxState::SandboxReady), &[])));
        assert!(!p.matches(&filter(
            "",
            Some(proto::PodSandboxState::SandboxNotready),
            &[]
        )));
        assert!(p.matches(&filter("", None, &[("app", "web")])));
        assert!(!p.matches(&filter("", None, &[("app", "web"), ("tier", "back")])));
    }
}
