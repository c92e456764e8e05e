//! What a container's filesystem becomes outside of it: `docker commit`
//! (an image from its changes) and `docker export` (its whole root
//! filesystem as a tar).

use std::sync::Arc;

use serde_json::Value;

use crate::containers::{fs::rootfs, Containers};
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
        let mut container_config = serde_json::to_value(&c.config).map_err(Error::internal)?;
        // As Go writes the config: ExposedPorts omitted when empty, an
        // empty Volumes map as null.
        if let Some(o) = container_config.as_object_mut() {
            if o.get("ExposedPorts").is_some_and(is_empty_map) {
                o.remove("ExposedPorts");
            }
            if o.get("Volumes").is_some_and(is_empty_map) {
                o.insert("Volumes".into(), Value::Null);
            }
        }
        let mut config = match req
            .config
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            Some(v) => merge_commit_config(v, &container_config),
            None => container_config.clone(),
        };
        crate::images::changes::apply(&mut config, &req.changes)?;
        let created_by = c.process_args().join(" ");
        let info = CommitInfo {
            config,
            container_config: Some(container_config),
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

/// The image config of a commit given a config in its body: what the body
/// leaves empty comes from the container's config, as dockerd merges them
/// (environment and labels merged by key, the body's entries winning; Cmd
/// and Entrypoint taken together, only when the body sets neither).
fn merge_commit_config(mut user: Value, container: &Value) -> Value {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    };
    let Some(u) = user.as_object_mut() else {
        return container.clone();
    };
    for key in [
        "User",
        "WorkingDir",
        "StopSignal",
        "Healthcheck",
        "Hostname",
        "Domainname",
    ] {
        if empty(u.get(key)) && !empty(container.get(key)) {
            u.insert(key.into(), container[key].clone());
        }
    }
    if empty(u.get("Cmd")) && empty(u.get("Entrypoint")) {
        u.insert("Cmd".into(), container["Cmd"].clone());
        u.insert("Entrypoint".into(), container["Entrypoint"].clone());
    }
    let mut env: Vec<Value> = u
        .get("Env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key_of = |e: &Value| {
        e.as_str()
            .unwrap_or("")
            .split('=')
            .next()
            .unwrap_or("")
            .to_string()
    };
    for e in container["Env"].as_array().into_iter().flatten() {
        if !env.iter().any(|x| key_of(x) == key_of(e)) {
            env.push(e.clone());
        }
    }
    u.insert("Env".into(), Value::Array(env));
    for key in ["Labels", "ExposedPorts", "Volumes"] {
        let mut merged = container[key].as_object().cloned().unwrap_or_default();
        if let Some(m) = u.get(key).and_then(Value::as_object) {
            merged.extend(m.clone());
        }
        if !merged.is_empty() || u.contains_key(key) {
            u.insert(key.into(), Value::Object(merged));
        }
    }
    user
}

fn is_empty_map(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_commit_config_is_merged_with_the_container_config() {
        let merged = super::merge_commit_config(
            json!({"Labels": {"x": "y"}, "Env": ["A=1"]}),
            &json!({"Cmd": ["true"], "Env": ["A=0", "PATH=/bin"], "Labels": {"k": "v"}, "User": "nobody"}),
        );
        assert_eq!(merged["Cmd"], json!(["true"]));
        assert_eq!(merged["Env"], json!(["A=1", "PATH=/bin"]));
        assert_eq!(merged["Labels"], json!({"k": "v", "x": "y"}));
        assert_eq!(merged["User"], "nobody");
        let own =
            super::merge_commit_config(json!({"Entrypoint": ["sh"]}), &json!({"Cmd": ["true"]}));
        assert_eq!(own["Cmd"], serde_json::Value::Null);
    }
}
