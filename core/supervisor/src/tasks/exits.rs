//! A task's process ends: its exit is recorded (from the shim's exit file,
//! or as 255 when the shim died without one), and its restart policy may
//! start it again after Docker's back-off.

use std::time::Duration;

use berth_proto::shim::{self as contract, Request};
use berth_proto::TaskStatus;
use tracing::{info, warn};

use super::{blocking, now, unix_now, Tasks, RUNTIME_LOG};
use crate::Error;

/// Docker's restart back-off: 100 ms, doubling with each restart up to a
/// minute; back to 100 ms once a run lasted 10 s or more.
pub(super) fn restart_delay(restart_count: u32, ran_for_secs: i64) -> Duration {
    let ms = if ran_for_secs >= 10 {
        100
    } else {
        (100u64 << restart_count.min(10)).min(60_000)
    };
    Duration::from_millis(ms)
}

impl Tasks {
    /// Waits (bounded) until the shim has exited.
    pub(super) async fn shim_gone(&self, shim_pid: i32, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.inner.shims.exited(shim_pid))
            .await
            .is_ok()
    }

    /// Follows a shim until it exits, then records the container's exit.
    pub(super) fn watch(&self, ns: String, id: String, shim_pid: i32) {
        let this = self.clone();
        let exited = self.inner.shims.exited(shim_pid);
        tokio::spawn(async move {
            exited.await;
            this.in_background(this.on_shim_exit(&ns, &id)).await;
        });
    }

    pub(super) async fn on_shim_exit(&self, ns: &str, id: &str) {
        let Ok(rec) = self.get(ns, id) else { return };
        if rec.status == TaskStatus::Stopped {
            return; // recorded already (delete and the watcher may both call this)
        }
        let dir = self.dir(ns, id);
        let (code, finished, oom) = match contract::Exit::read(&dir) {
            Some(exit) => (exit.exit_code, exit.finished_at, exit.oom_killed),
            None => {
                // The shim died without recording an exit (it was killed): the
                // container has lost its monitor, so stop it rather than leave
                // it running unobserved, as containerd does with a dead shim.
                warn!(%id, "shim exited without an exit file; stopping the container");
                let target = id.to_string();
                let _ = blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
                    let _ = rt.kill(&target, 9, true);
                    rt.delete(&target)
                })
                .await;
                (255, now(), false)
            }
        };
        let events = &self.inner.events;
        let recorded = self.update(ns, id, |r| {
            if r.status == TaskStatus::Stopped {
                return false; // recorded by another caller meanwhile
            }
            r.status = TaskStatus::Stopped;
            r.paused = false;
            r.exit_code = Some(code);
            r.oom_killed = oom;
            r.finished_at = finished.clone();
            r.restarting = r
                .restart
                .is_some_and(|p| p.should_restart(code, r.restart_count, r.stopped_by_user));
            events.append_event(r.exit_event());
            true
        });
        let Some((rec, true)) = recorded else { return };
        info!(%id, exit_code = code, restarting = rec.restarting, "task exited");
        if rec.restarting {
            let delay = restart_delay(rec.restart_count, unix_now() - rec.started_unix);
            let this = self.clone();
            let (ns, id) = (ns.to_string(), id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                this.in_background(this.restart(&ns, &id)).await;
            });
        }
    }

    /// Starts a task's process again after it exited, per its restart policy.
    pub(super) async fn restart(&self, ns: &str, id: &str) {
        let Ok(mut rec) = self.get(ns, id) else {
            return;
        };
        if !rec.restarting || rec.stopped_by_user {
            return;
        }
        let dir = self.dir(ns, id);
        let result = async {
            let target = id.to_string();
            let _ = blocking(self.runtime(&rec, RUNTIME_LOG), move |rt| {
                rt.delete(&target)
            })
            .await;
            self.spawn_shim(&dir, &mut rec).await?;
            self.inner
                .shims
                .control(&rec.socket_base, Request::Start)
                .await
        }
        .await;
        // Record the outcome, unless the task was stopped or deleted while we
        // restarted it (then the new process goes too).
        let events = &self.inner.events;
        let new = rec.clone();
        let ok = result.is_ok();
        let recorded = self.update(ns, id, |r| {
            if !r.restarting || r.stopped_by_user {
                return false;
            }
            r.restarting = false;
            if ok {
                r.pid = new.pid;
                r.shim_pid = new.shim_pid;
                r.status = TaskStatus::Running;
                r.restart_count += 1;
                r.started_at = now();
                r.started_unix = unix_now();
                r.health = None;
                events.append_event(r.start_event());
            } else {
                events.append_event(r.exit_event());
            }
            true
        });
        match (recorded, result) {
            (Some((rec, true)), Ok(())) => {
                info!(%id, pid = rec.pid, restart_count = rec.restart_count, "task restarted");
                self.watch(ns.to_string(), id.to_string(), rec.shim_pid);
                self.begin_health_checks(&rec);
            }
            (Some((_, true)), Err(e)) => {
                warn!(%id, error = %e, "restarting task failed; giving up")
            }
            (_, Ok(())) => {
                let shims = &self.inner.shims;
                let _ = shims.control(&rec.socket_base, Request::KILL_ALL).await;
            }
            (_, Err::<(), Error>(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_a_minute_and_resets_after_a_long_run() {
        let ms = |count, ran| restart_delay(count, ran).as_millis();
        assert_eq!(ms(0, 0), 100);
        assert_eq!(ms(1, 0), 200);
        assert_eq!(ms(3, 9), 800);
        assert_eq!(ms(9, 0), 51_200);
        assert_eq!(ms(10, 0), 60_000);
        assert_eq!(ms(40, 0), 60_000);
        assert_eq!(ms(7, 10), 100);
    }
}
