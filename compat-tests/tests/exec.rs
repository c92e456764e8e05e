//! `docker exec`: exit codes, user, working directory, environment, stdin,
//! terminals, detached execs, exec inspect, and exec
//! processes that outlive the engine (they are children of their shim).

use berth_compat_tests::{comm, ppid, Berth};

#[test]
fn exec_runs_in_the_container_with_its_options() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();

    assert_eq!(
        b.docker(&["exec", "box", "echo", "hello"]).ok().out(),
        "hello"
    );
    assert_eq!(b.docker(&["exec", "box", "sh", "-c", "exit 7"]).code, 7);
    let opts = b
        .docker(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            "box",
            "sh",
            "-c",
            "id -u; pwd; echo $FOO $FROM_RUN",
        ])
        .ok();
    assert_eq!(opts.stdout, "65534\n/tmp\nbar 1\n");
    let piped = b
        .docker_stdin(
            &["exec", "-i", "box", "sh", "-c", "cat; echo done"],
            b"through stdin\n",
        )
        .ok();
    assert_eq!(piped.stdout, "through stdin\ndone\n");
    let tty = b.docker_tty("exec -t box sh -c 'tty; echo on-a-tty'");
    assert_eq!(tty.code, 0, "{tty:?}");
    assert!(
        tty.stdout.contains("/dev/pts/") && tty.stdout.contains("on-a-tty"),
        "{tty:?}"
    );

    let missing = b.docker(&["exec", "box", "nosuch"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(
        missing.stdout.contains("OCI runtime exec failed")
            && missing.stdout.contains("executable file not found"),
        "{missing:?}"
    );
    // --privileged: every capability the engine can give (security.rs
    // compares the masks); CAP_SYS_ADMIN (bit 21) is the telling one.
    let privileged = b
        .docker(&[
            "exec",
            "--privileged",
            "box",
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .ok();
    let mask =
        u64::from_str_radix(privileged.out().split_whitespace().last().unwrap(), 16).unwrap();
    assert_ne!(mask & 1 << 21, 0, "{privileged:?}");

    // Exec inspect through the API: the exit code of a finished exec.
    let created = b.api(
        "POST",
        "/v1.50/containers/box/exec",
        Some(br#"{"Cmd":["sh","-c","exit 3"],"AttachStdout":true}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["Id"].as_str().unwrap().to_string();
    let started = b.api(
        "POST",
        &format!("/v1.50/exec/{id}/start"),
        Some(br#"{"Detach":false}"#),
    );
    assert_eq!(started.status, 200);
    let inspect = b.api("GET", &format!("/v1.50/exec/{id}/json"), None).json();
    assert_eq!(inspect["ExitCode"], 3, "{inspect}");
    assert_eq!(inspect["Running"], false);
    assert_eq!(
        b.api(
            "POST",
            &format!("/v1.50/exec/{id}/start"),
            Some(br#"{"Detach":true}"#)
        )
        .status,
        409
    );
    assert_eq!(b.api("GET", "/v1.50/exec/nosuch/json", None).status, 404);

    b.docker(&["stop", "-t", "0", "box"]).ok();
    let stopped = b.docker(&["exec", "box", "true"]);
    assert_ne!(stopped.code, 0);
    assert!(
        stopped.stderr.contains("is not running"),
        "{}",
        stopped.stderr
    );
    b.finish();
}

#[test]
fn exec_processes_belong_to_their_shim_and_outlive_the_engine() {
    let mut b = Berth::start();
    b.load_busybox();
    b.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "300"])
        .ok();
    b.docker(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "echo started > /tmp/marker; exec sleep 3141",
    ])
    .ok();
    b.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "while ! test -e /tmp/marker; do sleep 0.05; done",
    ])
    .ok();
    // The exec's sleep (a duration no other test uses), seen from the host.
    let init = b
        .docker(&["inspect", "-f", "{{.State.Pid}}", "box"])
        .ok()
        .out()
        .to_string();
    let host_pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmd == b"sleep\x003141\x00"
                && pid.to_string() != init
                && comm(ppid(*pid).unwrap_or(0)) == "berth-shim"
        });
    let pid = host_pid.expect("the exec's process, a child of a berth-shim");
    b.kill_berthd();
    b.spawn_berthd();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the exec died with the engine"
    );
    assert_eq!(
        b.docker(&["exec", "box", "cat", "/tmp/marker"]).ok().out(),
        "started"
    );
    b.docker(&["rm", "-f", "box"]).ok();
    b.finish();
}
