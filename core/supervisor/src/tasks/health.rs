//! Health checks (Docker's HEALTHCHECK), run by the core so that they go on
//! while the engine is down.
//!
//! Each check is `<runtime> exec <id> <test…>`, run by the core with a
//! timeout. The rules are Docker's: a success makes the task healthy and
//! resets the failing streak; a failure adds to the streak, and `retries`
//! failures in a row make it unhealthy; failures during the start period
//! do not count while it is still starting. A status change is an event.

use std::time::{Duration, Instant};

use berth_proto::{Event, EventKind, HealthCheck, HealthResult, HealthState, TaskStatus};
use tracing::{debug, info};

use super::record::TaskRecord;
use super::{now, Tasks};

/// The runtime's log for health checks, apart from the task's own so that
/// a check's errors never pass for a failed kill or delete.
const HEALTH_LOG: &str = "health-runtime.log";

/// Output kept per result, as Docker keeps it.
const MAX_OUTPUT: usize = 4096;
/// Results kept in the log.
const MAX_LOG: usize = 5;

/// Applies one result to the state; returns whether the status changed.
pub(super) fn record(
    state: &mut HealthState,
    check: &HealthCheck,
    result: HealthResult,
    in_start_period: bool,
) -> bool {
    let before = state.status.clone();
    if result.exit_code == 0 {
        state.status = "healthy".into();
        state.failing_streak = 0;
    } else if !(in_start_period && state.status == "starting") {
        state.failing_streak += 1;
        if state.failing_streak >= check.retries.max(1) {
            state.status = "unhealthy".into();
        }
    }
    state.log.push(result);
    if state.log.len() > MAX_LOG {
        state.log.remove(0);
    }
    state.status != before
}

impl Tasks {
    /// Starts the check loop of a running task that has a health check; the
    /// loop ends when the process it was started for is gone.
    pub(super) fn begin_health_checks(&self, rec: &TaskRecord) {
        let Some(check) = rec.health_check.clone() else {
            return;
        };
        let (ns, id, pid) = (rec.namespace.clone(), rec.id.clone(), rec.pid);
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let starting = async {
                this.set_health(&ns, &id, pid, |h| {
                    if h.status.is_empty() {
                        h.status = "starting".into();
                    }
                    false
                })
            };
            if this.in_background(starting).await.is_none() {
                return; // another core took the tasks over
            }
            loop {
                tokio::time::sleep(Duration::from_millis(check.interval_ms.max(10))).await;
                // Stop when the task stopped, was restarted (new pid) or deleted.
                let Some(rec) = this.running(&ns, &id, pid) else {
                    return;
                };
                let result = this.run_check(&rec, &check).await;
                debug!(%id, exit_code = result.exit_code, "health check");
                let in_start = started.elapsed() < Duration::from_millis(check.start_period_ms);
                let recorded = async {
                    let changed =
                        this.set_health(&ns, &id, pid, |h| record(h, &check, result, in_start));
                    let Some(status) = changed else { return };
                    info!(%id, %status, "health status changed");
                    this.inner.events.append_event(Event {
                        seq: 0,
                        epoch: String::new(),
                        namespace: ns.clone(),
                        id: id.clone(),
                        kind: EventKind::Health,
                        pid,
                        exit_code: None,
                        oom_killed: false,
                        time: now(),
                        restarting: false,
                        restart_count: 0,
                        health_status: status,
                    });
                };
                if this.in_background(recorded).await.is_none() {
                    return;
                }
            }
        });
    }

    /// The record of a task whose process `pid` still runs; `None` once it
    /// stopped or was replaced.
    fn running(&self, ns: &str, id: &str, pid: u32) -> Option<TaskRecord> {
        let rec = self.get(ns, id).ok()?;
        (rec.status == TaskStatus::Running && rec.pid == pid).then_some(rec)
    }

    /// Updates the health of process `pid` of a task; returns the new
    /// status when `update` says it changed.
    fn set_health(
        &self,
        ns: &str,
        id: &str,
        pid: u32,
        update: impl FnOnce(&mut HealthState) -> bool,
    ) -> Option<String> {
        // Changed and stored under the map's lock: an exit recorded
        // meanwhile must not be overwritten by a stale "running" record.
        let (changed, status) = self
            .update(ns, id, |rec| {
                if rec.pid != pid || rec.status != TaskStatus::Running {
                    return None;
                }
                let health = rec.health.get_or_insert_with(Default::default);
                Some((update(health), health.status.clone()))
            })
            .and_then(|(_, out)| out)?;
        changed.then_some(status)
    }

    /// Runs the check once (`<runtime> exec`) with its timeout.
    async fn run_check(&self, rec: &TaskRecord, check: &HealthCheck) -> HealthResult {
        let start = now();
        let timeout = Duration::from_millis(check.timeout_ms.max(10));
        let (target, argv) = (rec.id.clone(), check.test.clone());
        let rt = self.runtime(rec, HEALTH_LOG);
        let outcome = tokio::task::spawn_blocking(move || rt.exec(&target, &argv, timeout)).await;
        let (exit_code, output) = match outcome {
            Ok(Ok(out)) => (
                out.exit_code,
                String::from_utf8_lossy(&out.output[..out.output.len().min(MAX_OUTPUT)])
                    .into_owned(),
            ),
            Ok(Err(berth_runtime::Error::TimedOut(_))) => (
                -1,
                format!("Health check exceeded timeout ({}ms)", check.timeout_ms),
            ),
            Ok(Err(e)) => (-1, format!("cannot run the health check: {e}")),
            Err(e) => (-1, format!("cannot run the health check: {e}")),
        };
        HealthResult {
            start,
            end: now(),
            exit_code,
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(retries: u32) -> HealthCheck {
        HealthCheck {
            test: vec!["true".into()],
            interval_ms: 10,
            timeout_ms: 10,
            retries,
            start_period_ms: 0,
        }
    }

    fn result(code: i32) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn docker_rules() {
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        assert!(!record(&mut s, &check(2), result(1), false));
        assert_eq!((s.status.as_str(), s.failing_streak), ("starting", 1));
        assert!(record(&mut s, &check(2), result(1), false));
        assert_eq!(s.status, "unhealthy");
        assert!(record(&mut s, &check(2), result(0), false));
        assert_eq!((s.status.as_str(), s.failing_streak), ("healthy", 0));
        for _ in 0..10 {
            record(&mut s, &check(100), result(1), false);
        }
        assert_eq!(s.log.len(), MAX_LOG);
    }

    #[test]
    fn start_period_failures_do_not_count() {
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        record(&mut s, &check(1), result(1), true);
        assert_eq!((s.status.as_str(), s.failing_streak), ("starting", 0));
    }
}
