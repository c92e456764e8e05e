//! `docker container prune` and the container half of `docker system df`.

use bollard_stubs::models::ContainerSummary;

use crate::containers::memory::Listed;
use crate::containers::Containers;
use crate::error::{Error, Result};
use crate::filters::containers::ContainerFilter;
use crate::filters::PruneFilter;

impl Containers {
    /// Removes stopped containers matching `until` and `label`; returns
    /// their ids and the bytes their writable layers held.
    pub async fn prune(&self, filters: &PruneFilter) -> Result<(Vec<String>, u64)> {
        let mut removed = Vec::new();
        let mut freed = 0;
        for row in self.store.containers().await? {
            let c = crate::containers::record::Container::from_row(row);
            if c.is_running() {
                continue;
            }
            let labels = c.config.labels.clone().unwrap_or_default();
            if !filters.matches(&c.created, &labels) {
                continue;
            }
            let size = crate::util::dir_size(&self.paths(&c.id).upper());
            match self.remove(&c.id, false, false).await {
                Ok(()) => {
                    freed += size;
                    removed.push(c.id.clone());
                }
                // Started meanwhile, or already gone: not ours to prune.
                Err(Error::Conflict(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, freed))
    }

    /// `docker system df`'s Containers list: ContainerSummary objects with
    /// SizeRw (the writable layer) and SizeRootFs.
    pub async fn disk_usage(&self) -> Result<Vec<ContainerSummary>> {
        let listed = self.list(true, None, &ContainerFilter::default()).await?;
        let mut out = Vec::new();
        for l in &listed {
            out.push(self.sized_summary(l).await?);
        }
        Ok(out)
    }

    /// The `docker ps` document with SizeRw (the writable layer) and
    /// SizeRootFs (that and the image), as `docker ps --size` and
    /// `docker system df` show them.
    pub async fn sized_summary(&self, listed: &Listed) -> Result<ContainerSummary> {
        let c = &listed.entry.container;
        let rw = crate::util::dir_size(&self.paths(&c.id).upper()) as i64;
        let image_size = self
            .store
            .image(&c.image_id)
            .await?
            .map(|i| i.size)
            .unwrap_or(0);
        Ok(ContainerSummary {
            // Go's omitempty: dockerd leaves out a writable layer of 0 bytes.
            size_rw: Some(rw).filter(|rw| *rw != 0),
            size_root_fs: Some(rw + image_size),
            ..self.summary(listed)
        })
    }
}
