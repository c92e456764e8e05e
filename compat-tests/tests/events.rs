//! `docker events`: lifecycle, restarts by the core and health changes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_compat_tests::Berth;

fn now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn actions(b: &Berth, since: &str, filter: &str) -> Vec<String> {
    let until = now();
    let r = b
        .docker(&[
            "events",
            "--since",
            since,
            "--until",
            &until,
            "--filter",
            filter,
            "--format",
            "{{.Action}}",
        ])
        .ok();
    r.stdout.lines().map(str::to_string).collect()
}

#[test]
fn lifecycle_restarts_and_health_are_events() {
    let b = Berth::start();
    b.load_busybox();
    let t0 = now();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "twice",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ])
    .ok();
    b.inspect_until("twice", "{{.State.Status}} {{.RestartCount}}", "exited 1");
    b.docker(&["rm", "twice"]).ok();
    assert_eq!(
        actions(&b, &t0, "container=twice"),
        vec!["create", "start", "die", "start", "die", "destroy"]
    );

    b.docker(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    // `ps` shows the health berthd recorded from the core's event, which is
    // when it emitted its own; inspect asks the core and may be earlier.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b
        .docker(&["ps", "--filter", "name=checked", "--format", "{{.Status}}"])
        .ok()
        .out()
        .ends_with("(healthy)")
    {
        assert!(Instant::now() < deadline, "checked never became healthy");
    }
    b.docker(&["kill", "checked"]).ok();
    let got = actions(&b, &t0, "container=checked");
    assert_eq!(
        got,
        vec!["create", "start", "health_status: healthy", "kill", "die"]
    );
    // Filters by event and type.
    let dies = actions(&b, &t0, "event=die");
    assert_eq!(dies.len(), 3);
    let r = b
        .docker(&[
            "events",
            "--since",
            &t0,
            "--until",
            &now(),
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.exitCode}}",
        ])
        .ok();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), vec!["2", "2", "137"]);
    b.finish();
}

#[test]
fn events_are_replayed_across_engine_restarts() {
    let mut b = Berth::start();
    b.load_busybox();
    let t0 = now();
    b.docker(&["run", "--name", "before", "busybox", "true"])
        .ok();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "dies-while-down",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = b.pid_of("dies-while-down");
    b.kill_berthd();
    // The process dies while no engine runs; the core records it.
    berth_compat_tests::unsafe_kill(pid, libc::SIGKILL);
    b.spawn_berthd();
    b.inspect_until("dies-while-down", "{{.State.Status}}", "exited");
    assert_eq!(
        actions(&b, &t0, "container=before"),
        vec!["create", "attach", "start", "die"]
    );
    assert_eq!(
        actions(&b, &t0, "container=dies-while-down"),
        vec!["create", "start", "die"]
    );
    b.docker(&["rm", "before", "dies-while-down"]).ok();
    b.finish();
}

/// `docker info` counts the clients following the events, as dockerd's
/// NEventsListener does.
#[test]
fn info_counts_the_event_listeners() {
    let b = Berth::start();
    let listeners = || {
        b.docker(&["info", "--format", "{{.NEventsListener}}"])
            .ok()
            .out()
            .to_string()
    };
    assert_eq!(listeners(), "0");
    let mut followers: Vec<_> = (0..2)
        .map(|_| {
            b.docker_cmd(&["events"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("docker events")
        })
        .collect();
    // Each follower subscribes when its request arrives; wait for both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while listeners() != "2" {
        assert!(
            std::time::Instant::now() < deadline,
            "NEventsListener stayed at {}",
            listeners()
        );
    }
    for f in &mut followers {
        f.kill().unwrap();
        f.wait().unwrap();
    }
    b.finish();
}
