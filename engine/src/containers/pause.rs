//! `docker pause` and `unpause`: the core freezes and thaws the container's
//! processes through the runtime (cgroup freezer). A paused container is
//! still running (State.Running and State.Paused both true, Status
//! "paused"), as Docker reports it.

use crate::containers::Containers;
use crate::error::{Error, Result};

impl Containers {
    /// `POST /containers/{id}/pause`
    pub async fn pause(&self, name: &str) -> Result<()> {
        self.set_paused(name, true).await
    }

    /// `POST /containers/{id}/unpause`
    pub async fn unpause(&self, name: &str) -> Result<()> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, pause: bool) -> Result<()> {
        let id = self.lookup(name).await?.id;
        let lock = self.lock_of(&id);
        let _guard = lock.lock().await;
        let mut c = self.lookup(&id).await?;
        let paused = c.state.status == "paused";
        if !c.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if pause && paused {
            return Err(Error::Conflict(format!("Container {id} is already paused")));
        }
        if !pause && !paused {
            return Err(Error::Conflict(format!("Container {id} is not paused")));
        }
        self.core.set_paused(&id, pause).await?;
        c.state.status = if pause { "paused" } else { "running" }.into();
        self.save_state(&c).await?;
        tracing::info!(container_id = %id, pause, "container paused or unpaused");
        self.event(&c, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }
}
