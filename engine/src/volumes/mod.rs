//! Volumes of the local driver: a directory `<data-root>/volumes/<name>/_data`
//! and a row in SQLite. Named volumes come from `docker volume create` or a
//! first `-v name:/path`; anonymous ones (a 64-hex name, labelled
//! `com.docker.volume.anonymous`) from `-v /path` and an image's VOLUME.
//! Which containers use a volume is read from their resolved mounts.
//! A volume created with driver options (type, device, o) is a filesystem
//! mounted on `_data` while a container that uses it runs (driver_opts.rs).

mod driver_opts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard_stubs::models::{
    Volume, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum, VolumeUsageData,
};
use tracing::info;

use crate::error::{Error, Result};
use crate::filters::volumes::{VolumeFilter, VolumePruneFilter};
use crate::store::{Store, VolumeRow};

pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

pub struct Volumes {
    store: Store,
    root: PathBuf,
    events: Arc<crate::events::Events>,
    /// Starts in progress, per volume: the container is not "running" in
    /// the store yet, but another container's exit must not unmount the
    /// filesystem it is about to use.
    holds: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    /// Serialises the mount-or-not and unmount-or-not decisions.
    mounting: tokio::sync::Mutex<()>,
}

/// Keeps volumes' filesystems mounted until a start is over (dropped after
/// the container is recorded as running, or after the start failed).
pub struct VolumeHold {
    holds: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    names: Vec<String>,
}

impl Drop for VolumeHold {
    fn drop(&mut self) {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        for n in &self.names {
            if let Some(count) = holds.get_mut(n) {
                *count -= 1;
                if *count == 0 {
                    holds.remove(n);
                }
            }
        }
    }
}

/// Docker's rule for volume names (the same as container names, at least
/// two characters), which also keeps a name from being a path.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

fn no_such_volume(name: &str) -> Error {
    Error::NotFound(format!("get {name}: no such volume"))
}

impl Volumes {
    pub fn new(store: Store, data_root: &Path, events: Arc<crate::events::Events>) -> Volumes {
        Volumes {
            store,
            root: data_root.join("volumes"),
            events,
            holds: Arc::default(),
            mounting: tokio::sync::Mutex::new(()),
        }
    }

    /// Where a volume's data lives.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub(crate) fn event(&self, action: &str, name: &str, extra: &[(&str, &str)]) {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("driver".to_string(), "local".to_string());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.to_string());
        }
        self.events.emit("volume", action, name, attrs);
    }

    /// Creates a volume, or returns the existing one of that name (as
    /// Docker does for the same driver).
    pub async fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<Volume> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(Error::NotFound(format!(
                "create {}: error looking up volume plugin {driver}: plugin \"{driver}\" not found",
                name.unwrap_or_default()
            )));
        }
        driver_opts::validate(&options)?;
        let anonymous = name.is_none_or(str::is_empty);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                validate_name(n)?;
                n.to_string()
            }
            None => crate::util::random_id(),
        };
        let mut labels = labels;
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let row = VolumeRow {
            name: name.clone(),
            driver: driver.into(),
            labels,
            options,
            created: crate::util::now_rfc3339(),
            anonymous,
        };
        std::fs::create_dir_all(self.data_path(&name))?;
        if self.store.insert_volume(&row).await? {
            info!(volume = %name, "volume created");
            self.event("create", &name, &[]);
        }
        self.inspect(&name).await
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.store.volume(name).await?.is_some())
    }

    fn document(&self, v: &VolumeRow) -> Volume {
        Volume {
            name: v.name.clone(),
            driver: v.driver.clone(),
            mountpoint: self.data_path(&v.name).display().to_string(),
            created_at: Some(v.created.clone()),
            labels: v.labels.clone(),
            scope: Some(VolumeScopeEnum::LOCAL),
            options: v.options.clone(),
            ..Default::default()
        }
    }

    /// `GET /volumes/{name}`
    pub async fn inspect(&self, name: &str) -> Result<Volume> {
        let v = self
            .store
            .volume(name)
            .await?
            .ok_or_else(|| no_such_volume(name))?;
        Ok(self.document(&v))
    }

    /// `GET /volumes`: filters name (substring), label (key or key=value),
    /// dangling (not used by any container) and driver.
    pub async fn list(&self, filters: &VolumeFilter) -> Result<VolumeListResponse> {
        let mut out = Vec::new();
        for v in self.store.volumes().await? {
            if !filters.matches(&v.name, &v.labels, &v.driver) {
                continue;
            }
            if let Some(d) = filters.dangling {
                let used = !self.store.volume_users(&v.name).await?.is_empty();
                if d == used {
                    continue;
                }
            }
            out.push(self.document(&v));
        }
        Ok(VolumeListResponse {
            volumes: Some(out),
            warnings: None,
        })
    }

    /// `DELETE /volumes/{name}`: refused while a container (running or not)
    /// uses it, as Docker refuses it, `force` or not.
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        if self.store.volume(name).await?.is_none() {
            if force {
                return Ok(());
            }
            return Err(no_such_volume(name));
        }
        let users = self.store.volume_users(name).await?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.delete(name).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        // Never recurse into a mounted filesystem: with `o=bind` it is a
        // host directory that outlives the volume.
        driver_opts::unmount_from(name, &self.data_path(name))?;
        self.store.delete_volume(name).await?;
        match std::fs::remove_dir_all(self.root.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        info!(volume = %name, "volume removed");
        self.event("destroy", name, &[]);
        Ok(())
    }

    /// Before a container starts: mounts the filesystems of those of its
    /// volumes that have driver options, and holds them until the start is
    /// over.
    pub async fn mount_for_start(&self, names: &[String]) -> Result<VolumeHold> {
        let _serial = self.mounting.lock().await;
        {
            let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
            for n in names {
                *holds.entry(n.clone()).or_default() += 1;
            }
        }
        let hold = VolumeHold {
            holds: self.holds.clone(),
            names: names.to_vec(),
        };
        for n in names {
            let Some(v) = self.store.volume(n).await? else {
                continue;
            };
            if driver_opts::needs_mount(&v.options) {
                driver_opts::mount_on(n, &v.options, &self.data_path(n))?;
            }
        }
        Ok(hold)
    }

    /// After a container stopped (or failed to start): `unmount` events,
    /// and the filesystems of volumes that no running container and no
    /// start in progress uses any more are unmounted.
    pub async fn release_after_exit(&self, container_id: &str, names: &[String]) {
        let _serial = self.mounting.lock().await;
        for n in names {
            let Ok(Some(v)) = self.store.volume(n).await else {
                continue;
            };
            self.event("unmount", n, &[("container", container_id)]);
            if !driver_opts::needs_mount(&v.options) {
                continue;
            }
            let held = self
                .holds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(n);
            let active = match self.store.volume_active_users(n).await {
                Ok(users) => !users.is_empty(),
                Err(_) => true,
            };
            if !held && !active {
                if let Err(e) = driver_opts::unmount_from(n, &self.data_path(n)) {
                    tracing::warn!(volume = %n, error = %e, "unmounting volume filesystem");
                }
            }
        }
    }

    /// Removes the anonymous volumes among `names` that nothing uses any
    /// more (`docker rm -v`, and `--rm` containers).
    pub async fn remove_anonymous(&self, names: &[String]) -> Result<()> {
        for n in names {
            let Some(v) = self.store.volume(n).await? else {
                continue;
            };
            if v.anonymous && self.store.volume_users(n).await?.is_empty() {
                self.delete(n).await?;
            }
        }
        Ok(())
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or with `all=true`
    /// (or `named_by_default`, the rule below API 1.42) every unused one;
    /// `label` and `label!` filters too.
    pub async fn prune(
        &self,
        filters: &VolumePruneFilter,
        named_by_default: bool,
    ) -> Result<VolumePruneResponse> {
        let all = filters.all.unwrap_or(named_by_default);
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for v in self.store.volumes().await? {
            if (!all && !v.anonymous)
                || !filters.labels.matches(&v.labels)
                || !self.store.volume_users(&v.name).await?.is_empty()
            {
                continue;
            }
            reclaimed += crate::util::dir_size(&self.data_path(&v.name));
            self.delete(&v.name).await?;
            deleted.push(v.name);
        }
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed as i64),
        })
    }

    /// Volumes for `docker system df`: size and how many containers use each.
    pub async fn usage(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        for v in self.store.volumes().await? {
            let mut doc = self.document(&v);
            doc.usage_data = Some(VolumeUsageData {
                size: crate::util::dir_size(&self.data_path(&v.name)) as i64,
                ref_count: self.store.volume_users(&v.name).await?.len() as i64,
            });
            out.push(doc);
        }
        Ok(out)
    }
}
