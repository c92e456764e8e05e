//! Restart policies, carried out by berth-core (so also while berthd is down).

use berth_compat_tests::{wait_exit, Berth};

#[test]
fn on_failure_restarts_up_to_the_limit() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ])
    .ok();
    b.inspect_until(
        "flaky",
        "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
        "exited 2 3",
    );
    // Three runs: the first and two restarts, all in one log.
    assert_eq!(b.docker(&["logs", "flaky"]).ok().stdout, "run\nrun\nrun\n");
    // A success is not a failure: no restart.
    b.docker(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(b.docker(&["wait", "fine"]).ok().out(), "0");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.RestartCount}}", "fine"])
            .ok()
            .out(),
        "0"
    );
    b.finish();
}

#[test]
fn always_restarts_while_berthd_is_down_and_stop_ends_it() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let first = b.pid_of("phoenix");
    b.kill_berthd();
    berth_compat_tests::unsafe_kill(first, libc::SIGKILL);
    assert!(wait_exit(first));
    b.spawn_berthd();
    b.inspect_until(
        "phoenix",
        "{{.State.Status}} {{.RestartCount}}",
        "running 1",
    );
    assert_ne!(b.pid_of("phoenix"), first);
    // A user's stop is final.
    b.docker(&["stop", "-t", "0", "phoenix"]).ok();
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "phoenix"
        ])
        .ok()
        .out(),
        "exited 1"
    );
    b.docker(&["start", "phoenix"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", "phoenix"])
            .ok()
            .out(),
        "running"
    );
    b.finish();
}

#[test]
fn always_containers_come_back_after_a_reboot_like_restart() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "stopped-one",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    b.docker(&["stop", "-t", "0", "stopped-one"]).ok();
    b.docker(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"])
        .ok();
    // Everything of the old boot goes: daemons, shims, containers, mounts,
    // and the exec-root, which lives on a tmpfs on a real machine.
    b.kill_berthd();
    b.power_off();
    b.spawn_berthd();
    b.inspect_until("survivor", "{{.State.Status}}", "running");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", "stopped-one"])
            .ok()
            .out(),
        "exited"
    );
    // berthd reconciles one container after the other (survivor's restart
    // and each network's teardown take their time): wait for plain's turn.
    b.inspect_until("plain", "{{.State.Status}}", "exited");
    b.finish();
}

#[test]
fn restart_policy_and_autoremove_conflict() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.api("POST", "/containers/create", Some(br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = b.api("POST", "/containers/create", Some(br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}}"#));
    assert_eq!(r.status, 400, "{}", r.text());
    b.finish();
}
