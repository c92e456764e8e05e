//! Containers as listings see them, kept decoded in memory (what dockerd's
//! memdb is to it), so `docker ps` costs one small query however many
//! containers there are.
//!
//! SQLite stays the truth. Its triggers (migration 0006) raise one counter
//! with every change to what a listing shows and stamp the changed
//! container with it, in the transaction that makes the change, whoever
//! writes: this berthd, or the one it takes over from while that finishes
//! its requests. A snapshot remembers the counter it was read at; the next
//! listing reads the counter, and only when it moved does it re-read the
//! containers stamped since (their mounts and networking with them) and the
//! tags. Nothing here has to be told about a write, so no write path can
//! forget to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::containers::record::Container;
use crate::containers::Containers;
use crate::error::Result;
use crate::networks::settings::Networking;
use crate::store::MountRow;

/// Past this many changed containers one bulk read of every mount and
/// endpoint is cheaper than a few queries for each.
const BULK_AFTER: usize = 8;

/// One container with what its listing is made of.
pub struct Entry {
    /// The counter's value at its last change.
    rev: i64,
    pub container: Container,
    pub mounts: Vec<MountRow>,
    pub networking: Networking,
    /// Its listing as last answered (see [`Listed::rendered`]).
    rendered: Mutex<Option<Rendered>>,
}

/// What a listing shows of a container beyond its entry: it depends on the
/// time, the tags and the other containers' links.
#[derive(Clone, PartialEq, Eq)]
pub struct Look {
    /// The image as the user named it, or its id once that name moved on.
    pub image: String,
    /// Its name and the names links give it.
    pub names: Vec<String>,
    /// "Up 5 minutes".
    pub status: String,
}

/// A container in a listing.
pub struct Listed {
    pub entry: Arc<Entry>,
    pub look: Look,
}

struct Rendered {
    form: u64,
    look: Look,
    bytes: Bytes,
}

impl Listed {
    /// This listing in the caller's `form` (an API version, say) as `render`
    /// makes it. Kept with the entry and reused while the entry, the look
    /// and the form are the same: a poll of many containers then copies
    /// bytes instead of building and shaping every document again.
    pub fn rendered(&self, form: u64, render: impl FnOnce(&Listed) -> Vec<u8>) -> Bytes {
        let mut slot = self
            .entry
            .rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot
            .as_ref()
            .filter(|r| r.form == form && r.look == self.look)
        {
            return r.bytes.clone();
        }
        let bytes = Bytes::from(render(self));
        *slot = Some(Rendered {
            form,
            look: self.look.clone(),
            bytes: bytes.clone(),
        });
        bytes
    }
}

/// Every container, newest first, as of one value of the counter.
pub struct Snapshot {
    revision: i64,
    pub entries: Vec<Arc<Entry>>,
    /// (tag, image id) of every tag.
    pub tags: Vec<(String, String)>,
}

impl Snapshot {
    /// The containers in it.
    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.entries.iter().map(|e| &e.container)
    }
}

/// The current snapshot, replaced as a whole when the store moved on.
#[derive(Default)]
pub struct Memory {
    current: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
}

impl Containers {
    /// Every container as of now: the kept snapshot while the store has
    /// not changed, else a new one that reuses what did not change.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        // Held across the refresh so that concurrent listings do it once.
        let mut current = self.memory.current.lock().await;
        // Read before the rows: a change committed after this has a higher
        // stamp, so the next refresh reads it even if this one saw it too.
        let revision = self.store.revision().await?;
        if let Some(s) = current.as_ref().filter(|s| s.revision == revision) {
            return Ok(s.clone());
        }
        let previous = current.take();
        let since = previous.as_ref().map_or(-1, |s| s.revision);
        let order = self.store.container_revisions().await?;
        let changed = self.store.containers_changed_since(since).await?;
        let fresh = self.entries_of(changed).await?;
        let kept: HashMap<&str, &Arc<Entry>> = previous
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| (e.container.id.as_str(), e))
            .collect();
        let entries = order
            .iter()
            .filter_map(|(id, rev)| match fresh.get(id.as_str()) {
                Some(e) => Some(e.clone()),
                // Unchanged since the last snapshot. A row stamped later
                // that was not read (removed in between, or unreadable) is
                // left out, as the old listing left it out.
                None => kept
                    .get(id.as_str())
                    .filter(|e| e.rev == *rev)
                    .map(|e| (*e).clone()),
            })
            .collect();
        let snapshot = Arc::new(Snapshot {
            revision,
            entries,
            tags: self.store.tags().await?,
        });
        *current = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Entries of changed containers, with their mounts and networking.
    async fn entries_of(
        &self,
        changed: Vec<(i64, crate::store::ContainerRow)>,
    ) -> Result<HashMap<String, Arc<Entry>>> {
        let mut out = HashMap::new();
        if changed.len() > BULK_AFTER {
            let mut mounts = self.store.all_container_mounts().await?;
            let view = self.networks.view().await?;
            for (rev, row) in changed {
                let container = Container::from_row(row);
                let entry = Entry {
                    rev,
                    mounts: mounts.remove(&container.id).unwrap_or_default(),
                    networking: view.networking(&container),
                    container,
                    rendered: Mutex::new(None),
                };
                out.insert(entry.container.id.clone(), Arc::new(entry));
            }
        } else {
            for (rev, row) in changed {
                let container = Container::from_row(row);
                let entry = Entry {
                    rev,
                    mounts: self.store.container_mounts(&container.id).await?,
                    networking: self.networks.networking(&container).await?,
                    container,
                    rendered: Mutex::new(None),
                };
                out.insert(entry.container.id.clone(), Arc::new(entry));
            }
        }
        Ok(out)
    }
}
