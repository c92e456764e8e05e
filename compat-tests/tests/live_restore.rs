//! Containers outlive berthd and berth-core (the property Berth is built for).

use berth_compat_tests::{wait_exit, Berth};

fn core_pid(b: &Berth) -> i32 {
    b.processes()
        .into_iter()
        .find(|(_, c)| c.contains("berth-core"))
        .map(|(p, _)| p as i32)
        .expect("berth-core runs")
}

#[test]
fn containers_survive_engine_kill_and_their_exits_are_not_lost() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "stays", "busybox", "sleep", "1000"])
        .ok();
    // Exits with 7 on SIGTERM, after writing 20 MB to stderr and a line to stdout.
    b.docker(&["run", "-d", "--name", "leaves", "busybox", "sh", "-c", "trap 'head -c 20000000 /dev/zero >&2; echo bye; exit 7' TERM; while true; do sleep 0.1; done"]).ok();
    let stays = b.pid_of("stays");
    let leaves = b.pid_of("leaves");

    b.kill_berthd();
    // While nobody runs berthd: the container writes 20 MB (far beyond a
    // pipe buffer) and exits; its shim drains and records the exit.
    berth_compat_tests::unsafe_kill(leaves, libc::SIGTERM);
    assert!(
        wait_exit(leaves),
        "the container blocked while berthd was down"
    );
    b.spawn_berthd();

    assert_eq!(
        b.pid_of("stays"),
        stays,
        "a running container was restarted or lost"
    );
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", "stays"])
            .ok()
            .out(),
        "running"
    );
    let r = b.docker(&["wait", "leaves"]).ok();
    assert_eq!(r.out(), "7");
    let finished = b
        .docker(&["inspect", "-f", "{{.State.FinishedAt}}", "leaves"])
        .ok();
    assert!(finished.out().starts_with("20"), "{finished:?}");
    // Everything it wrote while berthd was down is in its log.
    let logs = b.docker(&["logs", "leaves"]).ok();
    assert_eq!(logs.stdout, "bye\n");
    assert_eq!(logs.stderr.len(), 20_000_000);
    // Every command works on the container started by the previous engine.
    b.docker(&["stop", "-t", "1", "stays"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.ExitCode}}", "stays"])
            .ok()
            .out(),
        "137"
    );
    b.docker(&["rm", "stays", "leaves"]).ok();
    b.finish();
}

#[test]
fn containers_survive_core_kill_and_the_engine_restarts_the_core() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "steady",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while true; do sleep 0.1; done",
    ])
    .ok();
    let pid = b.pid_of("steady");
    let old_core = core_pid(&b);
    berth_compat_tests::unsafe_kill(old_core, libc::SIGKILL);
    assert!(wait_exit(old_core));
    // berthd notices and starts a new core, which re-adopts the shim; the
    // stop below goes through it once berthd is connected again.
    b.wait_for_core();
    b.docker(&["stop", "steady"]).ok();
    assert_ne!(core_pid(&b), old_core);
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "steady"
        ])
        .ok()
        .out(),
        "exited 3"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || berth_compat_tests::comm(pid as u32) != "sh"
    );
    b.finish();
}

#[test]
fn exits_while_both_daemons_are_down_are_recorded() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "alone",
        "busybox",
        "sh",
        "-c",
        "trap 'echo late; exit 9' TERM; echo ready; while true; do sleep 0.1; done",
    ])
    .ok();
    // sh is its namespace's init, which ignores a SIGTERM it has no trap
    // for yet: wait until it says the trap is set.
    let mut follow = b
        .docker_cmd(&["logs", "-f", "alone"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let _ = follow.kill();
    let _ = follow.wait();
    let pid = b.pid_of("alone");
    b.kill_berthd();
    let core = core_pid(&b);
    berth_compat_tests::unsafe_kill(core, libc::SIGKILL);
    assert!(wait_exit(core));
    berth_compat_tests::unsafe_kill(pid, libc::SIGTERM);
    assert!(wait_exit(pid));
    b.spawn_berthd();
    assert_eq!(b.docker(&["wait", "alone"]).ok().out(), "9");
    assert_eq!(b.docker(&["logs", "alone"]).ok().stdout, "ready\nlate\n");
    b.finish();
}

#[test]
fn an_engine_restarted_with_other_flags_keeps_the_containers() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"])
        .ok();
    let pid = b.pid_of("keeper");
    b.kill_berthd();
    b.set_extra_args(&["--log-level", "debug", "--runtime", "runc"]);
    b.spawn_berthd();
    assert_eq!(b.pid_of("keeper"), pid);
    assert_eq!(
        b.docker(&["info", "--format", "{{.DefaultRuntime}}"])
            .ok()
            .out(),
        "runc"
    );
    b.docker(&["rm", "-f", "keeper"]).ok();
    b.finish();
}

#[test]
fn without_a_core_requests_that_need_it_answer_503_and_the_rest_works() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["create", "--name", "waiting", "busybox", "true"])
        .ok();
    b.kill_berthd();
    let core = core_pid(&b);
    berth_compat_tests::unsafe_kill(core, libc::SIGKILL);
    assert!(wait_exit(core));
    b.without_core();
    b.spawn_berthd();
    // Metadata is served from berthd's own store.
    assert!(b.docker(&["ps", "-a"]).ok().stdout.contains("waiting"));
    assert_eq!(b.docker(&["images", "-q"]).ok().stdout.lines().count(), 1);
    // Starting needs the core: a clear 503, not a hang.
    let r = b.api("POST", "/containers/waiting/start", None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("berth-core is not reachable"));
    let r = b.docker(&["start", "waiting"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("berth-core is not reachable"), "{r:?}");
    // With a core to start, the same container starts.
    b.kill_berthd();
    b.with_core();
    b.spawn_berthd();
    b.docker(&["start", "-a", "waiting"]).ok();
    b.finish();
}

#[test]
fn an_engine_without_a_common_protocol_version_refuses_to_start() {
    let b = Berth::start();
    let other = b.root.join("other");
    let out = std::process::Command::new(berth_compat_tests::bin_dir().join("berthd"))
        .arg("-H")
        .arg(format!("unix://{}", other.join("d.sock").display()))
        .arg("--data-root")
        .arg(other.join("data"))
        .arg("--exec-root")
        .arg(b.exec_root())
        .arg("--core-protocol")
        .arg("0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The core's newest version grows with the protocol; the floor and
    // the refusal are what matter.
    assert!(
        err.contains("speaks protocol versions 1..=") && err.contains(", this berthd speaks 0..=0"),
        "{err}"
    );
    b.finish();
}

#[test]
fn an_engine_speaking_the_previous_protocol_works_with_the_current_core() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "older", "busybox", "sleep", "1000"])
        .ok();
    // The same core, now driven by an engine that speaks protocol 1 only.
    b.kill_berthd();
    b.set_extra_args(&["--core-protocol", "1"]);
    b.spawn_berthd();
    assert_eq!(
        b.docker(&["run", "--rm", "busybox", "echo", "v1"])
            .ok()
            .out(),
        "v1"
    );
    b.docker(&["stop", "-t", "0", "older"]).ok();
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", "older"])
            .ok()
            .out(),
        "exited"
    );
    // Restart policies need protocol 2: refused with a clear reason.
    let r = b.docker(&["run", "-d", "--restart", "always", "busybox", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("protocol version 1"), "{r:?}");
    // So does pause, which needs protocol 4; the container keeps running.
    b.docker(&[
        "run",
        "-d",
        "--name",
        "unpausable",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let p = b.docker(&["pause", "unpausable"]);
    assert!(p.stderr.contains("pause needs core protocol 4"), "{p:?}");
    assert_eq!(
        b.docker(&["inspect", "-f", "{{.State.Status}}", "unpausable"])
            .ok()
            .out(),
        "running"
    );
    b.docker(&["rm", "-f", "unpausable"]).ok();
    b.finish();
}
