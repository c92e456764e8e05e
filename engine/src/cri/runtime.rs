//! `runtime.v1.RuntimeService`: the runtime's identity, status and
//! configuration, and pod sandboxes (`pods`). Containers are not served
//! yet.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pods::{Pod, Pods};
use super::proto::{self, runtime_service_server::RuntimeService};
use super::status;
use crate::engine::Engine;

pub struct Runtime {
    pub engine: Arc<Engine>,
    pub pods: Arc<Pods>,
}

/// The CRI version the kubelet's API calls "version" (`0.1.0` for v1, as
/// containerd and CRI-O answer).
const KUBELET_API_VERSION: &str = "0.1.0";

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _: Request<proto::VersionRequest>,
    ) -> Result<Response<proto::VersionResponse>, Status> {
        Ok(Response::new(proto::VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn status(
        &self,
        req: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        // Asked each time: kubelets poll Status to learn that the runtime
        // went away.
        let core = self.engine.refresh_core_info().await.is_ok();
        let runtime_ready = proto::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: core,
            reason: if core { "" } else { "BerthCoreNotReady" }.into(),
            message: if core {
                String::new()
            } else {
                "berth-core is not reachable".into()
            },
        };
        // Without a CNI network configuration a kubelet must not schedule
        // pods here; this condition is what tells it so (in containerd's
        // words).
        let network = self.pods.network();
        let network_ready = proto::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: network.is_some(),
            reason: if network.is_some() {
                ""
            } else {
                "NetworkPluginNotReady"
            }
            .into(),
            message: if network.is_some() {
                String::new()
            } else {
                "Network plugin returns error: cni plugin not initialized".into()
            },
        };
        let mut info = std::collections::HashMap::new();
        if req.get_ref().verbose {
            let config = serde_json::json!({
                "runtimeName": "berth",
                "runtimeVersion": env!("CARGO_PKG_VERSION"),
                "dataRoot": self.engine.config.data_root,
                "execRoot": self.engine.config.exec_root,
                "cniConfDir": self.engine.config.cni_conf_dir,
                "cniBinDir": self.engine.config.cni_bin_dir,
                "cgroupDriver": "cgroupfs",
            });
            info.insert("config".to_string(), config.to_string());
            if let Some(network) = network {
                info.insert(
                    "cniconfig".to_string(),
                    serde_json::json!(network).to_string(),
                );
            }
        }
        Ok(Response::new(proto::StatusResponse {
            status: Some(proto::RuntimeStatus {
                conditions: vec![runtime_ready, network_ready],
            }),
            info,
            runtime_handlers: vec![proto::RuntimeHandler {
                name: String::new(),
                features: Some(proto::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: false,
                    user_namespaces: false,
                }),
            }],
            features: Some(proto::RuntimeFeatures {
                supplemental_groups_policy: false,
                user_namespaces_host_network: false,
                mount_options: false,
            }),
        }))
    }

    async fn runtime_config(
        &self,
        _: Request<proto::RuntimeConfigRequest>,
    ) -> Result<Response<proto::RuntimeConfigResponse>, Status> {
        // Berth manages cgroups through the filesystem, never systemd.
        Ok(Response::new(proto::RuntimeConfigResponse {
            linux: Some(proto::LinuxRuntimeConfiguration {
                cgroup_driver: proto::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<proto::RunPodSandboxRequest>,
    ) -> Result<Response<proto::RunPodSandboxResponse>, Status> {
        let pod_sandbox_id = self.pods.run(req.into_inner()).await.map_err(status)?;
        Ok(Response::new(proto::RunPodSandboxResponse {
            pod_sandbox_id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<proto::StopPodSandboxRequest>,
    ) -> Result<Response<proto::StopPodSandboxResponse>, Status> {
        self.pods
            .stop(&req.get_ref().pod_sandbox_id)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<proto::RemovePodSandboxRequest>,
    ) -> Result<Response<proto::RemovePodSandboxResponse>, Status> {
        self.pods
            .remove(&req.get_ref().pod_sandbox_id)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<proto::PodSandboxStatusRequest>,
    ) -> Result<Response<proto::PodSandboxStatusResponse>, Status> {
        let req = req.into_inner();
        let pod = self.pods.get(&req.pod_sandbox_id).await.map_err(status)?;
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            info.insert("info".to_string(), verbose_info(&pod));
        }
        Ok(Response::new(proto::PodSandboxStatusResponse {
            status: Some(pod_status(&pod)),
            info,
            containers_statuses: Vec::new(),
            timestamp: super::now_nanos(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<proto::ListPodSandboxRequest>,
    ) -> Result<Response<proto::ListPodSandboxResponse>, Status> {
        let pods = self
            .pods
            .list(req.into_inner().filter)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListPodSandboxResponse {
            items: pods
                .iter()
                .map(|p| proto::PodSandbox {
                    id: p.id.clone(),
                    metadata: Some(metadata(p)),
                    state: p.state() as i32,
                    created_at: p.created_at,
                    labels: p.labels.clone().into_iter().collect(),
                    annotations: p.annotations.clone().into_iter().collect(),
                    runtime_handler: p.runtime_handler.clone(),
                })
                .collect(),
        }))
    }
}

fn metadata(pod: &Pod) -> proto::PodSandboxMetadata {
    proto::PodSandboxMetadata {
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        namespace: pod.metadata.namespace.clone(),
        attempt: pod.metadata.attempt,
    }
}

fn pod_status(pod: &Pod) -> proto::PodSandboxStatus {
    let mut ips = pod.ips.iter();
    proto::PodSandboxStatus {
        id: pod.id.clone(),
        metadata: Some(metadata(pod)),
        state: pod.state() as i32,
        created_at: pod.created_at,
        network: Some(proto::PodSandboxNetworkStatus {
            ip: ips.next().cloned().unwrap_or_default(),
            additional_ips: ips.map(|ip| proto::PodIp { ip: ip.clone() }).collect(),
        }),
        linux: Some(proto::LinuxPodSandboxStatus {
            namespaces: Some(proto::Namespace {
                options: Some(proto::NamespaceOption {
                    network: pod.namespaces.network,
                    pid: pod.namespaces.pid,
                    ipc: pod.namespaces.ipc,
                    ..Default::default()
                }),
            }),
        }),
        labels: pod.labels.clone().into_iter().collect(),
        annotations: pod.annotations.clone().into_iter().collect(),
        runtime_handler: pod.runtime_handler.clone(),
    }
}

/// `crictl inspectp`'s "info": what Berth keeps of the pod (its
/// namespace files, the CNI network and result), as containerd gives its
/// own record there.
fn verbose_info(pod: &Pod) -> String {
    serde_json::json!({
        "id": pod.id,
        "hostname": pod.hostname,
        "logDirectory": pod.log_directory,
        "namespaces": {
            "network": pod.net,
            "ipc": pod.ipc,
            "uts": pod.uts,
        },
        "cniResult": pod.network.as_ref().map(|n| &n.result),
        "cniNetwork": pod.network.as_ref().map(|n| &n.list.name),
        "portMappings": pod.port_mappings,
        "dns": pod.dns,
        "sysctls": pod.sysctls,
    })
    .to_string()
}
