//! What a container's filesystem becomes outside of it: `docker commit`
//! (an image from its changes) and `docker export` (its whole root
//! filesystem as a tar).

use std::sync::Arc;

use serde_json::Value;

use super::{rootfs, Containers};
use crate::error::{Error, Result};
use crate::images::commit::CommitInfo;
use crate::images::reference::{familiar, Reference};
use crate::tarball::{TreeWriter, Whiteouts};

/// `POST /commit`'s options.
pub struct CommitRequest {
    pub container: String,
    pub reference: Option<Reference>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    /// A Config in the request body, which replaces the container's.
    pub config: Option<Value>,
}

impl Containers {
    pub async fn commit(&self, req: CommitRequest) -> Result<String> {
        let c = self.lookup(&req.container).await?;
        let lock = self.lock_of(&c.id);
        let _held = lock.lock().await;
        let parent = self
            .store
            .image(&c.image_id)
            .await?
            .ok_or_else(|| Error::no_such_image(&c.image_ref))?;
        let mut config = match req
            .config
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            Some(v) => v,
            None => serde_json::to_value(&c.config).map_err(Error::internal)?,
        };
        crate::images::changes::apply(&mut config, &req.changes)?;
        let created_by = c.process_args().join(" ");
        let info = CommitInfo {
            config,
            container_id: c.id.clone(),
            comment: req.comment,
            author: req.author,
            created_by,
        };
        let id = self
            .images
            .commit(&parent, Some(self.paths(&c.id).upper()), info)
            .await?;
        if let Some(r) = req.reference {
            let normalized = r.with_default_tag().normalized();
            self.store.set_tag(&normalized, &id).await?;
            self.images.image_event("tag", &familiar(&normalized));
        }
        self.event(&c, "commit", &[]);
        Ok(id)
    }

    /// Writes the container's merged root filesystem as a tar to a scratch
    /// file and returns it opened (already unlinked). A stopped container's
    /// overlay is mounted for the time it takes.
    pub async fn export(self: &Arc<Self>, name: &str) -> Result<std::fs::File> {
        let c = self.lookup(name).await?;
        let lock = self.lock_of(&c.id);
        let _held = lock.lock().await;
        let paths = self.paths(&c.id);
        let mounted_here = !rootfs::is_mountpoint(&paths.rootfs());
        if mounted_here {
            self.mount_rootfs(&c).await?;
        }
        let root = paths.rootfs();
        let out = self
            .images
            .tmp_dir()
            .join(format!("export-{}", crate::util::random_id()));
        let out2 = out.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            let mut tree = TreeWriter::new(
                std::io::BufWriter::new(std::fs::File::create(&out2)?),
                Whiteouts::Keep,
            );
            tree.add_tree(&root)?;
            std::io::Write::flush(&mut tree.finish()?)?;
            Ok(std::fs::File::open(&out2)?)
        })
        .await
        .map_err(Error::internal);
        let _ = std::fs::remove_file(&out);
        if mounted_here {
            let _ = rootfs::unmount_rootfs(&paths);
        }
        let file = written??;
        self.event(&c, "export", &[]);
        Ok(file)
    }
}
