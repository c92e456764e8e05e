//! Health checks (Docker's HEALTHCHECK), run by the core so that they go on
//! while the engine is down.
//!
//! Each check is `<runtime> exec <id> <test…>` as a child of the core, with
//! a timeout. The rules are Docker's: a success makes the task healthy and
//! resets the failing streak; a failure adds to the streak, and `retries`
//! failures in a row make it unhealthy; failures during the start period
//! do not count while it is still starting. A status change is an event.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_proto::{Event, EventKind, HealthCheck, HealthResult, HealthState};
use tokio::io::AsyncReadExt;
use tracing::{debug, info};

use crate::tasks::{now, Tasks};

/// Output kept per result, as Docker keeps it.
const MAX_OUTPUT: usize = 4096;
/// Results kept in the log.
const MAX_LOG: usize = 5;

/// Applies one result to the state; returns whether the status changed.
pub fn record(
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
    /// Starts the check loop of a running task (process `pid`) that has a
    /// health check; the loop ends when that process is gone.
    pub(crate) fn begin_health_checks(
        &self,
        ns: &str,
        id: &str,
        pid: u32,
        check: Option<HealthCheck>,
    ) {
        let Some(check) = check else { return };
        let (ns, id) = (ns.to_string(), id.to_string());
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            this.set_health(&ns, &id, pid, |h| {
                if h.status.is_empty() {
                    h.status = "starting".into();
                }
                false
            });
            loop {
                tokio::time::sleep(Duration::from_millis(check.interval_ms.max(10))).await;
                // Stop when the task stopped, was restarted (new pid) or deleted.
                let Some((runtime, root, dir)) = this.runtime_of_running(&ns, &id, pid) else {
                    return;
                };
                let result = run_check(&runtime, &root, &dir, &id, &check).await;
                debug!(%id, exit_code = result.exit_code, "health check");
                let in_start = started.elapsed() < Duration::from_millis(check.start_period_ms);
                let changed =
                    this.set_health(&ns, &id, pid, |h| record(h, &check, result, in_start));
                if let Some(status) = changed {
                    info!(%id, %status, "health status changed");
                    this.events().append_event(Event {
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
                }
            }
        });
    }
}

/// Runs the check once with its timeout.
async fn run_check(
    runtime: &std::path::Path,
    root: &std::path::Path,
    dir: &std::path::Path,
    id: &str,
    check: &HealthCheck,
) -> HealthResult {
    let start = now();
    let mut cmd = tokio::process::Command::new(runtime);
    cmd.arg("--root")
        .arg(root)
        .arg("--log")
        .arg(dir.join("health-runtime.log"))
        .arg("exec")
        .arg(id)
        .args(&check.test);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let outcome = async {
        let mut child = cmd.spawn()?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut so, mut se) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let (_, _, status) = tokio::join!(
            so.read_to_end(&mut out),
            se.read_to_end(&mut err),
            child.wait()
        );
        out.extend_from_slice(&err);
        Ok::<_, std::io::Error>((status?.code().unwrap_or(1), out))
    };
    let (exit_code, output) = match tokio::time::timeout(
        Duration::from_millis(check.timeout_ms.max(10)),
        outcome,
    )
    .await
    {
        Ok(Ok((code, out))) => (
            code,
            String::from_utf8_lossy(&out[..out.len().min(MAX_OUTPUT)]).into_owned(),
        ),
        Ok(Err(e)) => (-1, format!("cannot run the health check: {e}")),
        Err(_) => (
            -1,
            format!("Health check exceeded timeout ({}ms)", check.timeout_ms),
        ),
    };
    HealthResult {
        start,
        end: now(),
        exit_code,
        output,
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
