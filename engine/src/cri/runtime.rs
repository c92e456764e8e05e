//! `runtime.v1.RuntimeService`: the runtime's identity, status and
//! configuration. Pods and containers are not served yet.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::proto::{self, runtime_service_server::RuntimeService};
use crate::engine::Engine;

pub struct Runtime(pub Arc<Engine>);

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
        let core = self.0.refresh_core_info().await.is_ok();
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
        // Pod networking (CNI) is not served yet: a kubelet must not
        // schedule pods here, and this condition is what tells it so.
        let network_ready = proto::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: "Network plugin returns error: pod networking is not served by this berthd"
                .into(),
        };
        let mut info = std::collections::HashMap::new();
        if req.get_ref().verbose {
            let config = serde_json::json!({
                "runtimeName": "berth",
                "runtimeVersion": env!("CARGO_PKG_VERSION"),
                "dataRoot": self.0.config.data_root,
                "execRoot": self.0.config.exec_root,
                "cgroupDriver": "cgroupfs",
            });
            info.insert("config".to_string(), config.to_string());
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
}
