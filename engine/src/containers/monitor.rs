//! Following berth-core: its event stream while connected, a reconciliation
//! against its task list at every (re)connect, and starting a new core when
//! none answers. The cursor into the core's event log is kept in the
//! database, so an exit that happened while this engine was down (or while
//! the core was restarting) is applied exactly when we come back.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::{Event, EventKind, TaskStatus};
use tracing::{debug, info, warn};

use super::Containers;
use crate::core_client::{Launcher, NAMESPACE};
use crate::error::Result;

const CURSOR_KEY: &str = "core_event_cursor";
const EPOCH_KEY: &str = "core_event_epoch";

/// Connection state of the monitor, logged on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Disconnected,
    Connected,
}

/// Runs forever: connect (starting a core if needed), reconcile, follow.
pub async fn run(containers: Arc<Containers>, launcher: Arc<Launcher>) {
    let mut backoff = Duration::from_millis(50);
    let mut link = Link::Disconnected;
    loop {
        let handshake = match launcher.ensure(&containers.core).await {
            Ok(h) => h,
            Err(e) => {
                let e = crate::Error::from(e);
                if link == Link::Connected {
                    warn!(error = %e, "lost berth-core");
                }
                link = Link::Disconnected;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if link == Link::Disconnected {
            info!(core_version = %handshake.core_version, "connected to berth-core");
        }
        link = Link::Connected;
        backoff = Duration::from_millis(50);
        if let Err(e) = follow(&containers, &handshake.event_epoch).await {
            warn!(error = %e, "following berth-core events");
        }
        // The stream ended: the core exited or restarted. Retry at once;
        // the backoff applies only while nothing answers.
    }
}

async fn follow(containers: &Containers, epoch: &str) -> Result<()> {
    let store = &containers.store;
    let mut cursor: u64 = match store.meta(EPOCH_KEY).await?.as_deref() {
        Some(e) if e == epoch => store.meta(CURSOR_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0),
        _ => {
            // A new event log (the exec-root was wiped): start from its beginning.
            store.set_meta(EPOCH_KEY, epoch).await?;
            0
        }
    };
    // Subscribe first, then reconcile: whatever happens in between arrives
    // as an event and is applied idempotently.
    let mut stream = containers.core.events(cursor).await?;
    reconcile(containers).await?;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if ev.seq <= cursor {
            continue;
        }
        if ev.namespace == NAMESPACE {
            apply(containers, &ev).await?;
        }
        cursor = ev.seq;
        store.set_meta(CURSOR_KEY, &cursor.to_string()).await?;
    }
    Ok(())
}

async fn apply(containers: &Containers, ev: &Event) -> Result<()> {
    if ev.kind != EventKind::Exit {
        return Ok(());
    }
    debug!(container_id = %ev.id, seq = ev.seq, exit_code = ?ev.exit_code, "exit event");
    exited(containers, &ev.id, ev.pid, ev.exit_code.unwrap_or(255), &ev.time, ev.oom_killed).await
}

/// Applies an exit if the container is still recorded as running that pid.
async fn exited(containers: &Containers, id: &str, pid: u32, code: i32, time: &str, oom: bool) -> Result<()> {
    let lock = containers.lock_of(id);
    let guard = lock.lock().await;
    let Ok(mut c) = containers.lookup(id).await else { return Ok(()) };
    if c.id != id || !c.is_running() || (pid != 0 && c.state.pid != 0 && c.state.pid != pid) {
        return Ok(());
    }
    containers.apply_exit(&mut c, code, time, oom).await?;
    if c.auto_remove() {
        if let Err(e) = containers.remove_locked(&c).await {
            warn!(container_id = %id, error = %e, "auto-removing container");
        }
    }
    drop(guard);
    Ok(())
}

/// Compares running containers with the core's tasks: exits the event log
/// no longer holds, and tasks that vanished (a wiped exec-root) are settled.
async fn reconcile(containers: &Containers) -> Result<()> {
    let tasks = containers.core.tasks().await?;
    let rows = containers.store.containers().await?;
    // Stopped tasks of containers that are gone (removed while the core was
    // away) are deleted, so that their runtime state does not linger.
    for t in tasks.iter().filter(|t| t.status == TaskStatus::Stopped) {
        if !rows.iter().any(|r| r.id == t.id) {
            let _ = containers.core.delete_task(&t.id).await;
        }
    }
    for row in rows {
        let state: super::record::State = serde_json::from_str(&row.state).unwrap_or_default();
        if !state.running {
            continue;
        }
        match tasks.iter().find(|t| t.id == row.id) {
            Some(t) if t.status == TaskStatus::Stopped => {
                exited(containers, &row.id, t.pid, t.exit_code.unwrap_or(255), &t.finished_at, t.oom_killed).await?;
            }
            Some(_) => {}
            None => {
                warn!(container_id = %row.id, "berth-core has no task for a running container; marking it exited");
                exited(containers, &row.id, 0, 255, "", false).await?;
            }
        }
    }
    Ok(())
}
