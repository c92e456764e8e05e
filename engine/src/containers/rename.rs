//! `docker rename`.

use crate::containers::{names, Containers};
use crate::error::{Error, Result};

impl Containers {
    /// `POST /containers/{id}/rename?name=NEW`
    pub async fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() || name.is_empty() {
            return Err(Error::InvalidArgument(
                "Neither old nor new names may be empty".into(),
            ));
        }
        // The container first: dockerd answers 404 before it looks at the name.
        let id = self.lookup(name).await?.id;
        let new_name = names::validate(new_name)?;
        let lock = self.lock_of(&id);
        let _guard = lock.lock().await;
        let mut c = self.lookup(&id).await?;
        if c.name == new_name {
            return Err(Error::InvalidArgument(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        if let Some(holder) = self.store.container_id_by_name(&new_name).await? {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        // The UNIQUE constraint settles a race with a create of the same name.
        self.store.rename_container(&id, &new_name).await.map_err(|e| {
            if e.to_string().contains("UNIQUE") {
                Error::Conflict(format!("Conflict. The container name \"/{new_name}\" is already in use by another container."))
            } else {
                e
            }
        })?;
        let old = std::mem::replace(&mut c.name, new_name);
        self.rename_in_links(&old, &c.name).await?;
        tracing::info!(container_id = %id, old = %old, new = %c.name, "container renamed");
        self.event(&c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }
}
