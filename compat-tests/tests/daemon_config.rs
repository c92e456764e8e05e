//! berthd configured as dockerd is: `--config-file` with dockerd's
//! daemon.json keys, checked with `--validate`, refused in dockerd's
//! words when a key is unknown or also given as a flag.

use std::path::PathBuf;
use std::process::Command;

use berth_compat_tests::{bin_dir, Berth};

/// A configuration file in a directory of the test's own (`test`).
fn config_file(test: &str, name: &str, json: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-config-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

/// `berthd --validate` with these flags: exit code, stdout, stderr.
fn validate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin_dir().join("berthd"))
        .arg("--validate")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_reads_the_file_as_dockerd_does() {
    let good = config_file(
        "validate",
        "good.json",
        r#"{"log-driver": "local", "log-opts": {"max-size": "5m"}, "live-restore": true,
            "default-address-pools": [{"base": "10.240.0.0/16", "size": 24}]}"#,
    );
    let (code, out, _) = validate(&["--config-file", good.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "configuration OK\n"));

    let unknown = config_file("validate", "unknown.json", r#"{"frobnicate": true}"#);
    let (code, _, err) = validate(&["--config-file", unknown.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "berthd: unable to configure the daemon with file {}: the following directives don't match any configuration option: frobnicate\n",
            unknown.display()
        )
    );

    let (code, _, err) = validate(&[
        "--config-file",
        good.to_str().unwrap(),
        "--log-driver",
        "json-file",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the following directives are specified both as a flag and in the configuration file: log-driver: (from flag: json-file, from file: local)"),
        "{err}"
    );

    // A named file must exist; the default one need not.
    let (code, _, err) = validate(&["--config-file", "/nonexistent/daemon.json"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("open /nonexistent/daemon.json: no such file or directory"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(good.parent().unwrap());
}

#[test]
fn a_running_berthd_follows_its_configuration_file() {
    let file = config_file(
        "running",
        "running.json",
        r#"{"log-driver": "local", "log-opts": {"max-size": "5m"}, "max-concurrent-downloads": 7}"#,
    );
    let b = Berth::start_with(&["--config-file", file.to_str().unwrap()]);
    b.load_busybox();
    let info = b.docker(&["info", "--format", "{{.LoggingDriver}}"]).ok();
    assert_eq!(info.out(), "local");
    b.docker(&["run", "--name", "cfg", "busybox", "true"]).ok();
    let log_config = b
        .docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "cfg"])
        .ok();
    assert_eq!(
        log_config.out(),
        r#"{"Type":"local","Config":{"max-size":"5m"}}"#
    );
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// Sends SIGHUP to `pid` and returns the first daemon event from then on,
/// as `format` prints it (`docker` builds the CLI's command for the engine).
fn reload_event(docker: impl Fn(&[&str]) -> Command, pid: u32, format: &str) -> Option<String> {
    use std::io::BufRead;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Events since before the signal: the reload's is replayed if it came
    // already, or arrives live; either way it is the first line.
    let since = format!("{}.{:09}", before.as_secs(), before.subsec_nanos());
    let mut events = docker(&[
        "events",
        "--since",
        &since,
        "--filter",
        "type=daemon",
        "--format",
        format,
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    // A bound on a hang (no reload ever announced), not a synchronisation.
    let first = rx.recv_timeout(std::time::Duration::from_secs(60)).ok();
    let _ = events.kill();
    let _ = events.wait();
    first
}

#[test]
fn sighup_reloads_what_may_change_and_says_so() {
    let mirror = berth_compat_tests::registry::Registry::start();
    let file = config_file("reload", "daemon.json", "{}");
    let b = Berth::start_with(&["--config-file", file.to_str().unwrap()]);
    b.load_busybox();
    // The mirror holds an image of Docker Hub's that this engine lacks.
    let pushed = format!("{}/library/busybox:reloaded", mirror.addr);
    b.docker(&["tag", "busybox", &pushed]).ok();
    b.docker(&["push", &pushed]).ok();
    b.docker(&["rmi", &pushed]).ok();

    let url = format!("http://{}", mirror.addr);
    std::fs::write(
        &file,
        format!(r#"{{"registry-mirrors": ["{url}"], "debug": true}}"#),
    )
    .unwrap();
    let first = reload_event(
        |args| b.docker_cmd(args),
        b.berthd_pid(),
        "{{.Action}} {{index .Actor.Attributes \"registry-mirrors\"}}",
    );
    assert_eq!(first, Some(format!("reload [\"{url}\"]\n")));
    let mirrors = b
        .docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"])
        .ok();
    assert_eq!(mirrors.out(), format!("[\"{url}/\"]"));
    b.docker(&["pull", "busybox:reloaded"]).ok();
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// SIGHUP to berthd and to dockerd: the first daemon event of each, as
/// `format` prints it (Berth's, then dockerd's).
fn reload_both(
    dockerd: &berth_compat_tests::dockerd::Dockerd,
    b: &Berth,
    format: &str,
) -> (Option<String>, Option<String>) {
    let theirs = reload_event(
        |args| berth_compat_tests::docker_on(&dockerd.socket, &dockerd.root, args),
        dockerd.pid(),
        format,
    );
    let ours = reload_event(|args| b.docker_cmd(args), b.berthd_pid(), format);
    (ours, theirs)
}

/// dockerd and berthd started with the same flags, busybox loaded in both.
fn both_with(flags: &[&str]) -> (berth_compat_tests::dockerd::Dockerd, Berth) {
    let dockerd = berth_compat_tests::dockerd::Dockerd::start_with(flags)
        .unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start_with(flags);
    dockerd.load_busybox();
    b.load_busybox();
    (dockerd, b)
}

/// The settings that give containers their defaults, and the daemon's
/// labels and features, from one daemon.json given to both engines.
const DEFAULTS_JSON: &str = r#"{
    "labels": ["tier=test", "zone=a", "tier=test"],
    "dns-search": ["example.test"],
    "dns-opts": ["ndots:3"],
    "default-shm-size": "96M",
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 4321, "Soft": 1234}},
    "shutdown-timeout": 7,
    "features": {"buildkit": false}
}"#;

/// What a user reads of those settings on one engine.
fn defaults_seen(
    docker: &dyn Fn(&[&str]) -> berth_compat_tests::Run,
    socket: &std::path::Path,
) -> Vec<String> {
    let show = "grep -E '^(search|options)' /etc/resolv.conf; ulimit -n; ulimit -Hn; \
                df -k /dev/shm | tail -1 | awk '{print $2}'";
    // dockerd lists its labels in a Go map's order (random): sorted here.
    let mut labels: Vec<String> =
        docker(&["info", "--format", "{{range .Labels}}{{println .}}{{end}}"])
            .ok()
            .stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    labels.sort();
    let mut seen = vec![
        labels.join(" "),
        // Defaults where the container says nothing.
        docker(&["run", "--rm", "busybox", "sh", "-c", show])
            .ok()
            .stdout,
        // The container's own settings win, limit by limit.
        docker(&[
            "run",
            "--rm",
            "--ulimit",
            "nproc=77",
            "--dns-search",
            "mine.test",
            "--shm-size",
            "8m",
            "busybox",
            "sh",
            "-c",
            &format!("{show}; ulimit -u"),
        ])
        .ok()
        .stdout,
    ];
    docker(&["create", "--name", "dflt", "busybox", "true"]).ok();
    // dockerd records the shm size and the ulimits at create, the DNS
    // settings it applies at start.
    seen.push(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.ShmSize}} {{json .HostConfig.Ulimits}} {{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}}",
            "dflt",
        ])
        .ok()
        .stdout,
    );
    docker(&["rm", "dflt"]).ok();
    // `features: {"buildkit": false}`: the ping offers the legacy builder.
    let ping = berth_compat_tests::http::request(socket, "GET", "/_ping", None).unwrap();
    seen.push(format!(
        "Builder-Version: {:?}",
        ping.header("builder-version")
    ));
    seen
}

#[test]
fn container_defaults_labels_and_features_read_as_on_dockerd() {
    let file = config_file("defaults", "daemon.json", DEFAULTS_JSON);
    let flags = ["--config-file", file.to_str().unwrap()];
    let (dockerd, b) = both_with(&flags);
    let theirs = defaults_seen(&|a| dockerd.docker(a), &dockerd.socket);
    let ours = defaults_seen(&|a| b.docker(a), &b.socket);
    assert_eq!(ours, theirs);
    // And what they are, so that two engines agreeing on nothing fails.
    assert_eq!(ours[0], "tier=test zone=a");
    assert_eq!(
        ours[1],
        "search example.test\noptions ndots:3\n1234\n4321\n98304\n"
    );
    assert_eq!(
        ours[3],
        "100663296 [{\"Hard\":4321,\"Name\":\"nofile\",\"Soft\":1234}] [] []\n"
    );
    assert_eq!(ours[4], "Builder-Version: Some(\"1\")");

    // Bad values stop berthd before it opens anything, naming the setting.
    let bad = config_file(
        "defaults",
        "bad.json",
        r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1, "Soft": 2}}}"#,
    );
    let (code, _, err) = validate(&["--config-file", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "default-ulimits: ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        ),
        "{err}"
    );
    let (code, _, err) = validate(&["--label", "nolabel"]);
    assert_eq!(
        (code, err.trim_end()),
        (1, "berthd: bad attribute format: nolabel")
    );

    dockerd.finish();
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

#[test]
fn a_reload_of_labels_shutdown_timeout_and_features_reads_as_on_dockerd() {
    let theirs_file = config_file("reload-labels", "dockerd.json", r#"{"labels": ["old=1"]}"#);
    let ours_file = config_file("reload-labels", "berthd.json", r#"{"labels": ["old=1"]}"#);
    let dockerd = berth_compat_tests::dockerd::Dockerd::start_with(&[
        "--config-file",
        theirs_file.to_str().unwrap(),
    ])
    .unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b = Berth::start_with(&["--config-file", ours_file.to_str().unwrap()]);
    // One label: dockerd would list two in a random order.
    let changed = r#"{"labels": ["new=2"], "shutdown-timeout": 3, "features": {"buildkit": true, "other": false},
        "insecure-registries": ["10.1.2.3:5000"], "registry-mirrors": ["http://127.0.0.1:1"]}"#;
    std::fs::write(&theirs_file, changed).unwrap();
    std::fs::write(&ours_file, changed).unwrap();
    let format = "{{.Action}} labels={{index .Actor.Attributes \"labels\"}} \
                  shutdown-timeout={{index .Actor.Attributes \"shutdown-timeout\"}} \
                  features={{index .Actor.Attributes \"features\"}} \
                  insecure={{index .Actor.Attributes \"insecure-registries\"}} \
                  mirrors={{index .Actor.Attributes \"registry-mirrors\"}}";
    let (ours, theirs) = reload_both(&dockerd, &b, format);
    assert_eq!(ours, theirs);
    assert!(
        ours.as_deref()
            .is_some_and(|e| e.contains("shutdown-timeout=3")),
        "{ours:?}"
    );
    let labels = |run: berth_compat_tests::Run| run.ok().stdout;
    assert_eq!(
        labels(b.docker(&["info", "--format", "{{json .Labels}}"])),
        labels(dockerd.docker(&["info", "--format", "{{json .Labels}}"]))
    );
    // The log says what changed.
    let log = b.log();
    assert!(
        log.contains(r#"reloaded setting changed key=labels from=["old=1"] to=["new=2"]"#),
        "{log}"
    );

    // A file that no longer names them: dockerd keeps the labels, the
    // shutdown timeout and the registries it had, and resets `features`.
    std::fs::write(&theirs_file, "{}").unwrap();
    std::fs::write(&ours_file, "{}").unwrap();
    let (ours, theirs) = reload_both(&dockerd, &b, format);
    assert_eq!(ours, theirs);
    assert!(
        ours.as_deref()
            .is_some_and(|e| e.contains(r#"labels=["new=2"]"#) && e.contains("features=map[] ")),
        "{ours:?}"
    );
    assert_eq!(
        labels(b.docker(&["info", "--format", "{{json .Labels}}"])),
        "[\"new=2\"]\n"
    );
    dockerd.finish();
    b.finish();
    let _ = std::fs::remove_dir_all(ours_file.parent().unwrap());
}

/// What a user reads of a runtime configured by name on one engine.
fn runtime_seen(docker: &dyn Fn(&[&str]) -> berth_compat_tests::Run) -> Vec<String> {
    let created = docker(&[
        "create",
        "--name",
        "named-rt",
        "--runtime",
        "myrt",
        "busybox",
        "true",
    ]);
    let mut seen = vec![
        docker(&["info", "--format", "{{json .Runtimes.myrt}}"])
            .ok()
            .stdout,
        docker(&["run", "--rm", "--runtime", "myrt", "busybox", "echo", "ran"])
            .ok()
            .stdout,
        format!("create: {}", created.code),
        docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "named-rt"])
            .ok()
            .stdout,
    ];
    docker(&["rm", "named-rt"]).ok();
    let unknown = docker(&["create", "--runtime", "nosuch", "busybox", "true"]);
    seen.push(format!("{} {}", unknown.code, unknown.stderr.trim()));
    seen
}

#[test]
fn a_runtime_configured_by_name_runs_as_on_dockerd() {
    let out = Command::new("sh")
        .args(["-c", "command -v runc"])
        .output()
        .unwrap();
    let runc = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !runc.is_empty(),
        "runc is installed by contrib/setup.sh --deps"
    );
    let file = config_file(
        "runtimes",
        "daemon.json",
        &format!(r#"{{"runtimes": {{"myrt": {{"path": "{runc}"}}}}}}"#),
    );
    let flags = ["--config-file", file.to_str().unwrap()];
    let (dockerd, b) = both_with(&flags);
    let theirs = runtime_seen(&|a| dockerd.docker(a));
    let ours = runtime_seen(&|a| b.docker(a));
    assert_eq!(ours, theirs);
    assert_eq!(ours[0], format!("{{\"path\":\"{runc}\"}}\n"));
    assert_eq!(ours[1], "ran\n");
    assert_eq!(ours[3], "myrt\n");
    assert!(
        ours[4].contains("Unknown runtime specified nosuch"),
        "{ours:?}"
    );

    // runtimeArgs: both engines run the runtime through a script of
    // theirs that puts the arguments first, and `docker info` lists them
    // as configured. The runtime here is a script of the test's that
    // notes its first argument and runs runc with the rest.
    let logs = file.parent().unwrap().join("runtime-args");
    std::fs::create_dir_all(&logs).unwrap();
    let wrapper = |who: &str| logs.join(format!("{who}-rt.sh"));
    for who in ["berthd", "dockerd"] {
        use std::os::unix::fs::PermissionsExt;
        let noted = logs.join(format!("{who}.args"));
        std::fs::write(
            wrapper(who),
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nshift\nexec {runc} \"$@\"\n",
                noted.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(wrapper(who), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let with_args = |who: &str| {
        format!(
            r#"{{"runtimes": {{"myrt": {{"path": "{runc}"}}, "dbg": {{"path": "{}", "runtimeArgs": ["first-{who}"]}}}}}}"#,
            wrapper(who).display()
        )
    };
    let ours_file = config_file("runtimes", "berthd.json", &with_args("berthd"));
    let theirs_file = config_file("runtimes", "dockerd.json", &with_args("dockerd"));
    let dockerd2 = berth_compat_tests::dockerd::Dockerd::start_with(&[
        "--config-file",
        theirs_file.to_str().unwrap(),
    ])
    .unwrap_or_else(|e| panic!("the oracle: {e}"));
    let b2 = Berth::start_with(&["--config-file", ours_file.to_str().unwrap()]);
    dockerd2.load_busybox();
    b2.load_busybox();
    for (who, docker, data_root) in [
        (
            "berthd",
            &(|a: &[&str]| b2.docker(a)) as &dyn Fn(&[&str]) -> berth_compat_tests::Run,
            b2.data_root(),
        ),
        (
            "dockerd",
            &|a: &[&str]| dockerd2.docker(a),
            dockerd2.root.join("data"),
        ),
    ] {
        let info = docker(&["info", "--format", "{{json .Runtimes.dbg}}"]).ok();
        assert_eq!(
            info.out(),
            format!(
                r#"{{"path":"{}","runtimeArgs":["first-{who}"]}}"#,
                wrapper(who).display()
            )
        );
        let run = docker(&["run", "--rm", "--runtime", "dbg", "busybox", "echo", "ran"]).ok();
        assert_eq!(run.stdout, "ran\n");
        let noted = std::fs::read_to_string(logs.join(format!("{who}.args"))).unwrap_or_default();
        assert!(
            !noted.is_empty() && noted.lines().all(|l| l == format!("first-{who}")),
            "{who}: the runtime's first arguments: {noted:?}"
        );
        let script = std::fs::read_to_string(data_root.join("runtimes/dbg")).unwrap();
        assert_eq!(
            script,
            format!("#!/bin/sh\n{} first-{who} $@\n", wrapper(who).display()),
            "{who}"
        );
    }

    // A reload may change the default runtime: new containers get it,
    // and the reload event says so, on both.
    for (path, who) in [(&ours_file, "berthd"), (&theirs_file, "dockerd")] {
        let mut json: serde_json::Value = serde_json::from_str(&with_args(who)).unwrap();
        json["default-runtime"] = "myrt".into();
        std::fs::write(path, json.to_string()).unwrap();
    }
    let format = "{{.Action}} {{index .Actor.Attributes \"default-runtime\"}}";
    let (ours, theirs) = reload_both(&dockerd2, &b2, format);
    assert_eq!(ours.as_deref(), Some("reload myrt\n"));
    assert_eq!(ours, theirs);
    for docker in [
        &(|a: &[&str]| b2.docker(a)) as &dyn Fn(&[&str]) -> berth_compat_tests::Run,
        &|a: &[&str]| dockerd2.docker(a),
    ] {
        docker(&["create", "--name", "after-reload", "busybox", "true"]).ok();
        let rt = docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "after-reload"]).ok();
        assert_eq!(rt.out(), "myrt");
        assert_eq!(
            docker(&["info", "--format", "{{.DefaultRuntime}}"])
                .ok()
                .out(),
            "myrt"
        );
    }
    dockerd2.finish();
    b2.finish();
    dockerd.finish();
    b.finish();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
