//! `runtime.v1.ImageService` on Berth's own image store: what a kubelet
//! pulls, `docker images` lists, and a `docker build` result is there for
//! a pod without a push. Images are named fully qualified
//! (`docker.io/library/busybox:latest`) and identified by their id
//! (`sha256:…`), as containerd's CRI names them.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::proto::{self, image_service_server::ImageService as Service};
use super::{now_nanos, status};
use crate::engine::Engine;
use crate::error::Error;
use crate::images::pull::PullRequest;
use crate::images::reference::Reference;
use crate::images::registry::AuthConfig;
use crate::images::NamedImage;

pub struct ImageService(pub Arc<Engine>);

impl ImageService {
    /// The image a CRI image spec names (by reference or id), if present.
    async fn find(&self, spec: Option<&proto::ImageSpec>) -> Result<Option<NamedImage>, Status> {
        let name = spec.map(|s| s.image.as_str()).unwrap_or_default();
        if name.is_empty() {
            return Err(Status::invalid_argument("image spec: no image named"));
        }
        let Some(row) = self.0.images.find(name).await.map_err(status)? else {
            return Ok(None);
        };
        let named = self.0.images.named().await.map_err(status)?;
        Ok(Some(
            named
                .into_iter()
                .find(|n| n.row.id == row.id)
                .unwrap_or(NamedImage {
                    row,
                    tags: Vec::new(),
                    digests: Vec::new(),
                }),
        ))
    }
}

/// The CRI's view of one image.
fn image(n: &NamedImage) -> proto::Image {
    let config = n.row.config_value();
    // "uid", "uid:gid", "name" or "name:group": a number is the uid.
    let user = config["config"]["User"].as_str().unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default();
    let (uid, username) = match user.parse::<i64>() {
        Ok(uid) => (Some(proto::Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    };
    proto::Image {
        id: n.row.id.clone(),
        repo_tags: n.tags.clone(),
        repo_digests: n.digests.clone(),
        size: n.row.size.max(0) as u64,
        uid,
        username,
        spec: Some(proto::ImageSpec {
            image: n.row.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

#[tonic::async_trait]
impl Service for ImageService {
    async fn list_images(
        &self,
        req: Request<proto::ListImagesRequest>,
    ) -> Result<Response<proto::ListImagesResponse>, Status> {
        let wanted = req
            .get_ref()
            .filter
            .as_ref()
            .and_then(|f| f.image.as_ref())
            .filter(|s| !s.image.is_empty());
        let images = match wanted {
            Some(spec) => self.find(Some(spec)).await?.into_iter().collect(),
            None => self.0.images.named().await.map_err(status)?,
        };
        Ok(Response::new(proto::ListImagesResponse {
            images: images.iter().map(image).collect(),
        }))
    }

    async fn image_status(
        &self,
        req: Request<proto::ImageStatusRequest>,
    ) -> Result<Response<proto::ImageStatusResponse>, Status> {
        let req = req.into_inner();
        // Absent is an answer, not an error: the kubelet pulls then.
        let found = self.find(req.image.as_ref()).await?;
        let mut info = HashMap::new();
        if let (true, Some(n)) = (req.verbose, &found) {
            let config = n.row.config_value();
            let verbose = serde_json::json!({
                "imageSpec": config,
                "chainID": n.row.chains.last(),
            });
            info.insert("info".to_string(), verbose.to_string());
        }
        Ok(Response::new(proto::ImageStatusResponse {
            image: found.as_ref().map(image),
            info,
        }))
    }

    async fn pull_image(
        &self,
        req: Request<proto::PullImageRequest>,
    ) -> Result<Response<proto::PullImageResponse>, Status> {
        let req = req.into_inner();
        let name = req.image.map(|s| s.image).unwrap_or_default();
        let reference = Reference::parse(&name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .with_default_tag();
        let auth = req
            .auth
            .map(|a| AuthConfig {
                username: a.username,
                password: a.password,
                auth: a.auth,
                server_address: a.server_address,
                identity_token: a.identity_token,
                registry_token: a.registry_token,
            })
            .unwrap_or_default();
        let progress = self
            .0
            .images
            .pull(PullRequest {
                reference: reference.clone(),
                platform: None,
                auth,
            })
            .await
            .map_err(status)?;
        progress
            .finished()
            .await
            .map_err(|e| status(Error::Internal(format!("pulling {name}: {e}"))))?;
        let row = self
            .0
            .images
            .resolve(&reference.normalized())
            .await
            .map_err(status)?;
        tracing::info!(image = %reference.normalized(), id = %row.id, "pulled for the CRI");
        Ok(Response::new(proto::PullImageResponse {
            image_ref: row.id,
        }))
    }

    async fn remove_image(
        &self,
        req: Request<proto::RemoveImageRequest>,
    ) -> Result<Response<proto::RemoveImageResponse>, Status> {
        let req = req.into_inner();
        // Idempotent: an image already gone is removed.
        let Some(n) = self.find(req.image.as_ref()).await? else {
            return Ok(Response::new(proto::RemoveImageResponse {}));
        };
        // The image under every name, as containerd's CRI removes it.
        match self.0.images.remove(&n.row.id, true).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(status(e)),
        }
        Ok(Response::new(proto::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<proto::ImageFsInfoRequest>,
    ) -> Result<Response<proto::ImageFsInfoResponse>, Status> {
        let images = &self.0.images;
        let (used, _) = images.layer_usage().await.map_err(status)?;
        let usage = proto::FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(proto::FilesystemIdentifier {
                mountpoint: images.snapshots_dir().display().to_string(),
            }),
            used_bytes: Some(proto::UInt64Value { value: used }),
            inodes_used: None,
        };
        Ok(Response::new(proto::ImageFsInfoResponse {
            image_filesystems: vec![usage.clone()],
            container_filesystems: vec![usage],
        }))
    }
}
