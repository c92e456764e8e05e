//! Following berth-core: its event stream while connected, a reconciliation
//! against its task list at every (re)connect, and starting a new core when
//! none answers. The cursor into the core's event log is kept in the
//! database, so an exit that happened while this engine was down (or while
//! the core was restarting) is applied exactly when we come back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};

use berth_proto::{Event, EventKind, RestartPolicy, TaskStatus};
use tracing::{debug, info, warn};

use crate::containers::Containers;
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
    // The same, while the core answers but its event stream fails at once.
    let mut refused = Duration::from_millis(50);
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
        containers.learn_core_default(&handshake.default_runtime);
        backoff = Duration::from_millis(50);
        crate::metrics::METRICS.core_connected();
        match follow(&containers, &handshake.event_epoch).await {
            Ok(()) => {}
            Err(Stopped::NotFollowing(e)) => {
                // A core that answers the handshake but refuses the stream
                // (say, a route it lacks) must not be asked thousands of
                // times a second.
                warn!(error = %e, "cannot follow berth-core events");
                tokio::time::sleep(refused).await;
                refused = (refused * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(Stopped::Broke(e)) => warn!(error = %e, "following berth-core events"),
        }
        refused = Duration::from_millis(50);
        // The stream ended: the core exited or restarted. Retry at once;
        // the backoff applies only while nothing answers.
    }
}

/// Why [`follow`] returned with an error.
enum Stopped {
    /// Before the stream ran: the cursor, the subscription or the
    /// reconciliation failed (asked again after a backoff).
    NotFollowing(crate::Error),
    /// The stream, or applying its events, failed (asked again at once).
    Broke(crate::Error),
}

async fn follow(containers: &Arc<Containers>, epoch: &str) -> std::result::Result<(), Stopped> {
    let (stream, cursor) = subscribe(containers, epoch)
        .await
        .map_err(Stopped::NotFollowing)?;
    apply_stream(containers, stream, cursor)
        .await
        .map_err(Stopped::Broke)
}

/// The core's event stream from the saved cursor, the containers
/// reconciled with its tasks.
async fn subscribe(
    containers: &Arc<Containers>,
    epoch: &str,
) -> Result<(crate::core_client::EventStream, u64)> {
    let store = &containers.store;
    let cursor: u64 = match store.meta(EPOCH_KEY).await?.as_deref() {
        Some(e) if e == epoch => store
            .meta(CURSOR_KEY)
            .await?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => {
            // A new event log (the exec-root was wiped): start from its beginning.
            store.set_meta(EPOCH_KEY, epoch).await?;
            0
        }
    };
    // Subscribe first, then reconcile: whatever happens in between arrives
    // as an event and is applied idempotently.
    let stream = containers.core.events(cursor).await?;
    reconcile(containers).await?;
    Ok((stream, cursor))
}

async fn apply_stream(
    containers: &Arc<Containers>,
    mut stream: crate::core_client::EventStream,
    cursor: u64,
) -> Result<()> {
    let store = &containers.store;
    let mut applying = Applying::new(cursor);
    let failed = loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(ev)) if ev.seq <= applying.marks.dispatched => {}
                Some(Ok(ev)) if ev.namespace == NAMESPACE => applying.dispatch(containers, ev),
                Some(Ok(ev)) => applying.skip(ev.seq),
                Some(Err(e)) => break Some(e),
                None => break None,
            },
            Some(done) = applying.tasks.join_next(), if !applying.tasks.is_empty() => {
                if let Err(e) = applying.completed(done) {
                    break Some(e);
                }
            }
        }
        applying.save(store).await?;
    };
    // What was started is finished before the stream is given up, so that
    // the saved cursor covers every event applied.
    while let Some(done) = applying.tasks.join_next().await {
        if let Err(e) = applying.completed(done) {
            warn!(error = %e, "applying a berth-core event");
        }
    }
    applying.save(store).await?;
    failed.map_or(Ok(()), Err)
}

/// Events being applied. Exits of different containers are applied at
/// once (twenty containers stopped together by `compose down` should not
/// wait on each other's network teardown); one container's events stay in
/// order, each waiting for the previous one. The saved cursor is the
/// highest sequence number below which every event is applied, so a
/// berthd that dies meanwhile applies the rest again (idempotently).
struct Applying {
    tasks: tokio::task::JoinSet<(u64, String, Result<()>)>,
    marks: Marks,
    /// The cursor in the database.
    saved: u64,
    /// Per task id, its last event in flight and the signal of its end,
    /// which the task's next event waits for.
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
    /// Bounds the events applied at once (each may run netavark).
    permits: Arc<Semaphore>,
}

/// Which events are dispatched and which are still being applied.
#[derive(Debug)]
struct Marks {
    /// Dispatched and not yet applied (a failed one stays).
    in_flight: BTreeSet<u64>,
    /// The highest sequence number dispatched (or skipped).
    dispatched: u64,
}

impl Marks {
    fn start(&mut self, seq: u64) {
        self.in_flight.insert(seq);
        self.dispatched = seq;
    }

    /// The highest sequence number up to which every event is applied.
    fn cursor(&self) -> u64 {
        match self.in_flight.first() {
            Some(first) => first - 1,
            None => self.dispatched,
        }
    }
}

impl Applying {
    fn new(cursor: u64) -> Applying {
        Applying {
            tasks: tokio::task::JoinSet::new(),
            marks: Marks {
                in_flight: BTreeSet::new(),
                dispatched: cursor,
            },
            saved: cursor,
            tails: HashMap::new(),
            permits: Arc::new(Semaphore::new(16)),
        }
    }

    fn dispatch(&mut self, containers: &Arc<Containers>, ev: Event) {
        let (done, end) = oneshot::channel();
        let previous = self.tails.insert(ev.id.clone(), (ev.seq, end));
        self.marks.start(ev.seq);
        let containers = Arc::clone(containers);
        let permits = Arc::clone(&self.permits);
        self.tasks.spawn(async move {
            if let Some((_, previous)) = previous {
                let _ = previous.await;
            }
            let applied = match permits.acquire_owned().await {
                Ok(_permit) => apply(&containers, &ev).await,
                Err(_) => Ok(()),
            };
            let _ = done.send(());
            (ev.seq, ev.id, applied)
        });
    }

    /// An event of another namespace: nothing to apply.
    fn skip(&mut self, seq: u64) {
        self.marks.dispatched = seq;
    }

    fn completed(
        &mut self,
        done: std::result::Result<(u64, String, Result<()>), tokio::task::JoinError>,
    ) -> Result<()> {
        let (seq, id, applied) = done.map_err(crate::Error::internal)?;
        if self.tails.get(&id).is_some_and(|(last, _)| *last == seq) {
            self.tails.remove(&id);
        }
        // A failed event stays in flight: the cursor stops before it.
        applied?;
        self.marks.in_flight.remove(&seq);
        Ok(())
    }

    /// Saves the cursor if it moved.
    async fn save(&mut self, store: &crate::store::Store) -> Result<()> {
        let cursor = self.marks.cursor();
        if cursor > self.saved {
            store.set_meta(CURSOR_KEY, &cursor.to_string()).await?;
            self.saved = cursor;
        }
        Ok(())
    }
}

async fn apply(containers: &Containers, ev: &Event) -> Result<()> {
    if containers.execs.is_exec(&ev.id) {
        if ev.kind == EventKind::Exit {
            containers
                .exec_exited(&ev.id, ev.exit_code.unwrap_or(255))
                .await;
        }
        return Ok(());
    }
    match ev.kind {
        EventKind::Exit => {
            debug!(container_id = %ev.id, seq = ev.seq, exit_code = ?ev.exit_code, restarting = ev.restarting, "exit event");
            exited(
                containers,
                &ev.id,
                ev.pid,
                ev.exit_code.unwrap_or(255),
                &ev.time,
                ev.oom_killed,
                ev.restarting,
            )
            .await
        }
        // Starts the engine asked for are recorded by `start`; these are the
        // core's restarts.
        EventKind::Start if ev.restart_count > 0 => {
            restarted(containers, &ev.id, ev.pid, &ev.time, ev.restart_count).await
        }
        EventKind::Health => health_changed(containers, &ev.id, ev.pid, &ev.health_status).await,
        _ => Ok(()),
    }
}

/// Stores a new health status of the running process `pid`.
async fn health_changed(containers: &Containers, id: &str, pid: u32, status: &str) -> Result<()> {
    let lock = containers.lock_of(id);
    let _guard = lock.lock().await;
    let Ok(mut c) = containers.lookup(id).await else {
        return Ok(());
    };
    if !c.is_running() || c.state.pid != pid {
        return Ok(());
    }
    info!(container_id = %id, status, "health status");
    c.state.health.get_or_insert_with(Default::default).status = status.to_string();
    containers.save_state(&c).await?;
    containers.event(&c, &format!("health_status: {status}"), &[]);
    Ok(())
}

/// Records a restart by the core: running again, with a new pid.
async fn restarted(
    containers: &Containers,
    id: &str,
    pid: u32,
    time: &str,
    count: u32,
) -> Result<()> {
    let lock = containers.lock_of(id);
    let _guard = lock.lock().await;
    let Ok(mut c) = containers.lookup(id).await else {
        return Ok(());
    };
    if c.id != id || c.state.restart_count >= count || c.state.manually_stopped {
        return Ok(());
    }
    c.state.running = true;
    c.state.restarting = false;
    c.state.status = "running".into();
    c.state.pid = pid;
    c.state.started_at = time.to_string();
    c.state.restart_count = count;
    if c.state.health.is_some() {
        c.state.health = Some(berth_proto::HealthState {
            status: "starting".into(),
            ..Default::default()
        });
    }
    containers.save_state(&c).await?;
    info!(container_id = %id, pid, restart_count = count, "container restarted by its policy");
    containers.event(&c, "start", &[]);
    containers.notify(crate::containers::Change::Started(id.to_string()));
    Ok(())
}

/// Applies an exit if the container is still recorded as running that pid
/// (or as waiting for a restart, which this exit ends).
async fn exited(
    containers: &Containers,
    id: &str,
    pid: u32,
    code: i32,
    time: &str,
    oom: bool,
    restarting: bool,
) -> Result<()> {
    let lock = containers.lock_of(id);
    let guard = lock.lock().await;
    let Ok(mut c) = containers.lookup(id).await else {
        // Gone already: during a takeover's overlap the other berthd may
        // have applied this exit and then removed the container (`--rm`,
        // `rm -f`). Waiters here hear how it ended.
        containers.notify(crate::containers::Change::Removed {
            id: id.to_string(),
            exit_code: Some(code as i64),
        });
        return Ok(());
    };
    let current = c.is_running() && (pid == 0 || c.state.pid == 0 || c.state.pid == pid);
    if c.id != id || !(current || c.state.restarting) {
        if !c.is_running() {
            // Applied already, perhaps by the other berthd of a takeover
            // (both follow the core while the old one drains): our own
            // waiters (`docker wait`, attached runs) still need to hear.
            // They read the row again, so hearing twice does no harm.
            containers.notify(crate::containers::Change::Exited(id.to_string()));
        }
        return Ok(());
    }
    containers
        .apply_exit(&mut c, code, time, oom, restarting)
        .await?;
    if c.auto_remove() && !restarting {
        if let Err(e) = containers.remove_locked(&c, true).await {
            warn!(container_id = %id, error = %e, "auto-removing container");
        }
    }
    drop(guard);
    Ok(())
}

/// Compares running containers with the core's tasks: exits the event log
/// no longer holds, and tasks that vanished (a wiped exec-root) are settled.
async fn reconcile(containers: &Containers) -> Result<()> {
    // See `remove_leftovers`.
    let alone = !containers
        .another_berthd
        .load(std::sync::atomic::Ordering::SeqCst);
    if alone {
        remove_orphaned_tasks(containers).await?;
    }
    let tasks = containers.core.tasks().await?;
    let rows = containers.store.containers().await?;
    for row in rows {
        let state = &row.state;
        if !state.running && !state.restarting {
            continue;
        }
        match tasks.iter().find(|t| t.id == row.id) {
            Some(t) if t.status == TaskStatus::Stopped => {
                exited(
                    containers,
                    &row.id,
                    t.pid,
                    t.exit_code.unwrap_or(255),
                    &t.finished_at,
                    t.oom_killed,
                    t.restarting,
                )
                .await?;
            }
            Some(t) if t.restart_count > state.restart_count => {
                restarted(containers, &row.id, t.pid, &t.started_at, t.restart_count).await?;
            }
            Some(_) => {}
            None => {
                // The core has forgotten the task: its state directory was
                // wiped, as by a reboot. Like Docker at boot, containers whose
                // policy says so are started again.
                warn!(container_id = %row.id, "berth-core has no task for a running container; marking it exited");
                exited(containers, &row.id, 0, 255, "", false, false).await?;
                let c = crate::containers::record::Container::from_row(row.clone());
                let comes_back = matches!(c.restart_policy(), Some(RestartPolicy::Always))
                    || (matches!(c.restart_policy(), Some(RestartPolicy::UnlessStopped))
                        && !state.manually_stopped);
                if comes_back {
                    info!(container_id = %row.id, "starting the container again per its restart policy");
                    if let Err(e) = containers.start(&row.id).await {
                        warn!(container_id = %row.id, error = %e, "restarting after the core lost its task");
                    }
                }
            }
        }
    }
    if alone {
        remove_stale_networks(containers).await?;
    }
    Ok(())
}

/// What a start or removal cut short left behind: tasks nobody needs and
/// networks of containers that are not running. Decided under each
/// container's lock, which a start in progress holds; so never while
/// another berthd serves the same containers (during a takeover), whose
/// starts hold locks of their own. The berthd that took over calls this
/// once the one it replaced has exited.
pub async fn remove_leftovers(containers: &Containers) -> Result<()> {
    remove_orphaned_tasks(containers).await?;
    remove_stale_networks(containers).await
}

async fn remove_orphaned_tasks(containers: &Containers) -> Result<()> {
    let tasks = containers.core.tasks().await?;
    let rows = containers.store.containers().await?;
    // Tasks nobody needs: stopped ones of containers that are gone (removed
    // while the core was away), and created-but-never-started ones left by a
    // start that berthd or the core did not finish.
    for t in &tasks {
        // Exec tasks: only those whose container is gone, once they ended.
        if let Some(parent) = &t.exec_in {
            if t.status == TaskStatus::Stopped && !rows.iter().any(|r| &r.id == parent) {
                let _ = containers.core.delete_task(&t.id).await;
            }
            continue;
        }
        let row = rows.iter().find(|r| r.id == t.id);
        let orphan = match t.status {
            TaskStatus::Stopped => row.is_none(),
            TaskStatus::Created => true,
            TaskStatus::Running => false,
        };
        if !orphan {
            continue;
        }
        let lock = containers.lock_of(&t.id);
        let _guard = lock.lock().await;
        // Re-read under the lock: a start in progress holds it.
        if let Ok(now) = containers.core.task(&t.id).await {
            if now.status == t.status {
                debug!(container_id = %t.id, status = ?t.status, "deleting an orphaned task");
                let _ = containers.core.delete_task(&t.id).await;
            }
        }
    }
    Ok(())
}

/// Networks of containers that are not running (a crashed berthd's, a
/// start cut short) go; running containers keep theirs.
async fn remove_stale_networks(containers: &Containers) -> Result<()> {
    for id in containers.networks.sandbox_ids().await? {
        let lock = containers.lock_of(&id);
        let _guard = lock.lock().await;
        let live = containers
            .lookup(&id)
            .await
            .map(|c| c.is_running() || c.state.restarting)
            .unwrap_or(false);
        if !live {
            info!(container_id = %id, "removing a network left by an earlier run");
            containers.networks.leave(&id).await;
        }
    }
    Ok(())
}

/// How often the changes of another berthd are looked for (see
/// [`announce_other_berthds_changes`]).
const OTHER_BERTHD_POLL: Duration = Duration::from_millis(20);

/// While another berthd serves the same containers (the overlap of a
/// takeover: the new one accepts, the old one finishes its requests), what
/// the other one changes reaches this one's waiters (`docker wait`,
/// attached runs, `--rm`) through the store only. Exits come from the core
/// to both, and [`exited`] notifies even when the other applied it first;
/// but a removal the other one makes (`docker rm`, `--rm`), and an exit
/// applied there between a waiter's look and our event, are seen only
/// here. So the store is watched while the overlap lasts (a query of one
/// counter when nothing changed), and what changed since `before` is
/// announced. `before` is taken by the caller before the other berthd can
/// serve (the new one: before it takes the socket; the old one: before it
/// hands the socket over): a change between it and this task's first look
/// would be missed.
pub async fn announce_other_berthds_changes(
    containers: Arc<Containers>,
    mut before: Arc<crate::containers::memory::Snapshot>,
) {
    use std::sync::atomic::Ordering;
    while containers.another_berthd.load(Ordering::SeqCst) {
        tokio::time::sleep(OTHER_BERTHD_POLL).await;
        let Ok(now) = containers.snapshot().await else {
            continue;
        };
        if Arc::ptr_eq(&now, &before) {
            continue;
        }
        let old: HashMap<&str, &crate::containers::record::Container> =
            before.containers().map(|c| (c.id.as_str(), c)).collect();
        for c in now.containers() {
            let exited_now = match old.get(c.id.as_str()) {
                Some(o) => c.state.finished_at != o.state.finished_at,
                None => c.state.finished_at != crate::containers::record::ZERO_TIME,
            };
            if exited_now && !c.is_running() {
                containers.notify(crate::containers::Change::Exited(c.id.clone()));
            }
        }
        let present: BTreeSet<&str> = now.containers().map(|c| c.id.as_str()).collect();
        for id in old.keys().filter(|id| !present.contains(*id)) {
            // How it ended is not in the store any more; a waiter that saw
            // it running hears the code from the core's exit event.
            let exit_code = old
                .get(id)
                .filter(|o| !o.is_running())
                .map(|o| o.state.exit_code as i64);
            containers.notify(crate::containers::Change::Removed {
                id: id.to_string(),
                exit_code,
            });
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::Marks;

    #[test]
    fn the_cursor_stops_below_the_first_event_not_applied() {
        let mut m = Marks {
            in_flight: Default::default(),
            dispatched: 10,
        };
        assert_eq!(m.cursor(), 10);
        for seq in 11..=14 {
            m.start(seq);
        }
        assert_eq!(m.cursor(), 10);
        // 12 and 14 finish first: 11 still holds the cursor back.
        m.in_flight.remove(&12);
        m.in_flight.remove(&14);
        assert_eq!(m.cursor(), 10);
        m.in_flight.remove(&11);
        assert_eq!(m.cursor(), 12);
        m.in_flight.remove(&13);
        assert_eq!(m.cursor(), 14);
        // An event of another namespace moves it on when nothing is open.
        m.dispatched = 15;
        assert_eq!(m.cursor(), 15);
    }
}
