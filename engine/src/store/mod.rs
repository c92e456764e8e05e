//! Metadata in SQLite (WAL) through sqlx; the only module that knows SQL.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Row, SqlitePool};

use bollard_stubs::models::{ContainerConfig, HostConfig};

use crate::containers::record::State;
use crate::error::{Error, Result};

/// A container's row: its Config and HostConfig (bollard's) and its State
/// are JSON columns, decoded here.
#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub image_ref: String,
    pub created: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
}

#[derive(Debug, Clone)]
pub struct ImageRow {
    pub id: String,
    pub config: String,
    pub layers: Vec<String>,
    pub chains: Vec<String>,
    pub size: i64,
    pub created: String,
    /// Digest of the manifest it was pulled with ('' if none).
    pub manifest: String,
    /// Image it was committed or built from ('' if none).
    pub parent: String,
}

impl ImageRow {
    /// The image config, parsed (`Null` if unreadable). The column keeps
    /// the exact bytes, whose digest is the image's id.
    pub fn config_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.config).unwrap_or_default()
    }
}

/// One step of the build cache.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub key: String,
    pub image_id: String,
    /// The step as `docker history` shows it.
    pub description: String,
    pub created: String,
    pub last_used: String,
    pub usage_count: i64,
}

/// A blob in the content store that holds one layer.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub diff_id: String,
    pub digest: String,
    pub media_type: String,
    pub size: i64,
}

/// A volume of the local driver.
#[derive(Debug, Clone)]
pub struct VolumeRow {
    pub name: String,
    pub driver: String,
    /// Kept as JSON objects.
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    pub created: String,
    pub anonymous: bool,
}

/// One mount of a container, resolved at create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRow {
    pub destination: String,
    /// bind, volume or tmpfs
    pub kind: String,
    /// Host path (bind), volume name (volume), empty (tmpfs).
    pub source: String,
    pub rw: bool,
    /// What the user wrote after the paths ("ro,z"), shown as Mode.
    pub mode: String,
    pub propagation: String,
    /// tmpfs mount options ("size=65536k,mode=1777").
    pub options: String,
    /// Fill an empty volume from the image at first mount.
    pub copy_up: bool,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    pub async fn open(path: &Path) -> Result<Store> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(Error::internal)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| Error::Internal(format!("database migration: {e}")))?;
        Ok(Store { pool })
    }

    /// A transaction that takes the write lock as it begins. A deferred one
    /// that reads before it writes fails with SQLITE_BUSY_SNAPSHOT (517) when
    /// another connection commits in between, and the busy timeout does not
    /// wait that out; begun IMMEDIATE, it waits for the lock instead.
    async fn write_transaction(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    // ---- containers ----

    pub async fn insert_container(&self, c: &ContainerRow) -> Result<()> {
        sqlx::query("INSERT INTO containers (id, name, image_id, image_ref, created, config, host_config, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.image_id)
            .bind(&c.image_ref)
            .bind(&c.created)
            .bind(Json(&c.config))
            .bind(Json(&c.host_config))
            .bind(Json(&c.state))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_container_state(&self, id: &str, state: &State) -> Result<()> {
        sqlx::query("UPDATE containers SET state = ? WHERE id = ?")
            .bind(Json(state))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renames; a name held by another container fails with a UNIQUE error.
    pub async fn rename_container(&self, id: &str, name: &str) -> Result<()> {
        sqlx::query("UPDATE containers SET name = ? WHERE id = ?")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_container_host_config(
        &self,
        id: &str,
        host_config: &HostConfig,
    ) -> Result<()> {
        sqlx::query("UPDATE containers SET host_config = ? WHERE id = ?")
            .bind(Json(host_config))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_container(&self, id: &str) -> Result<()> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("DELETE FROM container_mounts WHERE container_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for table in ["endpoints", "sandboxes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE container_id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM containers WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn containers(&self) -> Result<Vec<ContainerRow>> {
        let rows = sqlx::query("SELECT id, name, image_id, image_ref, created, config, host_config, state FROM containers ORDER BY created DESC")
            .fetch_all(&self.pool)
            .await?;
        Ok(readable_containers(&rows))
    }

    /// The counter that every change to what a listing shows raises
    /// (containers, their mounts, endpoints and sandboxes, networks, tags:
    /// migration 0006's triggers).
    pub async fn revision(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT n FROM revision")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every container's id and revision, newest first (as listed).
    pub async fn container_revisions(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT id, rev FROM containers ORDER BY created DESC")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// How many containers each image has (image id to count).
    pub async fn containers_per_image(&self) -> Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT image_id, COUNT(*) FROM containers GROUP BY image_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// The containers changed after revision `since`, with their revisions.
    pub async fn containers_changed_since(&self, since: i64) -> Result<Vec<(i64, ContainerRow)>> {
        let rows = sqlx::query("SELECT id, name, image_id, image_ref, created, config, host_config, state, rev FROM containers WHERE rev > ?")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                container_row(r)
                    .map(|c| (r.get(8), c))
                    .map_err(|e| tracing::warn!(error = %e, "skipping a container"))
                    .ok()
            })
            .collect())
    }

    pub async fn container(&self, id: &str) -> Result<Option<ContainerRow>> {
        let row = sqlx::query("SELECT id, name, image_id, image_ref, created, config, host_config, state FROM containers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(container_row).transpose()
    }

    pub async fn container_id_by_name(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM containers WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn container_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT id FROM containers WHERE id LIKE ?")
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn containers_using_image(&self, image_id: &str) -> Result<Vec<ContainerRow>> {
        let rows = sqlx::query("SELECT id, name, image_id, image_ref, created, config, host_config, state FROM containers WHERE image_id = ?")
            .bind(image_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(readable_containers(&rows))
    }

    // ---- images ----

    pub async fn insert_image(&self, img: &ImageRow) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO images (id, config, layers, chains, size, created, manifest, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&img.id)
            .bind(&img.config)
            .bind(Json(&img.layers))
            .bind(Json(&img.chains))
            .bind(img.size)
            .bind(&img.created)
            .bind(&img.manifest)
            .bind(&img.parent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn images(&self) -> Result<Vec<ImageRow>> {
        let rows = sqlx::query("SELECT id, config, layers, chains, size, created, manifest, parent FROM images ORDER BY created DESC").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(image_row).collect())
    }

    pub async fn image(&self, id: &str) -> Result<Option<ImageRow>> {
        let row = sqlx::query("SELECT id, config, layers, chains, size, created, manifest, parent FROM images WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(image_row))
    }

    pub async fn image_ids_with_prefix(&self, hex_prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("sha256:{}%", hex_prefix.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT id FROM images WHERE id LIKE ?")
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Deletes an image and its tags in one transaction.
    pub async fn delete_image(&self, id: &str) -> Result<()> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("DELETE FROM tags WHERE image_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repo_digests WHERE image_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM images WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- tags ----

    /// Points `name` at `image_id`; returns the image it pointed at before.
    pub async fn set_tag(&self, name: &str, image_id: &str) -> Result<Option<String>> {
        let mut tx = self.write_transaction().await?;
        let old: Option<String> = sqlx::query("SELECT image_id FROM tags WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
        sqlx::query("INSERT INTO tags (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id")
            .bind(name)
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(old.filter(|o| o != image_id))
    }

    pub async fn tag(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT image_id FROM tags WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn delete_tag(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM tags WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// All tags as (name, image id).
    pub async fn tags(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, image_id FROM tags ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records that the pulled manifest of an image is `manifest`, unless
    /// it already has one.
    pub async fn set_image_manifest(&self, image_id: &str, manifest: &str) -> Result<()> {
        sqlx::query("UPDATE images SET manifest = ? WHERE id = ? AND manifest = ''")
            .bind(manifest)
            .bind(image_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- repo digests ----

    pub async fn add_repo_digest(&self, name: &str, image_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO repo_digests (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id")
            .bind(name)
            .bind(image_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_repo_digest(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM repo_digests WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// All repo digests as (name, image id).
    pub async fn repo_digests(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, image_id FROM repo_digests ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn repo_digest(&self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT image_id FROM repo_digests WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }

    // ---- layer blobs ----

    pub async fn add_layer_blob(&self, blob: &LayerBlob) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO layer_blobs (diff_id, digest, media_type, size) VALUES (?, ?, ?, ?)")
            .bind(&blob.diff_id)
            .bind(&blob.digest)
            .bind(&blob.media_type)
            .bind(blob.size)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every blob known to hold the layer with this diff id.
    pub async fn layer_blobs(&self, diff_id: &str) -> Result<Vec<LayerBlob>> {
        let rows = sqlx::query(
            "SELECT diff_id, digest, media_type, size FROM layer_blobs WHERE diff_id = ?",
        )
        .bind(diff_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| LayerBlob {
                diff_id: r.get(0),
                digest: r.get(1),
                media_type: r.get(2),
                size: r.get(3),
            })
            .collect())
    }

    pub async fn all_layer_blobs(&self) -> Result<Vec<LayerBlob>> {
        let rows = sqlx::query("SELECT diff_id, digest, media_type, size FROM layer_blobs")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| LayerBlob {
                diff_id: r.get(0),
                digest: r.get(1),
                media_type: r.get(2),
                size: r.get(3),
            })
            .collect())
    }

    pub async fn delete_layer_blob(&self, digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM layer_blobs WHERE digest = ?")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- build cache ----

    pub async fn cache_put(&self, e: &CacheEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO build_cache (key, image_id, description, created, last_used, usage_count) \
             VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id, \
             description = excluded.description, last_used = excluded.last_used",
        )
        .bind(&e.key)
        .bind(&e.image_id)
        .bind(&e.description)
        .bind(&e.created)
        .bind(&e.last_used)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The image a cached step made, counting the use.
    pub async fn cache_get(&self, key: &str, now: &str) -> Result<Option<String>> {
        // A plain SELECT, then the count: an UPDATE … RETURNING read with
        // fetch_optional can leave its write transaction open.
        let id: Option<String> = sqlx::query("SELECT image_id FROM build_cache WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0));
        if id.is_some() {
            sqlx::query(
                "UPDATE build_cache SET last_used = ?, usage_count = usage_count + 1 WHERE key = ?",
            )
            .bind(now)
            .bind(key)
            .execute(&self.pool)
            .await?;
        }
        Ok(id)
    }

    pub async fn cache_entries(&self) -> Result<Vec<CacheEntry>> {
        let rows = sqlx::query(
            "SELECT key, image_id, description, created, last_used, usage_count FROM build_cache ORDER BY created",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| CacheEntry {
                key: r.get(0),
                image_id: r.get(1),
                description: r.get(2),
                created: r.get(3),
                last_used: r.get(4),
                usage_count: r.get(5),
            })
            .collect())
    }

    pub async fn cache_delete(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM build_cache WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- meta ----

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_volume(&self, v: &VolumeRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO volumes (name, driver, labels, options, created, anonymous) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&v.name)
        .bind(&v.driver)
        .bind(Json(&v.labels))
        .bind(Json(&v.options))
        .bind(&v.created)
        .bind(v.anonymous)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn volume(&self, name: &str) -> Result<Option<VolumeRow>> {
        let row = sqlx::query(
            "SELECT name, driver, labels, options, created, anonymous FROM volumes WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(volume_row))
    }

    pub async fn volumes(&self) -> Result<Vec<VolumeRow>> {
        let rows = sqlx::query(
            "SELECT name, driver, labels, options, created, anonymous FROM volumes ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(volume_row).collect())
    }

    pub async fn delete_volume(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM volumes WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ids of the containers that mount volume `name`.
    pub async fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT container_id FROM container_mounts WHERE kind = 'volume' AND source = ?",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The containers using a volume that are running, paused or about to
    /// be restarted: while there are any, its filesystem stays mounted.
    pub async fn volume_active_users(&self, name: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT m.container_id FROM container_mounts m JOIN containers c ON c.id = m.container_id \
             WHERE m.kind = 'volume' AND m.source = ? \
             AND (json_extract(c.state, '$.Running') OR json_extract(c.state, '$.Restarting'))",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn set_container_mounts(&self, id: &str, mounts: &[MountRow]) -> Result<()> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("DELETE FROM container_mounts WHERE container_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for m in mounts {
            sqlx::query("INSERT INTO container_mounts (container_id, destination, kind, source, rw, mode, propagation, options, copy_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(id)
                .bind(&m.destination)
                .bind(&m.kind)
                .bind(&m.source)
                .bind(m.rw)
                .bind(&m.mode)
                .bind(&m.propagation)
                .bind(&m.options)
                .bind(m.copy_up)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn container_mounts(&self, id: &str) -> Result<Vec<MountRow>> {
        let rows = sqlx::query("SELECT destination, kind, source, rw, mode, propagation, options, copy_up FROM container_mounts WHERE container_id = ? ORDER BY destination")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(mount_row).collect())
    }

    /// Every container's mounts in one query (`docker ps`).
    pub async fn all_container_mounts(&self) -> Result<HashMap<String, Vec<MountRow>>> {
        let rows = sqlx::query("SELECT destination, kind, source, rw, mode, propagation, options, copy_up, container_id FROM container_mounts ORDER BY destination")
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<String, Vec<MountRow>> = HashMap::new();
        for r in &rows {
            out.entry(r.get(8)).or_default().push(mount_row(r));
        }
        Ok(out)
    }

    // Networks, endpoints and sandboxes hold JSON documents whose types
    // belong to the networks module: written and read here as `Json<T>`,
    // a document that does not decode (from a newer or broken berthd) is
    // left out of what is read.

    /// Inserts a network; false when the name is taken.
    pub async fn insert_network<T: Serialize>(
        &self,
        id: &str,
        name: &str,
        doc: &T,
    ) -> Result<bool> {
        let done = sqlx::query("INSERT OR IGNORE INTO networks (id, name, doc) VALUES (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(Json(doc))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_network<T: Serialize>(&self, id: &str, doc: &T) -> Result<()> {
        sqlx::query("UPDATE networks SET doc = ? WHERE id = ?")
            .bind(Json(doc))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every network's document.
    pub async fn networks<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let rows = sqlx::query("SELECT doc FROM networks ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().filter_map(|r| document(r, 0)).collect())
    }

    /// Deletes a network and every endpoint in it.
    /// Removes a network's record. Endpoints of created containers stay,
    /// as in dockerd: the container still lists the network and one
    /// disconnect removes it (`Networks::disconnect`).
    pub async fn delete_network(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM networks WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_endpoint<T: Serialize>(
        &self,
        container_id: &str,
        network_id: &str,
        doc: &T,
    ) -> Result<()> {
        sqlx::query("INSERT INTO endpoints (container_id, network_id, doc) VALUES (?, ?, ?) ON CONFLICT(container_id, network_id) DO UPDATE SET doc = excluded.doc")
            .bind(container_id)
            .bind(network_id)
            .bind(Json(doc))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_endpoint(&self, container_id: &str, network_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM endpoints WHERE container_id = ? AND network_id = ?")
            .bind(container_id)
            .bind(network_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (container id, network id, doc) of every endpoint.
    pub async fn endpoints<T: DeserializeOwned>(&self) -> Result<Vec<(String, String, T)>> {
        let rows = sqlx::query("SELECT container_id, network_id, doc FROM endpoints")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), r.get(1), document(r, 2)?)))
            .collect())
    }

    /// (network id, doc) of a container's endpoints.
    pub async fn container_endpoints<T: DeserializeOwned>(
        &self,
        container_id: &str,
    ) -> Result<Vec<(String, T)>> {
        let rows = sqlx::query("SELECT network_id, doc FROM endpoints WHERE container_id = ?")
            .bind(container_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), document(r, 1)?)))
            .collect())
    }

    pub async fn set_sandbox<T: Serialize>(&self, container_id: &str, doc: &T) -> Result<()> {
        sqlx::query("INSERT INTO sandboxes (container_id, doc) VALUES (?, ?) ON CONFLICT(container_id) DO UPDATE SET doc = excluded.doc")
            .bind(container_id)
            .bind(Json(doc))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn sandbox<T: DeserializeOwned>(&self, container_id: &str) -> Result<Option<T>> {
        Ok(
            sqlx::query("SELECT doc FROM sandboxes WHERE container_id = ?")
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await?
                .and_then(|r| document(&r, 0)),
        )
    }

    /// (container id, doc) of every sandbox.
    pub async fn sandboxes<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        let rows = sqlx::query("SELECT container_id, doc FROM sandboxes")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), document(r, 1)?)))
            .collect())
    }

    /// The containers (and keepers) that have a sandbox.
    pub async fn sandbox_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT container_id FROM sandboxes")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn delete_sandbox(&self, container_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sandboxes WHERE container_id = ?")
            .bind(container_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a new pod under its reserved name; `false` (nothing stored)
    /// when a pod has that name.
    pub async fn insert_pod<T: Serialize>(&self, id: &str, name: &str, doc: &T) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO pods (id, name, doc) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(Json(doc))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_pod<T: Serialize>(&self, id: &str, doc: &T) -> Result<()> {
        sqlx::query("UPDATE pods SET doc = ? WHERE id = ?")
            .bind(Json(doc))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn pod<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>> {
        Ok(sqlx::query("SELECT doc FROM pods WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .and_then(|r| document(&r, 0)))
    }

    /// The id of the pod with that reserved name.
    pub async fn pod_id_by_name(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT id FROM pods WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn pods<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let rows = sqlx::query("SELECT doc FROM pods ORDER BY rowid")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().filter_map(|r| document(r, 0)).collect())
    }

    pub async fn delete_pod(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM pods WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A JSON document column; `None` when it does not decode.
fn document<T: DeserializeOwned>(r: &sqlx::sqlite::SqliteRow, index: usize) -> Option<T> {
    r.try_get::<Json<T>, _>(index).ok().map(|j| j.0)
}

/// A JSON column decoded; a value that does not decode (written by hand,
/// or cut short) reads as empty rather than failing every listing.
fn json_column<T: DeserializeOwned + Default>(r: &sqlx::sqlite::SqliteRow, index: usize) -> T {
    document(r, index).unwrap_or_default()
}

fn volume_row(r: &sqlx::sqlite::SqliteRow) -> VolumeRow {
    VolumeRow {
        name: r.get(0),
        driver: r.get(1),
        labels: json_column(r, 2),
        options: json_column(r, 3),
        created: r.get(4),
        anonymous: r.get(5),
    }
}

/// The rows that decode; one that does not (written by a newer berthd, or
/// damaged) is left out with a warning, as dockerd skips a container it
/// cannot load, rather than failing every listing.
fn readable_containers(rows: &[sqlx::sqlite::SqliteRow]) -> Vec<ContainerRow> {
    rows.iter()
        .filter_map(|r| {
            container_row(r)
                .map_err(|e| tracing::warn!(error = %e, "skipping a container"))
                .ok()
        })
        .collect()
}

fn container_row(r: &sqlx::sqlite::SqliteRow) -> Result<ContainerRow> {
    let id: String = r.get(0);
    let unreadable = |what: &str, e: sqlx::Error| {
        Error::Internal(format!(
            "stored {what} of container {id} is unreadable: {e}"
        ))
    };
    Ok(ContainerRow {
        config: r
            .try_get::<Json<_>, _>(5)
            .map_err(|e| unreadable("config", e))?
            .0,
        host_config: r
            .try_get::<Json<_>, _>(6)
            .map_err(|e| unreadable("host config", e))?
            .0,
        state: r
            .try_get::<Json<_>, _>(7)
            .map_err(|e| unreadable("state", e))?
            .0,
        name: r.get(1),
        image_id: r.get(2),
        image_ref: r.get(3),
        created: r.get(4),
        id,
    })
}

fn image_row(r: &sqlx::sqlite::SqliteRow) -> ImageRow {
    ImageRow {
        id: r.get(0),
        config: r.get(1),
        layers: json_column(r, 2),
        chains: json_column(r, 3),
        size: r.get(4),
        created: r.get(5),
        manifest: r.get(6),
        parent: r.get(7),
    }
}

fn mount_row(r: &sqlx::sqlite::SqliteRow) -> MountRow {
    MountRow {
        destination: r.get(0),
        kind: r.get(1),
        source: r.get(2),
        rw: r.get(3),
        mode: r.get(4),
        propagation: r.get(5),
        options: r.get(6),
        copy_up: r.get(7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tagging reads the old image and then writes: begun as a deferred
    /// transaction, a commit by another connection in between fails it with
    /// SQLITE_BUSY_SNAPSHOT (517), which the busy timeout does not wait out.
    /// Builds tag while other connections write, so racing tags must all land.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_tags_all_land() {
        let dir = std::env::temp_dir().join(format!("berth-store-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("berth.db")).await.unwrap();
        for writer in 0..4 {
            let image = ImageRow {
                id: format!("sha256:{writer}"),
                config: "{}".into(),
                layers: vec![],
                chains: vec![],
                size: 0,
                created: "2026-01-01T00:00:00Z".into(),
                manifest: String::new(),
                parent: String::new(),
            };
            store.insert_image(&image).await.unwrap();
        }
        let mut tasks = Vec::new();
        for writer in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..200 {
                    let image = format!("sha256:{writer}");
                    store.set_tag(&format!("tag{}", round % 3), &image).await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// JSON columns are stored as JSON text, which SQL reads
    /// (`volume_active_users` uses json_extract), and come back typed.
    #[tokio::test]
    async fn json_columns_are_json_text_and_read_back_typed() {
        let dir = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("berth.db")).await.unwrap();
        let row = ContainerRow {
            id: "c".repeat(64),
            name: "web".into(),
            image_id: "sha256:x".into(),
            image_ref: "busybox".into(),
            created: "2026-01-01T00:00:00Z".into(),
            config: ContainerConfig {
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
            host_config: HostConfig::default(),
            state: State {
                running: true,
                ..State::created()
            },
        };
        store.insert_container(&row).await.unwrap();
        let (kind, running): (String, i64) = sqlx::query_as(
            "SELECT typeof(state), json_extract(state, '$.Running') FROM containers",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!((kind.as_str(), running), ("text", 1));
        let back = store.container(&row.id).await.unwrap().unwrap();
        assert_eq!(back.config.cmd, row.config.cmd);
        assert!(back.state.running);

        // A row a newer berthd wrote in a shape this one cannot read is
        // left out of listings, not the end of them.
        sqlx::query("UPDATE containers SET state = '[1]'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(store.containers().await.unwrap().is_empty());
        assert!(store.container(&row.id).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What the in-memory view of containers relies on: every change to
    /// what a listing shows raises the revision and stamps the container,
    /// whichever connection (or berthd) writes it.
    #[tokio::test]
    async fn every_listed_change_raises_the_revision_and_stamps_its_container() {
        let dir = std::env::temp_dir().join(format!("berth-store-rev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("berth.db")).await.unwrap();
        // Another berthd on the same database, as during a takeover.
        let other = Store::open(&dir.join("berth.db")).await.unwrap();
        let row = |id: &str, name: &str| ContainerRow {
            id: id.repeat(64),
            name: name.into(),
            image_id: "sha256:x".into(),
            image_ref: "busybox".into(),
            created: "2026-01-01T00:00:00Z".into(),
            config: ContainerConfig::default(),
            host_config: HostConfig::default(),
            state: State::created(),
        };
        let (a, b) = (row("a", "one"), row("b", "two"));
        store.insert_container(&a).await.unwrap();
        store.insert_container(&b).await.unwrap();
        let changed_ids = |since: i64| {
            let store = store.clone();
            async move {
                let mut ids: Vec<String> = store
                    .containers_changed_since(since)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(_, c)| c.name)
                    .collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(changed_ids(-1).await, ["one", "two"]);

        // Each change, made by either connection, moves the revision on
        // and marks exactly the container it concerns.
        let mut last = store.revision().await.unwrap();
        fn expect(what: &str, names: &[&str], last: &mut i64, now: i64, changed: Vec<String>) {
            assert!(
                now > *last,
                "{what}: the revision did not move ({last} -> {now})"
            );
            assert_eq!(changed, names, "{what}");
            *last = now;
        }
        let mut running = a.state.clone();
        running.running = true;
        other.update_container_state(&a.id, &running).await.unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("state by another writer", &["one"], &mut last, now, changed);

        let mount = MountRow {
            destination: "/data".into(),
            kind: "volume".into(),
            source: "v".into(),
            rw: true,
            mode: String::new(),
            propagation: String::new(),
            options: String::new(),
            copy_up: true,
        };
        store.set_container_mounts(&b.id, &[mount]).await.unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("mounts", &["two"], &mut last, now, changed);

        store
            .set_endpoint(&a.id, "net1", &serde_json::json!({}))
            .await
            .unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("endpoint", &["one"], &mut last, now, changed);

        // A network's change reaches the containers on it.
        store
            .insert_network("net1", "front", &serde_json::json!({}))
            .await
            .unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("network", &["one"], &mut last, now, changed);

        store
            .set_sandbox(&b.id, &serde_json::json!({}))
            .await
            .unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("sandbox", &["two"], &mut last, now, changed);

        other.rename_container(&b.id, "three").await.unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect(
            "rename by another writer",
            &["three"],
            &mut last,
            now,
            changed,
        );

        // Removals and tags change no row but still move the revision.
        store.delete_container(&a.id).await.unwrap();
        let now = store.revision().await.unwrap();
        let changed = changed_ids(last).await;
        expect("removal", &[], &mut last, now, changed);
        let ids: Vec<String> = store
            .container_revisions()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, std::slice::from_ref(&b.id));

        // A revision read stays put while nothing changes.
        assert_eq!(store.revision().await.unwrap(), last);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
