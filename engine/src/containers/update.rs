//! `docker update`: new limits and restart policy for a container, stored
//! in its HostConfig and, while it runs, applied live by the core
//! (`runc update`).

use bollard_stubs::models::ContainerUpdateBody;

use crate::containers::{oci::resources, Containers};
use crate::error::{Error, Result};

impl Containers {
    /// `POST /containers/{id}/update`; returns Docker's warnings.
    pub async fn update(&self, name: &str, req: ContainerUpdateBody) -> Result<Vec<String>> {
        let id = self.lookup(name).await?.id;
        let lock = self.lock_of(&id);
        let _guard = lock.lock().await;
        let mut c = self.lookup(&id).await?;
        let hc = &mut c.host_config;
        let old_swap = hc.memory_swap.unwrap_or(0);
        // As in Docker, zero means "leave as it is".
        macro_rules! take {
            ($field:ident) => {
                if let Some(v) = req.$field.filter(|v| *v != 0) {
                    hc.$field = Some(v);
                }
            };
        }
        take!(memory);
        take!(memory_swap);
        take!(memory_reservation);
        take!(cpu_shares);
        take!(cpu_period);
        take!(cpu_quota);
        take!(nano_cpus);
        take!(pids_limit);
        take!(blkio_weight);
        if let Some(c) = req.cpuset_cpus.filter(|c| !c.is_empty()) {
            hc.cpuset_cpus = Some(c);
        }
        if let Some(m) = req.cpuset_mems.filter(|m| !m.is_empty()) {
            hc.cpuset_mems = Some(m);
        }
        if req.nano_cpus.is_some_and(|n| n > 0) {
            hc.cpu_quota = Some(0);
            hc.cpu_period = Some(0);
        }
        if let Some(m) = req.memory.filter(|m| *m > 0) {
            if req.memory_swap.unwrap_or(0) == 0 && old_swap > 0 && m > old_swap {
                return Err(Error::InvalidArgument(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
                ));
            }
        }
        let restart = match &req.restart_policy {
            Some(p) if p.name.is_some() => {
                if hc.auto_remove.unwrap_or(false) {
                    return Err(Error::InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container".into()));
                }
                hc.restart_policy = Some(p.clone());
                true
            }
            _ => false,
        };
        let warnings = resources::check(hc)?;
        let running = c.is_running();
        if running {
            let update = berth_proto::UpdateTaskRequest {
                resources: Some(
                    serde_json::to_value(resources::oci_resources(&c.host_config)?)
                        .map_err(Error::internal)?,
                ),
                restart: restart
                    .then(|| c.restart_policy().unwrap_or(berth_proto::RestartPolicy::No)),
            };
            self.core
                .update_task(&id, &update)
                .await
                .map_err(|e| match e {
                    Error::Internal(m) => {
                        Error::Internal(format!("Cannot update container {id}: {m}"))
                    }
                    other => other,
                })?;
        }
        self.save_host_config(&c).await?;
        tracing::info!(container_id = %id, running, "container updated");
        self.event(&c, "update", &[]);
        Ok(warnings)
    }
}
