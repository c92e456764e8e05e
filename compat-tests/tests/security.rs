//! Security defaults and options, probed from inside containers through
//! the docker CLI: capabilities, seccomp, masked and read-only paths,
//! devices, --privileged, --security-opt, --read-only, users and groups,
//! ulimits, sysctls, shared namespaces, --init, /dev/shm and a fork bomb
//! stopped by --pids-limit.

use berth_compat_tests::Berth;

/// Docker's default capabilities by number (linux/capability.h): CHOWN,
/// DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
const DOCKER_DEFAULT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// Masked paths in Docker's list; the test checks those this kernel has.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A field of /proc/<pid>/status ("CapEff") from a `grep` of it.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

fn mask(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | 1 << c))
}

/// The mount options of `path` in a container's mountinfo (field 6).
fn mount_opts(mountinfo: &str, path: &str) -> Option<String> {
    mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(path))
        .and_then(|l| l.split(' ').nth(5))
        .map(str::to_string)
}

#[test]
fn defaults_are_dockers_seen_from_inside() {
    let b = Berth::start();
    b.load_busybox();
    let status = b
        .docker(&["run", "--rm", "busybox", "cat", "/proc/self/status"])
        .ok()
        .stdout;
    let want = mask(DOCKER_DEFAULT_CAPS);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&status, set), want, "{set}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(status_field(&status, set), mask(&[]), "{set}");
    }
    // 2 is SECCOMP_MODE_FILTER.
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert!(b
        .docker(&["info", "--format", "{{json .SecurityOptions}}"])
        .ok()
        .out()
        .contains("name=seccomp,profile=builtin"));
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");

    // mount(2) needs CAP_SYS_ADMIN (and seccomp refuses it without).
    let m = b.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mkdir /m && mount -t tmpfs none /m",
    ]);
    assert_ne!(m.code, 0);
    assert!(m.stderr.contains("denied"), "{m:?}");

    // Masked files read empty, masked directories list nothing.
    let present: Vec<&str> = MASKED
        .iter()
        .copied()
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    assert!(!present.is_empty());
    let script: String = present
        .iter()
        .map(|p| format!("echo {p}=$(cat {p} 2>/dev/null || ls -A {p} | wc -l); "))
        .collect();
    let masked = b
        .docker(&["run", "--rm", "busybox", "sh", "-c", &script])
        .ok()
        .stdout;
    for p in &present {
        let line = masked
            .lines()
            .find(|l| l.starts_with(&format!("{p}=")))
            .unwrap();
        let value = line.split_once('=').unwrap().1;
        assert!(
            value.is_empty() || value == "0",
            "{p} is not masked: {line}"
        );
    }

    // Read-only paths are read-only mounts; writing back a sysctl's own
    // value (harmless if it ever got through) fails.
    let info = b
        .docker(&["run", "--rm", "busybox", "cat", "/proc/self/mountinfo"])
        .ok()
        .stdout;
    for p in READ_ONLY {
        if std::path::Path::new(p).exists() {
            let opts = mount_opts(&info, p).unwrap_or_else(|| panic!("{p} not mounted"));
            assert!(opts.split(',').any(|o| o == "ro"), "{p}: {opts}");
        }
    }
    let w = b.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "f=/proc/sys/kernel/printk_ratelimit_burst; v=$(cat $f); echo $v > $f",
    ]);
    assert_ne!(w.code, 0);
    assert!(w.stderr.contains("Read-only file system"), "{w:?}");

    // The device cgroup: a node can be made (CAP_MKNOD) but not opened,
    // unless it is in Docker's default set.
    let d = b.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /loop b 7 0 && head -c1 /loop",
    ]);
    assert_ne!(d.code, 0);
    assert!(d.stderr.contains("Operation not permitted"), "{d:?}");
    b.docker(&["run", "--rm", "busybox", "head", "-c1", "/dev/zero"])
        .ok();
}

#[test]
fn privileged_and_capability_options() {
    let b = Berth::start();
    b.load_busybox();
    // What the engine can hand out: our own bounding set (this machine may
    // lack some of the kernel's capabilities).
    let ours = status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    );
    let status = b
        .docker(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "cat",
            "/proc/self/status",
            "/proc/self/mountinfo",
        ])
        .ok()
        .stdout;
    assert_eq!(status_field(&status, "CapEff"), ours);
    assert_eq!(status_field(&status, "Seccomp"), "0");
    let sys = mount_opts(&status, "/proc/sys");
    assert!(sys.is_none(), "/proc/sys still read-only: {sys:?}");
    assert_eq!(
        mount_opts(&status, "/sys").unwrap().split(',').next(),
        Some("rw")
    );
    // The host's device nodes are there (loop-control, or any block device).
    let host_dev = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        })
        .map(|e| e.path().display().to_string());
    if let Some(dev) = host_dev {
        b.docker(&["run", "--rm", "--privileged", "busybox", "test", "-b", &dev])
            .ok();
    } else {
        println!("skipping the device part: the host has no block device in /dev");
    }

    let eff = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        status_field(&b.docker(&a).ok().stdout, "CapEff")
    };
    // CAP_NET_ADMIN is 12.
    assert_eq!(
        eff(&["--cap-drop", "ALL", "--cap-add", "net_admin"]),
        mask(&[12])
    );
    let mut fewer: Vec<u32> = DOCKER_DEFAULT_CAPS.to_vec();
    fewer.retain(|c| *c != 0 && *c != 13);
    fewer.push(12);
    assert_eq!(
        eff(&[
            "--cap-drop",
            "CHOWN",
            "--cap-drop",
            "CAP_NET_RAW",
            "--cap-add",
            "NET_ADMIN"
        ]),
        mask(&fewer)
    );
    // ALL but MKNOD (27).
    let all_but = u64::from_str_radix(&ours, 16).unwrap() & !(1 << 27);
    assert_eq!(
        eff(&["--cap-add", "ALL", "--cap-drop", "MKNOD"]),
        format!("{all_but:016x}")
    );
    let bad = b.docker(&["run", "--rm", "--cap-add", "CAP_BOGUS", "busybox", "true"]);
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr.contains("unknown capability: \"CAP_BOGUS\""),
        "{bad:?}"
    );

    // no-new-privileges and seccomp choices.
    let nnp = b
        .docker(&[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "cat",
            "/proc/self/status",
        ])
        .ok()
        .stdout;
    assert_eq!(status_field(&nnp, "NoNewPrivs"), "1");
    let unconfined = b
        .docker(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "cat",
            "/proc/self/status",
        ])
        .ok()
        .stdout;
    assert_eq!(status_field(&unconfined, "Seccomp"), "0");
    // A profile file (the CLI sends its contents) that forbids mkdir.
    let profile = b.root.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let denied = b.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "{denied:?}"
    );
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap();
    let bad = b.docker(&["create", "--security-opt", &opt, "busybox", "true"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("seccomp profile"), "{bad:?}");
    let bad = b.docker(&["create", "--security-opt", "bogus=1", "busybox", "true"]);
    assert!(bad.stderr.contains("invalid --security-opt"), "{bad:?}");
    assert_eq!(b.docker(&["ps", "-aq"]).ok().out(), "", "nothing created");

    // exec --privileged gets every capability in an ordinary container.
    b.docker(&["run", "-d", "--name", "plain", "busybox", "sleep", "60"])
        .ok();
    let e = b
        .docker(&["exec", "--privileged", "plain", "cat", "/proc/self/status"])
        .ok()
        .stdout;
    assert_eq!(status_field(&e, "CapEff"), ours);
    let e = b
        .docker(&["exec", "plain", "cat", "/proc/self/status"])
        .ok()
        .stdout;
    assert_eq!(status_field(&e, "CapEff"), mask(DOCKER_DEFAULT_CAPS));
    b.docker(&["rm", "-f", "plain"]).ok();
}

#[test]
fn read_only_users_ulimits_sysctls_and_shm() {
    let b = Berth::start();
    b.load_busybox();
    let ro = b.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(ro.code, 0);
    assert!(ro.stderr.contains("Read-only file system"), "{ro:?}");

    let id = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "id"]);
        b.docker(&a).ok().out().to_string()
    };
    assert_eq!(
        id(&["--user", "1000:1000"]),
        "uid=1000 gid=1000 groups=1000"
    );
    assert_eq!(
        id(&["--user", "www-data"]),
        "uid=33(www-data) gid=33(www-data) groups=33(www-data)"
    );
    assert_eq!(
        id(&[
            "--user",
            "nobody",
            "--group-add",
            "daemon",
            "--group-add",
            "4242"
        ]),
        "uid=65534(nobody) gid=65534(nogroup) groups=1(daemon),4242,65534(nogroup)"
    );
    let g = b.docker(&["run", "--rm", "--group-add", "nosuch", "busybox", "id"]);
    assert!(g.stderr.contains("Unable to find group nosuch"), "{g:?}");

    let limits = b
        .docker(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=123:456",
            "--ulimit",
            "core=-1",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; ulimit -c",
        ])
        .ok()
        .stdout;
    assert_eq!(limits, "123\n456\nunlimited\n");

    let sysctl = b
        .docker(&[
            "run",
            "--rm",
            "--sysctl",
            "kernel.shmmax=1234567",
            "busybox",
            "cat",
            "/proc/sys/kernel/shmmax",
        ])
        .ok()
        .stdout;
    assert_eq!(sysctl, "1234567\n");
    // The host's value is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        "1234567\n"
    );
    // A sysctl of the host's kernel is refused (the CLI checks some
    // itself; the API must refuse them too).
    let body =
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Sysctls":{"vm.swappiness":"1"}}}"#;
    let r = b.api("POST", "/v1.50/containers/create", Some(body));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("sysctl 'vm.swappiness' is not allowed"));

    // /dev/shm: sized by --shm-size, absent with --ipc none.
    let shm = b
        .docker(&[
            "run",
            "--rm",
            "--shm-size",
            "8m",
            "busybox",
            "sh",
            "-c",
            "df -k /dev/shm | tail -1",
        ])
        .ok()
        .stdout;
    assert_eq!(shm.split_whitespace().nth(1), Some("8192"), "{shm}");
    assert_eq!(
        b.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.ShmSize}} {{.HostConfig.IpcMode}}",
            b.docker(&["create", "busybox"]).ok().out(),
        ])
        .ok()
        .out(),
        "67108864 private"
    );
    let none = b.docker(&["run", "--rm", "--ipc", "none", "busybox", "ls", "/dev/shm"]);
    assert_ne!(none.code, 0);
}

#[test]
fn shared_namespaces_init_and_devices() {
    let b = Berth::start();
    b.load_busybox();
    b.docker(&[
        "run",
        "-d",
        "--name",
        "owner",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    b.docker(&["run", "-d", "--name", "private", "busybox", "sleep", "60"])
        .ok();
    // --pid container:owner sees owner's sleep; --pid host sees this test.
    let ps = b
        .docker(&[
            "run",
            "--rm",
            "--pid",
            "container:owner",
            "busybox",
            "ps",
            "-o",
            "comm",
        ])
        .ok()
        .stdout;
    assert!(ps.lines().any(|l| l == "sleep"), "{ps}");
    let me = std::process::id().to_string();
    b.docker(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "test",
        "-d",
        &format!("/proc/{me}"),
    ])
    .ok();
    // --ipc container:owner shares its /dev/shm.
    b.docker(&["exec", "owner", "sh", "-c", "echo shared > /dev/shm/note"])
        .ok();
    let note = b
        .docker(&[
            "run",
            "--rm",
            "--ipc",
            "container:owner",
            "busybox",
            "cat",
            "/dev/shm/note",
        ])
        .ok()
        .stdout;
    assert_eq!(note, "shared\n");
    let r = b.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:private",
        "busybox",
        "true",
    ]);
    assert!(r.stderr.contains("non-shareable IPC"), "{r:?}");
    b.docker(&["rm", "-f", "private"]).ok();
    b.docker(&["stop", "-t", "0", "owner"]).ok();
    let r = b.docker(&["run", "--rm", "--ipc", "container:owner", "busybox", "true"]);
    assert!(
        r.stderr
            .contains("cannot join IPC of a non running container"),
        "{r:?}"
    );

    // --init: docker-init is pid 1 and the command's exit code comes back.
    let ps = b
        .docker(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm"])
        .ok()
        .stdout;
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "docker-init"]),
        "{ps}"
    );
    let code = b.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(code.code, 3);

    // --device: a host node under another name, with cgroup permissions.
    let ls = b
        .docker(&[
            "run",
            "--rm",
            "--device",
            "/dev/null:/dev/mynull",
            "busybox",
            "ls",
            "-l",
            "/dev/mynull",
        ])
        .ok()
        .stdout;
    assert!(ls.starts_with('c') && ls.contains("1,   3"), "{ls}");
    // Cgroup permissions: "r" lets the node be read but not written. The
    // node must be outside Docker's default set (which allows /dev/null).
    if std::path::Path::new("/dev/loop-control").exists() {
        let ro = b.docker(&[
            "run",
            "--rm",
            "--device",
            "/dev/loop-control:/dev/lc:r",
            "busybox",
            "sh",
            "-c",
            "ls -l /dev/lc && echo x > /dev/lc",
        ]);
        assert!(ro.stdout.contains("10, 237"), "{ro:?}");
        assert!(ro.stderr.contains("Operation not permitted"), "{ro:?}");
    } else {
        println!("skipping the cgroup permission part: the host has no /dev/loop-control");
    }
    let missing = b.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/berth-nope",
        "busybox",
        "true",
    ]);
    assert!(
        missing.stderr.contains(
            "error gathering device information while adding custom device \"/dev/berth-nope\": no such file or directory"
        ),
        "{missing:?}"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let b = Berth::start();
    b.load_busybox();
    // Each loop starts one more sleeper until fork fails; the shell then
    // exits and its PID namespace takes the sleepers with it.
    let r = b.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "n=0; while [ $n -lt 200 ]; do sleep 60 & n=$((n+1)); echo $n; done",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("can't fork"), "{r:?}");
    let started: u32 = r.stdout.lines().last().unwrap().parse().unwrap();
    assert!(started < 20, "{started} processes under a limit of 20");
}
