//! `docker run` and the container lifecycle through the real docker CLI.

use berth_compat_tests::{comm, ppid, Berth};

#[test]
fn run_rm_prints_output_and_leaves_nothing() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.docker(&["run", "--rm", "busybox", "echo", "hello"]).ok();
    assert_eq!(r.stdout, "hello\n");
    assert_eq!(
        b.docker(&["ps", "-aq"]).ok().out(),
        "",
        "--rm left the container"
    );
    b.finish();
}

#[test]
fn exit_code_and_streams_reach_the_cli() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.docker(&[
        "run",
        "--name",
        "fails",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "to-out\n");
    assert_eq!(r.stderr, "to-err\n");
    let state = b
        .docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}",
            "fails",
        ])
        .ok();
    assert_eq!(state.out(), "exited 3 false");
    b.finish();
}

#[test]
fn attach_before_start_loses_no_output() {
    let b = Berth::start();
    b.load_busybox();
    let r = b
        .docker(&["run", "--rm", "busybox", "seq", "1", "20000"])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 20000);
    assert_eq!(lines[0], "1");
    assert_eq!(lines[19999], "20000");
    b.finish();
}

#[test]
fn stdin_is_piped_to_the_container() {
    let b = Berth::start();
    b.load_busybox();
    let r = b
        .docker_stdin(
            &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
            b"line one\nline two\n",
        )
        .ok();
    assert_eq!(r.stdout, "line one\nline two\ndone\n");
    b.finish();
}

#[test]
fn tty_gives_a_terminal_and_raw_output() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.docker_tty("run -it --rm busybox sh -c 'tty; echo ok'");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("/dev/pts/0"), "{r:?}");
    // With -t the stream is raw: the container's terminal turned \n into \r\n.
    let r = b
        .docker(&["run", "-t", "--rm", "busybox", "echo", "ok"])
        .ok();
    assert_eq!(r.stdout, "ok\r\n");
    let r = b.docker_tty("run -it --rm busybox sh -c 'exit 7'");
    assert_eq!(r.code, 7, "{r:?}");
    b.finish();
}

#[test]
fn run_options_reach_the_process() {
    let b = Berth::start();
    b.load_busybox();
    let r = b
        .docker(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "33",
            "--hostname",
            "boxy",
            "--entrypoint",
            "sh",
            "busybox",
            "-c",
            "echo $FOO; pwd; id -u; id -g; hostname; cat /etc/hostname",
        ])
        .ok();
    assert_eq!(r.stdout, "bar\n/tmp\n33\n33\nboxy\nboxy\n");
    let r = b
        .docker(&["run", "--rm", "-u", "www-data", "busybox", "id", "-un"])
        .ok();
    assert_eq!(r.out(), "www-data");
    let r = b.docker(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("unable to find user nosuchuser"), "{r:?}");
    b.finish();
}

#[test]
fn detached_container_is_a_child_of_its_shim_not_of_the_daemons() {
    let b = Berth::start();
    b.load_busybox();
    let id = b
        .docker(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64);
    let pid: u32 = b
        .docker(&["inspect", "-f", "{{.State.Pid}}", "sleeper"])
        .ok()
        .out()
        .parse()
        .unwrap();
    assert_eq!(comm(pid), "sleep");
    let shim = ppid(pid).unwrap();
    assert_eq!(comm(shim), "berth-shim");
    let core_pid = b
        .processes()
        .into_iter()
        .find(|(_, c)| c.contains("berth-core"))
        .map(|(p, _)| p)
        .expect("berth-core runs");
    let mut ancestor = shim;
    while ancestor > 1 {
        assert_ne!(
            ancestor,
            b.berthd_pid(),
            "berthd is an ancestor of the container"
        );
        assert_ne!(
            ancestor, core_pid,
            "berth-core is an ancestor of the container"
        );
        ancestor = ppid(ancestor).unwrap();
    }
    let ps = b.docker(&["ps"]).ok();
    assert!(
        ps.stdout.contains("sleeper") && ps.stdout.contains("Up "),
        "{}",
        ps.stdout
    );
    b.docker(&["rm", "-f", "sleeper"]).ok();
    b.finish();
}

#[test]
fn stop_sends_the_signal_then_kills() {
    let b = Berth::start();
    b.load_busybox();
    // A shell that exits 42 on SIGTERM.
    b.docker(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.1; done",
    ])
    .ok();
    b.docker(&["stop", "polite"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.ExitCode}}", "polite"])
            .ok()
            .out(),
        "42"
    );
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL after -t.
    b.docker(&[
        "run", "-d", "--name", "stubborn", "busybox", "sleep", "1000",
    ])
    .ok();
    b.docker(&["stop", "-t", "1", "stubborn"]).ok();
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "stubborn"
        ])
        .ok()
        .out(),
        "exited 137"
    );
    // Stopping a stopped container is not an error (304).
    b.docker(&["stop", "stubborn"]).ok();
    b.finish();
}

#[test]
fn kill_wait_and_restart() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "target",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ])
    .ok();
    b.docker(&["kill", "-s", "USR1", "target"]).ok();
    assert_eq!(b.docker(&["wait", "target"]).ok().out(), "5");
    let r = b.docker(&["kill", "target"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not running"), "{r:?}");
    b.docker(&["start", "target"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Running}}", "target"])
            .ok()
            .out(),
        "true"
    );
    b.docker(&["kill", "target"]).ok();
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "target"
        ])
        .ok()
        .out(),
        "exited 137"
    );
    b.docker(&["restart", "-t", "0", "target"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Running}}", "target"])
            .ok()
            .out(),
        "true"
    );
    b.finish();
}

#[test]
fn rm_refuses_running_containers_unless_forced() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"])
        .ok();
    let r = b.docker(&["rm", "busy"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("container is running"), "{r:?}");
    b.docker(&["rm", "-f", "busy"]).ok();
    let r = b.docker(&["inspect", "busy"]);
    assert!(
        r.stderr.contains("No such object: busy") || r.stderr.contains("No such container: busy"),
        "{r:?}"
    );
    b.finish();
}

#[test]
fn start_failure_reports_the_runtime_error() {
    let b = Berth::start();
    b.load_busybox();
    let r = b.docker(&["run", "--rm", "busybox", "no-such-binary"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("executable file not found"), "{r:?}");
    assert_eq!(
        b.docker(&["ps", "-aq"]).ok().out(),
        "",
        "--rm container left after a failed start"
    );
    b.finish();
}
