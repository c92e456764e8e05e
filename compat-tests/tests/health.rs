//! HEALTHCHECK, carried out by berth-core (so also while berthd is down).

use std::time::{Duration, Instant};

use berth_compat_tests::Berth;

#[test]
fn health_checks_go_on_while_berthd_is_down() {
    let mut b = Berth::start();
    b.load_busybox();
    // Healthy once /tmp/ready exists, which the container creates on SIGUSR1.
    let id = b
        .docker(&[
            "run",
            "-d",
            "--name",
            "doc",
            "--health-cmd",
            "test -f /tmp/ready",
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
            "busybox",
            "sh",
            "-c",
            "trap 'touch /tmp/ready' USR1; while true; do sleep 0.1; done",
        ])
        .ok()
        .out()
        .to_string();
    b.inspect_until("doc", "{{.State.Health.Status}}", "unhealthy");
    assert!(b
        .docker(&["ps", "--format", "{{.Status}}"])
        .ok()
        .out()
        .ends_with("(unhealthy)"));
    let pid: i32 = b
        .docker(&["inspect", "-f", "{{.State.Pid}}", "doc"])
        .ok()
        .out()
        .parse()
        .unwrap();

    b.kill_berthd();
    berth_compat_tests::unsafe_kill(pid, libc::SIGUSR1);
    // The core's own record of the task turns healthy with nobody running berthd.
    let record = b
        .exec_root()
        .join("core/tasks/berth")
        .join(&id)
        .join("task.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap_or_default();
        if v["health"]["status"] == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the core did not see the container turn healthy: {v}"
        );
    }
    b.spawn_berthd();
    b.inspect_until(
        "doc",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        "healthy 0",
    );
    let log: serde_json::Value = serde_json::from_str(
        &b.docker(&["inspect", "-f", "{{json .State.Health.Log}}", "doc"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(log.as_array().unwrap().last().unwrap()["ExitCode"], 0);
    assert!(b
        .docker(&["ps", "--format", "{{.Status}}"])
        .ok()
        .out()
        .ends_with("(healthy)"));
    b.finish();
}

#[test]
fn a_failing_check_reports_output_and_exit_code() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo nope; exit 3",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    b.inspect_until("sick", "{{.State.Health.Status}}", "unhealthy");
    let log: serde_json::Value = serde_json::from_str(
        &b.docker(&["inspect", "-f", "{{json .State.Health.Log}}", "sick"])
            .ok()
            .stdout,
    )
    .unwrap();
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 3);
    assert_eq!(last["Output"], "nope\n");
    // --no-healthcheck / NONE: no health at all.
    b.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Health}}", "plain"])
            .ok()
            .out(),
        "<nil>"
    );
    b.finish();
}
